//! The registry lock and the probe lock held by another process: busy
//! (exit 2, naming the lock) after the timeout.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, run, wait_for};

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
