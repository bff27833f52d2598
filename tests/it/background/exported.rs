//! Exported units and wtenv's own starts, under the real user manager: a
//! port an exported `.socket` unit listens on is stopped through the
//! worktree's target, never by killing the manager; and `up -d` refuses
//! a service whose exported unit the manager has loaded.

use std::path::Path;

use super::{UserManager, free, naming, two_http_services};
use crate::support::{TestEnv, run, wait_for};
use wtenv::shell::quote_in_message;

const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The port of the `.socket` unit file `socket` (`ListenStream=ADDR:PORT`).
fn listened(socket: &Path) -> u16 {
    let text = std::fs::read_to_string(socket).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ListenStream="))
        .unwrap();
    line.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_port_an_exported_socket_unit_holds_is_stopped_by_the_target_not_by_kill() {
    let t = TestEnv::new();
    t.write_config(
        "[services.sock]\nsocket = true\nbind = \"127.0.0.1\"\nrun = \"exec sleep 600\"\n",
    );
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("sockwt");
    let m = UserManager::start(&t);
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv_in(&t, &wt, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let files: Vec<&str> = export.stdout.lines().collect();
    let repo = std::fs::canonicalize(&t.repo).unwrap();
    let n = wtenv::background::Naming::at(&repo.join(".git"), &wt).expect("git knows the worktree");
    let target = format!("{}.target", n.group());
    let port = listened(&dir.join(format!("{}.socket", n.unit("sock"))));
    m.verify_and_link(&t, &files);
    let start = m.systemctl(&t, &["start", &target]);
    assert_eq!(start.code, Some(0), "{start}");
    // Only the socket listens: its service is stopped.
    let stop = m.systemctl(&t, &["stop", &format!("{}.service", n.unit("sock"))]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || !free(port)));
    // `--json` names the unit the manager listens for, as messages do.
    let ports = run(&mut m.wtenv_in(&t, &wt, &["ports", "--json"]));
    let doc: serde_json::Value =
        serde_json::from_str(&ports.stdout).unwrap_or_else(|e| panic!("{e}: {ports}"));
    let sock = doc["allocations"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["port"] == port))
        .unwrap_or_else(|| panic!("{ports}"));
    let manager = &sock["listeners"][0];
    assert_eq!(
        manager["unit"],
        format!("{}.socket", n.unit("sock")),
        "{ports}"
    );

    let stop_target = format!("systemctl --user stop {}", quote_in_message(&target));
    let socket_unit = quote_in_message(format!("{}.socket", n.unit("sock")));
    for args in [
        &["up", "sock"][..],
        &["up", "-d", "--manager", "wtenv", "sock"],
    ] {
        let up = run(&mut m.wtenv_in(&t, &wt, args));
        assert_eq!(up.code, Some(1), "{args:?}: {up}");
        assert!(
            up.stderr
                .contains(&format!("the service manager, listening for {socket_unit}")),
            "{args:?}: {up}"
        );
        assert!(up.stderr.contains(&stop_target), "{args:?}: {up}");
        assert!(!up.stderr.contains("kill"), "{args:?}: {up}");
    }
    // systemd's own back end: the exported unit is loaded (finding 3).
    let up = run(&mut m.wtenv_in(&t, &wt, &["up", "-d", "sock"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("is exported"), "{up}");
    assert!(!up.stderr.contains("kill"), "{up}");

    let remove = run(&mut m.wtenv(&t, &["remove", wt.to_str().unwrap()]));
    assert_eq!(remove.code, Some(1), "{remove}");
    assert!(remove.stderr.contains("is in use"), "{remove}");
    assert!(remove.stderr.contains(&stop_target), "{remove}");
    assert!(!remove.stderr.contains("stop those processes"), "{remove}");
    assert!(wt.exists());

    // The hint's way out works: the port is free, and `remove` goes on.
    let stopped = m.systemctl(&t, &["stop", &target]);
    assert_eq!(stopped.code, Some(0), "{stopped}");
    assert!(wait_for(PATIENCE, || free(port)));
    let remove = run(&mut m.wtenv(&t, &["remove", wt.to_str().unwrap()]));
    assert_eq!(remove.code, Some(0), "{remove}");
}

#[test]
fn up_detach_refuses_a_service_whose_exported_unit_is_loaded() {
    let t = TestEnv::new();
    two_http_services(&t);
    let m = UserManager::start(&t);
    // Into the default directory, which the manager loads.
    let export = run(&mut m.wtenv(&t, &["export", "systemd"]));
    assert_eq!(export.code, Some(0), "{export}");
    let n = naming(&t);
    let unit = format!("{}.service", n.unit("web"));
    let registry = std::fs::read(t.registry_path()).unwrap();
    let up = run(&mut m.wtenv(&t, &["up", "-d", "web"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.contains(&format!(
            "error: service web is exported: the systemd user manager has the unit {}",
            quote_in_message(&unit)
        )),
        "{up}"
    );
    let target = quote_in_message(format!("{}.target", n.group()));
    assert!(
        up.stderr.contains(&format!(
            "run the exported units instead (systemctl --user start {target})"
        )),
        "{up}"
    );
    assert!(!up.stderr.contains("systemd-run"), "{up}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
    assert!(
        !m.systemctl(&t, &["is-active", &unit])
            .stdout
            .starts_with("active"),
        "nothing started"
    );

    // The other way out, the hint's commands pasted into a shell: the
    // files removed, `up -d` starts the service.
    let commands = up
        .stderr
        .split("links of this worktree (")
        .nth(1)
        .and_then(|rest| rest.split(") and run ").next())
        .unwrap_or_else(|| panic!("{up}"));
    let mut sh = std::process::Command::new("sh");
    t.apply_env(&mut sh);
    sh.env("XDG_RUNTIME_DIR", &m.runtime).args([
        "-c",
        &format!("set -e; {commands}; systemctl --user daemon-reload"),
    ]);
    let out = run(&mut sh);
    assert_eq!(out.code, Some(0), "{out}");
    for file in export.stdout.lines() {
        assert!(!Path::new(file).exists(), "{file}");
    }
    let up = run(&mut m.wtenv(&t, &["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let down = run(&mut m.wtenv(&t, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
}
