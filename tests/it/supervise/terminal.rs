//! `run` under a real terminal (tmux): an interactive child reads its
//! input and dies on Ctrl-C; Ctrl-Z stops wtenv with its child and `fg`
//! gives both the terminal back.

use super::strays::{KillOnDrop, is_stopped, read_pid};
use super::{PATIENCE, alive, app_port, assert_all_clean, assert_no_holds, server_script};
use crate::support::{TestEnv, Tmux, wait_for};
use wtenv::process;

/// Waits until the child `sh -c` (or `bash -c`) whose script holds `marker` is the
/// foreground group of its terminal (stat: pgrp == tpgid): wtenv has
/// handed it the terminal. Keys typed before that can land while the
/// shell's line editor still has the terminal in raw mode, and never
/// reach the child as a line. (wtenv's own command line holds the marker
/// too, and is in the foreground before the child is: not it.)
fn wait_foreground(marker: &str) {
    let found = wait_for(PATIENCE, || {
        process::all_pids().into_iter().any(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let shell = cmd
                .split(|&b| b == 0)
                .next()
                .is_some_and(|w| w == b"sh" || w == b"bash");
            if !shell || !String::from_utf8_lossy(&cmd).contains(marker) {
                return false;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // Fields after comm: state ppid pgrp session tty_nr tpgid.
            f.len() > 5 && f[2] == f[5]
        })
    });
    assert!(found, "no foreground process runs {marker:?}");
}

#[test]
fn an_interactive_child_under_a_terminal_reads_input_and_dies_on_ctrl_c() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- sh -c 'read l; echo got:$l; python3 {} {}'",
        env!("CARGO_BIN_EXE_wtenv"),
        script.display(),
        pidfile.display()
    );
    tmux.keys(&t, &[&line, "Enter"]);
    // The child reads the terminal: it must not be stopped by SIGTTIN.
    wait_foreground("read l; echo got:");
    tmux.keys(&t, &["hello", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("got:hello")),
        "the child could not read its line:\n{}",
        tmux.pane(&t)
    );
    assert!(wait_for(PATIENCE, || pidfile.exists()), "{}", tmux.pane(&t));
    let server: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let port = app_port(&t);
    let pgid = process::pgid(server).unwrap();
    tmux.keys(&t, &["C-c"]);
    assert!(
        wait_for(PATIENCE, || !alive(server)),
        "Ctrl-C did not reach the child:\n{}",
        tmux.pane(&t)
    );
    tmux.expect_status(&t, 130);
    assert_all_clean(&t, pgid, server, port);
}

#[test]
fn ctrl_z_stops_wtenv_with_its_child_and_fg_resumes_both_with_the_terminal() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- sh -c 'read a; echo first:$a; read b; echo second:$b; exit 5'",
        env!("CARGO_BIN_EXE_wtenv")
    );
    tmux.keys(&t, &[&line, "Enter"]);
    wait_foreground("read a; echo first:");
    tmux.keys(&t, &["one", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("first:one")),
        "{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["C-z"]);
    // The shell gets its prompt back with wtenv stopped, and can run jobs.
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("Stopped")),
        "Ctrl-Z did not give the shell back:\n{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["echo shell-is-back", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("\nshell-is-back")),
        "{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["fg", "Enter"]);
    wait_foreground("read a; echo first:");
    tmux.keys(&t, &["two", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("second:two")),
        "the child did not get the terminal back after fg:\n{}",
        tmux.pane(&t)
    );
    tmux.expect_status(&t, 5);
    assert_no_holds(&t);
}

