//! Trust: whether a repository's config may set its `[env]` variables, and
//! its services' variables not named like a port
//! ([`crate::config::is_port_name`]).
//!
//! Ports are data; `[env]` templates are not: `NODE_OPTIONS` or a
//! `JAVA_TOOL_OPTIONS` set by a repository someone else wrote runs their
//! code in the user's programs. So, like `direnv allow`, a config's `[env]`
//! applies only once the user has run `wtenv trust`, which records
//! (repository, SHA-256 of the config's content) in `trust.json` beside the
//! registry. Every worktree of that repository whose config has the same
//! content is trusted (a worktree made by `create` from a trusted one
//! included: nothing to copy); any change to the config untrusts it until
//! `wtenv trust` again. Names that would run code by themselves (`PATH`,
//! `PROMPT_COMMAND`, `LD_PRELOAD`, ...) are refused in every config,
//! trusted or not ([`crate::config::refused_name`]).
//!
//! Trust follows the repository's own worktrees only
//! ([`crate::worktree::Worktree::ownership`]): a `.git` file can name any
//! repository.
//!
//! The check ([`Gate::of`]) runs on `env`'s hot path, only for a config
//! with something to trust: one hash of text already read and one read of
//! a small file, no lock (the file is replaced by rename, so a reader sees
//! the old or the new list), no git. A trust list that cannot be read
//! counts as trusting nothing, with a warning: failing safe, and the ports
//! are still exported.
//!
//! Writes (`trust`, `untrust`) run under `trust.lock` and replace the file
//! through [`crate::files::replace`]: the same hardening as the registry.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::files::{self, OpenError};
use crate::process::printable_path;
use crate::registry::Registry;
use crate::shell::quote_in_message;
use crate::worktree::Ownership;

pub const FILE_NAME: &str = "trust.json";
const LOCK_NAME: &str = "trust.lock";
const VERSION: u32 = 1;
/// Far more entries than anyone trusts; bounds the read of a planted file.
const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The trust list as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustList {
    pub version: u32,
    pub trusted: Vec<Entry>,
}

/// One trusted config content of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Canonical git common dir.
    pub repository: PathBuf,
    /// SHA-256 of the config file's name and content, hex.
    pub sha256: String,
    /// The file `wtenv trust` read (informative: any worktree's copy with
    /// the same content is trusted).
    pub config: PathBuf,
    /// RFC 3339, UTC.
    pub trusted: String,
}

impl Default for TrustList {
    fn default() -> Self {
        TrustList {
            version: VERSION,
            trusted: Vec::new(),
        }
    }
}

/// The content hash trust is recorded for: the file's name (TOML and JSON
/// read the same text differently) and its exact text.
pub fn digest(config: &Config) -> Option<String> {
    let source = config.source.as_ref()?;
    let mut hasher = Sha256::new();
    hasher.update(source.file_name()?.as_encoded_bytes());
    hasher.update([0]);
    hasher.update(config.text().as_bytes());
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// What the gate decided for one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Nothing in the config needs trust: nothing to decide.
    Nothing,
    /// Trusted: `[env]` and every service variable apply.
    Trusted,
    /// Not trusted: what needs trust is left out, and the user is told so.
    Untrusted { why: String },
    /// The trust list cannot be read: nothing is trusted, and the user is
    /// told the list's own way out (`wtenv trust` refuses such a list).
    Unreadable { why: String, hint: String },
    /// Content trusted for `repository`, but this directory is not one of
    /// its worktrees (its `.git` only names it; `ownership` says how):
    /// left out, and told.
    NotOwn {
        repository: PathBuf,
        ownership: Ownership,
    },
}

impl Gate {
    /// Whether `config` (of the repository `repository`) may set what
    /// needs trust ([`Config::untrusted_names`]), per the trust list beside
    /// `registry`. A config the user named on the command line (`--config
    /// PATH`, `explicit`) is theirs to apply, like the `run` commands `up`
    /// starts: trusted.
    ///
    /// `own` says whether the worktree is really one of `repository`'s
    /// ([`crate::worktree::Worktree::ownership`]); asked only when the content
    /// is trusted. A `.git` file in a downloaded tree can name any
    /// repository: a trusted config copied beside one must not borrow that
    /// trust (its `{worktree}` templates would name the copy's files).
    pub fn of(
        registry: &Registry,
        repository: &Path,
        config: &Config,
        explicit: bool,
        own: impl FnOnce() -> Ownership,
    ) -> Gate {
        if config.untrusted_names().next().is_none() {
            return Gate::Nothing;
        }
        Gate::decide(registry, repository, config, explicit, own)
    }

