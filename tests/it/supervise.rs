//! `wtenv run` with real process trees and real signals (npm-shaped
//! trees, Ctrl-C, SIGTERM, SIGHUP, a child ignoring SIGTERM, a leader exiting
//! first, exit codes, a real terminal): after every stop, no process of the child's group is left
//! (read from /proc), the port is free (probe), the registry holds no hold.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use serde_json::Value;

use crate::support::{TestEnv, Tmux, wait_for};
use wtenv::probe::{self, PortState};
use wtenv::process::{self, ProcessId};

/// A listener on `$PORT` (or argv[2]) that writes its pid to argv[1] once it
/// listens: the "grandchild server" of an `npm start` tree.
const SERVER: &str = r#"
import os, socket, sys, time
port = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ["PORT"])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(8)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"#;

/// Long enough for anything on a loaded 2-core machine; presence only.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Writes the server script into the test's directory; returns its path.
pub fn server_script(t: &TestEnv) -> PathBuf {
    let path = t.root().join("server.py");
    std::fs::write(&path, SERVER).unwrap();
    path
}

/// A started wtenv (`run` or `up`) with stdin from /dev/null and its
/// output in files (a survivor holding a pipe must not hang the test).
pub struct Wtenv {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Wtenv {
    pub fn start(t: &TestEnv, args: &[&str]) -> Wtenv {
        Wtenv::start_in(t, &t.repo, args)
    }

