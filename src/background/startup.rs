//! `up --detach`: start each service as a unit, in dependency order, and
//! wait until each is ready; on failure stop what was started.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::lock::WorktreeLock;
use super::readiness::{Readiness, with_group};
use super::{
    Launch, Live, Manager, Naming, Options, Record, StartedHealth, StateDir, StillHeld, UnitRef,
    detached, launchd, logfile, passed_env, query, query_all, run_argv, stop, systemd,
    unit_file_name, unix_now,
};
use crate::alloc;
use crate::config::Service;
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::health;
use crate::process::{ProcessId, printable};

/// A service started by `up --detach`.
#[derive(Debug, Clone)]
pub struct Started {
    pub record: Record,
    pub pid: Option<u32>,
    /// Already running before this `up`.
    pub already: bool,
}

/// `up --detach`: makes each service's unit, takes the worktree's lock,
/// reserves the ports, starts each service (and what it depends on, after
/// those are ready) as a unit, waits until each is ready, and returns
/// them. When one does not
/// get ready, what this call started is stopped and the error says why;
/// the ports stay reserved, as `env` reserves them.
pub fn up(
    ctx: &Ctx,
    scope: &Scope,
    services: &[&Service],
    options: &Options,
    interrupted: &dyn Fn() -> Result<()>,
) -> Result<Vec<Started>> {
    // Named now, made once the units' checks passed (below, for the
    // worktree's lock): their refusal leaves the state directory as it was.
    let dir = StateDir::planned(ctx)?;
    let naming = Naming::of(scope);
    let all = &scope.config.services;
    let graph: Vec<(&str, &[String])> = all
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
        .collect();
    let wanted: Vec<usize> = services
        .iter()
        .filter_map(|s| all.iter().position(|x| x.name == s.name))
        .collect();
    let order = health::start_order(&graph, &wanted);
    // A service whose record this wtenv cannot read (a newer wtenv's) is
    // refused before anything is reserved, and again under the lock.
    let to_run: Vec<&Service> = order
        .iter()
        .map(|&i| &all[i])
        .filter(|s| s.run.is_some())
        .collect();
    super::refuse_unreadable(&dir, scope, &to_run)?;
    // Each unit is made before any port is reserved (what it hands its
    // manager names no port), and what the manager cannot carry (a passed
    // variable, a path) refused: the registry stays as it was.
    let env = passed_env();
    // What systemd's manager has of the units (an exported one is
    // refused): asked once, for every service to launch, at the first
    // check.
    let exported = systemd::Exported::of(
        to_run
            .iter()
            .map(|s| unit_ref(options.manager, &naming, s).name)
            .collect(),
    );
    let launches = order
        .iter()
        .map(|&i| {
            let service = &all[i];
            if service.run.is_none() {
                return Ok(None);
            }
            let launch = launch_of(ctx, scope, &dir, &naming, service, &env, options)?;
            // One whose earlier run is orphaned is refused, before
            // anything is reserved.
            refuse_orphaned(&dir, scope, service)?;
            // One already running is left as it is (below): not refused
            // for what its manager could not be handed now.
            if running_record(&dir, scope, service).is_none() {
                check(options.manager, &launch, &exported)?;
            }
            Ok(Some(launch))
        })
        .collect::<Result<Vec<_>>>()?;
    let dir = StateDir::of(ctx)?;
    // From here until each unit it starts is ready (or stopped), this
    // worktree's starts and stops wait for this one: what runs is looked
    // at again now, under the lock.
    let _lock = WorktreeLock::acquire(
        &dir,
        &scope.worktree.git_dir,
        "wtenv up --detach",
        "this worktree",
        interrupted,
    )?;
    // Nothing is reserved or started where a `remove` waited for was.
    super::lock::refuse_gone(&scope.worktree.root)?;
    super::refuse_unreadable(&dir, scope, &to_run)?;
    // Reserved under the lock, after the checks `env` makes (a port held
    // outside the worktree is refused): a `validate --verify-ports --fix`
    // leaves them from now on (its `worktree_starting`) until each unit's
    // `run` holds its port, and an `up -d` that waited for a `remove`
    // reserved nothing for the gone worktree. Sticky even in a shell
    // that holds the ports (a `nix develop` shell's hook): the units
    // outlive that shell. The variables are those the services see (for
    // `cmd` health checks).
    let crate::ports::Verified { vars, ports, .. } = crate::ports::ensure_verified(
        ctx,
        scope,
        &alloc::HoldMode::Sticky,
        options.skip_occupied,
        &crate::ports::accept_any,
    )?;
    // The services this call starts: not one already running.
    let mut to_start = Vec::new();
    for (&i, launch) in order.iter().zip(&launches) {
        let service = &all[i];
        if launch.is_some() {
            // Orphaned since the look before the reservation: nothing is
            // started still.
            refuse_orphaned(&dir, scope, service)?;
        }
        if let Some(launch) = launch
            && running_record(&dir, scope, service).is_none()
        {
            check(options.manager, launch, &exported)?;
            to_start.push(service);
        }
    }
    // What foreground `up` refuses, refused before any unit starts: a
    // port something listens on already (a server left running in the
    // worktree) would fail its service with "address in use".
    crate::supervise::services::refuse_busy(
        &to_start,
        &ports,
        &super::unit_pids(ctx, scope),
        &naming,
        "wtenv up",
    )?;
    let mut run = Startup {
        ctx,
        scope,
        interrupted,
        dir: &dir,
        vars: &vars,
        started: Vec::new(),
        pending: Vec::new(),
        ready: BTreeSet::new(),
    };
    for (i, launch) in order.into_iter().zip(launches) {
        let service = &all[i];
        let Some(mut launch) = launch else {
            // Nothing to start (a dependency run some other way).
            run.ready.insert(service.name.clone());
            continue;
        };
        for dep in &service.depends_on {
            run.await_ready(Some(dep))?;
        }
        if let Some((record, live)) = running_record(&dir, scope, service) {
            // Left as it is, and waited for as one this call started: it
            // runs, but may not be ready (an earlier `up -d` interrupted
            // while it started, or its server gone from its port since).
            run.pending.push(Pending {
                index: run.started.len(),
                service,
                child: None,
                mark: None,
            });
            // Its pid from the answer that said it runs.
            run.started.push(Started {
                record,
                pid: live.pid,
                already: true,
            });
            continue;
        }
        launch.ports = ports.get(&service.name).copied().into_iter().collect();
        // Where its log ends before this run: the lines of an error's hint
        // are this run's, not an earlier run's last words.
        let mark = logfile::Mark::of(&launch.log);
        let result = match options.manager {
            Manager::Systemd => systemd::start(&launch).map(|pid| (pid, None)),
            Manager::Launchd => launchd::start(&launch, dir.path()).map(|pid| (pid, None)),
            Manager::Wtenv => detached::start(&launch).map(|c| (Some(c.pid), Some(c))),
        };
        let (pid, mut child) = match result {
            Ok(x) => x,
            Err(e) => {
                run.stop_started();
                return Err(e);
            }
        };
        let record = Record {
            version: super::RECORD_VERSION,
            manager: options.manager,
            unit: launch.unit.clone(),
            service: service.name.clone(),
            repository: scope.worktree.common_dir.clone(),
            worktree: scope.worktree.root.clone(),
            git_dir: Some(scope.worktree.git_dir.clone()),
            ports: launch.ports.clone(),
            log: launch.log.clone(),
            pid: pid.unwrap_or(0),
            start_time: pid.and_then(ProcessId::of).map_or(0, |p| p.start_time),
            started: unix_now(),
            group: None,
            group_session: None,
            health: Some(StartedHealth::of(service, &vars)),
            health_cmd: None,
        };
        let written = dir.write(&record);
        // Recorded: its supervisor may start the service now. (Not
        // recorded: it is dropped, its stdin closed, and it ends.)
        if let (Ok(()), Some(c)) = (&written, child.as_mut()) {
            c.go();
        }
        run.pending.push(Pending {
            index: run.started.len(),
            service,
            child,
            mark,
        });
        run.started.push(Started {
            record,
            pid,
            already: false,
        });
        // Without its record `down` cannot find it (a full disk): stop
        // it, with the rest, now.
        if let Err(e) = written {
            run.stop_started();
            return Err(e);
        }
        if let Err(signal) = interrupted() {
            return Err(run.leave_running(signal));
        }
    }
    run.await_ready(None)?;
    Ok(run.started)
}

