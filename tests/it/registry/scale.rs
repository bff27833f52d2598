//! A registry of many allocations: `env` finds its own entries by binary
//! search, and `allocate`, `release` and `run` read and rewrite only their
//! part of the file, still sweeping.

use std::process::Command;

use serde_json::json;

use super::fleet;
use crate::support::{PyListener, Run, TestEnv, kill_watcher_of, run};

/// A registry of 20,000 allocations of other worktrees: an allocation still
/// sweeps the stale entries of its range (a worktree gone, a dead holder)
/// and takes their ports; `env` then finds its own entries by binary search
/// in the file that allocation wrote (sorted and sealed), reading a few
/// dozen lines of it, not 20,000, and still verifies its ports; `allocate`
/// and `release` (and `run`'s holds) then rewrite only their part of it,
/// and still sweep.
#[test]
fn with_20000_allocations_env_reads_only_its_own_and_the_sweep_finds_stale_ones() {
    let t = TestEnv::new();
    let fill = t.root().join("fill");
    let mut allocations: Vec<serde_json::Value> = (0..20_000u16)
        .map(|i| {
            // Below this test's block, or above it: never in its range.
            let port = if 1024 + i < t.ports.start {
                1024 + i
            } else {
                1024 + i + t.ports.len()
            };
            let worktree = fill.join(format!("wt{i:05}"));
            std::fs::create_dir_all(&worktree).unwrap();
            let mut record = t.record(port, "app", "feature", &worktree, true, json!([]));
            record["repository"] = json!(fill.join(".git"));
            record
        })
        .collect();
    // Stale, in this test's range: a worktree of this repository that is
    // gone (no directory, not listed by git), and a holder that is dead.
    let gone = t.root().join("gone");
    allocations.push(t.record(t.ports.port(0), "app", "feature", &gone, true, json!([])));
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let other = t.add_worktree("other");
    allocations.push(t.record(
        t.ports.port(1),
        "app",
        "feature",
        &other,
        false,
        json!([{"pid": dead_pid, "start_time": 1, "command": "gone"}]),
    ));
    t.write_registry(allocations);

    t.write_config("[services.web]\n[services.api]\n");
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    for (name, port) in [("WEB_PORT", t.ports.port(0)), ("API_PORT", t.ports.port(1))] {
        assert!(
            first.stdout.contains(&format!("export {name}='{port}'")),
            "the stale entries' ports were not taken: {first}"
        );
    }
    let registry = t.registry();
    let recorded = registry["allocations"].as_array().unwrap();
    assert_eq!(
        recorded.len(),
        20_002,
        "both stale entries swept, two added"
    );
    // The file wtenv wrote is sorted by repository, then worktree.
    let keys: Vec<(String, String)> = recorded
        .iter()
        .map(|a| {
            (
                a["repository"].as_str().unwrap().to_owned(),
                a["worktree"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(keys.is_sorted(), "the registry's lines are not sorted");

    let mut again = t.wtenv(&["env"]);
    again.env("WTENV_LOG", "wtenv=debug");
    let again = run(&mut again);
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(
        again.stdout, first.stdout,
        "the hot path sees its own allocations"
    );
    let lines = searched_lines(&again);
    assert!(lines <= 40, "{lines} lines read: {again}");
    // `ports` in the repository reads its lines alone too.
    let mut cmd = t.wtenv(&["ports"]);
    cmd.env("WTENV_LOG", "wtenv=debug");
    let ports = run(&mut cmd);
    assert_eq!(ports.code, Some(0), "{ports}");
    let lines = searched_lines(&ports);
    assert!(lines <= 40, "ports: {lines} lines read: {ports}");
    for port in [t.ports.port(0), t.ports.port(1)] {
        assert!(ports.stdout.contains(&port.to_string()), "{ports}");
    }
    assert!(!ports.stdout.contains("wt00000"), "{ports}");
    // Its own-port verification still runs: a foreign listener on its port
    // is refused, registry of 20,000 or not.
    let squatter = PyListener::start(&t.root(), "inet", "127.0.0.1", t.ports.port(0), "");
    let refused = run(&mut t.wtenv(&["env"]));
    drop(squatter);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("held by processes outside it"),
        "{refused}"
    );

    // Allocating and releasing read and rewrite only their part of the
    // sealed file (this worktree's entries and those in its range), and
    // still sweep a holder of another worktree that died since.
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = holder.id().to_string();
    let held = run(&mut t.wtenv_in(&other, &["env", "--hold", &pid]));
    assert_eq!(held.code, Some(0), "{held}");
    // Its watcher would release it: killed first, the sweep is left.
    kill_watcher_of(holder.id());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let in_part = |what: &[&str]| {
        let (out, parts) = part_transactions(&t, what);
        assert_eq!(
            parts.len(),
            1,
            "{what:?} read the file more than once: {out}"
        );
        let field = |name: &str| -> usize {
            parts[0]
                .split(&format!("{name}="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{what:?}: no {name} in {}", parts[0]))
        };
        assert!(field("lines") >= 20_000, "{what:?}: {out}");
        assert!(
            field("part") <= 4,
            "{what:?} read more than its part: {out}"
        );
        out
    };
    let extra = in_part(&["allocate", "--service", "extra"]);
    assert_eq!(
        extra.stdout,
        format!("{}\n", t.ports.port(2)),
        "the dead holder's ports were not swept"
    );
    let registry = t.registry();
    let recorded = registry["allocations"].as_array().unwrap();
    assert_eq!(recorded.len(), 20_003, "{:?}", &recorded[20_000..]);
    assert!(
        recorded.iter().all(|a| a["worktree"] != json!(other)),
        "the dead holder's entries are still there"
    );
    in_part(&["release", "--service", "extra"]);
    let registry = t.registry();
    let recorded = registry["allocations"].as_array().unwrap();
    assert_eq!(recorded.len(), 20_002);
    let keys: Vec<(&str, &str)> = recorded
        .iter()
        .map(|a| {
            (
                a["repository"].as_str().unwrap(),
                a["worktree"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(keys.is_sorted(), "the registry's lines are not sorted");
    // `run`'s hold (once its command has settled) and its release take
    // the part too.
    let (under, parts) = part_transactions(&t, &["run", "--", "sleep", "1"]);
    assert_eq!(parts.len(), 2, "hold and release: {under}");
    assert!(parts.iter().all(|l| l.contains("part=2")), "{under}");
    assert_eq!(
        t.registry()["allocations"].as_array().unwrap().len(),
        20_002
    );
    // Still sealed: `env` finds its own by binary search.
    let mut last = t.wtenv(&["env"]);
    last.env("WTENV_LOG", "wtenv=debug");
    let last = run(&mut last);
    assert_eq!(last.stdout, first.stdout, "{last}");
    assert!(
        last.stderr.contains("own entries found by binary search"),
        "{last}"
    );
}

/// A fleet: sibling worktrees share the range. `run` (and its release) in a
/// worktree `env` reserved has no port to pick, so it reads, sweeps and
/// rewrites this worktree's entries alone, not the siblings' in its range;
/// an allocation still sweeps a stale sibling there and takes its port.
#[test]
fn run_with_its_ports_reserved_takes_its_own_entries_not_the_range() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    // Ports 2-16 of the range: live siblings; port 0: one whose worktree
    // is gone (not a directory, not listed by git).
    let mut allocations = fleet(&t, &t.common_dir());
    let gone = t.root().join("siblings/gone");
    allocations.push(t.record(t.ports.port(0), "app", "feature", &gone, true, json!([])));
    t.write_registry(allocations);

    let env = run(&mut t.wtenv(&["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(
        env.stdout
            .contains(&format!("export WEB_PORT='{}'", t.ports.port(0))),
        "the gone sibling's port was not swept and taken: {env}"
    );
    let count = || t.registry()["allocations"].as_array().unwrap().len();
    assert_eq!(count(), 17, "15 siblings and this worktree's two");

    // A command that ends before it settles: every port was reserved, so
    // nothing is held, read under the lock or written.
    let (under, parts) = part_transactions(&t, &["run", "--", "true"]);
    assert_eq!(parts.len(), 0, "{under}");
    let (under, parts) = part_transactions(&t, &["run", "--", "sleep", "1"]);
    assert_eq!(parts.len(), 2, "hold and release: {under}");
    for line in parts {
        assert!(
            line.contains("lines=17") && line.contains("part=2"),
            "run read more than its own entries: {line}"
        );
    }
    assert_eq!(count(), 17);
    let registry = t.registry();
    let mine: Vec<&serde_json::Value> = registry["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["worktree"] == json!(t.repo))
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(
        mine.iter()
            .all(|a| a["reserved"] == json!(true) && a.get("holders").is_none()),
        "run's holds were not released: {mine:?}"
    );
}

/// How many lines of the registry a command run with debug logs read to
/// find its entries by binary search.
fn searched_lines(out: &Run) -> usize {
    out.stderr
        .lines()
        .find(|l| l.contains("own entries found by binary search"))
        .and_then(|l| l.split("lines=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no binary search: {out}"))
}

/// `wtenv ARGS` in the main worktree, with debug logs: what it printed,
/// and the log line of each transaction it made on part of the registry.
fn part_transactions(t: &TestEnv, args: &[&str]) -> (Run, Vec<String>) {
    let mut cmd = t.wtenv(args);
    cmd.env("WTENV_LOG", "wtenv=debug");
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
    let parts = out
        .stderr
        .lines()
        .filter(|l| l.contains("transaction on the part in scope"))
        .map(str::to_owned)
        .collect();
    (out, parts)
}