    /// Like [`start`](Self::start), in `dir`.
    pub fn start_in(t: &TestEnv, dir: &Path, args: &[&str]) -> Wtenv {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let stdout = t.root().join(format!("out-{n}"));
        let stderr = t.root().join(format!("err-{n}"));
        let child = t
            .wtenv_in(dir, args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Wtenv {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Waits for the exit (generous bound: a hang is a failure, not a
    /// slow machine).
    pub fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("wtenv did not exit\nstderr: {}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Wtenv {
    /// A failed test must not leak its tree: SIGKILL would leave wtenv's
    /// children running, so ask wtenv to stop them first (two Ctrl-C: the
    /// second kills at once), and only then SIGKILL it.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = Pid::from_raw(self.pid() as i32);
        let _ = kill(pid, Signal::SIGINT);
        std::thread::sleep(Duration::from_millis(50));
        let _ = kill(pid, Signal::SIGINT);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid written by the server once it listens.
pub fn wait_pidfile(path: &Path, w: &Wtenv) -> u32 {
    assert!(
        wait_for(PATIENCE, || path.exists()),
        "the server never listened\nstderr: {}",
        w.stderr_text()
    );
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

pub fn alive(pid: u32) -> bool {
    ProcessId::of(pid).is_some()
}

/// Live (non-zombie) members of a process group, from /proc.
pub fn group_survivors(pgid: u32) -> Vec<u32> {
    process::group_members(pgid)
        .into_iter()
        .filter(|&p| alive(p))
        .collect()
}

/// The pgid recorded on the (single) hold of `port`, once recorded (wtenv
/// writes it after the child has run for a moment).
pub fn recorded_pgid(t: &TestEnv, port: u16) -> u32 {
    let read = || {
        t.registry()["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["port"] == port)
            .and_then(|a| a["holders"][0]["pgid"].as_u64())
    };
    assert!(
        wait_for(PATIENCE, || read().is_some()),
        "no pgid recorded for port {port}: {}",
        t.registry()
    );
    read().unwrap() as u32
}

/// What every test ends with: nothing of the group lives, the server is
/// gone, the port is free, no allocation carries a hold.
pub fn assert_all_clean(t: &TestEnv, pgid: u32, server: u32, port: u16) {
    assert_eq!(
        group_survivors(pgid),
        Vec::<u32>::new(),
        "group {pgid} survived"
    );
    assert!(!alive(server), "server pid {server} survived");
    if probe::probe(port).unwrap() == PortState::Occupied {
        // Who: a process of the tree, or another test's (a suite run
        // once saw this with the server gone).
        let holders = probe::holders(&[port].into());
        let who: Vec<String> = holders.values().flatten().map(|h| h.describe()).collect();
        panic!("port {port} still busy, held by: {who:?} (empty: holder unknown)");
    }
    assert_no_holds(t);
}

pub fn assert_no_holds(t: &TestEnv) {
    let reg = t.registry();
    for a in reg["allocations"].as_array().unwrap() {
        assert!(a.get("holders").is_none(), "a hold is left: {reg}");
    }
}

/// `wtenv run` of an `npm start`-shaped tree: sh → sh → python server.
fn start_tree(t: &TestEnv, grace: &str, inner: &str) -> (Wtenv, PathBuf) {
    let script = server_script(t);
    let pidfile = t.root().join("server.pid");
    let tree = format!(
        "sh -c '{inner}python3 {} {}'; echo leader-after-child",
        script.display(),
        pidfile.display()
    );
    let w = Wtenv::start(t, &["run", "--grace", grace, "--", "sh", "-c", &tree]);
    (w, pidfile)
}

/// The port `run` gave the worktree's one service.
pub fn app_port(t: &TestEnv) -> u16 {
    t.ports.port(0)
}

/// `env`, as every integration runs it on entering: the worktree's one
/// service's port reserved. Returns it.
pub fn reserve_app(t: &TestEnv) -> u16 {
    let out = crate::support::run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    app_port(t)
}

/// `wtenv run -- sh -c SCRIPT`, stdin closed; it must succeed.
fn run_sh(t: &TestEnv, script: &str) -> crate::support::Run {
    let out = crate::support::run(
        t.wtenv(&["run", "--", "sh", "-c", script])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(0), "{out}");
    out
}

/// A shell loop that waits (10 s at most) until the registry records a
/// hold: `run` writes it once its command has settled.
fn until_held(t: &TestEnv) -> String {
    format!(
        "for i in $(seq 200); do grep -q holders {} && break; sleep 0.05; done",
        t.registry_path().display()
    )
}

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
fn exit_code_7_is_propagated_and_the_port_released() {
    let t = TestEnv::new();
    let out = crate::support::run(
        t.wtenv(&["run", "--", "sh", "-c", "test -n \"$PORT\" && exit 7"])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(7), "{out}");
    assert_no_holds(&t);
    assert!(
        t.allocations().is_empty(),
        "a port allocated by run is released"
    );
}

#[test]
fn a_child_killed_by_sigterm_makes_wtenv_die_of_sigterm() {
    let t = TestEnv::new();
    let status = t
        .wtenv(&["run", "--", "sh", "-c", "kill -TERM $$"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    // The shell's view: 128 + 15.
    let shell = Command::new("sh")
        .arg("-c")
        .arg("\"$@\"; echo $?")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_wtenv"))
        .args(["run", "--", "sh", "-c", "kill -TERM $$"])
        .current_dir(&t.repo)
        .env_clear()
        .envs(isolated_env(&t))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&shell.stdout).trim(), "143");
    assert_no_holds(&t);
}

fn isolated_env(t: &TestEnv) -> Vec<(String, String)> {
    t.wtenv(&[])
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect()
}

#[test]
fn a_command_not_found_exits_127_and_releases_the_port() {
    let t = TestEnv::new();
    let out = crate::support::run(
        t.wtenv(&["run", "--", "wtenv-no-such-command"])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .contains("could not run wtenv-no-such-command: command not found"),
        "{out}"
    );
    assert_no_holds(&t);
    assert!(t.allocations().is_empty());
}

/// A script that is there but whose `#!` interpreter is not: execve says
/// ENOENT, and "command not found" sent the user looking for a file they
/// could see. The error names the interpreter, exit 127 as a shell's.
#[test]
fn a_script_whose_interpreter_is_missing_names_it_and_exits_127() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let script = t.repo.join("serve");
    std::fs::write(&script, "#!/nonexistent/python9 -u\nprint(1)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = crate::support::run(t.wtenv(&["run", "--", "./serve"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(127), "{out}");
    assert_eq!(
        out.stderr,
        "error: could not run ./serve: its interpreter /nonexistent/python9 (its #! line) was not found\n\
         hint: install /nonexistent/python9, or fix the first line of ./serve\n"
    );
    // An empty name is shown as one.
    let out = crate::support::run(t.wtenv(&["run", "--", ""]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .starts_with("error: could not run '': command not found\n"),
        "{out}"
    );
    assert_no_holds(&t);
    assert!(t.allocations().is_empty());
}

/// `run --service S` holds only S's port and reserves the others (as
/// `env` does). A command that could not start, or a socket that could
/// not be bound, lets S's port go as at any exit, and leaves the others
/// reserved and held by nothing: a reservation has no owner to give it
/// back, and a shell may have exported it meanwhile.
#[test]
fn run_service_that_cannot_start_leaves_no_hold_and_the_others_reserved() {
    let t = TestEnv::new();
    for args in [
        &["run", "--service", "web", "--", "wtenv-no-such-command"][..],
        &["run", "--service", "web", "--sockets", "--", "true"],
    ] {
        // A socket on an address this machine does not have cannot be bound.
        t.write_config("[services.web]\nbind = \"192.0.2.1\"\n[services.api]\n[services.db]\n");
        let out = crate::support::run(t.wtenv(args).stdin(Stdio::null()));
        assert_ne!(out.code, Some(0), "{args:?}: {out}");
        let allocations = t.registry()["allocations"].as_array().unwrap().clone();
        let services: Vec<&str> = allocations
            .iter()
            .map(|a| a["service"].as_str().unwrap())
            .collect();
        assert_eq!(services, ["api", "db"], "{args:?}: {out}");
        for a in &allocations {
            assert_eq!(a["reserved"], true, "{args:?}: {a}");
            assert!(
                a.get("holders")
                    .is_none_or(|h| h.as_array().unwrap().is_empty()),
                "{a}"
            );
        }
    }
}

#[test]
fn a_file_that_is_not_executable_exits_126() {
    let t = TestEnv::new();
    let file = t.root().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let out = crate::support::run(
        t.wtenv(&["run", "--", file.to_str().unwrap()])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(126), "{out}");
    assert!(t.allocations().is_empty());
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

/// Waits until the child `sh -c` whose script holds `marker` is the
/// foreground group of its terminal (stat: pgrp == tpgid): wtenv has
/// handed it the terminal. Keys typed before that can land while the
/// shell's line editor still has the terminal in raw mode, and never
/// reach the child as a line. (wtenv's own command line holds the marker
/// too, and is in the foreground before the child is: not it.)
fn wait_foreground(marker: &str) {
    let found = wait_for(PATIENCE, || {
        process::all_pids().into_iter().any(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let is_sh = cmd.split(|&b| b == 0).next() == Some(b"sh".as_slice());
            if !is_sh || !String::from_utf8_lossy(&cmd).contains(marker) {
                return false;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // Fields after comm: state ppid pgrp session tty_nr tpgid.
            f.len() > 5 && f[2] == f[5]
        })
    });
    assert!(found, "no foreground process runs {marker:?}");
}

#[test]
fn an_interactive_child_under_a_terminal_reads_input_and_dies_on_ctrl_c() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- sh -c 'read l; echo got:$l; python3 {} {}'",
        env!("CARGO_BIN_EXE_wtenv"),
        script.display(),
        pidfile.display()
    );
    tmux.keys(&t, &[&line, "Enter"]);
    // The child reads the terminal: it must not be stopped by SIGTTIN.
    wait_foreground("read l; echo got:");
    tmux.keys(&t, &["hello", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("got:hello")),
        "the child could not read its line:\n{}",
        tmux.pane(&t)
    );
    assert!(wait_for(PATIENCE, || pidfile.exists()), "{}", tmux.pane(&t));
    let server: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let port = app_port(&t);
    let pgid = process::pgid(server).unwrap();
    tmux.keys(&t, &["C-c"]);
    assert!(
        wait_for(PATIENCE, || !alive(server)),
        "Ctrl-C did not reach the child:\n{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["echo rc=$?", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("rc=130")),
        "the shell sees a SIGINT death:\n{}",
        tmux.pane(&t)
    );
    assert_all_clean(&t, pgid, server, port);
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

#[test]
fn a_reserved_port_is_held_while_run_runs_and_stays_reserved_after() {
    let t = TestEnv::new();
    let port = reserve_app(&t);
    // A port allocated by hand for a service the config does not declare:
    // run neither exports nor holds it.
    let out = crate::support::run(&mut t.wtenv(&["allocate", "--service", "extra"]));
    assert_eq!(out.code, Some(0), "{out}");
    let marker = t.root().join("during.json");
    let registry = t.registry_path();
    // The hold is written once the command has settled (with its group,
    // in one write): wait for it, then take the copy.
    let script = format!(
        "{}; cp {r} {m}; test \"$PORT\" = {port}",
        until_held(&t),
        r = registry.display(),
        m = marker.display()
    );
    run_sh(&t, &script);
    let during: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    let all = during["allocations"].as_array().unwrap();
    let a = all.iter().find(|a| a["service"] == "app").unwrap();
    let extra = all.iter().find(|a| a["service"] == "extra").unwrap();
    assert!(extra.get("holders").is_none(), "{during}");
    assert_eq!(a["reserved"], true, "{during}");
    assert_eq!(
        a["holders"][0]["command"],
        format!("sh -c {script}"),
        "{during}"
    );
    assert!(a["holders"][0]["pgid"].is_u64(), "{during}");
    let after = t.registry();
    let app = after["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service"] == "app")
        .unwrap();
    assert_eq!(app["port"], port);
    assert_eq!(app["reserved"], true, "the reservation stays: {after}");
    assert_no_holds(&t);
}

/// `run` on reserved ports writes its hold once its command has settled
/// (50 ms). A `validate --verify-ports --fix` in that moment sees the port
/// idle and unheld, and releases it. The command stops its own `wtenv
/// run` (SIGSTOP to its parent) until `validate` is done and `then` has run,
/// so that moment lasts as long as the test needs; `run` then writes its
/// hold. Returns what `ports --json` said after `then`, the registry once
/// the hold was written, and run's output; `None` when the hold was
/// written before the stop (a loaded machine started `sh` late): try again.
/// `settled` waits, in the command, for run's write once it goes on.
fn release_while_run_settles(
    t: &TestEnv,
    then: &str,
    settled: &str,
) -> Option<(Value, Value, crate::support::Run)> {
    let w = env!("CARGO_BIN_EXE_wtenv");
    let (after, during) = (t.root().join("after.json"), t.root().join("during.json"));
    let registry = t.registry_path();
    let script = format!(
        "kill -STOP $PPID; {w} validate --verify-ports --fix >/dev/null 2>&1; {then} \
         {w} ports --json >{a}; kill -CONT $PPID; {settled}; cp {r} {d}",
        a = after.display(),
        r = registry.display(),
        d = during.display()
    );
    let out = run_sh(t, &script);
    let read = |p: &Path| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let after = read(&after);
    if after["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["worktree"] == t.repo.to_str().unwrap())
    {
        return None;
    }
    Some((after, read(&during), out))
}

/// Each allocation of a registry or `ports --json` document: its port, its
/// worktree, and whether anything holds it.
fn entries(v: &Value) -> Vec<(u64, String, bool)> {
    v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["port"].as_u64().unwrap(),
                a["worktree"].as_str().unwrap().to_owned(),
                a["holders"].as_array().is_some_and(|h| !h.is_empty()),
            )
        })
        .collect()
}

/// The released port is recorded again, held by the `run` that uses it,
/// and stays reserved after: the command was given that port.
#[test]
fn a_port_released_while_run_settles_is_recorded_again_and_held() {
    let t = TestEnv::new();
    let port = reserve_app(&t);
    let (after, during, _) = (0..5)
        .find_map(|_| release_while_run_settles(&t, "", &until_held(&t)))
        .expect("the hold was written before validate ran, five times");
    assert_eq!(
        after["allocations"],
        serde_json::json!([]),
        "validate released it: {after}"
    );
    let a = &during["allocations"][0];
    assert_eq!(
        (a["port"].as_u64(), a["service"].as_str()),
        (Some(port.into()), Some("app")),
        "{during}"
    );
    assert_eq!(a["reserved"], true, "{during}");
    assert!(
        a["holders"][0]["pgid"].is_u64(),
        "held, with its group: {during}"
    );
    let now = t.registry();
    assert_eq!(
        now["allocations"][0]["port"], port,
        "still reserved after: {now}"
    );
    assert_no_holds(&t);
}

/// If another worktree got the port meanwhile, the registry keeps it
/// that worktree's (never twice), and `run` says its command still uses it.
#[test]
fn a_port_released_while_run_settles_and_taken_by_another_worktree_is_told() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let port = reserve_app(&t);
    let w = env!("CARGO_BIN_EXE_wtenv");
    let take = format!("(cd {} && {w} env >/dev/null 2>&1);", other.display());
    let (after, during, out) = (0..5)
        // Nothing of it is held: run's attempt comes at once, then the
        // command lives on a little so that it is made.
        .find_map(|_| release_while_run_settles(&t, &take, "sleep 0.5"))
        .expect("the hold was written before validate ran, five times");
    let theirs = vec![(u64::from(port), other.to_str().unwrap().to_owned(), false)];
    assert_eq!(
        entries(&after),
        theirs,
        "the other worktree took it: {after}"
    );
    assert_eq!(entries(&during), theirs, "recorded once, theirs: {during}");
    assert!(
        out.stderr.contains(&format!(
            "port {port} (app) was released while this command started"
        )) && out.stderr.contains("the command still uses it"),
        "{out}"
    );
}

/// Two ports released, one of them taken meanwhile: the other is recorded
/// again and held, and the warning names only the one taken.
#[test]
fn of_two_ports_released_while_run_settles_only_the_one_taken_is_given_up() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    t.write_config("[services.app]\n[services.api]\n");
    let port = reserve_app(&t);
    let api = t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service"] == "api")
        .and_then(|a| a["port"].as_u64())
        .expect("api reserved");
    let w = env!("CARGO_BIN_EXE_wtenv");
    // The lowest free port of the range: app's, released by validate.
    let take = format!(
        "(cd {} && {w} allocate --service app >/dev/null 2>&1);",
        other.display()
    );
    let (after, during, out) = (0..5)
        .find_map(|_| release_while_run_settles(&t, &take, &until_held(&t)))
        .expect("the hold was written before validate ran, five times");
    let (theirs, ours) = (other.to_str().unwrap(), t.repo.to_str().unwrap());
    assert_eq!(
        entries(&after),
        vec![(u64::from(port), theirs.to_owned(), false)],
        "validate released both, the other worktree took app's: {after}"
    );
    let mut during = entries(&during);
    during.sort();
    assert_eq!(
        during,
        vec![
            (u64::from(port), theirs.to_owned(), false),
            (api, ours.to_owned(), true)
        ],
        "api's port recorded again and held; app's stays theirs"
    );
    assert!(
        out.stderr.contains(&format!(
            "port {port} (app) was released while this command started"
        )) && !out.stderr.contains(&format!("{api} (api)")),
        "{out}"
    );
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

#[test]
fn ctrl_z_stops_wtenv_with_its_child_and_fg_resumes_both_with_the_terminal() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- sh -c 'read a; echo first:$a; read b; echo second:$b; exit 5'",
        env!("CARGO_BIN_EXE_wtenv")
    );
    tmux.keys(&t, &[&line, "Enter"]);
    wait_foreground("read a; echo first:");
    tmux.keys(&t, &["one", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("first:one")),
        "{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["C-z"]);
    // The shell gets its prompt back with wtenv stopped, and can run jobs.
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("Stopped")),
        "Ctrl-Z did not give the shell back:\n{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["echo shell-is-back", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("\nshell-is-back")),
        "{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["fg", "Enter"]);
    wait_foreground("read a; echo first:");
    tmux.keys(&t, &["two", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("second:two")),
        "the child did not get the terminal back after fg:\n{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["echo rc=$?", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("rc=5")),
        "{}",
        tmux.pane(&t)
    );
    assert_no_holds(&t);
}

/// A mistyped flag before the command is a usage error that runs
/// nothing; the command's own flags, after `--` or after its name, are
/// its own, and `--` lets a command start with a hyphen.
#[test]
fn run_refuses_a_mistyped_flag_and_leaves_the_commands_flags_to_it() {
    let t = TestEnv::new();
    let ran = t.root().join("ran");
    let ran = ran.to_str().unwrap();
    for typo in [&["--gracee", "1s"][..], &["--bogus"]] {
        let args = [&["run"], typo, &["--", "touch", ran]].concat();
        let out = crate::support::run(&mut t.wtenv(&args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .starts_with(&format!("error: unexpected argument '{}' found", typo[0])),
            "{args:?}: {out}"
        );
        assert!(!Path::new(ran).exists(), "{args:?} ran the command");
    }
    let echo = ["sh", "-c", "echo \"$@\"", "sh", "start", "--port", "3"];
    for args in [
        [&["run", "--"][..], &echo].concat(),
        [&["run"][..], &echo].concat(),
    ] {
        let out = crate::support::run(&mut t.wtenv(&args));
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
        assert_eq!(out.stdout, "start --port 3\n", "{args:?}: {out}");
    }
    let out = crate::support::run(&mut t.wtenv(&["run", "--", "-x"]));
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .starts_with("error: could not run -x: command not found"),
        "{out}"
    );
}
