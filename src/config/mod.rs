//! `wtenv.toml` / `wtenv.json`: the per-repository configuration.
//!
//! Both formats are read by serde into one shape (`raw.rs`), so they
//! accept exactly the same schema and report errors the same way: the
//! file, the key (dotted path) and the reason, and for a syntax or type
//! error its line and column (`decode.rs`). Unknown keys inside a known
//! table are warnings, an unknown top-level table is an error, each with
//! the known name it likely stands for (`warnings.rs`). The meaning of the
//! values is checked per concept: purposes and their ranges
//! (`purposes.rs`), services (`services.rs`), the variables and `[env]`
//! templates (`env.rs`), the names no config may export (`refused.rs`).
//! Every message writes a key, a table or a type in the file's own
//! syntax (`syntax.rs`).
//!
//! A config comes from a repository someone else may have written: it is
//! read without blocking, only from a regular file, at most [`MAX_BYTES`],
//! and variable names that control the shell, the loader or wtenv itself,
//! or that a shell cannot set, are refused ([`refused_name`]) whether or not the config is trusted.
//! What it asks for is bounded ([`MAX_SERVICES`], [`MAX_NAME_CHARS`],
//! [`MAX_SERVICE_VARS`]; the size of what it exports, which depends on the
//! worktree, is [`crate::exports::check_size`]).
//!
//! Without a file, the built-in defaults apply: the purposes of
//! [`DEFAULT_PURPOSES`], and one service `app` exported as `PORT`.

mod decode;
mod env;
mod purposes;
mod raw;
mod refused;
mod services;
mod syntax;
mod warnings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::process::printable_path;

pub use env::{Piece, Template, is_env_name, is_port_name};
pub use purposes::{DEFAULT_PURPOSES, MIN_PORT, PortRange, Ranges};
pub use refused::{REFUSED, REFUSED_PREFIXES, Refused, refused_name};
pub use services::{Service, default_env_name};
pub use syntax::{Syntax, key_path, syntax_of};
pub use warnings::shown as shown_key;

pub const TOML_NAME: &str = "wtenv.toml";
pub const JSON_NAME: &str = "wtenv.json";

/// A config larger than this is an error (a link to `/dev/zero` must not
/// be read without end).
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The most services a config may declare. Each one reserves a port of
/// its purpose's range as soon as a shell enters the worktree, and is
/// exported to every command run there: a config from someone else must
/// not take a whole range (the default ones have 100 ports) or swell the
/// environment (README, "Hostile files"). No real project comes near.
pub const MAX_SERVICES: usize = 64;

/// The longest name, in characters, of a service or a purpose: each is
/// exported (`WTENV_PORTS`, `WTENV_PURPOSE`) to every command.
pub const MAX_NAME_CHARS: usize = 64;

/// The most variable names one service exports its port under.
pub const MAX_SERVICE_VARS: usize = 16;

/// `[worktrees] branch` when the file does not set it.
pub const DEFAULT_BRANCH: &str = "{purpose}/{identifier}";

/// `[worktrees] root` when the file does not set it. Another one applies
/// only from a trusted config (README, "Trust").
pub const DEFAULT_ROOT: &str = "../{repo}.worktrees";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreesConfig {
    /// Where `create` puts worktrees; `{repo}` is the main worktree's name.
    /// Relative to the main worktree.
    pub root: String,
    /// The branch `create` makes: `{purpose}` and `{identifier}`.
    pub branch: String,
    pub default_purpose: String,
    /// `create` runs `direnv allow` on the new worktree when the source
    /// worktree's `.envrc` is allowed.
    pub direnv_allow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this came from; `None` for the built-in defaults.
    pub source: Option<PathBuf>,
    pub worktrees: WorktreesConfig,
    /// Sorted by name (deterministic allocation order and output).
    pub purposes: BTreeMap<String, Ranges>,
    /// In the order the file declares them: the first declared gets the
    /// range's first free port; exports and tables follow this order.
    pub services: Vec<Service>,
    pub env: Vec<(String, Template)>,
    /// Opt-in: skip ports that are occupied on the system instead of failing.
    pub skip_occupied: bool,
    /// Non-fatal findings (unknown keys), each naming the key.
    pub warnings: Vec<String>,
    /// The text of `source` ([`Config::discover_unless_same`]).
    text: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            worktrees: WorktreesConfig {
                root: DEFAULT_ROOT.into(),
                branch: DEFAULT_BRANCH.into(),
                default_purpose: "feature".into(),
                direnv_allow: false,
            },
            purposes: purposes::defaults(),
            services: vec![Service {
                env: vec!["PORT".into()],
                ..Service::named("app")
            }],
            env: Vec::new(),
            skip_occupied: false,
            warnings: Vec::new(),
            text: String::new(),
        }
    }
}

