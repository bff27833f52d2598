//! Health checks, start order and restarts of `wtenv up` (README
//! "Health, order and restarts").
//!
//! The decisions are plain functions and small state machines over values,
//! tested without sockets or processes:
//! - [`start_order`] and [`find_cycle`]: dependency order, and the config
//!   error for a cycle or an unknown name;
//! - [`Tracker`]: the next probe result → the service's state change
//!   (ready, unhealthy, healthy again);
//! - [`Restarts`]: whether a restart may happen, after which backoff
//!   ([`backoff`]), and when the limit is reached.
//!
//! The I/O of the checks (a minimal HTTP/1.1 client, a TCP connect, a
//! command killed as a group at its timeout) lives in [`check`].

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

pub mod check;
pub mod status;

/// How a service's health is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// How often readiness is checked before the service is first ready:
    /// often, so `up` notices readiness quickly, but never more often than
    /// the liveness interval asks.
    pub fn ready_poll(&self) -> Duration {
        self.interval.min(READY_POLL)
    }
}

/// The readiness poll period (see [`Health::ready_poll`]).
pub const READY_POLL: Duration = Duration::from_millis(100);

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
}

/// A dependency problem: a config error naming the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// `service` depends on `missing`, which is not a service.
    Unknown { service: String, missing: String },
    /// These services depend on each other in a ring (first repeated last).
    Cycle(Vec<String>),
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Unknown { service, missing } => {
                write!(
                    f,
                    "service {service} depends on {missing:?}, which is not a service"
                )
            }
            OrderError::Cycle(ring) => write!(f, "dependency cycle: {}", ring.join(" -> ")),
        }
    }
}

/// Checks a dependency graph (`(service, its depends_on)` in config
/// order): every name known, no cycle. The first problem found, in config
/// order, so the message is stable.
pub fn find_cycle(graph: &[(&str, &[String])]) -> Result<(), OrderError> {
    let index = |name: &str| graph.iter().position(|(n, _)| *n == name);
    for (service, deps) in graph {
        for d in deps.iter() {
            if index(d).is_none() {
                return Err(OrderError::Unknown {
                    service: (*service).to_owned(),
                    missing: d.clone(),
                });
            }
        }
    }
    // Depth-first search with colours; the grey path is the ring.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    fn visit(
        i: usize,
        graph: &[(&str, &[String])],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Grey;
        path.push(i);
        for d in graph[i].1.iter() {
            let j = graph
                .iter()
                .position(|(n, _)| n == d)
                .expect("names checked above");
            match marks[j] {
                Mark::Grey => {
                    let from = path.iter().position(|&p| p == j).expect("grey is on path");
                    let mut ring = path[from..].to_vec();
                    ring.push(j);
                    return Some(ring);
                }
                Mark::White => {
                    if let Some(ring) = visit(j, graph, marks, path) {
                        return Some(ring);
                    }
                }
                Mark::Black => {}
            }
        }
        path.pop();
        marks[i] = Mark::Black;
        None
    }
    let mut marks = vec![Mark::White; graph.len()];
    for i in 0..graph.len() {
        if marks[i] == Mark::White
            && let Some(ring) = visit(i, graph, &mut marks, &mut Vec::new())
        {
            return Err(OrderError::Cycle(
                ring.into_iter().map(|i| graph[i].0.to_owned()).collect(),
            ));
        }
    }
    Ok(())
}

/// The services (indices into `graph`) to start from `wanted`: `wanted`
/// and everything it depends on, in a dependency order (a service after
/// its dependencies; otherwise config order). The graph must have passed
/// [`find_cycle`].
pub fn start_order(graph: &[(&str, &[String])], wanted: &[usize]) -> Vec<usize> {
    let index = |name: &str| graph.iter().position(|(n, _)| *n == name);
    let mut needed = BTreeSet::new();
    let mut stack: Vec<usize> = wanted.to_vec();
    while let Some(i) = stack.pop() {
        if needed.insert(i) {
            stack.extend(graph[i].1.iter().filter_map(|d| index(d)));
        }
    }
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while placed.len() < needed.len() {
        let before = placed.len();
        for &i in &needed {
            if !placed.contains(&i)
                && graph[i]
                    .1
                    .iter()
                    .all(|d| index(d).is_some_and(|j| placed.contains(&j)))
            {
                placed.insert(i);
                order.push(i);
            }
        }
        assert!(placed.len() > before, "start_order needs an acyclic graph");
    }
    order
}

