//! The socket hand-off with real servers: uvicorn `--fd 3`, gunicorn, and a
//! Node `listen({ fd: 3 })` server under `wtenv run --sockets` and under
//! `wtenv up` with `socket = true`, each compared with
//! `systemd-socket-activate` running the same command (the reference).
//! Then the race the hand-off closes, Ctrl-C, and what is not inherited.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::supervise::{PATIENCE, Wtenv, alive, group_survivors};
use crate::support::{TestEnv, run, wait_for};

/// One ASGI and one WSGI app, answering what their process was given.
pub(crate) const APP: &str = r#"
import json, os

def info():
    env = dict(kv.split("=", 1) for kv in open("/proc/self/environ").read().split("\0") if "=" in kv)
    return json.dumps({
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "listen_pid": env.get("LISTEN_PID"),
        "listen_fds": env.get("LISTEN_FDS"),
        "listen_fdnames": env.get("LISTEN_FDNAMES"),
        "web_port": env.get("WEB_PORT"),
    }).encode()

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": info()})

def wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [info()]
"#;

/// The Node server: the socket at fd 3, as systemd passes it.
pub(crate) const NODE: &str = r#"
const http = require("http");
http.createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({
    pid: process.pid,
    ppid: process.ppid,
    listen_pid: process.env.LISTEN_PID ?? null,
    listen_fds: process.env.LISTEN_FDS ?? null,
    listen_fdnames: process.env.LISTEN_FDNAMES ?? null,
    web_port: process.env.WEB_PORT ?? null,
  }));
}).listen({ fd: 3 });
"#;

