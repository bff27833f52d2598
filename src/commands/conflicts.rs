//! `wtenv conflicts`: ports free in the registry but occupied on the system,
//! in every configured range. Exits 1 when there are any (like `grep`), so
//! scripts can test for them.

use std::collections::BTreeSet;

use serde_json::json;

use crate::alloc::{self, RealSystem, System};
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::{self, Outcome};
use crate::output;
use crate::worktree::Worktree;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON on stdout (with "version": 1) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let config = match Worktree::discover(&ctx.cwd)? {
        Some(wt) => ctx.config_for(&wt.root)?,
        None => match &ctx.config_path {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        },
    };
    let data = ctx.registry.read()?;
    let taken: BTreeSet<u16> = data.allocations.iter().map(|a| a.port).collect();
    let mut system = RealSystem::new(&ctx.registry);
    let mut found = Vec::new();
    for (purpose, ranges) in &config.purposes {
        for range in ranges.iter() {
            let busy = alloc::occupied_in(range, &taken, &mut system).map_err(Error::probe)?;
            found.extend(busy.into_iter().map(|p| (purpose.clone(), range, p)));
        }
    }
    let holders = system.holders(&found.iter().map(|(_, _, p)| *p).collect());
    if args.json {
        let items: Vec<_> = found
            .iter()
            .map(|(purpose, range, port)| json!({"port": port, "purpose": purpose, "range": range.to_string(), "holders": holders.get(port).cloned().unwrap_or_default()}))
            .collect();
        output::json(json!({ "conflicts": items }))?;
    } else {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|(purpose, range, port)| {
                let h = holders.get(port).map(Vec::as_slice).unwrap_or_default();
                vec![
                    port.to_string(),
                    purpose.clone(),
                    range.to_string(),
                    alloc::describe_holders(h),
                ]
            })
            .collect();
        if !rows.is_empty() {
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
    }
    Ok(if found.is_empty() {
        Outcome::SUCCESS
    } else {
        Outcome::Code(exit::FAILURE)
    })
}
