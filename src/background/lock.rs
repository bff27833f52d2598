//! The lock that serializes what starts or stops one worktree's
//! background services: `up --detach` (from its first look at the
//! running records until each unit it started is recorded ready, or
//! stopped), `down`, `remove` (from its look at what runs until it is
//! done: the worktree removed and its ports released, or the refusal),
//! and the foreground `up`'s look at what runs. Without it two `up -d` at
//! once each started a unit of the same name (the loser's cleanup then
//! removed the winner's record), an `up -d` during a slow `down` called
//! "already running" a service being stopped, a `remove --force` during
//! an `up -d` that had written no record yet saw nothing to stop, and an
//! `up` that waited for a `remove` went on in the removed worktree (it
//! now stops there: [`refuse_gone`]).
//!
//! An `flock` on `<state>/background/worktree-<hash>.lock`, `<hash>` the
//! FNV-1a of the worktree's canonical git dir (as unit names hash the
//! repository's path): the git dir stays when `git worktree move` moves
//! the worktree. Never deleted (as `registry.lock`: a deleted lock file
//! lets two processes lock two inodes). The holder writes its pid, its
//! start time and its command into the file, and empties it before it
//! unlocks, so a waiter can say whom it waits for. Taken before the
//! registry's lock, never while holding it: one order, no deadlock. A
//! waiter waits without a time limit (what it waits for is a start or a
//! stop, each bounded by its own timeout); a signal ends the wait.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StateDir;
use crate::error::{Error, Result};
use crate::files::{self, OpenError};
use crate::process::{ProcessId, printable, printable_path};
use crate::report;

/// This worktree's lock, held until dropped.
pub struct WorktreeLock {
    file: File,
}

/// What a waiter says when the holder did not name itself within this.
const UNNAMED_AFTER: Duration = Duration::from_secs(1);

impl WorktreeLock {
    /// The lock of the worktree whose git dir is `git_dir`, in `dir`,
    /// taken for `command` (`wtenv down`); waits as long as another holds
    /// it, saying once whom it waits for (`place`: `this worktree`, or
    /// the worktree named), and polls `interrupted`, whose `Err` ends the
    /// wait.
    pub fn acquire(
        dir: &StateDir,
        git_dir: &Path,
        command: &str,
        place: &str,
        interrupted: &dyn Fn() -> Result<()>,
    ) -> Result<WorktreeLock> {
        let path = lock_path(dir, git_dir);
        let file = files::open_lock(&path).map_err(|e| open_error(&path, e))?;
        let start = Instant::now();
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(
                        format!("could not lock {}", printable_path(&path)),
                        e,
                    ));
                }
            }
            if !said {
                let holder = holder(&file);
                if holder.is_some() || start.elapsed() >= UNNAMED_AFTER {
                    let who = holder.unwrap_or_else(|| "another wtenv".to_owned());
                    report::status(&format!("waiting for {who} in {place}"));
                    said = true;
                }
            }
            interrupted()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let me = ProcessId::of(std::process::id()).map_or(0, |p| p.start_time);
        let text = format!("{} {me}\n{command}\n", std::process::id());
        // Who holds it is for messages only: a failed write is no error.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all_at(text.as_bytes(), 0));
        Ok(WorktreeLock { file })
    }
}

impl WorktreeLock {
    /// Whether another process holds the lock of the worktree whose git
    /// dir is `git_dir`, in the background directory `dir`; never waits
    /// and never makes the file (`validate`, under the registry's lock).
    pub fn held(dir: &Path, git_dir: &Path) -> bool {
        let path = dir.join(lock_name(git_dir));
        let Ok(Some(file)) = files::open_existing_lock(&path, 0o400) else {
            return false;
        };
        let held = matches!(
            file.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        );
        let _ = file.unlock();
        held
    }
}

/// Refuses to go on in the worktree at `root` once its lock is held, if
/// it is gone: a `remove` of it, waited for, holds the lock until the
/// worktree is removed and its ports released. Fails as in a deleted
/// directory (exit 1), naming the worktree; nothing was started.
pub fn refuse_gone(root: &Path) -> Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    Err(crate::context::cwd_deleted(
        &format!(
            "worktree {} was removed while this waited; nothing was started",
            printable_path(root)
        ),
        None,
    ))
}

impl Drop for WorktreeLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// `<dir>/worktree-<hash>.lock`.
pub fn lock_path(dir: &StateDir, git_dir: &Path) -> PathBuf {
    dir.path().join(lock_name(git_dir))
}

/// `worktree-<hash>.lock`.
fn lock_name(git_dir: &Path) -> String {
    let git_dir = git_dir
        .canonicalize()
        .unwrap_or_else(|_| git_dir.to_path_buf());
    let hash = crate::hash::fnv1a(git_dir.as_os_str().as_encoded_bytes());
    format!("worktree-{hash:016x}.lock")
}

/// `'wtenv down' (pid 4242)`, from what the holder wrote, while that
/// process lives (same pid, same start time); `None` while it has not
/// written yet, or a killed holder's words are left.
fn holder(file: &File) -> Option<String> {
    let mut buf = [0u8; 4096];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let (id, command) = text.split_once('\n')?;
    let (pid, start) = id.split_once(' ')?;
    let process = ProcessId {
        pid: pid.parse().ok()?,
        start_time: start.parse().ok()?,
    };
    let command = command.trim_end_matches('\n');
    (process.is_alive() && !command.is_empty())
        .then(|| format!("'{}' (pid {})", printable(command), process.pid))
}

/// A lock file that cannot be used ([`super::state::unusable`]).
fn open_error(path: &Path, e: OpenError) -> Error {
    super::state::unusable("worktree lock", path, e)
}