    /// [`Gate::of`] for something of `config` other than its variables
    /// that needs trust too (`create`'s `[worktrees] root`): decided
    /// whatever the config's variables are.
    pub fn decide(
        registry: &Registry,
        repository: &Path,
        config: &Config,
        explicit: bool,
        own: impl FnOnce() -> Ownership,
    ) -> Gate {
        if explicit {
            return Gate::Trusted;
        }
        if config.source.as_deref().and_then(Path::file_name).is_none() {
            return Gate::Nothing;
        }
        let list = match load(registry) {
            Ok(list) => list,
            Err(e) => {
                return Gate::Unreadable {
                    why: format!("the trust list cannot be read ({e})"),
                    hint: e.hint().unwrap_or_default(),
                };
            }
        };
        // The digest only when the list names this repository: hashing
        // starts with a CPU feature check, which traps to the hypervisor
        // in a VM, on every `cd` of a repository never trusted.
        if !list.trusted.iter().any(|e| e.repository == repository) {
            return Gate::Untrusted {
                why: "it is not trusted".into(),
            };
        }
        match digest(config) {
            Some(sha256) if list.contains(repository, &sha256) => match own() {
                Ownership::Own => Gate::Trusted,
                ownership => Gate::NotOwn {
                    repository: repository.to_path_buf(),
                    ownership,
                },
            },
            _ => Gate::Untrusted {
                why: "it changed since it was trusted".into(),
            },
        }
    }

    pub fn applies(&self) -> bool {
        *self == Gate::Trusted
    }

    /// The one line telling the user what was left out and how to trust it.
    pub fn message(&self, config: &Config) -> Option<String> {
        let tail = self.why()?;
        let (what, names) = config.gated()?;
        let source = config
            .source
            .as_deref()
            .map(printable_path)
            .unwrap_or_default();
        Some(format!(
            "{what} of {source} not applied ({}): {tail}",
            names.join(", ")
        ))
    }

    /// Why what needs trust does not apply, and how to make it apply;
    /// `None` when it applies (or nothing needs trust).
    pub fn why(&self) -> Option<String> {
        Some(match self {
            Gate::Untrusted { why } => format!("{why}; review it, then run 'wtenv trust'"),
            Gate::Unreadable { why, hint } if hint.is_empty() => why.clone(),
            Gate::Unreadable { why, hint } => format!("{why}; {hint}"),
            Gate::NotOwn {
                repository,
                ownership: Ownership::Unrecorded { root },
            } => unrecorded(repository, root),
            Gate::NotOwn { repository, .. } => format!(
                "this directory's .git names {}, but that repository does not list it as a worktree; trust applies only to a repository's own worktrees",
                printable_path(repository)
            ),
            Gate::Nothing | Gate::Trusted => return None,
        })
    }
}

/// Why trusted content of `repository` does not apply in `root`, a
/// directory whose `.git` file names that separate git dir while it
/// records no worktree ([`Ownership::Unrecorded`]), and the way out: the
/// words `env`'s warning and `trust`'s message share.
pub fn unrecorded(repository: &Path, root: &Path) -> String {
    format!(
        // No command to paste: run in a downloaded copy, it would point
        // the user's repository at the copy.
        "this directory's .git names {}, a separate git dir that records no worktree (no core.worktree), so a copy whose .git names it would look the same; \
         if {} is that repository's main worktree (made there, not a downloaded copy), record it as core.worktree in that repository (README, \"Trust\")",
        printable_path(repository),
        quote_in_message(root)
    )
}

impl TrustList {
    pub fn contains(&self, repository: &Path, sha256: &str) -> bool {
        self.trusted
            .iter()
            .any(|e| e.sha256 == sha256 && e.repository == repository)
    }
}

/// The trust list beside `registry` (empty when there is none).
pub fn load(registry: &Registry) -> Result<TrustList> {
    let path = registry.sibling(FILE_NAME);
    let Some(dir) = registry.state_dir().map_err(said_of(&path))? else {
        return Ok(TrustList::default());
    };
    read(&dir.join(FILE_NAME))
}

