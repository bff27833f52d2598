//! `up`'s services beside a dev server: web (Vite) and api (a Python
//! server) stopped by Ctrl-Z and resumed by `fg` together, a leftover
//! server of the worktree refused, a server ignoring its port named, the
//! output of `up` into a file; the signal state children start with
//! (`run`, `up`, `up -d`); and `ports` and `list` fitted to the terminal
//! that shows a holder's long command line.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{VITE_PATH, expect, expect_nth, http_status, npm_run_dev, refuses, serves};
use crate::supervise::{PATIENCE, Wtenv, assert_no_holds, reserve_app};
use crate::support::{PyListener, TestEnv, Tmux, wait_for};

/// `up` with web (Vite) and api (a Python server), in `t`'s worktree.
fn web_and_api(t: &TestEnv, api: &str) {
    t.write_config(&format!(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"{}\"\n[services.api]\nenv = [\"API_PORT\"]\nrun = \"{api}\"\n",
        npm_run_dev()
    ));
}

/// Services take ports in declaration order: web the block's first, api
/// the second.
fn ports_of(t: &TestEnv) -> (u16, u16) {
    (t.ports.port(0), t.ports.port(1))
}

#[test]
fn ctrl_z_stops_every_service_of_up_and_fg_resumes_them() {
    let t = TestEnv::new();
    web_and_api(&t, "python3 -m http.server $API_PORT --bind 127.0.0.1");
    let (web, api) = ports_of(&t);
    let tmux = Tmux::start_bash(&t);
    let line = format!("{} up --grace 120s", env!("CARGO_BIN_EXE_wtenv"));
    tmux.keys(&t, &[&line, "Enter"]);
    assert!(serves(web), "{}", tmux.pane(&t));
    assert!(
        wait_for(PATIENCE, || http_status(api, "/", Duration::from_secs(2))
            == Some(200)),
        "{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["C-z"]);
    expect(&tmux, &t, "Stopped", "Ctrl-Z");
    let second = Duration::from_secs(1);
    assert_eq!(http_status(web, VITE_PATH, second), None, "web answered");
    assert_eq!(http_status(api, "/", second), None, "api answered");
    tmux.keys(&t, &["fg", "Enter"]);
    assert!(serves(web), "{}", tmux.pane(&t));
    assert_eq!(
        http_status(api, "/", Duration::from_secs(5)),
        Some(200),
        "api after fg"
    );
    tmux.keys(&t, &["C-c"]);
    tmux.expect_status(&t, 130);
    assert!(refuses(web) && refuses(api));
    assert_no_holds(&t);
}

#[test]
fn up_refuses_a_leftover_server_of_its_own_worktree_naming_its_pid() {
    let t = TestEnv::new();
    web_and_api(&t, "python3 -m http.server $API_PORT --bind 127.0.0.1");
    let out = crate::support::run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let (web, _) = ports_of(&t);
    // An earlier server of this very worktree still listens on web's port.
    let leftover = PyListener::start(&t.repo, "4", "127.0.0.1", web, "");
    let out = crate::support::run(t.wtenv(&["up"]).stdin(std::process::Stdio::null()));
    assert_eq!(out.code, Some(1), "{out}");
    let pid = leftover.pid();
    assert!(
        out.stderr
            .contains(&format!("port {web} (web): pid {pid} (")),
        "{out}"
    );
    assert!(out.stderr.contains(&format!("kill {pid}")), "{out}");
    assert!(
        !out.stdout.contains("web |") && !out.stdout.contains("api |"),
        "no service was started: {out}"
    );
    assert_no_holds(&t);
}

#[test]
fn a_dev_server_ignoring_its_port_is_named_as_soon_as_it_listens() {
    let t = TestEnv::new();
    let elsewhere = t.ports.port(15);
    // Vite told another port than the worktree's: the warning must come
    // from the readiness ticks, long before this 10-minute timeout.
    t.write_config(&format!(
        "[services.web]\nenv = [\"WEB_PORT\"]\nrun = \"PORT={elsewhere} {}\"\nready_timeout = \"10m\"\n",
        npm_run_dev()
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "20s"]);
    let own = t.ports.port(0);
    assert!(serves(elsewhere), "{}", w.stderr_text());
    let listening = Instant::now();
    let expected =
        format!("warning: service web listens on port {elsewhere} instead of its port {own}");
    assert!(
        wait_for(PATIENCE, || w.stderr_text().contains(&expected)),
        "{}",
        w.stderr_text()
    );
    eprintln!(
        "warned {:?} after Vite answered on the other port",
        listening.elapsed()
    );
    w.signal(Signal::SIGINT);
    assert_eq!(w.wait().signal(), Some(Signal::SIGINT as i32));
    assert!(refuses(elsewhere));
    assert_no_holds(&t);
}

#[test]
fn up_into_a_file_writes_no_escape_codes_and_python_lines_come_as_printed() {
    let t = TestEnv::new();
    // api prints one line, then runs on: only an unbuffered Python shows
    // it before it exits. It also reports what up gave it.
    web_and_api(
        &t,
        "python3 -c 'import os,time; print(\\\"api-up\\\", \\\"FC=\\\" + os.environ.get(\\\"FORCE_COLOR\\\", \\\"-\\\"), \\\"PU=\\\" + os.environ.get(\\\"PYTHONUNBUFFERED\\\", \\\"-\\\")); time.sleep(600)'",
    );
    let (web, _) = ports_of(&t);
    let log = t.root().join("up.log");
    let tmux = Tmux::start_bash(&t);
    let line = format!("{} up > {}", env!("CARGO_BIN_EXE_wtenv"), log.display());
    tmux.keys(&t, &[&line, "Enter"]);
    assert!(serves(web), "{}", tmux.pane(&t));
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(PATIENCE, || read().contains("api | api-up FC=- PU=1\n")),
        "the Python line did not come while it runs: {:?}",
        read()
    );
    // Messages still go to the terminal, on stderr.
    expect(&tmux, &t, &format!(" on port {web}"), "ready");
    tmux.keys(&t, &["C-c"]);
    tmux.expect_status(&t, 130);
    let text = read();
    assert!(text.contains("web | "), "{text:?}");
    assert!(!text.contains('\x1b'), "escape codes in the file: {text:?}");

    // On the terminal itself, services are told to keep their colours.
    let line = format!("{} up api", env!("CARGO_BIN_EXE_wtenv"));
    tmux.keys(&t, &[&line, "Enter"]);
    expect(&tmux, &t, "api-up FC=1 PU=1", "on a terminal");
    tmux.keys(&t, &["C-c"]);
    tmux.keys(&t, &["echo rc=$?", "Enter"]);
    expect_nth(&tmux, &t, "rc=130", 2, "Ctrl-C");
    assert_no_holds(&t);
}

