//! `wtenv run [--grace DUR] -- CMD ARGS...`: CMD with the worktree's
//! variables, its ports held by this wtenv while it runs, released on every
//! exit path.
//!
//! Order matters: the signal handlers first (a Ctrl-C from here on is ours),
//! then the release guard (so a failure after the registry write still
//! releases), then allocate-and-hold (one short transaction), then spawn,
//! then, once the child has run for [`supervise::SETTLE`] (a background
//! service's supervisor at once: [`supervise::settle_for`]), record its pgid
//! (another short transaction), then release. When every port is already
//! reserved, the hold waits and is written with the pgid
//! ([`crate::alloc::Ensured::hold_waits`]): a command that ends sooner
//! never writes the registry (it read the ports under the shared lock).
//! The registry lock is never held while the child runs.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alloc::HoldMode;
use crate::background::UnitRef;
use crate::background::logfile::{self, RotatingLog};
use crate::config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::output::OpenPipes;
use crate::ports::{accept_any, ensure_verified};
use crate::registry::Allocation;
use crate::report;
use crate::sockets::{self, Listener};
use crate::supervise::hold::{ReleaseGuard, hold, record_hold, record_pgid};
use crate::supervise::{self, Supervisor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between the forwarded signal and SIGKILL (e.g. 10s, 500ms).
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "DUR", allow_hyphen_values = true, value_parser = crate::duration::parse_arg, default_value = "10s")]
    pub grace: Duration,
    /// Bind the services' ports and hand the listening sockets to CMD (fd 3
    /// onwards, systemd's LISTEN_FDS protocol): no other process can take a
    /// port between wtenv's proof and CMD's start. With --service: only
    /// those services' sockets.
    #[arg(long)]
    pub sockets: bool,
    /// Hold only this service's port (repeatable); the others are
    /// reserved. `up --detach` runs each service so. Its socket is handed
    /// to CMD when it has `socket = true` (or with --sockets).
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
    /// The service manager's unit this runs as (MANAGER:NAME), recorded on
    /// the hold so the sweep asks the manager too.
    #[arg(long, hide = true, value_name = "UNIT", value_parser = UnitRef::parse)]
    pub unit: Option<UnitRef>,
    /// Also write the command's output, line by line, to this file,
    /// rotated at --log-limit bytes.
    #[arg(long, hide = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "BYTES", default_value_t = logfile::DEFAULT_LIMIT)]
    pub log_limit: u64,
    /// Start a new session first (the detached supervisor of `up --detach`).
    #[arg(long, hide = true)]
    pub setsid: bool,
    /// Wait, before anything else, for the byte the `up --detach` that
    /// started this supervisor writes on its stdin once it has recorded
    /// it; stdin's end without one (that `up -d` killed first) ends this
    /// run with nothing started and nothing written.
    #[arg(long, hide = true)]
    pub await_start: bool,
    /// The command and its arguments: every word from CMD on is its own.
    // No `allow_hyphen_values`: a word before CMD that starts with `-` is
    // one of run's flags, so a mistyped one is refused, not run as CMD.
    // `--` still passes a CMD that starts with `-`.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

pub fn run(mut args: Args, ctx: &Ctx) -> Result<Outcome> {
    config::check_service_names(&mut args.services)?;
    if args.setsid {
        // The wtenv back end's supervisor, which no manager passes
        // sockets: what its caller left open is let go of first.
        crate::supervise::detach().map_err(|e| Error::io("could not start a session", e.into()))?;
    }
    if args.await_start && !crate::supervise::await_start() {
        return Ok(Outcome::SUCCESS);
    }
    // Before anything is spawned: sockets a service manager passed us
    // become ours (close-on-exec), so only the hand-off passes them on.
    let passed = sockets::inherited::take()?;
    let supervisor = Supervisor::new(args.grace)
        .map_err(|e| Error::io("could not set up signal handling", e))?;
    let scope = ctx.scope()?;
    // The hold names this process (its pid is ours, not the command's):
    // `wtenv run -- CMD ARGS`, as `up`'s hold is `wtenv up`.
    let held_as = format!(
        "{} -- {}",
        supervise::hold::RUN,
        crate::shell::join_words(args.command.iter().map(|a| a.to_string_lossy()))
    );
    for name in &args.services {
        scope.require_service(name)?;
    }
    let log = match &args.log {
        Some(path) => Some(Arc::new(Mutex::new(RotatingLog::open(
            path,
            args.log_limit,
        )?))),
        None => None,
    };
    // What the supervisor killed unasked (the grace's SIGKILL) is said
    // in the log too: its stderr is the journal (systemd) or nothing
    // (the wtenv back end), not the log `logs` shows.
    if let Some(log) = &log {
        let log = log.clone();
        report::keep_in(Box::new(move |text| logfile::note(&log, text)));
    }
    let result = supervised(
        &args,
        ctx,
        &scope,
        supervisor,
        passed,
        &held_as,
        log.clone(),
    );
    // The supervisor of a background service talks to no terminal: why
    // it ended goes to the service's log too (`wtenv logs S`).
    if let (Err(e), Some(log)) = (&result, &log) {
        logfile::note(log, &report::render(e, report::quiet()));
    }
    result
}

