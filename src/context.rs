//! What every command gets: global options, and the scope of the worktree
//! it runs in (worktree, config, purpose, identifier, ranges).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::alloc::Request;
use crate::config::{Config, Ranges, Service};
use crate::error::{Error, Result};
use crate::process::printable_path;
use crate::registry::Registry;
use crate::worktree::{Meta, Worktree};

pub struct Ctx {
    pub registry: Registry,
    /// `--config PATH`: used instead of the worktree's own file.
    pub config_path: Option<PathBuf>,
    /// The current directory as the kernel gave it at start-up (`getcwd`:
    /// absolute, with no symbolic link and no `.` or `..`), or why it could
    /// not: read through [`Ctx::cwd`], so that only the commands that need
    /// it fail without it (a directory deleted under the shell).
    pub(crate) current_dir: std::io::Result<PathBuf>,
    /// Colour on stderr (terminal, `--color`, `NO_COLOR`).
    pub color: bool,
    /// `--color`, for the streams decided on demand ([`Ctx::color_stdout`]).
    pub color_choice: clap::ColorChoice,
    /// `-v` count (`validate` lists every allocation with it).
    pub verbose: u8,
    /// Config warnings already given, without their file: `create` reads
    /// the source worktree's config and then the new checkout's, and the
    /// same warning twice is noise.
    pub warned: RefCell<BTreeSet<String>>,
}

/// A worktree with its config and its place in the port space.
#[derive(Debug, Clone)]
pub struct Scope {
    pub worktree: Worktree,
    pub config: Config,
    pub purpose: String,
    pub identifier: String,
    pub ranges: Ranges,
}

impl Ctx {
    /// The current directory; an error saying what to do when there is
    /// none (deleted under the shell) or it cannot be read. Only what
    /// needs it asks: `release --hold`, `ports --all` and `validate` work
    /// from a deleted directory.
    pub fn cwd(&self) -> Result<&Path> {
        self.cwd_else(None)
    }

