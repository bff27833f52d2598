//! Whether a directory is its repository's own worktree, as git's own
//! records say: one rule for the trust a repository's config gets there
//! ([`crate::trust::Gate::of`]) and for the stamp wtenv writes into its
//! git dir ([`super::write_stamp`]). A `.git` in a downloaded tree can
//! name any repository.

use std::path::{Path, PathBuf};

use super::repository::{core_worktree, is_bare, is_git_dir};
use super::{Worktree, git_dir_at, main_root_of, normalize, path_in, read_pointer};

/// Whether a directory is one of its repository's own worktrees
/// ([`Worktree::ownership`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The repository leads back to it.
    Own,
    /// Its `.git` names a repository that does not lead back to it.
    NotListed,
    /// Its `.git` file names a repository that records no worktree of its
    /// own (a separate git dir without `core.worktree`): the directory
    /// may be that repository's main worktree, or a copy naming it;
    /// nothing tells. Until `core.worktree` names it, it is not its own.
    Unrecorded { root: PathBuf },
}

impl Worktree {
    /// Whether the repository leads back to this worktree, as git's own
    /// records do ([`own_git_dir`]: its main worktree, a linked worktree it
    /// lists, a directory its `core.worktree` names). A `.git` in a
    /// downloaded tree can name any repository; trust recorded for that
    /// repository must not follow it ([`crate::trust::Gate::of`]).
    pub fn ownership(&self) -> Ownership {
        let own = own_git_dir(&self.root).is_some_and(|git_dir| {
            git_dir == self.common_dir
                || git_dir.parent() == Some(self.common_dir.join("worktrees").as_path())
        });
        if own {
            Ownership::Own
        } else if self.names_repository()
            && main_root_of(&self.common_dir).is_none()
            && core_worktree(&self.common_dir).is_none()
        {
            Ownership::Unrecorded {
                root: self.root.clone(),
            }
        } else {
            Ownership::NotListed
        }
    }

    /// Whether this worktree's `.git` is a file naming the repository
    /// itself, a git dir that is not bare: a separate git dir's
    /// (`git init --separate-git-dir`) main worktree, or any directory
    /// whose `.git` file names that repository, which git's records
    /// (without `core.worktree`) cannot tell apart.
    pub(super) fn names_repository(&self) -> bool {
        self.git_dir == self.common_dir
            && self.root.join(".git").is_file()
            && is_git_dir(&self.common_dir)
            && !is_bare(&self.common_dir)
    }
}

/// The private git dir of the worktree at `root`, only when it is really
/// that worktree's, as git's own records say:
/// - `root/.git` itself, a real directory (a main worktree);
/// - the linked worktree's dir under the repository, whose `gitdir` file
///   points back at `root/.git` (the check git makes);
/// - a repository (no `gitdir` file) whose `core.worktree` names `root`:
///   a submodule's checkout, or a separate git dir's main worktree once
///   recorded (git then takes that directory for the worktree, whatever
///   `.git` file names the repository).
///
/// A `.git` file in a downloaded tree can name any directory; wtenv writes
/// into none but the worktree's own, and trust follows these alone
/// ([`Worktree::ownership`]). A separate git dir without `core.worktree`
/// records no worktree: its main one and a copy naming it look the same.
pub(super) fn own_git_dir(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    let git_dir = git_dir_at(root)?;
    if git_dir == dot_git {
        // A `.git` link to a directory elsewhere is not the worktree's own.
        let real_dir = std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir());
        return real_dir.then_some(git_dir);
    }
    let names_root = match read_pointer(&git_dir.join("gitdir")).ok()? {
        Some(back) => {
            let back = normalize(&git_dir.join(path_in(&back)));
            back == normalize(&dot_git) || back.canonicalize().ok() == dot_git.canonicalize().ok()
        }
        None => core_worktree(&git_dir).is_some_and(|w| {
            let named = git_dir.join(w);
            normalize(&named) == root || named.canonicalize().ok().as_deref() == Some(root)
        }),
    };
    names_root.then_some(git_dir)
}
