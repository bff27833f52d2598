//! How `up` ends when restarts run out, and what a restarted run that
//! fails its readiness becomes.

use super::{wait_exit, wait_text};
use crate::supervise::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::TestEnv;

use std::time::Duration;

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
