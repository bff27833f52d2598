//! `wtenv run [--grace DUR] -- CMD ARGS...`: CMD with the worktree's
//! variables, its ports held by this wtenv while it runs, released on every
//! exit path.
//!
//! Order matters: the signal thread first (a Ctrl-C from here on is ours),
//! then the release guard (so a failure after the registry write still
//! releases), then allocate-and-hold (one short transaction), then spawn,
//! then, once the child has run for [`supervise::SETTLE`], record its pgid
//! (another short transaction), then release. The registry lock is never
//! held while the child runs.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use crate::alloc::HoldMode;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::ports::ensure_verified;
use crate::supervise::hold::{ReleaseGuard, hold, record_pgid};
use crate::supervise::{self, Supervisor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between the forwarded signal and SIGKILL (e.g. 10s, 500ms).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, default_value = "10s")]
    pub grace: Duration,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let mut supervisor = Supervisor::new(args.grace)
        .map_err(|e| Error::io("could not set up signal handling", e))?;
    let scope = ctx.scope()?;
    let line = args
        .command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let _release = ReleaseGuard::new(&ctx.registry);
    let vars = ensure_verified(ctx, &scope, &HoldMode::HoldAll(hold(&line)), false)?;
    if let Some(sig) = supervisor.pending_signal() {
        return Err(Error::Interrupted(sig as i32));
    }
    let program = args.command[0].clone();
    let path = vars
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| v.into())
        .or_else(|| std::env::var_os("PATH"));
    let mut expr = match supervise::resolve_program(&program, path.as_deref()) {
        // The child still sees the name it was given as argv[0].
        Some(exe) => duct::cmd(exe, &args.command[1..]).before_spawn(move |c| {
            c.arg0(&program);
            Ok(())
        }),
        None => duct::cmd(&program, &args.command[1..]),
    };
    for (name, value) in &vars {
        expr = expr.env(name, value);
    }
    let pgid = match supervisor.spawn(&expr, &args.command[0].to_string_lossy(), true) {
        Ok(pgid) => pgid,
        Err(e) => {
            eprintln!("error: {}", e.message());
            if !ctx.quiet {
                eprintln!("hint: check the command's name, PATH and permissions");
            }
            return Ok(e.outcome());
        }
    };
    let report = supervisor.wait(false, || record_pgid(&ctx.registry, |_| Some(pgid)));
    Ok(supervise::run_outcome(&report))
}
