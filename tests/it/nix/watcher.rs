//! The watcher `env --hold PID` starts: the holds of a `nix develop`
//! shell are released once it ends, however it ends (`--command`, which
//! runs no EXIT trap, a SIGKILL), by one watcher per shell, which keeps no
//! caller's pipe open and leaves no lock file behind.

use std::process::Command;
use std::time::Duration;

use super::{nix_develop, nix_develop_in_tmux, write_test_flake};
use crate::support::{
    Sleeper, TestEnv, kill_watcher_of, run, run_bounded, wait_for, watchers_of, watchers_seen,
};

/// The lock files of the watchers.
fn lock_files(t: &TestEnv) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(t.state_dir().join("watch")) {
        Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
        Err(_) => vec![],
    }
}

/// Once `shell` has ended, its holds are released without any other
/// command (the ports only it held with them: no allocation is left
/// that is not reserved), its watcher is gone and its lock file with it;
/// the views show nothing held and `validate` passes.
fn released_after(t: &TestEnv, shell: u32) {
    let unheld = || {
        t.registry()["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["reserved"] == true && a.get("holders").is_none())
    };
    assert!(
        wait_for(Duration::from_secs(30), unheld),
        "the holds of {shell} were not released: {}",
        t.registry()
    );
    assert!(
        wait_for(Duration::from_secs(30), || watchers_of(shell).is_empty()),
        "the watcher of {shell} did not exit"
    );
    assert_eq!(lock_files(t), Vec::<std::path::PathBuf>::new());
    for view in [&["ports"][..], &["validate", "-v"]] {
        let out = run(&mut t.wtenv(view));
        assert!(!out.stdout.contains("held"), "{view:?}: {out}");
        assert_eq!(out.code, Some(0), "{view:?}: {out}");
    }
}

/// `nix develop --command CMD`, CI's form: nix's rcfile `exec`s CMD, and
/// bash drops its EXIT trap on exec, so `release --hold $$` never runs.
/// The shell's watcher releases its holds once CMD has exited.
#[test]
fn nix_develop_command_is_released_once_the_command_exits() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let mut cmd = nix_develop(&t);
    cmd.arg(format!(
        "echo \"pid $$\"; '{}' ports",
        env!("CARGO_BIN_EXE_wtenv")
    ))
    .current_dir(&t.repo);
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{out}");
    let shell: u32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        out.stdout.contains(&format!("held by pid {shell}")),
        "the command ran unheld: {out}"
    );
    released_after(&t, shell);
    assert!(t.allocations().is_empty(), "{}", t.registry());
}

/// A `nix develop` shell killed with SIGKILL runs no trap: its watcher
/// releases its holds.
#[test]
fn a_killed_nix_develop_shell_is_released_by_its_watcher() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let (_tmux, shell) = nix_develop_in_tmux(&t, &t.repo, "kill");
    assert!(
        wait_for(Duration::from_secs(30), || lock_files(&t).len() == 1),
        "the watcher took no lock"
    );
    assert_eq!(watchers_of(shell).len(), 1, "no watcher of {shell}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shell as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    released_after(&t, shell);
    assert!(t.allocations().is_empty(), "{}", t.registry());
}

/// More `wtenv env --hold $$` inside a shell whose watcher runs start
/// none: one watcher per shell, the first.
#[test]
fn one_watcher_per_shell_however_often_it_holds() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let (tmux, shell) = nix_develop_in_tmux(&t, &t.repo, "again");
    assert!(
        wait_for(Duration::from_secs(30), || lock_files(&t).len() == 1),
        "the watcher took no lock"
    );
    let first = watchers_of(shell);
    assert_eq!(first.len(), 1, "{first:?}");
    let (log, done) = (t.root().join("again.log"), t.root().join("again.done"));
    tmux.line(
        &t,
        &format!(
            "for i in 1 2 3; do '{}' -v env --hold $$ >/dev/null 2>>'{}'; done; echo ok > '{}'",
            env!("CARGO_BIN_EXE_wtenv"),
            log.display(),
            done.display()
        ),
    );
    assert!(
        wait_for(Duration::from_secs(60), || done.exists()),
        "{}",
        tmux.pane(&t)
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("started the watcher"), "{said}");
    assert_eq!(watchers_of(shell), first);
    assert_eq!(lock_files(&t).len(), 1);
    tmux.line(&t, "exit");
    released_after(&t, shell);
}

/// The watcher keeps none of its caller's pipes open: `$(wtenv env --hold
/// PID)` ends while PID (and so its watcher) lives on. A plain `env`
/// starts no watcher; the reservation it made outlives the hold.
#[test]
fn the_watcher_keeps_no_pipe_of_its_caller_open() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!t.state_dir().join("watch").exists(), "a plain env watches");
    let mut holder = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = holder.id();
    let mut cmd = Command::new("bash");
    t.apply_env(&mut cmd);
    cmd.args([
        "-c",
        "out=$(\"$0\" env --hold \"$1\" 2>&1); echo \"[$out]\"",
        env!("CARGO_BIN_EXE_wtenv"),
        &pid.to_string(),
    ])
    .current_dir(&t.repo);
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("export PORT="), "{out}");
    assert_eq!(watchers_seen(pid).len(), 1, "no watcher of {pid}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    released_after(&t, pid);
}

