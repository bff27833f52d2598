//! Restarts of `wtenv up`'s services: the policy (`[services.X]
//! restart`), the backoff, and the limit within a window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `[services.X] restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    #[default]
    No,
    OnFailure,
    Always,
}

impl Restart {
    pub fn parse(text: &str) -> Option<Restart> {
        match text {
            "no" => Some(Restart::No),
            "on-failure" => Some(Restart::OnFailure),
            "always" => Some(Restart::Always),
            _ => None,
        }
    }

    /// Whether a service that ended this way is started again.
    pub fn allows(self, end: End) -> bool {
        match self {
            Restart::No => false,
            Restart::OnFailure => end != End::Success,
            Restart::Always => true,
        }
    }
}

/// How one run of a service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited with status 0.
    Success,
    /// It exited otherwise (a code, a signal).
    Failure,
    /// Its health check failed `retries` times in a row.
    Unhealthy,
    /// A restarted run was not ready within its `ready_timeout` (the first
    /// run's is `up`'s own failure, no restart).
    NotReady,
}

/// Most restarts allowed within [`RESTART_WINDOW`].
pub const RESTART_LIMIT: usize = 5;
/// The window the restart limit counts in; also how long a service must
/// stay up for its backoff to start again at 1 s.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The wait before the `n`th restart in a row (1-based): 1 s, doubling,
/// at most 30 s.
pub fn backoff(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    (BACKOFF_FIRST * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// A planned restart: after `delay`, the `count`th of the window
/// (`restarting in 2s (2/5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub delay: Duration,
    pub count: usize,
}

/// The restart history of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restarts {
    /// When each restart within the window was decided.
    recent: VecDeque<Instant>,
    /// Restarts since the service last ran for a whole window.
    streak: u32,
    /// Every restart since `up` began (shown by `list`).
    total: u32,
}

impl Restarts {
    /// A run that began at `began` ended at `now`: the next restart, or
    /// `None` when it would exceed [`RESTART_LIMIT`] in [`RESTART_WINDOW`].
    pub fn plan(&mut self, began: Instant, now: Instant) -> Option<Planned> {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= RESTART_WINDOW)
        {
            self.recent.pop_front();
        }
        if now.saturating_duration_since(began) >= RESTART_WINDOW {
            self.streak = 0;
        }
        if self.recent.len() >= RESTART_LIMIT {
            return None;
        }
        self.recent.push_back(now);
        self.streak += 1;
        self.total += 1;
        Some(Planned {
            delay: backoff(self.streak),
            count: self.recent.len(),
        })
    }

    pub fn total(&self) -> u32 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let got: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), s(30));
    }

    #[test]
    fn five_restarts_in_a_minute_is_the_limit() {
        let t0 = Instant::now();
        let mut r = Restarts::default();
        let mut now = t0;
        for n in 1..=5 {
            let p = r.plan(now, now + s(1)).unwrap();
            assert_eq!(p.count, n);
            assert_eq!(p.delay, backoff(n as u32));
            now += s(2);
        }
        assert_eq!(r.plan(now, now + s(1)), None, "a sixth within 60 s");
        assert_eq!(r.total(), 5);
        // Once the first restarts leave the window, restarts are allowed again.
        let later = t0 + s(61);
        assert_eq!(r.plan(later, later + s(1)).map(|p| p.count), Some(5));
    }

    #[test]
    fn a_run_that_lasted_a_window_starts_the_backoff_again() {
        let t0 = Instant::now();
        let mut r = Restarts::default();
        assert_eq!(r.plan(t0, t0 + s(1)).unwrap().delay, s(1));
        assert_eq!(r.plan(t0 + s(2), t0 + s(3)).unwrap().delay, s(2));
        let p = r.plan(t0 + s(5), t0 + s(200)).unwrap();
        assert_eq!((p.delay, p.count), (s(1), 1));
        assert_eq!(r.total(), 3);
    }

    #[test]
    fn policies_decide_by_how_the_run_ended() {
        assert!(!Restart::No.allows(End::Failure));
        assert!(!Restart::No.allows(End::Unhealthy));
        assert!(Restart::OnFailure.allows(End::Failure));
        assert!(Restart::OnFailure.allows(End::Unhealthy));
        assert!(!Restart::OnFailure.allows(End::Success));
        assert!(Restart::OnFailure.allows(End::NotReady));
        assert!(!Restart::No.allows(End::NotReady));
        assert!(Restart::Always.allows(End::Success));
        assert_eq!(Restart::parse("on-failure"), Some(Restart::OnFailure));
        assert_eq!(Restart::parse("sometimes"), None);
    }
}
