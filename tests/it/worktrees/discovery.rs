//! Which worktree a directory is in: worktrees made by hand are first
//! class, and a `.git` the user may not look at is named, not walked past.

use std::path::{Path, PathBuf};

use crate::support::{TestEnv, run};

#[test]
fn worktrees_made_by_hand_are_first_class() {
    let t = TestEnv::new();
    let hand = t.add_worktree("hand");
    let env = run(&mut t.wtenv_in(&hand, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(
        env.stdout.contains("export WTENV_PURPOSE='feature'"),
        "default_purpose: {env}"
    );
    assert!(
        env.stdout
            .contains(&format!("export PORT='{}'", t.ports.start)),
        "{env}"
    );

    let entered = run(&mut t.wtenv(&["enter", "hand"]));
    assert_eq!(entered.code, Some(0), "{entered}");
    assert_eq!(entered.stdout.trim(), hand.to_str().unwrap());
    assert_eq!(t.allocations().len(), 1, "entering keeps its port");

    let list = run(&mut t.wtenv(&["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let entry = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == hand.to_str().unwrap())
        .expect("listed");
    assert_eq!(entry["purpose"], "feature");
    assert_eq!(entry["branch"], "hand");
    assert_eq!(entry["services"][0]["port"], t.ports.start);

    let rm = run(&mut t.wtenv(&["remove", "hand"]));
    assert_eq!(rm.code, Some(0), "{rm}");
    assert!(!hand.exists() && t.allocations().is_empty());
}

/// Makes `dir` root's, mode 0700: nobody may not search it.
fn shut_to_nobody(dir: &Path) {
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
}

/// `env` (and the prompt hook's) as nobody in each `(cwd, message, hint)`:
/// exit 1, the message and hint as given, nothing exported, and nothing
/// under the test's root (registry, state, trees) written.
fn assert_discovery_fails_as_nobody(t: &TestEnv, cases: &[(PathBuf, String, String)]) {
    let before = crate::support::snapshot(&t.root());
    for (cwd, message, hint) in cases {
        for args in [&["env"][..], &["env", "--hook"]] {
            let out = run(&mut t.wtenv_as_nobody_in(cwd, args));
            assert_eq!(out.code, Some(1), "{cwd:?} {args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: {message}\nhint: {hint}\n{}",
                    // The prompt hook's failures say how to load once fixed.
                    if args.contains(&"--hook") {
                        format!("hint: {}\n", wtenv::commands::env::RETRY_HINT)
                    } else {
                        String::new()
                    }
                ),
                "{cwd:?} {args:?}: {out}"
            );
            assert_eq!(out.stdout, "", "{cwd:?} {args:?}: {out}");
        }
    }
    assert_eq!(
        crate::support::snapshot(&t.root()),
        before,
        "written behind the failure"
    );
}

/// A user in a worktree whose directory they may not search (a shell left
/// there by `sudo -u`, or a `chmod` above it) could not look at its
/// `.git`: the walk took that for "no .git here" and went on up, to "not
/// inside a git worktree". So did a `.git` link into such a directory,
/// and a linked worktree whose repository is there. Each is now an
/// error naming what could not be read, with the directory to fix when
/// wtenv can tell it.
#[test]
fn a_dot_git_the_user_may_not_look_at_is_named_not_walked_past() {
    let t = TestEnv::new();
    let sub = t.repo.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let linked = t.add_worktree("linked");
    let by_link = t.root().join("by-link");
    std::fs::create_dir(&by_link).unwrap();
    std::os::unix::fs::symlink(t.repo.join(".git"), by_link.join(".git")).unwrap();
    t.give_to_nobody();
    shut_to_nobody(&t.repo);
    let denied = "Permission denied (os error 13)";
    let search_repo = format!(
        "you may not search {}: have its permissions fixed (x for you), or run wtenv from a directory you can read",
        t.repo.display()
    );
    assert_discovery_fails_as_nobody(
        &t,
        &[
            (
                t.repo.clone(),
                format!("could not read {}/.git: {denied}", t.repo.display()),
                search_repo.clone(),
            ),
            (
                sub.clone(),
                format!("could not read {}/.git: {denied}", sub.display()),
                search_repo,
            ),
            (
                by_link.clone(),
                format!("could not read {}/.git: {denied}", by_link.display()),
                "fix its permissions (or those of what it links to), or run wtenv from a directory you can read".into(),
            ),
            (
                linked.clone(),
                format!(
                    "could not resolve the git dir {}/.git names: {denied}",
                    linked.display()
                ),
                "you may not search a directory on the way to the one it names: have its permissions fixed, or run wtenv from a directory you can read".into(),
            ),
        ],
    );
}

/// A repository nested in another, which the user may not search: the
/// walk went past its `.git` to the outer repository's, and `env`
/// reserved and exported a port for the wrong worktree.
#[test]
fn a_nested_repository_the_user_may_not_search_is_not_taken_for_the_one_around_it() {
    let t = TestEnv::new();
    let inner = t.repo.join("inner");
    t.init_repo(&inner);
    let sub = inner.join("sub");
    std::fs::create_dir(&sub).unwrap();
    t.give_to_nobody();
    shut_to_nobody(&inner);
    let hint = format!(
        "you may not search {}: have its permissions fixed (x for you), or run wtenv from a directory you can read",
        inner.display()
    );
    assert_discovery_fails_as_nobody(
        &t,
        &[&inner, &sub].map(|cwd| {
            (
                cwd.clone(),
                format!(
                    "could not read {}/.git: Permission denied (os error 13)",
                    cwd.display()
                ),
                hint.clone(),
            )
        }),
    );
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
}

/// A `.git` file whose git dir is gone (the worktree pruned, or its
/// repository moved), or that names none, is an error, as it is to git:
/// the walk went on up and gave a worktree nested in another the outer
/// one's identity and ports, the EADDRINUSE wtenv is there to prevent.
#[test]
fn a_dot_git_file_naming_no_git_dir_is_an_error_not_the_repository_around_it() {
    let t = TestEnv::new();
    t.git(&["worktree", "add", "-q", "-b", "nest", "nested"]);
    let nested = t.repo.join("nested");
    let outer = run(&mut t.wtenv(&["env"]));
    assert_eq!(outer.code, Some(0), "{outer}");
    let inner = run(&mut t.wtenv_in(&nested, &["env"]));
    assert_eq!(inner.code, Some(0), "{inner}");
    let registry = std::fs::read(t.registry_path()).unwrap();
    let dot_git = nested.join(".git");

    std::fs::remove_dir_all(t.repo.join(".git/worktrees/nested")).unwrap();
    let out = run(&mut t.wtenv_in(&nested, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: {} names the git dir {}, which is not there\n",
            dot_git.display(),
            t.repo.join(".git/worktrees/nested").display()
        )) && out.stderr.contains("git worktree repair '"),
        "{out}"
    );
    for text in ["garbage\n", ""] {
        std::fs::write(&dot_git, text).unwrap();
        let out = run(&mut t.wtenv_in(&nested, &["env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: {} is not a git dir, nor a file naming one",
                dot_git.display()
            )),
            "{out}"
        );
    }
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
}
