//! The registry and the allocation rules through the real binary: sticky
//! and lowest-free, fail-fast with the conflict message, own vs foreign
//! holders (allocation rule 5), sweeps (rule 4), concurrency and crashes
//! (rule 7, atomic writes), and registries that must not be touched
//! (corrupt, empty, newer, a symlink, unsafe permissions).

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    HttpServer, PortBlock, PyListener, Run, TestEnv, run, snapshot, start_time, wait_for,
};

#[test]
fn env_allocates_lowest_port_and_is_sticky() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    assert!(
        first
            .stdout
            .contains(&format!("export PORT='{}'\n", t.ports.start)),
        "{first}"
    );
    let again = run(&mut t.wtenv(&["env"]));
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(t.allocations().len(), 1);
}

#[test]
fn allocate_prints_the_port_alone_and_release_gives_it_back() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["allocate", "--service", "db"]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), &*format!("{}\n", t.ports.start)),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["release", "--service", "db"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().is_empty());
}

#[test]
fn release_by_path_frees_a_deleted_worktrees_ports_and_leaves_others() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    std::fs::remove_dir_all(&other).unwrap();
    let out = run(&mut t.wtenv(&["release", "--worktree", other.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("released port {} (app)", t.ports.port(1))),
        "{out}"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), t.repo.clone())]
    );
    let out = run(&mut t.wtenv(&["release", "--service", "nope"]));
    assert_eq!(out.code, Some(1), "{out}");
}

#[test]
fn allocate_with_a_purpose_uses_that_range() {
    let t = TestEnv::with_ports(PortBlock::take_many(2));
    let (a, b) = (t.ports.start, t.ports.start + 20);
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!(
            "[purposes]\nfeature = \"{a}-{}\"\nbugfix = \"{b}-{}\"\n",
            b - 1,
            t.ports.end()
        ),
    )
    .unwrap();
    let out = run(&mut t.wtenv(&["allocate", "--service", "x", "--purpose", "bugfix"]));
    assert_eq!(
        (out.code, out.stdout.clone()),
        (Some(0), format!("{b}\n")),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["allocate", "--service", "y"]));
    assert_eq!(out.stdout, format!("{a}\n"), "{out}");
    let out = run(&mut t.wtenv(&["allocate", "--service", "z", "--purpose", "nightly"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("unknown purpose \"nightly\""), "{out}");
    assert_eq!(
        run(&mut t.wtenv(&["validate"])).code,
        Some(0),
        "purposes recorded right"
    );
}

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

// ---- fail fast (allocation rule 3) -------------------------------------------------

/// Port 0 of the block is another worktree's; 1, 2 and 3 are held by
/// listeners the registry does not know. The command fails with the conflict
/// three lines, then exactly one holder line per port, and writes nothing.
#[test]
fn conflict_message_is_the_seeds_with_one_holder_line_per_port_and_allocates_nothing() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let out = run(&mut t.wtenv_in(&other, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let (p1, p2, p3) = (t.ports.port(1), t.ports.port(2), t.ports.port(3));
    let elsewhere = t.root().join("home");
    let listeners = [
        PyListener::start(&elsewhere, "4", "127.0.0.1", p1, ""),
        PyListener::start(&elsewhere, "6", "::", p2, ""),
        PyListener::start(&elsewhere, "6", "::1", p3, ""),
    ];
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!(
                "Port conflict detected in feature range {}.",
                t.ports.range()
            )
            .as_str(),
            format!("Ports free in registry but occupied on system: {p1}, {p2}, {p3}.").as_str(),
            "Run 'wtenv validate --verify-ports' to detect and clean stale allocations.",
        ],
        "{out}"
    );
    // The listeners' command lines hold newlines (python3 -c SCRIPT): each
    // holder must still be one line.
    assert_eq!(lines.len(), 7, "not one line per conflicting port: {out}");
    assert_eq!(
        lines[6],
        "hint: to take the next free port instead, pass --skip-occupied or set [allocation] skip_occupied = true in wtenv.toml",
        "{out}"
    );
    for ((line, port), l) in lines[3..6].iter().zip([p1, p2, p3]).zip(&listeners) {
        let prefix = format!("  port {port}: pid {} (", l.pid());
        let suffix = format!(") in {}", elsewhere.display());
        assert!(
            line.starts_with(&prefix) && line.ends_with(&suffix),
            "{line:?} in {out}"
        );
        assert!(line.contains("python3"), "{line:?}");
    }
    assert_eq!(
        std::fs::read(t.registry_path()).unwrap(),
        before,
        "the failed env wrote to the registry"
    );
}

