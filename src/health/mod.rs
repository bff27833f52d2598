//! Health checks, start order and restarts of `wtenv up` (README
//! "Health, order and restarts").
//!
//! The decisions are plain functions and small state machines over values,
//! tested without sockets or processes:
//! - [`start_order`] and [`find_cycle`] (in `order.rs`): dependency
//!   order, and the config error for a cycle or an unknown name;
//! - [`Tracker`]: the next probe result → the service's state change
//!   (ready, unhealthy, healthy again);
//! - [`Restarts`] (in `restarts.rs`): whether a restart may happen, after
//!   which backoff ([`backoff`]), and when the limit is reached.
//!
//! The I/O of the checks (a minimal HTTP/1.1 client, a TCP connect, a
//! command killed as a group at its timeout) lives in [`check`].

use std::fmt;
use std::time::{Duration, Instant};

pub mod check;
mod order;
mod restarts;
pub mod status;

pub use order::{OrderError, find_cycle, may_start, start_order};
pub use restarts::{End, Planned, RESTART_LIMIT, RESTART_WINDOW, Restart, Restarts, backoff};

/// How a service's health is checked. A background service's record
/// keeps the one it started with (`"tcp"`, `{"http": {"path": ...}}`,
/// `{"cmd": {"command": ...}}`): [`crate::background::StartedHealth`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Check {
    /// Its port accepts a TCP connection (the default).
    Tcp,
    /// `GET path` on 127.0.0.1 / ::1 at its port answers 2xx or 3xx.
    Http { path: String },
    /// `sh -c command` with the worktree's variables exits 0.
    Cmd { command: String },
}

impl fmt::Display for Check {
    /// How a probe result names its check: `GET /healthz`, `cmd "..."`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Tcp => f.write_str("connect"),
            Check::Http { path } => write!(f, "GET {path}"),
            Check::Cmd { command } => write!(f, "cmd {command:?}"),
        }
    }
}

/// `[services.X] health`: the check and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub check: Check,
    /// Time between two liveness checks once the service is ready.
    pub interval: Duration,
    /// One check's limit (an HTTP answer, a command's run).
    pub timeout: Duration,
    /// Consecutive failed liveness checks that make the service unhealthy.
    pub retries: u32,
    /// After each (re)start, failures in this period do not count.
    pub start_period: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            check: Check::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            retries: 3,
            start_period: Duration::ZERO,
        }
    }
}

impl Health {
    /// Whether the service is judged by who listens on its port: not when
    /// its readiness is a `cmd` check of its own (a worker, not meant to
    /// listen there, says when it is ready by it). `up`'s watch of the
    /// port, `up --detach`'s readiness and `status` alike.
    pub fn watches_port(&self) -> bool {
        !matches!(self.check, Check::Cmd { .. })
    }

    /// How often readiness is checked before the service is first ready:
    /// often, so `up` notices readiness quickly, but never more often than
    /// the liveness interval asks.
    pub fn ready_poll(&self) -> Duration {
        self.interval.min(READY_POLL)
    }
}

/// The readiness poll period (see [`Health::ready_poll`]).
pub const READY_POLL: Duration = Duration::from_millis(100);

/// The result of one check: `Ok` healthy, `Err` what it saw
/// (`GET /healthz -> 503`, `connection refused`).
pub type Probe = Result<(), Failed>;

/// What a failed check saw: one line (`GET /healthz -> 503`), and for a
/// `cmd` check the end of what it printed, so that `pg_isready`'s reason
/// is seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failed {
    /// The words after `unhealthy:` (its `Display`).
    pub what: String,
    /// The last lines a `cmd` check printed (stdout and stderr as one),
    /// each escaped ([`crate::process::printable`]): at most
    /// [`OUTPUT_LINES`] of its last [`OUTPUT_BYTES`].
    pub output: Vec<String>,
    /// Whether it printed more than `output` holds.
    pub cut: bool,
    /// A `cmd` check killed at its own timeout (`what` says `timed out
    /// after 1s (killed)`): a readiness timeout said after it is said
    /// apart (`..., still not ready after 3s`).
    pub timed_out: bool,
}

/// At most this many of a `cmd` check's last lines are kept.
pub const OUTPUT_LINES: usize = 5;
/// Of at most this many of its last bytes.
pub const OUTPUT_BYTES: usize = 1024;

impl Failed {
    /// What a message shows: [`Failed::what`], then the output kept, on
    /// lines of their own, indented:
    /// ```text
    /// cmd "pg_isready -p 5432" -> exit 2
    ///   its output:
    ///     /tmp:5432 - no response
    /// ```
    pub fn detailed(&self) -> String {
        let mut text = self.what.clone();
        if !self.output.is_empty() {
            text.push_str(match self.cut {
                true => "\n  the end of its output:",
                false => "\n  its output:",
            });
            for line in &self.output {
                text.push_str("\n    ");
                text.push_str(line);
            }
        }
        text
    }

    /// How a service whose check failed is said, by the foreground `up`
    /// (its `unhealthy:` line) and by `status` (after its table):
    /// `unhealthy: ` and [`Failed::detailed`].
    pub fn unhealthy(&self) -> String {
        format!("unhealthy: {}", self.detailed())
    }

