//! Sweeps (allocation rule 4): the entries of dead holders (a pid reused
//! included) and of worktrees gone are swept by the next allocation, and
//! stay swept when it fails; a locked worktree's are kept.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use nix::sys::signal::Signal;

use crate::supervise::{PATIENCE, Wtenv};
use crate::support::{PyListener, Sleeper, TestEnv, kill_watcher_of, run, start_time, wait_for};

fn services_and_worktrees(t: &TestEnv) -> BTreeSet<(String, std::path::PathBuf)> {
    t.allocations()
        .into_iter()
        .map(|(_, s, w)| (s, w))
        .collect()
}

#[test]
fn a_dead_holder_is_swept_by_the_next_allocation() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let mut shell = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = shell.id().to_string();
    let out = run(&mut t.wtenv_in(&other, &["env", "--hold", &pid]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), other.clone())]
    );
    // The hold names the process: pid, start time, command, group.
    let hold = &t.registry()["allocations"][0]["holders"][0];
    assert_eq!(hold["pid"].as_u64(), Some(shell.id() as u64), "{hold}");
    // Its start: the ticks since boot /proc gives, tagged with this boot.
    let token = hold["start_time"].as_u64().unwrap();
    assert_eq!(token & ((1 << 40) - 1), start_time(shell.id()), "{hold}");
    assert_ne!(token >> 40, 0, "{hold}");
    assert_eq!(hold["command"], "sleep 60", "{hold}");
    let group = std::fs::read_to_string(format!("/proc/{}/stat", shell.id())).unwrap();
    let pgid: u64 = group[group.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(hold["pgid"].as_u64(), Some(pgid), "{hold}");
    // Its watcher would release it: killed first, the sweep is left.
    kill_watcher_of(shell.id());
    shell.kill().unwrap();
    shell.wait().unwrap();
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout,
        format!("{}\n", t.ports.start),
        "the dead holder's port is free again"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "x".into(), t.repo.clone())]
    );
}

/// The sweep of an allocating command removes the lock file a killed
/// watcher left for each hold it releases as stale (rather than leave it
/// to the next watcher or `validate --fix`); that of a holder that lives,
/// whose hold it keeps, stays.
#[test]
fn the_sweep_removes_the_lock_files_of_killed_watchers_of_the_holds_it_releases() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let (gone, lives) = (Sleeper::new(), Sleeper::new());
    // Each holds `other`'s port; its watcher is killed once it took its lock.
    let killed_watchers_lock = |holder: &Sleeper| {
        let pid = holder.0.id();
        let out = run(&mut t.wtenv_in(&other, &["env", "--hold", &pid.to_string()]));
        assert_eq!(out.code, Some(0), "{out}");
        let start = wtenv::process::ProcessId::of(pid).unwrap().start_time;
        let lock = t.state_dir().join(format!("watch/{pid}-{start}.lock"));
        assert!(
            wait_for(std::time::Duration::from_secs(30), || lock.exists()),
            "the watcher of {pid} took no lock"
        );
        kill_watcher_of(pid);
        lock
    };
    let (gone_lock, lives_lock) = (killed_watchers_lock(&gone), killed_watchers_lock(&lives));
    drop(gone);
    assert!(gone_lock.exists() && lives_lock.exists(), "the setup");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        !gone_lock.exists(),
        "the swept hold's lock file is left: {out}"
    );
    assert!(lives_lock.exists(), "{out}");
    let registry = t.registry();
    let others = registry["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["worktree"] == other.to_str().unwrap())
        .expect("other's allocation");
    let holders = &others["holders"];
    assert_eq!(holders.as_array().map(Vec::len), Some(1), "{holders}");
    assert_eq!(holders[0]["pid"].as_u64(), Some(lives.0.id().into()));
}

#[test]
fn a_holder_whose_pid_was_reused_is_swept() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    // A live process with the recorded pid, but not the recorded one:
    // start times as wtenv wrote them before they carried the boot.
    let impostor = Command::new("sleep").arg("60").spawn().unwrap();
    let real_start = start_time(impostor.id());
    reused_holders_are_swept(
        &t,
        &other,
        impostor,
        real_start,
        [real_start - 1, real_start + 7],
    );
}

/// The same with the start times wtenv writes now, tagged with the boot:
/// a hold of the same ticks in another boot is someone else's too.
#[test]
fn a_holder_whose_pid_was_reused_is_swept_in_this_boot_or_from_another() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let impostor = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = impostor.id().to_string();
    // wtenv records the live process's token itself.
    let out = run(&mut t.wtenv_in(&other, &["env", "--hold", &pid]));
    assert_eq!(out.code, Some(0), "{out}");
    let reg = t.registry();
    let token = reg["allocations"][0]["holders"][0]["start_time"]
        .as_u64()
        .unwrap();
    assert_ne!(token >> 40, 0, "the token carries the boot: {reg}");
    let earlier = token - 1;
    let other_boot = token ^ (1 << 40);
    reused_holders_are_swept(&t, &other, impostor, token, [earlier, other_boot]);
}

