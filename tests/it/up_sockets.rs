//! `wtenv up`'s start, watch and checks of services with `socket = true`:
//! wtenv holds the listening socket, so its port accepts whatever the
//! server does; what is said of the service must come from the server.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::supervise::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::{TestEnv, run, wait_for};

fn wait_text(w: &Wtenv, text: &str, patience: Duration) {
    assert!(
        wait_for(patience, || w.stderr_text().contains(text)),
        "waited for {text:?}:\n{}",
        w.stderr_text()
    );
}

/// The spawn of a socket service waits for its hand-off's child to exec
/// the command (to say why it could not), which the end of the
/// socketpair wtenv gives it tells. `up` kept its own copy of that end
/// in the expression it built, so every start of a socket service waited
/// the whole patience (10 s) before `up` went on.
#[test]
fn a_socket_service_starts_without_waiting_on_its_hand_off() {
    let t = TestEnv::new();
    t.write_config("[services.sk]\nrun = \"sleep 60\"\nsocket = true\n");
    let started = Instant::now();
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "sk | ready in ", PATIENCE);
    let took = started.elapsed();
    w.signal(Signal::SIGINT);
    w.wait();
    assert!(
        took < Duration::from_secs(8),
        "{took:?}\n{}",
        w.stderr_text()
    );
    assert_no_holds(&t);
}

/// A socket service that crashes at once, restarted: its port keeps
/// answering from wtenv's own copy of the socket between runs (as the
/// README says), and the watch of each run, looking after the crash,
/// said `port N of service sk accepts connections, but not from the
/// service: holder unknown` after every one. An ended service is seen
/// first, and wtenv's kept socket is nobody else's.
#[test]
fn a_crashing_socket_service_is_not_said_to_be_held_by_someone_else() {
    let t = TestEnv::new();
    t.write_config("[services.sk]\nrun = \"false\"\nsocket = true\nrestart = \"on-failure\"\n");
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    // Three runs (1 s, then 2 s of backoff).
    wait_text(&w, "sk | restarting in 4s (3/5)", PATIENCE);
    w.signal(Signal::SIGINT);
    w.wait();
    let stderr = w.stderr_text();
    assert_eq!(
        stderr.matches("sk | ended (exit code 1)").count(),
        3,
        "{stderr}"
    );
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert_no_holds(&t);
}

/// `python3 fd3.py`: an HTTP server on the socket at fd 3 (how a server
/// takes a handed-over socket), answering 200 to every GET.
const FD3_SERVER: &str = r#"
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("", 0), H, bind_and_activate=False)
server.socket = socket.socket(fileno=3)
server.serve_forever()
"#;

/// A socket service bound to one address that is not 127.0.0.1 (here
/// 127.0.0.2, of the loopback device, so the host's network is left
/// alone): its checks and the watch of its listener went to 127.0.0.1
/// and ::1 only, where nothing listens, so `up` warned that it did not
/// listen while it served, and an http check could never pass. Every
/// check now connects where the socket is bound.
#[test]
fn a_socket_service_bound_to_one_address_is_checked_there() {
    let t = TestEnv::new();
    std::fs::write(t.repo.join("fd3.py"), FD3_SERVER).unwrap();
    t.write_config(
        "[services.ext]\nrun = \"python3 fd3.py\"\nsocket = true\nbind = \"127.0.0.2\"\nhealth = { http = \"/\" }\nready_timeout = \"10s\"\n",
    );
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "ext | ready in ", PATIENCE);
    // The setup: it answers at 127.0.0.2 only.
    let port = t.ports.port(0);
    let at = |ip: [u8; 4]| {
        std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2)).is_ok()
    };
    assert!(at([127, 0, 0, 2]) && !at([127, 0, 0, 1]));
    w.signal(Signal::SIGINT);
    w.wait();
    let stderr = w.stderr_text();
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(!stderr.contains("not ready"), "{stderr}");
    assert_no_holds(&t);
}

/// `python3 counting.py LOG`: a server on the socket at fd 3 that writes,
/// for each connection it accepts, what it read first (`b''` for a
/// connection closed without a word), and answers a request.
pub const COUNTING_SERVER: &str = r#"
import socket, sys
s = socket.socket(fileno=3)
log = open(sys.argv[1], "a", buffering=1)
while True:
    c, _ = s.accept()
    data = c.recv(1024)
    log.write(repr(data[:3]) + "\n")
    if data:
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    c.close()
"#;

