//! When a background service is ready (`up --detach`) and how healthy it
//! is (`status`).

use std::time::Instant;

use super::{Manager, Record, detached, logfile, query};
use crate::config::{Service, is_port_name};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::health::{Failed, Health};
use crate::registry::Registry;
use crate::supervise::SETTLE;
use crate::supervise::services::{elsewhere, listening_instead};
use crate::{alloc, health, probe, process};

/// Whether a background service is ready: its unit runs, its command has
/// started (the registry records its process group), and, when it has a
/// health check ([`Service::health`]), that check passes and (unless the
/// check is a command) its port's listener is of the unit's own process
/// tree. One without (a `socket = true` service without a `health` key)
/// is ready once its command has started, as under the foreground `up`.
pub(super) struct Readiness<'a> {
    pub service: &'a Service,
    pub vars: &'a [(String, String)],
    pub registry: &'a Registry,
    /// The worktree's root as it is now, where its entries are: a record
    /// of a service that ran before `git worktree move` keeps the path it
    /// started at.
    pub root: &'a std::path::Path,
    /// Polled between checks: an `Err` ends the wait (a signal).
    pub interrupted: &'a dyn Fn() -> Result<()>,
}

/// A ready service: its unit's main pid, and the process group its `run`
/// recorded for its command, with the leader's start time.
pub(super) struct Ready {
    pub pid: u32,
    pub group: process::Group,
}

impl Readiness<'_> {
    /// Polls until ready or why not (a failed `cmd` check's last lines
    /// kept, as the foreground `up` keeps them). `mark`: where the
    /// service's log ended before this run started.
    pub fn wait(
        &self,
        record: &Record,
        mut child: Option<&mut detached::Child>,
        mark: Option<logfile::Mark>,
        deadline: Instant,
    ) -> std::result::Result<Ready, Failed> {
        let health = self.service.health();
        let mut last = Failed::from("it does not listen on its port");
        // The service's group and its port, while nothing of the unit
        // listens there: where it listens instead is named at the end.
        let mut silent: Option<(u32, u16)> = None;
        // When the group was first seen recorded, and whether its leader
        // was alive once it had run [`SETTLE`] since.
        let (mut first_seen, mut settled) = (None, false);
        loop {
            if (self.interrupted)().is_err() {
                return Err("interrupted".into());
            }
            let live = query(record);
            // How it ended: our child's status (the wtenv back end), else
            // what its `run` noted in this run's lines of its log (a unit
            // systemd collected keeps no result).
            let exited = child.as_mut().and_then(|c| c.exited());
            if !live.running() || exited.is_some() {
                let named = format!("service {}", record.service);
                return Err(
                    match exited.or_else(|| logfile::ended_since(&record.log, mark, &named)) {
                        Some(how) => format!("it ended ({how})"),
                        None => format!("its unit is {}", live.state),
                    }
                    .into(),
                );
            }
            // A check that passes at once (`cmd = "true"`) proves nothing
            // of the service: until its `run` has started the command (and
            // recorded the group `down` stops), it is not ready. Recorded
            // as soon as it is spawned ([`crate::supervise::settle_for`]),
            // the command must also have run a moment ([`SETTLE`]), as
            // an interactive `run`'s must before its group is recorded: a
            // command that ends at once (`sh -c` of one not found) is not
            // ready, and its end is seen.
            let group = recorded_group_at(self.registry, record, self.root).filter(|group| {
                let seen = *first_seen.get_or_insert_with(Instant::now);
                settled = settled
                    || (seen.elapsed() >= SETTLE
                        && process::ProcessId {
                            pid: group.pgid,
                            start_time: group.leader_start,
                        }
                        .is_alive());
                settled
            });
            match (live.pid, group) {
                (Some(pid), Some(group)) => {
                    let Some(health) = &health else {
                        return Ok(Ready { pid, group });
                    };
                    let port = record.ports.first().copied();
                    silent = port
                        .filter(|&port| {
                            health.watches_port() && !listens_for(self.service, port, pid)
                        })
                        .map(|port| (group.pgid, port));
                    if let Some((_, port)) = silent {
                        last = format!("nothing of the unit listens on port {port}").into();
                    } else {
                        let bound = self.service.bound();
                        match health::check::probe(health, port, bound, self.vars, &record.worktree)
                        {
                            Ok(()) => return Ok(Ready { pid, group }),
                            Err(why) => last = why,
                        }
                    }
                }
                (_, None) => {
                    last = "its command has not started".into();
                    silent = None;
                }
                (None, Some(_)) => {}
            }
            if Instant::now() >= deadline {
                // As the foreground `up` says it: `... (it listens on
                // port 5001)`, from the same look at the service's tree;
                // then what holds its port, if anything does.
                let instead = silent
                    .map(|(pgid, port)| {
                        listening_instead(&elsewhere(pgid, port)) + &busy_with(port)
                    })
                    .unwrap_or_default();
                // A `cmd` check killed at its own timeout says that
                // duration already: the readiness timeout is said apart.
                let after = if last.timed_out {
                    ", still not ready after"
                } else {
                    " after"
                };
                return Err(last.reworded(format!(
                    "{}{after} {}{instead}",
                    last.what,
                    humantime::format_duration(self.service.ready_timeout)
                )));
            }
            let poll = health
                .as_ref()
                .map_or(health::READY_POLL, Health::ready_poll);
            // No longer than what is left of the settle time, once the
            // group is seen (then the poll's: a leader that did not
            // outlive it never makes the service ready).
            let settling = first_seen
                .filter(|_| !settled)
                .map(|seen: Instant| (seen + SETTLE).saturating_duration_since(Instant::now()))
                .filter(|left| !left.is_zero());
            std::thread::sleep(settling.map_or(poll, |left| poll.min(left)));
        }
    }
}

