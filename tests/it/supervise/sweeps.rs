//! The sweep of what a leader leaves in its group: a process stopped by
//! its tracer (strace, a debugger) gets the grace like a running one,
//! since its tracer decides what the SIGTERM does; only one stopped by a
//! signal is killed at once (see `terminal.rs` for those). Every SIGKILL
//! a sweep sends is said, naming how many and the first.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::grace::stubborn;
use super::strays::{KillOnDrop, read_pid};
use super::{PATIENCE, Wtenv, alive, assert_no_holds};
use crate::support::{TestEnv, wait_for};

/// A tracer that seizes the pid argv[1], stops it (`PTRACE_INTERRUPT`:
/// state `t`) and never continues it, as a debugger at a breakpoint; it
/// touches argv[2] once the tracee is stopped, and waits for the tracee's
/// death (only SIGKILL can end it), so that its parent can reap it.
const TRACER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 0x4206, 0x4207, 0x40000000
pid = int(sys.argv[1])
for request in (PTRACE_SEIZE, PTRACE_INTERRUPT):
    if libc.ptrace(request, pid, None, None) != 0:
        sys.exit(f"ptrace {request:#x}: {os.strerror(ctypes.get_errno())}")
os.waitpid(pid, WALL)
open(sys.argv[2] + ".tmp", "w").close()
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
while True:
    _, status = os.waitpid(pid, WALL)
    if os.WIFEXITED(status) or os.WIFSIGNALED(status):
        break
"#;

/// A running [`TRACER`], killed and reaped on drop.
struct Tracer(Child);

impl Tracer {
    /// Traces `pid` and stops it; returns once it is stopped.
    fn stop(t: &TestEnv, pid: u32, traced: &Path) -> Tracer {
        let script = t.root().join("tracer.py");
        std::fs::write(&script, TRACER).unwrap();
        let child = Command::new("python3")
            .arg(&script)
            .arg(pid.to_string())
            .arg(traced)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut tracer = Tracer(child);
        assert!(
            wait_for(PATIENCE, || traced.exists()
                || tracer.0.try_wait().unwrap().is_some()),
            "the tracer never stopped {pid}"
        );
        assert!(traced.exists(), "the tracer could not trace {pid}");
        tracer
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The state letter of `pid` in /proc (`R`, `S`, `T`, `t`...).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// `sh -c 'sleep 300 & ...; exit 0'` with the sleep held stopped by a
/// tracer when the leader exits: the sweep's SIGTERM waits on the tracer,
/// and the sleep is killed at the grace's end, not at once as a process
/// stopped by a signal would be.
#[test]
fn a_leftover_stopped_by_its_tracer_gets_the_grace() {
    let t = TestEnv::new();
    let pidfile = t.root().join("sleep.pid");
    let traced = t.root().join("traced");
    let tree = format!(
        "sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; \
         while [ ! -e {1} ]; do sleep 0.05; done; exit 0",
        pidfile.display(),
        traced.display()
    );
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["run", "--grace", "5s", "--", "sh", "-c", &tree]);
    assert!(
        wait_for(PATIENCE, || pidfile.exists()),
        "{}",
        w.stderr_text()
    );
    let sleep = read_pid(&pidfile);
    guard.add(sleep);
    let leader = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(sleep as i32)))
        .unwrap()
        .as_raw() as u32;
    let _tracer = Tracer::stop(&t, sleep, &traced);
    assert_eq!(state(sleep), Some('t'), "the setup: stopped by its tracer");
    assert!(
        wait_for(PATIENCE, || !alive(leader)),
        "the leader never exited"
    );
    // Well within the grace: a sweep that took it for stopped by a signal
    // killed it on its second turn (10 ms).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        alive(sleep),
        "the traced leftover was killed before the grace ended\n{}",
        w.stderr_text()
    );
    assert_eq!(state(sleep), Some('t'));
    let status = w.wait();
    assert_eq!(status.code(), Some(0), "{}", w.stderr_text());
    assert!(!alive(sleep), "the traced leftover survived the grace");
    assert_eq!(
        w.stderr_text(),
        format!("wtenv: sh did not stop within 5s: killed 1 process, pid {sleep} (sleep 300)\n")
    );
    assert_no_holds(&t);
}

/// `bash -c 'sh -c STUBBORN & ...; exit 0'`, run by wtenv with `args`:
/// the leader leaves a `sleep 600` that ignores SIGTERM, in its group, or
/// with `job`, under `set -m`, in a group of its own. Returns wtenv and
/// the sleep's pid.
fn leave_a_stubborn_sleep(t: &TestEnv, args: &[&str], job: bool) -> (Wtenv, u32) {
    let ready = t.root().join("ready");
    let pidfile = t.root().join("sleep.pid");
    let tree = format!(
        "{0}sh -c \"{1}\" & echo $! > {2}.tmp; mv {2}.tmp {2}; \
         while [ ! -e {3} ]; do sleep 0.05; done; exit 0",
        if job { "set -m; " } else { "" },
        stubborn(&ready),
        pidfile.display(),
        ready.display()
    );
    let mut args = args.to_vec();
    args.extend(["--", "bash", "-c", &tree]);
    let w = Wtenv::start(t, &args);
    assert!(
        wait_for(PATIENCE, || pidfile.exists()),
        "{}",
        w.stderr_text()
    );
    (w, read_pid(&pidfile))
}

