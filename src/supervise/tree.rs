//! The tree's strays: processes that descend from wtenv and stay in its
//! session, but left the supervised groups for groups of their own (a
//! shell's job control, `set -m`, gives each job its own group). A signal
//! to the child's group misses them, so wtenv finds them below itself and
//! signals each alone: the forwarded stop signals, the sweep once every leader has exited (README "Nothing is
//! left behind"), and SIGKILL when the supervisor unwinds (its `Drop`).
//!
//! A stray found below a member of a supervised group is that group's
//! (its service started it): `Group::claim` records it by pid and start
//! time, so it stays the group's once its ancestors exit and it is
//! re-parented to wtenv. `up` stops it with its service and restarts the
//! service only once it is gone. A stray first seen after every ancestor
//! in its group exited cannot be told from another service's: it is
//! swept once every leader has exited.
//!
//! Proof that a stray is the tree's, read right before each signal: /proc
//! shows it below wtenv, each step a child of the one before (read from
//! its parent's `children` files, and its own parent checked in its
//! `stat`), and in wtenv's session. A process re-parented to wtenv (the
//! subreaper) is such a child; a pid cannot be reused before its parent
//! reaps it. What left the session (`setsid`, a daemon) is not followed:
//! nothing below it can come back into wtenv's session. Not strays:
//! members of a supervised group (their group is signalled), a health
//! check's group (it has its own timeout), and wtenv's own group (a child
//! of wtenv between its fork and its `setpgid`, or a helper it runs).
//! Where /proc has no `children` files (not Linux), none is found.

use std::collections::BTreeSet;
use std::time::Instant;

use super::notice::{Kills, Why};
use super::reap;
use super::signal::Signal;
use crate::process;

/// Bounds the walk (a tree this size is not a dev server's).
const MAX_PROCESSES: usize = 100_000;

/// A stray, and the supervised group it was found below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stray {
    pub pid: u32,
    /// The supervised group of its nearest ancestor that is in one (that
    /// group's service started it), if any: `None` once every such
    /// ancestor is gone (it was re-parented to wtenv).
    pub owner: Option<u32>,
}

/// The live strays of the tree, `groups` being the ids of the supervised
/// groups that still have members.
pub(super) fn strays(groups: &BTreeSet<u32>) -> Vec<Stray> {
    let me = std::process::id();
    let Some(session) = process::session(me) else {
        return Vec::new();
    };
    let unreaped = reap::unreaped();
    let mut not_strays: BTreeSet<u32> = groups.union(&unreaped).copied().collect();
    not_strays.extend(process::pgid(me));
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![(me, None)];
    while let Some((parent, owner)) = todo.pop() {
        for pid in reap::children_of(parent).unwrap_or_default() {
            if seen.len() >= MAX_PROCESSES || !seen.insert(pid) {
                continue;
            }
            // Still its child (not a reused pid), still in the session.
            if process::parent(pid) != Some(parent)
                || process::session(pid) != Some(session)
                || unreaped.contains(&pid)
            {
                continue;
            }
            let Some(pgid) = process::pgid(pid) else {
                continue;
            };
            let owner = if groups.contains(&pgid) {
                Some(pgid)
            } else {
                owner
            };
            todo.push((pid, owner));
            if !not_strays.contains(&pgid) && !process::is_zombie(pid) {
                found.push(Stray { pid, owner });
            }
        }
    }
    found
}

/// Sends each of `signals` to every stray, alone (never through its group
/// id: an outsider in the same session may have joined that group).
/// Returns how many there were.
pub(super) fn signal(groups: &BTreeSet<u32>, signals: &[Signal]) -> usize {
    let found: Vec<u32> = strays(groups).iter().map(|s| s.pid).collect();
    signal_each(&found, signals);
    found.len()
}

/// Sends each of `signals` to each of `pids`, strays just found.
pub(super) fn signal_each(pids: &[u32], signals: &[Signal]) {
    for &pid in pids {
        for &sig in signals {
            let target = nix::unistd::Pid::from_raw(pid as i32);
            if let Err(e) = nix::sys::signal::kill(target, sig) {
                tracing::debug!(pid, ?sig, "kill: {e}");
            }
        }
    }
    if !pids.is_empty() {
        tracing::debug!(?pids, ?signals, "signalled the tree's strays");
    }
}

/// SIGKILLs, each alone, those of `pids` that are stopped by a signal
/// (state `T`), during a sweep that sent them SIGTERM and SIGCONT on an
/// earlier turn: one stopped again (vim, asked to end, writes to the
/// terminal from the background and gets SIGTTOU) is not finishing its
/// work, and waiting the grace for it only freezes the terminal. One
/// stopped by its tracer (state `t`: strace, a debugger at a breakpoint)
/// is not: its tracer decides what the SIGTERM does, so it gets the grace
/// like any running process. `say` is given those about to be killed
/// first (none: not called).
pub(super) fn kill_stopped(pids: &[u32], say: impl FnOnce(&[u32])) {
    let stopped: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| process::is_signal_stopped(p))
        .collect();
    if !stopped.is_empty() {
        tracing::info!(?stopped, "stopped again during the sweep: killed at once");
        say(&stopped);
        signal_each(&stopped, &[Signal::SIGKILL]);
    }
}

