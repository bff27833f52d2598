//! Real dev servers in real terminals: Vite 8 through `npm run dev` (the
//! fixture app `scripts/fixtures` installs under target/fixtures/node)
//! under `wtenv run`, its signals and job control in tmux. `services`
//! holds `up`'s services beside it, Python servers and what children
//! inherit; the helpers here serve both.
//!
//! "Gone" here means gone from /proc, zombies included: a process whose
//! main thread is a zombie may still hold its listening socket while its
//! other threads exit (node does), so the port is checked for refusal
//! right after wtenv's exit is reaped, before anything else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

mod services;

use crate::supervise::{PATIENCE, Wtenv, alive, app_port, assert_no_holds};
use crate::support::{TestEnv, Tmux, wait_for};

/// The Vite fixture app (its `dev` script: `vite --port $PORT --strictPort`).
fn vite_app() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/node");
    assert!(
        dir.join("node_modules/.bin/vite").exists(),
        "the Vite fixture is missing: run scripts/fixtures"
    );
    dir
}

/// `npm run dev` of the fixture app, as a shell word list.
fn npm_run_dev() -> String {
    format!("npm run dev --prefix {}", vite_app().display())
}

/// Vite's own client module: served (200) by any running dev server.
const VITE_PATH: &str = "/@vite/client";

/// The HTTP status of `GET path` on localhost:`port` (either family), or
/// `None` when nothing answers within `wait`.
fn http_status(port: u16, path: &str, wait: Duration) -> Option<u16> {
    for addr in addrs(port) {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, wait) else {
            continue;
        };
        s.set_read_timeout(Some(wait)).unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        if s.write_all(request.as_bytes()).is_err() {
            continue;
        }
        let mut head = [0u8; 12];
        if s.read_exact(&mut head).is_ok() {
            return std::str::from_utf8(&head[9..12]).ok()?.parse().ok();
        }
    }
    None
}

fn addrs(port: u16) -> [SocketAddr; 2] {
    [
        ([127, 0, 0, 1], port).into(),
        (std::net::Ipv6Addr::LOCALHOST, port).into(),
    ]
}

/// Whether a connection to localhost:`port` is refused on both families.
fn refuses(port: u16) -> bool {
    addrs(port)
        .iter()
        .all(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_err())
}

/// A process as seen in /proc, zombies included: pid and start time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Proc {
    pid: u32,
    start: u64,
}

fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest.get(1)?.parse().ok()?, rest.get(19)?.parse().ok()?))
}

/// Every process below `root`, zombies included.
fn tree(root: u32) -> Vec<Proc> {
    let mut parents = std::collections::HashMap::new();
    for pid in wtenv::process::all_pids() {
        if let Some((ppid, start)) = stat(pid) {
            parents.insert(pid, (ppid, start));
        }
    }
    let mut out = Vec::new();
    for (&pid, &(_, start)) in &parents {
        let mut p = pid;
        for _ in 0..64 {
            match parents.get(&p) {
                Some(&(ppid, _)) if ppid == root => {
                    out.push(Proc { pid, start });
                    break;
                }
                Some(&(ppid, _)) if ppid > 1 => p = ppid,
                _ => break,
            }
        }
    }
    out
}

/// Those of `procs` still in /proc (same pid, same start), zombies too.
fn survivors(procs: &[Proc]) -> Vec<Proc> {
    procs
        .iter()
        .copied()
        .filter(|p| stat(p.pid).is_some_and(|(_, start)| start == p.start))
        .collect()
}

/// `wtenv run -- npm run dev` until Vite serves on the worktree's port;
/// returns the port and the processes of the tree then.
fn start_vite(t: &TestEnv) -> (Wtenv, u16, Vec<Proc>) {
    let app = vite_app();
    let app = app.to_str().unwrap();
    let w = Wtenv::start(t, &["run", "--", "npm", "run", "dev", "--prefix", app]);
    let port = app_port(t);
    assert!(
        wait_for(Duration::from_secs(60), || http_status(
            port,
            VITE_PATH,
            Duration::from_secs(2)
        ) == Some(200)),
        "Vite did not serve on $PORT {port}:\n{}",
        w.stderr_text()
    );
    let procs = tree(w.pid());
    assert!(
        procs.len() >= 3,
        "npm → sh → node expected under wtenv: {procs:?}"
    );
    (w, port, procs)
}

