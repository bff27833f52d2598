//! `wtenv list`: every worktree of the repository (the main one, those
//! `create` made, those made by hand), with each service's port and live
//! state. Also the lookup `enter` and `remove` use to find a worktree by
//! identifier ([`entries`], [`find`]).

use std::path::PathBuf;

use serde_json::json;

use crate::alloc::{self, RealSystem, Usage};
use crate::commands::ports::state_text;
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::git::{Git, ListedWorktree};
use crate::output;
use crate::registry::Allocation;
use crate::worktree::{self, Worktree};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (`"version": 1`, one object per worktree).
    #[arg(long)]
    pub json: bool,
}

/// One worktree as git lists it, with what wtenv knows of it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub listed: ListedWorktree,
    /// Canonical path (git's own when the directory is missing).
    pub path: PathBuf,
    /// Found on disk; `None` when the directory is missing (prunable) or
    /// for a bare repository's entry.
    pub worktree: Option<Worktree>,
    /// Recorded by `create`, else the config's `default_purpose`.
    pub purpose: String,
    /// Recorded by `create`, else the directory name.
    pub identifier: String,
    pub main: bool,
}

/// The repository around `ctx.cwd`: its worktree, its config, and every
/// worktree of it, found from git's files without running git (`enter`
/// runs on a `cd`, `remove` should cost what `git worktree remove` costs).
/// The entries' `branch` is left unknown; `list` asks git instead
/// ([`entries_from_git`]).
pub fn entries(ctx: &Ctx) -> Result<(Worktree, Config, Vec<Entry>)> {
    let here = Worktree::require(&ctx.cwd)?;
    let config = ctx.config_for(&here.root)?;
    let listed = worktree::listed_worktrees(&here.common_dir)
        .into_iter()
        .map(|(path, locked)| ListedWorktree {
            path,
            locked,
            ..ListedWorktree::default()
        })
        .collect();
    let entries = build(&here, &config, listed);
    Ok((here, config, entries))
}

/// Like [`entries`], from `git worktree list --porcelain -z`: with each
/// worktree's branch, and whether it is detached, locked or prunable.
pub fn entries_from_git(ctx: &Ctx) -> Result<(Worktree, Config, Vec<Entry>)> {
    let here = Worktree::require(&ctx.cwd)?;
    let config = ctx.config_for(&here.root)?;
    let listed = Git::new(&here.root).worktrees()?;
    let entries = build(&here, &config, listed);
    Ok((here, config, entries))
}