/// What a `cmd` health check of `status` sees of the worktree: its ports
/// as recorded (nothing is allocated), and what needs trust through the
/// same gate as `up`'s checks, so both see one environment
/// ([`CheckVariables::of`] adds a service's own).
pub struct CheckVariables {
    vars: Vec<(String, String)>,
    trusted: bool,
    /// The worktree's root as it is now, where a check runs: a record
    /// keeps the path its service started at, which `git worktree move`
    /// may have left.
    dir: std::path::PathBuf,
}

pub fn check_variables(ctx: &Ctx, scope: &Scope) -> Result<CheckVariables> {
    let data = ctx
        .registry
        .read_worktree(&scope.worktree.common_dir, &scope.worktree.root)?;
    let ports: alloc::Ports = data
        .allocations
        .iter()
        .map(|a| (a.service.clone(), a.port))
        .collect();
    let trusted = ctx.trust_gate(scope).applies();
    Ok(CheckVariables {
        vars: crate::exports::variables(scope, &ports, trusted),
        trusted,
        dir: scope.worktree.root.clone(),
    })
}

impl CheckVariables {
    /// What `record`'s check sees: the worktree's variables, and the
    /// variables of its service's port it started with
    /// ([`super::StartedHealth::env`]) set to its recorded port, as at its
    /// start, though the config no longer names the service (or gives
    /// the name to another), each through the trust gate again.
    pub fn of(&self, record: &Record) -> Vec<(String, String)> {
        let mut vars = self.vars.clone();
        let Some(port) = record.ports.first() else {
            return vars;
        };
        let own = record.health.iter().flat_map(|h| &h.env);
        for name in own.filter(|n| self.trusted || is_port_name(n)) {
            vars.retain(|(seen, _)| seen != name);
            vars.push((name.clone(), port.to_string()));
        }
        vars
    }
}

/// One run of the health check the service started with, from its
/// record alone ([`Record::started_health`]: the config may have changed
/// since, or dropped the service), as `status` shows it, run in the
/// worktree where it is now; `None`: the service has no check. A port
/// that answers for a process outside the unit (`main`, its pid, and
/// what descends from it) is not the service's: unhealthy, that process
/// named, as `up` judges readiness (a `cmd` check's port aside).
pub fn health_of(
    record: &Record,
    main: Option<u32>,
    vars: &CheckVariables,
) -> Option<health::Probe> {
    let (health, bound) = record.started_health()?;
    let port = record.ports.first().copied();
    let probe = health::check::probe(&health, port, bound, &vars.of(record), &vars.dir);
    Some(match (probe, port, main) {
        (Ok(()), Some(port), Some(main)) if health.watches_port() && !held_by_unit(port, main) => {
            Err(format!(
                "nothing of the unit listens on port {port}{}",
                busy_with(port)
            )
            .into())
        }
        (probe, ..) => probe,
    })
}

