//! What the views show of the registry: `ports` (this repository, or
//! `--all`), `conflicts`, and tables that keep one line per allocation.

use crate::support::{PyListener, TestEnv, run};

#[test]
fn tables_keep_one_line_per_allocation_whatever_the_path_holds() {
    let t = TestEnv::new();
    let odd = t.root().join("a b'c\nd");
    t.git(&["worktree", "add", "-q", "-b", "odd", odd.to_str().unwrap()]);
    assert_eq!(run(&mut t.wtenv_in(&odd, &["env"])).code, Some(0));
    std::fs::remove_dir_all(&odd).unwrap();
    let out = run(&mut t.wtenv(&["ports"]));
    assert_eq!(out.stdout.lines().count(), 2, "{out}");
    assert!(out.stdout.contains("a b'c\\nd"), "{out}");
    let out = run(&mut t.wtenv(&["validate", "-v"]));
    assert_eq!(out.code, Some(1), "{out}");
    // Header, the row, the worktree-gone finding, the summary.
    assert_eq!(out.stdout.lines().count(), 4, "{out}");
}

#[test]
fn conflicts_lists_ports_free_in_registry_but_held_on_the_system_and_exits_1() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let elsewhere = t.root().join("home");
    // The reserved port is not a conflict (the registry knows it); port 5
    // of the block is.
    let _own = PyListener::start(&t.repo, "4", "127.0.0.1", t.ports.start, "");
    let foreign = PyListener::start(&elsewhere, "6", "::1", t.ports.port(5), "");
    let out = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(out.code, Some(1), "{out}");
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[1].starts_with(&format!(
            "{}  feature  {}  pid {} (",
            t.ports.port(5),
            t.ports.range(),
            foreign.pid()
        )),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["conflicts", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["conflicts"][0]["port"], t.ports.port(5));
    assert_eq!(doc["conflicts"][0]["holders"][0]["pid"], foreign.pid());
}

#[test]
fn ports_shows_this_repository_and_all_shows_every_one() {
    let t = TestEnv::new();
    let other = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    // Another repository's allocation in the same registry.
    let out = run(&mut t.wtenv_in(
        &other.repo,
        &[
            "--config",
            t.repo.join("wtenv.toml").to_str().unwrap(),
            "allocate",
            "--service",
            "db",
        ],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    let out = run(&mut t.wtenv(&["ports", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["allocations"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(doc["allocations"][0]["state"], "idle");
    let out = run(&mut t.wtenv(&["ports", "--all"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.lines().count(), 3, "{out}");
    assert!(out.stdout.contains(other.repo.to_str().unwrap()), "{out}");
}
