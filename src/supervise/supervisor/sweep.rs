//! The supervisor's sweeps: what is left of a group once its leader
//! exited (and the tree's strays once every leader has), the SIGKILL at
//! the end of a restart's stop, and the one at the end of the grace after
//! a signal wtenv received; each SIGKILL sent unasked is said
//! ([`Kills`]).

use std::collections::BTreeSet;
use std::time::Instant;

use super::Supervisor;
use crate::process;
use crate::supervise::group::killpg;
use crate::supervise::notice::{Kills, Why};
use crate::supervise::reap;
use crate::supervise::signal::Signal;
use crate::supervise::tree;

impl Supervisor {
    /// The grace after a signal wtenv received (or its own stop) ended:
    /// every group and the tree's strays get SIGKILL, said first as
    /// every SIGKILL a sweep sends is, naming how many and the first.
    pub(super) fn kill_all_overdue(&mut self) {
        let live = self.live_groups();
        let strays: Vec<u32> = tree::strays(&live).iter().map(|s| s.pid).collect();
        let mut all: Vec<u32> = live
            .iter()
            .flat_map(|&pgid| process::group_members(pgid))
            .collect();
        all.extend(&strays);
        let grace = self.escalation.grace();
        Kills::default().say(&self.running(), Why::Grace(grace), &all);
        for g in &self.groups {
            g.signal(Signal::SIGKILL);
        }
        tree::signal_each(&strays, &[Signal::SIGKILL]);
    }

    /// The groups [`stop_group`](Self::stop_group) stopped whose grace
    /// ended: SIGKILL, to the group and its strays, said first.
    pub(super) fn kill_overdue_groups(&mut self, now: Instant) {
        let grace = self.escalation.grace();
        let killed = self.escalation.killed();
        for i in 0..self.groups.len() {
            if self.groups[i].done || self.groups[i].kill_at.is_none_or(|d| now < d) {
                continue;
            }
            let (strays, _) = self.group_strays(i);
            let g = &mut self.groups[i];
            g.kill_at = None;
            if !killed {
                let mut all = process::group_members(g.pgid.as_raw());
                all.extend(&strays);
                g.kills
                    .say(std::slice::from_ref(&g.name), Why::Grace(grace), &all);
            }
            g.signal(Signal::SIGKILL);
            tree::signal_each(&strays, &[Signal::SIGKILL]);
        }
    }

    /// The final sweep of groups whose leader exited: reap orphans, then
    /// SIGTERM what is left, SIGKILL after the grace, or on a later turn
    /// for what is stopped again ([`tree::kill_stopped`]). A SIGKILL is
    /// said, unless wtenv killed everything already (the grace after a
    /// signal it received ended, said then, or a second Ctrl-C asked it).
    pub(super) fn sweep(&mut self, now: Instant) {
        // /proc is read only when a group is left to sweep, or a child of
        // ours changed state (an orphan to reap).
        let child_event = std::mem::take(&mut self.child_event);
        self.childless = None;
        if !child_event && !self.strays.left && !self.groups.iter().any(|g| g.exited && !g.done) {
            return;
        }
        let leaders: BTreeSet<u32> = self
            .groups
            .iter()
            .filter(|g| !g.exited)
            .map(|g| g.leader)
            .collect();
        let reaped = reap::reap_orphans(&leaders);
        self.childless = reaped.as_ref().and_then(|r| r.childless);
        let left = reaped.map(|r| r.left);
        let grace = self.escalation.grace();
        let killed = self.escalation.killed();
        let all_exited = self.groups.iter().all(|g| g.exited);
        // While other leaders run, an exited leader's strays are its
        // group's (see `Group::claim`): swept with its rest, its service
        // restarted only once they are gone. Each is below a child of ours
        // other than the leaders, or there is none.
        let found = (!all_exited
            && left.as_ref().is_none_or(|l| !l.is_empty())
            && self.groups.iter().any(|g| g.exited && !g.done))
        .then(|| tree::strays(&self.live_groups()));
        let first: &[Signal] = if killed {
            &[Signal::SIGKILL]
        } else {
            &[Signal::SIGTERM, Signal::SIGCONT]
        };
        for g in self.groups.iter_mut().filter(|g| g.exited && !g.done) {
            // With no child but running leaders, an exited leader's group
            // is empty (see `reap_orphans`): no /proc scan needed. A child
            // of ours in the group that is not reaped yet still counts,
            // live or dying: its sockets close only when it is reapable.
            let members: Vec<u32> = match &left {
                Some(left) if left.is_empty() => Vec::new(),
                Some(left) => {
                    let mut m = process::group_members(g.pgid.as_raw());
                    let dying: Vec<u32> = left
                        .iter()
                        .copied()
                        .filter(|p| !m.contains(p))
                        .filter(|&p| process::pgid(p) == Some(g.pgid.as_raw()))
                        .collect();
                    m.extend(dying);
                    m
                }
                None => process::group_members(g.pgid.as_raw()),
            };
            let (strays, new) = found.as_ref().map(|f| g.claim(f)).unwrap_or_default();
            if members.is_empty() && strays.is_empty() {
                g.done = true;
                continue;
            }
            let name = std::slice::from_ref(&g.name);
            if !g.sweeping {
                tracing::info!(pgid = %g.pgid, ?members, ?strays, "leader gone, sweeping its group");
                g.sweeping = true;
                g.sweep_deadline = Some(now + grace);
                for &sig in first {
                    killpg(g.pgid, sig);
                }
                tree::signal_each(&strays, first);
            } else if g.sweep_deadline.is_some_and(|d| now >= d) {
                g.sweep_deadline = None;
                let all: Vec<u32> = members.iter().chain(&strays).copied().collect();
                if !killed {
                    g.kills.say(name, Why::Grace(grace), &all);
                }
                killpg(g.pgid, Signal::SIGKILL);
                tree::signal_each(&strays, &[Signal::SIGKILL]);
            } else if g.sweep_deadline.is_some() {
                tree::signal_each(&new, first);
                // Continued by that SIGCONT, or by the first turn's.
                let all: Vec<u32> = members.iter().chain(&strays).copied().collect();
                tree::kill_stopped(&all, |stopped| {
                    if !killed {
                        g.kills.say(name, Why::StoppedAgain, stopped);
                    }
                });
            } else {
                // Found only after the grace ended.
                if !killed {
                    g.kills.say(name, Why::Grace(grace), &new);
                }
                tree::signal_each(&new, &[Signal::SIGKILL]);
            }
        }
        // Every leader gone: the tree's strays are swept as the groups'
        // leftovers are. With no child of ours left there is none (each
        // descends from us through a child of ours).
        if !all_exited || left.as_ref().is_some_and(Vec::is_empty) {
            self.strays = tree::Sweep::default();
        } else {
            let live = self.live_groups();
            let names = self.names(true);
            self.strays.turn(&live, now, grace, killed, &names);
        }
    }
}
