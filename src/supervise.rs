//! Supervision of `wtenv run` and `wtenv up` (SPEC "Supervision"): children
//! that never leave a process behind.
//!
//! Contract:
//! - Each child runs in its own process group (duct's `before_spawn` with
//!   std's `process_group(0)`: no `pre_exec`, no unsafe). Its [`Pgid`] is its
//!   pid, known at spawn; we never `getpgid` after the fact, and we always
//!   signal the group (`killpg`), never only the leader.
//! - The signal thread (signal-hook) is registered in [`Supervisor::new`],
//!   before any spawn, so no SIGINT/SIGTERM/SIGHUP/SIGQUIT can kill wtenv
//!   between the spawn and the loop. Those signals are forwarded to every
//!   group once; after the grace the groups get SIGKILL; a second SIGINT
//!   kills at once ([`Escalation`], a plain state machine).
//! - After a leader exits, what is left of its group (the server `npm start`
//!   left behind) gets SIGTERM, then SIGKILL after the grace: a group is
//!   done only when no live member is left.
//! - On Linux wtenv is a child subreaper: orphans of the tree become our
//!   children, so they are reaped here (never left as zombies) and swept.
//! - The terminal is handed to the child's group when stdin is a terminal
//!   and wtenv is in the foreground ([`TerminalGuard`]), and taken back when
//!   the leader exits (with SIGTTOU blocked, so taking it back from the
//!   background cannot stop us). Job control follows the child: when it is
//!   stopped (Ctrl-Z), wtenv takes the terminal back and stops itself, so
//!   the shell shows the job stopped; `fg` hands the terminal back.
//! - A panic while children run SIGKILLs their groups ([`Group`]'s `Drop`).
//!
//! Races: a group id is signalled only while the group is known to have a
//! member (the leader not yet reaped, or a live member seen in the last
//! poll), so a reused pgid is practically never hit.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::exit::{self, Outcome};
use crate::process;

/// `--grace` default: how long a group has between SIGTERM (or the
/// forwarded signal) and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How often group membership is polled while a group is being swept.
const POLL: Duration = Duration::from_millis(10);

/// How long children run before [`Supervisor::wait`]'s `settled` callback
/// fires: a command that ends sooner (`wtenv run -- true`) skips the
/// registry write it would do (the pgid record), which costs more than the
/// command itself.
pub const SETTLE: Duration = Duration::from_millis(50);

/// A process group id. Distinct from a pid on purpose: a pgid is signalled
/// with `killpg`, a pid never is by this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pgid(u32);

impl Pgid {
    pub fn as_raw(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Pgid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The signals wtenv forwards to its children.
pub const FORWARDED: [i32; 4] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
];

/// What the supervisor does next, decided by [`Escalation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Send this signal to every live group.
    Signal(i32),
    /// SIGKILL every live group.
    Kill,
}

/// The stop state machine: signal → grace → SIGKILL, a second Ctrl-C
/// kills at once (watchexec's `GracefulStop`). Plain values, no I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    grace: Duration,
    /// When the groups get SIGKILL, once stopping has begun.
    deadline: Option<Instant>,
    killed: bool,
    /// The first signal wtenv itself received.
    interrupted: Option<i32>,
}

impl Escalation {
    pub fn new(grace: Duration) -> Escalation {
        Escalation {
            grace,
            deadline: None,
            killed: false,
            interrupted: None,
        }
    }

    /// wtenv received `sig`.
    pub fn on_signal(&mut self, sig: i32, now: Instant) -> Action {
        if self.killed {
            return Action::Nothing;
        }
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            self.deadline = Some(
                self.deadline
                    .map_or(now + self.grace, |d| d.min(now + self.grace)),
            );
            return Action::Signal(sig);
        }
        if sig == signal_hook::consts::SIGINT {
            self.killed = true;
            return Action::Kill;
        }
        Action::Nothing
    }

    /// wtenv decided to stop the children itself (a service of `up` died).
    pub fn stop(&mut self, now: Instant) -> Action {
        if self.deadline.is_some() || self.killed {
            return Action::Nothing;
        }
        self.deadline = Some(now + self.grace);
        Action::Signal(signal_hook::consts::SIGTERM)
    }

    /// Time passed.
    pub fn on_tick(&mut self, now: Instant) -> Action {
        match self.deadline {
            Some(d) if !self.killed && now >= d => {
                self.killed = true;
                Action::Kill
            }
            _ => Action::Nothing,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        if self.killed { None } else { self.deadline }
    }

    pub fn stopping(&self) -> bool {
        self.deadline.is_some() || self.killed
    }

    pub fn killed(&self) -> bool {
        self.killed
    }

    pub fn interrupted(&self) -> Option<i32> {
        self.interrupted
    }
}

