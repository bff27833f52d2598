//! `wtenv allocate --service S`: one reserved port for the worktree around
//! the current directory, printed alone on stdout (for other tools' hooks).

use crate::alloc::{self, HoldMode, RealSystem};
use crate::config;
use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
use crate::output;
use crate::process::printable;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service name: ASCII letters, digits, '_' or '-', at most 64 (need not be
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
    // Sticky even inside a shell that holds the worktree's ports (a `nix
    // develop` shell's): a port asked for by name is for what runs later,
    // a script's container or a unit, not for that shell alone.
    let ensured = alloc::ensure_allocations(
        &ctx.registry,
        &request,
        &HoldMode::Sticky,
        &mut RealSystem::new(&ctx.registry),
    )?;
    let port = ensured.ports[&args.service];
    // Sticky: a port already reserved stays, whatever --purpose asks
    // (allocation rule 1); said, since the range asked for was not used.
    if let Some(asked) = &args.purpose
        && let Some(had) = ensured
            .mine
            .iter()
            .find(|a| a.service == args.service && a.port == port)
        && &had.purpose != asked
    {
        let service = printable(&args.service);
        report::warn_hinted(
            &format!(
                "service {service} keeps its port {port} from purpose {}, the one it was \
                 allocated in: --purpose applies to new allocations only",
                printable(&had.purpose)
            ),
            &format!(
                "to move it, release it, then allocate it again: 'wtenv release --service \
                 {service}', then 'wtenv allocate --service {service} --purpose {}'",
                printable(asked)
            ),
        );
    }
    output::stdout(&format!("{port}\n"))?;
    Ok(Outcome::SUCCESS)
}
