//! `up --detach`, `export` and `allocate` inside a shell that holds the worktree's
//! ports (a `nix develop` shell's hook, simulated in `bash -c` as the
//! devShell's shellHook evals it): what they leave outlives that shell, so
//! they reserve the ports rather than join its hold, as `env` there does.

use std::path::Path;

use super::{DownOnDrop, ports, two_http_services};
use crate::nix::bash_with_hook;
use crate::support::{Run, TestEnv, run};

/// web and api, committed so that a linked worktree has them too.
fn committed_services(t: &TestEnv) {
    two_http_services(t);
    t.git(&["commit", "-q", "-am", "services"]);
}

/// The main worktree's allocations are both services', on the block's
/// first two ports, reserved and held by nothing; `ports` says so; and a
/// second worktree's `env` gets two other ports.
fn still_reserved(t: &TestEnv, what: &Run) {
    let (web, api) = ports(t);
    let repo = std::fs::canonicalize(&t.repo).unwrap();
    let reg = t.registry();
    let mine: Vec<_> = reg["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| Path::new(a["worktree"].as_str().unwrap()) == repo)
        .map(|a| {
            (
                a["service"].as_str().unwrap().to_owned(),
                a["port"].as_u64().unwrap() as u16,
                a["reserved"] == true,
                a.get("holders").is_none(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        [
            ("web".into(), web, true, true),
            ("api".into(), api, true, true)
        ],
        "{what}\n{reg}"
    );
    let listed = run(&mut t.wtenv(&["ports"]));
    assert_eq!(listed.code, Some(0), "{listed}");
    for port in [web, api] {
        let line = listed
            .stdout
            .lines()
            .find(|l| l.contains(&port.to_string()))
            .unwrap_or_else(|| panic!("{port} not listed: {listed}"));
        assert!(line.contains("reserved"), "{listed}");
    }
    let other = t.add_worktree("other");
    let out = run(&mut t.wtenv_in(&other, &["env", "--format", "json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for name in ["WEB_PORT", "API_PORT"] {
        let port: u16 = vars[name].as_str().unwrap().parse().unwrap();
        assert!(![web, api].contains(&port), "{name}={port}: {out}");
    }
}

/// `up -d web` in the shell: web (the service it starts, whose unit's
/// `run --service web` holds it) and api are reserved, so after the shell
/// exits and `down` both stay the worktree's.
#[test]
fn up_detach_in_a_holding_shell_reserves_every_port() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    committed_services(&t);
    let out = bash_with_hook(
        &t,
        "{hook}\n{wtenv} up -d web --manager wtenv >/dev/null || exit\n{wtenv} ports",
    );
    assert_eq!(out.code, Some(0), "{out}");
    // The shell held both (the hook ran), and each is reserved besides.
    let inside: Vec<&str> = out.stdout.lines().filter(|l| l.contains("held")).collect();
    assert_eq!(inside.len(), 2, "{out}");
    assert!(
        inside.iter().all(|l| l.contains("reserved")),
        "not reserved: {out}"
    );
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    still_reserved(&t, &out);
}

/// `export systemd DIR` in the shell (no manager needed to write files):
/// every port it wrote into the units stays the worktree's once the shell
/// is gone.
#[test]
fn export_in_a_holding_shell_reserves_every_port() {
    let t = TestEnv::new();
    committed_services(&t);
    let dir = t.root().join("units");
    let out = bash_with_hook(
        &t,
        &format!(
            "{{hook}}\n{{wtenv}} export systemd '{}' >/dev/null || exit\n{{wtenv}} ports",
            dir.display()
        ),
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.contains("held")).count(),
        2,
        "the shell did not hold both: {out}"
    );
    still_reserved(&t, &out);
}

/// `allocate` in the shell: the port it prints, for a service of the
/// config (held by the shell) or one it names ad hoc, stays the
/// worktree's once the shell is gone, as `allocate` outside any shell
/// keeps it.
#[test]
fn allocate_in_a_holding_shell_reserves_the_port_it_prints() {
    let t = TestEnv::new();
    committed_services(&t);
    let out = bash_with_hook(
        &t,
        "{hook}\n{wtenv} allocate --service web || exit\n{wtenv} allocate --service db",
    );
    assert_eq!(out.code, Some(0), "{out}");
    let printed: Vec<u64> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    let reg = t.registry();
    let reserved: Vec<(String, u64)> = reg["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reserved"] == true && a.get("holders").is_none())
        .map(|a| {
            (
                a["service"].as_str().unwrap().to_owned(),
                a["port"].as_u64().unwrap(),
            )
        })
        .collect();
    for (service, port) in ["web", "db"].into_iter().zip(printed) {
        assert!(
            reserved.contains(&(service.to_owned(), port)),
            "{service} on {port} not kept: {out}\n{reg}"
        );
    }
}
