//! `validate` of worktrees' allocations: stale ports with
//! `--verify-ports`, `--verbose`, and `--fix` while a `create` runs.

use std::process::Stdio;
use std::time::Duration;

use super::{create, default_path};
use crate::support::{HttpServer, TestEnv, run, wait_for};

#[test]
fn validate_verify_ports_reports_the_stale_allocation_of_a_killed_service_and_fix_cleans_it() {
    let t = TestEnv::new();
    let out = create(&t, "svc", &["--ports"]);
    assert_eq!(out.code, Some(0), "{out}");
    let path = default_path(&t, "feature", "svc");
    let mut server = HttpServer::start(&path, t.ports.start);
    let live = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(live.code, Some(0), "{live}");
    assert!(
        !live.stdout.contains("stale"),
        "its service listens: {live}"
    );
    server.kill();

    let stale = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(stale.code, Some(0), "a warning is still valid: {stale}");
    assert!(
        stale.stdout.contains(&format!(
            "stale: port {} (app) of {}",
            t.ports.start,
            path.display()
        )),
        "{stale}"
    );
    assert_eq!(t.allocations().len(), 1, "without --fix nothing changes");

    let fixed = run(&mut t.wtenv(&["validate", "--verify-ports", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(fixed.stdout.contains("[fixed]"), "{fixed}");
    assert!(t.allocations().is_empty());
    let clean = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert!(!clean.stdout.contains("stale"), "{clean}");
}

#[test]
fn validate_verbose_lists_every_allocation_with_and_without_verify_ports() {
    let t = TestEnv::new();
    for id in ["one", "two"] {
        let out = create(&t, id, &["--ports"]);
        assert_eq!(out.code, Some(0), "{out}");
    }
    let one = default_path(&t, "feature", "one");
    let _server = HttpServer::start(&one, t.ports.start);

    let plain = run(&mut t.wtenv(&["validate", "--verbose"]));
    assert_eq!(plain.code, Some(0), "{plain}");
    for (port, id) in [(t.ports.start, "one"), (t.ports.start + 1, "two")] {
        let path = default_path(&t, "feature", id);
        assert!(
            plain
                .stdout
                .lines()
                .any(|l| l.starts_with(&port.to_string())
                    && l.ends_with(path.to_str().unwrap())
                    && l.contains(" ok ")),
            "{port} listed as checked: {plain}"
        );
    }
    assert!(
        !plain.stdout.contains("stale"),
        "no probing without --verify-ports: {plain}"
    );

    let verify = run(&mut t.wtenv(&["validate", "--verbose", "--verify-ports"]));
    assert_eq!(verify.code, Some(0), "{verify}");
    let line = |port: u16| {
        verify
            .stdout
            .lines()
            .find(|l| l.starts_with(&port.to_string()))
            .unwrap_or_else(|| panic!("{port} not listed: {verify}"))
            .to_owned()
    };
    assert!(!line(t.ports.start).contains("stale"), "{verify}");
    assert!(line(t.ports.start + 1).contains("stale"), "{verify}");
}

#[test]
fn validate_fix_during_create_leaves_the_new_worktree_reserved() {
    // A slow smudge filter on a file checked out before wtenv.toml: while
    // git checks out, the new directory exists without its wtenv.toml, so
    // a concurrent `validate --fix` judges the reservation by the default
    // config and releases it as out of range. create confirms its
    // reservation once git is done: it reports only a port the registry
    // holds for it, never one that may be handed out twice (allocation rule 7).
    let t = TestEnv::new();
    std::fs::write(t.repo.join(".gitattributes"), "aaa filter=slow\n").unwrap();
    std::fs::write(t.repo.join("aaa"), "x\n").unwrap();
    t.git(&["add", ".gitattributes", "aaa"]);
    t.git(&["commit", "-q", "-m", "slow file"]);
    t.git(&["config", "filter.slow.smudge", "sleep 2; cat"]);
    let path = default_path(&t, "feature", "slow");
    let child = t
        .wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "slow",
            "--ports",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        t.allocations().iter().any(|a| a.2 == path)
    }));
    assert!(path.is_dir() && !path.join("wtenv.toml").exists());
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start}));
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), path)],
        "validate --fix during create: {fix}"
    );
}
