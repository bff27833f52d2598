//! What outlives its leader or its wtenv: a grandchild left by an exited
//! leader is swept, orphans are re-parented to wtenv and reaped, and the
//! hold of a SIGKILLed wtenv is kept while its orphans run and swept once
//! they are gone.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{
    PATIENCE, Wtenv, alive, app_port, assert_all_clean, assert_no_holds, group_survivors,
    recorded_pgid, server_script, start_tree, wait_pidfile,
};
use crate::support::{TestEnv, wait_for};
use wtenv::probe::{self, PortState};
use wtenv::process;

#[test]
fn a_grandchild_left_by_an_exited_leader_is_swept() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    // The leader's pid is the group's id; it exits as soon as the server
    // listens, so the server may be swept before the test could look.
    let leader = t.root().join("leader.pid");
    let tree = format!(
        "echo $$ > {}; python3 {} {} & while [ ! -s {} ]; do sleep 0.05; done; exit 0",
        leader.display(),
        script.display(),
        pidfile.display(),
        pidfile.display()
    );
    let mut w = Wtenv::start(&t, &["run", "--grace", "5s", "--", "sh", "-c", &tree]);
    let server = wait_pidfile(&pidfile, &w);
    let port = app_port(&t);
    let pgid: u32 = std::fs::read_to_string(&leader)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = w.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "the leader's code\n{}",
        w.stderr_text()
    );
    assert_all_clean(&t, pgid, server, port);
}

#[test]
fn a_sigkilled_wtenv_keeps_its_hold_while_its_orphans_run_and_validate_fix_stops_them() {
    let t = TestEnv::new();
    let (server, port, _survivor) = sigkilled_run(&t);
    // The next command does not sweep the dead hold: its group still
    // runs on the port (the orphans), and the hold is what names them.
    let out = crate::support::run(t.wtenv(&["run", "--", "true"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(0), "{out}");
    let out = crate::support::run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains("holder-dead") && out.stdout.contains(&format!("pid {server} (")),
        "names the survivor: {out}"
    );
    // --fix stops them, then releases the hold.
    let out = crate::support::run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(wait_for(PATIENCE, || !alive(server)), "{out}");
    assert_no_holds(&t);
    assert_eq!(probe::probe(port).unwrap(), PortState::Free);
}

/// wtenv SIGKILLed, and its orphans stopped by hand afterwards: the next
/// wtenv command, whatever it is, sweeps the dead hold by itself (no
/// `validate --fix`), and the port is given out again.
#[test]
fn a_sigkilled_wtenv_whose_orphans_are_gone_is_swept_by_the_next_command() {
    let t = TestEnv::new();
    let (server, port, survivor) = sigkilled_run(&t);
    // While its orphans run, the next command names the one on the port.
    let out = crate::support::run(&mut t.wtenv(&["ports"]));
    assert!(out.stdout.contains(&format!("pid {server} (")), "{out}");
    drop(survivor);
    assert!(wait_for(PATIENCE, || !alive(server)));
    // A view shows the holder gone and writes nothing: the hold is there
    // until a command that allocates sweeps it.
    let out = crate::support::run(&mut t.wtenv(&["ports"]));
    assert!(out.stdout.contains("gone"), "{out}");
    assert!(t.registry().to_string().contains("\"holders\""), "{out}");
    let out = crate::support::run(t.wtenv(&["run", "--", "true"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(0), "{out}");
    assert_no_holds(&t);
    assert!(t.allocations().is_empty(), "{}", t.registry());
    assert_eq!(probe::probe(port).unwrap(), PortState::Free);
}

/// `wtenv run` of a server tree, SIGKILLed once the server listens: the
/// server (alive: nobody could stop its group), its port, and its group,
/// ours to stop whatever the test does next.
fn sigkilled_run(t: &TestEnv) -> (u32, u16, KillGroupOnDrop) {
    let (mut w, pidfile) = start_tree(t, "10s", "");
    let server = wait_pidfile(&pidfile, &w);
    let port = app_port(t);
    let survivor = KillGroupOnDrop(recorded_pgid(t, port));
    w.signal(Signal::SIGKILL);
    w.wait();
    assert!(alive(server));
    (server, port, survivor)
}

/// SIGKILLs a process group when dropped (a tree no wtenv supervises).
struct KillGroupOnDrop(u32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.0 as i32), Signal::SIGKILL);
    }
}

#[test]
fn orphans_are_reparented_to_wtenv_and_reaped_while_the_leader_runs() {
    let t = TestEnv::new();
    let pidfile = t.root().join("orphan.pid");
    // The subshell exits at once, orphaning its `sleep 3`.
    let tree = format!(
        "(sleep 3 & echo $! > {}.tmp; mv {0}.tmp {0}); exec sleep 600",
        pidfile.display()
    );
    let mut w = Wtenv::start(&t, &["run", "--grace", "5s", "--", "sh", "-c", &tree]);
    let orphan = wait_pidfile(&pidfile, &w);
    assert!(
        wait_for(PATIENCE, || process::parent(orphan) == Some(w.pid())),
        "the orphan was not re-parented to wtenv (subreaper)"
    );
    // Reaped when it dies: no zombie left under /proc.
    assert!(
        wait_for(PATIENCE, || !Path::new(&format!("/proc/{orphan}")).exists()),
        "the orphan was left a zombie"
    );
    assert!(
        w.child.try_wait().unwrap().is_none(),
        "the leader still runs"
    );
    let pgid = recorded_pgid(&t, app_port(&t));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait().signal(), Some(Signal::SIGTERM as i32));
    assert!(group_survivors(pgid).is_empty());
    assert_no_holds(&t);
}
