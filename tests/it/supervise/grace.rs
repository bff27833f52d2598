//! What wtenv says while it waits out the grace: on a terminal, a second
//! after the first signal it received, that it waits and that a second
//! Ctrl-C kills now (not under `-q`); when the grace ends in SIGKILL, what
//! it killed (how many, and the first), terminal or not, `-q` or not.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::{TestEnv, Tmux, wait_for};

/// A `sh -c` line that ignores SIGINT and SIGTERM (its `sleep` too: an
/// ignored signal stays ignored across exec) once it touched `ready`.
pub(super) fn stubborn(ready: &Path) -> String {
    format!(
        "trap '' INT TERM; touch {}; exec sleep 600",
        ready.display()
    )
}

/// Not on a terminal: no waiting line (no one to press Ctrl-C again), but
/// the SIGKILL is said, under `-q` too.
#[test]
fn without_a_terminal_only_the_kill_after_the_grace_is_said_quiet_or_not() {
    for quiet in [false, true] {
        let t = TestEnv::new();
        let ready = t.root().join("ready");
        let line = stubborn(&ready);
        let mut args = vec!["run", "--grace", "1s", "--", "sh", "-c", &line];
        if quiet {
            args.insert(0, "-q");
        }
        let mut w = Wtenv::start(&t, &args);
        assert!(wait_for(PATIENCE, || ready.exists()), "{}", w.stderr_text());
        // wtenv's one child: `sh`, which exec'd `sleep 600`.
        let children = format!("/proc/{0}/task/{0}/children", w.pid());
        let leader = std::fs::read_to_string(children).unwrap();
        w.signal(Signal::SIGTERM);
        let status = w.wait();
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
        assert_eq!(
            w.stderr_text(),
            format!(
                "wtenv: sh did not stop within 1s: killed 1 process, pid {} (sleep 600)\n",
                leader.trim()
            ),
            "quiet: {quiet}"
        );
        assert_no_holds(&t);
    }
}

/// `up` on a terminal: Ctrl-C reaches wtenv (its services never have the
/// terminal); a second later it says it waits for the services still
/// running, then that it killed them.
#[test]
fn up_on_a_terminal_says_it_waits_for_the_services_then_that_it_killed_them() {
    let t = TestEnv::new();
    let (web, api) = (t.root().join("web.ready"), t.root().join("api.ready"));
    t.write_config(&format!(
        "[services.web]\nrun = \"{}\"\nready_timeout = \"60s\"\n\
         [services.api]\nrun = \"{}\"\nready_timeout = \"60s\"\n",
        stubborn(&web),
        stubborn(&api)
    ));
    let tmux = Tmux::start_bash(&t);
    tmux.line(
        &t,
        &format!("{} up --grace 3s", env!("CARGO_BIN_EXE_wtenv")),
    );
    assert!(
        wait_for(PATIENCE, || web.exists() && api.exists()),
        "{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["C-c"]);
    let sent = Instant::now();
    let waiting = "wtenv: waiting up to 3s for services web, api to stop; \
                   Ctrl-C again to kill them now";
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains(waiting)),
        "{}",
        tmux.pane(&t)
    );
    assert!(
        sent.elapsed().as_millis() >= 1000,
        "said before the services had a second"
    );
    let killed = "wtenv: services web, api did not stop within 3s: killed";
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains(killed)),
        "{}",
        tmux.pane(&t)
    );
    let pane = tmux.pane(&t);
    assert_eq!(pane.matches("waiting up to").count(), 1, "{pane}");
    tmux.expect_status(&t, 130);
    assert_no_holds(&t);
}

/// `run` signalled from the shell (its child has the terminal, so a
/// Ctrl-C would reach the child, not wtenv): the waiting line names the
/// command; `-q` drops it and keeps the kill.
#[test]
fn run_on_a_terminal_says_it_waits_for_its_command_unless_quiet() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    for (round, quiet) in [(0, ""), (1, "-q ")] {
        let ready = t.root().join(format!("ready-{round}"));
        tmux.line(
            &t,
            &format!(
                "{} {quiet}run --grace 2s -- sh -c \"{}\" &",
                env!("CARGO_BIN_EXE_wtenv"),
                stubborn(&ready)
            ),
        );
        assert!(wait_for(PATIENCE, || ready.exists()), "{}", tmux.pane(&t));
        tmux.line(&t, "kill -INT %1");
        let killed = "wtenv: sh did not stop within 2s: killed";
        assert!(
            wait_for(PATIENCE, || tmux.pane(&t).matches(killed).count()
                == round + 1),
            "{}",
            tmux.pane(&t)
        );
        let waiting = "wtenv: waiting up to 2s for sh to stop; Ctrl-C again to kill it now";
        assert_eq!(
            tmux.pane(&t).matches(waiting).count(),
            1,
            "{}",
            tmux.pane(&t)
        );
        // The job table is empty for the next round's `%1` once wtenv
        // exited, which it does once it released its ports.
        tmux.line(&t, "wait");
        let released = || {
            let reg = t.registry();
            let allocations = reg["allocations"].as_array().unwrap();
            allocations.iter().all(|a| a.get("holders").is_none())
        };
        assert!(wait_for(PATIENCE, released), "{}", tmux.pane(&t));
    }
    assert_no_holds(&t);
}

/// QA finding: a `run` in the foreground, its command holding the
/// terminal, signalled from elsewhere (`kill`), said `Ctrl-C again to
/// kill it now`; but a Ctrl-C there reaches the command's group, not
/// wtenv, and wtenv waited out the whole grace. The line says to send
/// wtenv the Ctrl-C itself, naming its pid, and that kills at once.
#[test]
fn run_whose_command_has_the_terminal_says_to_send_wtenv_the_ctrl_c() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let ready = t.root().join("ready");
    tmux.line(
        &t,
        &format!(
            "{} run --grace 60s -- sh -c \"{}\"",
            env!("CARGO_BIN_EXE_wtenv"),
            stubborn(&ready)
        ),
    );
    assert!(wait_for(PATIENCE, || ready.exists()), "{}", tmux.pane(&t));
    let wtenv = std::process::Command::new("pgrep")
        .args([
            "-f",
            "-x",
            &format!("{} run --grace 60s .*", env!("CARGO_BIN_EXE_wtenv")),
        ])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&wtenv.stdout)
        .trim()
        .parse()
        .unwrap();
    let send = |sig: Signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
    };
    send(Signal::SIGTERM);
    let waiting = format!("wtenv: waiting up to 1m for sh to stop; kill -INT {pid} to kill it now");
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains(&waiting)),
        "{}",
        tmux.pane(&t)
    );
    let asked = Instant::now();
    send(Signal::SIGINT);
    // Killed at once, as asked (said only of a kill unasked: the grace's).
    assert!(
        wait_for(PATIENCE, || !super::alive(pid as u32)),
        "{}",
        tmux.pane(&t)
    );
    assert!(asked.elapsed().as_secs() < 30, "{}", tmux.pane(&t));
    assert!(
        !tmux.pane(&t).contains("did not stop within"),
        "{}",
        tmux.pane(&t)
    );
    assert_no_holds(&t);
}