/// `runs` times: Vite under `wtenv run` gets `sig`; right after wtenv's
/// exit is reaped the port refuses connections, nothing of the tree is
/// left in /proc (zombies included), the registry holds nothing.
fn vite_stops_cleanly_on(sig: Signal, runs: usize) {
    let t = TestEnv::new();
    for run in 0..runs {
        let (mut w, port, procs) = start_vite(&t);
        w.signal(sig);
        let status = w.wait();
        // First, before anything else: the port.
        let refused = refuses(port);
        assert!(
            refused,
            "run {run}: port {port} still accepts right after wtenv exited"
        );
        assert_eq!(status.signal(), Some(sig as i32), "run {run}: {status:?}");
        let left = survivors(&procs);
        assert!(left.is_empty(), "run {run}: left behind: {left:?}");
        assert!(
            t.allocations().is_empty(),
            "run {run}: registry: {:?}",
            t.allocations()
        );
    }
}

/// SIGHUP is the signal that used to release the port while node's threads
/// still accepted: twenty runs.
#[test]
fn vite_under_run_frees_its_port_at_once_on_sighup_twenty_times() {
    vite_stops_cleanly_on(Signal::SIGHUP, 20);
}

#[test]
fn vite_under_run_frees_its_port_at_once_on_sigterm() {
    vite_stops_cleanly_on(Signal::SIGTERM, 5);
}

#[test]
fn vite_under_run_frees_its_port_at_once_on_sigint() {
    vite_stops_cleanly_on(Signal::SIGINT, 5);
}

/// Prints whether localhost:argv[1] still accepts a connection.
const PORT_CHECK: &str = r#"
import socket, sys
port = int(sys.argv[1])
up = []
for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    if socket.socket(family).connect_ex((addr, port)) == 0:
        up.append(addr)
print("port-accepts" if up else "port-refuses")
"#;

#[test]
fn ctrl_c_in_a_terminal_ends_vite_and_frees_its_port_at_once() {
    let t = TestEnv::new();
    let check = t.root().join("check.py");
    std::fs::write(&check, PORT_CHECK).unwrap();
    let tmux = Tmux::start_bash(&t);
    let port = app_port(&t);
    for run in 0..5 {
        // An interactive shell abandons the rest of a line after a Ctrl-C
        // death; `bash -c` checks the port as soon as wtenv is reaped.
        let line = format!(
            "bash -c '{} run -- {}; echo rc=$?; python3 {} {port}'",
            env!("CARGO_BIN_EXE_wtenv"),
            npm_run_dev(),
            check.display()
        );
        tmux.keys(&t, &[&line, "Enter"]);
        assert!(
            serves(port),
            "run {run}: Vite did not serve:\n{}",
            tmux.pane(&t)
        );
        tmux.keys(&t, &["C-c"]);
        expect_nth(&tmux, &t, "port-", run + 1, "the port check");
        let pane = tmux.pane(&t);
        assert_eq!(pane.matches("rc=130").count(), run + 1, "run {run}: {pane}");
        assert_eq!(
            pane.matches("port-refuses").count(),
            run + 1,
            "run {run}: {pane}"
        );
        assert!(t.allocations().is_empty(), "run {run}");
    }
}

/// Waits until the pane (with its history) shows `text` at least `n`
/// times; the pane on failure.
fn expect_nth(tmux: &Tmux, t: &TestEnv, text: &str, n: usize, what: &str) {
    assert!(
        wait_for(PATIENCE, || tmux.pane(t).matches(text).count() >= n),
        "{what}: {text:?} not shown {n} times:\n{}",
        tmux.pane(t)
    );
}

/// Waits until the pane shows `text` (once is enough).
fn expect(tmux: &Tmux, t: &TestEnv, text: &str, what: &str) {
    expect_nth(tmux, t, text, 1, what);
}

fn serves(port: u16) -> bool {
    wait_for(Duration::from_secs(60), || {
        http_status(port, VITE_PATH, Duration::from_secs(2)) == Some(200)
    })
}

/// Waits until the child of the `wtenv run` holding `port` has the
/// terminal (its group is the terminal's foreground group, as /proc shows
/// it to wtenv): `fg` has taken effect, so keys and Ctrl-C reach the child.
fn wait_child_has_terminal(t: &TestEnv, tmux: &Tmux, port: u16, what: &str) {
    let child_group = crate::supervise::recorded_pgid(t, port);
    let wtenv = wtenv_holding(t, port);
    let foreground = || stat_field(wtenv, 5)?.parse::<u32>().ok();
    assert!(
        wait_for(PATIENCE, || foreground() == Some(child_group)),
        "{what}: the child's group {child_group} never got the terminal (foreground: {:?}):\n{}",
        foreground(),
        tmux.pane(t)
    );
}