impl Config {
    /// The config of the worktree at `root`: `wtenv.toml`, else `wtenv.json`,
    /// else the defaults. Both files present is an error (which one wins
    /// would be a guess).
    pub fn discover(root: &Path) -> Result<Config> {
        match find(root)? {
            Some((path, text)) => Config::parse(&path, &text),
            None => Ok(Config::default()),
        }
    }

    /// [`Config::discover`] for a worktree whose file is likely `known`'s
    /// (the worktrees of a repository check out the same one): `None` when
    /// `root`'s file has the same name and text as the one `known` was
    /// parsed from (or neither has one), so the caller reuses `known`
    /// instead of parsing and warning twice.
    pub fn discover_unless_same(root: &Path, known: &Config) -> Result<Option<Config>> {
        let found = find(root)?;
        let same = match (&found, &known.source) {
            (Some((path, text)), Some(source)) => {
                path.file_name() == source.file_name() && *text == known.text
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            return Ok(None);
        }
        match found {
            Some((path, text)) => Config::parse(&path, &text).map(Some),
            None => Ok(Some(Config::default())),
        }
    }

    /// Loads an explicit `--config PATH`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = read_optional(path, true)?.ok_or_else(|| {
            Error::not_found(format!(
                "could not read config {}: no such file",
                printable_path(path)
            ))
            .with_hint(
                "check the path given by --config, or leave --config out to use \
                 the worktree's wtenv.toml or wtenv.json",
            )
        })?;
        Config::parse(path, &text)
    }

    /// The exact text this config was parsed from (empty for the
    /// defaults): what trust is recorded for.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The variables that apply only once the config is trusted
    /// ([`crate::trust`]): each service variable not named like a port
    /// ([`is_port_name`]), then every `[env]` name.
    pub fn untrusted_names(&self) -> impl Iterator<Item = &str> {
        let services = self.services.iter().flat_map(|s| &s.env);
        services
            .map(String::as_str)
            .filter(|n| !is_port_name(n))
            .chain(self.env.iter().map(|(n, _)| n.as_str()))
    }

    /// What trust gates, as the messages name it: `[env]` (`"env"` in a
    /// `wtenv.json`), `service variables` or both, and every name
    /// ([`Config::untrusted_names`]); `None` when nothing waits for trust.
    /// The untrusted warning and `wtenv trust`'s confirmation both say it,
    /// so what the user reviews is what the trust allows.
    pub fn gated(&self) -> Option<(String, Vec<&str>)> {
        let names: Vec<&str> = self.untrusted_names().collect();
        // `[env]` alone is the usual case; service variables not named like
        // a port wait for trust too.
        let env = self.syntax().top_level("env");
        let what = match (names.len() > self.env.len(), self.env.is_empty()) {
            _ if names.is_empty() => return None,
            (false, _) => env,
            (true, true) => "service variables".to_owned(),
            (true, false) => format!("{env} and service variables"),
        };
        Some((what, names))
    }

    /// Parses config text; the format follows the file name (`.json` is
    /// JSON, anything else TOML).
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let (raw, ignored) = decode::decode(path, text)?;
        let warnings = warnings::unknown_keys(path, &ignored)?;
        let config = Checker { path }.config(raw)?;
        Ok(Config {
            warnings,
            text: text.to_owned(),
            ..config
        })
    }

    /// This config's file as a hint names it to whoever works in the
    /// worktree at `root`: its name when it is that worktree's own
    /// (`wtenv.json` or `wtenv.toml`), its path when it is elsewhere
    /// (`--config`), and the name a new one would have, [`TOML_NAME`],
    /// when the built-in defaults apply.
    pub fn file_named_for(&self, root: &Path) -> String {
        file_named(self.source.as_deref(), root)
    }

    /// The format of this config's file, which a hint writes keys in:
    /// JSON for a `.json` file (as [`Config::parse`] reads it), TOML for
    /// any other and for the defaults (a new file would be
    /// [`TOML_NAME`]).
    pub fn syntax(&self) -> Syntax {
        syntax_of(self.source.as_deref())
    }

    pub fn purpose_ranges(&self, purpose: &str) -> Option<&Ranges> {
        self.purposes.get(purpose)
    }

    /// `feature, bugfix, ...`: for messages that list what is configured.
    pub fn purpose_names(&self) -> String {
        self.purposes.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The ranges of a purpose given on the command line.
    pub fn require_purpose(&self, purpose: &str) -> Result<Ranges> {
        self.purpose_ranges(purpose).cloned().ok_or_else(|| {
            Error::not_found(format!("unknown purpose {purpose:?}"))
                .with_hint(format!("configured purposes: {}", self.purpose_names()))
        })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The place of a service in [`Config::services`], which picks its
    /// prefix's colour in `logs` and `status`: 0 for one the config no
    /// longer declares (a record of an older config).
    pub fn prefix_index(&self, name: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(0)
    }

    /// The place in [`Config::services`] of a service named on the command
    /// line (`run --service S`, `up S`, `down S`, `logs S`), or the one
    /// error every command gives for a name the config does not declare:
    /// `unknown service "api"`, its hint listing those it does, where, in
    /// the file's syntax (`configured services: web, db (the
    /// [services.NAME] tables of wtenv.toml)`). `root`: the worktree the
    /// file is named for ([`Config::file_named_for`]).
    pub fn service_index(&self, name: &str, root: &Path) -> Result<usize> {
        if let Some(i) = self.services.iter().position(|s| s.name == name) {
            return Ok(i);
        }
        // Never empty: a config without services has the default `app`.
        let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        Err(
            Error::not_found(format!("unknown service {name:?}")).with_hint(format!(
                "configured services: {} (the {} of {})",
                names.join(", "),
                self.syntax().tables(&["services", "NAME"]),
                self.file_named_for(root)
            )),
        )
    }

    /// The service named on the command line, by [`Config::service_index`].
    pub fn require_service(&self, name: &str, root: &Path) -> Result<&Service> {
        self.service_index(name, root).map(|i| &self.services[i])
    }

    /// The services with `socket = true` and the address each one's socket
    /// is bound to: what `up` hands over, and what a unit exporter writes
    /// `.socket` units for.
    pub fn socket_services(&self) -> Vec<(&Service, std::net::IpAddr)> {
        self.services
            .iter()
            .filter(|s| s.socket)
            .map(|s| (s, s.bind_addr()))
            .collect()
    }
}

/// [`Config::file_named_for`], from the config's `source` alone: what an
/// allocation request keeps, so the name is made only for its error.
pub fn file_named(source: Option<&Path>, root: &Path) -> String {
    match source {
        Some(path) if path.parent() == Some(root) => {
            printable_path(Path::new(path.file_name().unwrap_or_default()))
        }
        Some(path) => printable_path(path),
        None => TOML_NAME.to_owned(),
    }
}

/// The config file of the worktree at `root` and its text, if it has one.
/// The name of the config file in the worktree at `root`, if it has one:
/// looked at, not read (a link counts, as [`Config::discover`] reads one
/// into the Nix store).
pub fn file_in(root: &Path) -> Option<&'static str> {
    [TOML_NAME, JSON_NAME]
        .into_iter()
        .find(|name| std::fs::symlink_metadata(root.join(name)).is_ok())
}