/// How a supervised set of children ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Each leader's exit, by spawn order (`None`: never seen, which only a
    /// panic could cause).
    pub exits: Vec<Option<ExitStatus>>,
    /// The first leader that exited on its own, before any stop began.
    pub first: Option<usize>,
    /// The first signal wtenv received.
    pub interrupted: Option<i32>,
    /// Whether the groups had to be SIGKILLed.
    pub killed: bool,
}

/// The outcome of one exit status: its code, or death by its signal.
pub fn outcome_of(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Code(code.clamp(0, 255) as u8),
        (None, Some(sig)) => Outcome::Signal(sig),
        (None, None) => Outcome::Code(exit::FAILURE),
    }
}

/// `run`: the child's status; a child we had to SIGKILL after wtenv was
/// signalled ends as that signal (SIGTERM → 143), not as SIGKILL.
pub fn run_outcome(report: &Report) -> Outcome {
    let status = report.exits.first().copied().flatten();
    match (status, report.interrupted) {
        (Some(s), Some(sig))
            if report.killed && s.signal() == Some(signal_hook::consts::SIGKILL) =>
        {
            Outcome::Signal(sig)
        }
        (Some(s), _) => outcome_of(s),
        (None, Some(sig)) => Outcome::Signal(sig),
        (None, None) => Outcome::Code(exit::FAILURE),
    }
}

/// `up`: the status of the service that ended first on its own; otherwise
/// (Ctrl-C, SIGTERM) death by the signal wtenv received.
pub fn up_outcome(report: &Report) -> Outcome {
    if let Some(i) = report.first
        && let Some(s) = report.exits[i]
    {
        return outcome_of(s);
    }
    match report.interrupted {
        Some(sig) => Outcome::Signal(sig),
        None => Outcome::SUCCESS,
    }
}

/// Why a child could not be started, with the shell's exit codes.
#[derive(Debug)]
pub struct SpawnError {
    pub program: String,
    pub source: io::Error,
}

impl SpawnError {
    /// 127 not found, 126 found but not executable (as a shell says).
    pub fn outcome(&self) -> Outcome {
        match self.source.kind() {
            io::ErrorKind::NotFound => Outcome::Code(exit::NOT_FOUND),
            _ => Outcome::Code(exit::NOT_EXECUTABLE),
        }
    }

    /// `could not run foo: command not found`.
    pub fn message(&self) -> String {
        let why = match self.source.kind() {
            io::ErrorKind::NotFound => "command not found".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied (not executable)".to_owned(),
            _ => self.source.to_string(),
        };
        format!("could not run {}: {why}", self.program)
    }
}

enum Event {
    Signal(i32),
    /// SIGCHLD: an orphan may be waiting to be reaped.
    Child,
    Exited(usize, io::Result<ExitStatus>),
}

/// One supervised child and its group.
struct Group {
    leader: u32,
    pgid: Pgid,
    exited: bool,
    /// Live members were seen after the leader exited (being swept).
    sweeping: bool,
    /// When the left-behind members get SIGKILL.
    sweep_deadline: Option<Instant>,
    done: bool,
}

impl Group {
    fn signal(&self, sig: i32) {
        if !self.done {
            imp::killpg(self.pgid, sig);
        }
    }
}

impl Drop for Group {
    /// A supervisor that unwinds (panic) must not leave its children: the
    /// whole group dies with it.
    fn drop(&mut self) {
        if !self.done {
            imp::killpg(self.pgid, signal_hook::consts::SIGKILL);
        }
    }
}

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
    early: Option<i32>,
}