/// The refusals of the state directory and of a lock file in it, which
/// the registry words as its own, said of the trust list at `path`:
/// `trust` and `untrust` use `trust.json`, not the registry.
fn said_of(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::RegistryUnusable { reason, hint, .. } => Error::RegistryUnusable {
            what: "trust list",
            path: path.to_path_buf(),
            reason,
            hint,
        },
        e => e,
    }
}

fn read(path: &Path) -> Result<TrustList> {
    let remove = || {
        format!(
            "remove it to trust nothing: {}",
            files::removal(path).command
        )
    };
    // A file wtenv keeps that it cannot use is refused as the registry is
    // (exit 2), whatever is wrong with it: its content, its mode, or its
    // directory's (README "Exit codes").
    let refused = |reason: String, hint: String| Error::RegistryUnusable {
        what: "trust list",
        path: path.to_path_buf(),
        reason,
        hint,
    };
    let unusable = |reason: String| {
        refused(
            reason,
            format!("wtenv never rewrites it; inspect it, or {}", remove()),
        )
    };
    // A mode alone is mended by chmod, which keeps every entry: removing
    // the file is for one that is damaged. Writable by others, it is
    // checked first: whoever could write it could have trusted for you.
    let mode = |refusal: files::Refusal| {
        let first = match refusal {
            files::Refusal::WritableByOthers(_) => "inspect what it trusts, then ",
            _ => "",
        };
        refused(
            refusal.to_string(),
            format!(
                "wtenv never rewrites it; {first}chmod 600 {}; or, if it is damaged, {}",
                crate::shell::quote_in_message(path),
                remove()
            ),
        )
    };
    let bytes = (|| -> std::result::Result<Option<Vec<u8>>, OpenError> {
        let Some(file) = files::open_read(path, false)? else {
            return Ok(None);
        };
        let meta = files::require_own_regular(&file)?;
        // Root reads past its owner's mode; a user does not: refused alike,
        // as the registry is.
        files::require_owner_bits(&meta, 0o400)?;
        // Anyone else who could write it could trust for you.
        if meta.mode() & 0o022 != 0 {
            return Err(OpenError::Refused(files::Refusal::WritableByOthers(
                meta.mode() & 0o777,
            )));
        }
        files::read_capped(&file, MAX_BYTES, meta.len()).map(Some)
    })()
    // What the kernel refused a user is said as root's checks say it.
    .map_err(|e| match e {
        OpenError::Io(e) => match files::refusal_of(path, &e) {
            Some(r @ files::Refusal::OwnerMode(_)) => mode(r),
            r => unusable(r.map_or(e.to_string(), |r| r.to_string())),
        },
        OpenError::Refused(
            r @ (files::Refusal::WritableByOthers(_) | files::Refusal::OwnerMode(_)),
        ) => mode(r),
        refused => unusable(refused.to_string()),
    })?;
    let Some(bytes) = bytes else {
        return Ok(TrustList::default());
    };
    // A newer wtenv's file is left to it, as the registry is: no hint to
    // remove what it trusts, unless no newer wtenv has used it.
    let newer = |reason: String| {
        refused(
            reason,
            format!(
                "use the newer wtenv that wrote it, or upgrade this one; the trust list is left as it is. Only if no newer wtenv has used it: {}",
                remove()
            ),
        )
    };
    let list: TrustList = serde_json::from_slice(&bytes).map_err(|e| {
        match crate::versions::newer_field::<TrustList>(&bytes, &e) {
            Some(reason) => newer(reason),
            None => unusable(format!("it is not a trust list ({e})")),
        }
    })?;
    if list.version > VERSION {
        return Err(newer(format!(
            "it was written by a newer wtenv (trust list version {}; this wtenv knows version {VERSION})",
            list.version
        )));
    }
    if list.version != VERSION {
        return Err(unusable(format!(
            "version {} (this wtenv knows version {VERSION})",
            list.version
        )));
    }
    Ok(list)
}