/// What starting `service` takes, but its ports (known once reserved).
fn launch_of(
    ctx: &Ctx,
    scope: &Scope,
    dir: &StateDir,
    naming: &Naming,
    service: &Service,
    env: &[(String, std::ffi::OsString)],
    options: &Options,
) -> Result<Launch> {
    let unit_ref = unit_ref(options.manager, naming, service);
    let log = dir.log_path(&unit_ref.name);
    // launchd writes the output to the log itself.
    let run_log = (options.manager != Manager::Launchd).then_some(log.as_path());
    Ok(Launch {
        service: service.name.clone(),
        unit: unit_ref.name.clone(),
        group: naming.group(),
        root: scope.worktree.root.clone(),
        ports: Vec::new(),
        argv: run_argv(ctx, service, &unit_ref, run_log, options)?,
        log,
        env: env.to_vec(),
        grace: options.grace,
    })
}

/// The unit `service` is started as under `manager`.
fn unit_ref(manager: Manager, naming: &Naming, service: &Service) -> UnitRef {
    UnitRef {
        manager,
        name: unit_file_name(manager, &naming.unit(&service.name)),
    }
}

/// Refuses `launch` when its manager cannot be given it, by making what
/// the manager gets (the same function its start calls), or when its
/// record cannot be kept: the record is JSON text, and names the log
/// under the state directory, whose path may not be UTF-8 (the record
/// was then written after the start, which failed on it: a service ran
/// that `down` could not find). `exported`: what systemd's manager has
/// of the units, asked once for all of them.
fn check(manager: Manager, launch: &Launch, exported: &systemd::Exported) -> Result<()> {
    logfile::check_log(&launch.log)?;
    if launch.log.to_str().is_none() {
        return Err(Error::invalid(format!(
            "cannot keep the record of {}: the state directory's path {} is not UTF-8",
            launch.unit,
            crate::process::printable_path(launch.log.parent().unwrap_or(&launch.log))
        ))
        .with_hint(
            "set WTENV_STATE_DIR (or XDG_STATE_HOME, HOME) to a UTF-8 path, or start the services with 'wtenv up'",
        ));
    }
    match manager {
        Manager::Systemd => {
            systemd::run_args(launch)?;
            exported.refuse(launch)
        }
        Manager::Launchd => launchd::plist(&launchd::agent_of(launch)).map(drop),
        // A process of ours: its environment and paths are passed as bytes.
        Manager::Wtenv => Ok(()),
    }
}

