//! What a repository's own files say, read without git: a key of its
//! `config` (`core.bare`, `core.worktree`), and whether a directory is a
//! git dir, for the error outside any worktree.

use std::path::{Path, PathBuf};

use super::{path_in, read_pointer};
use crate::error::Error;
use crate::process::printable_path;

/// The error for `start`, which is outside any git worktree. Inside a
/// repository's own directory with no `.git` above it (a bare
/// repository, or the git dir of one whose work tree is elsewhere),
/// it says so, and that a worktree of it is the place to run in.
pub(super) fn outside(start: &Path) -> Error {
    let Some(git_dir) = enclosing_git_dir(start) else {
        return Error::not_found(format!(
            "{} is not inside a git worktree",
            printable_path(start)
        ))
        .with_hint("cd into a git repository or one of its worktrees");
    };
    let bare = is_bare(&git_dir);
    let message = match (start.canonicalize().is_ok_and(|s| s == git_dir), bare) {
        (true, true) => format!("{} is a bare repository", printable_path(start)),
        (true, false) => format!("{} is a repository's git dir", printable_path(start)),
        (false, bare) => format!(
            "{} is inside the {} {}",
            printable_path(start),
            if bare { "bare repository" } else { "git dir" },
            printable_path(&git_dir)
        ),
    };
    let message = format!("{message}, not a git worktree");
    Error::not_found(message).with_hint(
        "cd into one of its worktrees ('git worktree list' shows them), or add one: git worktree add PATH",
    )
}

/// `core.worktree` of the git dir's `config`, as git writes it for a
/// submodule (`worktree = ../../../sub`): its bytes, UTF-8 or not.
pub(super) fn core_worktree(git_dir: &Path) -> Option<PathBuf> {
    config_value(git_dir, "core", "worktree").map(|value| path_in(&value))
}

/// Whether the repository at `git_dir` is bare (its `core.bare`).
pub(super) fn is_bare(git_dir: &Path) -> bool {
    config_value(git_dir, "core", "bare").as_deref() == Some(b"true".as_slice())
}

/// The value of `key` in `[section]` of the git dir's `config`, as git
/// writes the file (`\tkey = value`, names compared without case): the
/// first such line, its bytes as they are (a path need not be UTF-8).
/// Enough for the keys git itself writes there (`core.bare`,
/// `core.worktree`); no includes, no quoting.
pub(super) fn config_value(git_dir: &Path, section: &str, key: &str) -> Option<Vec<u8>> {
    let bytes = read_pointer(&git_dir.join("config")).ok()??;
    let mut current: &[u8] = &[];
    bytes.split(|&b| b == b'\n').find_map(|line| {
        let line = line.trim_ascii();
        if let Some(header) = line.strip_prefix(b"[") {
            current = header
                .split(|b| matches!(b, b']' | b' ' | b'"'))
                .next()
                .unwrap_or_default();
            return None;
        }
        let eq = line.iter().position(|&b| b == b'=')?;
        let (k, value) = (&line[..eq], &line[eq + 1..]);
        (current.eq_ignore_ascii_case(section.as_bytes())
            && k.trim_ascii().eq_ignore_ascii_case(key.as_bytes()))
        .then(|| value.trim_ascii().to_vec())
    })
}

/// The git dir `start` (which may not exist yet) is in or under, when
/// one holds it: what git itself takes for one, a directory with a `HEAD`
/// file and `objects` and `refs` directories. Outside any worktree, a
/// bare repository; for a new worktree's path, a place never to make it.
pub fn enclosing_git_dir(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    start
        .ancestors()
        .find(|dir| is_git_dir(dir))
        .map(Path::to_path_buf)
}

/// Whether `dir` is what git itself takes for a git dir: a `HEAD` file
/// and `objects` and `refs` directories.
pub(super) fn is_git_dir(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}
