//! `wtenv validate` through the real binary: for every finding kind of the
//! spec's table, detection, what `--fix` does, and the exit code (0 valid,
//! 1 fixable errors remain, 2 critical).

use std::process::Command;

use serde_json::json;

use crate::support::{PyListener, Run, TestEnv, kill_watcher_of, run, start_time};

fn validate(t: &TestEnv, args: &[&str]) -> Run {
    let mut full = vec!["validate"];
    full.extend_from_slice(args);
    run(&mut t.wtenv(&full))
}

/// A finding as (kind, severity, fixable, fixed).
type Summary = (String, String, bool, bool);

/// `validate --json`'s exit code and findings.
fn findings(t: &TestEnv, args: &[&str]) -> (Option<i32>, Vec<Summary>) {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = validate(t, &full);
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["version"], 1, "{out}");
    let list = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
                f["fixable"].as_bool().unwrap(),
                f["fixed"].as_bool().unwrap(),
            )
        })
        .collect();
    (out.code, list)
}

fn one(
    kind: &str,
    severity: &str,
    fixable: bool,
    fixed: bool,
) -> Vec<(String, String, bool, bool)> {
    vec![(kind.into(), severity.into(), fixable, fixed)]
}

/// An error-level finding: detected (exit 1, text and JSON), fixed by
/// `--fix` (printed, exit 0, allocation gone), then valid (exit 0).
fn assert_fixable_error(t: &TestEnv, kind: &str, args: &[&str]) {
    let out = validate(t, args);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains(&format!("error: {kind}: "))
            && out.stdout.contains("[fixable: run with --fix]"),
        "{out}"
    );
    assert_eq!(
        findings(t, args),
        (Some(1), one(kind, "error", true, false))
    );
    let before = t.allocations().len();
    let mut fix = args.to_vec();
    fix.push("--fix");
    let out = validate(t, &fix);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("error: {kind}: ")) && out.stdout.contains("[fixed]"),
        "{out}"
    );
    assert!(t.allocations().len() < before, "--fix released nothing");
    assert_eq!(findings(t, args), (Some(0), vec![]));
}

#[test]
fn an_empty_or_missing_registry_is_valid() {
    let t = TestEnv::new();
    let out = validate(&t, &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.starts_with("valid: 0 allocation(s) checked"),
        "{out}"
    );
}

#[test]
fn worktree_gone_is_an_error_fixed_by_release() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    std::fs::remove_dir_all(&other).unwrap();
    assert_fixable_error(&t, "worktree-gone", &[]);
    assert_eq!(
        t.allocations(),
        vec![(t.ports.port(1), "app".into(), t.repo.clone())]
    );
}

/// A linked worktree deleted and a fresh clone made at its path: the
/// path's own `.git` now leads to another repository, which proves the
/// entry recorded there by the first one gone (no git asked). A path
/// with no `.git` of its own (an empty directory there) proves nothing:
/// its entry stays, unreported.
#[test]
fn a_worktree_whose_path_is_now_another_repository_is_gone() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    t.reclone(&other);
    let out = validate(&t, &[]);
    assert!(
        out.stdout.contains(&format!(
            "worktree {} is gone: its directory is now a worktree of another repository ({})",
            other.display(),
            other.join(".git").display()
        )),
        "{out}"
    );
    assert_fixable_error(&t, "worktree-gone", &[]);
    assert_eq!(
        t.allocations(),
        vec![(t.ports.port(1), "app".into(), t.repo.clone())]
    );

    let empty = t.add_worktree("empty");
    assert_eq!(run(&mut t.wtenv_in(&empty, &["env"])).code, Some(0));
    std::fs::remove_dir_all(&empty).unwrap();
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(findings(&t, &[]), (Some(0), vec![]));
    assert_eq!(t.allocations().len(), 2);
}

/// A live process standing for a `nix develop` shell, whose `env --hold`
/// has reserved and held the worktree's port.
fn held_by_a_shell(t: &TestEnv) -> std::process::Child {
    let shell = Command::new("sleep").arg("60").spawn().unwrap();
    let out = run(&mut t.wtenv(&["env", "--hold", &shell.id().to_string()]));
    assert_eq!(out.code, Some(0), "{out}");
    shell
}

#[test]
fn holder_dead_is_an_error_fixed_by_releasing_the_hold() {
    let t = TestEnv::new();
    let mut shell = held_by_a_shell(&t);
    assert_eq!(
        findings(&t, &[]),
        (Some(0), vec![]),
        "a live holder is fine"
    );
    // Its watcher would release it: killed first, as a watcher may be.
    kill_watcher_of(shell.id());
    shell.kill().unwrap();
    shell.wait().unwrap();
    assert_fixable_error(&t, "holder-dead", &[]);
    assert!(t.allocations().is_empty());
}