impl Supervisor {
    /// Registers the signal thread and (Linux) makes wtenv a subreaper.
    /// Call before anything that must be cleaned up.
    pub fn new(grace: Duration) -> io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let mut signals = signal_hook::iterator::Signals::new(FORWARDED)?;
        // Orphans re-parented to us are reaped when they die, not at the
        // next unrelated event.
        signals.add_signal(signal_hook::consts::SIGCHLD)?;
        let handle = signals.handle();
        let sig_tx = tx.clone();
        std::thread::Builder::new()
            .name("wtenv-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let event = if sig == signal_hook::consts::SIGCHLD {
                        Event::Child
                    } else {
                        Event::Signal(sig)
                    };
                    if sig_tx.send(event).is_err() {
                        break;
                    }
                }
            })?;
        imp::become_subreaper();
        Ok(Supervisor {
            tx,
            rx,
            signals: handle,
            groups: Vec::new(),
            escalation: Escalation::new(grace),
            terminal: None,
            interactive: false,
            early: None,
        })
    }

    /// A signal received before any child started (the caller then starts
    /// nothing and dies of it after cleanup).
    pub fn pending_signal(&mut self) -> Option<i32> {
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
        let pgid = Pgid(leader);
        let index = self.groups.len();
        self.groups.push(Group {
            leader,
            pgid,
            exited: false,
            sweeping: false,
            sweep_deadline: None,
            done: false,
        });
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
                    tracing::info!(sig, ?action, "signal received");
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
        if !self.interactive || g.exited || !imp::stopped(g.leader) {
            return;
        }
        let pgid = g.pgid;
        tracing::debug!(%pgid, "child stopped: stopping too");
        self.terminal = None;
        imp::stop_self();
        // Continued: in the foreground again (`fg`) the child gets the
        // terminal; in the background (`bg`) it just goes on.
        self.terminal = TerminalGuard::hand_over(pgid);
        if self.terminal.is_none() {
            imp::killpg(pgid, signal_hook::consts::SIGCONT);
        }
    }

    fn apply(&mut self, action: Action) {
        let sig = match action {
            Action::Nothing => return,
            Action::Signal(sig) => sig,
            Action::Kill => signal_hook::consts::SIGKILL,
        };
        for g in &self.groups {
            tracing::debug!(pgid = %g.pgid, sig, "signalling group");
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
        let orphans = imp::reap_orphans(&leaders);
        let grace = self.escalation.grace;
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
                imp::killpg(
                    g.pgid,
                    if killed {
                        signal_hook::consts::SIGKILL
                    } else {
                        signal_hook::consts::SIGTERM
                    },
                );
            } else if g.sweep_deadline.is_some_and(|d| now >= d) {
                g.sweep_deadline = None;
                imp::killpg(g.pgid, signal_hook::consts::SIGKILL);
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.signals.close();
    }
}

/// Where `execvp` would find `program` on `path`, when that is certain: a
/// bare name found as an executable file before any empty (current
/// directory) entry. `None`: leave the search to exec (names with a `/`,
/// nothing found, ambiguity), which then reports 127/126 itself.
///
/// Why: duct passes the whole environment, PATH included, and std then
/// forks instead of using posix_spawn for a bare name; an absolute path
/// lets it spawn without copying wtenv's address space.
pub fn resolve_program(
    program: &std::ffi::OsStr,
    path: Option<&std::ffi::OsStr>,
) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if program.is_empty() || program.as_bytes().contains(&b'/') {
        return None;
    }
    for dir in std::env::split_paths(path?) {
        if dir.as_os_str().is_empty() {
            return None;
        }
        let candidate = dir.join(program);
        if candidate.is_file()
            && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        {
            return Some(candidate);
        }
    }
    None
}

/// The terminal lent to a child's group; given back on drop.
pub struct TerminalGuard {
    ours: nix::unistd::Pid,
}