/// Nor a descriptor its caller left open beyond stdio without
/// close-on-exec (`exec 7>&1`, nix's fd 3, a CI runner's pipe): the
/// watcher closes them as it starts, so `$(...)` ends.
#[test]
fn the_watcher_lets_go_of_descriptors_its_caller_passed_down() {
    let t = TestEnv::new();
    let holder = Sleeper::new();
    let pid = holder.0.id();
    let mut cmd = Command::new("bash");
    t.apply_env(&mut cmd);
    cmd.args([
        "-c",
        "out=$(\"$0\" env --hold \"$1\" 7>&1 2>&1); echo \"[$out]\"",
        env!("CARGO_BIN_EXE_wtenv"),
        &pid.to_string(),
    ])
    .current_dir(&t.repo);
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    let watchers = watchers_seen(pid);
    drop(holder);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("export PORT="), "{out}");
    assert_eq!(watchers.len(), 1, "no watcher of {pid}");
    released_after(&t, pid);
}

/// Even a watcher that cannot start a session of its own (started as a
/// session leader: `setsid` fails) lets go of them, rather than keep
/// them while it watches.
#[test]
fn a_watcher_that_already_leads_a_session_still_lets_go_of_descriptors() {
    let t = TestEnv::new();
    let holder = Sleeper::new();
    let pid = holder.0.id();
    let start = wtenv::process::ProcessId::of(pid).unwrap().start_time;
    let mut cmd = Command::new("bash");
    t.apply_env(&mut cmd);
    // util-linux `setsid` makes wtenv lead a new session before it runs.
    cmd.args([
        "-c",
        "out=$(setsid \"$0\" __watch \"$1\" \"$2\" 7>&1 </dev/null >/dev/null 2>&1 &); echo \"[$out]\"",
        env!("CARGO_BIN_EXE_wtenv"),
        &pid.to_string(),
        &start.to_string(),
    ])
    .current_dir(&t.repo);
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    let watchers = watchers_seen(pid);
    drop(holder);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, "[]\n", "{out}");
    assert_eq!(watchers.len(), 1, "no watcher of {pid}");
    assert!(
        wait_for(Duration::from_secs(30), || watchers_of(pid).is_empty()),
        "the watcher outlived {pid}"
    );
}

/// `release --hold PID` of a holder that lives on (pid 1 never ends; a
/// shell whose EXIT trap ran is about to): its holds are released and its
/// watcher, with nothing left to watch for, is stopped, its lock file
/// gone. The watcher kept running until PID ended.
#[test]
fn release_hold_stops_the_watcher_of_a_holder_that_lives_on() {
    let t = TestEnv::new();
    let holder = Sleeper::new();
    let pid = holder.0.id();
    let out = run(&mut t.wtenv(&["env", "--hold", &pid.to_string()]));
    assert_eq!(out.code, Some(0), "{out}");
    let watchers = watchers_seen(pid);
    assert_eq!(watchers.len(), 1, "no watcher of {pid}");
    // It names itself in its lock file once it holds the lock.
    let me = format!("{}\n", watchers[0]);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let locks = lock_files(&t);
            locks.len() == 1 && std::fs::read_to_string(&locks[0]).unwrap_or_default() == me
        }),
        "{:?}",
        lock_files(&t)
    );
    let out = run(&mut t.wtenv(&["release", "--hold", &pid.to_string()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        wait_for(Duration::from_secs(30), || watchers_of(pid).is_empty()),
        "the watcher of {pid} outlived release --hold"
    );
    assert_eq!(lock_files(&t), Vec::<std::path::PathBuf>::new());
    assert!(t.allocations().is_empty(), "{}", t.registry());
    assert!(
        wtenv::process::ProcessId::of(pid).is_some(),
        "the holder lives on"
    );
}

/// A watcher ended by SIGTERM, SIGINT or SIGHUP (`release --hold`, a
/// shutdown, a `kill`) removes its lock file and exits 0, releasing
/// nothing: its holder lives. A SIGTERMed one left its lock file.
#[test]
fn a_watcher_ended_by_a_signal_removes_its_lock_file_and_exits_0() {
    use nix::sys::signal::Signal;
    let t = TestEnv::new();
    let holder = Sleeper::new();
    let pid = holder.0.id();
    let start = wtenv::process::ProcessId::of(pid).unwrap().start_time;
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let mut watcher = t.wtenv(&["__watch", &pid.to_string(), &start.to_string()]);
        let mut watcher = watcher
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = format!("{}\n", watcher.id());
        assert!(
            wait_for(Duration::from_secs(30), || {
                lock_files(&t)
                    .iter()
                    .any(|l| std::fs::read_to_string(l).unwrap_or_default() == me)
            }),
            "{signal}: the watcher named itself in no lock file"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(watcher.id() as i32), signal).unwrap();
        let mut status = None;
        assert!(wait_for(Duration::from_secs(30), || {
            status = watcher.try_wait().unwrap();
            status.is_some()
        }));
        assert_eq!(status.unwrap().code(), Some(0), "{signal}: {status:?}");
        assert_eq!(lock_files(&t), Vec::<std::path::PathBuf>::new(), "{signal}");
    }
}