/// The last mask line `name` of /proc/<pid>/status a child printed.
fn mask(pane: &str, name: &str) -> Option<String> {
    pane.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|m| m.trim().to_owned())
}

/// Execs its arguments with signals 32 and 33 (and what Python ignores)
/// back to their default. The
/// test process itself was started by posix_spawn (glibc leaves those two
/// ignored in such a child, and every descendant inherits that); a login
/// shell never is. glibc refuses to touch them, so the raw syscall
/// (x86_64 `rt_sigaction`, number 13; struct: handler, flags, restorer,
/// mask) makes the clean shell these tests start from.
const CLEAN_SIGNALS: &str = r#"
import ctypes, os, signal, sys
# What Python itself ignores, back to the default too.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
libc = ctypes.CDLL(None, use_errno=True)
default = (ctypes.c_ulong * 4)(0, 0, 0, 0)
for sig in (32, 33):
    assert libc.syscall(13, sig, default, None, 8) == 0, ctypes.get_errno()
os.execvp(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn children_start_with_the_signal_state_wtenv_was_started_with() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"PORT\"]\nrun = \"grep -E 'SigIgn|SigBlk' /proc/self/status > up-child.txt\"\n");
    let tmux = Tmux::start(
        &t,
        &t.repo,
        &[
            "python3",
            "-c",
            CLEAN_SIGNALS,
            "bash",
            "--norc",
            "--noprofile",
            "-i",
        ],
    );
    // The shell itself ignores nothing it would pass on.
    tmux.keys(&t, &["clear; grep SigIgn /proc/self/status", "Enter"]);
    expect(&tmux, &t, "SigIgn:", "the shell's child");
    assert_eq!(
        mask(&tmux.pane(&t), "SigIgn").as_deref(),
        Some("0000000000000000"),
        "{}",
        tmux.pane(&t)
    );
    let wtenv = env!("CARGO_BIN_EXE_wtenv");
    // From a shell that ignores and blocks nothing for its children.
    tmux.keys(
        &t,
        &[
            &format!("clear; {wtenv} run -- grep -E 'SigIgn|SigBlk' /proc/self/status"),
            "Enter",
        ],
    );
    expect(&tmux, &t, "SigBlk:", "run's child");
    let pane = tmux.pane(&t);
    assert_eq!(
        mask(&pane, "SigIgn").as_deref(),
        Some("0000000000000000"),
        "{pane}"
    );
    assert_eq!(
        mask(&pane, "SigBlk").as_deref(),
        Some("0000000000000000"),
        "{pane}"
    );

    tmux.keys(&t, &[&format!("{wtenv} up; echo up-rc=$?"), "Enter"]);
    expect(&tmux, &t, "up-rc=0", "up");
    let child = std::fs::read_to_string(t.repo.join("up-child.txt")).unwrap();
    assert_eq!(
        mask(&child, "SigIgn").as_deref(),
        Some("0000000000000000"),
        "{child}"
    );
    assert_eq!(
        mask(&child, "SigBlk").as_deref(),
        Some("0000000000000000"),
        "{child}"
    );

    // Under nohup, SIGHUP stays ignored for the child.
    let out = t.root().join("nohup.txt");
    tmux.keys(
        &t,
        &[
            &format!(
                "clear; nohup {wtenv} run -- grep SigIgn /proc/self/status > {} 2>&1; echo nohup-$((1 + 1))",
                out.display()
            ),
            "Enter",
        ],
    );
    expect(&tmux, &t, "nohup-2", "nohup");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        mask(&text, "SigIgn").as_deref(),
        Some("0000000000000001"),
        "{text}"
    );
    assert_no_holds(&t);
}

