//! The supervisor: starts children in their own groups and runs the loop
//! that forwards signals, escalates, sweeps and follows job control until
//! every group is gone.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::POLL;
use super::escalation::{Action, Escalation, Report};
use super::group::{Group, Pgid};
use super::notice::{self, Notice};
use super::reap;
use super::signal::{Event, Listener, Signal, Waker};
use super::spawn::{self, SpawnError};
use super::terminal::{self, TerminalGuard, Tty};
use super::tree;
use crate::exit;
use crate::process;
use crate::sockets::ExecReport;

mod sweep;

/// How often an interactive child without the terminal checks whether
/// wtenv became the foreground job (one `tcgetpgrp`).
const FOREGROUND_POLL: Duration = Duration::from_millis(100);

/// How long a child's stop on the terminal waits for the shell to make
/// wtenv the foreground job before wtenv stops too (see `follow_stop`):
/// a shell hands the terminal over within a millisecond of reading `fg`.
const TTY_STOP_PATIENCE: Duration = Duration::from_millis(100);

/// How long a spawn waits for a socket hand-off's child to exec its
/// command (a wtenv process start: milliseconds), to say why it could not.
const EXEC_PATIENCE: Duration = Duration::from_secs(10);

/// Runs children and stops them, see the module doc.
pub struct Supervisor {
    signals: Listener,
    groups: Vec<Group>,
    /// Each group's leader, by spawn order, until it is reaped: the loop
    /// polls them when SIGCHLD wakes it (no waiter thread).
    leaders: Vec<Option<duct::Handle>>,
    /// SIGCHLD arrived since the last sweep: orphans may wait to be
    /// reaped.
    child_event: bool,
    /// The last sweep read /proc and found no child of ours at all
    /// (forgotten when a group is spawned or a sweep does not look): the
    /// teardown's [`settle`](Self::settle) then need not look again.
    childless: Option<reap::Childless>,
    escalation: Escalation,
    /// The sweep of the tree's strays (processes of the tree in groups of
    /// their own), once every leader has exited: see [`tree`].
    strays: tree::Sweep,
    /// The terminal, lent to the (single) child's group.
    terminal: Option<TerminalGuard>,
    /// wtenv's controlling terminal, when the child is meant to have it
    /// (wtenv was its foreground group at the spawn, or stdin is a
    /// terminal): follow the child's job-control stops, and hand it the
    /// terminal whenever wtenv is in the foreground.
    tty: Option<Tty>,
    /// A signal that arrived before any child was spawned.
    early: Option<Signal>,
    /// The line that says wtenv waits for the grace (see [`notice`]).
    notice: Notice,
    /// Set while wtenv stops its groups itself (Ctrl-Z under `up`), from
    /// before its SIGTSTP to after its SIGCONT: a stop seen meanwhile is
    /// its own (see [`Supervisor::own_stop`]).
    own_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Supervisor {
    /// Installs the signal handlers and (Linux) makes wtenv a subreaper.
    /// Call before anything that must be cleaned up.
    pub fn new(grace: Duration) -> io::Result<Supervisor> {
        let signals = Listener::start()?;
        reap::become_subreaper();
        Ok(Supervisor {
            signals,
            groups: Vec::new(),
            leaders: Vec::new(),
            child_event: false,
            childless: None,
            escalation: Escalation::new(grace),
            strays: tree::Sweep::default(),
            terminal: None,
            tty: None,
            early: None,
            notice: Notice::default(),
            own_stop: Default::default(),
        })
    }

    /// A signal received before any child started (the caller then starts
    /// nothing and dies of it after cleanup).
    pub fn pending_signal(&mut self) -> Option<Signal> {
        if self.early.is_none() {
            self.early = self.signals.pending().into_iter().find_map(|ev| match ev {
                Event::Signal(sig) => Some(sig),
                _ => None,
            });
        }
        self.early
    }

    /// Starts `expr` in a new process group. `program` names it in an
    /// error, `command` is its first word, `dir` the directory `expr`
    /// starts it in, when it names one (see [`SpawnError`]).
    /// `terminal`: hand it wtenv's controlling terminal whenever wtenv is
    /// that terminal's foreground group (see [`Tty`]). `exec`: a socket
    /// hand-off's report ([`crate::sockets::handoff`]): a command its
    /// `__listen-exec` could not exec is a [`SpawnError`] too, its process
    /// reaped, no group left. The expression is dropped once started, with
    /// the caller's copies of what it hands the child (pipes' write ends,
    /// the pair).
    pub fn spawn(
        &mut self,
        expr: duct::Expression,
        exec: Option<ExecReport>,
        program: &str,
        command: &std::ffi::OsStr,
        dir: Option<&std::path::Path>,
        terminal: bool,
    ) -> Result<Pgid, SpawnError> {
        let failed = |source| SpawnError {
            program: program.to_owned(),
            command: command.to_owned(),
            source,
            dir: dir.map(ToOwned::to_owned),
        };
        let handle = expr
            .unchecked()
            .before_spawn(|c| {
                c.process_group(0);
                spawn::start_clean(c);
                Ok(())
            })
            .start()
            .map_err(failed)?;
        drop(expr);
        if let Some(source) = exec.and_then(|e| e.failure(EXEC_PATIENCE)) {
            // It exits as soon as it has said so.
            let _ = handle.wait();
            return Err(failed(source));
        }
        let leader = *handle
            .pids()
            .first()
            .expect("a started duct command has a pid");
        let group = Group::new(leader, program);
        let pgid = group.pgid;
        let index = self.groups.len();
        self.groups.push(group);
        self.childless = None;
        // duct reaps the leader (`try_wait` in the loop); we only signal
        // its group.
        self.leaders.push(Some(handle));
        if terminal
            && index == 0
            && let Some(tty) = Tty::open()
        {
            // In the foreground, whatever stdin is (`seq 9 | wtenv run --
            // less`): the child gets the terminal now. In the background
            // with a terminal on stdin (`wtenv run ... &`): when the shell
            // brings wtenv to the foreground.
            self.terminal = tty.hand_over(pgid);
            if self.terminal.is_some() || terminal::stdin_is_terminal() {
                self.tty = Some(tty);
            }
        }
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
    /// run on: `up` restarting a service. Its strays (found below its
    /// members, before they are signalled) are stopped with it, and it is
    /// [`done`](Self::done) only once they are gone too.
    pub fn stop_group(&mut self, index: usize) {
        let grace = self.escalation.grace();
        let (strays, _) = self.group_strays(index);
        if let Some(g) = self.groups.get_mut(index)
            && !g.done
        {
            g.signal(Signal::SIGTERM);
            g.signal(Signal::SIGCONT);
            tree::signal_each(&strays, &[Signal::SIGTERM, Signal::SIGCONT]);
            g.kill_at = Some(Instant::now() + grace);
        }
    }

    /// The strays of group `index` (see [`Group::claim`]) and those
    /// claimed only now: none once it is done.
    fn group_strays(&mut self, index: usize) -> (Vec<u32>, Vec<u32>) {
        if self.groups.get(index).is_none_or(|g| g.done) {
            return Default::default();
        }
        let found = tree::strays(&self.live_groups());
        self.groups[index].claim(&found)
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

    /// A flag set while wtenv stops its groups itself (Ctrl-Z under `up`):
    /// a thread that finds a child stopped tells wtenv's stop from
    /// another by it.
    pub fn own_stop(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.own_stop.clone()
    }

    /// A handle that makes the loop take a turn at once, from any thread.
    pub fn waker(&self) -> Waker {
        self.signals.waker()
    }

    /// Supervises until every group is gone. `stop_all_on_exit`: one
    /// leader exiting stops the others. `settled` runs once, when the
    /// children have run for `settle` ([`super::SETTLE`], or none:
    /// [`super::settle_for`]) and none has ended.
    pub fn wait(
        mut self,
        stop_all_on_exit: bool,
        settle: Duration,
        settled: impl FnOnce(),
    ) -> Report {
        let mut plain = Plain {
            stop_all_on_exit,
            settled: Some(settled),
            settle_at: Instant::now() + settle,
        };
        self.drive(&mut plain)
    }

    /// Supervises until every group is gone and `policy` is finished:
    /// signals are forwarded and escalated, exited groups swept, and the
    /// policy may start and stop groups on each turn.
    pub fn drive(&mut self, policy: &mut dyn Policy) -> Report {
        let mut first = None;
        if self.tty.is_none() {
            self.signals.catch_stop();
        }
        if let Some(sig) = self.early {
            self.signalled(sig);
        }
        loop {
            let now = Instant::now();
            for (i, status) in self.reap_leaders() {
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
            self.sweep(now);
            self.kill_overdue_groups(now);
            let next = policy.turn(self, now);
            if self.groups.iter().all(|g| g.done)
                && !self.strays.left
                && (self.stopping() || policy.finished())
            {
                break;
            }
            match self.escalation.on_tick(now) {
                Action::Kill => self.kill_all_overdue(),
                action => {
                    if self.notice.due(now) && !self.escalation.killed() {
                        let lent = self.terminal.is_some();
                        notice::waiting(&self.running(), self.escalation.grace(), lent);
                    }
                    self.apply(action);
                }
            }
            self.follow_foreground();
            // A swept group is followed by SIGCHLD (every process left in
            // it descends from a child of ours, see `reap_orphans`); the
            // poll is a backstop.
            let polling = self.strays.left || self.groups.iter().any(|g| g.exited && !g.done);
            let deadlines = self
                .escalation
                .deadline()
                .into_iter()
                .chain(self.notice.deadline())
                .chain(next)
                .chain(self.groups.iter().filter_map(|g| g.kill_at));
            let mut timeout = match (polling, deadlines.min()) {
                (true, _) => POLL,
                (false, Some(d)) => d
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
                (false, None) => Duration::from_secs(3600),
            };
            if self.tty.is_some() && self.terminal.is_none() {
                timeout = timeout.min(FOREGROUND_POLL);
            }
            for event in self.signals.wait(timeout) {
                match event {
                    Event::Signal(sig) => self.signalled(sig),
                    Event::Child => {
                        self.child_event = true;
                        self.follow_stop();
                    }
                    Event::Stop => self.stop_all(),
                    Event::Continued => self.resume(),
                }
            }
        }
        self.terminal = None;
        self.settle();
        Report {
            exits: self.groups.iter().map(|g| g.status).collect(),
            first,
            interrupted: self.escalation.interrupted(),
            killed: self.escalation.killed(),
        }
    }

    /// wtenv received `sig`: escalate; the first one makes the waiting
    /// line due (see [`notice`]).
    fn signalled(&mut self, sig: Signal) {
        let now = Instant::now();
        let first = self.escalation.interrupted().is_none();
        let action = self.escalation.on_signal(sig, now);
        tracing::info!(?sig, ?action, "signal received");
        if first && self.escalation.interrupted().is_some() {
            self.notice.first_signal(now);
        }
        self.apply(action);
    }

    /// What still runs, as messages name it: the groups not gone, or,
    /// when only the tree's strays are left, every group (they are its).
    fn running(&self) -> Vec<String> {
        self.names(self.groups.iter().all(|g| g.done))
    }

    /// The groups' names, each once: `all` of them, or those not gone.
    fn names(&self, all: bool) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for g in self.groups.iter().filter(|g| all || !g.done) {
            if !names.contains(&g.name) {
                names.push(g.name.clone());
            }
        }
        names
    }

    /// Job control, as a shell would see it. The interactive child stopped:
    /// - by SIGTTIN/SIGTTOU (it used the terminal from the background)
    ///   while wtenv is the terminal's foreground group (`fg` of a job that
    ///   was running), or just before wtenv lent it the terminal: it gets
    ///   the terminal and goes on;
    /// - otherwise (Ctrl-Z, or the terminal is the shell's): wtenv takes
    ///   the terminal back and stops its own group (itself and the rest of
    ///   the shell's job: a pipeline, a `bash -c`), so the shell shows the
    ///   job stopped and gets its prompt; `fg`/`bg` continue it
    ///   ([`resume`](Self::resume)).
    fn follow_stop(&mut self) {
        let (Some(g), Some(tty)) = (self.groups.first(), &self.tty) else {
            return;
        };
        if g.exited {
            return;
        }
        let Some(sig) = terminal::stopped(g.leader) else {
            return;
        };
        let on_tty = matches!(sig, Signal::SIGTTIN | Signal::SIGTTOU);
        // The terminal already lent: a stop from just before the hand-over
        // (the child read at once), which the hand-over's SIGCONT undid.
        // The keys of a `fg` typed for the shell also wake a child that
        // reads the terminal from the background: its SIGTTIN races the
        // shell's hand-over of the terminal to wtenv, and a job that
        // stopped itself in that instant would have the shell take the
        // stop for the answer to `fg` (it says "Stopped" again). So a tty
        // stop waits a moment for that hand-over first.
        if on_tty && (self.terminal.is_some() || tty.becomes_foreground(TTY_STOP_PATIENCE)) {
            tracing::debug!(pgid = %g.pgid, ?sig, "child stopped on the terminal: handing it over");
            self.resume();
            return;
        }
        tracing::debug!(pgid = %g.pgid, ?sig, "child stopped: stopping too");
        self.terminal = None;
        terminal::stop_job();
        self.resume();
    }

    /// The shell can make wtenv the foreground job without continuing it
    /// (`fg` of a running job sends no SIGCONT): then the interactive
    /// child, still in the background, gets the terminal now.
    fn follow_foreground(&mut self) {
        if self.terminal.is_none()
            && self.groups.first().is_some_and(|g| !g.exited)
            && self.tty.as_ref().is_some_and(Tty::is_foreground)
        {
            self.resume();
        }
    }

    /// wtenv got Ctrl-Z itself (its children do not have the terminal, as
    /// under `up`): every group is stopped, then wtenv, so the shell shows
    /// the job stopped (as a terminal's Ctrl-Z, it leaves the tree's jobs in
    /// groups of their own running: stopping one would end a `set -m`
    /// shell's `wait`); `fg`/`bg` continue them all ([`resume`](Self::resume)).
    fn stop_all(&mut self) {
        tracing::debug!("stopped: stopping every group");
        self.own_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for g in self.groups.iter().filter(|g| !g.done) {
            g.signal(Signal::SIGTSTP);
        }
        self.terminal = None;
        // SIGTSTP is caught here, so only SIGSTOP stops wtenv itself.
        terminal::stop_self();
        self.resume();
    }

    /// wtenv was continued (`fg`, `bg`), or woke from its own stop: an
    /// interactive child gets the terminal if wtenv is now the terminal's
    /// foreground group, and every group goes on. Idempotent: the SIGCONT
    /// that ends a stop arrives here again as an event.
    fn resume(&mut self) {
        if self.terminal.is_none()
            && let Some(tty) = &self.tty
            && let Some(g) = self.groups.first()
            && !g.exited
        {
            self.terminal = tty.hand_over(g.pgid);
        }
        for g in self.groups.iter().filter(|g| !g.done) {
            g.signal(Signal::SIGCONT);
        }
        self.own_stop
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every group is gone; what the tree left among our children may still
    /// be dying (a zombie whose threads still exit holds its sockets): wait
    /// for it, bounded by the grace, so the ports are released only once
    /// nothing of the tree can accept on them. Live processes that left
    /// their group on purpose (a daemon's own session) are not waited for.
    ///
    /// When the sweep that found the last group gone saw no child of ours
    /// at all, and nothing was spawned since, there is none now either
    /// (see [`reap::Childless`]): /proc is not read again.
    fn settle(&mut self) {
        if self.childless.take().is_some_and(reap::Childless::still) {
            return;
        }
        let deadline = Instant::now() + self.escalation.grace();
        loop {
            let Some(left) = reap::reap_orphans(&BTreeSet::new()).map(|r| r.left) else {
                return;
            };
            let dying: Vec<u32> = left
                .into_iter()
                .filter(|&p| process::is_zombie(p))
                .collect();
            if dying.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    ?dying,
                    "processes of the tree still exiting after the grace"
                );
                return;
            }
            // A zombie becomes reapable with a SIGCHLD: no need to sleep
            // the whole poll.
            self.signals.wait(POLL);
        }
    }

    /// The leaders that exited since the last turn, with their status:
    /// duct reaps them (one `waitid` each, no waiter thread).
    fn reap_leaders(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut out = Vec::new();
        for (i, slot) in self.leaders.iter_mut().enumerate() {
            let Some(handle) = slot else { continue };
            let status = match handle.try_wait() {
                Ok(None) => continue,
                Ok(Some(output)) => output.status,
                Err(e) => {
                    tracing::warn!("could not wait for pid {}: {e}", self.groups[i].leader);
                    ExitStatus::from_raw(exit::FAILURE as i32 * 256)
                }
            };
            *slot = None;
            out.push((i, status));
        }
        out
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
            if sig != Signal::SIGKILL {
                // A stopped group (Ctrl-Z) acts on the signal only once
                // continued; SIGKILL needs no help.
                g.signal(Signal::SIGCONT);
            }
        }
        // The tree's processes in groups of their own get it too.
        let signals: &[Signal] = if sig == Signal::SIGKILL {
            &[sig]
        } else {
            &[sig, Signal::SIGCONT]
        };
        tree::signal(&self.live_groups(), signals);
    }

    /// The ids of the groups that may still have members.
    fn live_groups(&self) -> BTreeSet<u32> {
        self.groups
            .iter()
            .filter(|g| !g.done)
            .map(|g| g.pgid.as_raw())
            .collect()
    }
}

impl Drop for Supervisor {
    /// A supervisor that unwinds (panic) must not leave the tree: the
    /// strays get SIGKILL, found while the groups still live, before each
    /// `Group`'s guard kills its group. Nothing is read when every group
    /// is gone and no stray was left (`run -- true`).
    fn drop(&mut self) {
        if self.groups.iter().any(|g| !g.done) || self.strays.left {
            tree::signal(&self.live_groups(), &[Signal::SIGKILL]);
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
/// exit stops all; `settled` runs once after the settle time.
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