/// The sweep of the strays once every leader has exited, as a group's:
/// SIGTERM (and SIGCONT), SIGKILL after the grace, or at once for one
/// stopped again meanwhile ([`kill_stopped`]) and for one found after the
/// grace ended; one found during the grace (forked meanwhile, or
/// re-parented to wtenv since) gets its SIGTERM then, once, as a group's
/// sweep sends its strays claimed then, and SIGKILL at the grace's end
/// with the rest. Each SIGKILL said ([`Kills`]), unless wtenv killed
/// everything already.
#[derive(Debug, Default)]
pub(super) struct Sweep {
    /// The first signal was sent.
    started: bool,
    /// When those left get SIGKILL.
    deadline: Option<Instant>,
    /// The last turn found some.
    pub left: bool,
    /// The strays sent SIGTERM, by pid and start time (a pid reused by a
    /// later stray is another process).
    termed: Vec<process::ProcessId>,
    /// What its SIGKILLs said.
    kills: Kills,
}

impl Sweep {
    /// One turn: signals what is due, and notes whether any was found.
    /// `killed`: wtenv killed everything already (said then, or asked);
    /// `names`: the groups', for what a SIGKILL says.
    pub fn turn(
        &mut self,
        groups: &BTreeSet<u32>,
        now: Instant,
        grace: std::time::Duration,
        killed: bool,
        names: &[String],
    ) {
        // Once the grace has ended (its SIGKILL went out: no deadline
        // left), or wtenv killed everything, a stray found later (forked
        // meanwhile, or re-parented to wtenv since) is killed at once:
        // its grace is over too.
        let over = self.started && self.deadline.is_none_or(|d| now >= d);
        let found: Vec<u32> = strays(groups).iter().map(|s| s.pid).collect();
        let kills = &mut self.kills;
        if killed || over {
            if self.started && !killed {
                kills.say(names, Why::Grace(grace), &found);
            }
            signal_each(&found, &[Signal::SIGKILL]);
        } else {
            // Before the grace's end: SIGTERM (and SIGCONT) once to each,
            // those of the first turn and any found since; SIGKILL at once
            // to one sent it on an earlier turn and stopped again.
            let (mut new, mut earlier) = (Vec::new(), Vec::new());
            for &pid in &found {
                match process::ProcessId::of(pid) {
                    Some(id) if self.termed.iter().any(|&t| id.is(t)) => earlier.push(pid),
                    Some(id) => {
                        self.termed.push(id);
                        new.push(pid);
                    }
                    None => {} // gone since
                }
            }
            signal_each(&new, &[Signal::SIGTERM, Signal::SIGCONT]);
            kill_stopped(&earlier, |stopped| {
                kills.say(names, Why::StoppedAgain, stopped);
            });
        }
        let n = found.len();
        self.left = n > 0;
        if self.left && !self.started {
            tracing::info!(strays = n, "every leader gone, sweeping the tree's strays");
            self.started = true;
            self.deadline = Some(now + grace);
        } else if self.left && (killed || over) {
            self.deadline = None;
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use super::super::Supervisor;
    use crate::process;

    /// Whether `pid` is gone or dead (a zombie: SIGKILL done, not reaped).
    fn dead(pid: u32) -> bool {
        process::ProcessId::of(pid).is_none() || process::is_zombie(pid)
    }

    /// A panic cannot be made from outside the binary, so the guard is
    /// tested here, with real processes: a supervisor that unwinds while
    /// `bash -c 'set -m; sleep 300 & ...'` runs SIGKILLs the job in its
    /// own group too, not only the child's group (`Supervisor`'s `Drop`,
    /// before each `Group`'s).
    #[test]
    fn a_panic_kills_the_jobs_in_groups_of_their_own_with_the_groups() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.pid");
        let script = format!(
            "set -m; sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait",
            file.display()
        );
        let job = AtomicU32::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sup = Supervisor::new(Duration::from_secs(5)).unwrap();
            let expr = duct::cmd!("bash", "-c", &script);
            let pgid = sup
                .spawn(expr, None, "bash", "bash".as_ref(), None, false)
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !file.exists() {
                assert!(Instant::now() < deadline, "the job never started");
                std::thread::sleep(Duration::from_millis(10));
            }
            let pid: u32 = std::fs::read_to_string(&file)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            job.store(pid, Ordering::Relaxed);
            // The setup: the job is a stray, in a group of its own.
            assert_ne!(process::pgid(pid), Some(pgid.as_raw()));
            panic!("a bug in the supervisor");
        }));
        let job = job.load(Ordering::Relaxed);
        let msg = result.expect_err("the closure panics");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"a bug in the supervisor"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dead(job) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let survived = !dead(job);
        if survived {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(job as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(job as i32), None);
        assert!(!survived, "the job {job} survived the panic");
    }
}