/// A repository whose one service `web` has `socket = true` and runs
/// `line` under `up`; the apps are written beside the config.
fn socket_env(line: &str) -> TestEnv {
    let t = TestEnv::new();
    t.write_config(&format!(
        "[services.web]\nsocket = true\nrun = {}\n",
        toml_string(line)
    ));
    std::fs::write(t.repo.join("app.py"), APP).unwrap();
    std::fs::write(t.repo.join("server.js"), NODE).unwrap();
    t
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn web_port(t: &TestEnv) -> u16 {
    let out = run(&mut t.wtenv(&["env", "--format", "json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let vars: Value = serde_json::from_str(&out.stdout).unwrap();
    vars["WEB_PORT"].as_str().unwrap().parse().unwrap()
}

/// `GET /` over HTTP/1.0 on 127.0.0.1:`port`: the JSON body, once the
/// server answers.
pub(crate) fn get(port: u16) -> Option<Value> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

pub(crate) fn get_patiently(port: u16, what: &dyn Fn() -> String) -> Value {
    let mut got = None;
    assert!(
        wait_for(PATIENCE, || {
            got = get(port);
            got.is_some()
        }),
        "no answer on port {port}: {}",
        what()
    );
    got.unwrap()
}

/// The parent pid of `pid`, from /proc.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a launch showed: whether LISTEN_PID named the server (the process
/// the launcher exec'd: for gunicorn, `server_is_parent`, the parent of
/// the answering worker), and the protocol's other variables.
#[derive(Debug, PartialEq)]
struct Seen {
    listen_pid_is_server: bool,
    listen_fds: Option<String>,
    listen_fdnames: Option<String>,
}

fn seen(answer: &Value, server_is_parent: bool) -> (u32, Seen) {
    let server = if server_is_parent {
        answer["ppid"].as_u64().unwrap() as u32
    } else {
        answer["pid"].as_u64().unwrap() as u32
    };
    let text = |k: &str| answer[k].as_str().map(str::to_owned);
    let seen = Seen {
        listen_pid_is_server: text("listen_pid") == Some(server.to_string()),
        listen_fds: text("listen_fds"),
        listen_fdnames: text("listen_fdnames"),
    };
    (server, seen)
}

/// Stops a launched wtenv with Ctrl-C; nothing of its tree may survive
/// and the port is free at once.
fn stop(mut w: Wtenv, port: u16, server: u32) {
    // The exit status is the server's (some exit 0 on SIGINT).
    w.signal(Signal::SIGINT);
    w.wait();
    assert!(
        wait_for(PATIENCE, || !alive(server)),
        "server {server} survived"
    );
    assert_eq!(group_survivors(server), Vec::<u32>::new());
    assert_port_bindable(port);
}

/// Binds and listens on `addr`:`port` as a server would: dual-stack for
/// `[::]`, SO_REUSEADDR (a TIME_WAIT left by the last answer is fine).
fn bind_like_a_server(addr: &str, port: u16) -> std::io::Result<socket2::Socket> {
    let addr: SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1)?;
    Ok(s)
}

/// A server's bind succeeds, on `[::]` and on `127.0.0.1`.
fn assert_port_bindable(port: u16) {
    for addr in ["[::]", "127.0.0.1"] {
        if let Err(e) = bind_like_a_server(addr, port) {
            panic!("port {port} is not free on {addr}: {e}");
        }
    }
}

/// The same command under `systemd-socket-activate -l PORT --fdname=web`.
fn reference(t: &TestEnv, port: u16, argv: &[&str], server_is_parent: bool) -> Seen {
    let mut child: Child = Command::new("systemd-socket-activate")
        .args(["-l", &port.to_string(), "--fdname=web", "-E", "WEB_PORT"])
        .args(argv)
        .current_dir(&t.repo)
        .env("WEB_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answer = get_patiently(port, &|| "systemd-socket-activate".into());
    let (server, result) = seen(&answer, server_is_parent);
    // Without --accept it execs the command in its own process.
    assert_eq!(server, child.id(), "the reference's server is itself");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(server as i32), Signal::SIGTERM);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        wait_for(PATIENCE, || !alive(server)),
        "reference server survived"
    );
    result
}

/// `argv` under `run --sockets`, under `up` (the config's `run` line is
/// the same command), and under the reference: each serves on the
/// allocated port, with LISTEN_PID the server's own pid (when the server
/// keeps it), and all three agree.
fn serves_like_the_reference(argv: &[&str], server_is_parent: bool, expect: Seen) {
    let t = socket_env(&argv.join(" "));
    let port = web_port(&t);

    let mut args = vec!["run", "--sockets", "--"];
    args.extend_from_slice(argv);
    let w = Wtenv::start(&t, &args);
    let answer = get_patiently(port, &|| w.stderr_text());
    assert_eq!(
        answer["web_port"],
        port.to_string(),
        "the port variable too"
    );
    let (server, under_run) = seen(&answer, server_is_parent);
    assert_eq!(parent_of(server), w.pid(), "the server is wtenv's child");
    stop(w, port, server);

    let w = Wtenv::start(&t, &["up"]);
    let answer = get_patiently(port, &|| w.stderr_text());
    let (server, under_up) = seen(&answer, server_is_parent);
    assert_eq!(parent_of(server), w.pid(), "the server is wtenv's child");
    stop(w, port, server);

    let reference = reference(&t, port, argv, server_is_parent);
    assert_eq!(under_run, expect, "run --sockets");
    assert_eq!(under_up, expect, "up with socket = true");
    assert_eq!(reference, expect, "systemd-socket-activate");
}

fn handed_over() -> Seen {
    Seen {
        listen_pid_is_server: true,
        listen_fds: Some("1".into()),
        listen_fdnames: Some("web".into()),
    }
}

#[test]
fn uvicorn_fd_3_serves_on_the_allocated_port_with_its_own_listen_pid_like_the_reference() {
    serves_like_the_reference(
        &["uvicorn", "--fd", "3", "--log-level", "warning", "app:asgi"],
        false,
        handed_over(),
    );
}

#[test]
fn gunicorn_takes_the_socket_by_listen_pid_like_the_reference() {
    // gunicorn reads LISTEN_FDS itself when LISTEN_PID is its pid; its
    // answering worker is a fork of that process.
    serves_like_the_reference(&["gunicorn", "-w", "1", "app:wsgi"], true, handed_over());
}

#[test]
fn gunicorn_bind_fd_3_serves_when_listen_pid_is_not_its_own_like_the_reference() {
    // With `--bind fd://3` AND a matching LISTEN_PID, gunicorn 27 takes fd
    // 3 twice and dies (EBADF), under the reference too: drop LISTEN_PID.
    serves_like_the_reference(
        &[
            "env",
            "-u",
            "LISTEN_PID",
            "gunicorn",
            "-w",
            "1",
            "--bind",
            "fd://3",
            "app:wsgi",
        ],
        true,
        Seen {
            listen_pid_is_server: false,
            ..handed_over()
        },
    );
}

#[test]
fn node_listen_fd_3_serves_on_the_allocated_port_with_its_own_listen_pid_like_the_reference() {
    serves_like_the_reference(&["node", "server.js"], false, handed_over());
}

/// Answers one request on fd 3 with its pid and exits: one "run" of a
/// service that stops and starts again. Connections that send nothing
/// (`up`'s readiness probes) are not requests.
const ONESHOT: &str = r#"
import os, socket
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    if c.recv(1):
        c.sendall(str(os.getpid()).encode())
        c.close()
        break
    c.close()
"#;

/// One request to a [`ONESHOT`] run: the pid that answered.
fn ask_pid(port: u16, round: usize) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("round {round}: connect refused: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"?").unwrap();
    let mut pid = String::new();
    s.read_to_string(&mut pid).unwrap();
    pid
}

/// Binds `port` in a tight loop (dual-stack and IPv4, SO_REUSEADDR as a
/// server sets it) until `stop`; counts the binds that succeeded.
fn racer(
    port: u16,
    stop: Arc<AtomicBool>,
    wins: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut tries = 0;
        while !stop.load(Ordering::Relaxed) {
            for addr in ["[::]", "127.0.0.1"] {
                if bind_like_a_server(addr, port).is_ok() {
                    wins.fetch_add(1, Ordering::Relaxed);
                }
                tries += 1;
            }
        }
        tries
    })
}