/// A job the child's shell put in a group of its own (`set -m`) is not in
/// the terminal's foreground group, so Ctrl-Z misses it, as it would
/// without wtenv: it runs on while the shell shows wtenv stopped, and `fg`
/// gives the child the terminal back. Once the child ends, the job is
/// swept.
#[test]
fn ctrl_z_leaves_the_jobs_in_their_own_groups_running_and_the_end_sweeps_them() {
    let t = TestEnv::new();
    let file = t.root().join("job.pid");
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- bash -c 'set -m; sleep 300 & echo $! > {1}.tmp; mv {1}.tmp {1}; \
         read a; echo got:$a'",
        env!("CARGO_BIN_EXE_wtenv"),
        file.display()
    );
    tmux.keys(&t, &[&line, "Enter"]);
    wait_foreground("read a; echo got:");
    assert!(wait_for(PATIENCE, || file.exists()), "{}", tmux.pane(&t));
    let mut guard = KillOnDrop(Vec::new());
    let job = read_pid(&file);
    guard.add(job);
    tmux.keys(&t, &["C-z"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("Stopped")),
        "Ctrl-Z did not give the shell back:\n{}",
        tmux.pane(&t)
    );
    assert!(
        alive(job) && !is_stopped(job),
        "Ctrl-Z reached the job in its own group"
    );
    tmux.keys(&t, &["fg", "Enter"]);
    wait_foreground("read a; echo got:");
    tmux.keys(&t, &["x", "Enter"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("got:x")),
        "{}",
        tmux.pane(&t)
    );
    tmux.expect_status(&t, 0);
    assert!(!alive(job), "the job was not swept");
    assert_no_holds(&t);
}

/// A loop that prints `tick 1` to `tick 12`, one every 0.25 s: quoted for
/// a shell's single quotes, its `$` escaped for double quotes around them.
const TICKS: &str = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick \\$i; sleep 0.25; done";

/// Types `line` into the shell of `tmux`; once the job shows `tick 2`,
/// Ctrl-Z must give the shell its prompt back with the whole job stopped
/// (the shell says `stopped`: it does only once every process of the
/// job's group is), and `fg` must run the job on to its end (`done`,
/// which the pane shows once the job printed its last line).
/// wtenv shares its group with the rest of the job (a pipeline's `cat`, a
/// `bash -c` that ran it): stopping wtenv alone left the shell waiting
/// for a job it saw running.
fn ctrl_z_stops_the_whole_job(t: &TestEnv, tmux: &Tmux, line: &str, stopped: &str, done: &str) {
    tmux.line(t, line);
    assert!(
        wait_for(PATIENCE, || tmux.pane(t).contains("tick 2")),
        "{}",
        tmux.pane(t)
    );
    tmux.keys(t, &["C-z"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(t).contains(stopped)),
        "Ctrl-Z did not stop the whole job:\n{}",
        tmux.pane(t)
    );
    tmux.line(t, "echo shell-is-back");
    assert!(
        wait_for(PATIENCE, || tmux.pane(t).contains("\nshell-is-back")),
        "{}",
        tmux.pane(t)
    );
    tmux.line(t, "fg");
    assert!(
        wait_for(PATIENCE, || tmux.pane(t).contains(done)),
        "fg did not run the job on to its end:\n{}",
        tmux.pane(t)
    );
}

#[test]
fn ctrl_z_stops_a_pipeline_wtenv_is_in_and_fg_resumes_it() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- sh -c '{}' | cat",
        env!("CARGO_BIN_EXE_wtenv"),
        TICKS.replace("\\$", "$")
    );
    ctrl_z_stops_the_whole_job(&t, &tmux, &line, "Stopped", "tick 12");
    tmux.expect_status(&t, 0);
    assert_no_holds(&t);
}

#[test]
fn ctrl_z_stops_the_bash_c_that_ran_wtenv_and_fg_resumes_it() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "bash -c \"{} run -- sh -c '{TICKS}'; echo after-wtenv:\\$?\"",
        env!("CARGO_BIN_EXE_wtenv")
    );
    ctrl_z_stops_the_whole_job(&t, &tmux, &line, "Stopped", "after-wtenv:0");
    assert_no_holds(&t);
}

