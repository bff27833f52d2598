//! How `up` ends when restarts run out, and what a restarted run that
//! fails its readiness becomes.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{health_server, serve, set_code, wait_exit, wait_text};
use crate::supervise::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::TestEnv;

/// `restart = "always"` of a service that keeps exiting 0 reached the
/// limit and `up` exited 0, its last status: a stop for the limit is a
/// failure, said with the last status when that is one, else 1.
#[test]
fn reaching_the_restart_limit_after_exits_with_0_is_exit_1() {
    let t = TestEnv::new();
    t.write_config("[services.tr]\nrun = \"true\"\nrestart = \"always\"\n");
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "tr | starting", PATIENCE);
    // Backoff 1 + 2 + 4 + 8 + 16 s before the sixth exit ends it.
    let status = wait_exit(&mut w, Duration::from_secs(120));
    let stderr = w.stderr_text();
    assert!(
        stderr.ends_with(
            "tr | ended (exit code 0)\ntr | restart limit reached: 5 restarts in 60s; stopping all\n"
        ),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_no_holds(&t);
}

/// A restarted run that is not ready within `ready_timeout` stopped `up`
/// as a failed start does (`error: service api not ready after 5s`),
/// restarts left or not. Only the first start fails fast; a restarted
/// run not ready in time is that run's failure: it is stopped, and the
/// restart policy applies, said on one line.
#[test]
fn a_restarted_run_not_ready_in_time_is_restarted_not_the_end_of_up() {
    let t = TestEnv::new();
    health_server(&t);
    t.write_config(&format!(
        r#"
[services.api]
run = "{api}"
health = {{ http = "/healthz", interval = "200ms", retries = 1 }}
restart = "on-failure"
ready_timeout = "5s"
"#,
        api = serve(&t, "api", "API_PORT"),
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "api | ready in ", PATIENCE);
    // Unhealthy, restarted, and the new run answers 503 past its timeout.
    set_code(&t, "api", 503);
    wait_text(&w, "api | restarting in 1s (1/5)", PATIENCE);
    wait_text(
        &w,
        "api | not ready after 5s: GET /healthz -> 503; restarting in 2s (2/5)\n",
        PATIENCE,
    );
    set_code(&t, "api", 200);
    assert!(
        crate::support::wait_for(PATIENCE, || w
            .stderr_text()
            .matches("api | ready in ")
            .count()
            == 2),
        "{}",
        w.stderr_text()
    );
    assert!(w.child.try_wait().unwrap().is_none(), "up runs on");
    w.signal(Signal::SIGINT);
    let status = w.wait();
    let stderr = w.stderr_text();
    assert_eq!(status.signal(), Some(Signal::SIGINT as i32), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    // The run stopped for it says no other end.
    assert!(!stderr.contains("api | ended"), "{stderr}");
    assert_no_holds(&t);
}
