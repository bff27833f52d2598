//! Overflow ranges: a purpose with several ranges takes the next one when
//! the current one is full; fail fast stays per range; every message,
//! `conflicts`, `validate` and `list` name every range.

use std::path::Path;

use serde_json::json;

use crate::support::{PyListener, TestEnv, run};

/// This test's block as two ranges: the first 2 ports, then ports 10-19.
fn two_ranges(t: &TestEnv) -> (String, String) {
    (
        format!("{}-{}", t.ports.port(0), t.ports.port(1)),
        format!("{}-{}", t.ports.port(10), t.ports.port(19)),
    )
}

/// Commits `name` with `text` as the repository's only config.
fn commit_config(t: &TestEnv, name: &str, text: &str) {
    let _ = std::fs::remove_file(t.repo.join("wtenv.toml"));
    std::fs::write(t.repo.join(name), text).unwrap();
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "overflow ranges"]);
}

fn toml_config(t: &TestEnv) {
    let (first, second) = two_ranges(t);
    commit_config(
        t,
        "wtenv.toml",
        &format!("[purposes]\nfeature = [\"{first}\", \"{second}\"]\n"),
    );
}

fn port_of(t: &TestEnv, dir: &Path) -> u16 {
    let out = run(&mut t.wtenv_in(dir, &["env", "--format", "json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    vars["PORT"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_third_worktree_gets_the_second_ranges_first_port_when_the_first_is_full() {
    let t = TestEnv::new();
    toml_config(&t);
    let (a, b, c) = (t.repo.clone(), t.add_worktree("b"), t.add_worktree("c"));
    assert_eq!(port_of(&t, &a), t.ports.port(0));
    assert_eq!(port_of(&t, &b), t.ports.port(1));
    assert_eq!(port_of(&t, &c), t.ports.port(10));
    // `allocate` and `create --ports` take the same road.
    let out = run(&mut t.wtenv(&["allocate", "--service", "extra"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), t.ports.port(11).to_string());
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "d",
        "--ports",
        "--json",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"]["app"], t.ports.port(12), "{out}");

    // `list` names every range of the purpose.
    let (first, second) = two_ranges(&t);
    let out = run(&mut t.wtenv(&["list"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains(&format!("{first},{second}")), "{out}");
    let out = run(&mut t.wtenv(&["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc["worktrees"][0]["ranges"],
        json!([first, second]),
        "{out}"
    );
}

#[test]
fn a_conflict_in_the_first_range_fails_fast_with_the_seed_message_unless_skip_occupied() {
    let t = TestEnv::new();
    toml_config(&t);
    let (first, second) = two_ranges(&t);
    let b = t.add_worktree("b");
    assert_eq!(port_of(&t, &t.repo), t.ports.port(0));
    let foreign = PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.port(1), "");
    let before = std::fs::read(t.registry_path()).unwrap();

    let out = run(&mut t.wtenv_in(&b, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    let seed = format!(
        "Port conflict detected in feature range {first}.\n\
         Ports free in registry but occupied on system: {}.\n\
         Run 'wtenv validate --verify-ports' to detect and clean stale allocations.\n",
        t.ports.port(1)
    );
    assert!(out.stderr.contains(&seed), "{out}");
    assert!(
        out.stderr.contains(&format!("pid {}", foreign.pid())),
        "the holder is named: {out}"
    );
    assert!(
        out.stderr
            .contains(&format!("feature ranges {first}, {second}, tried in order")),
        "every range is named: {out}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);

    let out = run(&mut t.wtenv_in(&b, &["env", "--skip-occupied", "--format", "json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(vars["PORT"], t.ports.port(10).to_string());

    // `conflicts` scans every range and says which one.
    let out = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "{}  feature  {first}  pid {}",
            t.ports.port(1),
            foreign.pid()
        )),
        "{out}"
    );
    drop(foreign);
    let out = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("no conflicts in feature {first}, {second}")),
        "{out}"
    );
}

#[test]
fn a_json_config_with_every_range_full_names_every_range() {
    let t = TestEnv::new();
    let (one, two) = (t.ports.port(0), t.ports.port(10));
    commit_config(
        &t,
        "wtenv.json",
        &format!(r#"{{"purposes":{{"feature":["{one}-{one}","{two}-{two}"]}}}}"#),
    );
    let (b, c) = (t.add_worktree("b"), t.add_worktree("c"));
    assert_eq!(port_of(&t, &t.repo), one);
    assert_eq!(port_of(&t, &b), two);
    let out = run(&mut t.wtenv_in(&c, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    // The worktree needs one port: the ranges are full, not too small.
    assert_eq!(
        out.stderr,
        format!(
            "error: no free port left in feature ranges {one}-{one}, {two}-{two}\n\
             hint: run 'wtenv validate --verify-ports --fix' to release stale allocations, \
             or widen the range (or add an overflow range) in wtenv.json\n"
        ),
    );
}

/// Ranges that hold fewer ports than the worktree's services need are
/// the cause, said with both numbers, and the hint says how wide (a
/// `validate --fix` could free nothing). Ranges full of other worktrees'
/// ports keep the message above.
#[test]
fn ranges_smaller_than_the_services_need_say_both_numbers() {
    let t = TestEnv::new();
    let (one, two) = (t.ports.port(0), t.ports.port(10));
    commit_config(
        &t,
        "wtenv.toml",
        &format!(
            "[purposes]\nfeature = [\"{one}-{one}\", \"{two}-{two}\"]\n\
             [services.web]\n[services.api]\n[services.db]\n"
        ),
    );
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: no free port left in feature ranges {one}-{one}, {two}-{two}: \
             this worktree's services need 3 ports; the ranges hold 2\n\
             hint: widen the ranges to at least 3 ports together (or add an overflow range) \
             in wtenv.toml\n"
        ),
    );
    assert!(t.allocations().is_empty(), "{out}");
}

#[test]
fn validate_accepts_the_overflow_range_and_names_every_range_when_outside() {
    let t = TestEnv::new();
    toml_config(&t);
    let (first, second) = two_ranges(&t);
    let outside = t.ports.port(5);
    t.write_registry(vec![
        t.record(t.ports.port(10), "app", "feature", &t.repo, true, json!([])),
        t.record(outside, "web", "feature", &t.repo, true, json!([])),
    ]);
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "port {outside} is outside the feature ranges {first}, {second}"
        )),
        "{out}"
    );
    assert!(
        !out.stdout
            .contains(&format!("port {} (app)", t.ports.port(10))),
        "the port in the overflow range is fine: {out}"
    );
}
