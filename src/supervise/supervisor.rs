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

    /// How many groups were spawned: the next spawn's index.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Stops one group (SIGTERM, SIGKILL after the grace) while the others
    /// run on: `up` restarting a service.
    pub fn stop_group(&mut self, index: usize) {
        let grace = self.escalation.grace();
        if let Some(g) = self.groups.get_mut(index)
            && !g.done
        {
            g.signal(Signal::SIGTERM);
            g.kill_at = Some(Instant::now() + grace);
        }
    }

    /// Whether group `index` is gone: its leader exited and nothing of
    /// the group is left.
    pub fn done(&self, index: usize) -> bool {
        self.groups.get(index).is_none_or(|g| g.done)
    }

    /// Whether every group is being stopped (a signal, [`Supervisor::stop`]).
    pub fn stopping(&self) -> bool {
        self.escalation.stopping()
    }

    /// A handle that makes the loop take a turn at once, from any thread.
    pub fn waker(&self) -> Waker {
        Waker(self.tx.clone())
    }

    /// Supervises until every group is gone. `stop_all_on_exit`: one
    /// leader exiting stops the others. `settled` runs once, when the
    /// children have run for [`SETTLE`] and none has ended.
    pub fn wait(mut self, stop_all_on_exit: bool, settled: impl FnOnce()) -> Report {
        let mut plain = Plain {
            stop_all_on_exit,
            settled: Some(settled),
            settle_at: Instant::now() + SETTLE,
        };
        self.drive(&mut plain)
    }

    /// Supervises until every group is gone and `policy` is finished:
    /// signals are forwarded and escalated, exited groups swept, and the
    /// policy may start and stop groups on each turn.
    pub fn drive(&mut self, policy: &mut dyn Policy) -> Report {
        let mut first = None;
        if let Some(sig) = self.early {
            let action = self.escalation.on_signal(sig, Instant::now());
            self.apply(action);
        }
        loop {
            let now = Instant::now();
            self.sweep(now);
            for g in self.groups.iter_mut().filter(|g| !g.done) {
                if g.kill_at.is_some_and(|d| now >= d) {
                    g.kill_at = None;
                    g.signal(Signal::SIGKILL);
                }
            }
            let next = policy.turn(self, now);
            if self.groups.iter().all(|g| g.done) && (self.stopping() || policy.finished()) {
                break;
            }
            let action = self.escalation.on_tick(now);
            self.apply(action);
            let polling = self.groups.iter().any(|g| g.exited && !g.done);
            let deadlines = self
                .escalation
                .deadline()
                .into_iter()
                .chain(next)
                .chain(self.groups.iter().filter_map(|g| g.kill_at));
            let timeout = match (polling, deadlines.min()) {
                (true, _) => POLL,
                (false, Some(d)) => d
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
                (false, None) => Duration::from_secs(3600),
            };
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
                    self.groups[i].status = Some(status);
                    self.groups[i].exited = true;
                    if i == 0 || self.groups.len() == 1 {
                        // The terminal goes back to wtenv as soon as the
                        // foreground child is gone.
                        self.terminal = None;
                    }
                    if !self.escalation.stopping() {
                        if first.is_none() && self.groups[i].kill_at.is_none() {
                            first = Some(i);
                        }
                        if policy.exited(self, i, status) {
                            let action = self.escalation.stop(Instant::now());
                            self.apply(action);
                        }
                    }
                }
                Ok(Event::Child) => self.follow_stop(),
                Ok(Event::Wake) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.terminal = None;
        Report {
            exits: self.groups.iter().map(|g| g.status).collect(),
            first,
            interrupted: self.escalation.interrupted(),
            killed: self.escalation.killed(),
        }
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

/// What drives [`Supervisor::drive`] beyond signals and sweeps: `up`'s
/// start order, health checks and restarts.
pub trait Policy {
    /// Group `index` (spawn order) exited with `status` while no stop of
    /// all was under way. `true`: stop every group.
    fn exited(&mut self, sup: &mut Supervisor, index: usize, status: ExitStatus) -> bool;
    /// One turn of the loop (after an event or a timeout): may start or
    /// stop groups. Returns when it wants its next turn at the latest.
    fn turn(&mut self, sup: &mut Supervisor, now: Instant) -> Option<Instant>;
    /// Whether the loop may end once every group is gone (nothing left to
    /// start or restart).
    fn finished(&self) -> bool;
}

/// `run`'s policy (and `wait`'s): nothing is restarted; optionally one
/// exit stops all; `settled` runs once after [`SETTLE`].
struct Plain<F: FnOnce()> {
    stop_all_on_exit: bool,
    settled: Option<F>,
    settle_at: Instant,
}

impl<F: FnOnce()> Policy for Plain<F> {
    fn exited(&mut self, _: &mut Supervisor, _: usize, _: ExitStatus) -> bool {
        self.stop_all_on_exit
    }

    fn turn(&mut self, sup: &mut Supervisor, now: Instant) -> Option<Instant> {
        self.settled.as_ref()?;
        if now < self.settle_at {
            return Some(self.settle_at);
        }
        if sup.groups.iter().all(|g| !g.exited)
            && let Some(f) = self.settled.take()
        {
            f();
        }
        self.settled = None;
        None
    }

    fn finished(&self) -> bool {
        true
    }
}

/// Makes [`Supervisor::drive`] take a turn now (see [`Supervisor::waker`]).
#[derive(Clone)]
pub struct Waker(Sender<Event>);

impl Waker {
    pub fn wake(&self) {
        let _ = self.0.send(Event::Wake);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.signals.close();
    }
}