#[test]
fn skip_occupied_flag_takes_the_next_free_port() {
    let t = TestEnv::new();
    let _busy = PyListener::start(&t.root(), "4", "0.0.0.0", t.ports.start, "");
    let out = run(&mut t.wtenv(&["allocate", "--service", "x", "--skip-occupied"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("{}\n", t.ports.port(1)));
    let out = run(&mut t.wtenv(&["env", "--skip-occupied"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.port(2))),
        "{out}"
    );
}

/// The conflict's hint says to pass --skip-occupied: every command that
/// allocates takes it, and following the hint takes the next free port.
#[test]
fn every_allocating_command_takes_the_skip_occupied_its_conflict_hint_names() {
    let t = TestEnv::new();
    t.write_config("[services.app]\nrun = \"echo $APP_PORT\"\n");
    t.git(&["commit", "-qam", "a service"]);
    let _busy = HttpServer::start(&t.root(), t.ports.port(0));
    let dir = t.root().join("units");
    let dir = dir.to_str().unwrap();
    // What the next free port is after each: `run` and `up` give back at
    // exit the port they allocated for themselves, so the next takes it
    // again.
    let cases: [(&[&str], &[&str], u16); 5] = [
        (
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "a",
                "--ports",
            ],
            &[],
            1,
        ),
        (&["enter", "b"], &[], 2),
        (&["run"], &["--", "sh", "-c", "echo \"$APP_PORT\""], 3),
        (&["up"], &[], 3),
        (&["export", "systemd", dir], &[], 3),
    ];
    for (command, rest, next) in cases {
        let refused = run(&mut t.wtenv(&[command, rest].concat()));
        assert_eq!(refused.code, Some(1), "{refused}");
        let hint = refused.stderr.lines().last().unwrap_or_default();
        assert!(
            hint.starts_with("hint: to take the next free port instead, pass --skip-occupied "),
            "{refused}"
        );
        let out = run(&mut t.wtenv(&[command, &["--skip-occupied"], rest].concat()));
        assert_eq!(out.code, Some(0), "{command:?} --skip-occupied: {out}");
        let port = t.ports.port(next);
        if command[0] == "run" {
            assert_eq!(out.stdout, format!("{port}\n"), "{out}");
        } else if command[0] == "up" {
            assert!(out.stdout.contains(&format!("app | {port}\n")), "{out}");
        } else {
            assert!(
                t.allocations().iter().any(|(p, _, _)| *p == port),
                "{command:?} --skip-occupied did not take {port}: {out}"
            );
        }
    }
}

#[test]
fn skip_occupied_config_key_takes_the_next_free_port() {
    let t = TestEnv::new();
    t.write_config("[allocation]\nskip_occupied = true\n");
    let _busy = PyListener::start(&t.root(), "6", "::", t.ports.start, "");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.port(1))),
        "{out}"
    );
    assert!(out.stderr.is_empty(), "{out}");
}

// ---- own vs foreign holder (allocation rule 5) -------------------------------------

#[test]
fn reserved_port_held_by_a_process_of_its_own_worktree_is_in_use() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    let sub = t.repo.join("sub dir");
    std::fs::create_dir_all(&sub).unwrap();
    let _server = PyListener::start(&sub, "6", "::", t.ports.start, "");
    let again = run(&mut t.wtenv(&["env"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(again.stdout, first.stdout);
    let ports = run(&mut t.wtenv(&["ports"]));
    assert!(ports.stdout.contains("listening (pid"), "{ports}");
}

#[test]
fn reserved_port_held_by_a_foreign_process_fails_env_naming_it() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    let elsewhere = t.root().join("home");
    let server = PyListener::start(&elsewhere, "4", "127.0.0.1", t.ports.start, "");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "port {} (app): pid {} (",
            t.ports.start,
            server.pid()
        )) && out.stderr.contains(&format!(" in {}", elsewhere.display())),
        "{out}"
    );
    assert_eq!(t.allocations().len(), 1, "the reservation stays");
}

/// The foreign holder was found after the write: a service added to the
/// config got its port reserved by the `env` that then exited 1. It is
/// refused before the write now, and so is a `run`'s hold.
#[test]
fn a_foreign_holder_found_while_allocating_another_service_writes_nothing() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let elsewhere = t.root().join("home");
    let _server = PyListener::start(&elsewhere, "4", "127.0.0.1", t.ports.start, "");
    t.write_config("[services.app]\n[services.api]\n");
    let registry = std::fs::read(t.registry_path()).unwrap();
    for args in [&["env"][..], &["run", "--", "true"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains("held by processes outside it"),
            "{args:?}: {out}"
        );
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            registry,
            "{args:?}: {out}"
        );
    }
}

// ---- sweeps (allocation rule 4) ----------------------------------------------------

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

// ---- concurrency and crashes (allocation rule 7, atomic writes) --------------------

