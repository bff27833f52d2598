//! `wtenv run` with real process trees and real signals (npm-shaped
//! trees, Ctrl-C, SIGTERM, SIGHUP, a child ignoring SIGTERM, a leader exiting
//! first, exit codes, a real terminal): after every stop, no process of the child's group is left
//! (read from /proc), the port is free (probe), the registry holds no hold.
//!
//! A module per concept; this file holds the helpers several of them
//! share (`PATIENCE`, `Wtenv` and the checks of what is left, which other
//! areas' tests use too).

mod exits;
mod grace;
mod holds;
mod moves;
mod orphans;
mod signals;
mod strays;
mod sweeps;
mod terminal;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{TestEnv, wait_for};
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
    /// second kills at once, once it comes 200 ms after the first), and
    /// only then SIGKILL it.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = Pid::from_raw(self.pid() as i32);
        let _ = kill(pid, Signal::SIGINT);
        std::thread::sleep(Duration::from_millis(250));
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
