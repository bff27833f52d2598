//! The detached wtenv supervisor, where no user manager answers: it serves
//! until `down`, releases when stopped from outside, keeps its logs under
//! their limit (followed by `logs -f`), and starts again under any umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{
    DownOnDrop, free, holders, listeners, naming, ports, serves, signal, status_cells,
    two_http_services,
};
use crate::supervise::{PATIENCE, alive};
use crate::support::{Run, TestEnv, run, run_bounded, wait_for};

/// The detached wtenv supervisor, where no user manager answers (the
/// test's environment has no XDG_RUNTIME_DIR).
#[test]
fn the_wtenv_back_end_serves_detached_until_down_releases_everything() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    let (web, api) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "--detach"]));
    assert_eq!(up.code, Some(0), "{up}");
    assert!(serves(web) && serves(api), "{up}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(serves(web) && serves(api));
    let status = run(&mut t.wtenv(&["status"]));
    let cells = status_cells(&status, "web");
    assert_eq!(
        [1, 3, 5, 6].map(|i| cells[i].as_str()),
        ["wtenv", "running", &*web.to_string(), "healthy"],
        "manager, state, port, health: {status}"
    );
    // Its own session: no terminal, no shell's job control reaches it.
    let supervisor: u32 = holders(&t, "web")[0]["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(supervisor as i32)))
            .unwrap()
            .as_raw() as u32,
        supervisor
    );
    let logs = run(&mut t.wtenv(&["logs"]));
    assert!(logs.stdout.contains("web | web says hello\n"), "{logs}");
    assert!(logs.stdout.contains("api | api says hello\n"), "{logs}");
    let servers: Vec<u32> = listeners(web).into_iter().chain(listeners(api)).collect();
    assert!(servers.len() >= 2, "a server on each port: {servers:?}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web) && free(api));
    assert!(holders(&t, "web").is_empty() && holders(&t, "api").is_empty());
    for pid in servers.into_iter().chain([supervisor]) {
        assert!(!alive(pid), "{pid} survived down");
    }
}

/// The detached supervisor lets go of what its caller left open beyond
/// stdio without close-on-exec (`exec 7>&1`, a CI runner's pipe): its
/// service does not inherit it, so `$(wtenv up -d)` ends while it serves.
#[test]
fn the_wtenv_back_end_lets_go_of_descriptors_its_caller_passed_down() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    let (web, _) = ports(&t);
    let mut cmd = std::process::Command::new("bash");
    t.apply_env(&mut cmd);
    cmd.args([
        "-c",
        "out=$(\"$0\" up -d --manager wtenv 7>&1 2>&1); echo \"[$out]\"",
        env!("CARGO_BIN_EXE_wtenv"),
    ])
    .current_dir(&t.repo);
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(serves(web), "{out}");
}

