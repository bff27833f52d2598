//! The supervisor: starts children in their own groups and runs the loop
//! that forwards signals, escalates, sweeps and follows job control until
//! every group is gone.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::escalation::{Action, Escalation, Report};
use super::group::{Group, Pgid, killpg};
use super::reap;
use super::signal::{self, Event, Signal};
use super::spawn::SpawnError;
use super::terminal::{self, TerminalGuard};
use super::{POLL, SETTLE};
use crate::exit;
use crate::process;

/// Runs children and stops them, see the module doc.
pub struct Supervisor {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    signals: signal_hook::iterator::Handle,
    groups: Vec<Group>,
    escalation: Escalation,
    /// The terminal, lent to the (single) child's group.
    terminal: Option<TerminalGuard>,
    /// The child was given the terminal: follow its job-control stops.
    interactive: bool,
    /// A signal that arrived before any child was spawned.
    early: Option<Signal>,
}

impl Supervisor {
    /// Registers the signal thread and (Linux) makes wtenv a subreaper.
    /// Call before anything that must be cleaned up.
    pub fn new(grace: Duration) -> io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let signals = signal::listen(tx.clone())?;
        reap::become_subreaper();
        Ok(Supervisor {
            tx,
            rx,
            signals,
            groups: Vec::new(),
            escalation: Escalation::new(grace),
            terminal: None,
            interactive: false,
            early: None,
        })
    }

    /// A signal received before any child started (the caller then starts
    /// nothing and dies of it after cleanup).
    pub fn pending_signal(&mut self) -> Option<Signal> {
        if self.early.is_none() {
            while let Ok(ev) = self.rx.try_recv() {
                if let Event::Signal(sig) = ev {
                    self.early = Some(sig);
                    break;
                }
            }
        }
        self.early
    }

    /// Starts `expr` in a new process group. `terminal`: hand it the
    /// terminal when stdin is one and wtenv is in the foreground.
    pub fn spawn(
        &mut self,
        expr: &duct::Expression,
        program: &str,
        terminal: bool,
    ) -> Result<Pgid, SpawnError> {
        let handle = expr
            .unchecked()
            .before_spawn(|c| {
                c.process_group(0);
                Ok(())
            })
            .start()
            .map_err(|source| SpawnError {
                program: program.to_owned(),
                source,
            })?;
        let leader = *handle
            .pids()
            .first()
            .expect("a started duct command has a pid");
        let group = Group::new(leader);
        let pgid = group.pgid;
        let index = self.groups.len();
        self.groups.push(group);
        if terminal && self.terminal.is_none() {
            self.terminal = TerminalGuard::hand_over(pgid);
            self.interactive = self.terminal.is_some();
        }
        let tx = self.tx.clone();
        // The waiter owns the handle: duct reaps the leader, we only signal
        // its group.
        std::thread::Builder::new()
            .name(format!("wtenv-wait-{leader}"))
            .spawn(move || {
                let status = handle.wait().map(|o| o.status);
                let _ = tx.send(Event::Exited(index, status));
            })
            .map_err(|source| SpawnError {
                program: program.to_owned(),
                source,
            })?;
        Ok(pgid)
    }

    /// Stops every child (SIGTERM, SIGKILL after the grace), e.g. when a
    /// later service of `up` could not be spawned.
    pub fn stop(&mut self) {
        let action = self.escalation.stop(Instant::now());
        self.apply(action);
    }

    /// Supervises until every group is gone. `stop_all_on_exit`: one
    /// leader exiting stops the others (`up`). `settled` runs once, when
    /// the children have run for [`SETTLE`] and none has ended.
    pub fn wait(mut self, stop_all_on_exit: bool, settled: impl FnOnce()) -> Report {
        let mut settled = Some(settled);
        let settle_at = Instant::now() + SETTLE;
        let mut report = Report {
            exits: vec![None; self.groups.len()],
            first: None,
            interrupted: None,
            killed: false,
        };
        if let Some(sig) = self.early {
            let action = self.escalation.on_signal(sig, Instant::now());
            self.apply(action);
        }
        loop {
            let now = Instant::now();
            self.sweep(now);
            if self.groups.iter().all(|g| g.done) {
                break;
            }
            let action = self.escalation.on_tick(now);
            self.apply(action);
            if settled.is_some() && now >= settle_at {
                if self.groups.iter().all(|g| !g.exited)
                    && let Some(f) = settled.take()
                {
                    f();
                }
                settled = None;
            }
            let polling = self.groups.iter().any(|g| g.exited && !g.done);
            let mut timeout = match (polling, self.escalation.deadline()) {
                (true, _) => POLL,
                (false, Some(d)) => d
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
                (false, None) => Duration::from_secs(3600),
            };
            if settled.is_some() {
                timeout = timeout.min(settle_at.saturating_duration_since(now));
            }
            match self.rx.recv_timeout(timeout) {
                Ok(Event::Signal(sig)) => {
                    let action = self.escalation.on_signal(sig, Instant::now());
                    tracing::info!(?sig, ?action, "signal received");
                    self.apply(action);
                }
                Ok(Event::Exited(i, status)) => {
                    let status = status.unwrap_or_else(|e| {
                        tracing::warn!("could not wait for pid {}: {e}", self.groups[i].leader);
                        ExitStatus::from_raw(exit::FAILURE as i32 * 256)
                    });
                    tracing::info!(leader = self.groups[i].leader, ?status, "leader exited");
                    report.exits[i] = Some(status);
                    self.groups[i].exited = true;
                    if i == 0 || self.groups.len() == 1 {
                        // The terminal goes back to wtenv as soon as the
                        // foreground child is gone.
                        self.terminal = None;
                    }
                    if !self.escalation.stopping() && report.first.is_none() {
                        report.first = Some(i);
                        if stop_all_on_exit {
                            let action = self.escalation.stop(Instant::now());
                            self.apply(action);
                        }
                    }
                }
                Ok(Event::Child) => self.follow_stop(),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.terminal = None;
        report.interrupted = self.escalation.interrupted();
        report.killed = self.escalation.killed();
        report
    }

    /// Job control, as a shell would see it: when the interactive child is
    /// stopped (Ctrl-Z, or SIGTTIN after `bg`), wtenv takes the terminal
    /// back and stops itself, so the shell gets its prompt; when the shell
    /// continues wtenv (`fg`), the child gets the terminal back and SIGCONT.
    fn follow_stop(&mut self) {
        let Some(g) = self.groups.first() else {
            return;
        };
        if !self.interactive || g.exited || !terminal::stopped(g.leader) {
            return;
        }
        let pgid = g.pgid;
        tracing::debug!(%pgid, "child stopped: stopping too");
        self.terminal = None;
        terminal::stop_self();
        // Continued: in the foreground again (`fg`) the child gets the
        // terminal; in the background (`bg`) it just goes on.
        self.terminal = TerminalGuard::hand_over(pgid);
        if self.terminal.is_none() {
            killpg(pgid, Signal::SIGCONT);
        }
    }

    fn apply(&mut self, action: Action) {
        let sig = match action {
            Action::Nothing => return,
            Action::Signal(sig) => sig,
            Action::Kill => Signal::SIGKILL,
        };
        for g in &self.groups {
            tracing::debug!(pgid = %g.pgid, ?sig, "signalling group");
            g.signal(sig);
        }
    }

    /// The final sweep of groups whose leader exited: reap orphans, then
    /// SIGTERM what is left, SIGKILL after the grace.
    fn sweep(&mut self, now: Instant) {
        let leaders: BTreeSet<u32> = self
            .groups
            .iter()
            .filter(|g| !g.exited)
            .map(|g| g.leader)
            .collect();
        let orphans = reap::reap_orphans(&leaders);
        let grace = self.escalation.grace();
        let killed = self.escalation.killed();
        for g in self.groups.iter_mut().filter(|g| g.exited && !g.done) {
            // With no orphan among our children, an exited leader's group
            // is empty (see `reap_orphans`): no /proc scan needed.
            let members = if orphans {
                process::group_members(g.pgid.as_raw())
            } else {
                Vec::new()
            };
            if members.is_empty() {
                g.done = true;
                continue;
            }
            if !g.sweeping {
                tracing::info!(pgid = %g.pgid, ?members, "leader gone, sweeping its group");
                g.sweeping = true;
                g.sweep_deadline = Some(now + grace);
                killpg(
                    g.pgid,
                    if killed {
                        Signal::SIGKILL
                    } else {
                        Signal::SIGTERM
                    },
                );
            } else if g.sweep_deadline.is_some_and(|d| now >= d) {
                g.sweep_deadline = None;
                killpg(g.pgid, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.signals.close();
    }
}
