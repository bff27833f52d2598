//! `wtenv up`: services side by side, one failing stops the others, a
//! service that ignores its port is reported; nothing is left behind.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;

use crate::supervise::{
    PATIENCE, Wtenv, alive, assert_all_clean, assert_no_holds, server_script, wait_pidfile,
};
use crate::support::{TestEnv, Tmux, wait_for};
use wtenv::probe::{self, PortState};
use wtenv::process;

#[test]
fn one_service_failing_to_start_stops_the_other_and_gives_its_exit_code() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("web.pid");
    t.write_config(&format!(
        r#"
[services.web]
env = ["PORT", "WEB_PORT"]
run = "exec python3 {script} {pidfile}"
[services.api]
run = "while [ ! -s {pidfile} ]; do sleep 0.05; done; wtenv-no-such-service"
"#,
        script = script.display(),
        pidfile = pidfile.display()
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    let server = wait_pidfile(&pidfile, &w);
    // The server is web's leader (exec): its pid is the group's id. It may
    // already be stopped: api fails as soon as it listens.
    let pgid = server;
    let status = w.wait();
    assert_eq!(status.code(), Some(127), "{status:?}\n{}", w.stderr_text());
    let stderr = w.stderr_text();
    assert!(
        stderr.contains("service api ended (exit code 127)"),
        "{stderr}"
    );
    // The failing service's last words are printed, prefixed, before exit.
    assert!(
        stderr.contains("api | sh: 1: wtenv-no-such-service: not found\n"),
        "{stderr}"
    );
    // web is declared first: it has the first port of the block.
    let web_port = t.ports.port(0);
    assert_all_clean(&t, pgid, server, web_port);
    assert_eq!(probe::probe(t.ports.port(1)).unwrap(), PortState::Free);
    assert!(
        t.allocations().is_empty(),
        "up's own allocations are released"
    );
}

/// A service the system refuses to start for a limit of its own (here a
/// `run` line over Linux's 128 KiB per argument, E2BIG, as a huge
/// environment gives too) was said as a raw OS error with the hint to
/// check the command's name and PATH. The message says which limit, the
/// hint what to change; nothing is left held.
#[test]
fn a_service_over_the_systems_argument_limit_says_so_and_what_to_change() {
    let t = TestEnv::new();
    t.write_config(&format!(
        "[services.web]\nrun = \"echo {}\"\n",
        "x".repeat(200 * 1024)
    ));
    let mut w = Wtenv::start(&t, &["up"]);
    let status = w.wait();
    assert_eq!(status.code(), Some(126), "{status:?}\n{}", w.stderr_text());
    let stderr = w.stderr_text();
    assert!(
        stderr.contains(
            "error: could not run service web: its command line and environment are larger than the system allows (Argument list too long (os error 7))\n\
             hint: unset large environment variables (env | wc -c counts them), or shorten the command line (at most 128 KiB per argument)\n"
        ),
        "{stderr}"
    );
    assert_no_holds(&t);
    assert!(
        t.allocations().is_empty(),
        "up's own allocations are released"
    );
}

/// A script found in PATH whose `#!` interpreter is missing: `execvp`
/// says ENOENT, and "command not found" was false (the command was
/// found). `run` and `up` name the file found and the interpreter, and
/// exit 127 as for a script named by its path; nothing is left held.
#[test]
fn a_script_found_in_path_whose_interpreter_is_missing_names_both() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let bin = t.root().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("wtenv-test-serve");
    std::fs::write(&script, "#!/nonexistent/python9 -u\nprint(1)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    t.write_config("[services.web]\nrun = \"wtenv-test-serve --port 1\"\n");
    let found = format!(
        "({}, found in PATH): its interpreter /nonexistent/python9 (its #! line) was not found\n\
         hint: install /nonexistent/python9, or fix the first line of {}\n",
        script.display(),
        script.display()
    );
    for (args, program) in [
        (&["run", "--", "wtenv-test-serve"][..], "wtenv-test-serve"),
        (
            &["run", "--sockets", "--", "wtenv-test-serve"],
            "wtenv-test-serve",
        ),
        (&["up"], "service web"),
    ] {
        let out = crate::support::run(
            t.wtenv(args)
                .env("PATH", &path)
                .stdin(std::process::Stdio::null()),
        );
        assert_eq!(out.code, Some(127), "{args:?}: {out}");
        assert!(
            out.stderr
                .ends_with(&format!("error: could not run {program} {found}")),
            "{args:?}: {out}"
        );
        assert_no_holds(&t);
        assert!(t.allocations().is_empty(), "{args:?}: {out}");
    }
    // Not in PATH: still not found.
    let out = crate::support::run(
        t.wtenv(&["run", "--", "wtenv-test-serve"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .starts_with("error: could not run wtenv-test-serve: command not found\n"),
        "{out}"
    );
}

/// A service whose command is not found, with and without `socket =
/// true`: the socket hand-off's child (`__listen-exec`) said it in the
/// service's output, in other words (`nf | error: could not run
/// nosuchcmd: ...`), and `up` then took it for a run that ended (ready,
/// ended, restarted). Now wtenv says it as for any service it could not
/// start, word for word the same, and stops: exit 127, nothing restarted,
/// nothing held, the socket closed.
#[test]
fn a_socket_services_missing_command_is_said_as_any_services() {
    let t = TestEnv::new();
    let mut said = Vec::new();
    for socket in ["", "socket = true\n"] {
        t.write_config(&format!(
            "[services.nf]\nrun = \"wtenv-no-such-command\"\nrestart = \"on-failure\"\n{socket}"
        ));
        let out = crate::support::run(t.wtenv(&["up"]).stdin(std::process::Stdio::null()));
        assert_eq!(out.code, Some(127), "{socket:?}: {out}");
        assert_no_holds(&t);
        assert_eq!(probe::probe(t.ports.port(0)).unwrap(), PortState::Free);
        said.push(out.stderr);
    }
    assert_eq!(
        said[1],
        "nf | starting\n\
         error: could not run service nf: wtenv-no-such-command: command not found\n\
         hint: check the command's name, PATH and permissions\n"
    );
    assert_eq!(said[0], said[1], "without a socket, then with one");
}

#[test]
fn services_see_every_port_and_their_output_is_prefixed() {
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.web]
run = "echo web sees $WEB_PORT $API_PORT; echo oops >&2; exec sleep 600"
[services.api]
run = "echo api sees $WEB_PORT $API_PORT; exec sleep 600"
"#,
    );
    let mut w = Wtenv::start(&t, &["up", "--color", "never"]);
    let (web, api) = (t.ports.port(0), t.ports.port(1));
    let web_line = format!("web | web sees {web} {api}\n");
    let api_line = format!("api | api sees {web} {api}\n");
    assert!(
        wait_for(PATIENCE, || {
            let out = w.stdout_text();
            out.contains(&web_line) && out.contains(&api_line)
        }),
        "stdout:\n{}\nstderr:\n{}",
        w.stdout_text(),
        w.stderr_text()
    );
    assert!(wait_for(PATIENCE, || w
        .stderr_text()
        .contains("web | oops\n")));
    let groups: Vec<u32> = [api, web]
        .iter()
        .map(|&p| crate::supervise::recorded_pgid(&t, p))
        .collect();
    assert_eq!(groups.len(), 2);
    assert_ne!(groups[0], groups[1], "each service has its own group");
    w.signal(Signal::SIGTERM);
    let status = w.wait();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
    for g in groups {
        assert!(crate::supervise::group_survivors(g).is_empty());
    }
    assert_no_holds(&t);
}