/// Three entries of `other` held by the live `impostor`'s pid: `app`
/// (held only) and `web` (reserved) recorded with the `reused` start
/// times, `api` with its own, `start`. An allocation sweeps `app`, keeps
/// `web`'s reservation without its holder, and keeps `api` held.
fn reused_holders_are_swept(
    t: &TestEnv,
    other: &Path,
    mut impostor: std::process::Child,
    start: u64,
    reused: [u64; 2],
) {
    let pid = impostor.id();
    let hold = |start: u64| json!([{"pid": pid, "start_time": start, "command": "nix develop"}]);
    t.write_registry(vec![
        t.record(
            t.ports.port(0),
            "app",
            "feature",
            other,
            false,
            hold(reused[0]),
        ),
        t.record(
            t.ports.port(1),
            "web",
            "feature",
            other,
            true,
            hold(reused[1]),
        ),
        t.record(t.ports.port(2), "api", "feature", other, false, hold(start)),
    ]);
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("{}\n", t.ports.port(0)), "{out}");
    let reg = t.registry();
    let by_service = |s: &str| {
        reg["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["service"] == s)
            .cloned()
    };
    assert!(
        by_service("app").is_none(),
        "held entry of a reused pid survived"
    );
    let web = by_service("web").expect("a reservation outlives its holder");
    assert!(
        web.get("holders")
            .is_none_or(|h| h.as_array().unwrap().is_empty()),
        "{web}"
    );
    let api = by_service("api").expect("the live holder's entry was swept");
    assert_eq!(api["holders"][0]["pid"], pid);
    impostor.kill().unwrap();
    impostor.wait().unwrap();
}

/// wtenv SIGKILLed, the core's half: a SIGKILLed holder (`wtenv run`) left
/// its server running. The next allocation sweeps the dead hold (for good,
/// even though it then fails), meets the port held on the system, and
/// names the process still holding it.
#[test]
fn a_swept_hold_whose_server_survives_is_a_conflict_naming_the_server() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let start = start_time(pid);
    dead.wait().unwrap();
    let server = PyListener::start(&other, "4", "127.0.0.1", t.ports.start, "");
    t.write_registry(vec![t.record(
        t.ports.start,
        "app",
        "feature",
        &other,
        false,
        json!([{"pid": pid, "start_time": start, "command": "wtenv run -- npm start"}]),
    )]);
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("  port {}: pid {} (", t.ports.start, server.pid()))
            && out.stderr.contains(&format!(" in {}", other.display())),
        "{out}"
    );
    // Fail fast allocates nothing, but the sweep of the dead hold is
    // written; skipping then takes the next port.
    assert!(t.allocations().is_empty(), "the dead hold was not swept");
    let out = run(&mut t.wtenv(&["allocate", "--service", "x", "--skip-occupied"]));
    assert_eq!(out.stdout, format!("{}\n", t.ports.port(1)), "{out}");
    assert_eq!(
        t.allocations(),
        vec![(t.ports.port(1), "x".into(), t.repo.clone())]
    );
}

/// A port the worktree held only (a SIGKILLed `run`, nothing of it left)
/// that a process outside it took since: the sweep releases it, so it is
/// no port of the worktree's, and not a foreign holder of one. `env`
/// fails fast on the conflict, the sweep written; with --skip-occupied it
/// takes the next port.
#[test]
fn a_held_port_the_sweep_releases_is_a_conflict_not_a_foreign_holder() {
    let t = TestEnv::new();
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let start = start_time(pid);
    dead.wait().unwrap();
    let outside = t.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let server = PyListener::start(&outside, "4", "127.0.0.1", t.ports.start, "");
    t.write_registry(vec![t.record(
        t.ports.start,
        "app",
        "feature",
        &t.repo,
        false,
        json!([{"pid": pid, "start_time": start, "command": "wtenv run -- npm start"}]),
    )]);
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("Port conflict detected"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("  port {}: pid {} (", t.ports.start, server.pid())),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "the dead hold was not swept");
    let out = run(&mut t.wtenv(&["env", "--skip-occupied"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.port(1))),
        "{out}"
    );
}

#[test]
fn a_worktree_removed_by_git_is_swept() {
    removed_worktree_is_swept_by_the_next_env(|t, other| {
        t.git(&["worktree", "remove", other.to_str().unwrap()]);
    });
}

#[test]
fn a_worktree_deleted_with_rm_rf_is_swept() {
    removed_worktree_is_swept_by_the_next_env(|t, other| {
        std::fs::remove_dir_all(other).unwrap();
        // git still lists it (prunable) until `git worktree prune`.
        assert!(t.git(&["worktree", "list"]).contains("other"));
    });
}

