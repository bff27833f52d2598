//! `wtenv __watch PID START` (hidden): the watcher `env --hold PID`
//! starts, detached, for the holder PID started at START. It waits for
//! that process to end, then releases its holds as `release --hold PID`
//! does (see `crate::supervise::watcher`).

use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
use crate::process::ProcessId;
use crate::supervise::watcher;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The holder's pid.
    pub pid: u32,
    /// The holder's start time, as wtenv records it.
    pub start: u64,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let holder = ProcessId {
        pid: args.pid,
        start_time: args.start,
    };
    watcher::run(&ctx.registry, holder)?;
    Ok(Outcome::SUCCESS)
}