/// `up` of a service `web` that listens on another port than its own
/// (the range's 16th), with this `ready_timeout`: wtenv, the server's pid
/// and the port it listens on. Its variable is `WEB_PORT`; `PORT` is not
/// set for it.
fn up_elsewhere(t: &TestEnv, ready_timeout: &str) -> (Wtenv, u32, u16) {
    let script = server_script(t);
    let pidfile = t.root().join("web.pid");
    let elsewhere = t.ports.port(15);
    t.write_config(&format!(
        r#"
[services.web]
run = "python3 {} {} {elsewhere}"
ready_timeout = "{ready_timeout}"
"#,
        script.display(),
        pidfile.display()
    ));
    let w = Wtenv::start(t, &["up", "--grace", "5s"]);
    let server = wait_pidfile(&pidfile, &w);
    (w, server, elsewhere)
}

#[test]
fn a_service_that_ignores_its_port_is_reported_with_the_port_it_uses() {
    let t = TestEnv::new();
    let (mut w, server, elsewhere) = up_elsewhere(&t, "10m");
    let pgid = process::pgid(server).unwrap();
    let own = t.ports.port(0);
    // Named as soon as it listens there, not after the ready_timeout.
    let expected = format!(
        "warning: service web listens on port {elsewhere} instead of its port {own}\nhint: make it listen on the port in its variable $WEB_PORT"
    );
    assert!(
        wait_for(PATIENCE, || w.stderr_text().contains(&expected)),
        "{}",
        w.stderr_text()
    );
    assert!(
        alive(server),
        "a misconfigured service is reported, not stopped"
    );
    w.signal(Signal::SIGINT);
    let status = w.wait();
    assert_eq!(status.signal(), Some(Signal::SIGINT as i32), "{status:?}");
    assert_all_clean(&t, pgid, server, own);
    assert_eq!(probe::probe(elsewhere).unwrap(), PortState::Free);
}

