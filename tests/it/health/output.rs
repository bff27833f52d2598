//! What a failing `cmd` check printed is shown where its failure is said:
//! `pg_isready`'s reason was thrown away, and the hint sent the user to
//! an output that appeared nowhere.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;

use super::wait_text;
use crate::supervise::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::TestEnv;

#[test]
fn a_cmd_checks_last_lines_follow_its_not_ready_error_escaped() {
    let t = TestEnv::new();
    t.write_config(
        "[services.z]\nrun = \"sleep 60\"\nready_timeout = \"1s\"\nhealth = { cmd = \"echo some output; printf 'err\\\\033[31m\\\\n' >&2; exit 42\" }\n",
    );
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    let status = w.wait();
    let stderr = w.stderr_text();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: service z not ready after 1s: cmd \"echo some output; printf 'err\\\\033[31m\\\\n' >&2; exit 42\" -> exit 42\n  its output:\n    some output\n    err\\u{1b}[31m\nhint: "
        ),
        "{stderr}"
    );
    assert_no_holds(&t);
}

#[test]
fn an_unhealthy_lines_detail_holds_the_end_of_the_checks_output() {
    let t = TestEnv::new();
    let ok = t.root().join("ok");
    std::fs::write(&ok, "").unwrap();
    t.write_config(&format!(
        "[services.z]\nrun = \"sleep 60\"\nhealth = {{ cmd = \"test -e {} || {{ seq 1 7; exit 2; }}\", interval = \"200ms\", retries = 1 }}\n",
        ok.display()
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    wait_text(&w, "z | ready in ", PATIENCE);
    std::fs::remove_file(&ok).unwrap();
    wait_text(&w, "    7\n", PATIENCE);
    w.signal(Signal::SIGINT);
    assert_eq!(w.wait().signal(), Some(Signal::SIGINT as i32));
    let stderr = w.stderr_text();
    assert!(
        stderr.contains(
            " -> exit 2\nz |   the end of its output:\nz |     3\nz |     4\nz |     5\nz |     6\nz |     7\n"
        ),
        "{stderr}"
    );
    assert_no_holds(&t);
}
