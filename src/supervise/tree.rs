//! The tree's strays: processes that descend from wtenv and stay in its
//! session, but left the supervised groups for groups of their own (a
//! shell's job control, `set -m`, gives each job its own group). A signal
//! to the child's group misses them, so wtenv finds them below itself and
//! signals each alone: the forwarded stop signals, and the sweep once
//! every leader has exited (README "Nothing is left behind").
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

use super::reap;
use super::signal::Signal;
use crate::process;

/// Bounds the walk (a tree this size is not a dev server's).
const MAX_PROCESSES: usize = 100_000;

/// The live strays of the tree, `groups` being the ids of the supervised
/// groups that still have members.
pub(super) fn strays(groups: &BTreeSet<u32>) -> Vec<u32> {
    let me = std::process::id();
    let Some(session) = process::session(me) else {
        return Vec::new();
    };
    let unreaped = reap::unreaped();
    let mut not_strays: BTreeSet<u32> = groups.union(&unreaped).copied().collect();
    not_strays.extend(process::pgid(me));
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![me];
    while let Some(parent) = todo.pop() {
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
            todo.push(pid);
            let Some(pgid) = process::pgid(pid) else {
                continue;
            };
            if !not_strays.contains(&pgid) && !process::is_zombie(pid) {
                found.push(pid);
            }
        }
    }
    found
}

/// Sends each of `signals` to every stray, alone (never through its group
/// id: an outsider in the same session may have joined that group).
/// Returns how many there were.
pub(super) fn signal(groups: &BTreeSet<u32>, signals: &[Signal]) -> usize {
    let found = strays(groups);
    for &pid in &found {
        for &sig in signals {
            let target = nix::unistd::Pid::from_raw(pid as i32);
            if let Err(e) = nix::sys::signal::kill(target, sig) {
                tracing::debug!(pid, ?sig, "kill: {e}");
            }
        }
    }
    if !found.is_empty() {
        tracing::debug!(?found, ?signals, "signalled the tree's strays");
    }
    found.len()
}

/// The sweep of the strays once every leader has exited, as a group's:
/// SIGTERM (and SIGCONT), SIGKILL after the grace.
#[derive(Debug, Default)]
pub(super) struct Sweep {
    /// The first signal was sent.
    started: bool,
    /// When those left get SIGKILL.
    deadline: Option<Instant>,
    /// The last turn found some.
    pub left: bool,
}

impl Sweep {
    /// One turn: signals what is due, and notes whether any was found.
    pub fn turn(
        &mut self,
        groups: &BTreeSet<u32>,
        now: Instant,
        grace: std::time::Duration,
        killed: bool,
    ) {
        let signals: &[Signal] = if !self.started {
            if killed {
                &[Signal::SIGKILL]
            } else {
                &[Signal::SIGTERM, Signal::SIGCONT]
            }
        } else if self.deadline.is_some_and(|d| now >= d) {
            &[Signal::SIGKILL]
        } else {
            &[]
        };
        let n = if signals.is_empty() {
            strays(groups).len()
        } else {
            signal(groups, signals)
        };
        self.left = n > 0;
        if self.left && !self.started {
            tracing::info!(strays = n, "every leader gone, sweeping the tree's strays");
            self.started = true;
            self.deadline = Some(now + grace);
        } else if self.left && !signals.is_empty() {
            self.deadline = None;
        }
    }
}