    /// The same output after other words: `not ready after 3s: ...`.
    pub fn reworded(&self, what: String) -> Failed {
        Failed {
            what,
            ..self.clone()
        }
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl From<String> for Failed {
    fn from(what: String) -> Failed {
        Failed {
            what,
            ..Failed::default()
        }
    }
}

impl From<&str> for Failed {
    fn from(what: &str) -> Failed {
        Failed::from(what.to_owned())
    }
}

/// A state change of a service, printed as one line (`web | ready in 1.2s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// First passing check of this run, this long after the start.
    Ready(Duration),
    /// `retries` liveness checks failed in a row; the last one's result.
    Unhealthy(Failed),
    /// A check passed again after the service was unhealthy.
    Healthy,
}

/// The health of one run of a service, fed one probe result at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    started: Instant,
    retries: u32,
    start_period: Duration,
    ready: bool,
    unhealthy: bool,
    failures: u32,
    last: Option<Failed>,
}

impl Tracker {
    pub fn new(health: &Health, started: Instant) -> Tracker {
        Tracker {
            started,
            retries: health.retries.max(1),
            start_period: health.start_period,
            ready: false,
            unhealthy: false,
            failures: 0,
            last: None,
        }
    }

    /// Records a probe that ran at `now`; returns the change it makes.
    /// Before the first pass (readiness) failures only count against
    /// `ready_timeout` ([`Tracker::timed_out`]); after it (liveness),
    /// `retries` failures in a row outside the start period make the
    /// service unhealthy.
    pub fn observe(&mut self, now: Instant, probe: Probe) -> Option<Change> {
        match probe {
            Ok(()) => {
                self.failures = 0;
                self.last = None;
                if !self.ready {
                    self.ready = true;
                    return Some(Change::Ready(now.saturating_duration_since(self.started)));
                }
                if self.unhealthy {
                    self.unhealthy = false;
                    return Some(Change::Healthy);
                }
                None
            }
            Err(why) => {
                self.last = Some(why.clone());
                if !self.ready || self.unhealthy {
                    return None;
                }
                if now.saturating_duration_since(self.started) < self.start_period {
                    return None;
                }
                self.failures += 1;
                if self.failures >= self.retries {
                    self.unhealthy = true;
                    return Some(Change::Unhealthy(why));
                }
                None
            }
        }
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    pub fn unhealthy(&self) -> bool {
        self.unhealthy
    }

    /// The last failed probe's result, if the last probe failed.
    pub fn last_failure(&self) -> Option<&Failed> {
        self.last.as_ref()
    }

    /// Not ready `ready_timeout` after the start.
    pub fn timed_out(&self, now: Instant, ready_timeout: Duration) -> bool {
        !self.ready && now.saturating_duration_since(self.started) >= ready_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn first_pass_is_ready_and_earlier_failures_do_not_count() {
        let t0 = Instant::now();
        let h = Health::default();
        let mut t = Tracker::new(&h, t0);
        for i in 1..10 {
            assert_eq!(t.observe(t0 + s(i), Err("refused".into())), None);
        }
        assert_eq!(t.last_failure(), Some(&Failed::from("refused")));
        assert!(!t.timed_out(t0 + s(9), s(30)));
        assert!(t.timed_out(t0 + s(30), s(30)));
        assert_eq!(t.observe(t0 + s(10), Ok(())), Some(Change::Ready(s(10))));
        assert!(!t.timed_out(t0 + s(60), s(30)));
        assert_eq!(t.observe(t0 + s(11), Ok(())), None);
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_once() {
        let t0 = Instant::now();
        let h = Health {
            retries: 3,
            ..Health::default()
        };
        let mut t = Tracker::new(&h, t0);
        t.observe(t0, Ok(()));
        let bad = || Err::<(), Failed>("GET /healthz -> 503".into());
        assert_eq!(t.observe(t0 + s(1), bad()), None);
        assert_eq!(t.observe(t0 + s(2), bad()), None);
        assert_eq!(
            t.observe(t0 + s(3), Ok(())),
            None,
            "a pass resets the count"
        );
        assert_eq!(t.observe(t0 + s(4), bad()), None);
        assert_eq!(t.observe(t0 + s(5), bad()), None);
        assert_eq!(
            t.observe(t0 + s(6), bad()),
            Some(Change::Unhealthy("GET /healthz -> 503".into()))
        );
        assert!(t.unhealthy());
        assert_eq!(t.observe(t0 + s(7), bad()), None, "said once");
        assert_eq!(t.observe(t0 + s(8), Ok(())), Some(Change::Healthy));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let t0 = Instant::now();
        let h = Health {
            retries: 1,
            start_period: s(10),
            ..Health::default()
        };
        let mut t = Tracker::new(&h, t0);
        t.observe(t0 + s(1), Ok(()));
        assert_eq!(t.observe(t0 + s(5), Err("x".into())), None);
        assert_eq!(
            t.observe(t0 + s(10), Err("x".into())),
            Some(Change::Unhealthy("x".into()))
        );
    }
}
