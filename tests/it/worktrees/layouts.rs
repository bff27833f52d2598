//! Repositories whose git dir is not a `.git` directory in a main
//! worktree: bare ones (`bare.git`, the `.bare` layout), submodules, a
//! separate git dir.

use std::path::{Path, PathBuf};

use crate::support::{TestEnv, run};

/// A bare clone of the test's repository at `<root>/<name>`.
fn bare_clone(t: &TestEnv, name: &str) -> PathBuf {
    let bare = t.root().join(name);
    t.git_in(
        &t.root(),
        &["clone", "-q", "--bare", t.repo.to_str().unwrap(), name],
    );
    bare
}

/// In a bare repository (or a directory inside it) `env`, `list` and
/// `create` said "... is not inside a git worktree" with the hint "cd into
/// a git repository or one of its worktrees": the user was in one. They
/// now say it is a bare repository, and how to get a worktree of it.
#[test]
fn a_bare_repository_is_named_as_one_with_the_way_to_a_worktree() {
    let t = TestEnv::new();
    let bare = bare_clone(&t, "bare.git");
    let hint = "hint: cd into one of its worktrees ('git worktree list' shows them), or add one: git worktree add PATH\n";
    let cases: [(&Path, String); 2] = [
        (
            &bare,
            format!(
                "error: {} is a bare repository, not a git worktree\n",
                bare.display()
            ),
        ),
        (
            &bare.join("refs"),
            format!(
                "error: {} is inside the bare repository {}, not a git worktree\n",
                bare.join("refs").display(),
                bare.display()
            ),
        ),
    ];
    let before = crate::support::snapshot(&t.root());
    for (dir, error) in &cases {
        for args in [
            &["env"][..],
            &["list"],
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "b1",
                "--ports",
            ],
        ] {
            let out = run(&mut t.wtenv_in(dir, args));
            assert_eq!(out.code, Some(1), "{args:?} in {dir:?}: {out}");
            assert_eq!(out.stderr, format!("{error}{hint}"), "{args:?} in {dir:?}");
            assert_eq!(out.stdout, "", "{args:?} in {dir:?}");
        }
    }
    assert_eq!(crate::support::snapshot(&t.root()), before, "written");
}