/// The pid of the `wtenv run` holding `port`.
fn wtenv_holding(t: &TestEnv, port: u16) -> u32 {
    t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["port"] == port)
        .and_then(|a| a["holders"][0]["pid"].as_u64())
        .expect("wtenv run holds its port") as u32
}

/// Field `i` after the command in `/proc/PID/stat`: state ppid pgrp
/// session tty_nr tpgid ...
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(i).map(str::to_owned)
}

#[test]
fn vite_started_in_the_background_follows_fg_ctrl_z_bg_and_ctrl_c() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let port = app_port(&t);
    // A grace far beyond PATIENCE: only a clean stop ends it in time.
    let line = format!(
        "{} run --grace 120s -- {} &",
        env!("CARGO_BIN_EXE_wtenv"),
        npm_run_dev()
    );
    tmux.keys(&t, &[&line, "Enter"]);
    assert!(serves(port), "{}", tmux.pane(&t));
    tmux.keys(&t, &["fg", "Enter"]);
    wait_child_has_terminal(&t, &tmux, port, "fg");
    // A line typed goes to Vite, which has the terminal: it reads it (its
    // `h` shortcut prints its help) and nothing stops.
    tmux.keys(&t, &["h", "Enter"]);
    expect(&tmux, &t, "Shortcuts", "Vite reading its terminal after fg");
    assert!(serves(port), "after fg and a key:\n{}", tmux.pane(&t));
    assert!(
        !tmux.pane(&t).contains("Stopped"),
        "the job stopped after fg:\n{}",
        tmux.pane(&t)
    );

    tmux.keys(&t, &["C-z"]);
    expect(&tmux, &t, "Stopped", "Ctrl-Z");
    // Stopped: the kernel still queues the connection, nobody answers.
    assert_eq!(
        http_status(port, VITE_PATH, Duration::from_secs(1)),
        None,
        "a stopped server answered"
    );
    tmux.keys(&t, &["fg", "Enter"]);
    assert!(serves(port), "after fg:\n{}", tmux.pane(&t));
    wait_child_has_terminal(&t, &tmux, port, "fg after Ctrl-Z");

    tmux.keys(&t, &["C-z"]);
    expect_nth(&tmux, &t, "Stopped", 2, "second Ctrl-Z");
    tmux.keys(&t, &["bg", "Enter"]);
    assert!(serves(port), "after bg:\n{}", tmux.pane(&t));
    tmux.keys(&t, &["echo shell-is-free", "Enter"]);
    expect(&tmux, &t, "\nshell-is-free", "the shell after bg");
    // A background job that reads its terminal gets SIGTTIN, its whole
    // group, and wtenv follows by stopping itself, as the kernel stops any
    // background job that reads its terminal. Those keys do not make Vite
    // read (node was seen sleeping, not stopped, however long the wait),
    // so the group gets the kernel's SIGTTIN from here. Type `fg` once
    // wtenv has stopped, as a person would: a `fg` in the instant between
    // the child's stop and wtenv's has bash take wtenv's stop for the
    // answer to that `fg` (the race of any job that stops itself).
    let wtenv = wtenv_holding(&t, port);
    let group = crate::supervise::recorded_pgid(&t, port);
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group as i32), Signal::SIGTTIN).unwrap();
    assert!(
        wait_for(PATIENCE, || stat_field(wtenv, 0).as_deref() == Some("T")),
        "wtenv did not stop with its child, stopped by SIGTTIN in the background:\n{}",
        tmux.pane(&t)
    );

    tmux.keys(&t, &["fg", "Enter"]);
    wait_child_has_terminal(&t, &tmux, port, "fg after bg");
    let start = Instant::now();
    tmux.keys(&t, &["C-c"]);
    // The next line is typed once wtenv (the job) is gone: typed sooner,
    // it goes to Vite, which still has the terminal and reads it.
    assert!(
        wait_for(PATIENCE, || !alive(wtenv)),
        "wtenv outlived Ctrl-C:\n{}",
        tmux.pane(&t)
    );
    tmux.expect_status(&t, 130);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "Ctrl-C waited for the grace"
    );
    assert!(refuses(port));
    assert_no_holds(&t);
}
