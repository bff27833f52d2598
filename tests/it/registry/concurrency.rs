//! Concurrency and crashes (allocation rule 7, atomic writes): processes
//! at once get distinct ports and allocate once, probes never see each
//! other, SIGKILL never tears or loses the registry, a full disk changes
//! nothing.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{PortBlock, TestEnv, Tmpfs, run};

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
    // The first `env` records the port, then the disk is filled, then
    // `other` needs a write.
    let disk = Tmpfs::mount(&t.root().join("disk"), "16k");
    let state = disk.path().join("state");
    let out = run(t.wtenv(&["env"]).env("WTENV_STATE_DIR", &state));
    assert_eq!(out.code, Some(0), "{out}");
    let before = std::fs::read(state.join("registry.json")).unwrap();
    disk.fill();
    let out = run(t.wtenv_in(&other, &["env"]).env("WTENV_STATE_DIR", &state));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(std::fs::read(state.join("registry.json")).unwrap(), before);
    let mut left: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["probe.lock", "registry.json", "registry.lock"]);
    assert!(
        out.stderr.ends_with(
            ": No space left on device (os error 28)\n\
             hint: its disk is full (or your quota used up): nothing was changed; free some space, then run the command again\n"
        ),
        "{out}"
    );
}

/// A worktree on a full disk: its stamp was made, then written, and the
/// write failed, leaving it empty; a moved worktree would then not be
/// followed (its ports are found by the stamp). The stamp is now written
/// to a temp file renamed over it: a write that fails leaves nothing
/// behind, neither an empty stamp nor a temp file, and says so in a
/// warning; the command's own work (the registry, elsewhere) is done.
#[test]
fn a_stamp_on_a_full_disk_is_never_left_empty() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("disk"), "1m");
    let repo = disk.path().join("r");
    t.init_repo(&repo);
    disk.fill();
    let out = run(&mut t.wtenv_in(&repo, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let stamp = repo.join(".git/wtenv.stamp");
    assert!(
        out.stderr.contains(&format!(
            "warning: did not write {}: No space left on device (os error 28)",
            stamp.display()
        )),
        "{out}"
    );
    assert!(!stamp.exists(), "left: {:?}", std::fs::read(&stamp));
    let temps: Vec<_> = std::fs::read_dir(repo.join(".git"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    assert_eq!(t.allocations().len(), 1, "{out}");
}
