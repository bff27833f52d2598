//! Exported units and wtenv's own starts, under the real user manager:
//! `up -d` refuses a service whose exported unit the manager has loaded.

use std::path::Path;

use super::{UserManager, naming, two_http_services};
use crate::support::{TestEnv, run};
use wtenv::shell::quote_in_message;

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