/// A service that listens elsewhere is not ready either: its own port
/// does not answer. At its `ready_timeout` it is reported as a silent one
/// is, the port it listens on named again; it is still not stopped.
#[test]
fn a_service_listening_elsewhere_is_reported_at_its_ready_timeout() {
    let t = TestEnv::new();
    // Long enough for python to start and listen elsewhere first on a
    // loaded machine (at 1s it sometimes had not: the warning then names
    // no other port).
    let (mut w, server, elsewhere) = up_elsewhere(&t, "4s");
    let pgid = process::pgid(server).unwrap();
    let own = t.ports.port(0);
    let moved =
        format!("warning: service web listens on port {elsewhere} instead of its port {own}");
    let late = format!(
        "warning: service web is not listening on its port {own} after 4s (it listens on port {elsewhere})\n"
    );
    assert!(
        wait_for(PATIENCE, || {
            let e = w.stderr_text();
            e.contains(&moved) && e.contains(&late)
        }),
        "{}",
        w.stderr_text()
    );
    assert_eq!(w.stderr_text().matches(&late).count(), 1);
    assert!(alive(server), "a late service is reported, not stopped");
    w.signal(Signal::SIGINT);
    assert_eq!(w.wait().signal(), Some(Signal::SIGINT as i32));
    assert_all_clean(&t, pgid, server, own);
    assert_eq!(probe::probe(elsewhere).unwrap(), PortState::Free);
}

#[test]
fn a_ready_service_is_announced_on_its_port() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("web.pid");
    t.write_config(&format!(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"python3 {} {}\"\n",
        script.display(),
        pidfile.display()
    ));
    let mut w = Wtenv::start(&t, &["up"]);
    let server = wait_pidfile(&pidfile, &w);
    let pgid = process::pgid(server).unwrap();
    let port = t.ports.port(0);
    // One ready line, naming the port; nothing else says "ready".
    let suffix = format!(" on port {port}");
    let ready = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("web | ready in ") && l.ends_with(&suffix))
            .count()
    };
    assert!(
        wait_for(PATIENCE, || ready(&w.stderr_text()) == 1),
        "{}",
        w.stderr_text()
    );
    assert_eq!(
        w.stderr_text().matches("ready").count(),
        1,
        "{}",
        w.stderr_text()
    );
    w.signal(Signal::SIGINT);
    assert_eq!(w.wait().signal(), Some(Signal::SIGINT as i32));
    assert_all_clean(&t, pgid, server, port);
}

