//! The hold `run` writes on reserved ports: held while the command runs,
//! reserved after; a port released by `validate --fix` while `run`
//! settles is recorded again and held, or given up (and told) when
//! another worktree took it meanwhile.

use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::Signal;
use serde_json::Value;
use wtenv::probe::{self, PortState};

use super::{
    PATIENCE, Wtenv, app_port, assert_all_clean, assert_no_holds, recorded_pgid, reserve_app,
};
use crate::support::{TestEnv, Tmpfs, wait_for};

/// `wtenv run -- sh -c SCRIPT`, stdin closed; it must succeed.
fn run_sh(t: &TestEnv, script: &str) -> crate::support::Run {
    let out = crate::support::run(
        t.wtenv(&["run", "--", "sh", "-c", script])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(0), "{out}");
    out
}

/// A shell loop that waits (10 s at most) until the registry records a
/// hold: `run` writes it once its command has settled.
fn until_held(t: &TestEnv) -> String {
    format!(
        "for i in $(seq 200); do grep -q holders {} && break; sleep 0.05; done",
        t.registry_path().display()
    )
}

#[test]
fn a_reserved_port_is_held_while_run_runs_and_stays_reserved_after() {
    let t = TestEnv::new();
    let port = reserve_app(&t);
    // A port allocated by hand for a service the config does not declare:
    // run neither exports nor holds it.
    let out = crate::support::run(&mut t.wtenv(&["allocate", "--service", "extra"]));
    assert_eq!(out.code, Some(0), "{out}");
    let marker = t.root().join("during.json");
    let registry = t.registry_path();
    // The hold is written once the command has settled (with its group,
    // in one write): wait for it, then take the copy.
    let script = format!(
        "{}; cp {r} {m}; test \"$PORT\" = {port}",
        until_held(&t),
        r = registry.display(),
        m = marker.display()
    );
    run_sh(&t, &script);
    let during: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    let all = during["allocations"].as_array().unwrap();
    let a = all.iter().find(|a| a["service"] == "app").unwrap();
    let extra = all.iter().find(|a| a["service"] == "extra").unwrap();
    assert!(extra.get("holders").is_none(), "{during}");
    assert_eq!(a["reserved"], true, "{during}");
    assert_eq!(
        a["holders"][0]["command"],
        format!("wtenv run -- sh -c {}", wtenv::shell::quote_posix(&script)),
        "{during}"
    );
    assert!(a["holders"][0]["pgid"].is_u64(), "{during}");
    let after = t.registry();
    let app = after["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service"] == "app")
        .unwrap();
    assert_eq!(app["port"], port);
    assert_eq!(app["reserved"], true, "the reservation stays: {after}");
    assert_no_holds(&t);
}

/// `run` on reserved ports writes its hold once its command has settled
/// (50 ms). A `validate --verify-ports --fix` in that moment sees the port
/// idle and unheld, and releases it. The command stops its own `wtenv
/// run` (SIGSTOP to its parent) until `validate` is done and `then` has run,
/// so that moment lasts as long as the test needs; `run` then writes its
/// hold. Returns what `ports --json` said after `then`, the registry once
/// the hold was written, and run's output; `None` when the hold was
/// written before the stop (a loaded machine started `sh` late): try again.
/// `settled` waits, in the command, for run's write once it goes on.
fn release_while_run_settles(
    t: &TestEnv,
    then: &str,
    settled: &str,
) -> Option<(Value, Value, crate::support::Run)> {
    let w = env!("CARGO_BIN_EXE_wtenv");
    let (after, during) = (t.root().join("after.json"), t.root().join("during.json"));
    let registry = t.registry_path();
    let script = format!(
        "kill -STOP $PPID; {w} validate --verify-ports --fix >/dev/null 2>&1; {then} \
         {w} ports --json >{a}; kill -CONT $PPID; {settled}; cp {r} {d}",
        a = after.display(),
        r = registry.display(),
        d = during.display()
    );
    let out = run_sh(t, &script);
    let read = |p: &Path| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let after = read(&after);
    if after["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["worktree"] == t.repo.to_str().unwrap())
    {
        return None;
    }
    Some((after, read(&during), out))
}

/// Each allocation of a registry or `ports --json` document: its port, its
/// worktree, and whether anything holds it.
fn entries(v: &Value) -> Vec<(u64, String, bool)> {
    v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["port"].as_u64().unwrap(),
                a["worktree"].as_str().unwrap().to_owned(),
                a["holders"].as_array().is_some_and(|h| !h.is_empty()),
            )
        })
        .collect()
}

