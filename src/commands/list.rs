//! `wtenv list`: every worktree of the repository (the main one, those
//! `create` made, those made by hand), with each service's port and live
//! state.

use serde_json::json;

use crate::alloc::{self, RealSystem, System, Usage};
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::git::{self, ListedWorktree, Signals};
use crate::health::status::{self, Lookup, ServiceStatus};
use crate::output;
use crate::ports::{self, state_text, with_moved_to, with_repository_moved, with_worktree_gone};
use crate::registry::Allocation;
use crate::worktrees::{self, stale_record};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object: {"version": 1, "worktrees": [...], "conflicts": [...]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    // A git that never ends (a FIFO the repository's config includes) is
    // stopped by the first Ctrl-C, SIGTERM or SIGHUP: nothing to undo.
    let signals = Signals::during_git()?;
    let here = ctx.require_worktree_here()?;
    let common_dir = here.common_dir.clone();
    let (here, config, entries) = worktrees::entries_from_git_of(ctx, here, signals.stop())
        .map_err(|e| {
            git::said_if_stopped(e, "git worktree list", &common_dir, || {
                "nothing was listed".into()
            })
        })?;
    // The whole registry, not this repository's lines: the conflict rows
    // need every port recorded in the ranges, whichever repository
    // recorded it (another repository's listening service is no conflict).
    let data = ctx.registry.read()?;
    let mut system = RealSystem::new(&ctx.registry);
    let mut lookup = Lookup::new(&ctx.registry);
    let mut items = Vec::new();
    let mut rows = Vec::new();
    // Whether a worktree git would prune is listed, and whether one of
    // them has ports `validate --fix` would release: what the hint after
    // the table says to do.
    let mut prunable = None;
    // The ports kept for worktrees of a repository moved whole
    // ([`alloc::left_to_claim`]), read once a worktree may have some.
    let mut left = None;
    for e in &entries {
        // Each worktree's own config decides its services (a branch may
        // have another wtenv.toml); the current one when it cannot be read.
        let wt_config = e
            .worktree
            .as_ref()
            .and_then(|w| Config::discover(&w.root).ok())
            .filter(|_| ctx.config_path.is_none())
            .unwrap_or_else(|| config.clone());
        let mut mine: Vec<&Allocation> = data
            .allocations
            .iter()
            .filter(|a| a.belongs_to(&here.common_dir, &e.path))
            .collect();
        // A worktree of this repository moved whole with it, not found
        // again by git yet (`git worktree repair`), is listed at its old
        // path, prunable; its entries, recorded there with the old common
        // dir, are kept for it (`validate` run here: `repository-moved`):
        // its rows show them. Looked for only for such a worktree with no
        // entries of its own, in this repository's own stamps.
        let kept = mine.is_empty() && e.listed.prunable.is_some() && {
            let left = left
                .get_or_insert_with(|| alloc::left_to_claim(&data, &here.common_dir, &mut system));
            mine.extend(
                data.allocations
                    .iter()
                    .filter(|a| a.worktree == e.path && left.contains(&a.port)),
            );
            !mine.is_empty()
        };
        let usage = alloc::classify(&mine, &mut system).map_err(Error::probe)?;
        // The git dir git lists in the place of a main worktree wtenv
        // cannot name is no worktree: no services of its own
        // (`unallocated` would invite an `env` there), a row saying so.
        // Nor is another repository's worktree this repository's (its
        // `env` allocates for its own repository).
        let mut names: Vec<&str> = match e.git_dir || e.of_another_repository.is_some() {
            true => Vec::new(),
            false => wt_config.services.iter().map(|s| s.name.as_str()).collect(),
        };
        // Allocations of services the config no longer has are shown too.
        for a in &mine {
            if !names.contains(&a.service.as_str()) {
                names.push(&a.service);
            }
        }
        // A worktree git would prune may be gone (a stat, then git's
        // files; no git process): its ports' rows say so.
        let gone = !kept && !mine.is_empty() && system.worktree_gone(&e.path, &here.common_dir);
        let mut services = Vec::new();
        for name in names {
            let found = mine.iter().zip(&usage).find(|(a, _)| a.service == name);
            let health = found.and_then(|(a, _)| lookup.of(a));
            // Moved away from this path (`git worktree move`, a new
            // worktree added here): said so, not as this worktree's.
            let moved = found.and_then(|(a, _)| alloc::moved_to(&data, a, &mut system));
            services.push(service_view(
                name,
                found.map(|(a, u)| (*a, u)),
                &mut system,
                health,
                Whereabouts {
                    gone: gone && moved.is_none(),
                    kept: kept && moved.is_none(),
                    moved,
                },
            ));
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
        // A locked worktree says so on a row of its own, before its
        // services': `remove` refuses it, and the reason says why.
        // So does one whose directory is gone, which git would prune.
        let own_rows = [
            lock_state(&e.listed),
            prune_state(&e.listed),
            e.git_dir.then(|| GIT_DIR_STATE.to_owned()),
            e.of_another_repository
                .as_ref()
                .map(another_repositorys_state),
        ];
        for state in own_rows.into_iter().flatten() {
            rows.push(vec![
                e.path.display().to_string(),
                branch.clone(),
                e.purpose.clone(),
                ranges_cell.clone(),
                "-".into(),
                "-".into(),
                state,
            ]);
        }
        if e.listed.prunable.is_some() {
            prunable = Some(prunable.unwrap_or(false) || gone);
        }
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
        let lossy_name = e.path.file_name().is_some_and(|name| {
            name.to_str().is_none() && name.to_string_lossy() == e.identifier.as_str()
        });
        items.push(json!({
            // JSON strings are Unicode: a path that is not UTF-8 is `null`,
            // never a lossy copy naming another directory (README, "Paths
            // that are not UTF-8").
            "path": e.path.to_str(),
            "branch": e.listed.branch,
            // Git's all-zero id before the first commit: no commit, `null`.
            "head": e.listed.head.as_deref().filter(|h| h.bytes().any(|b| b != b'0')),
            "main": e.main,
            "git_dir": e.git_dir,
            "of_another_repository": e.of_another_repository.as_ref().map(|w| &w.common_dir),
            "bare": e.listed.bare,
            "locked": e.listed.locked.is_some(),
            // Git's reason, as git recorded it ("" for none); a field of
            // its own, so `locked` stays the boolean it always was.
            "lock_reason": e.listed.locked,
            "prunable": e.listed.prunable.is_some(),
            // Git's reason, as for `lock_reason`; `null` when not prunable.
            "prunable_reason": e.listed.prunable,
            "purpose": e.purpose,
            "ranges": ranges,
            // `null` too when it is a directory name that is not UTF-8.
            "identifier": (!lossy_name).then_some(&e.identifier),
            "services": services.iter().map(|s| s.json.clone()).collect::<Vec<_>>(),
        }));
    }
    // The ports of the ranges taken outside the registry's record, as
    // `conflicts` lists them: a reserved port held by a foreign process is
    // already its worktree's `conflict` row.
    let unrecorded = ports::unrecorded_conflicts(&config, &data, &mut system)?;
    for c in &unrecorded {
        rows.push(vec![
            "-".into(),
            "-".into(),
            c.purpose.clone(),
            c.range.to_string(),
            "-".into(),
            c.port.to_string(),
            ports::unrecorded_state_text(c),
        ]);
    }
    if args.json {
        let conflicts: Vec<_> = unrecorded
            .iter()
            .map(|c| {
                let mut item = json!({"port": c.port, "purpose": c.purpose, "range": c.range.to_string(), "holders": c.holders.processes});
                crate::probe::listening_json(&mut item, "holders", c.holders.listening);
                item
            })
            .collect();
        output::json(json!({ "worktrees": items, "conflicts": conflicts }))?;
    } else {
        output::stdout(&output::table_for_stdout(
            &[
                "PATH", "BRANCH", "PURPOSE", "RANGES", "SERVICE", "PORT", "STATE",
            ],
            &rows,
            6, // STATE: the holders' command lines, shortened to fit a terminal
        ))?;
        if let Some(has_ports) = prunable {
            crate::report::hint(&prune_hint(has_ports));
        }
    }
    Ok(Outcome::SUCCESS)
}

/// The STATE of the row of the git dir git lists in the place of the
/// main worktree ([`worktrees::Entry::git_dir`]).
const GIT_DIR_STATE: &str = "git dir, not a worktree: no core.worktree names the main one";

/// The STATE of the row of another repository's own worktree, which this
/// repository lists from a stale record
/// ([`worktrees::Entry::of_another_repository`]): `remove` refuses it.
fn another_repositorys_state(other: &crate::worktree::Worktree) -> String {
    format!(
        "another repository's worktree ({}): this repository's record of it is {}",
        other.common_dir.display(),
        stale_record(other)
    )
}

/// The STATE of the own row of a worktree git would prune (its directory
/// is missing): `prunable: REASON`, git's reason escaped as every cell is.
fn prune_state(listed: &ListedWorktree) -> Option<String> {
    let reason = listed.prunable.as_deref()?;
    Some(match reason {
        "" => "prunable".into(),
        reason => format!("prunable: {reason}"),
    })
}

/// The way out for a worktree git would prune: git finds a moved one
/// again with `git worktree repair` (a prune first would forget it, git
/// dir, stamp and all), and forgets a deleted one with `git worktree
/// prune`; its ports, when wtenv counts them stale (its
/// directory is missing: "worktree gone"), are released by `validate
/// --fix` (README, "validate"), or by `remove`, which does both for one
/// worktree.
fn prune_hint(stale_ports: bool) -> String {
    let prune = crate::worktree::MOVED_OR_DELETED;
    if stale_ports {
        format!(
            "{prune}, and 'wtenv validate --fix' releases its ports ('wtenv remove PATH' does both for one worktree)"
        )
    } else {
        prune.to_owned()
    }
}

/// The STATE of a locked worktree's own row: `locked: REASON` (the table
/// escapes the reason's control characters, as it does every cell's), or,
/// for git's own lock while `git worktree add` makes it, that git is
/// adding it, as `remove`'s refusal says.
fn lock_state(listed: &ListedWorktree) -> Option<String> {
    let reason = listed.locked.as_deref()?;
    Some(if listed.being_added() {
        "being added by git".into()
    } else if reason.is_empty() {
        "locked".into()
    } else {
        format!("locked: {reason}")
    })
}

struct ServiceView {
    service: String,
    port: Option<u16>,
    state: String,
    json: serde_json::Value,
}

/// Where a service's entry is, beside its worktree's path.
struct Whereabouts {
    /// Its worktree is gone: `worktree gone, `.
    gone: bool,
    /// Kept for a worktree of a repository moved whole: `repository
    /// moved, `.
    kept: bool,
    /// Its worktree was moved there: `moved to PATH, `.
    moved: Option<std::path::PathBuf>,
}

/// A service's row: its port's live state, then, when processes hold it,
/// each holder (`held by pid N`, or `: gone` once it is not); after
/// `worktree gone, ` when its worktree is, or where it went
/// ([`Whereabouts`]).
fn service_view(
    name: &str,
    found: Option<(&Allocation, &Usage)>,
    system: &mut dyn System,
    health: Option<ServiceStatus>,
    Whereabouts { gone, kept, moved }: Whereabouts,
) -> ServiceView {
    match found {
        None => ServiceView {
            service: name.to_owned(),
            port: None,
            state: "unallocated".into(),
            // The keys of an allocated service's, each empty: a script
            // reads `.holds[]` of every service alike.
            json: json!({
                "service": name,
                "port": null,
                "lifetime": null,
                "state": "unallocated",
                "listeners": [],
                "listening": null,
                "holds": [],
                "health": health.as_ref().map(|h| &h.health),
                "restarts": health.as_ref().map(|h| h.restarts),
                "worktree_gone": gone,
                "moved_to": null,
                "repository_moved": kept,
            }),
        },
        Some((a, u)) => {
            let listeners = u.listeners();
            let lifetime = alloc::lifetime(a, system);
            let state = if a.holders.is_empty() {
                state_text(u)
            } else {
                format!("{}; {lifetime}", state_text(u))
            };
            let mut json = json!({
                "service": name,
                "port": a.port,
                "lifetime": lifetime,
                "state": u.label(),
                "listeners": listeners,
                "holds": alloc::holds_json(a, system),
                "health": health.as_ref().map(|h| &h.health),
                "restarts": health.as_ref().map(|h| h.restarts),
                "worktree_gone": gone,
                "moved_to": moved,
                "repository_moved": kept,
            });
            crate::probe::listening_json(&mut json, "listeners", u.listening());
            ServiceView {
                service: name.to_owned(),
                port: Some(a.port),
                state: with_repository_moved(
                    with_moved_to(
                        with_worktree_gone(status::with_state(state, health.as_ref()), gone),
                        moved.as_deref(),
                    ),
                    kept,
                ),
                json,
            }
        }
    }
}
