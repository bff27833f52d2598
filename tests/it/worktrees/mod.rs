//! The worktree lifecycle through the real binary and real git: create
//! (all or nothing), enter, remove, list.
//!
//! A module per concept; this file holds the helpers several of them
//! share.

mod all_or_nothing;
mod create;
mod damaged;
mod discovery;
mod enter;
mod git_env;
mod layouts;
mod list;
mod moved;
mod moved_held;
mod moved_identity;
mod planted;
mod remove;
mod stopped;
mod validate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::{Run, TestEnv, run};

/// Everything `create` could leave behind, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// Every path under the test's root, outside `.git` dirs' objects.
    files: BTreeSet<PathBuf>,
    branches: String,
    admin_entries: BTreeSet<String>,
    allocations: Vec<(u16, String, PathBuf)>,
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // The registry's lock and the state dir change on any read.
        if p.ends_with("objects") || p.ends_with("logs") || p.ends_with("state") {
            continue;
        }
        out.insert(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
    }
}

fn snapshot_of(t: &TestEnv, repo: &Path) -> Snapshot {
    let mut files = BTreeSet::new();
    walk(&t.root(), &mut files);
    // index and ORIG_HEAD-like files may be rewritten in place; presence is
    // what matters, and `files` records presence.
    let admin_entries = std::fs::read_dir(repo.join(".git/worktrees"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Snapshot {
        files,
        branches: t.git_in(repo, &["for-each-ref", "--format=%(refname)", "refs/heads"]),
        admin_entries,
        allocations: t.allocations(),
    }
}

fn snapshot(t: &TestEnv) -> Snapshot {
    snapshot_of(t, &t.repo)
}

/// Where `create` puts `<purpose>-<id>` by default: beside the main
/// worktree, in `<repo>.worktrees`.
fn default_path(t: &TestEnv, purpose: &str, id: &str) -> PathBuf {
    t.root()
        .join("repo.worktrees")
        .join(format!("{purpose}-{id}"))
}

fn create(t: &TestEnv, id: &str, extra: &[&str]) -> Run {
    let mut args = vec!["create", "--purpose", "feature", "--identifier", id];
    args.extend_from_slice(extra);
    run(&mut t.wtenv(&args))
}

fn branch_exists(t: &TestEnv, name: &str) -> bool {
    !t.git(&["branch", "--list", name]).trim().is_empty()
}

fn listed_by_git(t: &TestEnv, path: &Path) -> bool {
    t.git(&["worktree", "list", "--porcelain"])
        .lines()
        .any(|l| l.strip_prefix("worktree ") == Some(path.to_str().unwrap()))
}

/// Nothing of the worktree `<feature>-<id>` exists: no directory, no
/// branch, no `.git/worktrees` entry pointing at it, no allocation.
fn assert_nothing_of(t: &TestEnv, id: &str, context: &str) {
    let path = default_path(t, "feature", id);
    assert!(!path.exists(), "{context}: {} left", path.display());
    assert!(
        !branch_exists(t, &format!("feature/{id}")),
        "{context}: branch left"
    );
    assert!(!listed_by_git(t, &path), "{context}: git still lists it");
    if let Ok(entries) = std::fs::read_dir(t.repo.join(".git/worktrees")) {
        for e in entries.flatten() {
            let gitdir = std::fs::read_to_string(e.path().join("gitdir")).unwrap_or_default();
            assert!(
                !gitdir.contains(&format!("feature-{id}/"))
                    && !e
                        .file_name()
                        .to_string_lossy()
                        .starts_with(&format!("feature-{id}")),
                "{context}: .git/worktrees entry {:?} left",
                e.file_name()
            );
        }
    }
    assert!(
        t.allocations().iter().all(|(_, _, w)| w != &path),
        "{context}: allocation left: {:?}",
        t.allocations()
    );
}