/// The released port is recorded again, held by the `run` that uses it,
/// and stays reserved after: the command was given that port.
#[test]
fn a_port_released_while_run_settles_is_recorded_again_and_held() {
    let t = TestEnv::new();
    let port = reserve_app(&t);
    let (after, during, _) = (0..5)
        .find_map(|_| release_while_run_settles(&t, "", &until_held(&t)))
        .expect("the hold was written before validate ran, five times");
    assert_eq!(
        after["allocations"],
        serde_json::json!([]),
        "validate released it: {after}"
    );
    let a = &during["allocations"][0];
    assert_eq!(
        (a["port"].as_u64(), a["service"].as_str()),
        (Some(port.into()), Some("app")),
        "{during}"
    );
    assert_eq!(a["reserved"], true, "{during}");
    assert!(
        a["holders"][0]["pgid"].is_u64(),
        "held, with its group: {during}"
    );
    let now = t.registry();
    assert_eq!(
        now["allocations"][0]["port"], port,
        "still reserved after: {now}"
    );
    assert_no_holds(&t);
}

/// If another worktree got the port meanwhile, the registry keeps it
/// that worktree's (never twice), and `run` says its command still uses it.
#[test]
fn a_port_released_while_run_settles_and_taken_by_another_worktree_is_told() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let port = reserve_app(&t);
    let w = env!("CARGO_BIN_EXE_wtenv");
    let take = format!("(cd {} && {w} env >/dev/null 2>&1);", other.display());
    let (after, during, out) = (0..5)
        // Nothing of it is held: run's attempt comes at once, then the
        // command lives on a little so that it is made.
        .find_map(|_| release_while_run_settles(&t, &take, "sleep 0.5"))
        .expect("the hold was written before validate ran, five times");
    let theirs = vec![(u64::from(port), other.to_str().unwrap().to_owned(), false)];
    assert_eq!(
        entries(&after),
        theirs,
        "the other worktree took it: {after}"
    );
    assert_eq!(entries(&during), theirs, "recorded once, theirs: {during}");
    assert!(
        out.stderr.contains(&format!(
            "port {port} (app) was released while this command started"
        )) && out.stderr.contains("the command still uses it"),
        "{out}"
    );
}

/// Two ports released, one of them taken meanwhile: the other is recorded
/// again and held, and the warning names only the one taken.
#[test]
fn of_two_ports_released_while_run_settles_only_the_one_taken_is_given_up() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    t.write_config("[services.app]\n[services.api]\n");
    let port = reserve_app(&t);
    let api = t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service"] == "api")
        .and_then(|a| a["port"].as_u64())
        .expect("api reserved");
    let w = env!("CARGO_BIN_EXE_wtenv");
    // The lowest free port of the range: app's, released by validate.
    let take = format!(
        "(cd {} && {w} allocate --service app >/dev/null 2>&1);",
        other.display()
    );
    let (after, during, out) = (0..5)
        .find_map(|_| release_while_run_settles(&t, &take, &until_held(&t)))
        .expect("the hold was written before validate ran, five times");
    let (theirs, ours) = (other.to_str().unwrap(), t.repo.to_str().unwrap());
    assert_eq!(
        entries(&after),
        vec![(u64::from(port), theirs.to_owned(), false)],
        "validate released both, the other worktree took app's: {after}"
    );
    let mut during = entries(&during);
    during.sort();
    assert_eq!(
        during,
        vec![
            (u64::from(port), theirs.to_owned(), false),
            (api, ours.to_owned(), true)
        ],
        "api's port recorded again and held; app's stays theirs"
    );
    assert!(
        out.stderr.contains(&format!(
            "port {port} (app) was released while this command started"
        )) && !out.stderr.contains(&format!("{api} (api)")),
        "{out}"
    );
}

/// What `run` says when the registry's disk is full as it records its
/// hold or its child's group: a `warning:` line in the Messages format,
/// with what that costs and what to do (it was a raw ` WARN could not
/// record ...` line of the diagnostics, saying neither).
const FULL_DISK_HINT: &str = "hint: its disk is full (or your quota used up): nothing was changed; \
     free some space, then run the command again";

/// The hold of a `run` on reserved ports, written once its command has
/// settled, on a disk that is full by then: the command goes on, told
/// that its ports are not recorded as held by it.
#[test]
fn a_hold_that_cannot_be_recorded_is_a_warning_saying_what_it_costs() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("disk"), "16k");
    let state = disk.path().join("state");
    let wtenv = |args: &[&str]| {
        crate::support::run(
            t.wtenv(args)
                .env("WTENV_STATE_DIR", &state)
                .stdin(Stdio::null()),
        )
    };
    assert_eq!(wtenv(&["env"]).code, Some(0));
    disk.fill();
    let out = wtenv(&["run", "--", "sleep", "1"]);
    assert_eq!(out.code, Some(0), "{out}");
    let (warning, hint) = out.stderr.split_once('\n').unwrap();
    assert!(
        warning.starts_with("warning: could not record the hold of this wtenv: could not write ")
            && warning.ends_with(
                ": No space left on device (os error 28); its ports stay reserved for the \
                 worktree but are not recorded as held by this run, so `wtenv remove` and \
                 `wtenv validate` do not see it"
            ),
        "{out}"
    );
    let said =
        format!("{FULL_DISK_HINT} (stop this one first: it records its hold only as it starts)\n");
    assert_eq!(hint, said, "{out}");
}