    /// [`Ctx::cwd`] for a command with a form that needs none
    /// (`ports --all`): a deleted directory's hint names that form,
    /// `anywhere`, which works from anywhere.
    pub fn cwd_else(&self, anywhere: Option<&str>) -> Result<&Path> {
        self.current_dir.as_deref().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => cwd_deleted("it was deleted", anywhere),
            kind => {
                let again = match e.raw_os_error() {
                    Some(code) => std::io::Error::from_raw_os_error(code),
                    None => std::io::Error::new(kind, e.to_string()),
                };
                Error::io("could not read the current directory", again)
                    .with_hint("cd to a directory you can read")
            }
        })
    }

    /// `path` as given on the command line, made absolute against the
    /// current directory when it is relative (only then is the current
    /// directory needed).
    pub fn absolute(&self, path: &Path) -> Result<PathBuf> {
        if path.is_absolute() {
            return Ok(path.to_path_buf());
        }
        Ok(self.cwd()?.join(path))
    }

    /// Colour on stdout, decided like [`Ctx::color`] from stdout's own
    /// state (only `up` asks: its prefixed lines go to stdout).
    pub fn color_stdout(&self) -> bool {
        use std::io::IsTerminal;
        crate::color_enabled(self.color_choice, std::io::stdout().is_terminal())
    }

    /// The config that applies to the worktree at `root`.
    pub fn config_for(&self, root: &Path) -> Result<Config> {
        let config = match &self.config_path {
            Some(p) => Config::load(p)?,
            None => Config::discover(root)?,
        };
        self.warn_about(&config);
        Ok(config)
    }

    /// [`config_for`](Self::config_for) the worktree at `root`, where
    /// `known` is the config already loaded (and warned about) for another
    /// worktree of the repository: the same file is neither parsed nor
    /// warned about twice (`known` is returned, its `source` naming the
    /// other worktree's copy).
    pub fn config_for_like(&self, root: &Path, known: &Config) -> Result<Config> {
        if self.config_path.is_some() {
            return Ok(known.clone());
        }
        match Config::discover_unless_same(root, known)? {
            None => Ok(known.clone()),
            Some(config) => {
                self.warn_about(&config);
                Ok(config)
            }
        }
    }

    /// The config's own warnings, and allocation rule 6 (a range overlapping
    /// the ephemeral one), checked here at the edge: it
    /// depends on the machine, not on the file, and is one warning for all
    /// the ranges. The built-in ranges never overlap it. Each once per
    /// process, keyed without the file's name.
    pub fn warn_about(&self, config: &Config) {
        let source = config.source.as_deref().map(printable_path);
        let once = |message: String, hint: Option<String>| {
            let key = source
                .as_deref()
                .and_then(|s| message.strip_prefix(s))
                .unwrap_or(&message)
                .to_owned();
            if self.warned.borrow_mut().insert(key) {
                match hint {
                    Some(hint) => crate::report::warn_hinted(&message, &hint),
                    None => crate::report::warn(&message),
                }
            }
        };
        for w in &config.warnings {
            once(w.clone(), None);
        }
        if let Some(source) = &source
            && let Some((overlap, hint)) = crate::probe::ephemeral_overlap(&config.purposes)
        {
            once(format!("{source}: {overlap}"), Some(hint));
        }
    }

    /// The config of the worktree around the current directory; outside
    /// one, `--config` or the built-in defaults.
    pub fn config_here(&self) -> Result<Config> {
        match self.worktree_here()? {
            Some(wt) => self.config_for(&wt.root),
            None => match &self.config_path {
                Some(p) => Config::load(p),
                None => Ok(Config::default()),
            },
        }
    }

    /// The config of each repository the registry records (read from its
    /// main worktree; a bare repository or one whose main worktree is gone
    /// has none here and is skipped).
    pub fn registry_configs(&self, data: &crate::registry::RegistryData) -> Result<Vec<Config>> {
        let repositories: std::collections::BTreeSet<&Path> = data
            .allocations
            .iter()
            .map(|a| a.repository.as_path())
            .collect();
        let mut configs = Vec::new();
        for repository in repositories {
            if let Some(root) = crate::worktree::main_root_of(repository).filter(|r| r.is_dir()) {
                configs.push(self.config_for(&root)?);
            }
        }
        Ok(configs)
    }

    /// The scope of the worktree around the current directory.
    pub fn scope(&self) -> Result<Scope> {
        self.scope_of(self.require_worktree_here()?)
    }

    /// The worktree around the current directory, found without resolving
    /// [`Ctx::cwd`] again (it is already).
    pub fn worktree_here(&self) -> Result<Option<Worktree>> {
        Worktree::discover_resolved(self.cwd()?)
    }

    /// Like [`Ctx::worktree_here`], but outside a worktree is an error.
    pub fn require_worktree_here(&self) -> Result<Worktree> {
        let cwd = self.cwd()?;
        Worktree::discover_resolved(cwd)?.ok_or_else(|| Worktree::outside(cwd))
    }

    pub fn scope_at(&self, dir: &Path) -> Result<Scope> {
        self.scope_of(Worktree::require(dir)?)
    }

    /// The scope of a worktree already found.
    pub fn scope_of(&self, worktree: Worktree) -> Result<Scope> {
        let config = self.config_for(&worktree.root)?;
        let meta = worktree.meta();
        Scope::new(worktree, &meta, config)
    }

    /// Whether `scope`'s config may set what needs trust
    /// ([`crate::trust`]): one decision for every command that exports it.
    pub fn trust_gate(&self, scope: &Scope) -> crate::trust::Gate {
        crate::trust::Gate::of(
            &self.registry,
            &scope.worktree.common_dir,
            &scope.config,
            self.config_path.is_some(),
            || scope.worktree.ownership(),
        )
    }
}

