//! `wtenv release`: give back this worktree's ports (or one service's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::alloc::{self, RealSystem, System};
use crate::background::Manager;
use crate::config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::ports;
use crate::process::{printable, printable_path};
use crate::registry::{Allocation, Hold, RegistryData};
use crate::shell::quote_in_message;
use crate::supervise::hold::{Holding, UP};
use crate::worktree::{self, Worktree};
use crate::{report, supervise};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this service's port.
    #[arg(long)]
    pub service: Option<String>,
    /// The worktree (default: the one around the current directory). May
    /// name a directory that no longer exists.
    #[arg(long, value_name = "PATH")]
    pub worktree: Option<PathBuf>,
    /// Instead, drop the holds of PID in every worktree (what a `nix
    /// develop` shell's EXIT trap runs): its reservations stay, ports only
    /// it held are released.
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "PID", allow_hyphen_values = true, conflicts_with_all = ["service", "worktree"])]
    pub hold: Option<u32>,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    if let Some(pid) = args.hold {
        return release_hold(pid, ctx);
    }
    if let Some(service) = &args.service {
        config::check_service_name(service)?;
    }
    // A path named with --worktree is matched by path alone, whichever
    // repository recorded it: the directory may have been made again as
    // another repository (a deleted worktree replaced by a clone), and its
    // old entries are what the user means to free. `repository` is the
    // one the path has now, if any, to name the others. The worktree
    // around the current directory is its repository's: only that part of
    // the registry is read and rewritten.
    let (target, repository, whole) = match &args.worktree {
        Some(p) => {
            let abs = ctx.absolute(p)?;
            match Worktree::discover(&abs) {
                Ok(Some(wt)) if abs.canonicalize().ok().as_ref() == Some(&wt.root) => {
                    (wt.root, Some(wt.common_dir), true)
                }
                _ => (
                    abs.canonicalize()
                        .unwrap_or_else(|_| worktree::normalize(&abs)),
                    None,
                    true,
                ),
            }
        }
        None => {
            let wt = ctx.require_worktree_here()?;
            (wt.root, Some(wt.common_dir), false)
        }
    };
    // A worktree moved with `git worktree move` owns the entries recorded
    // at the path it left (its ports follow it): recorded at its path
    // first, as `env`'s sweep would, so that they are released with the
    // rest.
    let moved = match &repository {
        Some(repository) => ports::Moved::find(ctx, repository, &target)?,
        None => ports::Moved::default(),
    };
    // What was released, and the services the worktree has allocations
    // for (to name them when the one asked for is not among them).
    let mut system = RealSystem::new(&ctx.registry);
    // The target, when it is not the worktree around the current
    // directory: a `wtenv down` the hint gives must be run there.
    let here = match &args.worktree {
        Some(_) => ctx.worktree_here().ok().flatten().map(|w| w.root),
        None => Some(target.clone()),
    };
    let elsewhere = (here.as_ref() != Some(&target)).then_some(target.as_path());
    let release = |data: &mut RegistryData| {
        moved.apply(data, &target);
        let hit = |a: &Allocation| {
            a.worktree == target && args.service.as_ref().is_none_or(|s| &a.service == s)
        };
        // All or nothing: a port a live process holds is in use (a `run`
        // serving, a background service, a shell that holds them, the
        // orphans a SIGKILLed holder left), and released it would be
        // handed to another worktree while it serves. Decided under the
        // lock, by the sweep's own rule ([`alloc::holder_gone`]): a hold
        // the sweep would keep is kept.
        let held: Vec<(&Allocation, &Hold)> = data
            .allocations
            .iter()
            .filter(|a| hit(a))
            .flat_map(|a| a.holders.iter().map(move |h| (a, h)))
            .filter(|(_, h)| !alloc::holder_gone(&mut system, h))
            .collect();
        if !held.is_empty() {
            return Err(held_refusal(&target, &held, elsewhere, &mut system));
        }
        let mut gone = Vec::new();
        let mut services = Vec::new();
        data.allocations.retain(|a| {
            if a.worktree != target {
                return true;
            }
            services.push(a.service.clone());
            let hit = hit(a);
            if hit {
                gone.push((a.service.clone(), a.port, a.repository.clone()));
            }
            !hit
        });
        Ok((gone, services))
    };
    let (released, services) = match &repository {
        Some(repository) if !whole => {
            let part = moved.part(repository, &target);
            ctx.registry.transaction_in(part, release)?
        }
        _ => ctx.registry.transaction(release)?,
    };
    if released.is_empty() {
        // Nothing recorded for a path that is not there: most likely a typo,
        // and a success would hide it. A path that exists (a worktree with
        // nothing reserved) stays a warning: release is idempotent.
        if services.is_empty()
            && let Some(p) = &args.worktree
            && is_missing(&ctx.absolute(p)?)
        {
            return Err(Error::not_found(format!(
                "worktree {} does not exist, and the registry has no allocations for it",
                printable_path(&target)
            ))
            .with_hint("check the path; 'wtenv ports --all' lists what the registry holds"));
        }
        if let Some(s) = &args.service {
            let hint = match services.is_empty() {
                true => {
                    "it has no allocations; 'wtenv ports --all' lists the registry's".to_owned()
                }
                false => format!(
                    "its allocations are for {}; 'wtenv ports' lists them",
                    printable(&services.join(", "))
                ),
            };
            return Err(Error::not_found(format!(
                "worktree {} has no allocation for service {s:?}",
                printable_path(&target)
            ))
            .with_hint(hint));
        }
        report::warn(&format!(
            "worktree {} has no allocations",
            printable_path(&target)
        ));
    }
    for (service, port, recorded_by) in released {
        // An entry the path's repository did not record (or, the path
        // gone, any): named with the repository that did.
        let by = match &repository {
            Some(r) if *r == recorded_by => String::new(),
            Some(_) => format!(", recorded for repository {}", printable_path(&recorded_by)),
            None => String::new(),
        };
        report::note(&format!(
            "released port {port} ({}) of {}{by}",
            printable(&service),
            printable_path(&target)
        ));
    }
    Ok(Outcome::SUCCESS)
}