/// The state of one `up --detach` while it starts services.
struct Startup<'a> {
    ctx: &'a Ctx,
    scope: &'a Scope,
    /// A signal's `Err` ([`Startup::leave_running`]).
    interrupted: &'a dyn Fn() -> Result<()>,
    dir: &'a StateDir,
    /// The worktree's variables, for `cmd` health checks.
    vars: &'a [(String, String)],
    started: Vec<Started>,
    /// Started, not yet seen ready.
    pending: Vec<Pending<'a>>,
    ready: BTreeSet<String>,
}

/// A service started, not yet seen ready.
struct Pending<'a> {
    /// Its place in [`Startup::started`].
    index: usize,
    service: &'a Service,
    /// The detached supervisor while it is our child.
    child: Option<detached::Child>,
    /// Where its log ended before it started.
    mark: Option<logfile::Mark>,
}

impl Startup<'_> {
    /// Waits until `service` (or every pending one) is ready; on failure
    /// stops what this `up` started and says why.
    fn await_ready(&mut self, service: Option<&str>) -> Result<()> {
        while let Some(k) = self
            .pending
            .iter()
            .position(|p| service.is_none_or(|n| p.service.name == n))
        {
            let Pending {
                index: i,
                service: svc,
                mut child,
                mark,
            } = self.pending.remove(k);
            let deadline = Instant::now() + svc.ready_timeout;
            let check = Readiness {
                service: svc,
                vars: self.vars,
                registry: &self.ctx.registry,
                root: &self.scope.worktree.root,
                interrupted: self.interrupted,
            };
            match check.wait(&self.started[i].record, child.as_mut(), mark, deadline) {
                Ok(ready) => {
                    self.started[i].pid = Some(ready.pid);
                    self.ready.insert(svc.name.clone());
                    let Started {
                        record, already, ..
                    } = &mut self.started[i];
                    if record.manager == Manager::Wtenv && !*already {
                        record.set_process_group(ready.group);
                        self.dir.write(record)?;
                    }
                }
                Err(reason) => {
                    if let Err(signal) = (self.interrupted)() {
                        return Err(self.leave_running(signal));
                    }
                    self.stop_started();
                    let record = &self.started[i].record;
                    let tail = logfile::tail_since(&record.log, mark, 10);
                    let mut hint = format!("see its output with 'wtenv logs {}'", svc.name);
                    if !tail.is_empty() {
                        hint = format!("its last lines:\n{tail}{hint}");
                    }
                    // A failed `cmd` check's last lines follow, as the
                    // foreground `up` and `status` say them. One that ran
                    // before this call is left running, and said so.
                    let stopped = if self.started.iter().any(|s| !s.already) {
                        "; stopped what this 'up --detach' started"
                    } else {
                        ""
                    };
                    let why = if self.started[i].already {
                        hint = format!(
                            "{hint}; start it again with 'wtenv down {0}', then 'wtenv up -d {0}'",
                            svc.name
                        );
                        format!(
                            "runs (it ran before this 'up --detach', and is left running) but is not ready: {}{stopped}",
                            reason.what
                        )
                    } else {
                        format!("did not get ready: {}{stopped}", reason.what)
                    };
                    let why = reason.reworded(why);
                    return Err(
                        Error::failed(format!("service {} {}", svc.name, why.detailed()))
                            .with_hint(hint),
                    );
                }
            }
        }
        Ok(())
    }

    /// A signal (Ctrl-C) while it starts them: what it started is left
    /// running in the background, each unit said with how to see and
    /// stop it (as `up -d`'s units are the manager's, not the terminal's:
    /// they run on whether or not it waits), and the signal returned.
    fn leave_running(&self, signal: Error) -> Error {
        let left: Vec<String> = self
            .started
            .iter()
            .filter(|s| !s.already)
            .map(|s| format!("{} ({})", s.record.service, s.record.unit))
            .collect();
        if !left.is_empty() {
            crate::report::warn_hinted(
                &format!(
                    "interrupted; left running in the background, not waited for: {}",
                    left.join(", ")
                ),
                "see them with 'wtenv status', stop them with 'wtenv down'",
            );
        }
        signal
    }

    /// Stops the units this call started (not those that ran before it).
    /// One not yet ready has no group in its record: the one its `run`
    /// recorded in the registry is taken, so that a service whose
    /// supervisor died (SIGKILLed) is stopped, as `down` stops an orphan,
    /// and the dead supervisor's hold swept, not kept for its orphans. A
    /// port still held once they stopped is said ([`super::StillHeld`]);
    /// one that a unit still running holds (one that ran before this
    /// `up`) is said with `wtenv down`.
    fn stop_started(&self) {
        let mine: Vec<Record> = self
            .started
            .iter()
            .filter(|s| !s.already)
            .map(|s| with_group(&self.ctx.registry, s.record.clone()))
            .collect();
        match stop(self.ctx, self.dir, &mine, Duration::from_secs(60)) {
            Ok(()) => {
                let units = super::unit_pids(self.ctx, self.scope);
                if let Some(still_held) = StillHeld::probe(self.ctx, &mine, units) {
                    still_held.warn();
                }
            }
            Err(e) => tracing::warn!("could not stop what was started: {e}"),
        }
    }
}

