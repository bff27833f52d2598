//! An `up -d` that waits for its worktree's lock while the worktree is
//! removed: it reserved its ports before it took the lock, so once it
//! found the worktree gone and refused, the gone worktree's ports stayed
//! reserved until a later sweep. Ordered by the worktree's lock, which
//! the test holds, never by sleeps.

use std::path::Path;
use std::time::Duration;

use super::races::{Spawned, worktree_lock};
use crate::support::{TestEnv, wait_for};

/// `up -d` in a worktree that never had ports: the test holds the
/// worktree's lock until the `up -d` says it waits for it, removes the
/// worktree (`git worktree remove`), then lets go. The `up -d` refuses
/// with the worktree-gone error and leaves no entry of that worktree in
/// the registry: it reserves only once it holds the lock and has found
/// the worktree there.
#[test]
fn up_detach_that_waited_while_its_worktree_was_removed_reserves_nothing() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-early");
    let wt_path = std::fs::canonicalize(&wt).unwrap();
    let of_it = |w: &Path| w.ends_with("feature-early");
    assert!(!t.allocations().iter().any(|(_, _, w)| of_it(w)));
    let lock = worktree_lock(&t, &t.repo.join(".git/worktrees/feature-early"));
    lock.lock().unwrap();
    let up = Spawned::of(
        &t,
        "up",
        t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv"]),
    );
    let waits = "wtenv: waiting for another wtenv in this worktree\n";
    let said = wait_for(Duration::from_secs(30), || up.stderr().contains(waits));
    assert!(said, "{}", up.stderr());
    t.git(&["worktree", "remove", "--force", wt.to_str().unwrap()]);
    assert!(!wt.exists());
    lock.unlock().unwrap();
    let up = up.finish();
    assert_eq!(up.code, Some(1), "{up}");
    assert_eq!(
        up.stderr,
        format!(
            "{waits}error: the current directory no longer exists: worktree {} was removed while this waited; nothing was started\n\
             hint: cd to a directory that exists\n",
            wt_path.display()
        ),
        "{up}"
    );
    let left = t.allocations();
    assert!(!left.iter().any(|(_, _, w)| of_it(w)), "{left:?}\n{up}");
}