/// Whether a service can start: all its dependencies are ready.
pub fn may_start(deps: &[String], ready: &BTreeSet<String>) -> bool {
    deps.iter().all(|d| ready.contains(d))
}

/// The result of one check: `Ok` healthy, `Err` what it saw
/// (`GET /healthz -> 503`, `connection refused`).
pub type Probe = Result<(), String>;

/// A state change of a service, printed as one line (`web | ready in 1.2s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// First passing check of this run, this long after the start.
    Ready(Duration),
    /// `retries` liveness checks failed in a row; the last one's result.
    Unhealthy(String),
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
    last: Option<String>,
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
    pub fn last_failure(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// Not ready `ready_timeout` after the start.
    pub fn timed_out(&self, now: Instant, ready_timeout: Duration) -> bool {
        !self.ready && now.saturating_duration_since(self.started) >= ready_timeout
    }
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

    fn graph<'a>(edges: &'a [(&'a str, Vec<String>)]) -> Vec<(&'a str, &'a [String])> {
        edges.iter().map(|(n, d)| (*n, d.as_slice())).collect()
    }

    fn deps(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn dependencies_start_first_and_ties_keep_config_order() {
        let edges = [
            ("api", deps(&["db"])),
            ("db", deps(&[])),
            ("cache", deps(&[])),
            ("web", deps(&["api", "cache"])),
        ];
        let g = graph(&edges);
        assert_eq!(find_cycle(&g), Ok(()));
        // Rounds: db, cache first (config order), then api, then web.
        assert_eq!(start_order(&g, &[0, 1, 2, 3]), vec![1, 2, 0, 3]);
    }

    #[test]
    fn asking_for_one_service_brings_its_dependencies() {
        let edges = [
            ("api", deps(&["db"])),
            ("db", deps(&[])),
            ("other", deps(&[])),
            ("web", deps(&["api"])),
        ];
        let g = graph(&edges);
        assert_eq!(start_order(&g, &[3]), vec![1, 0, 3]);
    }

    #[test]
    fn a_cycle_names_its_ring() {
        let edges = [
            ("a", deps(&["b"])),
            ("b", deps(&["c"])),
            ("c", deps(&["a"])),
            ("d", deps(&[])),
        ];
        let e = find_cycle(&graph(&edges)).unwrap_err();
        assert_eq!(e, OrderError::Cycle(deps(&["a", "b", "c", "a"])));
        assert_eq!(e.to_string(), "dependency cycle: a -> b -> c -> a");
        let edges = [("a", deps(&["a"]))];
        assert_eq!(
            find_cycle(&graph(&edges)),
            Err(OrderError::Cycle(deps(&["a", "a"])))
        );
    }

    #[test]
    fn an_unknown_dependency_names_both() {
        let edges = [("web", deps(&["api"]))];
        let e = find_cycle(&graph(&edges)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service web depends on \"api\", which is not a service"
        );
    }

    #[test]
    fn a_service_may_start_once_its_dependencies_are_ready() {
        let mut ready = BTreeSet::new();
        assert!(may_start(&[], &ready));
        assert!(!may_start(&deps(&["db"]), &ready));
        ready.insert("db".to_owned());
        assert!(may_start(&deps(&["db"]), &ready));
    }

    #[test]
    fn first_pass_is_ready_and_earlier_failures_do_not_count() {
        let t0 = Instant::now();
        let h = Health::default();
        let mut t = Tracker::new(&h, t0);
        for i in 1..10 {
            assert_eq!(t.observe(t0 + s(i), Err("refused".into())), None);
        }
        assert_eq!(t.last_failure(), Some("refused"));
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
        let bad = || Err::<(), _>("GET /healthz -> 503".to_owned());
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
        assert!(Restart::Always.allows(End::Success));
        assert_eq!(Restart::parse("on-failure"), Some(Restart::OnFailure));
        assert_eq!(Restart::parse("sometimes"), None);
    }
}
