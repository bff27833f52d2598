//! What `create` checks before it touches anything: the identifier
//! ([`crate::worktree::check_identifier`]), the base, the path (free, under `[worktrees] root`, every existing ancestor
//! resolved as git records it, the directories to make named with
//! nothing a message would escape).

use std::path::{Path, PathBuf};

use super::{HIDDEN, NOT_SHOWN};
use crate::error::{Error, Result};
use crate::process::{first_escaped, printable_path};
use crate::worktree::{Worktree, enclosing_git_dir, git_dir_at};

/// A base revision is passed to git after `--end-of-options`, but one that
/// looks like an option or holds control characters is refused outright:
/// it is a mistake, never a revision.
pub(super) fn check_base(base: &str) -> Result<()> {
    if base.is_empty()
        || base.len() > 256
        || base.starts_with('-')
        || base.chars().any(char::is_control)
    {
        return Err(Error::invalid(format!("invalid base revision {base:?}"))
            .with_hint("name a branch, tag or commit, e.g. --branch main"));
    }
    Ok(())
}

pub(super) fn check_path_free(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(
            Error::refused(format!("path {} already exists", printable_path(path)))
                .with_hint("choose another identifier or --path, or remove that directory"),
        );
    }
    Ok(())
}

/// `git worktree add` hangs on a FIFO planted among the repository's
/// worktree entries: refused before anything is made
/// ([`crate::worktree::refuse_planted_entries`]). What is planted after
/// this check is bounded by the signals ([`crate::git::Signals`]).
pub(super) fn check_admin_entries(common_dir: &Path) -> Result<()> {
    crate::worktree::refuse_planted_entries(
        common_dir,
        "create a worktree",
        "git worktree add",
        "nothing was made",
    )
}

/// The directories `create` makes, `first_new_dir` down to `path`, hold
/// no character a message would show escaped ([`first_escaped`]): a
/// worktree's name is shown in every message and table, and one holding
/// U+202E reads backwards there, one holding U+200B like its neighbour.
/// The directories that exist already are not wtenv's to name.
/// `given`: the path came from `--path`, else from `[worktrees] root`
/// (in `config`) and the main worktree's name.
pub(super) fn check_new_dirs(
    path: &Path,
    first_new_dir: &Path,
    given: bool,
    config: Option<&Path>,
) -> Result<()> {
    let made = first_new_dir
        .parent()
        .and_then(|existing| path.strip_prefix(existing).ok())
        .unwrap_or(path);
    let Some(shown) = first_escaped(&made.to_string_lossy()) else {
        return Ok(());
    };
    let hint = match (given, config) {
        (true, _) => format!("choose a --path whose new directories hold no {HIDDEN}"),
        (false, config) => format!(
            "the name comes from {}{} and the main worktree's directory name: set root to a directory without it, or choose one with --path",
            crate::config::syntax_of(config).key(&["worktrees"], "root"),
            config
                .map(|c| format!(" in {}", printable_path(c)))
                .unwrap_or_default()
        ),
    };
    Err(Error::invalid(format!(
        "cannot create {}: the directories it would make, {}, hold {shown}, {NOT_SHOWN}",
        printable_path(path),
        printable_path(made)
    ))
    .with_hint(hint))
}

/// Where `create` puts a new worktree by default: `[worktrees] root`
/// (`template`) with `{repo}` filled in, relative to the directory it is
/// placed beside, the one place that decides it:
///
/// - the main worktree, where wtenv knows it ([`Worktree::main_root`]:
///   `.git`'s parent, a submodule's `core.worktree`, a separate git dir's
///   worktree seen from itself); `{repo}` is its name: `/x/app` →
///   `/x/app.worktrees`, a submodule `super/sm` → `super/sm.worktrees`;
/// - else (a bare repository; a separate git dir seen from a linked
///   worktree) the repository: its git common dir, or in the `.bare`
///   layout (a hidden git dir that the `.git` file of the directory
///   holding it names) that directory; `{repo}` is its name without a
///   trailing `.git`: `/x/bare.git` → `/x/bare.worktrees`, `/x/proj/.bare`
///   → `/x/proj.worktrees`, `/x/sepgit` → `/x/sepgit.worktrees`.
pub fn default_root(template: &str, source: &Worktree) -> PathBuf {
    let name = |dir: &Path| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (base, repo) = match source.main_root() {
        Some(main) => {
            let repo = name(&main);
            (main, repo)
        }
        None => {
            let repository = bare_repository(&source.common_dir);
            let repo = name(&repository);
            let repo = repo.strip_suffix(".git").unwrap_or(&repo).to_owned();
            (repository, repo)
        }
    };
    // The config's reading refused any other placeholder
    // (`config::ROOT_PLACEHOLDERS`).
    base.join(template.replace("{repo}", &repo))
}