fn find(root: &Path) -> Result<Option<(PathBuf, String)>> {
    let toml_path = root.join(TOML_NAME);
    let json_path = root.join(JSON_NAME);
    match (
        read_optional(&toml_path, false)?,
        read_optional(&json_path, false)?,
    ) {
        // No key: the file as a whole.
        (Some(_), Some(_)) => Err(Error::config(
            &toml_path,
            "",
            format!(
                "both {TOML_NAME} and {JSON_NAME} exist in {}",
                printable_path(root)
            ),
        )
        .with_hint(format!(
            "keep one: remove {TOML_NAME} or {JSON_NAME} (both take the same settings)"
        ))),
        (Some(text), None) => Ok(Some((toml_path, text))),
        (None, Some(text)) => Ok(Some((json_path, text))),
        (None, None) => Ok(None),
    }
}

/// Where a worktree's config may be a link to: a Nix store (a config Nix
/// generates is a link there), world-readable and holding no one's
/// secrets.
const LINKS_MAY_LEAD_TO: &str = "/nix/store";

/// A config file's text. The worktree's own file (`any_link` false) is
/// read through a link only into the Nix store: its errors quote lines
/// and values, and a link to `/proc/self/environ`, `~/.git-credentials`
/// or the worktree's own untracked `.env` would print their secrets on
/// every `cd`. A `--config` file (`any_link`) is the user's own choice,
/// read through any link. Only a regular file, opened without blocking (a
/// FIFO, `/dev/stdin`) and read up to [`MAX_BYTES`] (`/dev/zero`).
fn read_optional(path: &Path, any_link: bool) -> Result<Option<String>> {
    use crate::files::{self, OpenError, Refusal};
    let read = if any_link {
        files::read_regular(path, MAX_BYTES)
    } else {
        files::read_regular_within(path, &[Path::new(LINKS_MAY_LEAD_TO)], MAX_BYTES)
    };
    match read {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => String::from_utf8(bytes).map(Some).map_err(|e| {
            // Where, as for a syntax error: one byte in a long file is
            // found by its line, not by reading the whole file again.
            let offset = e.utf8_error().valid_up_to();
            let byte = e.as_bytes()[offset];
            let text = String::from_utf8_lossy(e.as_bytes());
            let at = crate::error::Location::at(&text, offset);
            Error::config_at(
                path,
                Some(at),
                "",
                format!("not valid UTF-8 (byte {byte:#04x})"),
            )
        }),
        Err(OpenError::Refused(r @ Refusal::LinkOutside(_))) => Err(Error::refused(format!(
            "invalid config {}: {r}; a config is read through a link only into the Nix store",
            printable_path(path)
        ))
        .with_hint("put the file itself in the worktree, or name it with --config")),
        Err(OpenError::Refused(r @ Refusal::LinkNowhere(_))) => Err(Error::not_found(format!(
            "invalid config {}: {r}",
            printable_path(path)
        ))
        .with_hint("restore the file it names, or remove the link to use the built-in defaults")),
        Err(OpenError::Refused(r @ Refusal::LinkLoop(_))) => Err(Error::not_found(format!(
            "invalid config {}: {r}",
            printable_path(path)
        ))
        .with_hint("point the link at a file, or remove it to use the built-in defaults")),
        // `--config /dev/null`, a directory, a FIFO: there is no file to
        // fix, but another path to pass (as `--registry` says of one).
        Err(OpenError::Refused(r @ Refusal::NotRegular(_))) if any_link => {
            Err(Error::config(path, "", r.to_string())
                .with_hint("--config names the config file: pass the path of a regular file"))
        }
        Err(OpenError::Refused(r)) => Err(Error::config(path, "", r.to_string())),
        Err(OpenError::Io(e)) => {
            let quoted = crate::shell::quote_in_message(path);
            let hint = match files::refusal_of(path, &e) {
                Some(Refusal::OwnerMode(_)) => format!("chmod u+r {quoted}"),
                Some(Refusal::Owner(uid)) => format!(
                    "it belongs to uid {uid}, who can make it readable to you (chmod a+r {quoted}); or name another file with --config"
                ),
                _ => "check that the file can be read, then run the command again".to_owned(),
            };
            Err(
                Error::io(format!("could not read config {}", printable_path(path)), e)
                    .with_hint(hint),
            )
        }
    }
}