/// Refuses `service` of `scope`'s worktree when an earlier run of it is
/// orphaned: its supervisor of the wtenv back end was killed
/// (SIGKILL) and its service runs on, supervised by nothing, logged
/// nowhere, its port held by a dead holder's hold. Starting it again
/// would run a second copy beside it (a second `down` stopped only the
/// new one); left as `(already running)`, it would be said ready while
/// nothing supervises it. `down SERVICE` stops it. Exit 1, the registry
/// and the state directory as they were.
fn refuse_orphaned(dir: &StateDir, scope: &Scope, service: &Service) -> Result<()> {
    let Some(record) = dir
        .records_of(scope, std::slice::from_ref(&service.name))
        .into_iter()
        .find(|r| r.manager == Manager::Wtenv && query(r).state == "orphaned")
    else {
        return Ok(());
    };
    let pids = detached::orphans(&record);
    Err(Error::refused(format!(
        "service {} runs on without its supervisor, pid {}, which was killed (orphaned): {}; nothing was started",
        printable(&service.name),
        record.pid,
        alloc::describe_pids(&pids)
    ))
    .with_hint(format!(
        "stop it with 'wtenv down {}', then start it again",
        printable(&service.name)
    )))
}

/// The record of `service` of `scope`'s worktree running in the
/// background, if one is, with what its manager said of it (its records
/// asked together, [`query_all`]).
fn running_record(dir: &StateDir, scope: &Scope, service: &Service) -> Option<(Record, Live)> {
    let records = dir.records_of(scope, std::slice::from_ref(&service.name));
    let lives = query_all(&records);
    records
        .into_iter()
        .zip(lives)
        .find(|(_, live)| live.running())
}