/// A SIGKILLed watcher cannot remove its lock file: the next watcher to
/// start removes it once its holder is gone, and leaves the lock file of
/// a holder that lives (its next watcher takes it again) and one that is
/// locked (a watcher runs there), whatever its holder. `validate --fix`
/// removes it too, and says so.
#[test]
fn lock_files_of_killed_watchers_are_removed_once_their_holders_are_gone() {
    let t = TestEnv::new();
    let watch = t.state_dir().join("watch");
    // Two holders whose watchers are killed: one ends, one lives on.
    let (gone, lives) = (Sleeper::new(), Sleeper::new());
    let killed_watchers_lock = |holder: &Sleeper| {
        let pid = holder.0.id();
        let out = run(&mut t.wtenv(&["env", "--hold", &pid.to_string()]));
        assert_eq!(out.code, Some(0), "{out}");
        assert!(
            wait_for(Duration::from_secs(30), || lock_files(&t)
                .iter()
                .any(|l| l.to_string_lossy().contains(&format!("/{pid}-")))),
            "the watcher of {pid} took no lock"
        );
        kill_watcher_of(pid);
        let start = wtenv::process::ProcessId::of(pid).unwrap().start_time;
        watch.join(format!("{pid}-{start}.lock"))
    };
    let (gone_lock, lives_lock) = (killed_watchers_lock(&gone), killed_watchers_lock(&lives));
    // Its holds released before it ends (its EXIT trap ran; the watcher,
    // killed, could not be stopped): the sweep of the next `env --hold`,
    // which removes the lock files of the holds it releases, has none of
    // it to release, and the watcher's look at them all is what is left.
    let out = run(&mut t.wtenv(&["release", "--hold", &gone.0.id().to_string()]));
    assert_eq!(out.code, Some(0), "{out}");
    drop(gone);
    // One of a gone holder (the start time is not this process's) that
    // is locked.
    let locked_lock = watch.join(format!("{}-1.lock", std::process::id()));
    let locked = std::fs::File::create(&locked_lock).unwrap();
    locked.lock().unwrap();
    let mut before = vec![gone_lock.clone(), lives_lock.clone(), locked_lock.clone()];
    before.sort();
    let mut found = lock_files(&t);
    found.sort();
    assert_eq!(found, before, "the setup");
    // The next watcher to start removes the one left by a gone holder.
    let next = Sleeper::new();
    let out = run(&mut t.wtenv(&["env", "--hold", &next.0.id().to_string()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        wait_for(Duration::from_secs(30), || !gone_lock.exists()),
        "{:?}",
        lock_files(&t)
    );
    assert!(lives_lock.exists() && locked_lock.exists());
    assert_eq!(lock_files(&t).len(), 3, "{:?}", lock_files(&t));
    // `validate --fix`: the next holder's watcher killed, the holder gone.
    let next_pid = next.0.id();
    kill_watcher_of(next_pid);
    drop(next);
    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert!(
        out.stdout.contains(&format!(
            "removed 1 lock file of killed watchers from {}\n",
            watch.display()
        )),
        "{out}"
    );
    let mut left = lock_files(&t);
    left.sort();
    let mut kept = vec![lives_lock, locked_lock];
    kept.sort();
    assert_eq!(left, kept);
    drop(lives);
    drop(locked);
}

/// A watcher releases the holds of its holder, the very process (pid and
/// start time), once it has ended, and no other's: here its holder's pid
/// is another process's now (a live one, started at another time), which
/// holds a port of its own. The watcher used to match the live process
/// by pid and release its hold, keeping the gone holder's.
#[test]
fn a_watcher_releases_its_holders_holds_not_those_of_a_process_reusing_its_pid() {
    let t = TestEnv::new();
    let now = Sleeper::new();
    let pid = now.0.id();
    let start = wtenv::process::ProcessId::of(pid).unwrap().start_time;
    let gone = start + 1;
    let (theirs, its) = (t.ports.start, t.ports.start + 1);
    let hold =
        |start: u64| serde_json::json!([{"pid": pid, "start_time": start, "command": "bash"}]);
    t.write_registry(vec![
        t.record(theirs, "app", "feature", &t.repo, false, hold(gone)),
        t.record(its, "api", "feature", &t.repo, false, hold(start)),
    ]);
    let out = run_bounded(
        &mut t.wtenv(&["__watch", &pid.to_string(), &gone.to_string()]),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "{out}");
    let left = t.registry()["allocations"].clone();
    assert_eq!(
        left,
        serde_json::json!([t.record(its, "api", "feature", &t.repo, false, hold(start))]),
        "{out}"
    );
    assert_eq!(lock_files(&t), Vec::<std::path::PathBuf>::new());
    assert!(
        wtenv::process::ProcessId::of(pid).is_some(),
        "the pid's process lives on"
    );
}
