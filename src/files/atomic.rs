//! Replacing a file atomically: a temp file of a fresh name, created
//! exclusively (0600, never through a link), fsync, rename, fsync of the
//! directory; and the removal of the temp files a killed writer left.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use super::keep_owner_bits;

/// What a crash right after [`replace_with`] returns may leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The new file: the directory is fsynced after the rename.
    Durable,
    /// The old file or the new one, whole: the file is fsynced before the
    /// rename (so a crash never shows an empty or torn file), but the
    /// rename is not waited for. For changes that may be lost in a crash
    /// because nothing outlives it to need them (the registry's holders,
    /// and the allocations that live while their holders do: a crash of
    /// the machine ends every process).
    OldOrNew,
    /// Nothing is fsynced: a write that fails still never leaves the file
    /// empty or torn (the temp file is renamed in only once written
    /// whole), but a crash of the machine may. For a file wtenv writes
    /// again from the registry (a worktree's stamp).
    Unsynced,
}

/// The error for a [`replace`] or [`replace_with`] that failed, with
/// `context` (what was being replaced), or for another step of a write
/// that fails before anything is changed (a lock file that cannot be
/// made or opened for writing). A full disk or a read-only file system
/// gets the hint that helps: nothing was changed (see [`replace_with`]),
/// so the command can simply be run again once the disk is mended.
pub fn replace_error(context: String, e: io::Error) -> crate::error::Error {
    let hint = write_failure(&e).map(|(what, mend)| match e.raw_os_error() {
        Some(libc::EROFS) => format!(
            "{what}: nothing was changed; {mend}, or set WTENV_STATE_DIR to a directory you can write"
        ),
        _ => format!("{what}: nothing was changed; {mend}, then run the command again"),
    });
    let err = crate::error::Error::io(context, e);
    match hint {
        Some(hint) => err.with_hint(hint),
        None => err,
    }
}

/// A write that failed for its file system, not for the file: what to
/// call it and what mends it (`its disk is full (or your quota used up)`,
/// `free some space`; a read-only file system). `None` for any other
/// error, whose own words say it.
pub fn write_failure(e: &io::Error) -> Option<(&'static str, &'static str)> {
    match e.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some((
            "its disk is full (or your quota used up)",
            "free some space",
        )),
        libc::EROFS => Some(("its file system is read-only", "remount it read-write")),
        _ => None,
    }
}

/// Replaces `dir/name` with `bytes`, atomically: a temp file of a fresh
/// name (created exclusively, 0600, never through a link), fsync, rename,
/// fsync of the directory. A crash leaves the old or the new file. Call it
/// under the lock that serializes writers of `name`.
///
/// An error means nothing was replaced: every step that can fail on what
/// the directory allows (opening it for the fsync needs read permission,
/// which creating and renaming do not) is taken before the rename. After
/// the rename the new file is what every reader sees; an fsync of the
/// directory that fails then cannot take it back, so it is a warning
/// (the change holds, a crash of the machine may undo it), not an error
/// that would tell the caller nothing changed.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), (String, PathBuf, io::Error)> {
    replace_with(
        dir,
        name,
        |f| f.write_all(bytes),
        |_| Ok(()),
        Commit::Durable,
    )
}

/// [`replace`] with the bytes `fill` writes to the temp file (the
/// registry copies most of them from the old file), running `finish` on
/// it before its fsync (the registry seals it there), durable as
/// `commit` says.
pub fn replace_with(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    finish: impl FnOnce(&File) -> io::Result<()>,
    commit: Commit,
) -> Result<(), (String, PathBuf, io::Error)> {
    clean_stale_temps(dir, name);
    let (tmp, mut file) = create_temp(dir, name).map_err(|(p, e)| ("create".into(), p, e))?;
    let done = (|| {
        fill(&mut file).map_err(|e| ("write", tmp.clone(), e))?;
        finish(&file).map_err(|e| ("finish", tmp.clone(), e))?;
        if commit != Commit::Unsynced {
            file.sync_all().map_err(|e| ("sync", tmp.clone(), e))?;
        }
        // The rename is durable only once the directory entry is: opened
        // now, so that a directory we cannot open fails the write before
        // it is made.
        let dir_file = match commit {
            Commit::Durable => Some(File::open(dir).map_err(|e| ("open", dir.to_path_buf(), e))?),
            Commit::OldOrNew | Commit::Unsynced => None,
        };
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| ("rename", tmp.clone(), e))?;
        Ok(dir_file)
    })();
    let dir_file = match done {
        Ok(dir_file) => dir_file,
        Err((what, path, e)) => {
            let _ = std::fs::remove_file(&tmp);
            return Err((what.into(), path, e));
        }
    };
    if let Some(Err(e)) = dir_file.map(|d| d.sync_all()) {
        crate::report::warn(&format!(
            "replaced {}, but could not sync its directory: {e}; the change holds, but a crash of the machine may undo it",
            crate::process::printable_path(&dir.join(name))
        ));
    }
    Ok(())
}

/// `<name>.tmp.<pid>.<nanos>`: the pid makes a leftover provably ours (see
/// [`clean_stale_temps`]).
fn temp_prefix(name: &str) -> String {
    format!("{name}.tmp.")
}

fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File), (PathBuf, io::Error)> {
    let pid = std::process::id();
    for attempt in 0u32..16 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!("{}{pid}.{nanos:x}{attempt}", temp_prefix(name)));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            // 0600 whatever the umask (see `keep_owner_bits`): the file
            // replaced by it is read, and its lock taken, by the next run.
            Ok(file) => {
                let kept = file
                    .metadata()
                    .and_then(|meta| keep_owner_bits(&file, &meta, 0o600));
                return match kept {
                    Ok(()) => Ok((tmp, file)),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        Err((tmp, e))
                    }
                };
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err((tmp, e)),
        }
    }
    let tmp = dir.join(format!("{}{pid}", temp_prefix(name)));
    Err((tmp, io::Error::from(ErrorKind::AlreadyExists)))
}

/// Removes temp files of `name` that a killed writer left: named
/// `<name>.tmp.<pid>.<...>` with `pid` no longer alive, a regular file of
/// ours (never a link, a FIFO, another user's file: those are left alone,
/// and never written through). Also the fixed `<name>.tmp` older wtenv
/// versions wrote, when it is a regular file of ours.
pub fn clean_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = temp_prefix(name);
    let legacy = format!("{name}.tmp");
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let stale = if file_name == legacy {
            true
        } else if let Some(rest) = file_name.strip_prefix(&prefix) {
            rest.split('.')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|pid| !pid_alive(pid))
        } else {
            false
        };
        // `symlink_metadata`: the entry itself, never what a link names;
        // asked only of a stale name (every write lists the directory).
        let ours = || {
            entry
                .path()
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_file() && m.uid() == uid)
        };
        if stale && ours() {
            tracing::debug!(file = %entry.path().display(), "removing a stale temp file");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}
