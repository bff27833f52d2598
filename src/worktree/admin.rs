//! The entries of a repository's `.git/worktrees/`, which git reads
//! whenever it lists, adds or removes worktrees: a file planted among
//! them that is no regular file (a FIFO) hangs git (README, "Hostile
//! files").

use std::path::Path;

use crate::error::{Error, Result};
use crate::files::{Removal, kind_of, removal};
use crate::process::printable_path;

/// The files of a `.git/worktrees/<name>` entry git reads on `git
/// worktree add`, `list` and `remove`: `gitdir`, `commondir` and `HEAD`
/// of every entry, `locked` of one it looks at closer.
const READ_BY_GIT: [&str; 4] = ["gitdir", "commondir", "HEAD", "locked"];

/// Refuses, before the git command `step` runs, a repository (its common
/// dir) where a file of [`READ_BY_GIT`] is there and is not a regular
/// file: a FIFO planted there hangs git (and `git worktree prune`, for a
/// `gitdir`), a device or a directory is no file git wrote. Looked at
/// only (`stat`, following a link as git does), never opened. `what`:
/// what the command could not do (`create a worktree`); `nothing`: what
/// it left as it was (`nothing was made`).
pub fn refuse_planted_entries(
    common_dir: &Path,
    what: &str,
    step: &str,
    nothing: &str,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        for name in READ_BY_GIT {
            let file = entry.path().join(name);
            let Ok(meta) = std::fs::metadata(&file) else {
                continue; // missing (or unreadable): git skips the entry
            };
            if meta.is_file() {
                continue;
            }
            let Removal { command, recursive } = removal(&file);
            let remove = match recursive {
                true => format!("see what it holds, then remove it ({command})"),
                false => format!("remove it ({command})"),
            };
            return Err(Error::refused(format!(
                "cannot {what}: {}, which git reads on '{step}', is {}, not a regular file; {nothing}",
                printable_path(&file),
                kind_of(&meta)
            ))
            .with_hint(format!(
                "git writes it as a small regular file, so something else put it there: {remove}; 'git worktree prune' then forgets the entry if its worktree is gone"
            )));
        }
    }
    Ok(())
}