/// A worktree `other` takes the first port, `remove` makes it go; the next
/// `env` in the main worktree sweeps it and gets that first port.
fn removed_worktree_is_swept_by_the_next_env(remove: impl FnOnce(&TestEnv, &Path)) {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    remove(&t, &other);
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.start)),
        "{out}"
    );
    assert_eq!(
        services_and_worktrees(&t),
        [("app".to_string(), t.repo.clone())].into()
    );
}

/// A worktree `git worktree remove --force` removed while a `wtenv run`
/// still serves from it (its cwd's inode lives on): its entry is kept
/// while that run lives, by the next allocation's sweep and by `validate
/// --fix` (which says so), so its port is not handed out; once the run
/// stops, it is released.
#[test]
fn a_removed_worktree_whose_run_still_serves_keeps_its_port_until_it_ends() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let port = t.ports.start;
    let mut server = Wtenv::start_in(
        &t,
        &other,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "exec python3 -m http.server $PORT --bind 127.0.0.1",
        ],
    );
    let serves = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(wait_for(PATIENCE, serves), "{}", server.stderr_text());
    t.git(&["worktree", "remove", "--force", other.to_str().unwrap()]);
    assert!(!other.exists() && serves());
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("{}\n", t.ports.port(1)), "{out}");
    // `validate` says it, a warning nothing fixes; `--fix` keeps it.
    let said = format!(
        "warning: worktree-gone-held: port {port} (app) of {}: worktree {0} is gone (directory missing, not listed by git), held by live pid {}: wtenv run -- ",
        other.display(),
        server.pid()
    );
    for args in [&["validate"][..], &["validate", "--fix"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(0), "{out}");
        assert!(out.stdout.contains(&said), "{out}");
        assert!(
            out.stdout
                .contains("[kept while its holder lives, released when it ends]"),
            "{out}"
        );
    }
    assert!(
        t.allocations()
            .contains(&(port, "app".into(), other.clone())),
        "kept by validate --fix: {}",
        t.registry()
    );
    server.signal(Signal::SIGINT);
    server.wait();
    assert!(
        !t.allocations().iter().any(|(p, _, _)| *p == port),
        "released when it ended: {}",
        t.registry()
    );
    let out = run(&mut t.wtenv(&["allocate", "--service", "y"]));
    assert_eq!(out.stdout, format!("{port}\n"), "{out}");
}

#[test]
fn a_locked_worktree_on_a_missing_directory_is_kept() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    t.git(&["worktree", "lock", other.to_str().unwrap()]);
    std::fs::remove_dir_all(&other).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.port(1))),
        "{out}"
    );
    assert_eq!(t.allocations().len(), 2);
}

#[test]
fn env_sweeps_a_dead_hold_on_its_own_reservation_and_a_failed_allocation_keeps_the_sweep() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    // A `wtenv run` that was SIGKILLed: its pid is gone, its hold stays.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let hold = json!([{"pid": dead, "start_time": 1, "command": "npm start"}]);
    t.write_registry(vec![
        t.record(
            t.ports.port(0),
            "app",
            "feature",
            &t.repo,
            true,
            hold.clone(),
        ),
        t.record(t.ports.port(1), "app", "feature", &other, false, hold),
    ]);
    // The fast path would print the port without looking at the hold: env
    // must notice its own dead holder and sweep it.
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("PORT='{}'", t.ports.port(0))),
        "{out}"
    );
    // With no port to pick, env read and swept its own entries only: the
    // held-only entry of `other` waits for an allocation in the range
    // (below).
    assert_eq!(
        t.allocations(),
        vec![
            (t.ports.port(1), "app".into(), other.clone()),
            (t.ports.port(0), "app".into(), t.repo.clone())
        ]
    );
    let registry = t.registry();
    let mine = registry["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["worktree"] == json!(t.repo))
        .unwrap();
    assert!(mine.get("holders").is_none(), "{mine}");

    // A stale entry swept by an allocation that then fails fast stays swept.
    let third = t.add_worktree("third");
    let hold = json!([{"pid": dead, "start_time": 1, "command": "npm start"}]);
    t.write_registry(vec![
        t.record(t.ports.port(0), "app", "feature", &t.repo, true, json!([])),
        t.record(t.ports.port(5), "app", "feature", &other, false, hold),
    ]);
    let _busy = PyListener::start(&t.root(), "4", "0.0.0.0", t.ports.port(1), "");
    let out = run(&mut t.wtenv_in(&third, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("Port conflict detected"), "{out}");
    assert_eq!(
        t.allocations(),
        vec![(t.ports.port(0), "app".into(), t.repo.clone())]
    );
}
