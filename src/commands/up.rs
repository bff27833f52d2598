//! `wtenv up [SERVICE...]`: the services' `run` commands of `wtenv.toml`,
//! each supervised like `wtenv run` in its own process group.
//!
//! Every service sees every service's port variables (the worktree's full
//! set). Each output line is prefixed with its service's name (coloured on
//! a terminal). Services start in dependency order, each once its
//! dependencies pass their health checks, and are restarted by their
//! policy ([`crate::supervise::up`]). A service ending for good stops the
//! others; Ctrl-C stops all; the exit status is that service's, and the
//! ports' holds are released on every path.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::alloc::HoldMode;
use crate::background::{self, Manager, logfile};
use crate::config::{self, Service};
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::health;
use crate::output;
use crate::output::OpenPipes;
use crate::ports::{accept_any, ensure_verified};
use crate::report;
use crate::sockets::{self, Listener};
use crate::supervise::hold::{ReleaseGuard, UP, hold, record_pgid};
use crate::supervise::services::{self, Prefix, pump};
use crate::supervise::up::{Unit, Up};
use crate::supervise::{self, Pgid, Supervisor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between SIGTERM (or the forwarded signal) and SIGKILL.
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "DUR", allow_hyphen_values = true, value_parser = crate::duration::parse_arg, default_value = "10s")]
    pub grace: Duration,
    /// Start the services in the background, each a unit of a service
    /// manager, and return once every one is ready.
    #[arg(short, long)]
    pub detach: bool,
    /// With --detach: who runs them (default: launchd on macOS, systemd
    /// where `systemctl --user` answers, else a detached wtenv).
    #[arg(long, value_enum, value_name = "MANAGER", requires = "detach")]
    pub manager: Option<Manager>,
    /// With --detach: each service's log file rotates at this size (e.g.
    /// 512K, 10M).
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = logfile::parse_size, default_value = "10M", requires = "detach")]
    pub log_limit: u64,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
    /// The services to start (default: every service with a `run` command).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub fn run(mut args: Args, ctx: &Ctx) -> Result<Outcome> {
    config::check_service_names(&mut args.services)?;
    if args.detach {
        return detach(args, ctx);
    }
    let mut supervisor = Supervisor::new(args.grace)
        .map_err(|e| Error::io("could not set up signal handling", e))?;
    let scope = ctx.scope()?;
    let selected = select(&scope, &args.services)?;
    let mut line = String::from(UP);
    for s in &args.services {
        line.push(' ');
        line.push_str(s);
    }
    // One running as a background unit is not started twice: refused
    // before anything is held, as `up -d` waited for (its lock).
    let signalled = std::cell::RefCell::new(&mut supervisor);
    let interrupted = || match signalled.borrow_mut().pending_signal() {
        Some(sig) => Err(Error::Interrupted(sig as i32)),
        None => Ok(()),
    };
    background::refuse_running(ctx, &scope, &selected, &interrupted)?;
    let _release = ReleaseGuard::new(&ctx.registry, &scope.worktree);
    let vars = ensure_verified(
        ctx,
        &scope,
        &HoldMode::HoldAll(hold(&line)),
        args.skip_occupied,
        &accept_any,
    )?
    .vars;
    let ports = scope.allocated_ports(&ctx.registry)?;
    services::refuse_busy(
        &selected,
        &ports,
        &background::unit_pids(ctx, &scope),
        &background::Naming::of(&scope),
        "wtenv up",
    )?;
    // Every socket is bound before any service starts (a port taken since
    // the check above fails `up` with nothing started), and kept while `up` runs: each restart
    // of a service gets the same socket. Declared before `up`, dropped
    // after it, and before the release guard: closed before the release.
    let with_socket: Vec<&Service> = selected.iter().copied().filter(|s| s.socket).collect();
    let listeners: BTreeMap<String, Listener> = sockets::bind_services(&with_socket, &ports)?
        .into_iter()
        .map(|l| (l.service.clone(), l))
        .collect();
    if let Some(sig) = supervisor.pending_signal() {
        return Err(Error::Interrupted(sig as i32));
    }
    // Colour is decided per stream: the prefixes of stdout lines by
    // stdout's state, those of stderr lines (and up's own) by stderr's.
    let colour_out = ctx.color_stdout();
    let extra = services::child_env(colour_out, |name| {
        crate::settings::passed(name).is_some() || vars.iter().any(|(n, _)| n == name)
    });
    let width = selected.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let units: Vec<Unit> = selected
        .iter()
        .enumerate()
        .map(|(i, service)| Unit {
            service,
            port: ports.get(&service.name).copied(),
            prefix: Prefix::new(&service.name, width, i, ctx.color),
            output: OpenPipes::default(),
        })
        .collect();
    let outputs: Vec<OpenPipes> = units.iter().map(|u| u.output.clone()).collect();
    let spawn =
        |sup: &mut Supervisor, unit: &Unit| -> std::result::Result<(usize, Pgid), Outcome> {
            let pipes = std::io::pipe().and_then(|out| Ok((out, std::io::pipe()?)));
            let ((out_r, out_w), (err_r, err_w)) = pipes.map_err(|source| {
                // Said, with its hint and exit code, as a spawn that
                // failed on the same error is (out of descriptors: 126).
                let name = format!("service {}", unit.service.name);
                let message = format!("could not create a pipe for {name}: {source}");
                let e = supervise::spawn::SpawnError {
                    program: name,
                    command: Default::default(),
                    source,
                    dir: None,
                };
                report::problem(&message, Some(&e.hint()));
                e.outcome()
            })?;
            let command = unit.service.run.as_deref().unwrap_or_default();
            // Where the worktree is now: a restart after `git worktree
            // move` runs in the moved directory (the old path is gone).
            let root = scope.worktree.root_now();
            let argv = supervise::in_dir(supervise::command_words(command), &root);
            let (mut expr, exec) = match listeners.get(&unit.service.name) {
                Some(l) => sockets::handoff(&argv, &[l], sockets::Stdin::Null)
                    .map(|(expr, exec)| (expr, Some(exec)))
                    .map_err(|e| {
                        report::error(&e);
                        Outcome::Code(crate::exit::FAILURE)
                    })?,
                None => (duct::cmd(&argv[0], &argv[1..]).stdin_null(), None),
            };
            // Assigned, not shadowed: the expression built so far holds
            // the hand-off's pair, which must close with the last one.
            expr = expr.dir(&root).stdout_file(out_w).stderr_file(err_w);
            for (name, value) in &vars {
                expr = expr.env(name, value);
            }
            for (name, value) in &extra {
                expr = expr.env(name, value);
            }
            let name = format!("service {}", unit.service.name);
            // Our copies of the write ends go with the expression, so the
            // pumps see EOF once the service's processes close theirs.
            let spawned = sup.spawn(expr, exec, &name, &argv[0], Some(&root), false);
            let pgid = spawned.map_err(|e| {
                report::problem(&e.message(), Some(&e.hint()));
                e.outcome()
            })?;
            let index = selected
                .iter()
                .position(|s| s.name == unit.service.name)
                .unwrap_or_default();
            let prefix_out = Prefix::new(&unit.service.name, width, index, colour_out);
            pump(out_r, prefix_out, false, &unit.output);
            pump(err_r, unit.prefix.clone(), true, &unit.output);
            Ok((sup.groups() - 1, pgid))
        };
    let spawned = |pgids: &BTreeMap<String, Pgid>| {
        record_pgid(&ctx.registry, &scope.worktree, |a| {
            pgids.get(&a.service).copied()
        })
    };
    let state_dir = ctx
        .registry
        .path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut up = Up::new(
        units,
        &supervisor,
        vars.clone(),
        scope.worktree.clone(),
        &state_dir,
        Box::new(spawn),
        Box::new(spawned),
    );
    let report = supervisor.drive(&mut up);
    // Every group is gone: let the pumps print the last lines.
    let deadline = Instant::now() + Duration::from_millis(500);
    for output in &outputs {
        output.drain(deadline);
    }
    if let Some(failure) = up.failure() {
        return Err(Error::failed(failure.to_owned()).with_hint(
            "every service was stopped; see its output above, or raise its ready_timeout",
        ));
    }
    Ok(up.outcome(&report))
}

