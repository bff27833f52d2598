//! `wtenv conflicts`: in every configured range, ports free in the registry
//! but occupied on the system, and reserved ports held by a process not of
//! their worktree (what `list` shows as `conflict`). Exits 1 when there are any (like `grep`), so
//! scripts can test for them.

use serde_json::json;

use crate::alloc::RealSystem;
use crate::context::Ctx;
use crate::error::Result;
use crate::exit::{self, Outcome};
use crate::{output, ports};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON on stdout (with "version": 1) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let config = ctx.config_here()?;
    let data = ctx.registry.read()?;
    let found = ports::conflicts(&config, &data, &mut RealSystem::new(&ctx.registry))?;
    if args.json {
        let items: Vec<_> = found
            .iter()
            .map(|c| {
                json!({
                    "port": c.port,
                    "purpose": c.purpose,
                    "range": c.range.to_string(),
                    "holders": c.holders,
                    "reserved_for": c.reserved_for.as_ref().map(|(service, worktree)| json!({"service": service, "worktree": worktree})),
                })
            })
            .collect();
        output::json(json!({ "conflicts": items }))?;
    } else if !found.is_empty() {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|c| {
                vec![
                    c.port.to_string(),
                    c.purpose.clone(),
                    c.range.to_string(),
                    c.describe(),
                ]
            })
            .collect();
        output::stdout(&output::table(
            &["PORT", "PURPOSE", "RANGE", "HOLDER"],
            &rows,
        ))?;
    } else if !ctx.quiet {
        let scanned: Vec<String> = config
            .purposes
            .iter()
            .map(|(purpose, ranges)| format!("{purpose} {ranges}"))
            .collect();
        eprintln!("no conflicts in {}", scanned.join("; "));
    }
    Ok(if found.is_empty() {
        Outcome::SUCCESS
    } else {
        Outcome::Code(exit::FAILURE)
    })
}
