//! `wtenv allocate --service S`: one reserved port for the worktree around
//! the current directory, printed alone on stdout (for other tools' hooks).

use crate::alloc::{self, HoldMode, RealSystem};
use crate::config;
use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service name: letters, digits, '_' or '-', at most 64 (need not be
    /// declared in the config).
    #[arg(long)]
    pub service: String,
    /// Allocate from this purpose's range instead of the worktree's.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    config::check_service_name(&args.service)?;
    let mut scope = ctx.scope()?;
    if let Some(p) = &args.purpose {
        scope = scope.with_purpose(p)?;
    }
    let mut request = scope.request(args.skip_occupied);
    request.services = vec![args.service.as_str()];
    request.adhoc = scope.config.service(&args.service).is_none();
    let ports = alloc::ensure(
        &ctx.registry,
        &request,
        &HoldMode::Reserve,
        &mut RealSystem::new(&ctx.registry),
    )?;
    output::stdout(&format!("{}\n", ports[&args.service]))?;
    Ok(Outcome::SUCCESS)
}