#[test]
fn a_service_that_moved_to_the_next_port_is_reported_with_the_real_holder() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("web.pid");
    let go = t.root().join("go");
    // A dev server that finds its port taken and moves to the next one.
    t.write_config(&format!(
        r#"
[services.web]
env = ["PORT"]
run = "while [ ! -e {go} ]; do sleep 0.05; done; python3 {script} {pidfile} $((PORT + 1))"
"#,
        go = go.display(),
        script = script.display(),
        pidfile = pidfile.display()
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
    let own = t.ports.port(0);
    assert!(
        wait_for(PATIENCE, || t.allocations().iter().any(|a| a.0 == own)),
        "{}",
        w.stderr_text()
    );
    // Someone else takes the port after wtenv allocated it.
    let intruder = crate::support::PyListener::start(&t.root(), "4", "127.0.0.1", own, "");
    std::fs::write(&go, "").unwrap();
    let server = wait_pidfile(&pidfile, &w);
    let pgid = process::pgid(server).unwrap();
    let expected = format!(
        "warning: port {own} of service web accepts connections, but not from the service: pid {} (",
        intruder.pid()
    );
    let moved = format!(
        "warning: service web listens on port {} instead of its port {own}",
        own + 1
    );
    assert!(
        wait_for(PATIENCE, || {
            let e = w.stderr_text();
            e.contains(&expected) && e.contains(&moved)
        }),
        "{}",
        w.stderr_text()
    );
    drop(intruder);
    w.signal(Signal::SIGINT);
    assert_eq!(w.wait().signal(), Some(Signal::SIGINT as i32));
    assert_all_clean(&t, pgid, server, own + 1);
    assert_eq!(probe::probe(own).unwrap(), PortState::Free);
}

/// `up` and `export` with no service to run: what to add, and no port
/// reserved for nothing.
#[test]
fn up_without_any_run_command_says_what_to_add() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"PORT\"]\n");
    let units = t.root().join("units");
    for args in [&["up"][..], &["export", "systemd", units.to_str().unwrap()]] {
        let out = crate::support::run(t.wtenv(args).stdin(std::process::Stdio::null()));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains("error: no service has a run command"),
            "{args:?}: {out}"
        );
        assert!(out.stderr.contains("hint: add run = "), "{args:?}: {out}");
        assert!(
            t.allocations().is_empty(),
            "{args:?}: nothing allocated: {out}"
        );
        assert!(!units.exists(), "{args:?}: nothing written");
    }
}

#[test]
fn prefixes_are_coloured_only_when_asked() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"echo hello; exit 4\"\n");
    let mut w = Wtenv::start(&t, &["up", "--color", "always"]);
    assert_eq!(w.wait().code(), Some(4));
    assert!(
        w.stdout_text().contains("\x1b[36mweb\x1b[0m | hello\n"),
        "{:?}",
        w.stdout_text()
    );
    let mut w = Wtenv::start(&t, &["up"]);
    assert_eq!(w.wait().code(), Some(4), "not a terminal: no colour");
    assert_eq!(w.stdout_text(), "web | hello\n");
    assert_no_holds(&t);
}

/// The services' output into a stdout that cannot take it (`> /dev/full`)
/// was dropped without a word: said once, and the services run on.
#[test]
fn output_stdout_cannot_take_is_said_once_and_the_services_run_on() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"echo hello; echo again; exit 4\"\n");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = crate::support::run(t.wtenv(&["up"]).stdout(full));
    assert_eq!(out.code, Some(4), "{out}");
    let warning = "warning: could not write the services' output: No space left on device (os error 28); it is lost, the services run on\n\
                   hint: make room where the output goes, or send it elsewhere\n";
    assert_eq!(out.stderr.matches(warning).count(), 1, "{out}");
    assert!(
        out.stderr.contains("service web ended (exit code 4)"),
        "{out}"
    );
    assert_no_holds(&t);
}

/// On a terminal, colour needs a `TERM` that shows it: `TERM=dumb` (Emacs'
/// shell) or none printed the escape codes as text.
#[test]
fn prefixes_on_a_terminal_are_coloured_only_when_its_term_shows_colour() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"echo hello; exit 4\"\n");
    for (term, coloured) in [(Some("xterm"), true), (Some("dumb"), false), (None, false)] {
        // `script` gives `up` a terminal as its stdout.
        let mut cmd = std::process::Command::new("script");
        t.apply_env(&mut cmd);
        if let Some(term) = term {
            cmd.env("TERM", term);
        }
        let line = format!("{} up", env!("CARGO_BIN_EXE_wtenv"));
        let out = crate::support::run(
            cmd.current_dir(&t.repo)
                .args(["-qec", &line, "/dev/null"])
                .stdin(std::process::Stdio::null()),
        );
        assert_eq!(out.code, Some(4), "TERM={term:?}: {out}");
        let plain = out.stdout.contains("web | hello\r\n");
        let colour = out.stdout.contains("\x1b[36mweb\x1b[0m | hello\r\n");
        assert_eq!(
            (colour, plain),
            (coloured, !coloured),
            "TERM={term:?}: {out}"
        );
    }
    assert_no_holds(&t);
}

