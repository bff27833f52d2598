//! `remove` of a worktree whose services run in the background: refused,
//! or stopped with `--force`, and nothing stopped for a locked worktree
//! or in a state directory its changes could not be written in.

use std::os::unix::fs::PermissionsExt;

use super::{DownOnDrop, free, printed_port, serves, two_http_services};
use crate::support::{TestEnv, run, snapshot};

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
    // Each unit it stops is said, in `down`'s words.
    assert!(
        forced.stderr.contains("wtenv: stopped web (wtenv-"),
        "{forced}"
    );
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

/// `down` in a state directory of mode 500 stopped the services, then
/// failed (exit 2) to remove their records and release their holds,
/// leaving both behind; `remove --force` stopped them as well. Both are
/// refused now before anything is stopped, as every command that changes
/// the state directory is: exit 2, the service serving on, its record and
/// the registry as they were. Mended, `down` stops it.
#[test]
fn down_and_remove_in_a_state_directory_of_mode_500_stop_nothing() {
    let t = TestEnv::new();
    two_http_services(&t);
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-500");
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = printed_port(&up, "web");
    let state = t.state_dir();
    let _mend = Mend { t: &t, wt: &wt };
    std::fs::set_permissions(&state, PermissionsExt::from_mode(0o500)).unwrap();
    // What wtenv keeps there, the services' logs aside (they log on).
    let kept = || {
        let mut files = snapshot(&state);
        files.retain(|(path, _)| path.extension().is_none_or(|e| e != "log"));
        files
    };
    let before = kept();
    assert!(
        before
            .iter()
            .any(|(p, _)| p.starts_with(state.join("background"))),
        "no record: the test proves nothing"
    );
    let path = wt.to_str().unwrap();
    for (dir, args) in [
        (&wt, &["down"][..]),
        (&t.repo, &["remove", "--force", path]),
    ] {
        let out = run(&mut t.wtenv_in(dir, args));
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(
            out.stderr
                .contains(&format!("its directory {} has mode 500: ", state.display())),
            "{args:?}: {out}"
        );
        assert!(serves(port), "{args:?} stopped it: {out}");
        assert!(wt.is_dir(), "{args:?} removed it: {out}");
        assert_eq!(kept(), before, "{args:?} changed the state directory");
    }
    std::fs::set_permissions(&state, PermissionsExt::from_mode(0o700)).unwrap();
    let down = run(&mut t.wtenv_in(&wt, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(port), "{down}");
}

/// Gives the state directory back its mode 700 and stops the worktree's
/// services, whatever the test came to: nothing is left running.
struct Mend<'a> {
    t: &'a TestEnv,
    wt: &'a std::path::Path,
}

impl Drop for Mend<'_> {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(self.t.state_dir(), PermissionsExt::from_mode(0o700));
        let _ = self
            .t
            .wtenv_in(self.wt, &["down", "--timeout", "30s"])
            .output();
    }
}

/// QA finding: `down` and `remove --force` with a damaged registry, or one
/// whose lock another process held past the wait, stopped the service
/// (SIGTERM, in its log), then exited 2 for the registry, its record
/// left as `inactive` and nothing said of the stop. Both are refused now
/// before anything is stopped: exit 2, the service serving on, the
/// registry's bytes as they were.
#[test]
fn down_and_remove_with_a_damaged_or_locked_registry_stop_nothing() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-damaged");
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = printed_port(&up, "web");
    let path = wt.to_str().unwrap();
    let refused = |said: &str| {
        let registry = std::fs::read(t.registry_path()).unwrap();
        for (dir, args) in [
            (&wt, &["down"][..]),
            (&t.repo, &["remove", "--force", path]),
        ] {
            let out = run(t.wtenv_in(dir, args).env("WTENV_LOCK_TIMEOUT", "1s"));
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert!(out.stderr.contains(said), "{args:?}: {out}");
            assert!(serves(port), "{args:?} stopped it: {out}");
            assert!(wt.is_dir(), "{args:?} removed it: {out}");
            assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
        }
    };
    let whole = std::fs::read(t.registry_path()).unwrap();
    std::fs::write(t.registry_path(), "{\"version\": 1, \"allocations\": [\n").unwrap();
    refused("it is not valid JSON");
    std::fs::write(t.registry_path(), &whole).unwrap();
    let lock = std::fs::File::open(t.state_dir().join("registry.lock")).unwrap();
    lock.lock().unwrap();
    refused("busy for 1s");
    lock.unlock().unwrap();
    let down = run(&mut t.wtenv_in(&wt, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(port), "{down}");
}