/// The process group (and its leader's start time) the registry records
/// on the hold of `record`'s unit (of the wtenv back end, on the hold of
/// its supervisor, `record`'s pid: not one an earlier run of the unit
/// left): its `run` writes them once the command has run a moment
/// ([`crate::supervise::SETTLE`]), a background service's at once
/// ([`crate::supervise::settle_for`]). The hold the sweep keeps while
/// the group's orphans run, and `ports` and `validate` name them by.
pub(super) fn recorded_group(registry: &Registry, record: &Record) -> Option<process::Group> {
    recorded_group_at(registry, record, &record.worktree)
}

/// [`recorded_group`], the worktree's entries read at `root`.
fn recorded_group_at(
    registry: &Registry,
    record: &Record,
    root: &std::path::Path,
) -> Option<process::Group> {
    let data = registry.read_worktree(&record.repository, root).ok()?;
    data.allocations
        .iter()
        .flat_map(|a| &a.holders)
        .filter(|h| record.manager != Manager::Wtenv || h.pid == record.pid)
        .find(|h| h.unit.as_ref().is_some_and(|u| u.name == record.unit))
        .and_then(|h| h.group())
}

/// `record`, with the group its supervisor recorded in the registry
/// ([`recorded_group`]) when the record names none yet: `up --detach`
/// writes it there only once the service is ready, and a supervisor
/// SIGKILLed before that leaves its service running all the same, an
/// orphan that `status` shows and `down` stops by it. Only the wtenv back
/// end stops a group itself; another record is returned as it is.
pub(super) fn with_group(registry: &Registry, mut record: Record) -> Record {
    if record.manager == Manager::Wtenv
        && record.group.is_none()
        && let Some(group) = recorded_group(registry, &record)
    {
        record.set_process_group(group);
    }
    record
}

/// `, and port 5000 is busy: pid 7 (...)`, naming what holds `port` (a
/// process not of the unit, a socket bound without listening) as
/// `conflicts` names it; nothing when the port is free.
fn busy_with(port: u16) -> String {
    match alloc::busy_holders([port], &mut alloc::RealSystem::default()).get(&port) {
        Some(holders) => format!(
            ", and port {port} is busy: {}",
            alloc::describe_found(holders)
        ),
        None => String::new(),
    }
}

/// Whether `service`'s `port` accepts connections and every listener
/// found on it is `main` or descends from it. A `socket = true`
/// service's port accepts by the socket its `run` holds, whatever the
/// server does: a connection would test that, and be one the server
/// then accepts, empty; who holds the socket is what tells, as the
/// foreground `up`'s watch looks at it
/// ([`crate::supervise::services::watch_ready`]).
fn listens_for(service: &Service, port: u16, main: u32) -> bool {
    if !service.socket && !probe::accepts(&health::check::addresses(service.bound(), port)) {
        return false;
    }
    held_by_unit(port, main)
}

/// Whether something holds `port` and every holder found is `main` or
/// descends from it.
fn held_by_unit(port: u16, main: u32) -> bool {
    let found = probe::holders(&[port].into())
        .remove(&port)
        .unwrap_or_default();
    !found.is_empty()
        && found
            .iter()
            .all(|h| h.pid == main || process::descends_from(h.pid, main))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's own variables are set to its port over the worktree's
    /// (the config may give the name to another service now), through the
    /// trust gate again; an older record's (none kept) add nothing.
    #[test]
    fn a_checks_own_variables_are_its_recorded_port_through_the_gate() {
        let record = |env: serde_json::Value| -> Record {
            serde_json::from_value(serde_json::json!({
                "version": 1, "manager": "wtenv", "unit": "wtenv-a_1-b-web",
                "service": "web", "repository": "/r/.git", "worktree": "/r",
                "ports": [5000], "log": "/s/web.log", "pid": 1, "start_time": 2,
                "started": 3,
                "health": {"check": {"cmd": {"command": "true"}}, "timeout_ms": 1, "env": env},
            }))
            .unwrap()
        };
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        let vars = |trusted| CheckVariables {
            vars: vec![pair("PORT", "6000"), pair("WTENV_PURPOSE", "dev")],
            trusted,
            dir: "/w".into(),
        };
        let own = record(serde_json::json!(["PORT", "WEB_LISTEN"]));
        assert_eq!(
            vars(true).of(&own),
            [
                pair("WTENV_PURPOSE", "dev"),
                pair("PORT", "5000"),
                pair("WEB_LISTEN", "5000")
            ]
        );
        assert_eq!(
            vars(false).of(&own),
            [pair("WTENV_PURPOSE", "dev"), pair("PORT", "5000")]
        );
        let older = record(serde_json::json!([]));
        assert_eq!(vars(true).of(&older), vars(true).vars);
    }
}