/// `up --detach`: one line per service (unit, pid, port) once all are
/// ready.
fn detach(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let scope = ctx.scope()?;
    let selected = select(&scope, &args.services)?;
    let options = background::Options {
        manager: Manager::choose(args.manager)?,
        grace: args.grace,
        log_limit: args.log_limit,
        skip_occupied: args.skip_occupied,
    };
    // A signal while it starts them (Ctrl-C) leaves what it started
    // running in the background, said, and wtenv dies of it.
    let signals = crate::git::Signals::catch()?;
    let started = background::up(ctx, &scope, &selected, &options, &|| signals.check())?;
    let rows: Vec<Vec<String>> = started
        .iter()
        .map(|s| {
            let ports: Vec<String> = s.record.ports.iter().map(u16::to_string).collect();
            vec![
                s.record.service.clone(),
                s.record.unit.clone(),
                s.pid.map_or("pid -".into(), |p| format!("pid {p}")),
                format!("port {}", ports.join(",")),
                if s.already { "(already running)" } else { "" }.into(),
            ]
        })
        .collect();
    let table = output::table(&["", "", "", "", ""], &rows);
    let lines: Vec<&str> = table.lines().skip(1).map(str::trim_end).collect();
    output::stdout(&format!("{}\n", lines.join("\n")))?;
    Ok(Outcome::SUCCESS)
}

/// The services to start: those named (and what they depend on), else
/// every one with a `run`; in a dependency order.
fn select<'a>(scope: &'a Scope, names: &[String]) -> Result<Vec<&'a Service>> {
    let config = &scope.config;
    let services = &config.services;
    let wanted: Vec<usize> = if names.is_empty() {
        let all: Vec<usize> = (0..services.len())
            .filter(|&i| services[i].run.is_some())
            .collect();
        if all.is_empty() {
            return Err(Error::not_found("no service has a run command")
                .with_hint(scope.add_run_hint("NAME")));
        }
        all
    } else {
        names
            .iter()
            .map(|n| config.service_index(n, &scope.worktree.root))
            .collect::<Result<_>>()?
    };
    let graph: Vec<(&str, &[String])> = services
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
        .collect();
    health::start_order(&graph, &wanted)
        .into_iter()
        .map(|i| {
            let s = &services[i];
            if s.run.is_none() {
                let n = &s.name;
                let why = match names.contains(n) {
                    true => format!("service {n} has no run command"),
                    false => format!(
                        "service {n} has no run command, and a service to start depends on it"
                    ),
                };
                return Err(Error::not_found(why).with_hint(scope.add_run_hint(n)));
            }
            Ok(s)
        })
        .collect()
}
