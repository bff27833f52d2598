//! What the foreground `up` checks of the worktree's background services
//! before it starts anything: a service that runs as a unit (its record's
//! unit running, listening yet or not) is not started a second time, and
//! a port a unit's process listens on is said as the unit's.

use super::{Naming, StateDir, Unreadable, WorktreeLock, query, query_all};
use crate::config::Service;
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::process::printable;

/// Refuses `services` of which one runs in the background in `scope`'s
/// worktree, naming each one's unit and the `down` that stops it. Looked
/// at under the worktree's lock ([`WorktreeLock`]), so an `up -d` still
/// starting one is waited for and then seen, and a `remove` of the
/// worktree waited for leaves nothing to start ([`super::lock::refuse_gone`]);
/// `interrupted` ends the wait.
pub fn refuse_running(
    ctx: &Ctx,
    scope: &Scope,
    services: &[&Service],
    interrupted: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let Some(dir) = StateDir::existing(ctx)? else {
        return Ok(());
    };
    // Taken even with no record yet: an `up -d` holding it may be about
    // to write its first.
    let _lock = WorktreeLock::acquire(
        &dir,
        &scope.worktree.git_dir,
        "wtenv up",
        "this worktree",
        interrupted,
    )?;
    // Nothing is started where a `remove` waited for was.
    super::lock::refuse_gone(&scope.worktree.root)?;
    refuse_unreadable(&dir, scope, services)?;
    let running: Vec<_> = dir
        .records_of(scope, &[])
        .into_iter()
        .filter(|r| services.iter().any(|s| s.name == r.service) && query(r).running())
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = running
        .iter()
        .map(|r| {
            format!(
                "  {} ({}, {})",
                printable(&r.service),
                r.manager.name(),
                printable(&r.unit)
            )
        })
        .collect();
    let names: Vec<String> = running.iter().map(|r| printable(&r.service)).collect();
    Err(Error::refused(format!(
        "services to start already run in the background; nothing was started:\n{}",
        lines.join("\n")
    ))
    .with_hint(format!(
        "stop them with 'wtenv down {}' (or 'wtenv down' for all), then run wtenv up again; or leave them running ('wtenv status' shows them)",
        names.join(" ")
    )))
}

/// Refuses `services` of which one has a record file this wtenv cannot
/// read ([`Unreadable`]): whether it runs cannot be told, and a unit
/// started now would have that file's name, its record written over that
/// file, or removed with it when its start fails (an older wtenv's
/// `up -d` so lost a newer one's services, which ran on out of sight).
pub fn refuse_unreadable(dir: &StateDir, scope: &Scope, services: &[&Service]) -> Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let found = dir.unreadable_in(&Naming::of(scope), &names);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found.iter().map(|u| format!("  {}", u.said())).collect();
    Err(Error::refused(format!(
        "services to start have a record this wtenv cannot read, so it cannot tell whether they run; nothing was started:\n{}",
        lines.join("\n")
    ))
    .with_hint(Unreadable::hint(&found)))
}

/// The main pids of the worktree's units that run (a port one of them,
/// or a process under it, listens on is the unit's: `wtenv down` stops
/// it, not `kill`).
pub fn unit_pids(ctx: &Ctx, scope: &Scope) -> Vec<u32> {
    let Ok(Some(dir)) = StateDir::existing(ctx) else {
        return Vec::new();
    };
    query_all(&dir.records_of(scope, &[]))
        .into_iter()
        .filter_map(|live| live.pid)
        .collect()
}
