//! A child's process group: its id, how it is signalled, and the sweep of
//! what is left in it after its leader exits.
//!
//! A group id is signalled only while the group is known to have a member
//! (the leader not yet reaped, or a live member seen in the last poll), so
//! a reused pgid is practically never hit.

use std::fmt;
use std::time::Instant;

use super::notice::Kills;
use super::signal::Signal;
use super::tree::Stray;
use crate::process::ProcessId;

/// A process group id. Distinct from a pid on purpose: a pgid is signalled
/// with `killpg`, a pid never is by this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pgid(pub(super) u32);

impl Pgid {
    pub fn as_raw(self) -> u32 {
        self.0
    }

    fn nix(self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0 as i32)
    }
}

impl fmt::Display for Pgid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Sends `sig` to every process of the group (a gone group is logged).
pub fn killpg(pgid: Pgid, sig: Signal) {
    if let Err(e) = nix::sys::signal::killpg(pgid.nix(), sig) {
        tracing::debug!(%pgid, ?sig, "killpg: {e}");
    }
}

/// One supervised child and its group.
pub(super) struct Group {
    pub leader: u32,
    /// What it runs, as messages name it (`npm`, `service web`).
    pub name: String,
    pub pgid: Pgid,
    pub exited: bool,
    /// Live members were seen after the leader exited (being swept).
    pub sweeping: bool,
    /// When the left-behind members get SIGKILL.
    pub sweep_deadline: Option<Instant>,
    /// Stopped on its own (a restart): when it gets SIGKILL.
    pub kill_at: Option<Instant>,
    /// The leader's exit status.
    pub status: Option<std::process::ExitStatus>,
    pub done: bool,
    /// The tree's strays proven this group's (see [`Group::claim`]), by
    /// pid and start time: they stay its once their ancestors are gone.
    pub strays: Vec<ProcessId>,
    /// What the SIGKILLs of its sweep (or its restart's stop) said.
    pub kills: Kills,
}

impl Group {
    pub fn new(leader: u32, name: &str) -> Group {
        Group {
            leader,
            name: name.to_owned(),
            pgid: Pgid(leader),
            exited: false,
            sweeping: false,
            sweep_deadline: None,
            kill_at: None,
            status: None,
            done: false,
            strays: Vec::new(),
            kills: Kills::default(),
        }
    }

    /// Of the strays just `found` in the tree, those of this group: found
    /// below one of its members (its service started them), or claimed so
    /// before (the same pid and start time). Returns their pids, and which
    /// of them are claimed only now.
    pub fn claim(&mut self, found: &[Stray]) -> (Vec<u32>, Vec<u32>) {
        let (mut mine, mut new) = (Vec::new(), Vec::new());
        for s in found {
            let Some(id) = ProcessId::of(s.pid) else {
                continue;
            };
            if self.strays.iter().any(|&c| id.is(c)) {
                mine.push(s.pid);
            } else if s.owner == Some(self.pgid.0) {
                self.strays.push(id);
                mine.push(s.pid);
                new.push(s.pid);
            }
        }
        (mine, new)
    }

    pub fn signal(&self, sig: Signal) {
        if !self.done {
            killpg(self.pgid, sig);
        }
    }
}

impl Drop for Group {
    /// A supervisor that unwinds (panic) must not leave its children: the
    /// whole group dies with it.
    fn drop(&mut self) {
        if !self.done {
            killpg(self.pgid, Signal::SIGKILL);
        }
    }
}
