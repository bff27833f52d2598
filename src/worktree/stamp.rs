//! The stamp: one small file in a worktree's own git dir
//! (`wtenv.stamp`, one line `service=port,...`) that the registry
//! rewrites whenever the worktree's ports change. direnv watches it, and
//! it tells a worktree's entries from another's at the same path
//! (docs/ARCHITECTURE.md, "An entry follows the worktree's identity").

use std::path::Path;

use super::{STAMP_NAME, own_git_dir};
use crate::process::printable_path;

/// The stamp's content for a worktree's `ports`: one line,
/// `service=port,...`, sorted, whatever their order (what
/// [`stamped_ports`] reads back). A line, so never empty.
pub fn stamp_line<'a>(ports: impl IntoIterator<Item = (&'a str, u16)>) -> String {
    let sorted: std::collections::BTreeSet<(&str, u16)> = ports.into_iter().collect();
    let summary: Vec<String> = sorted
        .into_iter()
        .map(|(service, port)| format!("{service}={port}"))
        .collect();
    format!("{}\n", summary.join(","))
}

/// Rewrites the stamp of the worktree at `root` with `content` (a
/// [`stamp_line`] of its ports), so that direnv reloads it. The registry
/// calls this for every worktree whose ports a transaction changed,
/// whatever the command; `create --ports` once more when git is done, if
/// the stamp is not current ([`super::Worktree::stamp_unless_current`]).
/// Nothing happens for a worktree that is gone or not made yet.
///
/// direnv compares modification times in whole seconds: when the stamp
/// was already written within the current second, its time is moved one
/// second past the old one, so a second change in that second still
/// reloads.
///
/// The worktree may be a tree someone else made: the stamp is written only
/// into a git dir that is this worktree's own (see [`own_git_dir`]), never
/// through a link and only over a regular file of ours
/// ([`replace_own`]: a temp file renamed over it, so a write that fails
/// leaves the stamp as it was, never empty); otherwise it is skipped, and
/// direnv misses the reload: a warning says so, and how to remove what
/// is there instead.
///
/// [`replace_own`]: crate::files::replace_own
pub fn write_stamp(root: &Path, content: &str) {
    if let Some(git_dir) = own_git_dir(root) {
        write_stamp_in(&git_dir, content);
    }
}

/// [`write_stamp`] for the worktree at `root` of the repository whose
/// common dir is `repository`, also when its directory is gone while git
/// keeps its git dir (a worktree deleted with `rm -rf` or moved with
/// `mv`, listed as prunable): the stamp there is rewritten too, found by
/// its `gitdir` file ([`super::admin_dir_of`]). A stamp left listing
/// ports the registry has released would claim them for that worktree
/// once its directory is back (README, "Allocation").
pub fn write_stamp_of(root: &Path, repository: &Path, content: &str) {
    if let Some(git_dir) = own_git_dir(root) {
        write_stamp_in(&git_dir, content);
    } else if !root.exists()
        && let Some(git_dir) = super::admin_dir_of(repository, root)
    {
        write_stamp_in(&git_dir, content);
    }
}

/// Rewrites the stamp in `git_dir`, a worktree's own ([`write_stamp`]).
fn write_stamp_in(git_dir: &Path, content: &str) {
    let path = git_dir.join(STAMP_NAME);
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let old = std::fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .ok();
    let result = crate::files::replace_own(&path, content.as_bytes(), |file| {
        let Some(old) = old else { return Ok(()) };
        let now = file.metadata()?.modified()?;
        if secs(now) <= secs(old) {
            file.set_modified(old + std::time::Duration::from_secs(1))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        let message = format!(
            "did not write {}: {e}; direnv will not reload this worktree's environment when its ports change",
            printable_path(&path)
        );
        match e {
            crate::files::OpenError::Refused(_) => {
                crate::report::warn_hinted(&message, &crate::files::planted_hint(&path));
            }
            crate::files::OpenError::Io(_) => crate::report::warn(&message),
        }
    }
}

/// The ports the stamp in the own git dir of the worktree at `root` lists
/// (`service=port,...`, as [`write_stamp`] is given them): what the
/// registry last gave the worktree of that git dir. Empty when there is
/// no stamp, or no such git dir.
pub fn stamped_ports(root: &Path) -> Vec<(String, u16)> {
    match own_git_dir(root) {
        Some(git_dir) => stamped_in(&git_dir),
        None => Vec::new(),
    }
}

/// The ports the stamp in `git_dir` lists ([`stamped_ports`], for a git
/// dir already found: one read of the small file). Empty when there is
/// no stamp.
pub fn stamped_in(git_dir: &Path) -> Vec<(String, u16)> {
    let Ok(Some(bytes)) = crate::files::read_regular(&git_dir.join(STAMP_NAME), 64 * 1024) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .trim()
        .split(',')
        .filter_map(|pair| {
            let (service, port) = pair.rsplit_once('=')?;
            Some((service.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// The `(service, port)` pairs the stamps of every worktree of the
/// repository whose common dir is `common_dir` list: its own git dir's
/// (the main worktree's) and each linked worktree's (`worktrees/*`),
/// wherever git last saw their directories.
pub fn stamped_in_repository(common_dir: &Path) -> Vec<(String, u16)> {
    let mut out = stamped_in(common_dir);
    if let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) {
        for entry in entries.flatten() {
            out.extend(stamped_in(&entry.path()));
        }
    }
    out
}
