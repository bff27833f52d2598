//! `remove` of a worktree whose services run in the background: refused,
//! or stopped with `--force`, and nothing stopped for a locked worktree.

use super::{DownOnDrop, free, printed_port, serves, two_http_services};
use crate::support::{TestEnv, run};

#[test]
fn remove_refuses_while_a_detached_service_runs_and_force_stops_it() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-bg");
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port: u16 = up
        .stdout
        .split("port ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let refused = run(&mut t.wtenv(&["remove", wt.to_str().unwrap()]));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("in the background"), "{refused}");
    assert!(serves(port));
    let forced = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(forced.code, Some(0), "{forced}");
    assert!(free(port) && !wt.exists());
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
}

/// Git refuses a locked worktree even with --force: `remove --force`
/// stopped its background services first and then failed. The lock is
/// said before anything is stopped now.
#[test]
fn remove_force_of_a_locked_worktree_stops_nothing() {
    let t = TestEnv::new();
    two_http_services(&t);
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-locked");
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = printed_port(&up, "web");
    t.git(&["worktree", "lock", wt.to_str().unwrap()]);
    let registry = std::fs::read(t.registry_path()).unwrap();
    let refused = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("is locked; nothing was removed"),
        "{refused}"
    );
    assert!(serves(port) && wt.is_dir(), "{refused}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
    t.git(&["worktree", "unlock", wt.to_str().unwrap()]);
    let forced = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(forced.code, Some(0), "{forced}");
    assert!(free(port) && !wt.exists());
}