/// What the leader leaves in its group, ignoring SIGTERM, is killed when
/// the grace ends, and that is said as the kill after a signal wtenv
/// received is, naming how many and the first: `-q` or not.
#[test]
fn a_leftover_killed_after_the_grace_is_said_quiet_or_not() {
    for quiet in [false, true] {
        let t = TestEnv::new();
        let args: &[&str] = if quiet {
            &["-q", "run", "--grace", "1s"]
        } else {
            &["run", "--grace", "1s"]
        };
        let (mut w, sleep) = leave_a_stubborn_sleep(&t, args, false);
        let mut guard = KillOnDrop(Vec::new());
        guard.add(sleep);
        let status = w.wait();
        assert_eq!(status.code(), Some(0), "{}", w.stderr_text());
        assert_eq!(
            w.stderr_text(),
            format!(
                "wtenv: bash did not stop within 1s: killed 1 process, pid {sleep} (sleep 600)\n"
            ),
            "quiet: {quiet}"
        );
        assert!(!alive(sleep));
        assert_no_holds(&t);
    }
}

/// The same for a job the leader put in a group of its own (the tree's
/// strays are swept once every leader exited).
#[test]
fn a_job_killed_after_the_grace_is_said() {
    let t = TestEnv::new();
    let (mut w, sleep) = leave_a_stubborn_sleep(&t, &["run", "--grace", "1s"], true);
    let mut guard = KillOnDrop(Vec::new());
    guard.add(sleep);
    let status = w.wait();
    assert_eq!(status.code(), Some(0), "{}", w.stderr_text());
    assert_eq!(
        w.stderr_text(),
        format!("wtenv: bash did not stop within 1s: killed 1 process, pid {sleep} (sleep 600)\n")
    );
    assert!(!alive(sleep));
    assert_no_holds(&t);
}

/// `up` restarting an unhealthy service that ignores SIGTERM: its group
/// is killed when the grace ends, and that is said once.
#[test]
fn a_restarts_kill_after_the_grace_is_said() {
    let t = TestEnv::new();
    let (bad, pidfile) = (t.root().join("bad"), t.root().join("web.pid"));
    t.write_config(&format!(
        "[services.web]\nrun = \"trap '' TERM; echo $$ > {0}.tmp; mv {0}.tmp {0}; exec sleep 600\"\n\
         health = {{ cmd = \"test ! -e {1}\", interval = \"200ms\", retries = 1 }}\n\
         restart = \"on-failure\"\n",
        pidfile.display(),
        bad.display()
    ));
    let mut w = Wtenv::start(&t, &["up", "--grace", "1s"]);
    let mut guard = KillOnDrop(Vec::new());
    assert!(
        wait_for(PATIENCE, || w.stderr_text().contains("web | ready in ")),
        "{}",
        w.stderr_text()
    );
    let web = read_pid(&pidfile);
    guard.add(web);
    std::fs::write(&bad, "").unwrap();
    let killed = format!(
        "wtenv: service web did not stop within 1s: killed 1 process, pid {web} (sleep 600)\n"
    );
    assert!(
        wait_for(PATIENCE, || w.stderr_text().contains(&killed)),
        "{}",
        w.stderr_text()
    );
    assert!(
        wait_for(PATIENCE, || w
            .stderr_text()
            .matches("web | starting")
            .count()
            == 2),
        "not restarted: {}",
        w.stderr_text()
    );
    w.signal(nix::sys::signal::Signal::SIGINT);
    w.wait();
    assert!(!alive(web));
    assert_eq!(
        w.stderr_text().matches(" killed").count(),
        1,
        "{}",
        w.stderr_text()
    );
    assert_no_holds(&t);
}

