//! `wtenv env`: the variables of the worktree around the current directory.
//!
//! The hot path (every `cd` under direnv or the prompt hook): when every
//! service has its allocation, it takes only the shared lock and writes
//! nothing; it probes the worktree's own ports (rule 5) and reads /proc
//! only when one is busy. No git subprocess, no network.

use crate::alloc::{self, HoldMode, RealSystem, Usage};
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::process::ProcessId;
use crate::registry::Hold;
use crate::shell::{self, Format};
use crate::{exports, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "bash")]
    pub format: Format,
    /// Tie the allocations this makes to PID (e.g. a `nix develop` shell's
    /// `$$`): they are released once PID is gone.
    #[arg(long, value_name = "PID")]
    pub hold: Option<u32>,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let scope = ctx.scope()?;
    let mode = match args.hold {
        None => HoldMode::Reserve,
        Some(pid) => HoldMode::HoldNew(hold_for(pid)?),
    };
    let vars = ensure_verified(ctx, &scope, &mode, args.skip_occupied)?;
    output::stdout(&shell::render(args.format, &vars, &[]))?;
    Ok(Outcome::SUCCESS)
}

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
        pgid: None,
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
    let ports = alloc::ensure(&ctx.registry, &request, mode, &mut system)?;
    let data = ctx.registry.read()?;
    let mine: Vec<_> = data
        .allocations
        .iter()
        .filter(|a| {
            a.belongs_to(request.repository, request.worktree)
                && ports.get(&a.service) == Some(&a.port)
        })
        .collect();
    let usage =
        alloc::classify(&mine, &mut system).map_err(|e| Error::io("could not probe ports", e))?;
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
