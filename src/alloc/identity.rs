//! A worktree's identity, beside its path: the stamp in its git dir
//! (docs/ARCHITECTURE.md, "An entry follows the worktree's identity"):
//! whether it is current, the line to write, and the entries of a
//! repository moved whole that it claims.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Request, System};
use crate::registry::{Allocation, RegistryData};

/// Whether the stamp in `git_dir` lists the service and port of every
/// entry of `req`'s worktree in `data`, and nothing else (a port it lists
/// that the worktree no longer has would claim another worktree's entry).
/// No read when the worktree has no entries.
pub(super) fn stamp_is_current(git_dir: &Path, data: &RegistryData, req: &Request) -> bool {
    let own: BTreeSet<(&str, u16)> = data
        .allocations
        .iter()
        .filter(|a| a.belongs_to(req.repository, req.worktree))
        .map(|a| (a.service.as_str(), a.port))
        .collect();
    if own.is_empty() {
        return true;
    }
    let stamped = crate::worktree::stamped_in(git_dir);
    stamped.len() == own.len() && stamped.iter().all(|(s, p)| own.contains(&(s.as_str(), *p)))
}

/// The stamp's line of the worktree of `req`, from its entries in `data`.
pub(super) fn own_line(data: &RegistryData, req: &Request) -> String {
    crate::worktree::stamp_line(
        data.allocations
            .iter()
            .filter(|a| a.belongs_to(req.repository, req.worktree))
            .map(|a| (a.service.as_str(), a.port)),
    )
}

/// A repository moved whole (`mv` of its main worktree and its
/// worktrees): its entries record a common dir and worktree paths that
/// are gone. The worktree of `req` claims those its own stamp lists
/// (recorded at its path and repository instead; not one for a service
/// it has a port for already), so it keeps its ports rather than take
/// another's as the lowest free. Those the stamps of its repository's
/// other worktrees list are theirs to claim: returned, by port, for the
/// sweep to leave ([`left_to_claim`]). Nothing is read when no entry of
/// `data` has a gone repository.
pub(super) fn claim_from_gone_repository(
    data: &mut RegistryData,
    req: &Request,
    system: &mut dyn System,
) -> BTreeSet<u16> {
    let orphaned = of_gone_repositories(data, req.repository, system);
    let Some(git_dir) = req.git_dir.filter(|_| !orphaned.is_empty()) else {
        return BTreeSet::new();
    };
    let own = system.stamped_in(git_dir);
    let mut left = false;
    for i in orphaned {
        let a = &data.allocations[i];
        let has_own = data
            .allocations
            .iter()
            .any(|b| b.belongs_to(req.repository, req.worktree) && b.service == a.service);
        if lists(&own, a) && !has_own {
            tracing::info!(port = a.port, service = %a.service, from = %a.worktree.display(), "claiming the entry of a moved repository");
            let a = &mut data.allocations[i];
            a.worktree = req.worktree.to_path_buf();
            a.repository = req.repository.to_path_buf();
        } else {
            left = true;
        }
    }
    if !left {
        return BTreeSet::new();
    }
    left_to_claim(data, req.repository, system)
}

/// The rule that keeps a repository moved whole from losing the ports of
/// its worktrees not repaired (`git worktree repair`) or not entered yet:
/// the entries of `data` recorded at a gone path of a gone repository
/// (other than `repository`) that the stamps of `repository`'s git dirs
/// list (its main one's and `worktrees/*`, wherever git last saw their
/// directories), by port. They are left for their worktree to claim: the
/// allocating sweep of a worktree of `repository` leaves them
/// ([`claim_from_gone_repository`]), and so does `validate --fix` run in
/// one. Nothing is read when no entry of `data` has a gone repository.
pub fn left_to_claim(
    data: &RegistryData,
    repository: &Path,
    system: &mut dyn System,
) -> BTreeSet<u16> {
    let orphaned = of_gone_repositories(data, repository, system);
    if orphaned.is_empty() {
        return BTreeSet::new();
    }
    let theirs = system.stamped_in_repository(repository);
    orphaned
        .into_iter()
        .map(|i| &data.allocations[i])
        .filter(|a| lists(&theirs, a))
        .map(|a| a.port)
        .collect()
}

/// The entries of `data` (by index) recorded at a gone path of a gone
/// repository other than `repository`.
fn of_gone_repositories(
    data: &RegistryData,
    repository: &Path,
    system: &mut dyn System,
) -> Vec<usize> {
    let mut orphaned = Vec::new();
    for (i, a) in data.allocations.iter().enumerate() {
        if a.repository != repository
            && system.repository_gone(&a.repository)
            && system.worktree_gone(&a.worktree, &a.repository)
        {
            orphaned.push(i);
        }
    }
    orphaned
}

/// Whether `stamped` lists `a`'s service and port.
fn lists(stamped: &[(String, u16)], a: &Allocation) -> bool {
    stamped.iter().any(|(s, p)| *s == a.service && *p == a.port)
}