#[test]
fn a_racer_never_binds_the_port_while_the_service_restarts_100_times_on_a_held_socket() {
    let t = socket_env("true");
    std::fs::write(t.root().join("oneshot.py"), ONESHOT).unwrap();
    let port = web_port(&t);
    // After the 100th run wtenv keeps the socket until the racer has
    // stopped (`done` appears): else the racer, still mid-loop when the
    // last answer comes, could bind the port wtenv has just let go.
    let done = t.root().join("racer-stopped");
    let script = format!(
        "i=0; while [ $i -lt 100 ]; do python3 -S {}; i=$((i+1)); done; \
         while [ ! -e {} ]; do sleep 0.05; done",
        t.root().join("oneshot.py").display(),
        done.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let wins = Arc::new(AtomicUsize::new(0));
    let mut w = Wtenv::start(&t, &["run", "--sockets", "--", "sh", "-c", &script]);
    // The racer starts once wtenv holds the port (a probe connect would
    // be served by one of the 100 runs).
    wait_until_held(port, &w);
    let racing = racer(port, stop.clone(), wins.clone());
    let mut pids = std::collections::BTreeSet::new();
    for round in 0..100 {
        pids.insert(ask_pid(port, round));
    }
    stop.store(true, Ordering::Relaxed);
    let tries = racing.join().unwrap();
    std::fs::write(&done, "").unwrap();
    assert!(w.wait().success(), "{}", w.stderr_text());
    assert_eq!(pids.len(), 100, "100 runs of the service answered");
    assert!(tries > 100, "the racer ran ({tries} binds)");
    assert_eq!(
        wins.load(Ordering::Relaxed),
        0,
        "a bind succeeded in {tries} tries while wtenv held the socket"
    );
    assert_port_bindable(port);
}

/// Waits until the port cannot be bound: wtenv holds its socket (a probe
/// connect would be served, and so consume one of the service's runs).
fn wait_until_held(port: u16, w: &Wtenv) {
    assert!(
        wait_for(PATIENCE, || std::net::TcpListener::bind((
            "127.0.0.1",
            port
        ))
        .is_err()),
        "{}",
        w.stderr_text()
    );
}

#[test]
fn up_restarts_a_socket_service_on_the_same_socket_and_a_racer_never_binds_between_runs() {
    let t = TestEnv::new();
    std::fs::write(t.root().join("oneshot.py"), ONESHOT).unwrap();
    t.write_config(&format!(
        "[services.web]\nsocket = true\nrestart = \"always\"\nrun = \"python3 -S {}\"\n",
        t.root().join("oneshot.py").display()
    ));
    let port = web_port(&t);
    let w = Wtenv::start(&t, &["up"]);
    wait_until_held(port, &w);
    let stop_racer = Arc::new(AtomicBool::new(false));
    let wins = Arc::new(AtomicUsize::new(0));
    let racing = racer(port, stop_racer.clone(), wins.clone());
    // Four runs: the first and three restarts (1 s, 2 s, 4 s apart), each
    // answering one connection that waited in the held socket.
    let mut pids = std::collections::BTreeSet::new();
    for round in 0..4 {
        pids.insert(ask_pid(port, round));
    }
    stop_racer.store(true, Ordering::Relaxed);
    let tries = racing.join().unwrap();
    let stderr = w.stderr_text();
    assert_eq!(pids.len(), 4, "four runs answered: {stderr}");
    assert!(stderr.contains("web | restarting in 4s (3/5)"), "{stderr}");
    assert_eq!(
        wins.load(Ordering::Relaxed),
        0,
        "a bind succeeded in {tries} tries between runs: {stderr}"
    );
    let server = pids.iter().last().unwrap().parse().unwrap();
    stop(w, port, server);
}

#[test]
fn wtenv_keeps_its_copy_while_the_child_runs_and_ctrl_c_frees_the_port_at_once() {
    let t = socket_env("true");
    let port = web_port(&t);
    let flag = t.root().join("closed");
    // The child closes its own copy at once: the port stays wtenv's.
    let script = format!("exec 3<&-; : > {}; exec sleep 600", flag.display());
    let w = Wtenv::start(&t, &["run", "--sockets", "--", "sh", "-c", &script]);
    assert!(wait_for(PATIENCE, || flag.exists()), "{}", w.stderr_text());
    let taken = std::net::TcpListener::bind(("127.0.0.1", port));
    assert!(taken.is_err(), "the port was free while wtenv ran");
    // The flag is written just before `exec sleep`: the child may still
    // be `sh` for a moment.
    let sleeper = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.contains("(sleep)"))
                    && parent_of(p) == w.pid()
            })
    };
    assert!(wait_for(PATIENCE, || sleeper().is_some()), "the child runs");
    let sleeper = sleeper().expect("the child runs");
    // Ctrl-C: wtenv exits, nothing survives, the port binds right away.
    stop(w, port, sleeper);
    let reg = t.registry();
    for a in reg["allocations"].as_array().unwrap() {
        assert!(a.get("holders").is_none(), "a hold is left: {reg}");
    }
}

