//! Stopping a tree: Ctrl-C, SIGTERM, SIGHUP and SIGQUIT stop an
//! `npm start`-shaped tree and wtenv dies of the signal; a child ignoring
//! SIGTERM is killed after the grace, a second Ctrl-C kills at once (one
//! delivered twice at once does not); fifty start and stop cycles leak
//! nothing.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{
    PATIENCE, Wtenv, alive, app_port, assert_all_clean, assert_no_holds, recorded_pgid, start_tree,
    wait_pidfile,
};
use crate::support::{TestEnv, wait_for};
use wtenv::probe::{self, PortState};
use wtenv::process;

fn stop_tree_with(sig: Signal) {
    let t = TestEnv::new();
    let (mut w, pidfile) = start_tree(&t, "10s", "");
    let server = wait_pidfile(&pidfile, &w);
    let port = app_port(&t);
    assert_eq!(probe::probe(port).unwrap(), PortState::Occupied);
    let pgid = recorded_pgid(&t, port);
    assert_eq!(
        process::pgid(server),
        Some(pgid),
        "the recorded pgid is the server's group"
    );
    assert_ne!(
        pgid,
        process::pgid(w.pid()).unwrap(),
        "the child has its own group"
    );
    w.signal(sig);
    let status = w.wait();
    assert_eq!(
        status.signal(),
        Some(sig as i32),
        "wtenv dies of the signal: {status:?}\nstderr: {}",
        w.stderr_text()
    );
    assert_all_clean(&t, pgid, server, port);
}

#[test]
fn ctrl_c_stops_an_npm_start_tree_and_releases_its_port() {
    stop_tree_with(Signal::SIGINT);
}

#[test]
fn sigterm_stops_an_npm_start_tree_and_wtenv_dies_of_sigterm() {
    stop_tree_with(Signal::SIGTERM);
}

#[test]
fn sighup_stops_an_npm_start_tree_and_releases_its_port() {
    stop_tree_with(Signal::SIGHUP);
}

#[test]
fn sigquit_stops_an_npm_start_tree_and_releases_its_port() {
    stop_tree_with(Signal::SIGQUIT);
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
    let t = TestEnv::new();
    let (mut w, pidfile) = start_tree(&t, "1s", "trap \"\" TERM; ");
    let server = wait_pidfile(&pidfile, &w);
    let port = app_port(&t);
    let pgid = recorded_pgid(&t, port);
    let sent = Instant::now();
    w.signal(Signal::SIGTERM);
    let status = w.wait();
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "SIGKILL came before the grace"
    );
    assert_eq!(status.signal(), Some(libc_sigterm()), "{status:?}");
    assert_all_clean(&t, pgid, server, port);
}

fn libc_sigterm() -> i32 {
    Signal::SIGTERM as i32
}

#[test]
fn fifty_start_and_ctrl_c_cycles_leak_nothing() {
    let t = TestEnv::new();
    let port = app_port(&t);
    for i in 0..50 {
        let (mut w, pidfile) = start_tree(&t, "2s", "");
        let server = wait_pidfile(&pidfile, &w);
        let pgid = process::pgid(server).unwrap();
        w.signal(Signal::SIGINT);
        let status = w.wait();
        assert_eq!(
            status.signal(),
            Some(Signal::SIGINT as i32),
            "cycle {i}: {status:?}"
        );
        assert_all_clean(&t, pgid, server, port);
        std::fs::remove_file(&pidfile).unwrap();
    }
    assert!(t.allocations().is_empty());
}

#[test]
fn a_second_ctrl_c_kills_a_tree_that_ignores_sigint_at_once() {
    let t = TestEnv::new();
    // A grace far beyond PATIENCE: only the second Ctrl-C can end it in time.
    let (mut w, pidfile) = start_tree(&t, "600s", "trap \"\" INT; ");
    let server = wait_pidfile(&pidfile, &w);
    let port = app_port(&t);
    let pgid = recorded_pgid(&t, port);
    w.signal(Signal::SIGINT);
    // Absence window: the first Ctrl-C alone does not end an ignoring tree.
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(server), "SIGINT is ignored by the tree");
    w.signal(Signal::SIGINT);
    let status = w.wait();
    assert_eq!(status.signal(), Some(Signal::SIGINT as i32), "{status:?}");
    assert_all_clean(&t, pgid, server, port);
}

/// A child that handles SIGINT: says `got INT` for each, then, a second
/// after the first, how many it got, and exits 0.
const COUNTS_CTRL_C: &str = r#"
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda s, f: (got.append(s), print("got INT", flush=True)))
open(sys.argv[1], "w").close()
while not got:
    time.sleep(0.01)
time.sleep(1)
print("ints=%d" % len(got), flush=True)
"#;

/// `timeout 60 wtenv run -- ...` under a terminal: wtenv gets the
/// terminal's Ctrl-C and the copy `timeout` forwards, microseconds apart.
/// That is one Ctrl-C, forwarded once, not a second one that kills: the
/// second SIGINT is sent the moment the child shows the first arrived.
#[test]
fn a_ctrl_c_delivered_twice_at_once_is_one_ctrl_c() {
    let t = TestEnv::new();
    let ready = t.root().join("ready");
    let ready_arg = ready.to_str().unwrap();
    let mut w = Wtenv::start(
        &t,
        &["run", "--", "python3", "-c", COUNTS_CTRL_C, ready_arg],
    );
    assert!(
        wait_for(PATIENCE, || ready.exists()),
        "the child never started\nstderr: {}",
        w.stderr_text()
    );
    w.signal(Signal::SIGINT);
    let start = Instant::now();
    while !w.stdout_text().contains("got INT") && start.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    w.signal(Signal::SIGINT);
    let status = w.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\nstdout: {}\nstderr: {}",
        w.stdout_text(),
        w.stderr_text()
    );
    assert_eq!(w.stdout_text(), "got INT\nints=1\n");
    assert_no_holds(&t);
}
