//! Snapshots of the supervising commands: `run`, `up` (short-lived
//! services), `export`, and the background ones (`up -d`, `status`,
//! `logs`, `down`) under the detached wtenv supervisor.

use std::os::unix::fs::PermissionsExt;

use crate::background::DownOnDrop;
use crate::snapshots::{check_text, check_with, snap, two_services};
use crate::supervise::PATIENCE;
use crate::support::{HttpServer, TestEnv, run, wait_for};

#[test]
fn run_gives_the_command_the_ports_and_its_exit_code() {
    let t = TestEnv::new();
    two_services(&t);
    snap(
        &t,
        "run_gives_the_command_the_worktrees_ports",
        &mut t.wtenv(&["run", "--", "sh", "-c", "echo web=$PORT api=$API_PORT"]),
    );
    snap(
        &t,
        "run_exits_with_the_commands_exit_code",
        &mut t.wtenv(&["run", "--", "sh", "-c", "echo failing >&2; exit 3"]),
    );
    snap(
        &t,
        "run_dies_of_the_signal_its_command_died_of",
        &mut t.wtenv(&["run", "--", "sh", "-c", "kill -TERM $$"]),
    );
    snap(
        &t,
        "run_of_a_missing_command_exits_127",
        &mut t.wtenv(&["run", "--", "wtenv-no-such-command"]),
    );
    let script = t.root().join("not-executable.sh");
    std::fs::write(&script, "echo hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    snap(
        &t,
        "run_of_a_file_that_cannot_be_executed_exits_126",
        &mut t.wtenv(&["run", "--", script.to_str().unwrap()]),
    );
    assert!(t.allocations().is_empty(), "run's own ports are released");
}

#[test]
fn run_sockets_names_the_process_on_the_port_it_cannot_bind() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nsocket = true\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let _own = HttpServer::start(&t.repo, t.ports.port(0));
    snap(
        &t,
        "run_sockets_names_the_process_on_the_port_it_cannot_bind",
        &mut t.wtenv(&["run", "--sockets", "--", "true"]),
    );
}

#[test]
fn up_runs_short_lived_services_and_ends_as_they_do() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"PORT\"]\nrun = \"echo web on $PORT\"\n");
    snap(
        &t,
        "up_runs_a_service_with_its_output_prefixed",
        &mut t.wtenv(&["up"]),
    );
    t.write_config("[services.web]\nrun = \"echo web fails >&2; exit 3\"\n");
    snap(
        &t,
        "up_exits_with_the_failing_services_exit_code",
        &mut t.wtenv(&["up"]),
    );
    snap(
        &t,
        "up_of_an_undeclared_service_is_refused",
        &mut t.wtenv(&["up", "nosuch"]),
    );
    t.write_config("[services.web]\nrun = \"wtenv-no-such-command\"\n");
    snap(
        &t,
        "up_of_a_service_whose_command_is_missing_says_what_to_check",
        &mut t.wtenv(&["up"]),
    );
    t.write_config("[services.web]\n");
    snap(
        &t,
        "up_without_any_run_command_says_what_to_add",
        &mut t.wtenv(&["up"]),
    );
    assert!(t.allocations().is_empty(), "up's own ports are released");
}

#[test]
fn export_writes_unit_files_and_says_how_to_start_them() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"PORT\"]\nrun = \"python3 -m http.server $PORT\"\n");
    let dir = t.root().join("units");
    snap(
        &t,
        "export_systemd_names_the_files_and_the_commands_to_start_them",
        &mut t.wtenv(&["export", "systemd", dir.to_str().unwrap()]),
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // Those two files, whatever stdout said: the loop below snapshots
    // what it finds, and finds nothing in an empty directory.
    let kinds: Vec<_> = files.iter().filter_map(|f| f.extension()).collect();
    assert_eq!(kinds, ["service", "target"], "{files:?}");
    // Named by what they are: the files' names carry a hash of the path.
    for file in files {
        let kind = file.extension().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        check_text(&t, &format!("export_systemd_writes_the_{kind}"), &text, &[]);
    }
    snap(
        &t,
        "export_launchd_names_the_plists_and_the_command_to_load_them",
        &mut t.wtenv(&["export", "launchd", dir.join("plists").to_str().unwrap()]),
    );
    snap(
        &t,
        "export_into_a_directory_that_cannot_be_made_fails",
        &mut t.wtenv(&["export", "systemd", "/dev/null/units"]),
    );
}

#[test]
fn background_services_start_show_log_and_stop() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"echo web says hello; exec python3 -m http.server $PORT --bind 127.0.0.1 >/dev/null 2>&1\"\n",
    );
    snap(
        &t,
        "status_with_nothing_in_the_background",
        &mut t.wtenv(&["status"]),
    );
    snap(
        &t,
        "logs_with_nothing_in_the_background",
        &mut t.wtenv(&["logs"]),
    );
    snap(
        &t,
        "down_with_nothing_in_the_background",
        &mut t.wtenv(&["down"]),
    );
    snap(
        &t,
        "up_detach_returns_once_the_service_is_ready",
        &mut t.wtenv(&["up", "-d", "--manager", "wtenv"]),
    );
    assert!(
        wait_for(PATIENCE, || run(&mut t.wtenv(&["logs"]))
            .stdout
            .contains("web says hello")),
        "the service's first line reaches its log"
    );
    // Its pid and uptime (status's table and JSON).
    let live = [
        (r"running  \d+  ", "running  [PID]  "),
        (r"(healthy|starting)  \d\S*  ", "$1  [UPTIME]  "),
        (r#""uptime_seconds": \d+"#, r#""uptime_seconds": [UPTIME]"#),
    ];
    let status = run(&mut t.wtenv(&["status"]));
    check_with(&t, "status_shows_the_background_service", &status, &live);
    let status = run(&mut t.wtenv(&["status", "--json"]));
    check_with(
        &t,
        "status_json_shows_the_background_service",
        &status,
        &live,
    );
    snap(
        &t,
        "logs_prints_the_services_output_prefixed",
        &mut t.wtenv(&["logs", "web"]),
    );
    snap(
        &t,
        "logs_of_an_undeclared_service_is_refused",
        &mut t.wtenv(&["logs", "nosuch"]),
    );
    snap(
        &t,
        "down_stops_the_service_and_releases_its_port",
        &mut t.wtenv(&["down"]),
    );
    snap(
        &t,
        "ports_after_down_shows_the_port_idle",
        &mut t.wtenv(&["ports"]),
    );
}
