//! What a command costs in system calls, as strace sees them: no `/proc`
//! walk under the registry lock, the fsyncs a change needs and no more, a
//! port just picked probed once, other repositories' reserved ports not
//! probed, the registry file stat'ed once per open, what is left of a
//! child's tree read from `/proc` once per look.

use std::process::Command;

use super::fleet;
use crate::support::{PyListener, TestEnv, run};

/// The system calls `wtenv ARGS` makes in the main worktree, as strace
/// (`-e TRACE`) logs them.
fn strace(t: &TestEnv, args: &[&str], trace: &str) -> String {
    strace_ending(t, args, trace, Some(0))
}

/// [`strace`] of a command that exits with `code` (`None`: killed by a
/// signal, as `run` ends after forwarding one).
fn strace_ending(t: &TestEnv, args: &[&str], trace: &str, code: Option<i32>) -> String {
    strace_of(t, &t.wtenv(args), trace, code)
}

/// [`strace_ending`] of `cmd`, a `wtenv` command made by the test's
/// environment (its directory and variables kept).
fn strace_of(t: &TestEnv, cmd: &Command, trace: &str, code: Option<i32>) -> String {
    let log = t.root().join("strace.log");
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
    assert_eq!(out.code, code, "{out}");
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

/// How often each open of `registry.json` is stat'ed, in the order of the
/// opens of `wtenv ARGS`.
fn stats_per_open(t: &TestEnv, args: &[&str]) -> Vec<usize> {
    let text = strace(t, args, "trace=openat,statx,fstat,newfstatat");
    let file = format!("<{}>", t.registry_path().display());
    let mut per_open: Vec<usize> = Vec::new();
    for line in text.lines() {
        if line.contains("openat(") && line.ends_with(&file) {
            per_open.push(0);
        } else if !line.contains("openat(")
            && line.contains(&file)
            && let Some(n) = per_open.last_mut()
        {
            *n += 1;
        }
    }
    per_open
}

/// The registry file is checked through its open descriptor (type, owner,
/// mode), and that one `fstat` also gives what the read needs: the seal
/// (modification time, inode, length) and the size of a whole read. Each
/// open is stat'ed once, sealed or not, read or transaction.
#[test]
fn each_open_of_the_registry_is_stat_ed_once() {
    let t = TestEnv::new();
    // Unsealed (written by hand): env reads it whole, then reserves.
    t.write_registry(vec![]);
    let unsealed = stats_per_open(&t, &["env"]);
    assert_eq!(t.allocations().len(), 1);
    // Sealed: env's binary search, then run's read, its hold (with its
    // group) and its release, each a transaction on its part.
    let sealed_env = stats_per_open(&t, &["env"]);
    let sealed_run = stats_per_open(&t, &["run", "--", "sleep", "0.2"]);
    assert!(unsealed.len() >= 2, "{unsealed:?}");
    assert!(
        !sealed_env.is_empty(),
        "env opened no registry: {sealed_env:?}"
    );
    assert!(sealed_run.len() >= 3, "{sealed_run:?}");
    for (what, per_open) in [
        ("unsealed env", &unsealed),
        ("sealed env", &sealed_env),
        ("sealed run", &sealed_run),
    ] {
        assert!(
            per_open.iter().all(|&n| n == 1),
            "{what}: stats of registry.json per open: {per_open:?}"
        );
    }
}

/// After the child is reaped, the supervisor reads its children from
/// `/proc/<its pid>/task` to sweep what is left of the group, and once every
/// group is gone, to wait for the tree's dying processes before the ports
/// are released. When the sweep found no child of ours at all and nothing
/// was spawned since, there is nothing to wait for: its own tasks are
/// listed again only after the loop waited for an event (on its self-pipe,
/// whose wait sets `SO_RCVTIMEO` for its timeout). A forwarded signal
/// walks the tree first (for the jobs in groups of their own), so one
/// look may follow that walk at once: at most two listings in a row, never
/// a loop that reads `/proc` again and again. Shown on a command that
/// ends (one listing in all), and on one interrupted (SIGINT to wtenv,
/// forwarded to the group).
#[test]
fn the_tree_is_read_from_proc_once_per_look() {
    let t = TestEnv::new();
    let looks = |args: &[&str], code: Option<i32>| {
        let text = strace_ending(&t, args, "trace=openat,setsockopt", code);
        // wtenv's pid: the first line is its loader's openat. Its own
        // tasks, not those of the children the tree's walk lists.
        let me = text.split_whitespace().next().unwrap_or_default();
        let own_tasks = format!("\"/proc/{me}/task\"");
        let (mut listings, mut in_a_row, mut most) = (0, 0, 0);
        for line in text.lines() {
            if line.contains("openat(") && line.contains(&own_tasks) {
                listings += 1;
                in_a_row += 1;
                most = most.max(in_a_row);
            } else if line.contains("setsockopt(") && line.contains("SO_RCVTIMEO") {
                in_a_row = 0;
            }
        }
        assert!(listings > 0, "{own_tasks} never listed:\n{text}");
        assert!(
            most <= 2,
            "{own_tasks} listed {most} times in a row:\n{text}"
        );
        listings
    };
    assert_eq!(looks(&["run", "--", "true"], Some(0)), 1);
    looks(
        &["run", "--", "sh", "-c", "kill -INT $PPID; exec sleep 5"],
        None,
    );
}

/// The prompt hook looks at a worktree's `.envrc` (to leave a `use wtenv`
/// one to direnv) only when the shell says direnv's hook is installed
/// (`__WTENV_DIRENV=1`): without it, not one system call more, the
/// `.envrc` not even stat'ed.
#[test]
fn the_prompt_hook_looks_at_the_envrc_only_beside_direnv() {
    let t = TestEnv::new();
    std::fs::write(t.repo.join(".envrc"), "use wtenv\n").unwrap();
    let hook = |direnv: Option<&str>| {
        let mut cmd = t.wtenv(&["env", "--format", "bash", "--hook"]);
        if let Some(v) = direnv {
            cmd.env("__WTENV_DIRENV", v);
        }
        strace_of(&t, &cmd, "trace=all", Some(0))
    };
    for off in [None, Some("")] {
        let text = hook(off);
        assert!(!text.contains(".envrc"), "{off:?}: {text}");
    }
    let text = hook(Some("1"));
    assert!(text.contains("/.envrc\""), "{text}");
}