/// A service that lists the sockets it inherited: fd and local port.
const FDS: &str = r#"
import json, os, socket, sys, time
found = []
for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")):
    try:
        s = socket.socket(fileno=os.dup(fd))
        found.append([fd, s.getsockname()[1]])
        s.close()
    except OSError:
        pass
open(sys.argv[1] + ".tmp", "w").write(json.dumps(found))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"#;

#[test]
fn only_its_own_service_inherits_a_socket_and_only_at_fd_3() {
    let t = TestEnv::new();
    std::fs::write(t.root().join("fds.py"), FDS).unwrap();
    let list = |name: &str| t.root().join(format!("{name}.json"));
    t.write_config(&format!(
        "[services.web]\nsocket = true\nrun = \"python3 {fds} {web}\"\n\
         [services.api]\nrun = \"python3 {fds} {api}\"\n",
        fds = t.root().join("fds.py").display(),
        web = list("web").display(),
        api = list("api").display(),
    ));
    let out = run(&mut t.wtenv(&["env", "--format", "json"]));
    let vars: Value = serde_json::from_str(&out.stdout).unwrap();
    let web: u64 = vars["WEB_PORT"].as_str().unwrap().parse().unwrap();
    let w = Wtenv::start(&t, &["up"]);
    assert!(
        wait_for(PATIENCE, || list("web").exists() && list("api").exists()),
        "{}",
        w.stderr_text()
    );
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    assert_eq!(
        read(&list("web")),
        serde_json::json!([[3, web]]),
        "{}",
        w.stderr_text()
    );
    assert_eq!(
        read(&list("api")),
        serde_json::json!([]),
        "{}",
        w.stderr_text()
    );
}

