//! The registry's locks: `registry.lock` (shared for reads, exclusive for
//! a transaction), `probe.lock` (turns at probing), and the locks of other
//! files of the state directory. Lock files are never renamed or deleted:
//! a rename would let two processes lock two different inodes. Every wait
//! is bounded (`WTENV_LOCK_TIMEOUT`), never forever.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checked::Access;
use super::{LOCK_NAME, PROBE_LOCK_NAME, Registry};
use crate::error::{Error, Result};
use crate::files::{self, OpenError};
use crate::process::printable_path;

/// A turn at probing ports: the probe lock, released on drop.
pub struct ProbeTurn<'f>(&'f File);

impl Drop for ProbeTurn<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Registry {
    pub(super) fn lock_path(&self) -> PathBuf {
        self.dir().join(LOCK_NAME)
    }

    /// The probe lock's file, opened once per process; `None` before the
    /// registry directory exists. Take a turn with [`probe_turn`].
    ///
    /// Why: a probe is itself a listener for a few microseconds (bind +
    /// listen) and a target for the other's connect backstop, so two wtenv
    /// processes probing one port at once each see the other's socket and
    /// call the port occupied (a false conflict, "holder unknown"). Holding
    /// the lock while probing makes the probes of one registry's processes
    /// never overlap. No other lock is wanted while it is held, so it
    /// cannot deadlock with `registry.lock`.
    ///
    /// Opened as [`read_lock`] opens its lock: an existing probe lock is
    /// used read-only, and none is made where the directory's mode keeps
    /// its owner from writing or the file system is read-only: `None`
    /// when there is none.
    ///
    /// [`probe_turn`]: Registry::probe_turn
    /// [`read_lock`]: Registry::read_lock
    pub fn open_probe_lock(&self) -> Result<Option<File>> {
        // No directory (yet) is no lock; one there is checked.
        let meta = match self.dir_meta() {
            Ok(meta) if meta.is_dir() => meta,
            _ => return Ok(None),
        };
        let may_write = self.check_dir_meta(&meta, Access::Read)?;
        self.open_lock_to_read(&self.dir().join(PROBE_LOCK_NAME), may_write)
    }

