//! How a stop unfolds and how it ends, as plain values (no I/O): the
//! signal → grace → SIGKILL state machine (a second Ctrl-C kills at once,
//! as watchexec's `GracefulStop`; one within [`SAME_CTRL_C`] of the one
//! before is the same, delivered twice), and the exit status `run`/`up`
//! report.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::signal::Signal;
use crate::exit::{self, Outcome};

/// A SIGINT that comes less than this after the last one that counted is
/// the same Ctrl-C, delivered twice: a wrapper that forwards SIGINT
/// (`timeout`, a task runner) while wtenv shares the terminal's
/// foreground group passes on the very Ctrl-C wtenv got from the
/// terminal, microseconds apart. A person's second Ctrl-C comes later.
pub const SAME_CTRL_C: Duration = Duration::from_millis(200);

/// What the supervisor does next, decided by [`Escalation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Send this signal to every live group.
    Signal(Signal),
    /// SIGKILL every live group.
    Kill,
}

/// The stop state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    grace: Duration,
    /// When the groups get SIGKILL, once stopping has begun.
    deadline: Option<Instant>,
    killed: bool,
    /// The first signal wtenv itself received.
    interrupted: Option<Signal>,
    /// When the last SIGINT that counted came (see [`SAME_CTRL_C`]).
    ctrl_c: Option<Instant>,
}

impl Escalation {
    pub fn new(grace: Duration) -> Escalation {
        Escalation {
            grace,
            deadline: None,
            killed: false,
            interrupted: None,
            ctrl_c: None,
        }
    }

    /// wtenv received `sig`.
    pub fn on_signal(&mut self, sig: Signal, now: Instant) -> Action {
        if self.killed {
            return Action::Nothing;
        }
        if sig == Signal::SIGINT {
            if self
                .ctrl_c
                .is_some_and(|last| now.saturating_duration_since(last) < SAME_CTRL_C)
            {
                return Action::Nothing;
            }
            self.ctrl_c = Some(now);
        }
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            self.deadline = Some(
                self.deadline
                    .map_or(now + self.grace, |d| d.min(now + self.grace)),
            );
            return Action::Signal(sig);
        }
        if sig == Signal::SIGINT {
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
        Action::Signal(Signal::SIGTERM)
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

    pub fn grace(&self) -> Duration {
        self.grace
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

    pub fn interrupted(&self) -> Option<Signal> {
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
    pub interrupted: Option<Signal>,
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
        (Some(s), Some(sig)) if report.killed && s.signal() == Some(Signal::SIGKILL as i32) => {
            Outcome::Signal(sig as i32)
        }
        (Some(s), _) => outcome_of(s),
        (None, Some(sig)) => Outcome::Signal(sig as i32),
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
        Some(sig) => Outcome::Signal(sig as i32),
        None => Outcome::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Signal::{SIGINT, SIGKILL, SIGTERM};

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
        assert_eq!(e.on_signal(SIGINT, t0 + SAME_CTRL_C), Action::Kill);
        assert!(e.killed());
    }

    /// `timeout 60 wtenv run -- ...`: the terminal's Ctrl-C and the copy
    /// `timeout` forwards come microseconds apart; one Ctrl-C, not two.
    #[test]
    fn a_ctrl_c_delivered_twice_at_once_is_one_ctrl_c() {
        let t0 = Instant::now();
        let mut e = Escalation::new(Duration::from_secs(10));
        assert_eq!(e.on_signal(SIGINT, t0), Action::Signal(SIGINT));
        let again = t0 + Duration::from_micros(50);
        assert_eq!(e.on_signal(SIGINT, again), Action::Nothing);
        let almost = t0 + SAME_CTRL_C - Duration::from_millis(1);
        assert_eq!(e.on_signal(SIGINT, almost), Action::Nothing);
        assert!(!e.killed());
        // Measured from the Ctrl-C that counted, not from its copies: a
        // stream of them cannot put off the kill forever.
        assert_eq!(e.on_signal(SIGINT, t0 + SAME_CTRL_C), Action::Kill);
        // A SIGTERM then a SIGINT at once are two signals.
        let mut e = Escalation::new(Duration::from_secs(10));
        assert_eq!(e.on_signal(SIGTERM, t0), Action::Signal(SIGTERM));
        assert_eq!(e.on_signal(SIGINT, t0), Action::Kill);
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

    fn status_signal(sig: Signal) -> ExitStatus {
        ExitStatus::from_raw(sig as i32)
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
        assert_eq!(run_outcome(&r), Outcome::Signal(SIGTERM as i32));
        // Killed after the grace: wtenv dies of what it received.
        r.exits = vec![Some(status_signal(SIGKILL))];
        r.interrupted = Some(SIGTERM);
        r.killed = true;
        assert_eq!(run_outcome(&r), Outcome::Signal(SIGTERM as i32));
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
        assert_eq!(up_outcome(&r), Outcome::Signal(SIGINT as i32));
    }
}