/// [`run`] once its log is open: each error it returns is logged there.
fn supervised(
    args: &Args,
    ctx: &Ctx,
    scope: &crate::context::Scope,
    mut supervisor: Supervisor,
    passed: Vec<sockets::inherited::Passed>,
    held_as: &str,
    log: Option<Arc<Mutex<RotatingLog>>>,
) -> Result<Outcome> {
    let release = ReleaseGuard::new(&ctx.registry, &scope.worktree);
    let mut holder = hold(held_as);
    holder.unit = args.unit.clone();
    let mode = if args.services.is_empty() {
        HoldMode::Settling(holder.clone())
    } else {
        HoldMode::HoldServices(holder.clone(), args.services.clone())
    };
    let verified = ensure_verified(ctx, scope, &mode, args.skip_occupied, &accept_any)?;
    let (vars, hold_waits) = (verified.vars, verified.hold_waits);
    // What a waited hold holds: the configured services' ports, as
    // verified and exported (not a port allocated by hand for another).
    let to_hold: Vec<Allocation> = verified
        .mine
        .into_iter()
        .filter(|a| scope.config.service(&a.service).is_some())
        .collect();
    release.set_armed(!hold_waits);
    if hold_waits {
        // Its hold is written only once the command runs: a directory it
        // could not be written in is refused now, as any writer's is.
        ctx.registry.check_writable()?;
    }
    if let Some(sig) = supervisor.pending_signal() {
        return Err(Error::Interrupted(sig as i32));
    }
    let handed = sockets::run_services(
        &scope.config,
        &scope.worktree.root,
        args.sockets,
        &args.services,
    )?;
    let listeners = if handed.is_empty() && passed.is_empty() {
        Vec::new()
    } else {
        // The manager's sockets are handed on as they are; only the
        // services it passed none for are bound here.
        let ports = scope.allocated_ports(&ctx.registry)?;
        let mut listeners = sockets::inherited::assign(
            passed,
            &scope.config,
            &scope.worktree.root,
            &args.services,
            &ports,
        )?;
        let rest: Vec<_> = handed
            .into_iter()
            .filter(|s| listeners.iter().all(|l| l.service != s.name))
            .collect();
        // A port something listens on already is refused as `up` refuses
        // it: one of this worktree's background services is stopped with
        // `wtenv down`, not `kill`.
        crate::supervise::services::refuse_busy(
            &rest,
            &ports,
            &crate::background::unit_pids(ctx, scope),
            &crate::background::Naming::of(scope),
            "wtenv run",
        )?;
        listeners.extend(sockets::bind_services(&rest, &ports)?);
        listeners
    };
    let (mut expr, exec) = if listeners.is_empty() {
        (duct::cmd(&args.command[0], &args.command[1..]), None)
    } else {
        let refs: Vec<&Listener> = listeners.iter().collect();
        let (expr, exec) = sockets::handoff(&args.command, &refs, sockets::Stdin::Inherit)?;
        (expr, Some(exec))
    };
    for (name, value) in &vars {
        expr = expr.env(name, value);
    }
    let output = OpenPipes::default();
    if let Some(log) = &log {
        // One pipe, as fd 1 and fd 2: the log keeps the order of the
        // command's writes, as a terminal shows them (two pipes read by
        // two threads logged `echo 1; echo 2 >&2` in either order).
        let err = |e| Error::io("could not create a pipe", e);
        let (reader, writer) = std::io::pipe().map_err(err)?;
        expr = expr
            .stdout_file(writer.try_clone().map_err(err)?)
            .stderr_file(writer);
        logfile::tee(reader, log.clone(), &output);
    }
    let program = &args.command[0];
    // A background unit's service is named as `up` names it.
    let named = match (&args.unit, args.services.as_slice()) {
        (Some(_), [service]) => format!("service {service}"),
        _ => program.to_string_lossy().into_owned(),
    };
    // Our copies of the pipes' write ends go with the expression, so the
    // log threads see EOF once the command's processes close theirs.
    let spawned = supervisor.spawn(expr, exec, &named, program, None, log.is_none());
    let pgid = match spawned {
        Ok(pgid) => pgid,
        Err(e) => {
            report::problem(&e.message(), Some(&e.hint()));
            if let Some(log) = &log {
                logfile::note(log, &report::problem_text(&e.message(), Some(&e.hint())));
            }
            return Ok(e.outcome());
        }
    };
    // A background service's group is recorded at once: its supervisor
    // may be SIGKILLed any time, and what its service then runs on as
    // is found by that record.
    let settle = supervise::settle_for(args.unit.is_some());
    let waited = supervisor.wait(false, settle, || {
        if hold_waits {
            release.set_armed(record_hold(
                &ctx.registry,
                &scope.worktree,
                &holder,
                &to_hold,
                pgid,
            ));
        } else {
            record_pgid(&ctx.registry, &scope.worktree, |_| Some(pgid));
        }
    });
    // The group is gone: let the log threads write the last lines.
    output.drain(Instant::now() + Duration::from_millis(500));
    // The supervisor of a background service says how its command ended,
    // after its last lines: a unit its manager forgets (systemd's
    // `--collect`) leaves no other word of it, and `up --detach` takes
    // its reason from there. Under launchd stderr is the log.
    if (args.unit.is_some() || log.is_some())
        && let Some(status) = waited.exits.first().copied().flatten()
    {
        let said = supervise::services::ended(&named, status);
        report::status(&said);
        if let Some(log) = &log {
            logfile::note(log, &report::status_text(&said));
        }
    }
    // Our copies of the sockets close before the ports are released.
    drop(listeners);
    Ok(supervise::run_outcome(&waited))
}