    /// The probe lock, exclusive, until the turn is dropped; bounded wait.
    pub fn probe_turn<'f>(&self, file: &'f File) -> Result<ProbeTurn<'f>> {
        self.wait_lock(file, &self.dir().join(PROBE_LOCK_NAME), true)?;
        Ok(ProbeTurn(file))
    }

    pub(super) fn lock(&self, exclusive: bool) -> Result<File> {
        let path = self.lock_path();
        let file = self.open_lock(&path)?;
        self.wait_lock(&file, &path, exclusive)?;
        Ok(file)
    }

    /// The shared lock a read holds, on the lock file opened read-only
    /// when it is there ([`open_lock_to_read`]): a read needs no write, so
    /// the views, and `env` with every port reserved, work on a read-only
    /// file system as in a directory of mode 500.
    ///
    /// [`open_lock_to_read`]: Registry::open_lock_to_read
    pub(super) fn read_lock(&self, may_write: bool) -> Result<Option<File>> {
        let path = self.lock_path();
        let Some(file) = self.open_lock_to_read(&path, may_write)? else {
            return Ok(None);
        };
        self.wait_lock(&file, &path, false)?;
        Ok(Some(file))
    }

    /// A lock file for a shared lock or a probe turn (`flock` needs only a
    /// descriptor, read-only will do): the one there, opened read-only and
    /// checked as [`open_lock`](Registry::open_lock) checks it (a regular
    /// file of yours, never through a link; its owner's read and write
    /// bits when the directory's mode lets its owner write, `may_write`
    /// from [`check_dir`], since writers use it too). When there is none,
    /// it is made if `may_write`; else, or when the file system is
    /// read-only, nothing is made, as root as for anyone, and the answer
    /// is `None`: no writer can be at work there, since every writer
    /// refuses such a directory or file system before it takes the lock
    /// (and a reader sees a whole file anyway, the registry being
    /// replaced by rename).
    ///
    /// [`check_dir`]: Registry::check_dir
    fn open_lock_to_read(&self, path: &Path, may_write: bool) -> Result<Option<File>> {
        let needs = if may_write { 0o600 } else { 0o400 };
        let there = files::open_existing_lock(path, needs).map_err(|e| self.lock_error(path, e))?;
        if there.is_some() || !may_write {
            return Ok(there);
        }
        match files::open_lock(path) {
            Ok(file) => Ok(Some(file)),
            Err(OpenError::Io(e)) if e.raw_os_error() == Some(nix::libc::EROFS) => Ok(None),
            Err(e) => Err(self.lock_error(path, e)),
        }
    }

    /// A lock file of the state directory, exclusive, held until dropped:
    /// for other files kept beside the registry (the trust list).
    pub fn lock_sibling(&self, name: &str) -> Result<File> {
        self.ensure_dir()?;
        let path = self.dir().join(name);
        let file = self.open_lock(&path)?;
        self.wait_lock(&file, &path, true)?;
        Ok(file)
    }

    pub(super) fn open_lock(&self, path: &Path) -> Result<File> {
        files::open_lock(path).map_err(|e| self.lock_error(path, e))
    }

    fn lock_error(&self, path: &Path, e: OpenError) -> Error {
        // A directory, or a file the kernel keeps this user from opening
        // (not theirs, or a mode without the owner's rw), is refused as
        // root's checks refuse it: exit 2, and the way out.
        match e.at(path) {
            // The kernel refused a file the checks let through (root in a
            // directory of mode 755 under /sys, one made immutable): no
            // lock, no registry there, exit 2 as for a directory that is
            // not the user's, with the same way out.
            OpenError::Io(e)
                if matches!(e.raw_os_error(), Some(nix::libc::EACCES | nix::libc::EPERM)) =>
            {
                self.unusable(
                    format!(
                        "its lock file {} cannot be opened or made: {e}",
                        printable_path(path)
                    ),
                    super::checked::OWN_DIRECTORY_HINT,
                )
            }
            // A full disk or a read-only file system, said as such.
            OpenError::Io(e) => files::replace_error(
                format!("could not open lock file {}", printable_path(path)),
                e,
            ),
            // Ours, with its owner's bits taken: given back, it serves.
            OpenError::Refused(r @ files::Refusal::OwnerMode(_)) => self.unusable(
                format!("its lock file {}: {r}", printable_path(path)),
                format!("chmod 600 {}", crate::shell::quote_in_message(path)),
            ),
            OpenError::Refused(r) => self.unusable(
                format!("its lock file {}: {r}", printable_path(path)),
                files::planted_hint(path),
            ),
        }
    }

    /// Waits at most `lock_timeout` for the lock; never forever.
    pub(super) fn wait_lock(&self, file: &File, path: &Path, exclusive: bool) -> Result<()> {
        let mut waiting = crate::report::SlowWait::start();
        let mut pause = Duration::from_millis(2);
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(
                        format!("could not lock {}", printable_path(path)),
                        e,
                    ));
                }
            }
            if waiting.elapsed() >= self.lock_timeout {
                return Err(if path.file_name() == Some(LOCK_NAME.as_ref()) {
                    Error::RegistryBusy {
                        path: self.path.clone(),
                        waited: self.lock_timeout,
                    }
                } else {
                    Error::LockBusy {
                        path: path.to_path_buf(),
                        waited: self.lock_timeout,
                    }
                });
            }
            tracing::debug!(lock = %path.display(), "lock busy, waiting");
            waiting.tick(|| {
                format!(
                    "waiting for the lock {}, which another wtenv holds (at most {})",
                    printable_path(path),
                    crate::duration::said(self.lock_timeout)
                )
            });
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::samples::registry;

    #[test]
    fn lock_wait_is_bounded() {
        let (_d, mut reg) = registry();
        reg.lock_timeout = Duration::from_millis(100);
        let held = reg.lock(true).unwrap();
        let err = reg.read().unwrap_err();
        assert!(matches!(err, Error::RegistryBusy { .. }), "{err}");
        drop(held);
        reg.read().unwrap();
    }
}
