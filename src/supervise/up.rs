//! `up`'s services as a [`Policy`] of the supervisor: started in
//! dependency order as their dependencies become ready, health-checked
//! while they run, restarted by their policy (README "Health, order and
//! restarts").
//!
//! The decisions come from [`crate::health`] (tracker, restart plan, start
//! order); this file applies them: it spawns, stops, prints one line per
//! state change and records the states for `list`. Checks run on their own
//! threads (an HTTP check may take its whole timeout) and wake the loop
//! with their result; a result of an earlier run is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use super::services::{Prefix, describe, ended, watch_ready, watch_stops};
use super::{Pgid, Policy, Supervisor, Waker, outcome_of};
use crate::config::Service;
use crate::exit::{self, Outcome};
use crate::health::status::{ServiceStatus, StatusFile};
use crate::health::{self, Change, End, Failed, Health, Probe, Restarts, Tracker, check};
use crate::output::OpenPipes;
use crate::worktree::Worktree;

/// One service to run, as `up` was asked.
pub struct Unit<'a> {
    pub service: &'a Service,
    pub port: Option<u16>,
    pub prefix: Prefix,
    /// Its output pipes not yet at EOF.
    pub output: OpenPipes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its dependencies are not ready yet.
    Waiting,
    Running,
    /// Stopped by us to be restarted; its exit is awaited.
    Stopping,
    /// Exited; started again at `restart_at`, once its group is gone.
    Backoff,
    Ended,
}

struct State<'a> {
    unit: Unit<'a>,
    /// Its check ([`crate::config::Service::health`]); `None`: ready once
    /// started, never checked after.
    health: Option<Health>,
    phase: Phase,
    /// Which run of the service (checks of older runs are ignored).
    run: u64,
    group: Option<usize>,
    began: Instant,
    tracker: Tracker,
    restarts: Restarts,
    /// Why we stopped it ([`End::Unhealthy`], [`End::NotReady`]), for the
    /// restart decision.
    ending: Option<End>,
    /// What a restarted run not ready in time last saw: `not ready after
    /// 3s: GET / -> 503`, said with what becomes of it once it exited.
    not_ready: Option<Failed>,
    restart_at: Option<Instant>,
    /// Tells this run's check thread to end.
    watching: Arc<AtomicBool>,
}

impl State<'_> {
    fn label(&self) -> &'static str {
        match self.phase {
            Phase::Waiting => "waiting",
            Phase::Running if self.tracker.unhealthy() => "unhealthy",
            Phase::Running if self.tracker.ready() => "ready",
            Phase::Running => "starting",
            Phase::Stopping | Phase::Backoff => "restarting",
            Phase::Ended => "ended",
        }
    }
}

/// A check's result: service index, run, result, when it was taken.
type Report = (usize, u64, Probe, Instant);

/// Spawns one run of a service; `Err`: it could not be started (the
/// message is printed, the outcome is `up`'s).
pub type Spawner<'s> = dyn FnMut(&mut Supervisor, &Unit) -> Result<(usize, Pgid), Outcome> + 's;

/// Runs after each spawn with every service's current group.
pub type OnSpawn<'s> = dyn FnMut(&BTreeMap<String, Pgid>) + 's;

pub struct Up<'a, 's> {
    states: Vec<State<'a>>,
    spawn: Box<Spawner<'s>>,
    /// Runs after each spawn (the registry's pgid record).
    spawned: Box<OnSpawn<'s>>,
    pgids: BTreeMap<String, Pgid>,
    vars: Arc<Vec<(String, String)>>,
    /// Whose services run: a `cmd` check runs where it is now
    /// ([`Worktree::root_now`]: `git worktree move` may take it away).
    worktree: Worktree,
    waker: Waker,
    tx: Sender<Report>,
    rx: Receiver<Report>,
    ready: BTreeSet<String>,
    status: StatusFile,
    /// How `up` ends, once decided by a service.
    outcome: Option<Outcome>,
    /// The error `up` ends with (a service not ready in time).
    failure: Option<String>,
}

