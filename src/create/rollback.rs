//! `create`'s all-or-nothing guard: what [`super::execute`] made, undone in
//! reverse on any error, panic or signal unless disarmed at the very end.
//! It undoes by looking at what exists (the directory, the
//! `.git/worktrees` entry pointing at it), so a git that failed half-way
//! leaves nothing either.

use std::path::{Path, PathBuf};

use super::Plan;
use crate::error::{Error, Result};
use crate::process::printable_path;
use crate::registry::Registry;
use crate::report;
use crate::worktree;

/// Undoes, in reverse, what [`super::execute`] made, unless disarmed.
pub(super) struct Rollback<'a> {
    plan: &'a Plan,
    /// The branch was made by this command.
    pub(super) branch_created: bool,
    registry: &'a Registry,
    pub(super) worktree_attempted: bool,
    /// The worktree's directory was made by this command (empty, for git).
    pub(super) dir_made: bool,
    /// `git worktree add` succeeded: the directory is ours.
    pub(super) worktree_added: bool,
    /// The canonical worktree path ports may have been reserved for.
    pub(super) allocated_for: Option<PathBuf>,
    pub(super) armed: bool,
    /// A step of the undo failed: something is left for the user.
    left_behind: std::cell::Cell<bool>,
}

impl<'a> Rollback<'a> {
    /// Armed, with nothing made yet.
    pub(super) fn new(plan: &'a Plan, registry: &'a Registry) -> Rollback<'a> {
        Rollback {
            plan,
            registry,
            branch_created: false,
            worktree_attempted: false,
            dir_made: false,
            worktree_added: false,
            allocated_for: None,
            armed: true,
            left_behind: std::cell::Cell::new(false),
        }
    }

    /// Undoes now, disarmed, so that the error the command ends with can
    /// say what was undone: `true` when nothing is left behind.
    pub(super) fn undo_now(&mut self) -> bool {
        self.armed = false;
        self.undo();
        !self.left_behind.get()
    }

    fn failed(&self, what: &str, err: impl std::fmt::Display) {
        self.left_behind.set(true);
        // Said even with -q: something was left behind.
        report::urgent(
            &format!("rollback could not {what}: {err}"),
            "remove it by hand",
        );
    }

    fn undo(&mut self) {
        let plan = self.plan;
        if !(self.branch_created || self.worktree_attempted || self.allocated_for.is_some()) {
            return; // nothing made yet
        }
        // A registry this process never changed holds nothing of it: a
        // reservation refused by a registry it cannot use left nothing to
        // release, and nothing to remove by hand.
        if let Some(root) = self.allocated_for.take()
            && self.registry.wrote()
            && let Err(e) = self
                .registry
                .release_worktree(crate::registry::Part::of(&plan.common_dir, &root), |_| {})
        {
            self.failed(
                &format!("release the ports of {}", printable_path(&root)),
                e,
            );
        }
        if self.worktree_attempted {
            // A complete worktree: git removes the directory and its entry.
            // Anything half-made: by hand, below. A directory git refused to
            // use (someone made it after the check) is never touched: only one
            // whose `.git` points into this repository's worktrees is ours.
            if plan.path.exists() {
                let _ = plan.git.worktree_remove(&plan.path, 2);
            }
            if plan.path.exists()
                && (self.worktree_added || made_by_git(&plan.path, &plan.common_dir))
                && let Err(e) = std::fs::remove_dir_all(&plan.path)
            {
                self.failed(&format!("remove {}", printable_path(&plan.path)), e);
            }
            remove_admin_entries(&plan.common_dir, &plan.path);
            // The directory if this command made it and it is still empty
            // (git failed before filling it), and the empty parents this
            // command made (e.g. `../repo.worktrees`); `remove_dir` leaves
            // a directory another worktree now uses.
            let mut dir = if self.dir_made {
                Some(plan.path.as_path())
            } else {
                plan.path.parent()
            };
            while let Some(d) = dir.filter(|d| d.starts_with(&plan.first_new_dir)) {
                match std::fs::remove_dir(d) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => break,
                    _ => dir = d.parent(),
                }
            }
        }
        if self.branch_created
            && let Err(e) = plan.git.delete_branch_ref(&plan.branch)
        {
            self.failed(&format!("delete branch {}", plan.branch), e);
        }
        tracing::info!(path = %plan.path.display(), "rolled back: nothing was kept");
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.undo();
        }
    }
}

/// Makes the worktree's directory, and its missing parents, for git to
/// fill in. The path was checked free under the repository lock.
pub(super) fn make_dir(path: &Path) -> Result<()> {
    let made = |dir: &Path, e| {
        Error::io(format!("could not create {}", printable_path(dir)), e)
            .with_hint(super::PLACE_HINT)
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| made(parent, e))?;
    }
    std::fs::create_dir(path).map_err(|e| made(path, e))
}

