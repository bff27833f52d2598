//! Services of the wtenv back end whose supervisor was SIGKILLed: what
//! runs on is an orphan, which `status` shows, `down` stops (also one
//! whose supervisor dies while `down` waits for it), and `up -d` refuses
//! to start beside. Ordered by what the registry records and by SIGSTOP,
//! never by sleeps.

use nix::sys::signal::Signal;

use super::races::Spawned;
use super::{DownOnDrop, holders, signal, status_cells};
use crate::supervise::{PATIENCE, alive};
use crate::support::{TestEnv, run, wait_for};

/// The supervisor's pid and its service's group (its leader's pid), once
/// its `run` has recorded the group on its hold.
fn supervised(t: &TestEnv, service: &str, said: &dyn Fn() -> String) -> (u32, u32) {
    let recorded = || {
        t.registry_path().exists().then_some(())?;
        let hold = holders(t, service).into_iter().next()?;
        Some((hold["pid"].as_u64()? as u32, hold["pgid"].as_u64()? as u32))
    };
    assert!(wait_for(PATIENCE, || recorded().is_some()), "{}", said());
    recorded().unwrap()
}

/// A supervisor SIGKILLed before its service was ready (its port is
/// never listened on, and the `up -d` that waited for it was interrupted):
/// its record named no group (`up -d` writes it once ready), so `status`
/// said `inactive`, `down` said "was not running" and removed the record
/// while `sleep` ran on, and a second `up -d` started another beside it.
/// The group its `run` recorded in the registry names the orphan: `status`
/// shows it, `up -d` refuses to start a second copy, `down` stops it.
#[test]
fn an_orphan_of_a_supervisor_killed_before_its_service_was_ready_is_found() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config("[services.api]\nrun = \"sleep 1000\"\n");
    let up = Spawned::start(&t, "up", &["up", "-d", "--manager", "wtenv"]);
    let (supervisor, sleep) = supervised(&t, "api", &|| up.stderr());
    signal(up.child.id(), Signal::SIGTERM);
    let up = up.finish();
    assert!(
        up.stderr
            .contains("warning: interrupted; left running in the background"),
        "{up}"
    );
    signal(supervisor, Signal::SIGKILL);
    assert!(wait_for(PATIENCE, || !alive(supervisor)));
    assert!(alive(sleep), "the service runs on");
    let record = std::fs::read_dir(t.state_dir().join("background"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert!(record.get("group").is_none(), "not ready: {record}");
    let status = run(&mut t.wtenv(&["status"]));
    let cells = status_cells(&status, "api");
    assert_eq!(
        [cells[3].as_str(), cells[4].as_str()],
        ["orphaned", &*sleep.to_string()],
        "{status}"
    );
    // Not a second copy beside it: refused before anything is reserved
    // or started.
    let registry = t.registry();
    let again = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(again.code, Some(1), "{again}");
    let said = format!(
        "error: service api runs on without its supervisor, pid {supervisor}, which was killed (orphaned): pid {sleep} (sleep 1000); nothing was started\n\
         hint: stop it with 'wtenv down api', then start it again\n"
    );
    assert_eq!(again.stderr, said, "{again}");
    assert_eq!(t.registry(), registry, "the registry is as it was");
    let down = run(&mut t.wtenv(&["down", "--timeout", "10s"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(down.stderr.contains("wtenv: stopped api ("), "{down}");
    assert!(wait_for(PATIENCE, || !alive(sleep)), "{down}");
    assert!(holders(&t, "api").is_empty(), "{}", t.registry());
}

/// Whether `pid` has `sig` pending (it is stopped, so it has not acted
/// on it): from `/proc/PID/status`, `ShdPnd` (a `kill` is process-wide).
fn pending(pid: u32, sig: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("ShdPnd:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    mask & (1 << (sig as u64 - 1)) != 0
}

/// `down`'s SIGTERM reached the supervisor (stopped, so it did not act on
/// it), which was then SIGKILLed before it stopped its service: `down`
/// waited out its whole `--timeout` and exited 1 while `status` said
/// `orphaned`. It notices the supervisor gone and stops the orphan
/// itself, within the same `--timeout`. Its service ignores SIGTERM: the
/// SIGKILL after half of what is left of `--timeout` is said with that
/// wait rounded, never `within 2s 984ms 102us 190ns`.
#[test]
fn down_stops_the_orphan_of_a_supervisor_killed_while_it_waits() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.api]\nrun = \"trap '' TERM; sleep 1000\"\nhealth = { cmd = \"true\" }\n",
    );
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let (supervisor, sleep) = supervised(&t, "api", &|| up.to_string());
    signal(supervisor, Signal::SIGSTOP);
    let down = Spawned::start(&t, "down", &["down", "--timeout", "6s"]);
    assert!(
        wait_for(PATIENCE, || pending(supervisor, Signal::SIGTERM)),
        "{}",
        down.stderr()
    );
    signal(supervisor, Signal::SIGKILL);
    let down = down.finish();
    assert_eq!(down.code, Some(0), "{down}");
    assert!(down.stderr.contains("wtenv: stopped api ("), "{down}");
    let killed = down
        .stderr
        .lines()
        .find(|l| l.starts_with("wtenv: service api did not stop within "))
        .unwrap_or_else(|| panic!("{down}"));
    let within = killed
        .strip_prefix("wtenv: service api did not stop within ")
        .and_then(|rest| rest.split_once(": killed "))
        .map(|(within, _)| within)
        .unwrap_or_else(|| panic!("{down}"));
    assert!(!within.contains("us") && !within.contains("ns"), "{down}");
    assert!(!alive(sleep), "{down}");
    assert!(!alive(supervisor));
    assert!(holders(&t, "api").is_empty(), "{}", t.registry());
}