#[test]
fn thirty_two_processes_at_once_get_distinct_ports() {
    let t = TestEnv::with_ports(PortBlock::take_many(2));
    let worktrees: Vec<_> = (0..32).map(|i| t.add_worktree(&format!("wt{i}"))).collect();
    let children: Vec<_> = worktrees
        .iter()
        .map(|w| {
            t.wtenv_in(w, &["env", "--format", "json"])
                // 32 fsynced transactions in a row on a loaded machine may
                // take longer than the default 10 s wait for the last one.
                .env("WTENV_LOCK_TIMEOUT", "120s")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ports = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let port: u16 = vars["PORT"].as_str().unwrap().parse().unwrap();
        assert!(ports.insert(port), "port {port} handed out twice");
    }
    let recorded = t.allocations();
    assert_eq!(recorded.len(), 32);
    assert_eq!(recorded.iter().map(|a| a.0).collect::<BTreeSet<_>>(), ports);
    assert_eq!(
        recorded
            .iter()
            .map(|a| a.2.clone())
            .collect::<BTreeSet<_>>(),
        worktrees.into_iter().collect()
    );
    assert_eq!(
        ports,
        (t.ports.start..t.ports.start + 32).collect(),
        "not the lowest ports"
    );
}

#[test]
fn concurrent_env_in_one_worktree_allocates_once() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    let children: Vec<_> = (0..12)
        .map(|_| {
            t.wtenv(&["env", "--format", "json"])
                .env("WTENV_LOCK_TIMEOUT", "120s")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: BTreeSet<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert_eq!(
        outputs.len(),
        1,
        "processes saw different ports: {outputs:?}"
    );
    let mut recorded = t.allocations();
    recorded.sort();
    assert_eq!(
        recorded,
        vec![
            (t.ports.port(0), "web".into(), t.repo.clone()),
            (t.ports.port(1), "api".into(), t.repo.clone()),
        ]
    );
}

/// A probe is a listener for a few microseconds: without the probe lock,
/// `wtenv ports` probing the worktree's ports in a loop made a concurrent
/// `wtenv env` see its own reserved port "held by a process outside it"
/// (holder unknown, exit 1) now and then.
#[test]
fn probes_of_concurrent_wtenv_processes_never_see_each_other() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n[services.db]\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = run(&mut t.wtenv(&["ports"]));
                    assert_eq!(out.code, Some(0), "{out}");
                }
            });
        }
        for i in 0..150 {
            let out = run(&mut t.wtenv(&["env"]));
            if out.code != Some(0) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("env #{i} failed: {out}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// A tiny deterministic generator (xorshift): no dependency, and a failing
/// run can be replayed from the seed it prints.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkill_at_random_moments_never_tears_or_loses_the_registry() {
    let t = TestEnv::with_ports(PortBlock::take_many(11));
    // A big registry (other worktrees, in the default ranges their
    // config-less directories get) makes each write long enough for kills
    // to land inside it.
    let dirs = t.root().join("others");
    let filler: Vec<_> = (0..400u16)
        .map(|i| {
            let d = dirs.join(format!("w{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let purpose = ["feature", "bugfix", "hotfix", "experiment"][usize::from(i / 100)];
            t.record(5000 + i, "app", purpose, &d, true, json!([]))
        })
        .collect();
    t.write_registry(filler);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    // Kill within 0-15 ms, or within twice what one allocation takes here
    // if that is longer (a loaded machine), so that some runs are killed
    // before, some during and some after their write.
    let one = (0..3)
        .map(|i| {
            let start = Instant::now();
            let out = run(&mut t.wtenv(&["allocate", "--service", &format!("warmup{i}")]));
            assert_eq!(out.code, Some(0), "{out}");
            start.elapsed()
        })
        .max()
        .unwrap();
    let window = (2 * one).max(Duration::from_millis(15)).as_micros() as u64;
    let mut committed: BTreeSet<(String, u16)> = BTreeSet::new();
    let (mut killed, mut finished) = (0, 0);
    for i in 0..200 {
        let service = format!("s{i}");
        let mut child = t
            .wtenv(&["allocate", "--service", &service])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let bytes = std::fs::read(t.registry_path()).unwrap();
        let reg: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("iteration {i} (seed {seed}): torn registry: {e}"));
        let now: BTreeSet<(String, u16)> = reg["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["port"].as_u64().unwrap() >= u64::from(t.ports.start))
            .map(|a| {
                (
                    a["service"].as_str().unwrap().to_owned(),
                    a["port"].as_u64().unwrap() as u16,
                )
            })
            .collect();
        assert_eq!(
            reg["allocations"].as_array().unwrap().len() - now.len(),
            400,
            "filler lost"
        );
        assert!(
            now.is_superset(&committed),
            "iteration {i} (seed {seed}): lost {:?}",
            committed.difference(&now)
        );
        if out.status.success() {
            finished += 1;
            let port: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            assert!(
                now.contains(&(service, port)),
                "iteration {i}: reported {port} but not recorded"
            );
        } else {
            killed += 1;
        }
        let ports: BTreeSet<u16> = now.iter().map(|(_, p)| *p).collect();
        assert_eq!(ports.len(), now.len(), "a port recorded twice");
        committed = now;
    }
    eprintln!(
        "{killed} killed, {finished} finished, {} allocations, window {window} us",
        committed.len()
    );
    assert!(
        killed > 0 && finished > 0,
        "kills never raced the writes: {killed} killed, {finished} finished"
    );
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(0), "{out}");
}

/// A state directory on a full disk: the write fails before its rename,
/// so the registry is as it was, and the error says what to do about the
/// disk (it was a bare "No space left on device").
#[test]
fn a_full_disk_changes_nothing_and_says_so() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let disk = t.root().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let state = disk.join("state");
    // A tmpfs of 16 KiB in a mount namespace of the test's own: the first
    // `env` records the port, then the disk is filled, then `other`
    // needs a write.
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs {disk} || exit 99\n\
         W={wtenv}\n\
         cd {repo} && $W env >/dev/null || exit 98\n\
         cp {state}/registry.json {disk}/before.json\n\
         head -c 65536 /dev/zero > {disk}/fill 2>/dev/null\n\
         cd {other} && $W env\n\
         echo \"exit $?\"\n\
         cmp {state}/registry.json {disk}/before.json && echo unchanged\n\
         ls {state}\n",
        disk = crate::shell::q(&disk),
        wtenv = env!("CARGO_BIN_EXE_wtenv"),
        repo = crate::shell::q(&t.repo),
        other = crate::shell::q(&other),
        state = crate::shell::q(&state),
    );
    let mut cmd = Command::new("unshare");
    t.apply_env(&mut cmd);
    let out = run(cmd.env("WTENV_STATE_DIR", &state).args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout, "exit 1\nunchanged\nprobe.lock\nregistry.json\nregistry.lock\n",
        "{out}"
    );
    assert!(
        out.stderr.ends_with(
            ": No space left on device (os error 28)\n\
             hint: its disk is full (or your quota used up): nothing was changed; free some space, then run the command again\n"
        ),
        "{out}"
    );
}