/// zsh says so in its own words, and waits for the whole job alike.
#[test]
fn in_zsh_ctrl_z_stops_the_bash_c_that_ran_wtenv_and_fg_resumes_it() {
    let t = TestEnv::new();
    let tmux = Tmux::start(&t, &t.repo, &["zsh", "-f", "-i"]);
    assert!(
        wait_for(PATIENCE, || !tmux.pane(&t).trim().is_empty()),
        "zsh showed no prompt"
    );
    let line = format!(
        "bash -c \"{} run -- sh -c '{TICKS}'; echo after-wtenv:\\$?\"",
        env!("CARGO_BIN_EXE_wtenv")
    );
    ctrl_z_stops_the_whole_job(&t, &tmux, &line, "suspended", "after-wtenv:0");
    assert_no_holds(&t);
}

/// A command that reads `/dev/tty` gets the terminal whatever its stdin:
/// what decides is wtenv's controlling terminal (a password prompt, fzf,
/// a pager). Without it, the command was stopped by SIGTTIN and the
/// terminal's keys went nowhere.
#[test]
fn a_child_reading_dev_tty_gets_the_terminal_when_stdin_is_not_one() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "{} run -- sh -c 'read x </dev/tty; echo got:$x' </dev/null",
        env!("CARGO_BIN_EXE_wtenv")
    );
    tmux.line(&t, &line);
    wait_foreground("read x </dev/tty; echo got:");
    tmux.line(&t, "hello");
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("got:hello")),
        "the child could not read the terminal:\n{}",
        tmux.pane(&t)
    );
    tmux.expect_status(&t, 0);
    assert_no_holds(&t);
}

/// The end of a pipeline (`seq 3 | wtenv run -- fzf`) gets the terminal,
/// and job control follows it as with a terminal on stdin: Ctrl-Z stops
/// the job, `fg` gives the child the terminal back.
#[test]
fn a_child_fed_by_a_pipe_gets_the_terminal_and_ctrl_z_and_fg_follow_it() {
    let t = TestEnv::new();
    let tmux = Tmux::start_bash(&t);
    let line = format!(
        "seq 3 | {} run -- sh -c 'n=$(wc -l); read a </dev/tty; echo first:$a:$n; \
         read b </dev/tty; echo second:$b'",
        env!("CARGO_BIN_EXE_wtenv")
    );
    tmux.line(&t, &line);
    wait_foreground("read a </dev/tty; echo first:");
    tmux.line(&t, "one");
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("first:one:3")),
        "the child could not read the terminal:\n{}",
        tmux.pane(&t)
    );
    tmux.keys(&t, &["C-z"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("Stopped")),
        "Ctrl-Z did not give the shell back:\n{}",
        tmux.pane(&t)
    );
    tmux.line(&t, "fg");
    wait_foreground("read a </dev/tty; echo first:");
    tmux.line(&t, "two");
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("second:two")),
        "the child did not get the terminal back after fg:\n{}",
        tmux.pane(&t)
    );
    tmux.expect_status(&t, 0);
    assert_no_holds(&t);
}

/// Asked to end (SIGTERM), sets the terminal back as vim does, which a
/// process outside the terminal's foreground group may not: SIGTTOU stops
/// it, again each time it is continued. Writes its pid to argv[1] once
/// it handles SIGTERM.
const SETS_THE_TERMINAL_ON_SIGTERM: &str = r#"
import os, signal, sys, termios, time
tty = os.open("/dev/tty", os.O_RDWR)
def on_term(sig, frame):
    termios.tcsetattr(tty, termios.TCSANOW, termios.tcgetattr(tty))
signal.signal(signal.SIGTERM, on_term)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"#;

/// Where [`vim_like`] writes the script, and where it writes its pid, in
/// the test's directory.
const VIM_LIKE: &str = "vim_like.py";
const VIM_LIKE_PID: &str = "vim_like.pid";

/// Writes [`SETS_THE_TERMINAL_ON_SIGTERM`] into the test's directory;
/// returns its path and the path of the pid file it will write.
fn vim_like(t: &TestEnv) -> (std::path::PathBuf, std::path::PathBuf) {
    let script = t.root().join(VIM_LIKE);
    std::fs::write(&script, SETS_THE_TERMINAL_ON_SIGTERM).unwrap();
    (script, t.root().join(VIM_LIKE_PID))
}