/// Whether `dir` is a worktree checkout git made for `common_dir`: its
/// `.git` file points into `<common_dir>/worktrees/`. Read as git's other
/// small files are ([`worktree::read_pointer`]): a FIFO planted there
/// must not hang the rollback, a huge file not fill the memory; either is
/// no file git made.
pub(super) fn made_by_git(dir: &Path, common_dir: &Path) -> bool {
    let Ok(Some(bytes)) = worktree::read_pointer(&dir.join(".git")) else {
        return false;
    };
    bytes
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| l.strip_prefix(b"gitdir:"))
        .is_some_and(|target| {
            worktree::normalize(&dir.join(worktree::path_in(target)))
                .starts_with(common_dir.join("worktrees"))
        })
}

/// Deletes the `.git/worktrees/<name>` entries that point at `path`, and
/// the one git was still initializing for it (no `gitdir` yet), then
/// `worktrees` itself if that left it empty. What `git worktree prune`
/// would do, limited to our own path.
fn remove_admin_entries(common_dir: &Path, path: &Path) {
    let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) else {
        return;
    };
    let dot_git = path.join(".git");
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for entry in entries.flatten() {
        let dir = entry.path();
        // Read as git's other small files are ([`worktree::read_pointer`]):
        // a `gitdir` or `locked` that is a FIFO, a directory or a huge file
        // was planted, not made by this command's git: its entry is left.
        let ours = match worktree::read_pointer(&dir.join("gitdir")) {
            Ok(Some(bytes)) => worktree::normalize(&dir.join(worktree::path_in(&bytes))) == dot_git,
            Ok(None) => {
                let name = entry.file_name().to_string_lossy().into_owned();
                let initializing = matches!(
                    worktree::read_pointer(&dir.join("locked")),
                    Ok(Some(bytes)) if bytes.trim_ascii() == b"initializing"
                );
                initializing
                    && name
                        .strip_prefix(&base)
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            }
            Err(_) => false,
        };
        if ours {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // Made by the `git worktree add` undone, when it was the first: git
    // deletes it once empty too (`git worktree prune`, `remove`).
    let _ = std::fs::remove_dir(common_dir.join("worktrees"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_removes_only_the_admin_entries_of_its_own_path() {
        let tmp = tempfile::tempdir().unwrap();
        let common = tmp.path().join("repo/.git");
        let entry = |name: &str, gitdir: Option<&str>, locked: Option<&str>| {
            let dir = common.join("worktrees").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(g) = gitdir {
                std::fs::write(dir.join("gitdir"), format!("{g}\n")).unwrap();
            }
            if let Some(l) = locked {
                std::fs::write(dir.join("locked"), l).unwrap();
            }
        };
        entry("feature-a", Some("/w/feature-a/.git"), None);
        entry("feature-a1", None, Some("initializing"));
        entry("feature-ab", None, Some("initializing"));
        entry("feature-b", Some("/w/feature-b/.git"), None);
        entry("feature-a2", None, Some("on a usb disk"));
        remove_admin_entries(&common, Path::new("/w/feature-a"));
        // The entries left, by name, sorted.
        let entries_left = || {
            let mut left: Vec<String> = std::fs::read_dir(common.join("worktrees"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            left
        };
        let left = entries_left();
        assert_eq!(left, ["feature-a2", "feature-ab", "feature-b"]);

        // Planted: a `gitdir` or `locked` that is a FIFO (read, it would
        // hang), a directory, or past the cap (read whole, it took 1.5 GB
        // for a sparse file) is no file git made: the entry is kept, even
        // with an `initializing` lock.
        let fifo = |path: &Path| {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
        };
        entry("feature-a3", None, None);
        fifo(&common.join("worktrees/feature-a3/gitdir"));
        entry("feature-a4", None, None);
        fifo(&common.join("worktrees/feature-a4/locked"));
        entry("feature-a5", None, Some("initializing"));
        std::fs::create_dir(common.join("worktrees/feature-a5/gitdir")).unwrap();
        let padded = format!("initializing{}", " ".repeat(64 * 1024));
        entry("feature-a6", None, Some(&padded));
        remove_admin_entries(&common, Path::new("/w/feature-a"));
        let left = entries_left();
        assert_eq!(
            left,
            [
                "feature-a2",
                "feature-a3",
                "feature-a4",
                "feature-a5",
                "feature-a6",
                "feature-ab",
                "feature-b"
            ]
        );

        let wt = tmp.path().join("wt");
        std::fs::create_dir_all(&wt).unwrap();
        assert!(!made_by_git(&wt, &common));
        std::fs::write(
            wt.join(".git"),
            format!("gitdir: {}\n", common.join("worktrees/feature-a").display()),
        )
        .unwrap();
        assert!(made_by_git(&wt, &common));
        std::fs::write(wt.join(".git"), "gitdir: /elsewhere/.git/worktrees/x\n").unwrap();
        assert!(!made_by_git(&wt, &common));
        std::fs::remove_file(wt.join(".git")).unwrap();
        fifo(&wt.join(".git"));
        assert!(!made_by_git(&wt, &common));
    }
}
