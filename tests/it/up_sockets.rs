//! `wtenv up`'s start, watch and checks of services with `socket = true`:
//! wtenv holds the listening socket, so its port accepts whatever the
//! server does; what is said of the service must come from the server.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::supervise::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::{TestEnv, wait_for};

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