impl<'a, 's> Up<'a, 's> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        units: Vec<Unit<'a>>,
        sup: &Supervisor,
        vars: Vec<(String, String)>,
        worktree: Worktree,
        state_dir: &std::path::Path,
        spawn: Box<Spawner<'s>>,
        spawned: Box<OnSpawn<'s>>,
    ) -> Up<'a, 's> {
        let (tx, rx) = channel();
        let now = Instant::now();
        let states = units
            .into_iter()
            .map(|unit| {
                let health = unit.service.health();
                State {
                    tracker: tracker(health.as_ref(), now),
                    health,
                    unit,
                    phase: Phase::Waiting,
                    run: 0,
                    group: None,
                    began: now,
                    restarts: Restarts::default(),
                    ending: None,
                    not_ready: None,
                    restart_at: None,
                    watching: Arc::new(AtomicBool::new(false)),
                }
            })
            .collect();
        Up {
            states,
            spawn,
            spawned,
            pgids: BTreeMap::new(),
            vars: Arc::new(vars),
            worktree,
            waker: sup.waker(),
            tx,
            rx,
            ready: BTreeSet::new(),
            status: StatusFile::new(state_dir),
            outcome: None,
            failure: None,
        }
    }

    /// How `up` ends: what a service decided, else the signal received.
    pub fn outcome(&self, report: &super::Report) -> Outcome {
        if let Some(o) = self.outcome {
            return o;
        }
        match report.interrupted {
            Some(sig) => Outcome::Signal(sig as i32),
            None => Outcome::SUCCESS,
        }
    }

    /// The error to end with, if a service was not ready in time.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// `web | ready in 1.2s on port 5000`, on stderr like the service's
    /// own lines; each line of `text` prefixed (a `cmd` check's output).
    fn say(&self, i: usize, text: &str) {
        for line in text.split('\n') {
            crate::report::line(self.states[i].unit.prefix.as_str(), line);
        }
    }

    fn record(&mut self) {
        let services = self
            .states
            .iter()
            .map(|s| {
                (
                    s.unit.service.name.clone(),
                    ServiceStatus {
                        health: s.label().to_owned(),
                        restarts: s.restarts.total(),
                    },
                )
            })
            .collect();
        self.status.write(services);
    }

    fn start(&mut self, sup: &mut Supervisor, i: usize) {
        self.say(i, "starting");
        let (group, pgid) = match (self.spawn)(sup, &self.states[i].unit) {
            Ok(g) => g,
            Err(outcome) => {
                self.outcome = Some(outcome);
                sup.stop();
                return;
            }
        };
        let now = Instant::now();
        let s = &mut self.states[i];
        s.phase = Phase::Running;
        s.run += 1;
        s.group = Some(group);
        s.began = now;
        s.tracker = tracker(s.health.as_ref(), now);
        s.restart_at = None;
        s.watching = Arc::new(AtomicBool::new(true));
        let name = s.unit.service.name.clone();
        // Not the port of a service ready by a `cmd` check of its own.
        let watched = s.health.as_ref().is_none_or(Health::watches_port);
        if let Some(port) = s.unit.port.filter(|_| watched) {
            watch_ready(s.unit.service, port, pgid);
        }
        watch_stops(&name, pgid, s.watching.clone(), sup.own_stop());
        let checked = s.health.is_some();
        let run = s.run;
        if checked {
            self.watch(i);
        }
        self.pgids.insert(name, pgid);
        (self.spawned)(&self.pgids);
        self.record();
        if !checked {
            // Ready at once, never checked after (see `Service::health`).
            self.observe(sup, (i, run, Ok(()), now));
        }
    }

    /// The check thread of the current run of service `i`: every
    /// [`Health::ready_poll`] until it first passes, then every `interval`.
    fn watch(&self, i: usize) {
        let s = &self.states[i];
        let Some(health) = s.health.clone() else {
            return;
        };
        let (port, run, flag) = (s.unit.port, s.run, s.watching.clone());
        let bound = s.unit.service.bound();
        let (vars, dir, tx, waker) = (
            self.vars.clone(),
            self.worktree.root_now(),
            self.tx.clone(),
            self.waker.clone(),
        );
        let _ = std::thread::Builder::new()
            .name("wtenv-health".into())
            .spawn(move || {
                let mut passed = false;
                while flag.load(Ordering::Relaxed) {
                    let result = check::probe(&health, port, bound, &vars, &dir);
                    passed |= result.is_ok();
                    if tx.send((i, run, result, Instant::now())).is_err() {
                        return;
                    }
                    waker.wake();
                    let pause = if passed {
                        health.interval
                    } else {
                        health.ready_poll()
                    };
                    let until = Instant::now() + pause;
                    while flag.load(Ordering::Relaxed) && Instant::now() < until {
                        std::thread::sleep(pause.min(Duration::from_millis(50)));
                    }
                }
            });
    }

    fn observe(&mut self, sup: &mut Supervisor, (i, run, probe, at): Report) {
        let s = &mut self.states[i];
        if s.run != run || s.phase != Phase::Running {
            return;
        }
        let Some(change) = s.tracker.observe(at, probe) else {
            return;
        };
        // A new state is recorded before it is said: `list` or `ports` run
        // on seeing the line show it.
        match change {
            Change::Ready(after) => {
                self.ready.insert(s.unit.service.name.clone());
                let port = s.unit.port.map(|p| format!(" on port {p}"));
                let text = format!(
                    "ready in {:.1}s{}",
                    after.as_secs_f64(),
                    port.unwrap_or_default()
                );
                self.record();
                self.say(i, &text);
            }
            Change::Healthy => {
                self.record();
                self.say(i, "healthy");
            }
            Change::Unhealthy(why) => {
                self.say(i, &why.unhealthy());
                let s = &mut self.states[i];
                if s.unit.service.restart.allows(End::Unhealthy)
                    && let Some(group) = s.group
                {
                    s.ending = Some(End::Unhealthy);
                    s.phase = Phase::Stopping;
                    s.watching.store(false, Ordering::Relaxed);
                    sup.stop_group(group);
                }
            }
        }
        self.record();
    }
}