/// The group of a `run` that allocated (and held) its port before its
/// command started, on a disk the command fills before `run` records the
/// group: it stops its `run` (SIGSTOP to its parent) first, so the
/// moment lasts; when the group was recorded before the stop (a loaded
/// machine started `sh` late), it says so and the test tries again. (The
/// registry records the script too, its quotes escaped: `"pgid":` is
/// found only as the group's key.)
#[test]
fn a_group_that_cannot_be_recorded_is_a_warning_saying_what_it_costs() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("disk"), "16k");
    let state = disk.path().join("state");
    let registry = state.join("registry.json");
    let script = format!(
        "kill -STOP $PPID; grep -qF '\"pgid\":' {r} && echo late; \
         head -c 1048576 /dev/zero >{fill} 2>/dev/null; kill -CONT $PPID; sleep 1",
        r = registry.display(),
        fill = disk.path().join("fill").display(),
    );
    for _ in 0..5 {
        let _ = std::fs::remove_file(disk.path().join("fill"));
        let out = crate::support::run(
            t.wtenv(&["run", "--", "sh", "-c", &script])
                .env("WTENV_STATE_DIR", &state)
                .stdin(Stdio::null()),
        );
        if out.stdout.contains("late") {
            continue;
        }
        assert_eq!(out.code, Some(0), "{out}");
        let mut lines = out.stderr.lines();
        let warning = lines.next().unwrap();
        assert!(
            warning.starts_with(
                "warning: could not record the child's process group: could not write "
            ) && warning.ends_with(
                ": No space left on device (os error 28); its ports are recorded as held by \
                     this wtenv but not by the group, so if this wtenv is killed, `wtenv validate \
                     --fix` cannot prove the processes it leaves are its and will not stop them"
            ),
            "{out}"
        );
        let said = format!(
            "{FULL_DISK_HINT} (stop this one first: it records its group only as it starts)"
        );
        assert_eq!(lines.next(), Some(said.as_str()), "{out}");
        return;
    }
    panic!("the group was recorded before the command could stop its run, five times");
}

/// A `run` started before `git worktree move` releases its holds when it
/// stops, though an `env` in the moved worktree made its entries follow
/// it there: they are its by its pid and start time, wherever they are
/// recorded (it released by the path it started in, and left them `held
/// by pid N: gone`, `validate` saying holder-dead). So does `up`.
#[test]
fn a_run_releases_its_holds_where_its_moved_worktree_took_them() {
    let serve = "exec python3 -m http.server $PORT --bind 127.0.0.1";
    held_across_a_move("", &["run", "--", "sh", "-c", serve]);
    let config = format!("[services.app]\nenv = [\"PORT\"]\nrun = \"{serve}\"\n");
    held_across_a_move(&config, &["up"]);
}

/// `args` (a `run` or `up` serving the one service `app`, as `config`
/// declares it) in a linked worktree, moved while it serves, its entries
/// made to follow by `env` there; then SIGTERM: nothing is left.
fn held_across_a_move(config: &str, args: &[&str]) {
    let t = TestEnv::new();
    t.write_config(config);
    t.git(&["commit", "-q", "--allow-empty", "-am", "the service"]);
    let first = t.add_worktree("first");
    let port = app_port(&t);
    let mut w = Wtenv::start_in(&t, &first, args);
    assert!(wait_for(PATIENCE, || t.registry_path().exists()));
    let pgid = recorded_pgid(&t, port);
    assert!(
        wait_for(PATIENCE, || probe::probe(port).unwrap()
            == PortState::Occupied),
        "the server never listened\nstderr: {}",
        w.stderr_text()
    );
    let moved = t.root().join("moved");
    t.git(&[
        "worktree",
        "move",
        first.to_str().unwrap(),
        moved.to_str().unwrap(),
    ]);
    let out = crate::support::run(&mut t.wtenv_in(&moved, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let held = (u64::from(port), moved.to_str().unwrap().to_owned(), true);
    assert_eq!(
        entries(&t.registry()),
        vec![held],
        "the entry followed, held"
    );

    w.signal(Signal::SIGTERM);
    w.wait();
    assert_all_clean(&t, pgid, pgid, port);
    let check = crate::support::run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
    assert!(!check.stdout.contains("holder-dead"), "{check}");
}