// ---- registries that must not be touched (corrupt, empty, newer, unsafe) ----------------

/// Bytes and mtime of the file the registry path leads to, and whether the
/// path is a symlink.
fn fingerprint(path: &Path) -> (Vec<u8>, i64, i64, bool) {
    let meta = std::fs::metadata(path).unwrap();
    (
        // A FIFO is not read: the open would wait for a writer.
        if meta.is_file() {
            std::fs::read(path).unwrap()
        } else {
            Vec::new()
        },
        meta.mtime(),
        meta.mtime_nsec(),
        std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_symlink(),
    )
}

/// Every command that needs the registry exits 2, names the file and says
/// what is wrong, and leaves it byte-identical.
fn assert_refused(t: &TestEnv, what: &str, reason: &str) {
    let path = t.registry_path();
    let before = fingerprint(&path);
    for args in [
        &["env"][..],
        &["allocate", "--service", "x"],
        &["release"],
        &["release", "--service", "app"],
        &["ports"],
        &["ports", "--all", "--json"],
        &["validate"],
        &["validate", "--fix", "--verify-ports"],
        &["conflicts"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "{what}: wtenv {args:?}: {out}");
        let talk = format!("{}{}", out.stdout, out.stderr);
        assert!(
            talk.contains(&path.display().to_string()) && talk.contains(reason),
            "{what}: wtenv {args:?} did not name the file and {reason:?}: {out}"
        );
        assert_eq!(
            fingerprint(&path),
            before,
            "{what}: wtenv {args:?} touched the file"
        );
    }
}

fn bad_file(bytes: &[u8], what: &str, reason: &str) {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::write(t.registry_path(), bytes).unwrap();
    assert_refused(&t, what, reason);
}

#[test]
fn a_truncated_registry_is_refused_and_untouched() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let full = std::fs::read(t.registry_path()).unwrap();
    bad_file(&full[..full.len() / 2], "truncated", "not valid JSON");
}

#[test]
fn an_empty_registry_is_refused_and_untouched() {
    bad_file(b"", "empty", "empty");
}

#[test]
fn a_registry_that_is_not_json_is_refused_and_untouched() {
    bad_file(b"port=5000\n", "not json", "not valid JSON");
}

#[test]
fn a_registry_with_the_wrong_schema_is_refused_and_untouched() {
    bad_file(
        br#"{"version": 1, "allocations": {"5000": "app"}}"#,
        "wrong schema",
        "schema",
    );
    bad_file(br#"{"version": 1, "ports": []}"#, "wrong schema", "schema");
    bad_file(br#"{"allocations": []}"#, "no version", "version");
}

#[test]
fn a_registry_from_a_newer_version_is_refused_and_untouched() {
    bad_file(
        br#"{"version": 2, "allocations": [], "leases": []}"#,
        "newer",
        "newer wtenv",
    );
}

#[test]
fn a_symlinked_registry_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    let real = t.root().join("home/real-registry.json");
    std::fs::rename(t.registry_path(), &real).unwrap();
    std::os::unix::fs::symlink(&real, t.registry_path()).unwrap();
    assert_refused(&t, "symlink", "symbolic link");
}

#[test]
fn a_fifo_in_place_of_the_registry_is_refused_without_blocking() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::remove_file(t.registry_path()).unwrap();
    nix::unistd::mkfifo(
        &t.registry_path(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert_refused(&t, "fifo", "not a regular file");
}

#[test]
fn a_group_writable_registry_directory_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o770)).unwrap();
    assert_refused(&t, "group-writable dir", "writable by group");
}

#[test]
fn a_group_writable_registry_file_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::set_permissions(t.registry_path(), std::fs::Permissions::from_mode(0o620)).unwrap();
    assert_refused(&t, "group-writable file", "writable by group");
}

