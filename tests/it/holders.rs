//! Who holds a busy port, said the same wherever wtenv says it: a port
//! a socket is bound to without listening (a real one, of another
//! process) is `no listening process (...)` in every message that names
//! a port's holders, never `holder unknown`, which README keeps for a
//! process wtenv cannot see.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Run, TestEnv, run};

/// What a message says of a busy port no socket listens on.
pub const NOT_LISTENING: &str = "no listening process (a socket bound without listening, or a TIME_WAIT: it clears within a minute)";

/// A socket of another process (python3) bound to `127.0.0.1:port`
/// without listening, as a program that failed between its bind and its
/// listen leaves it. Killed on drop.
pub struct PyBound {
    child: Child,
}

impl PyBound {
    pub fn start(cwd: &Path, port: u16) -> PyBound {
        let script = format!(
            "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\nprint('ready',flush=True)\ntime.sleep(600)\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "could not bind port {port}");
        PyBound { child }
    }
}

impl Drop for PyBound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `up` refuses, before it starts anything, a service's port something
/// holds. A port a socket is bound to without listening was `holder
/// unknown` there (and in `up -d`'s refusal, the same function); it is
/// said as `conflicts` says it now. The worktree's own ports are checked
/// first, before the registry is locked, and such a port is refused
/// there as held from outside the worktree (`env`'s refusal): the socket
/// is bound while `up` waits for the registry's lock after that check
/// (the test holds it shared), so that the check `up` makes before it
/// starts anything is the one that finds it.
#[test]
fn up_refuses_a_port_bound_without_listening_in_the_words_of_conflicts() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let port = t.ports.port(0);
    let lock = File::open(t.state_dir().join("registry.lock")).unwrap();
    lock.lock_shared().unwrap();
    let mut up = t
        .wtenv(&["up"])
        .env("WTENV_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = up.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut said = Vec::new();
    while !said
        .iter()
        .any(|l: &String| l.contains("lock busy, waiting") && l.contains("registry.lock"))
    {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => said.push(line),
            Err(_) => {
                let _ = up.kill();
                panic!(
                    "up never waited for the registry's lock:\n{}",
                    said.join("\n")
                );
            }
        }
    }
    let bound = PyBound::start(&t.repo, port);
    lock.unlock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = up.kill();
            panic!("up did not refuse the port");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().unwrap();
    said.extend(lines.try_iter());
    let out = Run::of(
        up.wait().unwrap(),
        Vec::new(),
        said.iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes(),
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: ports of the services to start are already in use:\n  port {port} (web): {NOT_LISTENING}\n\
             hint: no connection of port {port} is in TIME_WAIT: stop the program that bound it without listening, then run wtenv up again\n"
        )),
        "{out}"
    );
    drop(bound);
}

/// `env` refuses a port of its worktree that something outside it holds,
/// with "stop those processes" for a hint, which was its hint too where
/// no process listens, with none to stop. It says what to do instead,
/// from what /proc tells: a socket bound without listening (no
/// connection of the port in TIME_WAIT) is a program to stop; a
/// TIME_WAIT left by a socket without SO_REUSEADDR, to wait for.
#[cfg(target_os = "linux")]
#[test]
fn a_reserved_port_no_process_listens_on_hints_what_to_do_instead() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let port = t.ports.port(0);
    let refused = |hint: &str| {
        let env = run(&mut t.wtenv(&["env"]));
        assert_eq!(env.code, Some(1), "{env}");
        assert!(
            env.stderr.ends_with(&format!(
                "  port {port} (web): {NOT_LISTENING}\nhint: {hint}; the reservation stays with this worktree\n"
            )),
            "{env}"
        );
    };
    let bound = PyBound::start(&t.root(), port);
    refused(&format!(
        "no connection of port {port} is in TIME_WAIT: stop the program that bound it without listening"
    ));
    drop(bound);
    crate::probe::make_time_wait("127.0.0.1", port, false);
    refused(&format!(
        "a connection of port {port} is in TIME_WAIT: wait for it to clear (within a minute); should it stay busy, stop the program that bound it without listening"
    ));
    assert!(
        !crate::probe::time_wait_lines(port).is_empty(),
        "the TIME_WAIT was gone before wtenv ran: the test proved nothing"
    );
}

