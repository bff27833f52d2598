//! Snapshots of the worktree commands: `create`, `enter`, `remove` (and
//! `list` between them), their main cases and their refusals.

use crate::snapshots::{check, snap, two_services};
use crate::support::HttpServer;
use crate::support::{TestEnv, run};

/// A repository whose committed config declares `web` and `api`, so new
/// worktrees have them too.
fn committed_two_services() -> TestEnv {
    let t = TestEnv::new();
    two_services(&t);
    t.git(&["commit", "-q", "-am", "two services"]);
    t
}

#[test]
fn create_makes_the_worktree_and_reserves_its_ports() {
    let t = committed_two_services();
    snap(
        &t,
        "create_with_ports_makes_the_worktree_and_reserves_its_ports",
        &mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "login",
            "--ports",
        ]),
    );
    snap(
        &t,
        "create_json_describes_the_new_worktree",
        &mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "signup",
            "--ports",
            "--json",
        ]),
    );
    snap(
        &t,
        "create_of_an_existing_path_is_refused",
        &mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "login"]),
    );
    snap(
        &t,
        "list_shows_the_created_worktrees",
        &mut t.wtenv(&["list"]),
    );
}

#[test]
fn create_refuses_bad_input_before_touching_anything() {
    let t = committed_two_services();
    snap(
        &t,
        "create_refuses_an_invalid_identifier",
        &mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "bad..id"]),
    );
    snap(
        &t,
        "create_refuses_an_unknown_base",
        &mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--branch",
            "no-such-base",
        ]),
    );
    snap(
        &t,
        "create_refuses_an_unknown_purpose",
        &mut t.wtenv(&["create", "--purpose", "nosuch", "--identifier", "x"]),
    );
    t.git(&["branch", "feature/taken"]);
    snap(
        &t,
        "create_refuses_an_existing_branch",
        &mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "taken"]),
    );
    let occupied = t.ports.port(0);
    let _squatter = HttpServer::start(&t.repo, occupied);
    snap(
        &t,
        "create_on_a_port_conflict_leaves_nothing_behind",
        &mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "y",
            "--ports",
        ]),
    );
    assert!(!t.root().join("repo.worktrees/feature-y").exists());
}

#[test]
fn enter_prints_the_path_creating_the_worktree_if_needed() {
    let t = committed_two_services();
    snap(
        &t,
        "enter_of_a_new_identifier_creates_it_with_ports",
        &mut t.wtenv(&["enter", "login"]),
    );
    snap(
        &t,
        "enter_of_an_existing_worktree_prints_its_path_only",
        &mut t.wtenv(&["enter", "login"]),
    );
    // After `--`: `enter -bad` is clap's unknown flag `-b`, refused
    // before wtenv ever sees an identifier.
    snap(
        &t,
        "enter_refuses_an_invalid_identifier",
        &mut t.wtenv(&["enter", "--", "-bad"]),
    );
}

#[test]
fn remove_releases_the_ports_and_refuses_what_it_must() {
    let t = committed_two_services();
    let created = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "login",
        "--ports",
    ]));
    assert_eq!(created.code, Some(0), "{created}");
    let wt = t.root().join("repo.worktrees/feature-login");
    snap(
        &t,
        "remove_of_an_unknown_worktree_is_refused",
        &mut t.wtenv(&["remove", "nosuch"]),
    );
    std::fs::write(wt.join("dirty.txt"), "x").unwrap();
    snap(
        &t,
        "remove_of_a_dirty_worktree_is_refused_as_git_does",
        &mut t.wtenv(&["remove", "login"]),
    );
    std::fs::remove_file(wt.join("dirty.txt")).unwrap();
    {
        let _server = HttpServer::start(&wt, t.ports.port(2));
        snap(
            &t,
            "remove_refuses_while_a_listener_runs_in_the_worktree",
            &mut t.wtenv(&["remove", "login"]),
        );
    }
    snap(
        &t,
        "remove_releases_the_ports_and_deletes_the_branch",
        &mut t.wtenv(&["remove", "login", "--delete-branch"]),
    );
}

#[test]
fn git_failures_are_shown_with_what_git_said() {
    let t = committed_two_services();
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\necho the hook refuses >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    snap(
        &t,
        "create_with_a_failing_post_checkout_hook_undoes_everything",
        &mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "hooked",
            "--ports",
        ]),
    );
    assert!(!t.root().join("repo.worktrees/feature-hooked").exists());
    assert!(t.allocations().is_empty());
    std::fs::remove_file(&hook).unwrap();
    let created = run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "work"]));
    assert_eq!(created.code, Some(0), "{created}");
    let wt = t.root().join("repo.worktrees/feature-work");
    std::fs::write(wt.join("new.txt"), "x").unwrap();
    t.git_in(&wt, &["add", "new.txt"]);
    t.git_in(&wt, &["commit", "-q", "-m", "unmerged work"]);
    check(
        &t,
        "remove_delete_branch_of_unmerged_work_keeps_the_branch_and_says_why",
        &run(&mut t.wtenv(&["remove", "work", "--delete-branch"])),
    );
    assert!(
        t.git(&["branch", "--list", "feature/work"])
            .contains("feature/work")
    );
    assert!(wt.is_dir(), "the worktree stays too");
}