/// The refusal of a release whose ports live processes hold (`held`: each
/// entry with a hold of it the sweep keeps, [`alloc::holder_gone`]): each
/// port named with its service and holder ([`alloc::held_by`], the words
/// of `ports` and `validate`: a gone holder's orphans too) and the
/// holder's command; the hint says how to stop each kind of holder
/// ([`stop_hint`]). Nothing was released.
fn held_refusal(
    target: &Path,
    held: &[(&Allocation, &Hold)],
    elsewhere: Option<&Path>,
    system: &mut dyn System,
) -> Error {
    let lines: Vec<String> = held
        .iter()
        .map(|(a, h)| {
            format!(
                "  port {} ({}): {}: {}",
                a.port,
                printable(&a.service),
                alloc::held_by(h, system),
                printable(&h.command)
            )
        })
        .collect();
    Error::refused(format!(
        "ports of worktree {} are held by live processes; nothing was released:\n{}",
        printable_path(target),
        lines.join("\n")
    ))
    .with_hint(stop_hint(held, elsewhere, system))
}

/// How to stop the holders of `held`, by kind ([`Holding`]), each named
/// once: a `wtenv run` (or a foreground `wtenv up`) by Ctrl-C or `kill`,
/// a background service by `wtenv down` (run in the worktree: with the
/// `cd` to it when it is `elsewhere`), a shell that holds them by leaving
/// it or by `release --hold`, the orphans of a gone holder by `validate
/// --fix` or `kill` (a background service's by `wtenv down` too); then
/// the release again.
fn stop_hint(
    held: &[(&Allocation, &Hold)],
    elsewhere: Option<&Path>,
    system: &mut dyn System,
) -> String {
    let mut supervisors: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let mut services = BTreeSet::new();
    // Whether a unit among them may be an exported one: a unit of wtenv's
    // own back end never is.
    let mut exported = false;
    let mut shells = BTreeSet::new();
    let mut orphans = BTreeSet::new();
    let mut orphaned = BTreeSet::new();
    for (a, h) in held {
        if !system.holder_alive(h) {
            // Kept for its orphans ([`alloc::holder_gone`]).
            orphans.extend(system.orphans(h));
            if Holding::of(h) == Holding::Background {
                orphaned.insert(printable(&a.service));
            }
            continue;
        }
        match Holding::of(h) {
            Holding::Supervisor(what) => {
                supervisors.entry(what).or_default().insert(h.pid);
            }
            Holding::Background => {
                services.insert(printable(&a.service));
                exported |= h.unit.as_ref().is_some_and(|u| u.manager != Manager::Wtenv);
            }
            Holding::Shell => {
                shells.insert(h.pid);
            }
        }
    }
    let each = |pids: &BTreeSet<u32>, word: &dyn Fn(u32) -> String, sep: &str| {
        pids.iter().map(|p| word(*p)).collect::<Vec<_>>().join(sep)
    };
    let down = |names: BTreeSet<String>| {
        let command = format!(
            "wtenv down {}",
            names.into_iter().collect::<Vec<_>>().join(" ")
        );
        match elsewhere {
            Some(dir) => format!("cd {} && {command}", quote_in_message(dir)),
            None => format!("'{command}'"),
        }
    };
    let mut what = Vec::new();
    for (command, pids) in &supervisors {
        let which = if *command == UP {
            " in the foreground"
        } else {
            ""
        };
        what.push(format!(
            "a {command}{which}: Ctrl-C it, or 'kill {}'",
            each(pids, &|p| p.to_string(), " ")
        ));
    }
    if !services.is_empty() {
        let tail = match exported {
            true => " (a unit exported with 'wtenv export': stop it with its service manager)",
            false => "",
        };
        what.push(format!("a background service: {}{tail}", down(services)));
    }
    if !shells.is_empty() {
        what.push(format!(
            "a shell that holds them (env --hold, a nix develop shell): exit it, or {}",
            each(&shells, &|p| format!("'wtenv release --hold {p}'"), ", ")
        ));
    }
    if !orphans.is_empty() {
        let also = match orphaned.is_empty() {
            true => String::new(),
            false => format!(", or for a background service {}", down(orphaned)),
        };
        what.push(format!(
            "orphans whose holder is gone: 'wtenv validate --fix' stops them, or 'kill {}'{also}",
            each(&orphans, &|p| p.to_string(), " ")
        ));
    }
    format!(
        "stop what holds them, then release again: {}",
        what.join("; ")
    )
}

/// Whether nothing is at `path` (a link counts as something, even one
/// that leads nowhere; a path wtenv may not look at is not said missing).
fn is_missing(path: &std::path::Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Drops the holds of `pid` ([`supervise::hold::release_pid`]), saying
/// what it released, and stops its watcher, which has nothing left to
/// watch for ([`supervise::watcher::stop`]).
fn release_hold(pid: u32, ctx: &Ctx) -> Result<Outcome> {
    let (held, released) = supervise::hold::release_pid(&ctx.registry, pid)?;
    supervise::watcher::stop(&ctx.registry, pid);
    if !held {
        // Said, not refused: the EXIT trap of a shell that allocated
        // nothing runs it too, and a gone pid may be passed to clean up.
        report::warn(&format!("pid {pid} holds no port of any worktree"));
    }
    for a in released {
        report::note(&format!(
            "released port {} ({}) of {}",
            a.port,
            printable(&a.service),
            printable_path(&a.worktree)
        ));
    }
    Ok(Outcome::SUCCESS)
}