impl Scope {
    /// Where a `run` for `service` (`NAME` for any) goes, in the syntax
    /// and the file of the config in use:
    /// `add run = "..." under [services.web] in wtenv.toml`.
    pub fn add_run_hint(&self, service: &str) -> String {
        format!(
            "{} in {}",
            self.config
                .syntax()
                .add("run", "\"...\"", &["services", service]),
            self.config.file_named_for(&self.worktree.root)
        )
    }

    /// A service named on the command line: the config's, or the error
    /// every command gives for one it does not declare
    /// ([`Config::service_index`]).
    pub fn require_service(&self, name: &str) -> Result<&Service> {
        self.config.require_service(name, &self.worktree.root)
    }

    /// The scope of `worktree`, given its metadata and its config.
    pub fn new(worktree: Worktree, meta: &Meta, config: Config) -> Result<Scope> {
        worktree.require_utf8()?;
        let purpose = meta
            .purpose
            .clone()
            .unwrap_or_else(|| config.worktrees.default_purpose.clone());
        let ranges = config.purpose_ranges(&purpose).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "worktree {} has purpose {purpose:?}, which the config does not define",
                printable_path(&worktree.root)
            ))
            .with_hint(format!(
                "{} in {}",
                config.syntax().add(
                    &crate::process::printable(&purpose),
                    "\"START-END\"",
                    &["purposes"]
                ),
                config.file_named_for(&worktree.root)
            ))
        })?;
        let identifier = worktree.identifier(meta);
        crate::exports::check_size(&config, &worktree.root, &purpose, &identifier)?;
        Ok(Scope {
            worktree,
            config,
            purpose,
            identifier,
            ranges,
        })
    }

    /// The allocation request for this worktree's configured services.
    pub fn request(&self, skip_occupied_flag: bool) -> Request<'_> {
        Request {
            git_dir: Some(&self.worktree.git_dir),
            ..request(
                &self.config,
                &self.worktree.common_dir,
                &self.worktree.root,
                &self.purpose,
                self.ranges.clone(),
                skip_occupied_flag,
            )
        }
    }

    /// This worktree's allocated ports by service, as the registry has
    /// them (after [`crate::ports::ensure_verified`]).
    pub fn allocated_ports(&self, registry: &Registry) -> Result<crate::alloc::Ports> {
        let (repo, root) = (&self.worktree.common_dir, &self.worktree.root);
        Ok(registry
            .read_worktree(repo, root)?
            .allocations
            .iter()
            .filter(|a| a.belongs_to(repo, root))
            .map(|a| (a.service.clone(), a.port))
            .collect())
    }

    /// Another purpose's range, checked against the config.
    pub fn with_purpose(mut self, purpose: &str) -> Result<Scope> {
        self.ranges = self.config.require_purpose(purpose)?;
        self.purpose = purpose.to_owned();
        Ok(self)
    }
}

/// The error of a command whose current directory was deleted (exit 1):
/// `the current directory no longer exists: WHY`, and the hint to cd to
/// one that exists (or to run `anywhere`, a form of the command that
/// needs none). Also an `up -d` that waited for the `remove` of its
/// worktree ([`crate::background::up`]).
pub fn cwd_deleted(why: &str, anywhere: Option<&str>) -> Error {
    Error::not_found(format!("the current directory no longer exists: {why}")).with_hint(
        match anywhere {
            Some(form) => {
                format!("cd to a directory that exists, or run {form}, which works from anywhere")
            }
            None => "cd to a directory that exists".into(),
        },
    )
}

/// The allocation request, under `config`, of the worktree at `worktree`
/// (a [`Scope`]'s, or one `create` is making).
pub fn request<'a>(
    config: &'a Config,
    repository: &'a Path,
    worktree: &'a Path,
    purpose: &'a str,
    ranges: Ranges,
    skip_occupied_flag: bool,
) -> Request<'a> {
    Request {
        repository,
        worktree,
        purpose,
        ranges,
        services: config.services.iter().map(|s| s.name.as_str()).collect(),
        skip_occupied: skip_occupied_flag || config.skip_occupied,
        adhoc: false,
        config_source: config.source.as_deref(),
        git_dir: None,
    }
}
