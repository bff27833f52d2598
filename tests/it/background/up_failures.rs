//! `up --detach` that cannot go through: its checks come before any port
//! is reserved or service started, and a service it started but cannot
//! record is stopped, holding nothing.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{DownOnDrop, free, holders, listeners, naming, ports, serves, two_http_services};
use crate::support::{TestEnv, run};

/// `up -d` reserved the worktree's ports before it found a state
/// directory it cannot use: it checks the directory first now. A service
/// that never gets ready stops what `up -d` started and leaves no hold;
/// the ports stay reserved, as `env` reserves them (a shell may have
/// exported them meanwhile: a reservation has no owner to give it back).
#[test]
fn a_failed_up_detach_reserves_nothing_before_its_checks_and_holds_nothing_after() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1\"\n[services.api]\nrun = \"echo no >&2; exit 3\"\n",
    );
    std::fs::create_dir_all(t.state_dir()).unwrap();
    std::fs::set_permissions(
        t.state_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let background = t.state_dir().join("background");
    std::fs::write(&background, "").unwrap();
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("background is not a directory"), "{up}");
    assert!(t.allocations().is_empty(), "{up}");
    std::fs::remove_file(&background).unwrap();

    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr
            .starts_with("error: service api did not get ready: it ended (exit code 3); "),
        "{up}"
    );
    // Its supervisor noted how it ended, after its last line.
    let logs = run(&mut t.wtenv(&["logs", "api"]));
    assert!(
        logs.stdout
            .ends_with("api | no\napi | wtenv: service api ended (exit code 3)\n"),
        "{logs}"
    );
    let (web, api) = ports(&t);
    let env = run(&mut t.wtenv(&["env"]));
    assert!(
        env.stdout.contains(&format!("export WEB_PORT='{web}'")),
        "{env}"
    );
    assert!(
        env.stdout.contains(&format!("export API_PORT='{api}'")),
        "{env}"
    );
    for service in ["web", "api"] {
        assert!(
            holders(&t, service).is_empty(),
            "{service} held after up -d failed"
        );
    }
    assert!(free(web), "the web service up -d started still listens");
}

/// A state directory whose path is not UTF-8: `up -d` under the wtenv back
/// end started the service, then panicked writing its record (JSON text
/// naming its log there), so the service ran where `down` could not find
/// it. Refused before anything is reserved or started.
#[test]
fn up_detach_refuses_a_state_directory_it_cannot_name_before_starting_anything() {
    use std::os::unix::ffi::OsStringExt;
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let mut state = t.root().into_os_string().into_vec();
    state.extend(b"/state-\xff");
    let state = PathBuf::from(OsString::from_vec(state));
    let out = run(t
        .wtenv(&["up", "-d", "--manager", "wtenv"])
        .env("WTENV_STATE_DIR", &state));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("the state directory's path ")
            && out.stderr.contains("/background is not UTF-8\nhint: "),
        "{out}"
    );
    assert!(free(t.ports.port(0)), "{out}");
    assert!(
        !state.join("registry.json").exists(),
        "ports reserved: {out}"
    );
    // Nothing made for it in the state directory either.
    assert!(!state.join("background").exists(), "{out}");
}

/// A record that cannot be written once its service started (here a
/// directory planted under its name, as a full disk would fail it): the
/// service ran on where `down`, which finds services by their records,
/// could not see it. It is stopped with the error, its ports released.
#[test]
fn up_detach_stops_a_service_whose_record_it_cannot_write() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let record = t
        .state_dir()
        .join(format!("background/{}.json", naming(&t).unit("web")));
    std::fs::create_dir_all(record.join("planted")).unwrap();
    let out = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with("error: could not "), "{out}");
    // Stopped before `up` returned: no process names its unit.
    let unit = naming(&t).unit("web");
    let left: Vec<u32> = wtenv::process::all_pids()
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(&unit)
        })
        .collect();
    assert!(left.is_empty(), "{left:?} run on: {out}");
    assert!(free(t.ports.port(0)), "{out}");
    assert!(holders(&t, "web").is_empty(), "{}", t.registry());
}

/// A service of the wtenv back end whose command could not start: its
/// supervisor said why on a stderr that is /dev/null, and `up -d`'s hint
/// showed the last lines of the log, an earlier run's ("Serving HTTP on
/// ..."). Why reaches the log (`wtenv logs`), and the hint shows only the
/// lines of this run: its reason, as the foreground `up` gives it.
#[test]
fn up_detach_of_a_command_that_cannot_start_says_why_from_this_run_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"python3 -u -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let wtenv = |args: &[&str]| run(&mut t.wtenv(args));
    let up = wtenv(&["up", "-d", "--manager", "wtenv"]);
    assert_eq!(up.code, Some(0), "{up}");
    assert_eq!(wtenv(&["down"]).code, Some(0));
    assert!(wtenv(&["logs", "web"]).stdout.contains("Serving HTTP"));

    let notexec = t.repo.join("notexec");
    std::fs::write(&notexec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&notexec, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (line, code, why) in [
        (
            "wtenv-no-such-command --x",
            127,
            "error: could not run service web: wtenv-no-such-command: command not found",
        ),
        (
            "./notexec",
            126,
            "error: could not run service web (./notexec): permission denied (not executable)",
        ),
    ] {
        t.write_config(&format!("[services.web]\nrun = \"{line}\"\n"));
        let up = wtenv(&["up", "-d", "--manager", "wtenv"]);
        assert_eq!(up.code, Some(1), "{up}");
        assert!(
            up.stderr.starts_with(&format!(
                "error: service web did not get ready: it ended (exit code {code}); stopped what this 'up --detach' started\n\
                 hint: its last lines:\n  {why}\n  hint: check the command's name, PATH and permissions\n\
                 see its output with 'wtenv logs web'\n"
            )),
            "{up}"
        );
        let logs = wtenv(&["logs", "web"]);
        assert!(logs.stdout.contains(&format!("web | {why}\n")), "{logs}");
        assert!(holders(&t, "web").is_empty(), "{}", t.registry());
    }
}