/// A service of the wtenv back end (`up -d`) starts with the signal state
/// of the shell that ran `up`, as `run`'s child does: its supervisor was
/// started by posix_spawn, which left glibc's signals 32 and 33 ignored in
/// it, and so in every service it started.
#[test]
fn detached_services_start_with_the_signal_state_up_was_started_with() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"grep SigIgn /proc/self/status > up-d-child.txt; exec python3 -m http.server $PORT --bind 127.0.0.1\"\n",
    );
    let mut up = std::process::Command::new("python3");
    t.apply_env(&mut up);
    let out = crate::support::run(
        up.current_dir(&t.repo)
            .args(["-c", CLEAN_SIGNALS, env!("CARGO_BIN_EXE_wtenv")])
            .args(["up", "-d", "--manager", "wtenv"]),
    );
    let down = crate::support::run(&mut t.wtenv(&["down"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(down.code, Some(0), "{down}");
    let child = std::fs::read_to_string(t.repo.join("up-d-child.txt")).unwrap();
    assert_eq!(
        mask(&child, "SigIgn").as_deref(),
        Some("0000000000000000"),
        "{child}"
    );
    assert_no_holds(&t);
}

#[test]
fn ports_and_list_fit_the_terminal_and_stay_whole_in_a_pipe_and_json() {
    let t = TestEnv::new();
    let port = reserve_app(&t);
    // A holder with a long command line.
    let long = format!("import time # {}", "x".repeat(150));
    let listener = PyListener::start(&t.repo, "4", "127.0.0.1", port, &long);
    let tail = "x".repeat(20);
    let tmux = Tmux::start_bash(&t);
    let status = tmux
        .cmd(&t)
        .args(["resize-window", "-t", "w", "-x", "120"])
        .status()
        .unwrap();
    assert!(status.success());
    let wtenv = env!("CARGO_BIN_EXE_wtenv");
    tmux.keys(
        &t,
        &[&format!("clear; {wtenv} ports; {wtenv} list"), "Enter"],
    );
    expect(&tmux, &t, "PATH", "list");
    let pane = tmux.pane(&t);
    let rows: Vec<&str> = pane
        .lines()
        .filter(|l| l.contains(&port.to_string()) && l.contains("listening (pid "))
        .collect();
    assert_eq!(rows.len(), 2, "a row in ports and one in list:\n{pane}");
    for row in rows {
        assert!(row.contains('…'), "not shortened: {row:?}\n{pane}");
        assert!(
            row.chars().count() <= 120,
            "wider than the terminal: {row:?}"
        );
    }
    // In a pipe and in JSON, the command is whole.
    let piped = crate::support::run(&mut t.wtenv(&["ports"]));
    assert!(piped.stdout.contains(&tail), "{piped}");
    assert!(
        piped.stdout.contains(&format!("pid {}", listener.pid())),
        "{piped}"
    );
    assert!(!piped.stdout.contains('…'), "{piped}");
    let json = crate::support::run(&mut t.wtenv(&["list", "--json"]));
    assert!(json.stdout.contains(&tail), "{json}");
}
