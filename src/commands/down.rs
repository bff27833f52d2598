//! `wtenv down [SERVICE...]`: stops the worktree's services that run in the
//! background (all, or those named) and waits until their ports are
//! released. A port something still holds once its unit stopped (a
//! daemon out of the unit's reach) is said, naming its holder, and `down`
//! exits 1: it could not free every port it was asked to.

use std::time::Duration;

use crate::background::{self, StateDir};
use crate::config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to wait for the services to stop.
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "DUR", allow_hyphen_values = true, value_parser = crate::duration::parse_arg, default_value = "60s")]
    pub timeout: Duration,
    /// The services to stop (default: all of this worktree's).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub fn run(mut args: Args, ctx: &Ctx) -> Result<Outcome> {
    config::check_service_names(&mut args.services)?;
    let scope = ctx.scope()?;
    for name in &args.services {
        scope.require_service(name)?;
    }
    // Nothing is created when nothing ever ran in the background.
    let Some(dir) = StateDir::existing(ctx)? else {
        report::status(&nothing_runs(&args.services));
        return Ok(Outcome::SUCCESS);
    };
    // Stopping ends with writes (the records removed, the holds
    // released): a state directory they could not be made in (mode 500,
    // a read-only file system) is refused before anything is stopped.
    ctx.registry.check_usable()?;
    // An `up -d` starting them (or another `down`) goes first: what runs
    // is read once it is done.
    let _lock = background::WorktreeLock::acquire(
        &dir,
        &scope.worktree.git_dir,
        "wtenv down",
        "this worktree",
        &|| Ok(()),
    )?;
    // So is a damaged registry, or one locked past the wait: read now,
    // under the worktree's lock (an `up -d` it waited for wrote it last).
    ctx.registry.check_content()?;
    let records = dir.records_of(&scope, &args.services);
    // Those whose record this wtenv cannot read (a newer wtenv's) are
    // left as they are: never stopped, their files never removed.
    let unreadable = dir.unreadable_in(&background::Naming::of(&scope), &args.services);
    if records.is_empty() && unreadable.is_empty() {
        report::status(&nothing_runs(&args.services));
        return Ok(Outcome::SUCCESS);
    }
    if !records.is_empty() {
        background::stop_saying(ctx, &dir, &records, args.timeout)?;
    }
    // Its units that still run (`down web` leaves the others) are read
    // now that the stopped ones' records are removed: a port one of them
    // holds is said with `wtenv down`, not `kill`.
    let units = background::unit_pids(ctx, &scope);
    let still_held = background::StillHeld::probe(ctx, &records, units);
    if !unreadable.is_empty() {
        if let Some(still_held) = still_held {
            still_held.warn();
        }
        let lines: Vec<String> = unreadable
            .iter()
            .map(|u| format!("  {}", u.said()))
            .collect();
        return Err(Error::failed(format!(
            "left what this wtenv cannot read the record of, not stopped:\n{}",
            lines.join("\n")
        ))
        .with_hint(background::Unreadable::hint(&unreadable)));
    }
    match still_held {
        Some(still_held) => Err(still_held.error()),
        None => Ok(Outcome::SUCCESS),
    }
}

/// What `down` says when it finds nothing to stop: of the services named
/// (`down web` while `api` runs must not say that nothing does), else of
/// the worktree.
fn nothing_runs(services: &[String]) -> String {
    match services {
        [] => "nothing of this worktree runs in the background".to_owned(),
        [one] => format!(
            "{} does not run in the background; nothing to stop",
            crate::process::printable(one)
        ),
        many => format!(
            "none of {} runs in the background; nothing to stop",
            many.iter()
                .map(|s| crate::process::printable(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
