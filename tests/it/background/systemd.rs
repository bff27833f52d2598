//! The systemd back end under a real user manager: `up --detach` serves
//! until `down` releases everything, units stopped or killed from outside
//! release their ports, a failed start stops what it started, units of
//! same-named repositories stay apart, unit names escape as
//! `systemd-escape` does, and a variable systemd cannot carry is refused
//! before anything starts.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{
    DownOnDrop, UserManager, free, holders, listeners, path_not_utf8, ports, printed_port, serves,
    signal, status_cells, two_http_services, unit,
};
use crate::supervise::{PATIENCE, alive};
use crate::support::{Run, TestEnv, run, snapshot, wait_for};

#[test]
fn up_detach_under_systemd_serves_until_down_releases_everything() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    let api_unit = unit(&t, "api");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "--detach"]));
    assert_eq!(up.code, Some(0), "{up}");
    // One line per service: unit, pid, port; both answer on return.
    for (unit, port) in [(web_unit.as_str(), web), (api_unit.as_str(), api)] {
        let line = up.stdout.lines().find(|l| l.contains(unit)).unwrap();
        assert!(line.contains(&format!("port {port}")), "{up}");
        assert!(line.contains("pid "), "{up}");
        assert!(serves(port), "port {port} does not serve after up returned");
        let active = m.systemctl(&t, &["is-active", unit]);
        assert_eq!(active.stdout.trim(), "active", "{active}");
    }
    // The process that ran `up` is gone; the services keep serving.
    std::thread::sleep(Duration::from_secs(1));
    assert!(serves(web) && serves(api));
    let web_server = listeners(web);
    assert!(!web_server.is_empty());
    // The holds name the units.
    assert_eq!(holders(&t, "web")[0]["unit"]["name"], web_unit.as_str());
    assert_eq!(holders(&t, "web")[0]["unit"]["manager"], "systemd");

    let status = run(&mut m.wtenv(&t, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    for (service, unit, port) in [("web", &web_unit, web), ("api", &api_unit, api)] {
        let cells = status_cells(&status, service);
        assert_eq!(
            [1, 2, 3, 5, 6].map(|i| cells[i].as_str()),
            [
                "systemd",
                unit.as_str(),
                "active",
                &*port.to_string(),
                "healthy"
            ],
            "manager, unit, state, port, health: {status}"
        );
    }
    let json = run(&mut m.wtenv(&t, &["status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["services"].as_array().unwrap().len(), 2, "{json}");

    // `list` names the unit that holds each port.
    let list = run(&mut m.wtenv(&t, &["list"]));
    assert!(
        list.stdout.contains(&format!("(systemd unit {web_unit})")),
        "{list}"
    );

    let logs = run(&mut m.wtenv(&t, &["logs", "web"]));
    assert_eq!(logs.code, Some(0), "{logs}");
    assert!(logs.stdout.contains("web | web says hello\n"), "{logs}");
    assert!(!logs.stdout.contains("api says"), "{logs}");

    let down = run(&mut m.wtenv(&t, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web) && free(api), "ports still busy after down");
    assert!(holders(&t, "web").is_empty() && holders(&t, "api").is_empty());
    for pid in web_server {
        assert!(!alive(pid), "server {pid} survived down");
    }
    let units = m.systemctl(
        &t,
        &[
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "wtenv-*.service",
        ],
    );
    assert!(units.stdout.trim().is_empty(), "units left: {units}");
    let status = run(&mut m.wtenv(&t, &["status", "--json"]));
    assert!(status.stdout.contains("\"services\": []"), "{status}");
}

/// The supervisor's SIGKILL at its grace's end went to its stderr, the
/// journal: the log, which `logs` shows, had only `ended (killed by
/// SIGKILL)`. As under the wtenv back end, it says what it killed there.
#[test]
fn the_log_says_what_the_supervisor_killed_when_its_grace_ended() {
    let t = TestEnv::new();
    let m = UserManager::start(&t);
    super::wtenv_back_end::the_log_says_what_the_grace_killed(&t, "systemd", &|args| {
        m.wtenv(&t, args)
    });
}

#[test]
fn a_unit_stopped_from_outside_releases_its_ports() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "-d"]));
    assert_eq!(up.code, Some(0), "{up}");
    let stop = m.systemctl(&t, &["stop", &web_unit]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || holders(&t, "web").is_empty() && free(web)));
    // The other one is untouched.
    assert!(serves(api) && !holders(&t, "api").is_empty());
    let status = run(&mut m.wtenv(&t, &["status"]));
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains(&web_unit))
        .unwrap();
    assert!(line.contains("inactive"), "{status}");
    assert_eq!(run(&mut m.wtenv(&t, &["down"])).code, Some(0));
    assert!(free(api));
}

