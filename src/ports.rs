//! A worktree's ports as one service, shared by the commands that need
//! them (`env`, `run`, `up`, `create`, `enter`): allocate what is missing
//! and verify the worktree's own ports ([`ensure_verified`]), reserve them
//! ([`reserve`]), the hold record for a pid given on the command line
//! ([`hold_for`]), and how a port's state reads ([`state_text`]).
//!
//! The allocation rules themselves are plain functions in [`crate::alloc`];
//! this module is where they meet the registry, the system and the stamp.
//! The holds of a supervising wtenv (`run`, `up`) are in
//! [`crate::supervise::hold`].

use crate::alloc::{self, HoldMode, RealSystem, Usage};
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::exports;
use crate::process::ProcessId;
use crate::registry::Hold;

/// A hold record for a live pid given on the command line.
pub fn hold_for(pid: u32) -> Result<Hold> {
    let process = ProcessId::of(pid).ok_or_else(|| {
        Error::hinted(
            format!("--hold {pid}: no such process"),
            "pass the pid of a live process, e.g. $$",
        )
    })?;
    Ok(Hold {
        pid,
        start_time: process.start_time,
        command: crate::process::command(pid).unwrap_or_default(),
        // Recorded for the record (SPEC: a held allocation names its
        // holder's group); wtenv never signals a group it did not spawn.
        pgid: crate::process::pgid(pid),
        unit: None,
    })
}

/// Allocates what is missing, refuses a port held by another worktree's
/// process (rule 5), refreshes the stamp, and returns the variables.
/// Shared by `env` and `run`.
pub fn ensure_verified(
    ctx: &Ctx,
    scope: &Scope,
    mode: &HoldMode,
    skip_occupied: bool,
) -> Result<Vec<(String, String)>> {
    let mut system = RealSystem::new(&ctx.registry);
    let request = scope.request(skip_occupied);
    let (ports, mine) = alloc::ensure_allocations(&ctx.registry, &request, mode, &mut system)?;
    let mine: Vec<_> = mine.iter().collect();
    let usage = alloc::classify(&mine, &mut system).map_err(Error::probe)?;
    let foreign: Vec<String> = mine
        .iter()
        .zip(&usage)
        .filter_map(|(a, u)| match u {
            Usage::Foreign(h) => Some(format!(
                "  port {} ({}): {}",
                a.port,
                a.service,
                alloc::describe_holders(h)
            )),
            _ => None,
        })
        .collect();
    if !foreign.is_empty() {
        return Err(Error::ForeignHolder(format!(
            "error: ports reserved for worktree {} are held by processes outside it:\n{}\nhint: stop those processes; the reservation stays with this worktree",
            scope.worktree.root.display(),
            foreign.join("\n")
        )));
    }
    scope.worktree.update_stamp(&exports::ports_summary(&ports));
    Ok(exports::variables(scope, &ports))
}

/// Reserves every service's port for `scope`'s worktree (sticky, fail
/// fast) and refreshes its stamp: what `create --ports` and `enter` do.
pub fn reserve(ctx: &Ctx, scope: &Scope) -> Result<alloc::Ports> {
    let ports = reserve_request(ctx, &scope.request(false))?;
    scope.worktree.update_stamp(&exports::ports_summary(&ports));
    Ok(ports)
}

/// [`reserve`] without the stamp, for a worktree git may not have
/// finished making (`create`).
pub fn reserve_request(ctx: &Ctx, request: &alloc::Request) -> Result<alloc::Ports> {
    alloc::ensure(
        &ctx.registry,
        request,
        &HoldMode::Reserve,
        &mut RealSystem::new(&ctx.registry),
    )
}

/// `idle`, `listening (pid 12 node)`, `conflict (holder unknown)`.
pub fn state_text(usage: &Usage) -> String {
    match usage {
        Usage::Idle => "idle".into(),
        Usage::InUse(h) | Usage::Foreign(h) => {
            let who = if h.is_empty() {
                "holder unknown".to_string()
            } else {
                h.iter()
                    .map(|h| format!("pid {} {}", h.pid, h.command))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("{} ({who})", usage.label())
        }
    }
}