/// One allocation of the main worktree held by `hold`: `validate` finds
/// its holder dead (exit 1), `--fix` fixes it (exit 0).
fn fixes_a_dead_holder(t: &TestEnv, hold: serde_json::Value, reserved: bool) {
    t.write_registry(vec![t.record(
        t.ports.start,
        "app",
        "feature",
        &t.repo,
        reserved,
        hold,
    )]);
    assert_eq!(
        findings(t, &[]),
        (Some(1), one("holder-dead", "error", true, false))
    );
    let out = validate(t, &["--fix"]);
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn a_reused_holder_pid_is_holder_dead() {
    let t = TestEnv::new();
    let mut impostor = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = impostor.id();
    let hold = json!([{"pid": pid, "start_time": start_time(pid) + 1, "command": "bash"}]);
    fixes_a_dead_holder(&t, hold, true);
    // A reservation outlives its dead holder: only the hold goes.
    let reg = t.registry();
    assert_eq!(reg["allocations"].as_array().unwrap().len(), 1);
    assert!(reg["allocations"][0].get("holders").is_none(), "{reg}");
    impostor.kill().unwrap();
    impostor.wait().unwrap();
}

/// After a reboot, pids and start ticks repeat: a process of this boot
/// may have the pid, group and ticks a hold recorded in the last one. The
/// hold is still dead, its group has no orphans, and `--fix` signals
/// nothing of this boot.
#[test]
fn a_hold_of_another_boot_is_dead_and_fix_leaves_this_boots_process_alone() {
    use std::os::unix::process::CommandExt;
    let t = TestEnv::new();
    let mut namesake = Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = namesake.id();
    // wtenv's token: ticks in the low 40 bits, the boot's tag above.
    let now = wtenv::process::ProcessId::of(pid).unwrap().start_time;
    let tag = now >> 40;
    let earlier = (if tag == 7 { 8 } else { 7 }) << 40 | start_time(pid);
    let hold = json!([{"pid": pid, "start_time": earlier, "command": "wtenv run -- npm start",
                       "pgid": pid, "leader_start": earlier}]);
    fixes_a_dead_holder(&t, hold, false);
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
    assert_eq!(namesake.try_wait().unwrap(), None, "the namesake lives");
    namesake.kill().unwrap();
    namesake.wait().unwrap();
}

#[test]
fn a_port_outside_its_purposes_range_is_an_error_fixed_by_release() {
    let t = TestEnv::new();
    let outside = t.ports.end() + 1;
    t.write_registry(vec![t.record(
        outside,
        "app",
        "feature",
        &t.repo,
        true,
        json!([]),
    )]);
    assert_fixable_error(&t, "out-of-range", &[]);
    assert!(t.allocations().is_empty());
}

#[test]
fn an_unknown_purpose_is_an_error_fixed_by_release() {
    let t = TestEnv::new();
    t.write_registry(vec![t.record(
        t.ports.start,
        "app",
        "nightly",
        &t.repo,
        true,
        json!([]),
    )]);
    let out = validate(&t, &[]);
    assert!(
        out.stdout.contains("purpose \"nightly\" is not configured"),
        "{out}"
    );
    assert_fixable_error(&t, "unknown-purpose", &[]);
}

#[test]
fn the_same_port_twice_is_critical_and_not_fixed() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let p = t.ports.start;
    t.write_registry(vec![
        t.record(p, "app", "feature", &t.repo, true, json!([])),
        t.record(p, "app", "feature", &other, true, json!([])),
    ]);
    assert_eq!(
        findings(&t, &[]),
        (Some(2), one("duplicate-port", "critical", false, false))
    );
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = validate(&t, &["--fix"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stdout.contains("[needs manual intervention]"), "{out}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
}

#[test]
fn verify_ports_reports_an_idle_allocation_as_a_stale_warning_fixed_by_release() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(
        findings(&t, &[]),
        (Some(0), vec![]),
        "without --verify-ports nothing is probed"
    );
    assert_eq!(
        findings(&t, &["--verify-ports"]),
        (Some(0), one("stale", "warning", true, false))
    );
    let out = validate(&t, &["--verify-ports", "--fix"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("warning: stale: ") && out.stdout.contains("[fixed]"),
        "{out}"
    );
    assert!(t.allocations().is_empty());
}

/// Nothing listens on a port a live process holds (a `nix develop` shell
/// before its server starts): its owner has the number, so it is not
/// stale, and `--fix` leaves it. Once the holder is gone, the hold is
/// dead, and its fix releases the port, which it held alone (`env
/// --hold` allocated it, unreserved): one finding, not also `stale`.
#[test]
fn verify_ports_leaves_an_idle_port_that_a_live_process_holds() {
    let t = TestEnv::new();
    let mut shell = held_by_a_shell(&t);
    assert_eq!(findings(&t, &["--verify-ports"]), (Some(0), vec![]));
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = validate(&t, &["--verify-ports", "--fix"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before, "{out}");
    let out = validate(&t, &["--verify-ports", "--verbose"]);
    assert!(
        out.stdout.contains(&format!("held by pid {}", shell.id())) && out.stdout.contains("idle"),
        "{out}"
    );
    kill_watcher_of(shell.id());
    shell.kill().unwrap();
    shell.wait().unwrap();
    assert_eq!(
        findings(&t, &["--verify-ports"]),
        (Some(1), one("holder-dead", "error", true, false))
    );
    let out = validate(&t, &["--verify-ports", "--fix"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

#[test]
fn verify_ports_accepts_a_listener_of_its_own_worktree() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let _server = PyListener::start(&t.repo, "6", "::", t.ports.start, "");
    assert_eq!(findings(&t, &["--verify-ports"]), (Some(0), vec![]));
}

#[test]
fn verify_ports_reports_a_foreign_holder_as_critical_and_not_fixed() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let server = PyListener::start(&t.root().join("home"), "4", "127.0.0.1", t.ports.start, "");
    let out = validate(&t, &["--verify-ports"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stdout.contains(&format!("pid {}", server.pid())),
        "{out}"
    );
    assert_eq!(
        findings(&t, &["--verify-ports", "--fix"]),
        (Some(2), one("foreign-holder", "critical", false, false))
    );
    assert_eq!(
        t.allocations().len(),
        1,
        "--fix released a foreign-held port"
    );
}

#[test]
fn an_unreadable_registry_is_critical() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::write(t.registry_path(), b"{\"version\": 1, \"allocations\": [").unwrap();
    let (code, list) = findings(&t, &[]);
    assert_eq!(
        (code, list),
        (Some(2), one("unreadable", "critical", false, false))
    );
    let out = validate(&t, &["--fix"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("hint: "), "{out}");
}

#[test]
fn verbose_lists_every_allocation_with_its_state() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(
        run(&mut t.wtenv_in(&other, &["allocate", "--service", "db"])).code,
        Some(0)
    );
    let _server = PyListener::start(&t.repo, "4", "127.0.0.1", t.ports.start, "");
    let out = validate(&t, &["--verbose", "--verify-ports"]);
    assert_eq!(out.code, Some(0), "{out}");
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert!(
        rows[0].starts_with("PORT") && rows[0].contains("STATE"),
        "{out}"
    );
    // One row per allocation, in the registry's order (by worktree).
    let row = |port: u16| {
        *rows[1..3]
            .iter()
            .find(|r| r.starts_with(&port.to_string()))
            .unwrap_or_else(|| panic!("no row for {port}: {out}"))
    };
    assert!(row(t.ports.start).contains("listening"), "{out}");
    assert!(row(t.ports.port(1)).contains("stale"), "{out}");
    assert!(
        row(t.ports.port(1)).ends_with(other.to_str().unwrap()),
        "{out}"
    );
    let out = validate(&t, &["--verbose", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["allocations"].as_array().unwrap().len(), 2, "{out}");
}

/// `--config` replaces the config of this repository's worktrees only:
/// another repository's allocations are checked against their own files,
/// or `--fix` would release them as "out of range".
#[test]
fn config_flag_does_not_judge_other_repositories() {
    let t = TestEnv::new();
    let other = TestEnv::new();
    // The other repository's allocation, in the other's range, in our registry.
    let out = run(&mut t.wtenv_in(&other.repo, &["allocate", "--service", "db"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let config = t.repo.join("wtenv.toml");
    let out = run(&mut t.wtenv(&["--config", config.to_str().unwrap(), "validate", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(t.allocations().len(), 2, "{out}");
}

/// `--verify-ports` reports each port once: one whose finding's fix
/// releases it (out of range, a service the config no longer declares, a
/// held-only port whose holder is dead) is not also a `stale` warning,
/// which it was (two findings, two fixes, for one port). A port with no
/// other finding is still stale.
#[test]
fn verify_ports_reports_a_port_its_fix_releases_once() {
    let t = TestEnv::new();
    let (other, third) = (t.add_worktree("other"), t.add_worktree("third"));
    let dead = json!([{"pid": std::process::id(), "start_time": 1, "command": "gone"}]);
    let (p, outside) = (t.ports.start, t.ports.end() + 1);
    t.write_registry(vec![
        t.record(outside, "app", "feature", &t.repo, true, json!([])),
        t.record(p, "old", "feature", &t.repo, true, json!([])),
        t.record(p + 1, "app", "feature", &other, false, dead),
        t.record(p + 2, "app", "feature", &third, true, json!([])),
    ]);
    let out = validate(&t, &["--verify-ports"]);
    let (repo, other, third) = (t.repo.display(), other.display(), third.display());
    let pid = std::process::id();
    let range = t.ports.range();
    assert_eq!(
        out.stdout,
        format!(
            "error: holder-dead: port {p1} (app) of {other}: holder pid {pid} (gone) is gone [fixable: run with --fix]\n\
             error: out-of-range: port {outside} (app) of {repo}: port {outside} is outside the feature range {range} [fixable: run with --fix]\n\
             error: service-removed: port {p} (old) of {repo}: service old is not declared in the worktree's config (stale) [fixable: run with --fix]\n\
             warning: stale: port {p2} (app) of {third}: nothing is listening on it (stale) [fixable: run with --fix]\n\
             invalid: 4 allocation(s) checked, 4 left; 0 critical, 3 error(s), 1 warning(s) remaining; 0 fixed\n",
            p1 = p + 1,
            p2 = p + 2,
        ),
        "{out}"
    );
    assert_eq!(out.code, Some(1), "{out}");
}