fn build(here: &Worktree, config: &Config, listed: Vec<ListedWorktree>) -> Vec<Entry> {
    let main_root = here.main_root();
    listed
        .into_iter()
        .map(|l| {
            let worktree = if l.bare {
                None
            } else {
                Worktree::discover(&l.path).ok().flatten().filter(|w| {
                    w.common_dir == here.common_dir
                        && w.root == l.path.canonicalize().unwrap_or_default()
                })
            };
            let path = worktree
                .as_ref()
                .map(|w| w.root.clone())
                .unwrap_or_else(|| l.path.clone());
            let meta = worktree.as_ref().map(Worktree::meta).unwrap_or_default();
            let identifier = match &worktree {
                Some(w) => w.identifier(&meta),
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            Entry {
                main: main_root.as_deref() == Some(path.as_path()),
                purpose: meta
                    .purpose
                    .unwrap_or_else(|| config.worktrees.default_purpose.clone()),
                identifier,
                path,
                worktree,
                listed: l,
            }
        })
        .collect()
}

/// The worktree named `identifier` (and of `purpose`, if given). `None`
/// if there is none; an error if the name is ambiguous.
pub fn find<'a>(
    entries: &'a [Entry],
    identifier: &str,
    purpose: Option<&str>,
) -> Result<Option<&'a Entry>> {
    let hits: Vec<&Entry> = entries
        .iter()
        .filter(|e| !e.listed.bare && e.identifier == identifier)
        .filter(|e| purpose.is_none_or(|p| e.purpose == p))
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(Error::hinted(
            format!(
                "{} worktrees are named {identifier:?}: {}",
                many.len(),
                many.iter()
                    .map(|e| e.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "add --purpose, or give the path",
        )),
    }
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let (here, config, entries) = entries_from_git(ctx)?;
    let data = ctx.registry.read()?;
    let mut system = RealSystem::new(&ctx.registry);
    let mut items = Vec::new();
    let mut rows = Vec::new();
    for e in &entries {
        // Each worktree's own config decides its services (a branch may
        // have another wtenv.toml); the current one when it cannot be read.
        let wt_config = e
            .worktree
            .as_ref()
            .and_then(|w| Config::discover(&w.root).ok())
            .filter(|_| ctx.config_path.is_none())
            .unwrap_or_else(|| config.clone());
        let mine: Vec<&Allocation> = data
            .allocations
            .iter()
            .filter(|a| a.belongs_to(&here.common_dir, &e.path))
            .collect();
        let usage = alloc::classify(&mine, &mut system)
            .map_err(|err| Error::io("could not probe ports", err))?;
        let mut names: Vec<&str> = wt_config.services.iter().map(|s| s.name.as_str()).collect();
        // Allocations of services the config no longer has are shown too.
        for a in &mine {
            if !names.contains(&a.service.as_str()) {
                names.push(&a.service);
            }
        }
        let mut services = Vec::new();
        for name in names {
            let found = mine.iter().zip(&usage).find(|(a, _)| a.service == name);
            services.push(service_view(name, found.map(|(a, u)| (*a, u))));
        }
        let branch = e.listed.branch.clone().unwrap_or_else(|| {
            if e.listed.bare {
                "(bare)".into()
            } else {
                "(detached)".into()
            }
        });
        // Every range of the purpose, in the order they are tried; empty
        // when this worktree's config does not define its purpose.
        let ranges: Vec<String> = wt_config
            .purpose_ranges(&e.purpose)
            .map(|r| r.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        let ranges_cell = if ranges.is_empty() {
            "-".to_owned()
        } else {
            ranges.join(",")
        };
        for s in &services {
            rows.push(vec![
                e.path.display().to_string(),
                branch.clone(),
                e.purpose.clone(),
                ranges_cell.clone(),
                s.service.clone(),
                s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.state.clone(),
            ]);
        }
        items.push(json!({
            "path": e.path,
            "branch": e.listed.branch,
            "head": e.listed.head,
            "main": e.main,
            "bare": e.listed.bare,
            "locked": e.listed.locked,
            "prunable": e.listed.prunable,
            "purpose": e.purpose,
            "ranges": ranges,
            "identifier": e.identifier,
            "services": services.iter().map(|s| s.json.clone()).collect::<Vec<_>>(),
        }));
    }
    if args.json {
        output::json(json!({ "worktrees": items }))?;
    } else {
        output::stdout(&output::table(
            &[
                "PATH", "BRANCH", "PURPOSE", "RANGES", "SERVICE", "PORT", "STATE",
            ],
            &rows,
        ))?;
    }
    Ok(Outcome::SUCCESS)
}

struct ServiceView {
    service: String,
    port: Option<u16>,
    state: String,
    json: serde_json::Value,
}

fn service_view(name: &str, found: Option<(&Allocation, &Usage)>) -> ServiceView {
    match found {
        None => ServiceView {
            service: name.to_owned(),
            port: None,
            state: "unallocated".into(),
            json: json!({ "service": name, "port": null, "state": "unallocated", "listeners": [] }),
        },
        Some((a, u)) => {
            let listeners = match u {
                Usage::Idle => vec![],
                Usage::InUse(h) | Usage::Foreign(h) => h.clone(),
            };
            ServiceView {
                service: name.to_owned(),
                port: Some(a.port),
                state: state_text(u),
                json: json!({
                    "service": name,
                    "port": a.port,
                    "lifetime": a.lifetime(),
                    "state": u.label(),
                    "listeners": listeners,
                    "holds": a.holders,
                }),
            }
        }
    }
}
