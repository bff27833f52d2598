//! The worktrees git lists for a repository, read from its files (the
//! main one, then `worktrees/*/gitdir`): each one's git dir, lock, and
//! whether one whose directory is missing is gone.

use std::path::{Path, PathBuf};

use super::{Worktree, core_worktree, git_dir_at, normalize, path_in, read_pointer};

/// The way out for a worktree git would prune (its directory is
/// missing), said where `list` and `validate` (run in its repository)
/// find one: git finds a moved one again with `git worktree repair`, a
/// prune first would forget it, git dir, stamp and all.
pub const MOVED_OR_DELETED: &str = "a worktree listed as prunable was moved or deleted: if moved, 'git worktree repair <its new path>' (run here) finds it again, before any prune; if deleted, 'git worktree prune' forgets it";

/// The main worktree of the repository whose git common dir is
/// `common_dir`, as the repository's own files name it: `/repo/.git` →
/// `/repo`; else the directory its `core.worktree` names (relative to
/// it, as git writes it for a submodule: `../../../sm`), when that
/// directory's `.git` leads back to `common_dir` (a config can name any
/// directory). `None` for a bare repository, and for a separate git dir
/// (`git init --separate-git-dir`), whose main worktree only that
/// worktree's own `.git` file names: [`Worktree::main_root`] knows it
/// when wtenv runs there.
pub fn main_root_of(common_dir: &Path) -> Option<PathBuf> {
    if common_dir.file_name()? == ".git" {
        return common_dir.parent().map(Path::to_path_buf);
    }
    let root = common_dir
        .join(core_worktree(common_dir)?)
        .canonicalize()
        .ok()?;
    (git_dir_at(&root).as_deref() == Some(common_dir)).then_some(root)
}

/// Every worktree git knows of in `common_dir`, read from its files (the
/// main one, then `worktrees/*/gitdir`), with its lock's reason when it is
/// locked (as [`crate::git::ListedWorktree::locked`]).
pub fn listed_worktrees(common_dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    listed_worktrees_with(common_dir, main_root_of(common_dir))
}

/// [`listed_worktrees`], the main worktree being `main` (as
/// [`Worktree::main_root`] finds it).
pub fn listed_worktrees_with(
    common_dir: &Path,
    main: Option<PathBuf>,
) -> Vec<(PathBuf, Option<String>)> {
    let main = main.map(|p| (p, None));
    let linked = linked_worktrees(common_dir)
        .into_iter()
        .map(|(root, admin_dir)| (root, lock_reason(&admin_dir)));
    main.into_iter().chain(linked).collect()
}

/// The git dir (`worktrees/<name>` in `common_dir`) of the linked
/// worktree at `root`, as its `gitdir` file names it; found whether the
/// directory `root` exists or not. Compared lexically, then (for a
/// directory that exists) by canonical path.
pub fn admin_dir_of(common_dir: &Path, root: &Path) -> Option<PathBuf> {
    let wanted = normalize(root);
    let canonical = root.canonicalize().ok();
    linked_worktrees(common_dir)
        .into_iter()
        .find(|(r, _)| {
            normalize(r) == wanted || (canonical.is_some() && r.canonicalize().ok() == canonical)
        })
        .map(|(_, admin_dir)| admin_dir)
}

/// The top level of the linked worktree whose git dir is `admin_dir`
/// (`worktrees/<name>` in `common_dir`), as its `gitdir` file names it;
/// `None` when `common_dir` lists no such worktree.
pub fn root_of_admin_dir(common_dir: &Path, admin_dir: &Path) -> Option<PathBuf> {
    linked_worktrees(common_dir)
        .into_iter()
        .find(|(_, a)| a == admin_dir)
        .map(|(root, _)| root)
}

/// Each linked worktree of `common_dir`: the top level its
/// `worktrees/<name>/gitdir` names, and that git dir.
fn linked_worktrees(common_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) {
        for entry in entries.flatten() {
            if let Ok(Some(bytes)) = read_pointer(&entry.path().join("gitdir")) {
                let dot_git = entry.path().join(path_in(&bytes));
                if let Some(root) = Path::new(&normalize(&dot_git)).parent() {
                    out.push((root.to_path_buf(), entry.path()));
                }
            }
        }
    }
    out
}

/// The reason in a `.git/worktrees/NAME/locked` file, trimmed as git trims
/// it; `None` without the file. Read as git's other small files are (a
/// FIFO or a huge file there must not hang or flood a message); one that
/// cannot be read is still a lock, without a reason.
fn lock_reason(admin_dir: &Path) -> Option<String> {
    match crate::files::read_regular(&admin_dir.join("locked"), 64 * 1024) {
        Ok(None) => None,
        Ok(Some(bytes)) => Some(String::from_utf8_lossy(bytes.trim_ascii()).into_owned()),
        Err(_) => Some(String::new()),
    }
}