/// Turns the file as read into a [`Config`], checking what each value
/// means; every refusal names the file and the key.
struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::config(self.path, key, reason)
    }

    /// The syntax the file's messages write keys in.
    fn syntax(&self) -> Syntax {
        syntax_of(Some(self.path))
    }

    fn config(&self, raw: raw::RawConfig) -> Result<Config> {
        let mut config = Config {
            source: Some(self.path.to_path_buf()),
            ..Config::default()
        };
        if let Some(w) = raw.worktrees {
            let wt = &mut config.worktrees;
            if let Some(root) = w.root {
                self.check_placeholders("worktrees.root", &root, ROOT_PLACEHOLDERS)?;
                wt.root = root;
            }
            if let Some(branch) = w.branch {
                self.check_placeholders("worktrees.branch", &branch, BRANCH_PLACEHOLDERS)?;
                wt.branch = branch;
            }
            if let Some(purpose) = w.default_purpose {
                wt.default_purpose = purpose;
            }
            wt.direnv_allow = w.direnv_allow.unwrap_or(wt.direnv_allow);
        }
        if let Some(a) = raw.allocation {
            config.skip_occupied = a.skip_occupied.unwrap_or(false);
        }
        if let Some(p) = raw.purposes {
            config.purposes = self.purposes(p)?;
        }
        if let Some(s) = raw.services {
            config.services = self.services(s)?;
        }
        if !config
            .purposes
            .contains_key(&config.worktrees.default_purpose)
        {
            return Err(self.err(
                "worktrees.default_purpose",
                format!(
                    "purpose {:?} is not defined in {} (defined: {})",
                    config.worktrees.default_purpose,
                    self.syntax().table(&["purposes"]),
                    config.purpose_names()
                ),
            ));
        }
        self.check_env_names(&config.services)?;
        if let Some(env) = raw.env {
            config.env = self.env_templates(env, &config.services)?;
        }
        Ok(config)
    }
}