#[test]
fn a_unit_whose_main_process_is_killed_is_swept_once_inactive() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, _) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let main = m.main_pid(&t, &web_unit);
    signal(main, Signal::SIGKILL);
    // The dead run cannot release; the manager stops the rest of the unit.
    assert!(wait_for(PATIENCE, || {
        m.systemctl(&t, &["is-active", &web_unit]).stdout.trim() != "active"
    }));
    assert!(wait_for(PATIENCE, || free(web)));
    assert_eq!(holders(&t, "web").len(), 1, "the hold stays until a sweep");
    // The next allocating command sweeps it: pid gone, unit inactive.
    let env = run(&mut m.wtenv(&t, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(holders(&t, "web").is_empty(), "{}", t.registry());
}

#[test]
fn up_detach_fails_with_the_reason_and_stops_what_it_started() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
[services.api]
run = "echo api cannot start >&2; exit 3"
"#,
    );
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "-d"]));
    assert_eq!(up.code, Some(1), "{up}");
    // How it ended, as the wtenv back end says it: systemd collected the
    // unit and forgot its result ("its unit is inactive"); its `run`
    // noted it in the log.
    assert!(
        up.stderr
            .starts_with("error: service api did not get ready: it ended (exit code 3); "),
        "{up}"
    );
    assert!(up.stderr.contains("api cannot start"), "{up}");
    assert!(wait_for(PATIENCE, || free(web) && free(api)));
    let active = m.systemctl(&t, &["is-active", &web_unit]);
    assert_ne!(active.stdout.trim(), "active", "{active}");
    assert!(holders(&t, "web").is_empty());
    let logs = run(&mut m.wtenv(&t, &["logs", "api"]));
    assert!(
        logs.stdout
            .ends_with("api | api cannot start\napi | wtenv: service api ended (exit code 3)\n"),
        "{logs}"
    );
}

/// Two repositories with the same directory name and worktree name
/// (`<tmp>/repo` and `<tmp>/b/repo`) run side by side under one user
/// manager: each gets units of its own, and `status` and `down` in one
/// never reach the other's.
#[test]
fn same_named_repositories_get_distinct_units_under_systemd() {
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    let other = t.root().join("b").join("repo");
    std::fs::create_dir_all(&other).unwrap();
    t.git_in(&other, &["init", "-q", "-b", "main"]);
    std::fs::copy(t.repo.join("wtenv.toml"), other.join("wtenv.toml")).unwrap();
    let m = UserManager::start(&t);
    let a = unit(&t, "web");
    let b = format!(
        "{}.service",
        wtenv::background::Naming::at(&other.join(".git"), &other)
            .expect("git knows the worktree")
            .unit("web")
    );
    assert_ne!(a, b);
    let up_a = run(&mut m.wtenv(&t, &["up", "-d"]));
    assert_eq!(up_a.code, Some(0), "{up_a}");
    let up_b = run(&mut m.wtenv_in(&t, &other, &["up", "-d"]));
    assert_eq!(up_b.code, Some(0), "{up_b}");
    let (port_a, port_b) = (printed_port(&up_a, &a), printed_port(&up_b, &b));
    assert_ne!(port_a, port_b);
    for (unit, port) in [(&a, port_a), (&b, port_b)] {
        let active = m.systemctl(&t, &["is-active", unit]);
        assert_eq!(active.stdout.trim(), "active", "{unit}: {active}");
        assert!(serves(port), "{unit} does not serve on {port}");
    }
    let status = run(&mut m.wtenv_in(&t, &other, &["status"]));
    assert!(
        status.stdout.contains(&b) && !status.stdout.contains(&a),
        "{status}"
    );
    let down = run(&mut m.wtenv(&t, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(port_a));
    assert_eq!(m.systemctl(&t, &["is-active", &b]).stdout.trim(), "active");
    assert!(serves(port_b), "down in one repository stopped the other's");
    let down = run(&mut m.wtenv_in(&t, &other, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(port_b));
}

/// Every string escapes as `systemd-escape` does.
#[test]
fn unit_name_escaping_matches_systemd_escape() {
    for text in [
        "web",
        "my-repo",
        "feature/login",
        ".hidden",
        "a.b",
        "sp ace",
        "quo\"te'",
        "$(touch x)",
        "ünï",
        "back\\slash",
        "x:y_z",
        "-lead",
        "tab\there",
        &"long".repeat(60),
    ] {
        let out = Command::new("systemd-escape")
            .arg("--")
            .arg(text)
            .output()
            .unwrap();
        assert!(out.status.success(), "{text:?}");
        let theirs = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            wtenv::background::systemd::escape(text),
            theirs.trim_end_matches('\n'),
            "{text:?}"
        );
    }
}

/// `up --detach` under systemd with a passed variable systemd cannot take
/// is refused before anything is reserved, started or made in the state
/// directory.
#[test]
fn up_detach_under_systemd_refuses_a_variable_that_is_not_utf8_with_the_registry_as_it_was() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    let m = UserManager::start(&t);
    let state = snapshot(&t.root().join("state"));
    let mut up = m.wtenv(&t, &["up", "-d", "--manager", "systemd"]);
    let out = run(up.env("PATH", path_not_utf8()));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!t.registry_path().exists(), "ports reserved: {out}");
    // Not even an empty `background/` (or state) directory is made.
    assert!(
        snapshot(&t.root().join("state")) == state,
        "the state directory changed: {out}"
    );
    let error = "error: systemd cannot carry the variable PATH ";
    assert!(
        out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
        "{out}"
    );
    let state = m.systemctl(&t, &["is-active", &unit(&t, "web")]);
    assert_ne!(state.stdout.trim(), "active", "{state}");
}

