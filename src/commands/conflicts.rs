//! `wtenv conflicts`: in every configured range, ports free in the registry
//! but occupied on the system, and reserved ports held by a process not of
//! their worktree (what `list` shows as `conflict`). Exits 1 when there are any (like `grep`), so
//! scripts can test for them.

use serde_json::json;

use crate::alloc::RealSystem;
use crate::context::Ctx;
use crate::error::Result;
use crate::exit::{self, Outcome};
use crate::report;
use crate::worktree::Worktree;
use crate::{output, ports};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON on stdout (with "version": 1) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Check the ranges of every repository in the registry (each one's
    /// main worktree config), not only this one's.
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let data = ctx.registry.read()?;
    let configs = if args.all {
        ctx.registry_configs(&data)?
    } else {
        // Outside a repository the built-in ranges belong to nothing of
        // the user's: there is nothing to check. Said as every command
        // says it (a bare repository named as one), with the two ways
        // out `conflicts` has besides.
        if ctx.config_path.is_none() && ctx.worktree_here()?.is_none() {
            let outside = Worktree::outside(ctx.cwd()?);
            let hint = format!(
                "{}; or pass --config PATH, or --all for every repository in the registry",
                outside.hint().unwrap_or_default()
            );
            return Err(outside.with_hint(hint));
        }
        vec![ctx.config_here()?]
    };
    let mut system = RealSystem::new(&ctx.registry);
    let mut found: Vec<ports::Conflict> = Vec::new();
    for config in &configs {
        for c in ports::conflicts(config, &data, &mut system)? {
            if !found.iter().any(|f| f.port == c.port) {
                found.push(c);
            }
        }
    }
    found.sort_by_key(|c| c.port);
    if args.json {
        let items: Vec<_> = found
            .iter()
            .map(|c| {
                let mut item = json!({
                    "port": c.port,
                    "purpose": c.purpose,
                    "range": c.range.to_string(),
                    "holders": c.holders.processes,
                    "reserved_for": c.reserved_for.as_ref().map(|(service, worktree)| json!({"service": service, "worktree": worktree})),
                });
                crate::probe::listening_json(&mut item, "holders", c.holders.listening);
                item
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
    } else if configs.is_empty() {
        report::note(
            "no conflicts: no range to check (no repository of the registry has a main worktree)",
        );
    } else {
        // Repositories that share their ranges name them once.
        let mut scanned: Vec<String> = Vec::new();
        for (purpose, ranges) in configs.iter().flat_map(|c| &c.purposes) {
            let range = format!("{purpose} {ranges}");
            if !scanned.contains(&range) {
                scanned.push(range);
            }
        }
        report::note(&format!("no conflicts in {}", scanned.join("; ")));
    }
    Ok(if found.is_empty() {
        Outcome::SUCCESS
    } else {
        Outcome::Code(exit::FAILURE)
    })
}
