//! `wtenv create`: a new worktree on a new branch, optionally with its
//! ports reserved. All or nothing: see [`crate::create`].

use std::path::PathBuf;

use crate::context::Ctx;
use crate::create::{execute, plan};
use crate::error::Result;
use crate::exit::Outcome;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The purpose (a configured port range): feature, bugfix, ...
    #[arg(long)]
    pub purpose: String,
    /// Names the worktree: ASCII letters, digits, '.', '_', '-' (1-64).
    #[arg(long)]
    pub identifier: String,
    /// The base revision of the new branch (default: HEAD).
    #[arg(long, value_name = "BASE")]
    pub branch: Option<String>,
    /// Reserve one port per service in the purpose's range (fail fast).
    #[arg(long)]
    pub ports: bool,
    /// With --ports: skip ports that are occupied on the system instead of
    /// failing.
    #[arg(long, requires = "ports")]
    pub skip_occupied: bool,
    /// Put the worktree here instead of `<root>/<purpose>-<identifier>`.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Print the result as JSON (`"version": 1`, path, branch, ports...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let plan = plan(
        ctx,
        &args.purpose,
        &args.identifier,
        args.branch.as_deref(),
        args.path.as_deref(),
        args.skip_occupied,
    )?;
    let created = execute(ctx, &plan, args.ports, false)?;
    if args.json {
        output::json(created.to_json())?;
    } else {
        output::stdout(&format!("{}\n", created.path.display()))?;
    }
    Ok(Outcome::SUCCESS)
}