/// A socket service without a `health` key: its default check (and the
/// watch of its listener) connected to its port, which wtenv's own
/// socket makes accept whatever the server does, so it passed with the
/// server hung, and each check was a connection the server then
/// accepted, empty (a one-request server lost its request to it). Ready
/// at once, it is now never connected to by wtenv: the server's first
/// connection is the first request.
#[test]
fn a_socket_service_without_a_health_key_is_never_connected_to() {
    let t = TestEnv::new();
    let log = t.root().join("accepted");
    std::fs::write(t.repo.join("counting.py"), COUNTING_SERVER).unwrap();
    t.write_config(&format!(
        "[services.sk]\nrun = \"python3 counting.py {}\"\nsocket = true\n",
        log.display()
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "sk | ready in 0.0s on port ", PATIENCE);
    // Past the default check's interval (2 s): a liveness check would
    // have connected by now.
    std::thread::sleep(Duration::from_millis(2500));
    let port = t.ports.port(0);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer:?}");
    w.signal(Signal::SIGINT);
    w.wait();
    let accepted = std::fs::read_to_string(&log).unwrap();
    assert_eq!(accepted, "b'GET'\n", "{}", w.stderr_text());
    assert!(!w.stderr_text().contains("warning:"), "{}", w.stderr_text());
    assert_no_holds(&t);
}

/// A tcp check of a socket service tests wtenv's socket, not the server:
/// asked for (or left the default of a `health` table that names no
/// check), it is a config error that says so, for every command.
#[test]
fn a_tcp_check_of_a_socket_service_is_refused_saying_why() {
    let t = TestEnv::new();
    let file = t.repo.join("wtenv.toml");
    for (health, key) in [
        ("{ tcp = true }", "services.sk.health.tcp"),
        ("{ interval = \"1s\" }", "services.sk.health"),
    ] {
        t.write_config(&format!(
            "[services.sk]\nrun = \"sleep 60\"\nsocket = true\nhealth = {health}\n"
        ));
        for args in [&["env"][..], &["up"]] {
            let out = crate::support::run(t.wtenv(args).stdin(std::process::Stdio::null()));
            assert_eq!(out.code, Some(1), "{args:?}: {out}");
            assert!(
                out.stderr.starts_with(&format!(
                    "error: invalid config {}: {key}: a tcp check (the default) of a service with socket = true would test wtenv's own socket, which accepts connections whether the server answers or not, not the server; use http = \"/path\" or cmd = \"...\"\n",
                    file.display()
                )),
                "{args:?}: {out}"
            );
            assert!(t.allocations().is_empty(), "{args:?}: {out}");
        }
    }
    // An http or cmd check is the server's.
    t.write_config("[services.sk]\nsocket = true\nhealth = { cmd = \"true\" }\n");
    let out = crate::support::run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
}

/// A socket service started through a version manager's shim (pyenv's
/// runs subshells in its own directory before it execs the server): each
/// inherits the handed-on socket and ends within milliseconds. One that
/// a holder lookup found listening and that ended before it was judged
/// was said to hold the port from outside the worktree, and `env` (like
/// `run`, or the start of the next service) refused the worktree's
/// ports. Here such subshells come and go for as long as the service runs.
#[test]
fn a_socket_services_short_lived_children_elsewhere_are_never_foreign() {
    let t = TestEnv::new();
    t.write_config(
        "[services.sk]\nrun = \"while :; do (cd / && sleep 0.002); done\"\nsocket = true\n",
    );
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "sk | ready in ", PATIENCE);
    for _ in 0..40 {
        let env = run(&mut t.wtenv(&["env"]));
        assert_eq!(env.code, Some(0), "{env}");
    }
    w.signal(Signal::SIGINT);
    w.wait();
    assert_no_holds(&t);
}

/// QA finding: `run --sockets` on the port of the worktree's own
/// background socket service failed to bind, its hint `stop that
/// process, or run 'wtenv validate --verify-ports'` (three processes
/// named, wtenv's supervisor among them; `validate` finds nothing). It
/// refuses as `up` does: `wtenv down` stops a background service.
#[test]
fn run_sockets_on_the_port_of_a_background_service_says_wtenv_down() {
    let t = TestEnv::new();
    t.write_config(&format!(
        "[services.web]\nsocket = true\nrun = {}\n",
        serde_json::to_string("exec node server.js").unwrap()
    ));
    std::fs::write(t.repo.join("server.js"), crate::sockets::NODE).unwrap();
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = t.ports.port(0);
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["run", "--sockets", "--", "true"]));
    let after = std::fs::read(t.registry_path()).unwrap();
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: ports of the services to start are already in use:\n  port {port} (web):"
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "hint: a service of this worktree runs in the background there: stop it with 'wtenv down' ('wtenv status' shows them), then run wtenv run again"
        ),
        "{out}"
    );
    assert_eq!(after, before, "{out}");
}