/// A service named twice is taken once, as `up web web` takes it: its
/// socket is bound once and handed on once (`run` bound it twice and
/// refused, blaming its own pid for the port), with `--sockets` or by
/// the service's `socket = true`.
#[test]
fn run_with_a_service_named_twice_binds_its_socket_once() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\nsocket = true\n");
    for args in [
        &["run", "--sockets", "--service", "web", "--service", "web"][..],
        &["run", "--service", "api", "--service", "api"],
        // Through clap: the hot parse answers the others.
        &["run", "--service=api", "--service", "api"],
    ] {
        let mut line = args.to_vec();
        line.extend(["--", "sh", "-c", "echo $LISTEN_FDS $LISTEN_FDNAMES"]);
        let out = run(&mut t.wtenv(&line));
        assert_eq!(out.code, Some(0), "{line:?}: {out}");
        let service = args[args.len() - 1];
        assert_eq!(out.stdout, format!("1 {service}\n"), "{line:?}: {out}");
    }
}

/// `wtenv run --service web -- CMD` started by a socket activator (systemd's
/// `systemd-socket-activate`, which passes sockets as a `.socket` unit
/// does), with the activator's environment plus wtenv's directories.
fn activated(t: &TestEnv, listen: &str, argv: &[&str]) -> Command {
    let mut cmd = Command::new("systemd-socket-activate");
    t.apply_env(&mut cmd);
    cmd.args(["-l", listen, "--fdname=web"]);
    for var in [
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "LANG",
    ] {
        cmd.args(["-E", var]);
    }
    cmd.arg(env!("CARGO_BIN_EXE_wtenv"))
        .args(["run", "--service", "web", "--"])
        .args(argv)
        .current_dir(&t.repo)
        .stdin(Stdio::null());
    cmd
}

/// Under socket activation `run` takes the socket it was passed (its
/// LISTEN_PID is run's own), binds nothing (the activator holds the port:
/// a bind would fail), and hands it on: the server gets it at fd 3 with
/// its own LISTEN_PID, as under `run --sockets`. Once run is gone, so is
/// the port.
#[test]
fn run_under_socket_activation_hands_on_the_passed_socket_and_binds_nothing() {
    let t = socket_env("node server.js");
    let port = web_port(&t);
    let err = t.root().join("activated.err");
    let mut child = activated(&t, &port.to_string(), &["node", "server.js"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let answer = get_patiently(port, &stderr);
    let (server, result) = seen(&answer, false);
    assert_eq!(result, handed_over(), "{answer}");
    // Without --accept the activator execs run itself: the server is run's child.
    assert_eq!(parent_of(server), child.id(), "{answer}");
    let holds: Vec<u64> = t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["service"] == "web")
        .flat_map(|a| a["holders"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h["pid"].as_u64())
        .collect();
    assert_eq!(holds, [child.id() as u64], "run holds web's port");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    child.wait().unwrap();
    assert!(!alive(server), "the server outlived run: {}", stderr());
    assert_port_bindable(port);
}

/// A socket passed on another port than the service's (units exported
/// before the config changed) is refused, saying both ports; nothing runs.
#[test]
fn run_refuses_a_passed_socket_on_another_port_than_the_services() {
    let t = socket_env("node server.js");
    let port = web_port(&t);
    let other = t.ports.port(1);
    assert_ne!(port, other);
    let err = t.root().join("activated.err");
    let mut child = activated(&t, &other.to_string(), &["node", "server.js"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // The activator execs run at the first connection.
    assert!(wait_for(PATIENCE, || TcpStream::connect((
        "127.0.0.1",
        other
    ))
    .is_ok()));
    let mut status = None;
    assert!(wait_for(PATIENCE, || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the socket the service manager passed for service web listens on [::]:{other}, but web's port is {port}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("export the units again"), "{stderr}");
}

/// LISTEN_* meant for another process (LISTEN_PID is not run's pid) are
/// not run's: it binds the socket itself, as without them.
#[test]
fn run_ignores_listen_fds_meant_for_another_process() {
    let t = socket_env("node server.js");
    let port = web_port(&t);
    let mut cmd = t.wtenv(&["run", "--service", "web", "--", "node", "server.js"]);
    let mut child = cmd
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "web")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answer = get_patiently(port, &|| "run with another process's LISTEN_PID".into());
    let (server, result) = seen(&answer, false);
    assert_eq!(result, handed_over(), "{answer}");
    assert_eq!(parent_of(server), child.id());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let _ = child.wait();
    assert_port_bindable(port);
}