/// The leader leaves a stray that ignores SIGTERM and, hidden below it
/// in wtenv's own group (walked, never signalled), the process that
/// waits for it and, once it was killed, moves to a group of its own: a
/// stray found only after the grace ended. It is killed at once (its
/// grace is over) and said as the others; it used to be signalled no
/// more, and wtenv waited for it.
#[test]
fn a_stray_found_after_the_grace_ended_is_killed_at_once_and_said() {
    let t = TestEnv::new();
    let (script, out) = (t.root().join("tree.py"), t.root().join("pid"));
    std::fs::write(
        &script,
        r#"
import os, signal, sys, time
wtenv = os.getpgid(os.getppid())
out = sys.argv[1]
def write(name, pid):
    with open(f"{out}.{name}.tmp", "w") as f:
        f.write(str(pid))
    os.rename(f"{out}.{name}.tmp", f"{out}.{name}")
hidden = os.fork()
if hidden == 0:
    os.setpgid(0, wtenv)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    first = os.fork()
    if first == 0:
        os.setpgid(0, 0)
        time.sleep(60)
        os._exit(0)
    # To move before wtenv's next turn (10 ms) on a busy machine, where
    # it may (root).
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:
        pass
    write("first", first)
    os.waitpid(first, 0)
    os.setpgid(0, 0)
    time.sleep(60)
    os._exit(0)
write("hidden", hidden)
while not os.path.exists(f"{out}.first"):
    time.sleep(0.01)
"#,
    )
    .unwrap();
    let (script, out) = (script.to_str().unwrap(), out.to_str().unwrap());
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["run", "--grace", "1s", "--", "python3", script, out]);
    let pid = |name: &str| {
        let file = t.root().join(format!("pid.{name}"));
        assert!(wait_for(PATIENCE, || file.exists()), "{}", w.stderr_text());
        read_pid(&file)
    };
    let (hidden, first) = (pid("hidden"), pid("first"));
    guard.add(hidden);
    guard.add(first);
    // As the kernel has it (a `python3` on PATH may exec another path).
    let command = std::fs::read(format!("/proc/{first}/cmdline")).unwrap();
    let command = String::from_utf8(command)
        .unwrap()
        .trim_end_matches('\0')
        .replace('\0', " ");
    assert!(
        wait_for(Duration::from_secs(10), || w
            .child
            .try_wait()
            .unwrap()
            .is_some()),
        "wtenv waits for the stray found after the grace: {}",
        w.stderr_text()
    );
    assert_eq!(w.wait().code(), Some(0), "{}", w.stderr_text());
    assert!(!alive(hidden) && !alive(first), "{}", w.stderr_text());
    let said = |pid| {
        format!("wtenv: python3 did not stop within 1s: killed 1 process, pid {pid} ({command})\n")
    };
    assert_eq!(w.stderr_text(), said(first) + &said(hidden));
    assert_no_holds(&t);
}

/// The leader leaves a stray; hidden below it in wtenv's own group
/// (walked, never signalled), the process that waits for it and, once
/// the sweep's SIGTERM ended it, forks a second stray (its SIGTERM
/// handler set before it leaves the group): one found during the
/// grace. It gets its SIGTERM then and ends by it, well before the
/// grace's end; it used to get nothing until the grace's SIGKILL.
#[test]
fn a_stray_found_during_the_grace_gets_sigterm_then() {
    let t = TestEnv::new();
    let (script, out) = (t.root().join("tree.py"), t.root().join("pid"));
    std::fs::write(
        &script,
        r#"
import os, signal, sys, time
wtenv = os.getpgid(os.getppid())
out = sys.argv[1]
def write(name, pid):
    with open(f"{out}.{name}.tmp", "w") as f:
        f.write(str(pid))
    os.rename(f"{out}.{name}.tmp", f"{out}.{name}")
hidden = os.fork()
if hidden == 0:
    os.setpgid(0, wtenv)
    first = os.fork()
    if first == 0:
        os.setpgid(0, 0)
        time.sleep(60)
        os._exit(0)
    write("first", first)
    os.waitpid(first, 0)
    second = os.fork()
    if second == 0:
        def termed(*_):
            write("termed", os.getpid())
            os._exit(0)
        signal.signal(signal.SIGTERM, termed)
        os.setpgid(0, 0)
        write("second", os.getpid())
        time.sleep(60)
        os._exit(0)
    os.waitpid(second, 0)
    os._exit(0)
write("hidden", hidden)
while not os.path.exists(f"{out}.first"):
    time.sleep(0.01)
"#,
    )
    .unwrap();
    let (script, out) = (script.to_str().unwrap(), out.to_str().unwrap());
    let mut guard = KillOnDrop(Vec::new());
    let mut w = Wtenv::start(&t, &["run", "--grace", "30s", "--", "python3", script, out]);
    let hidden = t.root().join("pid.hidden");
    assert!(
        wait_for(PATIENCE, || hidden.exists()),
        "{}",
        w.stderr_text()
    );
    guard.add(read_pid(&hidden));
    let second = t.root().join("pid.second");
    assert!(
        wait_for(PATIENCE, || second.exists()),
        "{}",
        w.stderr_text()
    );
    guard.add(read_pid(&second));
    let termed = t.root().join("pid.termed");
    assert!(
        wait_for(Duration::from_secs(10), || termed.exists()),
        "the stray found during the grace got no SIGTERM: {}",
        w.stderr_text()
    );
    assert!(
        wait_for(Duration::from_secs(10), || w
            .child
            .try_wait()
            .unwrap()
            .is_some()),
        "wtenv waits for the grace's end: {}",
        w.stderr_text()
    );
    assert_eq!(w.wait().code(), Some(0), "{}", w.stderr_text());
    assert_eq!(w.stderr_text(), "", "nothing was killed");
    assert_no_holds(&t);
}