#[test]
fn a_registry_owned_by_another_user_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::os::unix::fs::chown(t.registry_path(), Some(65534), None).unwrap();
    assert_refused(&t, "foreign file", "belongs to uid 65534");
}

#[test]
fn a_registry_directory_owned_by_another_user_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::os::unix::fs::chown(t.state_dir(), Some(65534), None).unwrap();
    assert_refused(&t, "foreign dir", "belongs to uid 65534");
}

/// A state directory whose mode keeps its owner from reading or searching
/// it is refused by every command, the views included (exit 2, naming it,
/// its mode and `chmod 700`), before anything is read or written there.
/// Judged by the mode: root, whom the kernel lets through, is refused
/// alike.
#[test]
fn a_registry_directory_its_owner_cannot_read_or_search_is_refused_and_untouched() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let dir = t.state_dir();
    let before = snapshot(&dir);
    for mode in [0o300, 0o600, 0o100] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let said = format!("its directory {} has mode {mode:o}: ", dir.display());
        assert_refused(&t, &format!("mode {mode:o}"), &said);
        let out = run(&mut t.wtenv(&["env"]));
        let hint = format!("hint: chmod 700 '{}'", dir.display());
        assert_eq!(out.stderr.lines().last(), Some(hint.as_str()), "{out}");
        assert_eq!(
            snapshot(&dir),
            before,
            "mode {mode:o}: the directory changed"
        );
    }
}

/// The commands that may change the registry (every transaction, the
/// trust list beside it).
const WRITERS: &[&[&str]] = &[
    &["allocate", "--service", "x"],
    &["release"],
    &["release", "--service", "app"],
    &["validate", "--fix"],
    &["trust"],
];

/// A state directory its owner can read but not write (mode 500): the
/// views and `env` with its port reserved read it, and create nothing
/// there, not even a lock file (root, whom the kernel would let write,
/// included); every command that may change it is refused, exit 2, before
/// anything is read or written. `run` too, whose hold on reserved ports
/// waits for its command: it ran the command, unable to record the hold,
/// and said so only in the diagnostics; with `--service` it was refused
/// but also said it could not release ports it never held.
#[test]
fn a_registry_directory_its_owner_cannot_write_is_read_and_never_changed() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let dir = t.state_dir();
    for lock in ["registry.lock", "probe.lock"] {
        std::fs::remove_file(dir.join(lock)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let before = snapshot(&dir);
    let port = t.ports.start.to_string();
    for args in [
        &["ports"][..],
        &["ports", "--all", "--json"],
        &["list"],
        &["env"],
        &["validate", "--verify-ports"],
        &["conflicts"],
        &["status"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
        if ["ports", "list", "env"].contains(&args[0]) {
            assert!(out.stdout.contains(&port), "wtenv {args:?}: {out}");
        }
        assert_eq!(snapshot(&dir), before, "wtenv {args:?} wrote");
    }
    let hold = std::process::id().to_string();
    let ran = t.root().join("ran");
    let ran = ran.to_str().unwrap();
    for &args in WRITERS.iter().chain(
        [
            &["env", "--hold", hold.as_str()][..],
            &["run", "--", "touch", ran],
            &["run", "--service", "app", "--", "touch", ran],
        ]
        .iter(),
    ) {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "wtenv {args:?}: {out}");
        assert!(!Path::new(ran).exists(), "wtenv {args:?} ran its command");
        assert!(!out.stderr.contains("could not release"), "{args:?}: {out}");
        // `validate` says it as a finding, on stdout.
        let talk = format!("{}{}", out.stdout, out.stderr);
        assert!(
            talk.contains(&format!("its directory {} has mode 500: ", dir.display()))
                && talk.contains("hint: chmod 700 "),
            "wtenv {args:?}: {out}"
        );
        assert_eq!(snapshot(&dir), before, "wtenv {args:?} wrote");
    }
}

/// What a user (not root) saw in a state directory of mode 300: `env`
/// wrote the registry (creating and renaming need no read permission),
/// then failed to open the directory to sync it, exit 1, the port
/// recorded. Now refused first: exit 2, nothing written. And with mode
/// 500 and no lock file yet, the views failed to create one (exit 1); now
/// they read, creating nothing, and a writer is refused.
#[test]
fn a_user_state_directory_its_owner_cannot_read_or_write_fails_before_any_change() {
    let t = TestEnv::new();
    let dir = t.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    t.give_to_nobody();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o300)).unwrap();
    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains(&format!("its directory {} has mode 300: ", dir.display())),
        "{out}"
    );
    let hint = format!("hint: chmod 700 '{}'", dir.display());
    assert_eq!(out.stderr.lines().last(), Some(hint.as_str()), "{out}");
    assert_eq!(snapshot(&dir), vec![], "written behind the failure");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(run(&mut t.wtenv_as_nobody(&["env"])).code, Some(0));
    for lock in ["registry.lock", "probe.lock"] {
        std::fs::remove_file(dir.join(lock)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let before = snapshot(&dir);
    for args in [&["ports"][..], &["list"], &["validate"], &["env"]] {
        let out = run(&mut t.wtenv_as_nobody(args));
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
    }
    let out = run(&mut t.wtenv_as_nobody(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("has mode 500: "), "{out}");
    assert_eq!(snapshot(&dir), before, "written in a directory of mode 500");
}

#[test]
fn a_new_registry_is_private() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&t.state_dir()), 0o700);
    assert_eq!(mode(&t.registry_path()), 0o600);
    assert_eq!(t.registry()["version"], 1);
}

