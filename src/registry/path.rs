//! Where the registry is: its path, from `--registry PATH` or the
//! environment (`WTENV_STATE_DIR`, `XDG_STATE_HOME`, `HOME`), what its
//! state directory may be made below ([`Base`]), and how long its locks
//! are waited for (`WTENV_LOCK_TIMEOUT`).

use std::path::{Path, PathBuf};

use super::{FILE_NAME, Registry, is_there};
use crate::error::{Error, Result};
use crate::process::printable_path;

/// What to do about a registry path that can hold no registry of
/// wtenv's (a device, a file of the kernel's).
pub(super) const REGULAR_FILE_HINT: &str = "--registry names the registry's file: pass the path of a regular file, \
     or of one wtenv may create";

/// What the default state directory is made below, which must exist for
/// it (and its missing parents) to be made: HOME for
/// `~/.local/state/wtenv`; for `$XDG_STATE_HOME/wtenv`, XDG_STATE_HOME's
/// parent, or HOME when XDG_STATE_HOME is inside it. A HOME that does
/// not exist (`HOME=/nonexistent`, as for `nobody`, systemd's
/// DynamicUser, many containers) was made, parents and all, with a
/// second, empty registry in it that handed out again the ports the real
/// one reserved: it is an error, as an unset HOME is.
#[derive(Debug, Clone)]
pub struct Base {
    must_exist: PathBuf,
    /// What the error says when it does not, and its hint.
    missing: String,
    hint: &'static str,
}

impl Base {
    fn of(from: crate::settings::StateDirFrom) -> Option<Base> {
        use crate::settings::StateDirFrom;
        let home_missing = |home: &Path| {
            format!(
                "cannot find the registry: HOME={} does not exist, and wtenv makes its state directory only in a HOME that does",
                printable_path(home)
            )
        };
        const SET_HOME: &str =
            "set WTENV_STATE_DIR, or HOME to a directory that exists, or pass --registry PATH";
        match from {
            StateDirFrom::StateDir => None,
            StateDirFrom::Home(home) => Some(Base {
                must_exist: home.to_path_buf(),
                missing: home_missing(home),
                hint: SET_HOME,
            }),
            StateDirFrom::XdgStateHome(xdg, Some(home)) if xdg.starts_with(home) => Some(Base {
                must_exist: home.to_path_buf(),
                missing: home_missing(home),
                hint: SET_HOME,
            }),
            StateDirFrom::XdgStateHome(xdg, _) => {
                let parent = xdg.parent().unwrap_or(xdg);
                Some(Base {
                    must_exist: parent.to_path_buf(),
                    missing: format!(
                        "cannot find the registry: XDG_STATE_HOME={} is in {}, which does not exist",
                        printable_path(xdg),
                        printable_path(parent)
                    ),
                    hint: "set WTENV_STATE_DIR, or XDG_STATE_HOME in a directory that exists, or pass --registry PATH",
                })
            }
        }
    }
}

impl Registry {
    /// [`new`](Registry::new), waiting for locks as long as
    /// `WTENV_LOCK_TIMEOUT` says, read as every duration a user types
    /// ([`crate::duration::read`]): anything else is an error naming it
    /// and saying which refusal it is (not a duration, longer than a
    /// year), in the words `--grace` and a config use
    /// ([`crate::duration::Refusal::of`]).
    pub fn from_env(path: PathBuf) -> Result<Registry> {
        use crate::duration::{Refusal, read};
        let mut registry = Registry::new(path);
        const VAR: &str = crate::settings::LOCK_TIMEOUT;
        if let Some(value) = crate::settings::lock_timeout() {
            let read = value.to_str().map_or(Err(Refusal::NotADuration), read);
            registry.lock_timeout = read.map_err(|why| {
                let shown = crate::process::printable(&value.to_string_lossy());
                Error::invalid(why.of(&format!("{VAR}={shown}"))).with_hint(format!(
                    "set {VAR} to a duration such as 30s, or unset it to wait {}",
                    humantime::format_duration(super::DEFAULT_LOCK_TIMEOUT)
                ))
            })?;
        }
        Ok(registry)
    }

    /// `$WTENV_STATE_DIR`, else `$XDG_STATE_HOME/wtenv`, else
    /// `~/.local/state/wtenv`; then `registry.json`. With it, what it is
    /// made below ([`Base`]; not for `WTENV_STATE_DIR`, made as named).
    pub fn default_path() -> Result<(PathBuf, Option<Base>)> {
        let (dir, from) = crate::settings::state_dir().ok_or_else(|| {
            Error::not_found(
                "cannot find the registry: none of WTENV_STATE_DIR, XDG_STATE_HOME, HOME is set to an absolute path",
            )
            .with_hint("set WTENV_STATE_DIR, or HOME to an absolute path, or pass --registry PATH")
        })?;
        // Only WTENV_STATE_DIR can be relative (the base directories are
        // taken absolute only): it would name another registry, and
        // another trust list, in every directory entered.
        if dir.is_relative() {
            return Err(Error::invalid(format!(
                "WTENV_STATE_DIR={} is not an absolute path",
                crate::process::printable_path(&dir)
            ))
            .with_hint("set WTENV_STATE_DIR to an absolute path, or pass --registry PATH"));
        }
        Ok((dir.join(FILE_NAME), Base::of(from)))
    }

    /// This registry, its state directory made only below `base` when
    /// it is missing ([`Base`]).
    pub fn made_below(mut self, base: Option<Base>) -> Registry {
        self.base = base;
        self
    }

    /// Refuses a state directory that is not there when what it would be
    /// made below is not there either.
    pub(super) fn check_base(&self) -> Result<()> {
        match &self.base {
            Some(base) if !is_there(&base.must_exist) => {
                Err(Error::not_found(base.missing.clone()).with_hint(base.hint))
            }
            _ => Ok(()),
        }
    }

    /// The registry named by `--registry PATH`. A directory there (the
    /// state directory, named instead of its `registry.json`) is refused
    /// before any lock is taken: the locks live beside the registry, so
    /// they were made in its parent, and the refusal's hint was to move
    /// that directory, the user's registry with it, aside. So is a
    /// device, a FIFO or a socket (`--registry /dev/null`): its lock was
    /// made in `/dev`, and the hint was to move `/dev/null` aside.
    pub fn given_path(path: PathBuf) -> Result<PathBuf> {
        // Through a link too: a link to the state directory is the same
        // mistake.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                let file = path.join(FILE_NAME);
                Err(Registry::new(path).unusable(
                    "it is a directory",
                    format!(
                        "--registry names the registry's file, not its directory: pass --registry {}",
                        crate::shell::quote_in_message(file)
                    ),
                ))
            }
            Ok(meta) if !meta.is_file() => Err(Registry::new(path).unusable(
                crate::files::Refusal::NotRegular(crate::files::kind_of(&meta)).to_string(),
                REGULAR_FILE_HINT,
            )),
            _ => Ok(path),
        }
    }
}