/// `conflicts --json`, `ports --json` and `list --json` gave a port no
/// process listens on an empty list of holders, as they give one whose
/// listener nobody can name: `"listening": false` beside it tells the
/// two apart now, and `true` is given where a process listens.
#[cfg(target_os = "linux")]
#[test]
fn json_says_whether_a_process_listens_on_a_busy_port() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let (reserved, unrecorded, listened) = (t.ports.port(0), t.ports.port(1), t.ports.port(2));
    let _reserved = PyBound::start(&t.root(), reserved);
    let _unrecorded = PyBound::start(&t.root(), unrecorded);
    let listener = crate::support::PyListener::start(&t.root(), "4", "127.0.0.1", listened, "");
    let json = |args: &[&str]| {
        let out = run(&mut t.wtenv(args));
        let doc: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        (doc, out)
    };
    let (doc, out) = json(&["conflicts", "--json"]);
    assert_eq!(out.code, Some(1), "{out}");
    let conflict = |port: u16| {
        doc["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["port"] == port)
            .unwrap_or_else(|| panic!("port {port} not listed: {out}"))
            .clone()
    };
    for port in [reserved, unrecorded] {
        let c = conflict(port);
        assert_eq!(c["holders"], serde_json::json!([]), "{out}");
        assert_eq!(c["listening"], false, "{out}");
    }
    let c = conflict(listened);
    assert_eq!(c["holders"][0]["pid"], listener.pid(), "{out}");
    // A process, no service manager: no `unit` key.
    assert_eq!(c["holders"][0].get("unit"), None, "{out}");
    assert_eq!(c["listening"], true, "{out}");

    let (doc, out) = json(&["ports", "--json"]);
    let web = &doc["allocations"][0];
    assert_eq!(web["port"], reserved, "{out}");
    assert_eq!(web["state"], "conflict", "{out}");
    assert_eq!(web["listeners"], serde_json::json!([]), "{out}");
    assert_eq!(web["listening"], false, "{out}");

    let (doc, out) = json(&["list", "--json"]);
    let web = &doc["worktrees"][0]["services"][0];
    assert_eq!(web["state"], "conflict", "{out}");
    assert_eq!(web["listening"], false, "{out}");
    let rows = doc["conflicts"].as_array().unwrap();
    let row = |port: u16| rows.iter().find(|c| c["port"] == port).unwrap();
    assert_eq!(row(unrecorded)["listening"], false, "{out}");
    assert_eq!(row(listened)["listening"], true, "{out}");
}

/// `--skip-occupied` that runs out of ports because a socket is bound,
/// without listening, to the one port left hinted "stop what holds those
/// ports", with no process to stop: it says what to do instead, as `env`'s
/// refusal of a reserved port does.
#[cfg(target_os = "linux")]
#[test]
fn a_range_a_port_no_process_listens_on_exhausts_hints_what_to_do_instead() {
    let t = TestEnv::new();
    let port = t.ports.port(0);
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purposes]\nfeature = \"{port}-{port}\"\n"),
    )
    .unwrap();
    let _bound = PyBound::start(&t.root(), port);
    let out = run(&mut t.wtenv(&["env", "--skip-occupied"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: no free port left in feature range {port}-{port}; occupied on the system, so skipped:\n  \
             port {port}: {NOT_LISTENING}\n\
             hint: no connection of port {port} is in TIME_WAIT: stop the program that bound it without listening, \
             or widen the range (or add an overflow range) in wtenv.toml\n"
        ),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{out}");
}

/// A server started by hand in the worktree whose forked copy works
/// elsewhere (a daemonizing server, both holding the listening socket):
/// `env` refuses the port, and names only the copy outside the
/// worktree. It named the worktree's own server too, as "held by
/// processes outside it", with "stop those processes" for a hint.
#[test]
fn a_refusal_names_the_process_outside_the_worktree_not_its_own_server_beside_it() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let port = t.ports.port(0);
    // The copy says it works in `/` through a pipe before the pids are
    // printed.
    let script = format!(
        "import os,socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\n\
         r,w=os.pipe()\ncopy=os.fork()\n\
         if copy == 0:\n    os.chdir('/')\n    os.write(w,b'.')\n    time.sleep(600)\n    os._exit(0)\n\
         os.read(r,1)\nprint(os.getpid(),copy,flush=True)\ntime.sleep(600)\n"
    );
    let mut own = Command::new("python3")
        .args(["-c", &script])
        .current_dir(&t.repo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(own.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (server, copy) = (pids[0], pids[1]);
    let env = run(&mut t.wtenv(&["env"]));
    for pid in [server, copy] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = own.wait();
    assert_eq!(env.code, Some(1), "{env}");
    assert!(
        env.stderr
            .contains(&format!("  port {port} (web): pid {copy} (")),
        "{env}"
    );
    assert!(env.stderr.contains(") in /\n"), "{env}");
    assert!(!env.stderr.contains(&format!("pid {server}")), "{env}");
}