/// A user whose umask takes the owner's bits (0277) still gets a state
/// directory and files its next run can use: every command after the
/// first worked only for root, whom the kernel lets through a lock file
/// made 0400.
#[test]
fn a_umask_that_takes_the_owners_bits_leaves_a_registry_the_next_run_can_use() {
    let t = TestEnv::new();
    std::fs::create_dir_all(t.state_dir().parent().unwrap()).unwrap();
    t.give_to_nobody();
    let as_nobody_under_umask =
        |args: &[&str]| run(&mut t.wtenv_as_nobody_under_umask("277", args));
    for args in [
        &["env"][..],
        &["env"],
        &["allocate", "--service", "x"],
        &["run", "--", "true"],
        &["release", "--service", "x"],
        &["trust"],
    ] {
        let out = as_nobody_under_umask(args);
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&t.state_dir()), 0o700);
    for file in ["registry.json", "registry.lock", "probe.lock"] {
        assert_eq!(mode(&t.state_dir().join(file)), 0o600, "{file}");
    }
}

/// A user with no `~/.local` yet, under a umask of 0277: the state
/// directory's missing parents were made 0500, so the state directory
/// could not be made in them (exit 2), and `~/.local` stayed 0500 for
/// every other program. Each directory made on the way is 0700, as the
/// XDG base directory spec asks. Under 0477 too, which takes the owner's
/// read bit: a directory made so cannot be opened to be chmodded.
#[test]
fn a_umask_that_takes_the_owners_bits_makes_the_missing_parents_usable_too() {
    let t = TestEnv::new();
    for umask in ["277", "477"] {
        let home = t.root().join(format!("fresh-home-{umask}"));
        std::fs::create_dir(&home).unwrap();
        t.give_to_nobody();
        for _ in 0..2 {
            let mut env = t.wtenv_as_nobody_under_umask(umask, &["env"]);
            env.env_remove("XDG_STATE_HOME").env("HOME", &home);
            let out = run(&mut env);
            assert_eq!(out.code, Some(0), "umask {umask}: {out}");
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for dir in [".local", ".local/state", ".local/state/wtenv"] {
            assert_eq!(mode(&home.join(dir)), 0o700, "umask {umask}: {dir}");
        }
        assert_eq!(mode(&home.join(".local/state/wtenv/registry.json")), 0o600);
    }
}

// ---- the lock -----------------------------------------------------------

#[test]
fn a_registry_locked_by_another_process_is_busy_after_the_timeout() {
    lock_held_elsewhere_exits_2_busy(
        "registry.lock",
        &[&["allocate", "--service", "x"], &["ports"], &["release"]],
    );
}

/// The probe lock too: a probe that cannot get its turn is busy (exit 2),
/// not a failed probe (exit 1), for every command that probes (`list` and
/// `remove` once exited 1 without a hint), and the message names the probe
/// lock, not the registry.
#[test]
fn a_probe_lock_held_by_another_process_is_busy_after_the_timeout() {
    lock_held_elsewhere_exits_2_busy(
        "probe.lock",
        &[
            &["allocate", "--service", "x"],
            &["ports"],
            &["env"],
            &["list"],
            &["remove", "busy-wt"],
        ],
    );
}

fn lock_held_elsewhere_exits_2_busy(lock_name: &str, commands: &[&[&str]]) {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    // A linked worktree with a port, for `remove` (it probes its ports).
    let linked = t.add_worktree("busy-wt");
    assert_eq!(run(&mut t.wtenv_in(&linked, &["env"])).code, Some(0));
    let lock = t.state_dir().join(lock_name);
    // flock -F: no fork, so the process we kill is the one holding the lock.
    let mut holder = Command::new("flock")
        .args([
            "-F",
            lock.to_str().unwrap(),
            "python3",
            "-c",
            "import time; print('locked', flush=True); time.sleep(60)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    for &args in commands {
        let start = Instant::now();
        let out = run(t.wtenv(args).env("WTENV_LOCK_TIMEOUT", "300ms"));
        assert_eq!(out.code, Some(2), "wtenv {args:?}: {out}");
        assert!(out.stderr.contains("busy for 300ms"), "{out}");
        assert!(out.stderr.contains("hint: "), "{out}");
        let named = if lock_name == "registry.lock" {
            t.registry_path()
        } else {
            lock.clone()
        };
        assert!(
            out.stderr.contains(&format!(" {}: busy", named.display())),
            "{out}"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "gave up before the timeout"
        );
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        run(&mut t.wtenv(&["allocate", "--service", "x"])).code == Some(0)
    }));
}