impl TerminalGuard {
    /// Hands the terminal on stdin to `pgid` if stdin is a terminal and
    /// wtenv's group is its foreground group.
    fn hand_over(pgid: Pgid) -> Option<TerminalGuard> {
        use std::io::IsTerminal;
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let ours = nix::unistd::getpgrp();
        if nix::unistd::tcgetpgrp(&stdin).ok()? != ours {
            return None;
        }
        let child = nix::unistd::Pid::from_raw(pgid.as_raw() as i32);
        if let Err(e) = nix::unistd::tcsetpgrp(&stdin, child) {
            tracing::debug!("could not hand the terminal to group {pgid}: {e}");
            return None;
        }
        // The child may have read the terminal before it was its own and
        // been stopped by SIGTTIN: let it go on.
        imp::killpg(pgid, signal_hook::consts::SIGCONT);
        Some(TerminalGuard { ours })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        use nix::sys::signal::{SigSet, Signal};
        // We are a background process now: tcsetpgrp would stop us with
        // SIGTTOU unless it is blocked (POSIX: then the call proceeds).
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let old = ttou.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        if let Err(e) = nix::unistd::tcsetpgrp(std::io::stdin(), self.ours) {
            tracing::debug!("could not take the terminal back: {e}");
        }
        if let Ok(old) = old {
            let _ = old.thread_set_mask();
        }
    }
}

#[cfg(unix)]
mod imp {
    use std::collections::BTreeSet;

    use super::Pgid;

    pub fn killpg(pgid: Pgid, sig: i32) {
        let Ok(sig) = nix::sys::signal::Signal::try_from(sig) else {
            return;
        };
        let pg = nix::unistd::Pid::from_raw(pgid.as_raw() as i32);
        if let Err(e) = nix::sys::signal::killpg(pg, sig) {
            tracing::debug!(%pgid, ?sig, "killpg: {e}");
        }
    }

    /// Whether our child `pid` is stopped (job control). Consumes only
    /// the stop report: the exit stays for duct's waiter.
    #[cfg(target_os = "linux")]
    pub fn stopped(pid: u32) -> bool {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG;
        let id = Id::Pid(nix::unistd::Pid::from_raw(pid as i32));
        matches!(waitid(id, flags), Ok(WaitStatus::Stopped(..)))
    }

    /// Without waitid(2) in nix here: stops are not followed.
    #[cfg(not(target_os = "linux"))]
    pub fn stopped(_pid: u32) -> bool {
        false
    }