#[test]
fn the_wtenv_back_end_releases_when_its_supervisor_is_stopped_from_outside() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    let (web, api) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let supervisor = |s: &str| holders(&t, s)[0]["pid"].as_u64().unwrap() as i32;
    // SIGTERM: it stops its service and releases, as in the foreground.
    let web_server = listeners(web);
    assert!(!web_server.is_empty(), "nothing listens on {web}");
    signal(supervisor("web"), Signal::SIGTERM);
    assert!(wait_for(PATIENCE, || holders(&t, "web").is_empty() && free(web)));
    assert!(web_server.iter().all(|&p| !alive(p)));
    // SIGKILL: nobody releases. Its server outlives it (no manager above
    // it): `status` says so, and `down` stops it, proven of its group, and
    // then the hold goes.
    let api_supervisor = supervisor("api");
    let api_server = listeners(api);
    assert!(!api_server.is_empty());
    signal(api_supervisor, Signal::SIGKILL);
    assert!(wait_for(PATIENCE, || !alive(api_supervisor as u32)));
    // (No request here: an orphan's next log line goes to a dead pipe.)
    assert!(api_server.iter().all(|&p| alive(p)), "the orphan lives on");
    // The sweep keeps a dead holder's hold while its orphans live.
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(holders(&t, "api").len(), 1, "{}", t.registry());
    // The hold names its pid's own command, the supervisor's (it named
    // the service's command line, which another pid runs).
    let validate = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    let said = format!(
        "holder pid {api_supervisor} (wtenv run -- sh -c 'echo api says hello; exec python3 -u -m http.server $API_PORT --bind 127.0.0.1') is gone, its process group still runs"
    );
    assert!(validate.stdout.contains(&said), "{validate}");
    let status = run(&mut t.wtenv(&["status"]));
    let line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("api"))
        .unwrap();
    assert!(line.contains("orphaned"), "{status}");
    let web_line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap();
    assert!(web_line.contains("inactive"), "{status}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(api), "down stopped the orphan");
    assert!(api_server.iter().all(|&p| !alive(p)));
    assert!(holders(&t, "api").is_empty(), "{}", t.registry());
    // What had ended on its own is said as not running, not as stopped;
    // its record goes all the same.
    let api_unit = naming(&t).unit("api");
    assert!(
        down.stderr
            .contains(&format!("wtenv: stopped api ({api_unit}")),
        "{down}"
    );
    assert!(
        down.stderr
            .contains("wtenv: web was not running (inactive); its record is removed\n"),
        "{down}"
    );
    assert!(!down.stderr.contains("stopped web"), "{down}");
    let records = std::fs::read_dir(t.state_dir().join("background"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(records, 0, "down leaves a record");
    let status = run(&mut t.wtenv(&["status"]));
    assert!(!status.stdout.contains("web"), "{status}");
}

#[test]
fn the_wtenv_back_end_keeps_each_log_under_its_size_limit() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // 3,000 lines of 100 bytes (300 KB) before it serves.
    t.write_config(
        r#"
[services.web]
run = "python3 -c 'import sys; [print(\"%04d \" % i + \"x\" * 94) for i in range(3000)]'; exec python3 -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    let up = run(&mut t.wtenv(&["up", "-d", "--log-limit", "64K"]));
    assert_eq!(up.code, Some(0), "{up}");
    let dir = t.state_dir().join("background");
    let name = naming(&t).unit("web");
    let log = dir.join(format!("{name}.log"));
    let previous = dir.join(format!("{name}.log.1"));
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(size(&log) <= 64 * 1024, "{}", size(&log));
    assert!(size(&previous) > 0 && size(&previous) <= 64 * 1024);
    let last = run(&mut t.wtenv(&["logs", "web", "-n", "1"]));
    assert!(last.stdout.starts_with("web | 2999 xxx"), "{last}");
    let all = run(&mut t.wtenv(&["logs", "web"]));
    assert!(all.stdout.lines().count() < 3000 && all.stdout.lines().count() > 600);
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
}

/// Under a umask of 0277 a service's log was made 0400: the next
/// `up --detach` could not open it, and the service "ended (exit code
/// 1)" at once. Each log keeps its owner's `rw`.
#[test]
fn the_wtenv_back_end_starts_again_under_a_umask_that_takes_the_owners_bits() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    t.give_to_nobody();
    let wtenv = |args: &[&str]| run(&mut t.wtenv_as_nobody_under_umask("277", args));
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Run);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            (self.0)(&["down", "--timeout", "30s"]);
        }
    }
    let _down = Down(&wtenv);
    for _ in 0..2 {
        let up = wtenv(&["up", "-d", "--manager", "wtenv"]);
        assert_eq!(up.code, Some(0), "{up}");
        assert!(serves(t.ports.port(0)), "{up}");
        let down = wtenv(&["down"]);
        assert_eq!(down.code, Some(0), "{down}");
    }
    let log = t
        .state_dir()
        .join(format!("background/{}.log", naming(&t).unit("web")));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn logs_follow_prints_new_lines_as_the_service_writes_them() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "(i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done) & exec python3 -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    let up = run(&mut t.wtenv(&["up", "-d"]));
    assert_eq!(up.code, Some(0), "{up}");
    let out = t.root().join("follow.out");
    let mut follow = t
        .wtenv(&["logs", "web", "-f", "-n", "1"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    // Lines written after `logs -f` started arrive, prefixed, in order.
    let ticks = || -> Vec<u32> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("web | tick ")?.parse().ok())
            .collect()
    };
    assert!(wait_for(PATIENCE, || ticks().len() >= 5), "{:?}", ticks());
    let seen = ticks();
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
}

/// A service's stdout and stderr went through two pipes, read by two
/// threads: `echo 1; echo 2 >&2` was logged in either order. One pipe,
/// as fd 1 and fd 2, keeps the order of the writes.
#[test]
fn the_log_keeps_the_order_of_the_services_stdout_and_stderr_lines() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "for i in $(seq 1 50); do echo out $i; echo err $i >&2; done; exec python3 -m http.server $WEB_PORT --bind 127.0.0.1 2>/dev/null"
"#,
    );
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let logs = run(&mut t.wtenv(&["logs", "web"]));
    let expected: String = (1..=50)
        .map(|i| format!("web | out {i}\nweb | err {i}\n"))
        .collect();
    assert!(logs.stdout.starts_with(&expected), "{logs}");
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
}

/// The supervisor's SIGKILL at the end of its grace (`down` of a service
/// whose shell and server ignore SIGTERM) was said on its stderr only,
/// which in the background is the journal or nothing: the log showed
/// the service `ended (killed by SIGKILL)`, not who killed what. It is
/// said there too, before that line, kept by `-q`.
#[test]
fn the_log_says_what_the_supervisor_killed_when_its_grace_ended() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    the_log_says_what_the_grace_killed(&t, "wtenv", &|args| t.wtenv(args));
}

