//! wtenv out of descriptors (EMFILE): whatever failed, the error names
//! the OS error and says what to do (raise the limit), with the exit code
//! of a spawn that hit the same limit where a service could not start.

use std::path::Path;
use std::time::Duration;

use crate::supervise::Wtenv;
use crate::support::{TestEnv, run, wait_for};

/// The hint for EMFILE, wherever it is met.
const HINT: &str =
    "hint: too many files are open: raise the limit (ulimit -n) or close some, then run it again";

/// The lowest descriptor `pid` has free: with its limit one above, that
/// one alone is left (a socket fits, a pipe's two ends do not). The
/// least of a few looks, so that one made for a moment (a health check's
/// socket) is not taken for one kept.
fn lowest_free_fd(pid: u32) -> u32 {
    let mut lowest = u32::MAX;
    for _ in 0..5 {
        let open: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let free = (0..).find(|fd| !open.contains(fd)).unwrap();
        lowest = lowest.min(free);
        std::thread::sleep(Duration::from_millis(20));
    }
    lowest
}

/// `up` out of descriptors when it made the pipes of a service's output
/// said `could not create a pipe for service second`: no OS error, no
/// hint, exit 1. It now says the OS error, with the hint and exit code
/// (126) of a spawn that hit the same limit. `second` waits for `first`,
/// which waits for a file: once it is there, the limit (lowered from
/// outside with prlimit to leave one descriptor) lets `first`'s check
/// connect, and no pipe be made.
#[test]
fn a_service_whose_output_pipe_cannot_be_made_says_why_and_what_to_do() {
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.first]
run = "while [ ! -e go ]; do sleep 0.05; done; exec python3 -m http.server $FIRST_PORT --bind 127.0.0.1"
[services.second]
run = "sleep 30"
depends_on = ["first"]
"#,
    );
    let mut w = Wtenv::start(&t, &["up"]);
    assert!(
        wait_for(Duration::from_secs(30), || w
            .stderr_text()
            .contains("first  | starting")),
        "{}",
        w.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let limit = lowest_free_fd(w.pid()) + 1;
    let out = run(std::process::Command::new("prlimit")
        .arg(format!("--pid={}", w.pid()))
        .arg(format!("--nofile={limit}:")));
    assert_eq!(out.code, Some(0), "{out}");
    std::fs::write(t.repo.join("go"), "").unwrap();
    let status = w.wait();
    let stderr = w.stderr_text();
    assert_eq!(status.code(), Some(126), "{status:?}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: could not create a pipe for service second: Too many open files (os error 24)\n{HINT}\n"
        )),
        "{stderr}"
    );
}

/// `wtenv ARGS` in `dir` under `ulimit -n N`, for each N from 4 to 24,
/// with a state directory of its own each time: every error that names
/// EMFILE is followed by the hint. Returns those errors.
fn out_of_descriptors(t: &TestEnv, dir: &Path, args: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for n in 4..=24 {
        let state = t.root().join(format!("state-{n}"));
        let mut cmd = std::process::Command::new("sh");
        t.apply_env(&mut cmd);
        cmd.current_dir(dir)
            .env("WTENV_STATE_DIR", &state)
            .arg("-c")
            .arg(format!("ulimit -n {n} && exec \"$0\" {args}"))
            .arg(env!("CARGO_BIN_EXE_wtenv"));
        let out = run(&mut cmd);
        let lines: Vec<&str> = out.stderr.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("error: ") && line.contains("Too many open files (os error 24)") {
                assert_eq!(out.code, Some(1), "ulimit -n {n}: {out}");
                assert_eq!(lines.get(i + 1), Some(&HINT), "ulimit -n {n}: {out}");
                errors.push(line.to_string());
            }
        }
    }
    errors
}

/// A registry's read or write, or a probe, that failed for want of a
/// descriptor said the OS error and nothing to do about it (no hint):
/// each now gets the hint a spawn gets for it.
#[test]
fn the_state_directory_and_the_probe_out_of_descriptors_say_what_to_do() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    let errors = out_of_descriptors(&t, &t.repo, "env");
    // Each of them is met somewhere in the sweep: the test proves
    // something.
    for said in [
        "could not read registry",
        "(replacing registry",
        "could not probe ports",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(said)),
            "never met {said:?}: {errors:#?}"
        );
    }
}

/// A worktree's `.git` (or its `commondir`) that could not be read for
/// want of a descriptor got the hint "fix or remove it", which tells the
/// user to delete what makes the directory a worktree. An I/O error now
/// says what failed with the hint for it; "fix or remove it" is kept for
/// what is there (a loop of links).
#[test]
fn a_git_file_out_of_descriptors_is_not_to_be_removed() {
    let t = TestEnv::new();
    let wt = t.add_worktree("feature-fd");
    // `run` sets up its signal handling first: fewer descriptors are
    // left for git's files than `env` has.
    let errors = out_of_descriptors(&t, &wt, "run -- true");
    assert!(
        errors.iter().any(|e| e.contains("/.git")),
        "never met reading git's files: {errors:#?}"
    );
    // A loop is what is there.
    let looped = t.root().join("looped");
    std::fs::create_dir(&looped).unwrap();
    std::os::unix::fs::symlink(".git", looped.join(".git")).unwrap();
    let out = run(&mut t.wtenv_in(&looped, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .ends_with("hint: fix or remove it, or run wtenv from another directory\n"),
        "{out}"
    );
}