impl Drop for Up<'_, '_> {
    /// No check outlives `up`: the threads stop, a running check's group
    /// is killed.
    fn drop(&mut self) {
        for s in &self.states {
            s.watching.store(false, Ordering::Relaxed);
        }
        super::reap::kill_unreaped();
    }
}

impl Policy for Up<'_, '_> {
    fn exited(&mut self, _sup: &mut Supervisor, index: usize, status: ExitStatus) -> bool {
        let Some(i) = self.states.iter().position(|s| s.group == Some(index)) else {
            return false;
        };
        // Its last lines first, then what became of it.
        self.states[i]
            .unit
            .output
            .drain(Instant::now() + Duration::from_millis(100));
        let now = Instant::now();
        let s = &mut self.states[i];
        s.watching.store(false, Ordering::Relaxed);
        self.ready.remove(&s.unit.service.name);
        let end = s.ending.take().unwrap_or(if status.success() {
            End::Success
        } else {
            End::Failure
        });
        let name = s.unit.service.name.clone();
        if !s.unit.service.restart.allows(end) {
            s.phase = Phase::Ended;
            self.record();
            self.outcome = Some(outcome_of(status));
            let others = if self.states.len() > 1 {
                "; stopped the others"
            } else {
                ""
            };
            crate::report::status(&format!(
                "{}{others}",
                ended(&format!("service {name}"), status)
            ));
            return true;
        }
        let plan = s.restarts.plan(s.began, now);
        // How this run ended comes first, the last run's too (before
        // the restart limit line). One killed for being unhealthy said so;
        // one not ready in time says it with what comes next.
        let not_ready = s.not_ready.take().filter(|_| end == End::NotReady);
        match (&not_ready, plan) {
            (Some(why), None) => self.say(i, &why.detailed()),
            (Some(_), Some(_)) => {}
            (None, _) if end != End::Unhealthy => {
                self.say(i, &format!("ended ({})", describe(status)));
            }
            (None, _) => {}
        }
        let s = &mut self.states[i];
        let Some(plan) = plan else {
            s.phase = Phase::Ended;
            self.record();
            // Stopped for the limit, `up` fails: with the last run's
            // status when that is a failure (a code, a signal), else 1
            // (a service that kept exiting 0, or that was stopped).
            self.outcome = Some(match (end, outcome_of(status)) {
                (End::Unhealthy | End::NotReady, _) | (_, Outcome::Code(exit::SUCCESS)) => {
                    Outcome::Code(exit::FAILURE)
                }
                (_, failed) => failed,
            });
            self.say(
                i,
                &format!(
                    "restart limit reached: {} restarts in {}s; stopping all",
                    health::RESTART_LIMIT,
                    health::RESTART_WINDOW.as_secs()
                ),
            );
            return true;
        };
        s.phase = Phase::Backoff;
        s.restart_at = Some(now + plan.delay);
        let restarting = format!(
            "restarting in {}s ({}/{})",
            plan.delay.as_secs(),
            plan.count,
            health::RESTART_LIMIT
        );
        match not_ready {
            Some(why) => {
                let said = why.reworded(format!("{}; {restarting}", why.what));
                self.say(i, &said.detailed());
            }
            None => self.say(i, &restarting),
        }
        self.record();
        false
    }

