//! `wtenv ports`: the registry's allocations, with their live state.

use serde_json::json;

use crate::alloc::{self, RealSystem, System, Usage};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::health::status::{self, Lookup, ServiceStatus};
use crate::output;
use crate::ports::{state_text, with_moved_to, with_repository_moved, with_worktree_gone};
use crate::registry::Allocation;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Every repository's allocations (default: this repository's; outside
    /// a repository, every one).
    #[arg(long)]
    pub all: bool,
    /// JSON on stdout (with "version": 1) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let repository = if args.all {
        None
    } else {
        let cwd = ctx.cwd_else(Some("'wtenv ports --all'"))?;
        crate::worktree::Worktree::discover_resolved(cwd)?.map(|w| w.common_dir)
    };
    // In a repository, only its lines are read (a binary search in the
    // sealed file), however many other repositories the registry holds.
    let data = match &repository {
        Some(r) => ctx.registry.read_repository(r)?,
        None => ctx.registry.read()?,
    };
    let mut rows: Vec<&Allocation> = data.allocations.iter().collect();
    rows.sort_by_key(|a| a.port);
    let mut system = RealSystem::new(&ctx.registry);
    let usage = alloc::classify(&rows, &mut system).map_err(Error::probe)?;
    let mut lookup = Lookup::new(&ctx.registry);
    let health: Vec<Option<ServiceStatus>> = rows.iter().map(|a| lookup.of(a)).collect();
    // A stat of each recorded worktree (git's files only for one whose
    // directory is missing; no git process) and of its repository: what
    // `validate` calls `worktree-gone`.
    // A worktree moved away from the path recorded is not gone: its
    // entries follow it (its stamp says where).
    let moved: Vec<Option<std::path::PathBuf>> = rows
        .iter()
        .map(|a| alloc::moved_to(&data, a, &mut system))
        .collect();
    let mut gone: Vec<bool> = rows
        .iter()
        .zip(&moved)
        .map(|(a, moved)| {
            moved.is_none()
                && (system.worktree_gone(&a.worktree, &a.repository)
                    || alloc::repository_gone(a, &mut system))
        })
        .collect();
    // A gone row kept for a worktree of a repository moved whole: kept,
    // not gone, as `validate` run here says (`repository-moved`). Only
    // another repository's rows can be (`--all`), and only gone ones are
    // looked at: the repository here is found, and its own stamps read,
    // only when there is one.
    let kept: Vec<bool> = match repository.is_none() && gone.contains(&true) {
        true => {
            let here = ctx.worktree_here().ok().flatten().map(|w| w.common_dir);
            let left = here.map_or_else(Default::default, |r| {
                alloc::left_to_claim(&data, &r, &mut system)
            });
            rows.iter()
                .zip(&gone)
                .map(|(a, gone)| *gone && left.contains(&a.port))
                .collect()
        }
        false => vec![false; rows.len()],
    };
    for (gone, kept) in gone.iter_mut().zip(&kept) {
        *gone &= !kept;
    }
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .zip(&usage)
            .zip(&health)
            .zip(gone.iter().zip(&moved).zip(&kept))
            .map(|(((a, u), h), ((gone, moved), kept))| {
                let mut item = allocation_json(a, u, h.as_ref(), &mut system);
                item["worktree_gone"] = (*gone).into();
                item["moved_to"] = json!(moved);
                item["repository_moved"] = (*kept).into();
                item
            })
            .collect();
        output::json(json!({ "allocations": items }))?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .zip(&usage)
            .zip(&health)
            .zip(gone.iter().zip(&moved).zip(&kept))
            .map(|(((a, u), h), ((gone, moved), kept))| {
                let state = status::with_state(state_text(u), h.as_ref());
                let state = with_moved_to(with_worktree_gone(state, *gone), moved.as_deref());
                let state = with_repository_moved(state, *kept);
                vec![
                    a.port.to_string(),
                    a.service.clone(),
                    a.purpose.clone(),
                    alloc::lifetime(a, &mut system),
                    state,
                    a.worktree.display().to_string(),
                ]
            })
            .collect();
        output::stdout(&output::table_for_stdout(
            &[
                "PORT", "SERVICE", "PURPOSE", "LIFETIME", "STATE", "WORKTREE",
            ],
            &table,
            STATE_COLUMN,
        ))?;
    }
    Ok(Outcome::SUCCESS)
}

/// The column with the holders' command lines: shortened to fit a terminal.
const STATE_COLUMN: usize = 4;

/// One allocation as `ports --json` shows it; each hold says whether its
/// process lives (`"alive"`).
pub fn allocation_json(
    a: &Allocation,
    usage: &Usage,
    health: Option<&ServiceStatus>,
    system: &mut dyn System,
) -> serde_json::Value {
    let holders = usage.listeners();
    let mut item = json!({
        "port": a.port,
        "service": a.service,
        "purpose": a.purpose,
        "repository": a.repository,
        "worktree": a.worktree,
        "created": a.created,
        "reserved": a.reserved,
        "lifetime": alloc::lifetime(a, system),
        "holds": alloc::holds_json(a, system),
        "state": usage.label(),
        "listeners": holders,
        "health": health.map(|h| &h.health),
        "restarts": health.map(|h| h.restarts),
    });
    crate::probe::listening_json(&mut item, "listeners", usage.listening());
    item
}