// ---- conflicts and ports ------------------------------------------------

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

// ---- diagnostics --------------------------------------------------------

/// Without `WTENV_LOG`, `-v`/`-vv` choose the level of wtenv's own
/// diagnostics (the subscriber that prints them is made at the first one),
/// and a plain run prints none.
#[test]
fn verbosity_flags_choose_the_diagnostics_without_wtenv_log() {
    let t = TestEnv::new();
    let count = |out: &crate::support::Run, level: &str| {
        out.stderr.lines().filter(|l| l.contains(level)).count()
    };
    let plain = run(&mut t.wtenv(&["env"]));
    assert_eq!(
        (plain.code, plain.stderr.as_str()),
        (Some(0), ""),
        "{plain}"
    );
    let info = run(&mut t.wtenv(&["-v", "env"]));
    assert_eq!((info.code, count(&info, "DEBUG")), (Some(0), 0), "{info}");
    let debug = run(&mut t.wtenv(&["-vv", "env"]));
    assert_eq!(debug.code, Some(0), "{debug}");
    assert!(count(&debug, "DEBUG") >= 2, "{debug}");
    assert!(
        debug
            .stderr
            .contains("fast path: every service has its port"),
        "{debug}"
    );
    // Each line once, in the formatter's layout: level, then message.
    let line = debug
        .stderr
        .lines()
        .find(|l| l.contains("fast path"))
        .unwrap();
    assert!(line.trim_start().starts_with("DEBUG fast path"), "{line:?}");
}

#[test]
fn diagnostics_on_a_pipe_have_no_colour_codes_unless_asked() {
    let t = TestEnv::new();
    let out = run(t.wtenv(&["env"]).env("WTENV_LOG", "wtenv=debug"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("DEBUG"),
        "no diagnostics to check: {out}"
    );
    assert!(
        !out.stderr.contains('\x1b'),
        "escape codes on a pipe: {:?}",
        out.stderr
    );
    let out = run(t
        .wtenv(&["--color", "always", "env"])
        .env("WTENV_LOG", "wtenv=debug"));
    assert!(
        out.stderr.contains('\x1b'),
        "--color always gave no colour: {out}"
    );
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

#[test]
fn a_state_directory_that_is_a_file_is_refused_and_untouched() {
    let t = TestEnv::new();
    let dir = t.state_dir();
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, b"not a directory\n").unwrap();
    for args in [
        &["env"][..],
        &["allocate", "--service", "x"],
        &["ports"],
        &["validate"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "wtenv {args:?}: {out}");
        let talk = format!("{}{}", out.stdout, out.stderr);
        assert!(
            talk.contains(&format!("{} is not a directory", dir.display())),
            "wtenv {args:?}: {out}"
        );
        assert_eq!(std::fs::read(&dir).unwrap(), b"not a directory\n");
    }
}

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

/// Reserved allocations of ports 2-16 of `t`'s range, one per sibling
/// worktree (a directory that exists) of `repository`: a fleet sharing
/// the range.
fn fleet(t: &TestEnv, repository: &Path) -> Vec<serde_json::Value> {
    (2..17)
        .map(|i| {
            let worktree = t.root().join(format!("siblings/wt{i}"));
            std::fs::create_dir_all(&worktree).unwrap();
            let mut record = t.record(
                t.ports.port(i),
                "app",
                "feature",
                &worktree,
                true,
                json!([]),
            );
            record["repository"] = json!(repository);
            record
        })
        .collect()
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

/// The system calls `wtenv ARGS` makes in the main worktree, as strace
/// (`-e TRACE`) logs them.
fn strace(t: &TestEnv, args: &[&str], trace: &str) -> String {
    let log = t.root().join("strace.log");
    let cmd = t.wtenv(args);
    let wtenv = cmd.get_program().to_owned();
    let mut traced = Command::new("strace");
    traced
        .args(["-f", "-y", "-qq", "-e", trace, "-o"])
        .arg(&log)
        .arg(wtenv)
        .args(cmd.get_args())
        .current_dir(cmd.get_current_dir().unwrap());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => traced.env(k, v),
            None => traced.env_remove(k),
        };
    }
    let out = run(&mut traced);
    assert_eq!(out.code, Some(0), "{out}");
    std::fs::read_to_string(&log).unwrap()
}