/// Read-modify-write of the trust list under its lock; written only when
/// `f` changed it.
fn update<T>(registry: &Registry, f: impl FnOnce(&mut TrustList) -> T) -> Result<T> {
    let path = registry.sibling(FILE_NAME);
    let _lock = registry.lock_sibling(LOCK_NAME).map_err(said_of(&path))?;
    let dir = registry
        .state_dir()
        .map_err(said_of(&path))?
        .ok_or_else(|| Error::failed("the state directory vanished"))?
        .to_path_buf();
    let mut list = read(&dir.join(FILE_NAME))?;
    let before = list.clone();
    let out = f(&mut list);
    if list != before {
        let mut bytes = serde_json::to_vec_pretty(&list)
            .map_err(|e| Error::failed(format!("could not write the trust list: {e}")))?;
        bytes.push(b'\n');
        files::replace(&dir, FILE_NAME, &bytes).map_err(|(what, path, e)| {
            files::replace_error(format!("could not {what} {}", printable_path(&path)), e)
        })?;
    }
    Ok(out)
}

/// Trusts `config`'s content for `repository`; false if it already was.
pub fn trust(registry: &Registry, repository: &Path, config: &Config) -> Result<bool> {
    let (Some(sha256), Some(source)) = (digest(config), config.source.clone()) else {
        return Err(
            Error::not_found("there is no wtenv.toml or wtenv.json here to trust")
                .with_hint("trust is for a config's [env] section (\"env\" in wtenv.json); without a config there is none"),
        );
    };
    update(registry, |list| {
        if list.contains(repository, &sha256) {
            return false;
        }
        list.trusted.push(Entry {
            repository: repository.to_path_buf(),
            sha256,
            config: source,
            trusted: crate::registry::now_rfc3339(),
        });
        true
    })
}

/// Forgets every trusted content of `repository`: how many there were.
pub fn untrust(registry: &Registry, repository: &Path) -> Result<usize> {
    update(registry, |list| {
        let before = list.trusted.len();
        list.trusted.retain(|e| e.repository != repository);
        before - list.trusted.len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, text: &str) -> Config {
        Config::parse(Path::new(name), text).unwrap()
    }

    #[test]
    fn the_digest_follows_the_content_and_the_format() {
        let a = config("/a/wtenv.toml", "[env]\nX = \"1\"\n");
        let b = config("/b/wtenv.toml", "[env]\nX = \"1\"\n");
        let c = config("/a/wtenv.toml", "[env]\nX = \"2\"\n");
        assert_eq!(digest(&a), digest(&b), "another worktree's copy");
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(digest(&a).unwrap().len(), 64);
        assert_eq!(digest(&Config::default()), None);
    }

    #[test]
    fn trust_applies_to_the_same_content_in_the_same_repository_only() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path().join("state/registry.json"));
        let repo = Path::new("/r/.git");
        let a = config("/r/wtenv.toml", "[env]\nX = \"1\"\n");
        assert!(matches!(
            Gate::of(&registry, repo, &a, false, || Ownership::Own),
            Gate::Untrusted { .. }
        ));
        assert!(trust(&registry, repo, &a).unwrap());
        assert!(!trust(&registry, repo, &a).unwrap(), "already trusted");
        assert_eq!(
            Gate::of(&registry, repo, &a, false, || Ownership::Own),
            Gate::Trusted
        );
        let elsewhere = config("/w/feature-x/wtenv.toml", "[env]\nX = \"1\"\n");
        assert_eq!(
            Gate::of(&registry, repo, &elsewhere, false, || Ownership::Own),
            Gate::Trusted
        );
        assert!(matches!(
            Gate::of(&registry, Path::new("/other/.git"), &a, false, || {
                Ownership::Own
            }),
            Gate::Untrusted { .. }
        ));
        let changed = config("/r/wtenv.toml", "[env]\nX = \"2\"\n");
        let gate = Gate::of(&registry, repo, &changed, false, || Ownership::Own);
        assert!(
            gate.message(&changed)
                .unwrap()
                .contains("it changed since it was trusted")
        );
        assert_eq!(untrust(&registry, repo).unwrap(), 1);
        assert!(matches!(
            Gate::of(&registry, repo, &a, false, || Ownership::Own),
            Gate::Untrusted { .. }
        ));
        assert_eq!(
            Gate::of(&registry, repo, &config("/r/wtenv.toml", ""), false, || {
                Ownership::Own
            }),
            Gate::Nothing
        );
    }
}