/// The directory that stands for the repository without a main worktree
/// whose git common dir is `common_dir`: that dir itself, but in the
/// `.bare` layout (`proj/.bare`, and `proj/.git` a file naming it), the
/// directory holding it.
fn bare_repository(common_dir: &Path) -> PathBuf {
    let hidden = common_dir
        .file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
    match common_dir.parent() {
        Some(outer) if hidden && git_dir_at(outer).as_deref() == Some(common_dir) => {
            outer.to_path_buf()
        }
        _ => common_dir.to_path_buf(),
    }
}

/// A new worktree's path inside a git dir (a repository's own files: a
/// bare one, `.git`, a submodule's under the superproject's) is refused:
/// git's files are no checkout's place. `given`: the path came from
/// `--path`, else from `[worktrees] root` (in `config`).
pub(super) fn check_outside_git_dirs(
    path: &Path,
    given: bool,
    config: Option<&Path>,
) -> Result<()> {
    let Some(git_dir) = enclosing_git_dir(path) else {
        return Ok(());
    };
    let hint = match given {
        true => "choose a --path outside it".to_owned(),
        false => format!(
            "set {}{} to a directory outside it, or choose one with --path",
            crate::config::syntax_of(config).key(&["worktrees"], "root"),
            config
                .map(|c| format!(" in {}", printable_path(c)))
                .unwrap_or_default()
        ),
    };
    Err(Error::invalid(format!(
        "cannot create {}: it is inside the git dir {}, which holds git's own files",
        printable_path(path),
        printable_path(&git_dir)
    ))
    .with_hint(hint))
}

/// `path` with its longest existing prefix canonicalized (what git records
/// as the worktree's path), and the topmost component that does not exist.
pub(super) fn resolve_existing_prefix(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut existing = path;
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        rest.push(existing.file_name().unwrap_or_default().to_owned());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let mut resolved = existing
        .canonicalize()
        .map_err(|e| Error::io(format!("could not resolve {}", printable_path(existing)), e))?;
    if !resolved.is_dir() {
        return Err(
            Error::refused(format!("{} is not a directory", printable_path(&resolved)))
                .with_hint(super::PLACE_HINT),
        );
    }
    let first_missing = rest.last().cloned().unwrap_or_default();
    let first_new_dir = resolved.join(first_missing);
    for part in rest.iter().rev() {
        resolved.push(part);
    }
    Ok((resolved, first_new_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare repository's `{repo}` is its name less a trailing `.git`
    /// only (a file stem took `my.app` for `my`), and the root is beside
    /// it.
    #[test]
    fn a_bare_repositorys_root_is_beside_it_named_without_dot_git() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, root) in [
            ("my.app.git", "my.app.worktrees"),
            ("plain", "plain.worktrees"),
        ] {
            let common = tmp.path().join(name);
            let source = Worktree {
                root: tmp.path().join("linked"),
                git_dir: common.join("worktrees/linked"),
                common_dir: common,
            };
            assert_eq!(
                crate::worktree::normalize(&default_root(crate::config::DEFAULT_ROOT, &source)),
                tmp.path().join(root)
            );
        }
    }

    #[test]
    fn bases() {
        assert!(check_base("main").is_ok() && check_base("HEAD~2").is_ok());
        for bad in ["", "-rf", "a\nb", &"a".repeat(300)] {
            assert!(check_base(bad).is_err(), "{bad:?}");
        }
    }
}