    fn turn(&mut self, sup: &mut Supervisor, now: Instant) -> Option<Instant> {
        while let Ok(report) = self.rx.try_recv() {
            self.observe(sup, report);
        }
        if sup.stopping() {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut soonest = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for i in 0..self.states.len() {
            let s = &self.states[i];
            match s.phase {
                Phase::Waiting if health::may_start(&s.unit.service.depends_on, &self.ready) => {
                    self.start(sup, i);
                    if sup.stopping() {
                        return None;
                    }
                }
                Phase::Running if !s.tracker.ready() => {
                    let timeout = s.unit.service.ready_timeout;
                    // Only a configured check is enforced; the default
                    // one warns (see `watch_ready`).
                    if s.unit.service.health.is_some() && s.tracker.timed_out(now, timeout) {
                        let none = Failed::from("no answer yet");
                        let last = s.tracker.last_failure().unwrap_or(&none);
                        let why = last.reworded(format!(
                            "not ready after {}: {}",
                            humantime::format_duration(timeout),
                            last.what
                        ));
                        // The first start fails `up` fast; a restarted run
                        // not ready in time is a failure of that run.
                        if s.run > 1
                            && s.unit.service.restart.allows(End::NotReady)
                            && let Some(group) = s.group
                        {
                            let s = &mut self.states[i];
                            s.ending = Some(End::NotReady);
                            s.not_ready = Some(why);
                            s.phase = Phase::Stopping;
                            s.watching.store(false, Ordering::Relaxed);
                            sup.stop_group(group);
                            self.record();
                            continue;
                        }
                        self.failure = Some(format!(
                            "service {} {}",
                            s.unit.service.name,
                            why.detailed()
                        ));
                        self.outcome = Some(Outcome::Code(exit::FAILURE));
                        sup.stop();
                        return None;
                    }
                    soonest(s.began + timeout);
                }
                Phase::Backoff => {
                    let at = s.restart_at.unwrap_or(now);
                    if now >= at && s.group.is_none_or(|g| sup.done(g)) {
                        self.start(sup, i);
                        if sup.stopping() {
                            return None;
                        }
                    } else {
                        soonest(at.max(now + Duration::from_millis(10)));
                    }
                }
                _ => {}
            }
        }
        next
    }

    fn finished(&self) -> bool {
        !self
            .states
            .iter()
            .any(|s| matches!(s.phase, Phase::Waiting | Phase::Backoff | Phase::Stopping))
    }
}

/// The tracker of one run; a service without a check has its one report
/// (ready at its start) judged as any first pass, by the default timing.
fn tracker(health: Option<&Health>, now: Instant) -> Tracker {
    Tracker::new(health.unwrap_or(&Health::default()), now)
}