/// A start systemd refuses (here: a unit of that name runs already)
/// hints at what systemd says of the unit, naming it: `systemctl --user
/// status` and `journalctl --user -u`. Its name holds systemd's `\x2d`
/// (a worktree named `feature-login`), which an unquoted word loses
/// (`x2d` to bash): pasted into bash, zsh and fish, with stand-ins for
/// both commands that log their arguments, each command gets the unit's
/// name whole.
#[test]
fn a_refused_start_hints_at_the_unit_by_a_name_each_shell_reads_whole() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    let wt = t.add_worktree("feature-login");
    std::fs::copy(t.repo.join("wtenv.toml"), wt.join("wtenv.toml")).unwrap();
    let repo = std::fs::canonicalize(&t.repo).unwrap();
    let wt = std::fs::canonicalize(&wt).unwrap();
    let unit = format!(
        "{}.service",
        wtenv::background::Naming::at(&repo.join(".git"), &wt)
            .expect("git knows the worktree")
            .unit("web")
    );
    assert!(unit.contains(r"feature\x2dlogin"), "{unit}");
    let m = UserManager::start(&t);
    let mut taken = Command::new("systemd-run");
    t.apply_env(&mut taken);
    let taken = run(taken
        .env("XDG_RUNTIME_DIR", &m.runtime)
        .args(["--user", "--unit", &unit, "sleep", "600"]));
    assert_eq!(taken.code, Some(0), "{taken}");
    let out = run(&mut m.wtenv_in(&t, &wt, &["up", "-d", "--manager", "systemd"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with(&format!("error: systemd-run could not start {unit}: ")),
        "{out}"
    );
    // Stand-ins that log their name and each argument, a line each.
    let bin = t.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = t.root().join("pasted.log");
    for name in ["systemctl", "journalctl"] {
        let path = bin.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s\\n' {name} \"$@\" >>'{}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The command after `said` on `out`'s hint line, pasted into each
    // shell, runs `expected` (names and arguments, a line each).
    let pastes = |out: &Run, said: &str, expected: &[&str]| {
        let hint = out
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix(said))
            .unwrap_or_else(|| panic!("no {said:?}: {out}"));
        for shell in crate::shell::SHELLS {
            let _ = std::fs::remove_file(&log);
            let pasted = run(shell.command(&t, &wt, hint).env("PATH", &path));
            assert_eq!(pasted.code, Some(0), "{}: {hint}: {pasted}", shell.name());
            let logged = std::fs::read_to_string(&log).unwrap();
            assert_eq!(
                logged.lines().collect::<Vec<_>>(),
                expected,
                "{}: {hint}",
                shell.name()
            );
        }
    };
    pastes(
        &out,
        "hint: see what systemd says of it: ",
        &[
            "systemctl",
            "--user",
            "status",
            &unit,
            "journalctl",
            "--user",
            "-u",
            &unit,
        ],
    );
    // `status`'s hint at units `export` made, by the same names, once
    // the manager has them (the unit above stopped: a name of its own).
    let stopped = m.systemctl(&t, &["stop", &unit]);
    assert_eq!(stopped.code, Some(0), "{stopped}");
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv_in(&t, &wt, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    m.verify_and_link(&t, &export.stdout.lines().collect::<Vec<_>>());
    let status = run(&mut m.wtenv_in(&t, &wt, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    pastes(
        &status,
        "hint: units made by 'wtenv export' are your service manager's to show: ",
        &["systemctl", "--user", "status", &unit],
    );
}
