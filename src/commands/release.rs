//! `wtenv release`: give back this worktree's ports (or one service's).

use std::path::PathBuf;

use crate::config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::ports;
use crate::process::{printable, printable_path};
use crate::registry::RegistryData;
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
    let release = |data: &mut RegistryData| {
        moved.apply(data, &target);
        let mut gone = Vec::new();
        let mut services = Vec::new();
        data.allocations.retain(|a| {
            if a.worktree != target {
                return true;
            }
            services.push(a.service.clone());
            let hit = args.service.as_ref().is_none_or(|s| &a.service == s);
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