/// A service that listens on another port than its own: `up -d` said
/// `nothing of the unit listens on port P after 2s` without naming where
/// it listens, which the foreground `up` names. It names it now, from the
/// same look at the service's tree.
#[test]
fn up_detach_of_a_service_listening_elsewhere_names_the_port_it_listens_on() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.wrong]\nrun = \"exec python3 -m http.server $((WRONG_PORT+5)) --bind 127.0.0.1\"\nready_timeout = \"2s\"\n",
    );
    let (own, elsewhere) = (t.ports.port(0), t.ports.port(0) + 5);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.starts_with(&format!(
            "error: service wrong did not get ready: nothing of the unit listens on port {own} after 2s (it listens on port {elsewhere}); stopped what this 'up --detach' started\n"
        )),
        "{up}"
    );
    assert!(free(elsewhere), "the service up -d started still listens");
}

/// A service that binds its port and never listens: `up -d` said
/// `nothing of the unit listens on port P after 2s` and nothing of the
/// port, which was busy all the same. What holds it is named now, in the
/// words of `conflicts`: no process listens there.
#[test]
fn up_detach_of_a_service_bound_without_listening_says_what_holds_its_port() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let script = t.root().join("bind.py");
    std::fs::write(
        &script,
        "import os,socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',int(os.environ['WEB_PORT'])))\ntime.sleep(60)\n",
    )
    .unwrap();
    t.write_config(&format!(
        "[services.web]\nrun = \"exec python3 {}\"\nready_timeout = \"2s\"\n",
        script.display()
    ));
    let port = t.ports.port(0);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.starts_with(&format!(
            "error: service web did not get ready: nothing of the unit listens on port {port} after 2s, and port {port} is busy: {}; stopped what this 'up --detach' started\n",
            crate::holders::NOT_LISTENING
        )),
        "{up}"
    );
    assert!(free(port), "the service up -d started still holds its port");
}

/// A server left listening on a service's port from inside the
/// worktree: foreground `up` refuses before starting anything, and `up
/// -d` did not (its unit died with "address in use" and a traceback).
/// It makes the same check now, in the same words, exit 1, no unit
/// started, nothing recorded; a service already running as a unit is its
/// own listener and is left out of the check.
#[test]
fn up_detach_refuses_a_port_something_listens_on_as_up_does() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let (web, api) = ports(&t);
    let server = crate::support::HttpServer::start(&t.repo, web);
    let foreground = run(&mut t.wtenv(&["up", "web"]));
    assert_eq!(foreground.code, Some(1), "{foreground}");
    let said = format!(
        "error: ports of the services to start are already in use:\n  port {web} (web): pid {}",
        server.pid()
    );
    assert!(foreground.stderr.starts_with(&said), "{foreground}");
    let detached = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv", "web"]));
    assert_eq!(detached.code, Some(1), "{detached}");
    assert_eq!(detached.stderr, foreground.stderr, "{detached}");
    assert!(
        detached.stderr.ends_with(&format!(
            "hint: stop it (e.g. kill {}), then run wtenv up again\n",
            server.pid()
        )),
        "{detached}"
    );
    assert_eq!(listeners(web), vec![server.pid()], "{detached}");
    assert!(holders(&t, "web").is_empty(), "{}", t.registry());
    let status = run(&mut t.wtenv(&["status"]));
    assert!(
        status.stdout.is_empty()
            && status
                .stderr
                .starts_with("wtenv: nothing of this worktree runs in the background\n"),
        "{status}"
    );
    // api runs as a unit: a second `up -d` of it passes the check.
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv", "api"]));
    assert_eq!(up.code, Some(0), "{up}");
    assert!(serves(api), "{up}");
    let again = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv", "api"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stdout.contains("(already running)"), "{again}");
}

/// QA finding: `up -d` said `(already running)` and exited 0 for a
/// service whose unit runs while nothing listens on its port any more
/// (its server killed, the shell that started it still there): a script
/// took it as ready. It waits for it as for one it starts, and says it,
/// leaving it running: it ran before this `up -d`.
#[test]
fn up_detach_waits_for_a_service_already_running_and_says_when_it_is_not_ready() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let port = super::half_service(&t, "ready_timeout = \"2s\"\n");
    let again = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stdout.contains("(already running)"), "{again}");
    super::kill_listeners(port);
    let again = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(again.code, Some(1), "{again}");
    assert!(
        again.stderr.starts_with(&format!(
            "error: service half runs (it ran before this 'up --detach', and is left running) but is not ready: nothing of the unit listens on port {port} after 2s"
        )),
        "{again}"
    );
    assert!(again.stderr.contains("then 'wtenv up -d half'"), "{again}");
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(
        super::status_cells(&status, "half")[3],
        "running",
        "{status}"
    );
    assert_eq!(holders(&t, "half").len(), 1, "{}", t.registry());
}