/// A service a signal killed was said as "killed by signal 15", or as
/// "exit code 143" when its `sh -c` reported its command's death: the
/// signal is named, and a shell's 128 + N keeps its code.
#[test]
fn a_service_killed_by_a_signal_is_said_so_by_the_signal_s_name() {
    let t = TestEnv::new();
    let pidfile = t.root().join("web.pid");
    let p = pidfile.display();
    for (run, said) in [
        // The leader itself (the shell execs sleep).
        (
            format!("echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 100"),
            "wtenv: service web ended (killed by SIGTERM)\n",
        ),
        // The shell waits for its command, and reports its end as 143.
        (
            format!("sleep 100 & echo $! > {p}.tmp; mv {p}.tmp {p}; wait $!"),
            "wtenv: service web ended (killed by SIGTERM, exit code 143)\n",
        ),
    ] {
        let _ = std::fs::remove_file(&pidfile);
        t.write_config(&format!("[services.web]\nrun = \"{run}\"\n"));
        let mut w = Wtenv::start(&t, &["up", "--grace", "5s"]);
        let pid = wait_pidfile(&pidfile, &w);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
        w.wait();
        let stderr = w.stderr_text();
        assert!(stderr.contains(said), "{stderr}");
        assert_no_holds(&t);
    }
}

/// A service that asks on the terminal (`read x </dev/tty`) is stopped by
/// SIGTTIN: services never get the terminal. `up` says so once, rather
/// than only that the service does not listen.
#[test]
fn a_service_stopped_reading_the_terminal_is_said_to_be() {
    let t = TestEnv::new();
    let asked = t.root().join("asked");
    t.write_config(&format!(
        "[services.asker]\nrun = \"touch {}; echo 'Use another port? (Y/n)'; \
         read x </dev/tty; sleep 100\"\nready_timeout = \"60s\"\n",
        asked.display()
    ));
    let tmux = Tmux::start_bash(&t);
    tmux.line(
        &t,
        &format!("{} up --grace 2s", env!("CARGO_BIN_EXE_wtenv")),
    );
    let said = "warning: service asker is stopped: it read from the terminal, which services \
                do not get; give it its input another way (stdin of a file, an option, an \
                environment variable)";
    assert!(
        wait_for(PATIENCE, || tmux.pane(&t).contains(said)),
        "{}",
        tmux.pane(&t)
    );
    assert!(asked.exists(), "the setup: the service ran");
    tmux.keys(&t, &["C-c"]);
    tmux.expect_status(&t, 130);
    assert_eq!(tmux.pane(&t).matches("is stopped").count(), 1);
    assert_no_holds(&t);
}

/// Stopped by wtenv itself (Ctrl-Z under `up`), a service is not said to
/// have read the terminal, before or after `fg`.
#[test]
fn a_service_wtenv_stopped_itself_is_not_said_to_have_read_the_terminal() {
    let t = TestEnv::new();
    let started = t.root().join("started");
    t.write_config(&format!(
        "[services.web]\nrun = \"touch {}; exec sleep 100\"\nready_timeout = \"60s\"\n",
        started.display()
    ));
    let tmux = Tmux::start_bash(&t);
    tmux.line(
        &t,
        &format!("{} up --grace 2s", env!("CARGO_BIN_EXE_wtenv")),
    );
    assert!(wait_for(PATIENCE, || started.exists()), "{}", tmux.pane(&t));
    for round in 1..=3 {
        tmux.keys(&t, &["C-z"]);
        assert!(
            wait_for(PATIENCE, || tmux.pane(&t).matches("Stopped").count()
                == round),
            "{}",
            tmux.pane(&t)
        );
        std::thread::sleep(std::time::Duration::from_millis(600));
        tmux.line(&t, "fg");
        std::thread::sleep(std::time::Duration::from_millis(600));
    }
    tmux.keys(&t, &["C-c"]);
    tmux.expect_status(&t, 130);
    assert!(!tmux.pane(&t).contains("is stopped"), "{}", tmux.pane(&t));
    assert_no_holds(&t);
}