    /// Stops wtenv the way Ctrl-Z would; returns once continued. A process
    /// group the kernel considers orphaned ignores it: then we go on.
    pub fn stop_self() {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTSTP);
    }

    /// Linux: orphans of the tree are re-parented to us, not to init, so we
    /// can reap and sweep them.
    pub fn become_subreaper() {
        #[cfg(target_os = "linux")]
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("could not become a child subreaper: {e}");
        }
    }

    /// Reaps exited children that are not `leaders` (duct reaps those).
    /// Returns whether an orphan may still live: as a subreaper, every live
    /// process of an exited leader's group descends from us through a live
    /// child of ours (its dead ancestors' orphans were re-parented to us),
    /// so "no child but running leaders" proves those groups empty. Where
    /// that cannot be read (not Linux, no /proc children file): `true`.
    pub fn reap_orphans(leaders: &BTreeSet<u32>) -> bool {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let Some(children) = children() else {
            return true;
        };
        let mut live = false;
        for pid in children {
            if leaders.contains(&pid) {
                continue;
            }
            // Only zombies are reaped: a live child is left alone (WNOHANG).
            match waitpid(
                nix::unistd::Pid::from_raw(pid as i32),
                Some(WaitPidFlag::WNOHANG),
            ) {
                Ok(WaitStatus::StillAlive) => live = true,
                Ok(_) => {}
                // Not ours to wait for (a leader duct is reaping): count it.
                Err(_) => live = true,
            }
        }
        live
    }

    /// Our children (leaders and re-parented orphans), if /proc tells.
    fn children() -> Option<Vec<u32>> {
        #[cfg(target_os = "linux")]
        {
            let parse = |text: String| -> Vec<u32> {
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok())
                    .collect()
            };
            // The main thread's file must exist (CONFIG_PROC_CHILDREN);
            // another thread's may vanish as the thread exits (a waiter).
            let main = std::process::id().to_string();
            let path = format!("/proc/self/task/{main}/children");
            let mut out = parse(std::fs::read_to_string(path).ok()?);
            for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
                if t.file_name().to_str() == Some(main.as_str()) {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(parse(text));
                }
            }
            Some(out)
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_hook::consts::{SIGINT, SIGKILL, SIGTERM};
    use std::path::Path;

    #[test]
    fn first_signal_is_forwarded_then_grace_then_kill() {
        let t0 = Instant::now();
        let mut e = Escalation::new(Duration::from_secs(10));
        assert_eq!(e.on_tick(t0), Action::Nothing);
        assert_eq!(e.on_signal(SIGTERM, t0), Action::Signal(SIGTERM));
        assert_eq!(e.on_signal(SIGTERM, t0), Action::Nothing, "forwarded once");
        assert_eq!(e.on_tick(t0 + Duration::from_secs(9)), Action::Nothing);
        assert_eq!(e.on_tick(t0 + Duration::from_secs(10)), Action::Kill);
        assert_eq!(e.on_tick(t0 + Duration::from_secs(11)), Action::Nothing);
        assert_eq!(e.interrupted(), Some(SIGTERM));
    }

    #[test]
    fn second_ctrl_c_kills_at_once() {
        let t0 = Instant::now();
        let mut e = Escalation::new(Duration::from_secs(10));
        assert_eq!(e.on_signal(SIGINT, t0), Action::Signal(SIGINT));
        assert_eq!(e.on_signal(SIGINT, t0), Action::Kill);
        assert!(e.killed());
    }

    #[test]
    fn a_self_initiated_stop_terminates_and_a_signal_still_counts() {
        let t0 = Instant::now();
        let mut e = Escalation::new(Duration::from_secs(1));
        assert_eq!(e.stop(t0), Action::Signal(SIGTERM));
        assert_eq!(e.stop(t0), Action::Nothing);
        assert_eq!(e.on_signal(SIGINT, t0), Action::Signal(SIGINT));
        assert_eq!(e.on_tick(t0 + Duration::from_secs(1)), Action::Kill);
    }

    fn status_code(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn status_signal(sig: i32) -> ExitStatus {
        ExitStatus::from_raw(sig)
    }

    #[test]
    fn run_outcome_propagates_code_and_signal() {
        let mut r = Report {
            exits: vec![Some(status_code(7))],
            first: Some(0),
            interrupted: None,
            killed: false,
        };
        assert_eq!(run_outcome(&r), Outcome::Code(7));
        r.exits = vec![Some(status_signal(SIGTERM))];
        assert_eq!(run_outcome(&r), Outcome::Signal(SIGTERM));
        // Killed after the grace: wtenv dies of what it received.
        r.exits = vec![Some(status_signal(SIGKILL))];
        r.interrupted = Some(SIGTERM);
        r.killed = true;
        assert_eq!(run_outcome(&r), Outcome::Signal(SIGTERM));
    }

    #[test]
    fn up_outcome_is_the_first_failure_else_the_signal() {
        let r = Report {
            exits: vec![Some(status_signal(SIGTERM)), Some(status_code(3))],
            first: Some(1),
            interrupted: None,
            killed: false,
        };
        assert_eq!(up_outcome(&r), Outcome::Code(3));
        let r = Report {
            exits: vec![Some(status_code(0)), Some(status_signal(SIGINT))],
            first: None,
            interrupted: Some(SIGINT),
            killed: false,
        };
        assert_eq!(up_outcome(&r), Outcome::Signal(SIGINT));
    }

    #[test]
    fn programs_resolve_like_execvp_or_not_at_all() {
        use std::ffi::OsStr;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(
            resolve_program(OsStr::new("tool"), Some(&path)),
            Some(exe.clone())
        );
        // Left to exec: not executable (126 there), missing (127), paths.
        assert_eq!(resolve_program(OsStr::new("data"), Some(&path)), None);
        assert_eq!(resolve_program(OsStr::new("nope"), Some(&path)), None);
        assert_eq!(resolve_program(OsStr::new("./tool"), Some(&path)), None);
        // An empty entry is the current directory: exec decides.
        let with_cwd = std::env::join_paths([Path::new(""), dir.path()]).unwrap();
        assert_eq!(resolve_program(OsStr::new("tool"), Some(&with_cwd)), None);
    }

    #[test]
    fn spawn_errors_map_to_shell_codes() {
        let e = SpawnError {
            program: "nope".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(e.outcome(), Outcome::Code(127));
        assert!(e.message().contains("command not found"));
        let e = SpawnError {
            program: "./x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.outcome(), Outcome::Code(126));
    }
}