/// What `[worktrees] root` fills in: the main worktree's directory name.
const ROOT_PLACEHOLDERS: &[&str] = &["repo"];

/// What `[worktrees] branch` fills in: `create`'s purpose and identifier.
const BRANCH_PLACEHOLDERS: &[&str] = &["purpose", "identifier"];

impl Checker<'_> {
    /// `template`, the value of `key`, fills in `known`'s placeholders
    /// only: any other `{...}` is refused when the file is read, by every
    /// command, rather than made into a branch or a directory named with
    /// it. A brace outside a placeholder is refused too (no branch or
    /// directory wtenv makes holds one).
    fn check_placeholders(&self, key: &str, template: &str, known: &[&str]) -> Result<()> {
        match placeholder_problem(template, known) {
            None => Ok(()),
            Some(problem) => {
                let known: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
                Err(self.err(
                    key,
                    format!("{template:?}: {problem}; known: {}", known.join(", ")),
                ))
            }
        }
    }

    /// The name of a purpose or a service (`what`), the key `name` of the
    /// table `table`: [`name_problem`]'s rule.
    fn check_name(&self, table: &str, name: &str, what: &str) -> Result<()> {
        let Some(problem) = name_problem(name, what) else {
            return Ok(());
        };
        let err = self.err(&syntax::key_path([table, &problem.shown]), problem.reason);
        Err(match problem.too_long {
            true => err.with_hint(
                "use a shorter name: it is exported to every command run in the worktree",
            ),
            false => err,
        })
    }
}

