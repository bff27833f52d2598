//! A worktree moved with `git worktree move` while its services run in
//! the background: they stay its own (found by its git dir, which the
//! move keeps), so `status`, `logs`, `up -d`, `down` and `remove --force`
//! in or of the moved worktree find and stop them; `validate --fix`
//! forgets a record only once its worktree is gone and its unit ended.
//! Two worktrees of one repository with the same directory name keep
//! their units apart the same way.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::{free, holders, listeners, printed_port, serves, signal, status_cells};
use crate::supervise::{PATIENCE, alive};
use crate::support::{TestEnv, run, wait_for};

/// One python3 http.server, `web`, committed, and a worktree of it.
fn worktree_with_web(t: &TestEnv, name: &str) -> PathBuf {
    t.write_config(
        r#"
[services.web]
run = "echo web says hello; exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    t.git(&["commit", "-q", "-am", "web"]);
    t.add_worktree(name)
}

/// `up -d --manager wtenv` in `wt`: the port it printed, and the pids of
/// the supervisor and of what listens on that port.
fn up_in(t: &TestEnv, wt: &Path) -> (u16, Vec<u32>) {
    let up = run(&mut t.wtenv_in(wt, &["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = printed_port(&up, "web");
    assert!(serves(port), "{up}");
    let supervisor = holders(t, "web")[0]["pid"].as_u64().unwrap() as u32;
    let mut pids = listeners(port);
    assert!(!pids.is_empty(), "nothing listens on {port}");
    pids.push(supervisor);
    (port, pids)
}

/// `down` in `dir` stops `web` (on `port`, its processes `pids`), frees
/// its port, and leaves no record and no hold.
fn down_stops_web(t: &TestEnv, dir: &Path, port: u16, pids: Vec<u32>) {
    let down = run(&mut t.wtenv_in(dir, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(down.stderr.contains("stopped web"), "{down}");
    assert!(free(port), "{down}");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived down: {down}");
    }
    assert!(records(t).is_empty(), "{down}");
    assert!(holders(t, "web").is_empty(), "{}", t.registry());
}

fn git_move(t: &TestEnv, from: &Path, to: &Path) {
    t.git(&[
        "worktree",
        "move",
        from.to_str().unwrap(),
        to.to_str().unwrap(),
    ]);
}

/// The records in the state directory's `background`.
fn records(t: &TestEnv) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(t.state_dir().join("background")) else {
        return vec![];
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// Runs `down` in each directory when dropped, then SIGTERMs what it
/// left of the pids `up_in` gave (a supervisor stops its service): nothing
/// of a test that failed half-way is left running on the machine.
struct DownIn<'a> {
    t: &'a TestEnv,
    dirs: Vec<PathBuf>,
    pids: Vec<u32>,
}

impl<'a> DownIn<'a> {
    fn new(t: &'a TestEnv, dirs: &[&Path]) -> DownIn<'a> {
        let dirs = dirs.iter().map(|d| d.to_path_buf()).collect();
        DownIn {
            t,
            dirs,
            pids: Vec::new(),
        }
    }
}

impl Drop for DownIn<'_> {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = self.t.wtenv_in(dir, &["down", "--timeout", "30s"]).output();
        }
        for &pid in self.pids.iter().filter(|&&p| alive(p)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
}

/// QA finding B: after the move, `status` and `down` said "nothing of
/// this worktree runs in the background" and the server ran on, found by
/// no command (its record named the path it left, its unit a name built
/// from that path).
#[test]
fn a_moved_worktrees_background_services_are_still_its_own_until_down() {
    let t = TestEnv::new();
    let wt = worktree_with_web(&t, "feature-bg");
    let moved = t.root().join("moved-bg");
    let mut guard = DownIn::new(&t, &[&wt, &moved]);
    let (port, pids) = up_in(&t, &wt);
    guard.pids.clone_from(&pids);
    git_move(&t, &wt, &moved);
    // Its ports follow it there (the registry's entries, by its stamp).
    assert_eq!(run(&mut t.wtenv_in(&moved, &["env"])).code, Some(0));
    let status = run(&mut t.wtenv_in(&moved, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    let cells = status_cells(&status, "web");
    assert_eq!(
        [1, 3, 5].map(|i| cells[i].as_str()),
        ["wtenv", "running", &*port.to_string()],
        "manager, state, port: {status}"
    );
    // The unit keeps the name it started with: `up -d` finds it running,
    // and starts no second one.
    let again = run(&mut t.wtenv_in(&moved, &["up", "-d", "--manager", "wtenv"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stdout.contains("(already running)"), "{again}");
    assert_eq!(records(&t).len(), 1, "{again}");
    let logs = run(&mut t.wtenv_in(&moved, &["logs", "web"]));
    assert_eq!(logs.code, Some(0), "{logs}");
    assert!(logs.stdout.contains("web | web says hello\n"), "{logs}");
    down_stops_web(&t, &moved, port, pids);
}

/// QA finding B: `remove --force` of the moved worktree warned "left
/// running" and released the port of a server that served on.
#[test]
fn remove_of_a_moved_worktree_refuses_on_its_background_services_and_force_stops_them() {
    let t = TestEnv::new();
    let wt = worktree_with_web(&t, "feature-rm");
    let moved = t.root().join("moved-rm");
    let mut guard = DownIn::new(&t, &[&wt, &moved]);
    let (port, pids) = up_in(&t, &wt);
    guard.pids.clone_from(&pids);
    git_move(&t, &wt, &moved);
    let path = moved.to_str().unwrap();
    let refused = run(&mut t.wtenv(&["remove", path]));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused
            .stderr
            .contains("has services running in the background"),
        "{refused}"
    );
    // (Listening: http.server answers 404 once its directory moved.)
    assert!(!free(port) && moved.is_dir(), "{refused}");
    let forced = run(&mut t.wtenv(&["remove", "--force", path]));
    assert_eq!(forced.code, Some(0), "{forced}");
    assert!(!forced.stderr.contains("left running"), "{forced}");
    assert!(free(port) && !moved.exists(), "{forced}");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived remove --force: {forced}");
    }
    assert!(records(&t).is_empty(), "{forced}");
}

/// `validate --fix` forgets the record of a unit that ended only once its
/// worktree is gone: not while the moved worktree exists (the record is
/// still its own: `status` shows it `inactive`), once it is deleted.
#[test]
fn validate_fix_forgets_an_ended_units_record_once_its_worktree_is_gone() {
    let t = TestEnv::new();
    let wt = worktree_with_web(&t, "feature-gone");
    let moved = t.root().join("moved-gone");
    let mut guard = DownIn::new(&t, &[&wt, &moved]);
    let (port, pids) = up_in(&t, &wt);
    guard.pids.clone_from(&pids);
    let supervisor = *pids.last().unwrap();
    git_move(&t, &wt, &moved);
    // Stopped from outside: the unit ended, its record stays.
    signal(supervisor, Signal::SIGTERM);
    assert!(wait_for(PATIENCE, || !alive(supervisor) && free(port)));
    assert_eq!(records(&t).len(), 1);
    let kept = run(&mut t.wtenv(&["validate", "--fix"]));
    assert!(!kept.stdout.contains("removed the record"), "{kept}");
    assert_eq!(records(&t).len(), 1, "{kept}");
    let status = run(&mut t.wtenv_in(&moved, &["status"]));
    assert_eq!(status_cells(&status, "web")[3], "inactive", "{status}");
    std::fs::remove_dir_all(&moved).unwrap();
    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert!(
        fixed
            .stdout
            .contains("removed the record of background service web (wtenv-repo_")
            && fixed.stdout.contains(&format!(
                "its worktree (started at {}) is gone",
                wt.display()
            )),
        "{fixed}"
    );
    assert!(records(&t).is_empty(), "{fixed}");
}

/// QA finding: after the move, `status` ran the service's `cmd` check in
/// the path the worktree left, so a healthy service read `unhealthy:
/// could not run sh: No such file or directory`. It runs in the worktree
/// where it is now, as every `cmd` line does.
#[test]
fn status_runs_a_moved_worktrees_cmd_check_where_it_is_now() {
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { cmd = 'test "$(pwd -P)" = "$WTENV_WORKTREE" && python3 -c "import socket; socket.create_connection((\"127.0.0.1\", $WEB_PORT))"' }
"#,
    );
    t.git(&["commit", "-q", "-am", "web"]);
    let wt = t.add_worktree("feature-cmd");
    let moved = t.root().join("moved-cmd");
    let mut guard = DownIn::new(&t, &[&wt, &moved]);
    let (_, pids) = up_in(&t, &wt);
    guard.pids.clone_from(&pids);
    let healthy = |dir: &Path| {
        let status = run(&mut t.wtenv_in(dir, &["status"]));
        assert_eq!(status.code, Some(0), "{status}");
        assert_eq!(status_cells(&status, "web")[6], "healthy", "{status}");
    };
    healthy(&wt);
    git_move(&t, &wt, &moved);
    healthy(&moved);
    assert_eq!(run(&mut t.wtenv_in(&moved, &["env"])).code, Some(0));
    healthy(&moved);
    let down = run(&mut t.wtenv_in(&moved, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
}

/// QA finding: two worktrees of one repository at `a/dup` and `b/dup` got
/// one unit name (its worktree part was the directory name alone): the
/// second `up -d` wrote over the first's record, `status` and `down` in
/// the first then said nothing ran while its server served on, and `logs`
/// mixed the two. The name's hash is of each worktree's own git dir now.
#[test]
fn two_worktrees_with_one_directory_name_keep_their_services_apart() {
    let t = TestEnv::new();
    let a = worktree_with_web(&t, "a/dup");
    let b = t.root().join("b/dup");
    t.git(&["worktree", "add", "-q", "-b", "b", b.to_str().unwrap()]);
    let mut guard = DownIn::new(&t, &[&a, &b]);
    let mut served = Vec::new();
    for wt in [&a, &b] {
        let up = run(&mut t.wtenv_in(wt, &["up", "-d", "--manager", "wtenv"]));
        assert_eq!(up.code, Some(0), "{up}");
        let port = printed_port(&up, "web");
        assert!(serves(port), "{up}");
        let mut pids = listeners(port);
        pids.extend(
            holders(&t, "web")
                .iter()
                .map(|h| h["pid"].as_u64().unwrap() as u32),
        );
        guard.pids.extend(pids.iter().copied());
        served.push((port, pids));
    }
    assert_eq!(records(&t).len(), 2);
    let ((port_a, pids_a), (port_b, _)) = (&served[0], &served[1]);
    assert_ne!(port_a, port_b);
    let logs = |wt: &Path| run(&mut t.wtenv_in(wt, &["logs", "web"])).stdout;
    for (wt, port, other) in [(&a, port_a, port_b), (&b, port_b, port_a)] {
        let status = run(&mut t.wtenv_in(wt, &["status"]));
        let cells = status_cells(&status, "web");
        assert_eq!(
            [3, 5].map(|i| cells[i].as_str()),
            ["running", &*port.to_string()],
            "{status}"
        );
        let serving = |p: &u16| format!("port {p} ");
        assert!(
            wait_for(PATIENCE, || logs(wt).contains(&serving(port))),
            "{}",
            logs(wt)
        );
        assert!(!logs(wt).contains(&serving(other)), "{}", logs(wt));
    }
    let down = run(&mut t.wtenv_in(&a, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(down.stderr.contains("stopped web"), "{down}");
    assert!(free(*port_a) && serves(*port_b), "{down}");
    for &pid in pids_a {
        assert!(!alive(pid), "{pid} survived down: {down}");
    }
    assert_eq!(records(&t).len(), 1, "{down}");
}

/// QA finding: after `mv` of the whole repository, `status` and `down` in
/// it said nothing ran in the background while its service served on,
/// and `remove --force` left the unit running: its record named the git
/// dir the repository had, gone. A unit is the worktree's where the
/// process it started works now (its working directory moved along).
/// QA finding too: that `down` then swept the whole registry, releasing
/// the reservations of the repository's worktrees that had yet to claim
/// theirs (and its own): it drops only its units' dead holds.
#[test]
fn a_repository_moved_whole_keeps_its_background_services() {
    let t = TestEnv::new();
    let sibling = worktree_with_web(&t, "sibling");
    assert_eq!(run(&mut t.wtenv_in(&sibling, &["env"])).code, Some(0));
    let to = t.root().join("elsewhere");
    std::fs::create_dir(&to).unwrap();
    let main = to.join("repo");
    let mut guard = DownIn::new(&t, &[&t.repo, &main]);
    let (port, pids) = up_in(&t, &t.repo);
    guard.pids.clone_from(&pids);
    std::fs::rename(&t.repo, &main).unwrap();

    let status = run(&mut t.wtenv_in(&main, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    let cells = status_cells(&status, "web");
    assert_eq!(
        [3, 5].map(|i| cells[i].as_str()),
        ["running", &*port.to_string()],
        "{status}"
    );
    down_stops_web(&t, &main, port, pids);
    // Every reservation kept, for its worktree to claim at its new path.
    assert_eq!(t.allocations().len(), 2, "{}", t.registry());
}
