//! Where a service's command runs: in the worktree's root, wherever `up`
//! (or `up -d`, `status`, `export`) is started from, so a relative path
//! in its `run` line or `cmd` check is the root's file. `run -- CMD` is
//! the user's own command line and runs from where it is typed.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::Signal;

use crate::background::{DownOnDrop, UserManager};
use crate::supervise::{PATIENCE, Wtenv, assert_no_holds};
use crate::support::{TestEnv, run, wait_for};
use wtenv::probe::{self, PortState};

/// An executable `#!/bin/sh` script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `sub/dir` of the main worktree, made here: where the commands start.
fn subdir(t: &TestEnv) -> PathBuf {
    let dir = t.repo.join("sub/dir");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `up` started in a subdirectory said "command not found" (127) for
/// `run = "./serve"`: duct made the path absolute from wtenv's own
/// directory. Both spawn paths (exec'd directly, and through the socket
/// hand-off), the restart's spawn and the `cmd` check run the root's files.
#[test]
fn up_from_a_subdirectory_runs_relative_paths_from_the_worktree_root() {
    let t = TestEnv::new();
    let sub = subdir(&t);
    // Each run says where it ran; the first fails, so a restart runs it again.
    script(
        &t.repo.join("serve"),
        "pwd -P >> runs\n[ \"$(wc -l < runs)\" -ge 2 ] || exit 1\nexec sleep 600",
    );
    // Passes once the second run is up; says where it ran.
    script(
        &t.repo.join("check"),
        "pwd -P > checked\n[ \"$(wc -l < runs)\" -ge 2 ]",
    );
    let root = format!("{}\n", t.repo.display());
    for socket in [false, true] {
        for file in ["runs", "checked"] {
            let _ = std::fs::remove_file(t.repo.join(file));
        }
        t.write_config(&format!(
            "[services.web]\nrun = \"./serve\"\nsocket = {socket}\nrestart = \"on-failure\"\nhealth = {{ cmd = \"./check\" }}\n"
        ));
        let mut w = Wtenv::start_in(&t, &sub, &["up", "--grace", "5s"]);
        assert!(
            wait_for(PATIENCE, || {
                let said = w.stderr_text();
                said.contains("web | ready in ") || said.contains("error:")
            }) && w.stderr_text().contains("web | ready in "),
            "socket = {socket}: {}",
            w.stderr_text()
        );
        assert_eq!(
            read(&t.repo.join("runs")),
            root.repeat(2),
            "socket = {socket}"
        );
        assert_eq!(read(&t.repo.join("checked")), root, "socket = {socket}");
        assert!(!sub.join("runs").exists() && !sub.join("checked").exists());
        w.signal(Signal::SIGINT);
        let status = w.wait();
        assert_eq!(
            status.signal(),
            Some(Signal::SIGINT as i32),
            "socket = {socket}: {status:?}\n{}",
            w.stderr_text()
        );
        assert_no_holds(&t);
    }
}

/// A `./serve` missing from the root names the file looked for: the user
/// in a subdirectory sees it is the root's, not theirs.
#[test]
fn up_names_the_roots_file_a_relative_path_did_not_find() {
    let t = TestEnv::new();
    let sub = subdir(&t);
    script(&sub.join("serve"), "exit 0");
    t.write_config("[services.web]\nrun = \"./serve\"\n");
    let out = run(t.wtenv_in(&sub, &["up"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: could not run service web ({}/serve): command not found\n",
            t.repo.display()
        )),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{out}");
}

/// `run`'s command line is the user's, typed in their shell: a relative
/// path is the file of the directory they are in, as the shell would run
/// it, whether `run` holds every port, one service's, or hands sockets.
#[test]
fn run_from_a_subdirectory_runs_a_relative_path_from_there_as_a_shell_does() {
    let t = TestEnv::new();
    let sub = subdir(&t);
    script(&t.repo.join("serve"), "echo root");
    script(&sub.join("serve"), "echo sub");
    t.write_config("[services.web]\nrun = \"./serve\"\n");
    for args in [
        &["run", "--", "./serve"][..],
        &["run", "--service", "web", "--", "./serve"],
        &["run", "--sockets", "--", "./serve"],
    ] {
        let out = run(t.wtenv_in(&sub, args).stdin(Stdio::null()));
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
        assert_eq!(out.stdout, "sub\n", "{args:?}: {out}");
    }
    assert_no_holds(&t);
}

/// A service whose `run` and `cmd` check are the root's scripts, serving
/// on `$PORT` once the check connects. The check's `timeout` is generous:
/// `status` runs it once, and a python3 start on a loaded 2-core machine
/// took more than the default 1s (`timed out after 1s (killed)`, shown
/// as `unhealthy:` for a healthy service), while the check returns as
/// soon as it connects.
fn relative_service(t: &TestEnv) {
    script(
        &t.repo.join("serve"),
        "exec python3 -u -m http.server \"$PORT\" --bind 127.0.0.1",
    );
    script(
        &t.repo.join("check"),
        "exec python3 -c 'import os, socket; socket.create_connection((\"127.0.0.1\", int(os.environ[\"PORT\"])), 1)'",
    );
    t.write_config(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"./serve\"\nhealth = { cmd = \"./check\", timeout = \"30s\" }\n",
    );
}

/// `up -d`, `status` and `down` from a subdirectory, under both back ends
/// that run here: the unit runs in the worktree's root (systemd's
/// `--working-directory`, the detached supervisor's directory), so its
/// `run` finds `./serve` there, and `status` runs `./check` there too.
#[test]
fn background_services_started_from_a_subdirectory_run_from_the_worktree_root() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let sub = subdir(&t);
    relative_service(&t);
    let port = t.ports.port(0);
    let m = UserManager::start(&t);
    for manager in ["systemd", "wtenv"] {
        let wtenv = |args: &[&str]| run(m.wtenv_in(&t, &sub, args).stdin(Stdio::null()));
        let up = wtenv(&["up", "-d", "--manager", manager]);
        assert_eq!(up.code, Some(0), "{manager}: {up}");
        assert!(
            up.stdout.contains(&format!("port {port}")),
            "{manager}: {up}"
        );
        let status = wtenv(&["status"]);
        let cells = crate::background::status_cells(&status, "web");
        assert_eq!(
            [1, 6].map(|i| cells[i].as_str()),
            [manager, "healthy"],
            "manager, health: {status}"
        );
        let down = wtenv(&["down"]);
        assert_eq!(down.code, Some(0), "{manager}: {down}");
        assert_eq!(probe::probe(port).unwrap(), PortState::Free, "{manager}");
        assert_no_holds(&t);
    }
}

/// `export systemd` from a subdirectory: the unit runs in the worktree's
/// root (`WorkingDirectory=`), `ExecStart=` starts with wtenv's absolute
/// path (systemd wants one), and the `run` line's relative path is left
/// for `run` to find there.
#[test]
fn exported_units_run_in_the_worktree_root_wherever_export_ran() {
    let t = TestEnv::new();
    let sub = subdir(&t);
    t.write_config("[services.web]\nrun = \"./serve --dev\"\n");
    let units = t.root().join("units");
    let out = run(&mut t.wtenv_in(&sub, &["export", "systemd", units.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    let service = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-web.service"))
        .unwrap();
    let text = read(&service);
    assert!(
        text.contains(&format!("\nWorkingDirectory={}\n", t.repo.display())),
        "{text}"
    );
    let exec = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.starts_with("ExecStart=\"/"), "{text}");
    assert!(exec.ends_with(" \"--\" \"./serve\" \"--dev\""), "{text}");
}