/// What is wrong with the placeholders of `template`, which may fill in
/// `known` (names without their braces): the first `{...}` that is not
/// one of them, or a brace that opens or closes none.
fn placeholder_problem(template: &str, known: &[&str]) -> Option<String> {
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with('}') {
            return Some("a '}' that no '{' opens".into());
        }
        let end = match tail[1..].find(['{', '}']) {
            Some(e) if tail[1 + e..].starts_with('}') => 1 + e,
            _ => return Some("a '{' that no '}' closes".into()),
        };
        let name = &tail[1..end];
        if !known.contains(&name) {
            // Escaped as the template beside it is (`{:?}`), without the
            // quotes: a message holding a raw control character would be
            // escaped whole, that template's backslashes again.
            let quoted = format!("{name:?}");
            let shown = &quoted[1..quoted.len() - 1];
            return Some(format!("unknown placeholder {{{shown}}}"));
        }
        rest = &tail[end + 1..];
    }
    None
}

/// What is wrong with a name of a purpose or a service.
struct NameProblem {
    /// The name, cut after [`MAX_NAME_CHARS`] (`...` then says so): an
    /// error is printed on every `cd` under the shell hook.
    shown: String,
    /// `a service name is ASCII letters, digits, '_' or '-'`.
    reason: String,
    too_long: bool,
}

/// The one rule for the name of a purpose or a service (`what`: "a
/// service name"), in a config's table or on the command line
/// ([`check_service_name`]): ASCII letters, digits, `_` or `-`, not
/// starting with `-`, at most [`MAX_NAME_CHARS`]. `None` when the name
/// keeps it.
fn name_problem(name: &str, what: &str) -> Option<NameProblem> {
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        let shown: String = name.chars().take(MAX_NAME_CHARS).collect();
        return Some(NameProblem {
            shown: format!("{shown}..."),
            reason: format!(
                "{what} is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"
            ),
            too_long: true,
        });
    }
    let identifier = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !identifier {
        return Some(NameProblem {
            shown: name.to_owned(),
            reason: format!("{what} is ASCII letters, digits, '_' or '-'"),
            too_long: false,
        });
    }
    // `--purpose -p` and `--service -d` read as options: only
    // `--service=-d` could name it.
    let flag = what.trim_start_matches("a ").trim_end_matches(" name");
    name.starts_with('-').then(|| NameProblem {
        shown: name.to_owned(),
        reason: format!(
            "{what} may not start with '-': a command line would take it for an option (only --{flag}={name} could pass it)"
        ),
        too_long: false,
    })
}

/// A service named on the command line (`allocate --service S`, `release
/// --service S`, `run --service S`, `up S`, `down S`, `logs S`): the rule
/// of a `[services.NAME]` key ([`name_problem`]), with its words, checked
/// before anything is read or written. A name no config could declare is
/// refused where it is given, not recorded (`allocate`'s ad hoc services)
/// nor looked for.
pub fn check_service_name(name: &str) -> Result<()> {
    let Some(problem) = name_problem(name, "a service name") else {
        return Ok(());
    };
    Err(Error::invalid(format!(
        "invalid service name {:?}: {}",
        problem.shown, problem.reason
    ))
    .with_hint(format!(
        "use ASCII letters, digits, '_' or '-', not starting with '-', at most {MAX_NAME_CHARS} characters: the names a config's [services] accepts"
    )))
}

/// The services named on a command line that takes several (`run
/// --service S...`, `up S...`, `down S...`): each checked
/// ([`check_service_name`]), and a name given twice taken once, where
/// it first stood (`up web web` starts web once; `run --sockets --service
/// web --service web` binds its port once).
pub fn check_service_names(names: &mut Vec<String>) -> Result<()> {
    for name in names.iter() {
        check_service_name(name)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(())
}

#[cfg(test)]
mod tests;