/// The own-port check finds a busy port's holders in `/proc` (every
/// process's descriptors: tens of milliseconds on a busy machine) before
/// it takes any lock of the registry, so no other wtenv waits on that
/// walk. Here the worktree's own server holds its reserved port and a new
/// service must be reserved, so `env` also writes: strace shows the walk,
/// and no `/proc/N/fd` opened while `registry.lock` is locked.
#[test]
fn the_own_port_check_walks_proc_outside_the_registry_lock() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let _own = PyListener::start(&t.repo, "4", "127.0.0.1", t.ports.start, "");
    t.write_config("[services.app]\n[services.api]\n");
    let text = strace(&t, &["env"], "trace=flock,openat,close");
    let lock = format!("<{}/registry.lock>", t.state_dir().display());
    let is_fd_dir = |line: &str| {
        line.split('"').nth(1).is_some_and(|path| {
            let mut parts = path.split('/').skip(1);
            parts.next() == Some("proc")
                && parts.next().is_some_and(|pid| pid.parse::<u32>().is_ok())
                && parts.next() == Some("fd")
        })
    };
    let (mut locked, mut walked, mut exclusive) = (false, 0, 0);
    for line in text.lines() {
        if line.contains(&lock) && line.contains("flock(") && line.ends_with("= 0") {
            locked = !line.contains("LOCK_UN");
            exclusive += usize::from(line.contains("LOCK_EX"));
        } else if line.contains(&lock) && line.contains("close(") {
            locked = false;
        } else if line.contains("openat(") && is_fd_dir(line) {
            walked += 1;
            assert!(!locked, "/proc walked under the registry lock:\n{text}");
        }
    }
    assert!(walked > 0, "no /proc walk: nothing tested\n{text}");
    assert!(exclusive > 0, "no write: nothing tested\n{text}");
    assert_eq!(t.allocations().len(), 2);
}

/// The fsyncs `wtenv ARGS` makes in the main worktree, as strace sees them:
/// `(file temp files fsynced, state directory fsynced)`.
fn fsyncs(t: &TestEnv, args: &[&str]) -> (usize, usize) {
    let text = strace(t, args, "trace=fsync,fdatasync");
    let state = t.state_dir();
    let dir = format!("<{}>", state.display());
    let temp = format!("<{}/registry.json.tmp.", state.display());
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    (count(&temp), count(&dir))
}

/// A change that only processes live by (`run`'s holds, and the ports it
/// allocates for its command alone) is written atomically (the temp file
/// fsynced before its rename: a crash shows the old file or the new, never
/// a torn one) but the rename is not waited for: a crash that loses it
/// ends those processes too. A change of reservations is durable: the
/// directory is fsynced after the rename.
#[test]
fn holds_alone_skip_the_directory_fsync_reservations_never_do() {
    let t = TestEnv::new();
    // Nothing reserved: run allocates a port for its command, then
    // releases it. Two atomic writes, no directory fsync.
    assert_eq!(fsyncs(&t, &["run", "--", "true"]), (2, 0));
    assert!(t.allocations().is_empty());
    // Reserving: one durable write.
    assert_eq!(fsyncs(&t, &["env"]), (1, 1));
    // Every port reserved: a command that ends before it settles writes
    // nothing; a longer one, its hold (with its group) once settled, then
    // the release of the hold: two atomic writes.
    assert_eq!(fsyncs(&t, &["run", "--", "true"]), (0, 0));
    assert_eq!(fsyncs(&t, &["run", "--", "sleep", "1"]), (2, 0));
    // The reservation is still there, and nothing is held.
    assert_eq!(t.allocations().len(), 1);
    assert!(
        !t.registry().to_string().contains("holders"),
        "{}",
        t.registry()
    );
    // Releasing the reservation: durable again.
    assert_eq!(fsyncs(&t, &["release"]), (1, 1));
    assert!(t.allocations().is_empty());
}

/// A port `run` or `env` picks was proved free by the scan, under the probe
/// lock, a moment before: the own-port check that follows does not probe
/// it again. Every command here probes the port once: as many binds as a
/// reserved port's check makes.
#[test]
fn a_port_just_picked_is_probed_once() {
    let t = TestEnv::new();
    let port = format!("htons({})", t.ports.port(0));
    let binds = |args: &[&str]| {
        strace(&t, args, "trace=bind")
            .lines()
            .filter(|l| l.contains(&port))
            .count()
    };
    // Nothing reserved: run picks the port, holds it, releases it.
    let picked_by_run = binds(&["run", "--", "true"]);
    assert!(t.allocations().is_empty());
    // env picks it and reserves it; then, on its fast path, checks it.
    let picked_by_env = binds(&["env"]);
    let checked = binds(&["env"]);
    assert!(checked > 0, "the reserved port was not probed");
    assert_eq!(
        (picked_by_run, picked_by_env),
        (checked, checked),
        "a port just picked was probed again"
    );
}

/// `list` probes the ports of its ranges that no one recorded (the
/// conflict rows it shows), and its own worktrees' ports: not every
/// port a sibling of a fleet, in another repository, reserved there.
#[test]
fn list_does_not_probe_the_ports_other_repositories_reserved_in_its_range() {
    let t = TestEnv::new();
    let allocations = fleet(&t, &t.root().join("siblings/.git"));
    t.write_registry(allocations);
    let log = strace(&t, &["list"], "trace=bind");
    let probed = |i: u16| log.contains(&format!("htons({})", t.ports.port(i)));
    assert!(
        (2..17).all(|i| !probed(i)),
        "a sibling's reserved port was probed:\n{log}"
    );
    assert!(
        [0, 1, 17, 18, 19].into_iter().all(probed),
        "a port no one recorded was not probed:\n{log}"
    );
}