/// A worktree is gone when its directory is missing and git no longer lists
/// it (allocation rule 4). An unlocked entry whose directory is missing is one
/// `git worktree prune` deletes, so git no longer counts it: gone. A locked
/// one (a worktree on an unmounted disk) is kept, as git keeps it. The main
/// worktree is never locked: it is gone with its directory.
pub fn is_gone(worktree: &Path, common_dir: &Path) -> bool {
    if worktree.exists() {
        return false;
    }
    !matches!(listing(worktree, common_dir), Some(Some(_)))
}

/// Whether the repository whose common dir is `common_dir` is gone: no
/// directory there (a stat). One that cannot be looked at is not proven
/// gone.
pub fn repository_gone(common_dir: &Path) -> bool {
    matches!(std::fs::metadata(common_dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Whether git still lists `worktree`, whose directory is missing: an
/// entry `git worktree prune` has not deleted yet (git lists it as
/// prunable), or a locked one. A gone worktree ([`is_gone`]) is either
/// the first or listed no more, and a message says which.
pub fn still_listed(worktree: &Path, common_dir: &Path) -> bool {
    listing(worktree, common_dir).is_some()
}

/// Git's entry for `worktree`, whose directory is missing, with its lock's
/// reason when it is locked; `None` when git lists no such worktree (nor
/// anything, its common dir gone). Compared lexically: there is nothing
/// to canonicalize.
fn listing(worktree: &Path, common_dir: &Path) -> Option<Option<String>> {
    if !common_dir.is_dir() {
        return None;
    }
    let wanted = normalize(worktree);
    listed_worktrees(common_dir)
        .into_iter()
        .find(|(p, _)| normalize(p) == wanted)
        .map(|(_, locked)| locked)
}

/// The repository whose own worktree the directory `worktree` is now, when
/// that is not `common_dir`: the directory's own `.git` resolves to
/// another common dir (a deleted worktree replaced by a clone, or its
/// `.git` replaced), read from git's files alone. An entry `common_dir`
/// recorded there is then gone: no command in that directory can reach
/// it again. `None` when that is not proven: the directory or its `.git`
/// missing (discovery would find a directory above), a `.git` that cannot
/// be read or resolved, or one that leads to `common_dir` itself.
pub fn now_of_another_repository(worktree: &Path, common_dir: &Path) -> Option<PathBuf> {
    let found = Worktree::discover(worktree).ok()??;
    (found.root == worktree && found.common_dir != common_dir).then_some(found.common_dir)
}

/// Whether `found` is the own worktree of another repository than
/// `common_dir`: its `.git` names another repository's git dir, and that
/// repository leads back to it ([`Worktree::ownership`]: `Own`, as git's
/// own records say). Such a directory is that repository's, whatever
/// `common_dir` lists: a repository copied with `cp -a` lists the
/// original's linked worktrees (their records were copied), and `git
/// worktree repair` run in the copy would take them from the original.
/// `false` when that is not proven.
pub fn is_of_another_repository(found: &Worktree, common_dir: &Path) -> bool {
    found.common_dir != common_dir && found.ownership() == super::Ownership::Own
}

impl Worktree {
    /// Where this worktree's entries may be recorded now, for a command
    /// that found it at `root` and runs on (`run`, `up`): `root` while its
    /// `.git` there still names this git dir; after `git worktree move`,
    /// `root` while nothing is there (entries not followed yet) and the
    /// path git names for this git dir now, which the move keeps (where
    /// `env`, `validate --fix` or a sweep make them follow it), however
    /// many moves were made since. A path another worktree is at now is
    /// not this one's: never listed. Unmoved, one read of its `.git`.
    pub fn roots_now(&self) -> Vec<PathBuf> {
        let there = git_dir_at(&self.root);
        if there.as_deref() == Some(self.git_dir.as_path()) {
            return vec![self.root.clone()];
        }
        let now = self.moved_root().filter(|root| *root != self.root);
        there
            .is_none()
            .then(|| self.root.clone())
            .into_iter()
            .chain(now)
            .collect()
    }

    /// The directory this worktree is at now: `root` unless `git worktree
    /// move` took it elsewhere since it was found (the path git names for
    /// its git dir: [`roots_now`](Self::roots_now)'s last). `root` too
    /// when git names none (a repository moved with `mv`, not repaired).
    pub fn root_now(&self) -> PathBuf {
        self.roots_now().pop().unwrap_or_else(|| self.root.clone())
    }

    /// The path git names for this (linked) worktree's git dir, canonical.
    fn moved_root(&self) -> Option<PathBuf> {
        root_of_admin_dir(&self.common_dir, &self.git_dir).and_then(|root| root.canonicalize().ok())
    }
}