/// Types `echo outer-back` into the outer shell at once (it waits in the
/// terminal until the shell reads it): the outer prompt must come back
/// well under the grace (20 s), the vim-like process be gone, and its
/// kill said once, naming it: `wtenv: {who} was stopped again ...`,
/// `who` being what wtenv ran.
fn outer_prompt_returns_at_once(t: &TestEnv, tmux: &Tmux, vim: u32, who: &str) {
    let start = std::time::Instant::now();
    tmux.line(t, "echo outer-back");
    assert!(
        wait_for(PATIENCE, || tmux.pane(t).contains("\nouter-back")),
        "{}",
        tmux.pane(t)
    );
    let waited = start.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(5),
        "the terminal froze for {waited:?}, the grace:\n{}",
        tmux.pane(t)
    );
    assert!(!alive(vim), "the stopped process survived");
    // The command as /proc has it: python3 may be a shim that execs
    // another path.
    let said =
        format!("wtenv: {who} was stopped again instead of ending: killed 1 process, pid {vim} (");
    let pane = tmux.pane(t);
    assert_eq!(pane.matches(&said).count(), 1, "{pane}");
    let rest = pane.split(&said).nth(1).unwrap().lines().next().unwrap();
    let (script, pidfile) = (t.root().join(VIM_LIKE), t.root().join(VIM_LIKE_PID));
    let command = format!("{} {})", script.display(), pidfile.display());
    assert!(rest.ends_with(&command), "{pane}");
    assert_no_holds(t);
}

/// `wtenv run -- bash -i`, vim in it, Ctrl-Z, `exit`, `exit`: the inner
/// shell leaves vim stopped (a job in a group of its own, adopted by
/// wtenv, so not orphaned). Its sweep's SIGTERM and SIGCONT make it write
/// to the terminal it no longer has, which stops it again: it is killed at
/// once, not after the grace, which froze the terminal.
#[test]
fn a_job_an_inner_shell_leaves_stopped_is_killed_once_stopped_again() {
    let t = TestEnv::new();
    let (script, pidfile) = vim_like(&t);
    let tmux = Tmux::start_bash(&t);
    tmux.line(
        &t,
        &format!(
            "{} run --grace 20s -- env PS1='inner$ ' bash --norc --noprofile -i",
            env!("CARGO_BIN_EXE_wtenv")
        ),
    );
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("inner$ ")),
        "{}",
        tmux.pane(&t)
    );
    tmux.line(
        &t,
        &format!("python3 {} {}", script.display(), pidfile.display()),
    );
    assert!(wait_for(PATIENCE, || pidfile.exists()), "{}", tmux.pane(&t));
    let vim = read_pid(&pidfile);
    let mut guard = KillOnDrop(Vec::new());
    guard.add(vim);
    tmux.keys(&t, &["C-z"]);
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains("Stopped")),
        "{}",
        tmux.pane(&t)
    );
    tmux.line(&t, "exit");
    assert!(
        wait_for(PATIENCE, || tmux
            .pane(&t)
            .contains("There are stopped jobs")),
        "{}",
        tmux.pane(&t)
    );
    tmux.line(&t, "exit");
    outer_prompt_returns_at_once(&t, &tmux, vim, "env");
}

/// The same for what is left of the child's own group when its leader
/// exits: the terminal went back to wtenv, and the leftover, asked to
/// end, stops on it.
#[test]
fn what_the_leader_leaves_in_its_group_is_killed_once_stopped_again() {
    let t = TestEnv::new();
    let (script, pidfile) = vim_like(&t);
    let tmux = Tmux::start_bash(&t);
    tmux.line(
        &t,
        &format!(
            "{} run --grace 20s -- sh -c 'python3 {} {} & while [ ! -s {2} ]; do sleep 0.05; done'",
            env!("CARGO_BIN_EXE_wtenv"),
            script.display(),
            pidfile.display()
        ),
    );
    assert!(wait_for(PATIENCE, || pidfile.exists()), "{}", tmux.pane(&t));
    let vim = read_pid(&pidfile);
    let mut guard = KillOnDrop(Vec::new());
    guard.add(vim);
    outer_prompt_returns_at_once(&t, &tmux, vim, "sh");
}
