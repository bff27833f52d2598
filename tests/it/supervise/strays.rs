//! The tree's strays: processes that a shell's job control (`set -m`) put
//! in groups of their own, in wtenv's session. A signal to the child's
//! group misses them; wtenv finds them below itself and stops them too,
//! when it is signalled and after the leader exits. A daemon that left
//! the session (`setsid`) is left alone.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{
    PATIENCE, Wtenv, alive, app_port, assert_no_holds, recorded_pgid, server_script, wait_pidfile,
};
use crate::support::{TestEnv, wait_for};
use wtenv::probe::{self, PortState};
use wtenv::process::{self, ProcessId};

/// SIGKILLs, when dropped, each process still alive that it was given (by
/// pid and start time: never a reused pid): a failed test leaks nothing.
pub struct KillOnDrop(pub Vec<ProcessId>);

impl KillOnDrop {
    pub fn add(&mut self, pid: u32) {
        self.0.extend(ProcessId::of(pid));
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_alive() {
                let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// The pid in `path` (written by the tree once it runs).
pub fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether `pid` is stopped (job control: state `T` in /proc).
pub fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|close| stat[close + 1..].split_whitespace().next())
        == Some("T")
}

/// What each test ends with: the processes are gone (by pid), the port is
/// free, no hold is left.
fn assert_gone(t: &TestEnv, pids: &[u32], port: u16) {
    for &pid in pids {
        assert!(!alive(pid), "pid {pid} survived");
    }
    assert_eq!(probe::probe(port).unwrap(), PortState::Free);
    assert_no_holds(t);
}

/// `bash -c 'set -m; server & ...; exit 0'`: the server is a job of its
/// own group; the leader exits at once. The server is swept, not left
/// listening on the worktree's port.
#[test]
fn a_job_in_its_own_group_is_swept_when_the_leader_exits() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    let groups = t.root().join("groups");
    let tree = format!(
        "set -m; python3 {} {} & while [ ! -s {} ]; do sleep 0.05; done; \
         echo $$ $(cut -d' ' -f5 /proc/$!/stat) > {}.tmp; mv {3}.tmp {3}; exit 0",
        script.display(),
        pidfile.display(),
        pidfile.display(),
        groups.display()
    );
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["run", "--grace", "5s", "--", "bash", "-c", &tree]);
    let server = wait_pidfile(&pidfile, &w);
    guard.add(server);
    let port = app_port(&t);
    let status = w.wait();
    assert_eq!(status.code(), Some(0), "{}", w.stderr_text());
    // The setup: the server was in a group of its own, not the leader's.
    let ids: Vec<u32> = std::fs::read_to_string(&groups)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1], "the server has its own group");
    assert_eq!(ids[1], server, "the server leads its group");
    assert_gone(&t, &[server], port);
}

/// SIGTERM to wtenv while `bash -c 'set -m; server & sleep 100'` runs:
/// the leader dies of it, and the two jobs (each in its own group) are
/// stopped too.
#[test]
fn sigterm_reaches_the_jobs_in_their_own_groups() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    let tree = format!(
        "set -m; python3 {} {} & sleep 100",
        script.display(),
        pidfile.display()
    );
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["run", "--grace", "10s", "--", "bash", "-c", &tree]);
    let server = wait_pidfile(&pidfile, &w);
    guard.add(server);
    let port = app_port(&t);
    let leader = recorded_pgid(&t, port);
    let sleep = || {
        process::all_pids().into_iter().find(|&p| {
            process::parent(p) == Some(leader)
                && process::command(p).as_deref() == Some("sleep 100")
        })
    };
    assert!(wait_for(PATIENCE, || sleep().is_some()), "no sleep 100");
    let sleep = sleep().unwrap();
    guard.add(sleep);
    assert_ne!(
        process::pgid(sleep),
        Some(leader),
        "sleep has its own group"
    );
    assert_ne!(process::pgid(server), Some(leader), "the server too");
    w.signal(Signal::SIGTERM);
    let status = w.wait();
    assert_eq!(
        status.signal(),
        Some(Signal::SIGTERM as i32),
        "{status:?}\n{}",
        w.stderr_text()
    );
    assert_gone(&t, &[server, sleep, leader], port);
}

/// A daemon (`setsid`: a session of its own) left on purpose is neither
/// signalled nor waited for, while a job beside it is swept.
#[test]
fn a_setsid_daemon_is_left_alone_while_a_job_is_swept() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    let daemon_file = t.root().join("daemon.pid");
    let tree = format!(
        "set -m; setsid sh -c 'echo $$ > {0}.tmp; mv {0}.tmp {0}; exec sleep 300' & \
         python3 {1} {2} & \
         while [ ! -s {0} ] || [ ! -s {2} ]; do sleep 0.05; done; exit 0",
        daemon_file.display(),
        script.display(),
        pidfile.display()
    );
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["run", "--grace", "5s", "--", "bash", "-c", &tree]);
    let server = wait_pidfile(&pidfile, &w);
    guard.add(server);
    assert!(wait_for(PATIENCE, || daemon_file.exists()));
    let daemon = read_pid(&daemon_file);
    guard.add(daemon);
    let port = app_port(&t);
    let status = w.wait();
    assert_eq!(status.code(), Some(0), "{}", w.stderr_text());
    assert_gone(&t, &[server], port);
    assert!(alive(daemon), "the daemon was left alone");
    assert_eq!(
        process::session(daemon),
        Some(daemon),
        "it leads a session of its own"
    );
}

/// Ctrl-Z under `up` (wtenv gets SIGTSTP: the services never have the
/// terminal) stops the services' groups, not the job a service's shell
/// put in a group of its own (as a terminal's Ctrl-Z leaves it running):
/// stopping it would end that shell's `wait`, and with it the service.
/// After `fg` (SIGCONT) the service still runs, and SIGINT ends all.
#[test]
fn a_stop_under_up_leaves_the_jobs_in_their_own_groups_and_the_service_runs_on() {
    let t = TestEnv::new();
    let file = t.root().join("job.pid");
    t.write_config(&format!(
        "[services.app]\nrun = \"bash -c 'set -m; sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait'\"\n",
        file.display()
    ));
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    assert!(wait_for(PATIENCE, || file.exists()), "{}", w.stderr_text());
    let job = read_pid(&file);
    guard.add(job);
    let shell = process::parent(job).unwrap();
    assert_ne!(
        process::pgid(job),
        process::pgid(shell),
        "the job has its own group"
    );
    w.signal(Signal::SIGTSTP);
    assert!(
        wait_for(PATIENCE, || is_stopped(w.pid())),
        "wtenv did not stop"
    );
    assert!(
        wait_for(PATIENCE, || is_stopped(shell)),
        "the service's group runs on"
    );
    assert!(
        alive(job) && !is_stopped(job),
        "the stop reached the job in its own group"
    );
    w.signal(Signal::SIGCONT);
    assert!(
        wait_for(PATIENCE, || !is_stopped(shell)),
        "SIGCONT did not continue the service"
    );
    assert!(alive(shell), "the service ended: {}", w.stderr_text());
    w.signal(Signal::SIGINT);
    let status = w.wait();
    assert_eq!(
        status.signal(),
        Some(Signal::SIGINT as i32),
        "{}",
        w.stderr_text()
    );
    assert!(!alive(job), "the job survived");
    assert_no_holds(&t);
}