/// `-q up -d --manager MANAGER --grace 1s` of a service whose shell and
/// server ignore SIGTERM, `down`, then its log's last lines: what the
/// supervisor killed, then how the service ended. `wtenv` makes each
/// command (in the manager's environment).
pub(super) fn the_log_says_what_the_grace_killed(
    t: &TestEnv,
    manager: &str,
    wtenv: &dyn Fn(&[&str]) -> Command,
) {
    t.write_config(
        "[services.web]\nrun = \"trap '' TERM; python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let up = run(&mut wtenv(&[
        "-q",
        "up",
        "-d",
        "--manager",
        manager,
        "--grace",
        "1s",
    ]));
    assert_eq!(up.code, Some(0), "{up}");
    let down = run(&mut wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    let logs = run(&mut wtenv(&["logs", "web"]));
    let lines: Vec<&str> = logs.stdout.lines().collect();
    let [.., killed, ended] = lines[..] else {
        panic!("{logs}");
    };
    let said = "web | wtenv: service web did not stop within 1s: killed 2 processes, pid ";
    assert!(
        killed.starts_with(said) && killed.ends_with(" and 1 more"),
        "{logs}"
    );
    assert_eq!(ended, "web | wtenv: service web ended (killed by SIGKILL)");
}

/// `down` stopping the orphan of a killed supervisor that ignores
/// SIGTERM: its SIGKILL, once half of `--timeout` has passed, is said as
/// the supervisor would have said it, how many and the first. It used to
/// be sent without a word; then said on `down`'s stderr only: the
/// service's log, which `logs` shows, says it too, as it says the
/// supervisor's own SIGKILL.
#[test]
fn down_says_the_sigkill_of_an_orphan_that_outlived_its_grace() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let pidfile = t.root().join("web.pid");
    t.write_config(&format!(
        "[services.web]\nrun = \"trap '' TERM; echo $$ > {0}.tmp; mv {0}.tmp {0}; exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
        pidfile.display()
    ));
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    assert!(wait_for(PATIENCE, || pidfile.exists()), "{up}");
    let sleep: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let supervisor = holders(&t, "web")[0]["pid"].as_u64().unwrap() as i32;
    signal(supervisor, Signal::SIGKILL);
    assert!(wait_for(PATIENCE, || !alive(supervisor as u32)));
    assert!(alive(sleep), "the orphan lives on");
    // As the kernel has it (a `python3` on PATH may exec another path).
    let command = std::fs::read(format!("/proc/{sleep}/cmdline")).unwrap();
    let command = String::from_utf8(command).unwrap();
    let command = command.trim_end_matches('\0').replace('\0', " ");
    let down = run(&mut t.wtenv(&["down", "--timeout", "2s"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(!alive(sleep), "{down}");
    let said = format!(
        "wtenv: service web did not stop within 1s: killed 1 process, pid {sleep} ({command})"
    );
    assert!(down.stderr.contains(&format!("{said}\n")), "{down}");
    let logs = run(&mut t.wtenv(&["logs", "web"]));
    assert_eq!(logs.code, Some(0), "{logs}");
    assert_eq!(
        logs.stdout.lines().last(),
        Some(format!("web | {said}").as_str()),
        "{logs}"
    );
}

/// QA finding: `down web` while only `api` ran said `nothing of this
/// worktree runs in the background`: it speaks of the services named.
#[test]
fn down_of_a_service_not_running_says_so_of_that_service() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "api", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let down = run(&mut t.wtenv(&["down", "web"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert_eq!(
        down.stderr,
        "wtenv: web does not run in the background; nothing to stop\n"
    );
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status_cells(&status, "api")[3], "running", "{status}");
}

/// QA finding: an `up -d` SIGKILLed between starting a service's
/// supervisor and writing its record left a unit that no command found
/// (`status`, `down` and `validate --fix` saw nothing; it served on). The
/// supervisor now starts nothing before `up -d` says, on its stdin, that
/// the record is written: its stdin's end without that (the `up -d`
/// killed) ends it with nothing started and nothing written.
#[test]
fn the_supervisor_starts_nothing_until_up_detach_recorded_it() {
    let t = TestEnv::new();
    two_http_services(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let before = std::fs::read(t.registry_path()).unwrap();
    let (web, _) = ports(&t);
    let supervisor = |t: &TestEnv| {
        let mut cmd = t.wtenv(&[
            "run",
            "--setsid",
            "--await-start",
            "--service",
            "web",
            "--unit",
            "wtenv:wtenv-test-web",
            "--",
            "sh",
            "-c",
            "exec python3 -m http.server $WEB_PORT --bind 127.0.0.1",
        ]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Killed before it recorded the unit: the supervisor's stdin ends.
    let mut orphaned = supervisor(&t);
    std::thread::sleep(Duration::from_millis(300));
    assert!(free(web), "it started before it was let go");
    drop(orphaned.stdin.take());
    let ended = crate::support::wait_for(
        PATIENCE,
        || matches!(orphaned.try_wait(), Ok(Some(status)) if status.success()),
    );
    if !ended {
        signal(orphaned.id(), Signal::SIGTERM);
        let _ = orphaned.wait();
    }
    assert!(ended, "it went on without being let go");
    assert!(free(web));
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
    // Recorded: it goes on, and serves.
    let mut let_go = supervisor(&t);
    std::io::Write::write_all(&mut let_go.stdin.take().unwrap(), b"\n").unwrap();
    assert!(crate::support::wait_for(PATIENCE, || serves(web)));
    signal(let_go.id(), Signal::SIGTERM);
    let_go.wait().unwrap();
    assert!(crate::support::wait_for(PATIENCE, || free(web)));
}
