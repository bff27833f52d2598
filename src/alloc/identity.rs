//! A worktree's identity, beside its path: the stamp in its git dir
//! (docs/ARCHITECTURE.md, "An entry follows the worktree's identity"):
//! whether it is current, the line to write, the entries of a
//! repository (or a worktree) moved with `mv` that it claims, and the
//! refusal of a worktree at a path a removed one's `run` still serves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Request, System};
use crate::error::Result;
use crate::registry::{Allocation, RegistryData};

/// Whether the stamp in `git_dir` lists the service and port of every
/// entry of `req`'s worktree in `data`, and nothing else (a port it lists
/// that the worktree no longer has would claim another worktree's entry),
/// and was written at the worktree's path (after a move, its entries
/// recorded here once more, it is written again with this path's mark).
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
    stamped.written_at(req.worktree)
        && stamped.ports.len() == own.len()
        && stamped
            .ports
            .iter()
            .all(|(s, p)| own.contains(&(s.as_str(), *p)))
}

/// The stamp's line of the worktree of `req`, from its entries in `data`.
pub(super) fn own_line(data: &RegistryData, req: &Request) -> String {
    crate::worktree::stamp_line(
        req.worktree,
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
///
/// A worktree moved with a plain `mv` (not `git worktree move`) is the
/// same case within one repository: until `git worktree repair`, git
/// lists it at its old path, which is gone, and no listing leads to its
/// new one; its entries, recorded at the old path, are claimed the same
/// way by the worktree whose own stamp lists them (written at that
/// path), its holders working in it. Without it, the sweep released such
/// an entry as gone (and the worktree took the lowest free port, its own
/// again only by luck), or, held by the worktree's own running service,
/// kept it for that service while `env` gave the worktree a second port.
pub(super) fn claim_from_gone_repository(
    data: &mut RegistryData,
    req: &Request,
    system: &mut dyn System,
) -> BTreeSet<u16> {
    let orphaned = of_gone_repositories(data, req.repository, system);
    let stranded = of_gone_worktrees(data, req, system);
    let Some(git_dir) = req
        .git_dir
        .filter(|_| !orphaned.is_empty() || !stranded.is_empty())
    else {
        return BTreeSet::new();
    };
    let own = system.stamped_in(git_dir);
    let mut left = false;
    let candidates = orphaned
        .into_iter()
        .map(|i| (i, true))
        .chain(stranded.into_iter().map(|i| (i, false)));
    for (i, of_gone_repository) in candidates {
        let a = &data.allocations[i];
        let has_own = data
            .allocations
            .iter()
            .any(|b| b.belongs_to(req.repository, req.worktree) && b.service == a.service);
        if own.claims(&a.service, a.port, &a.worktree)
            && !has_own
            && moved_along(a, &[req.worktree], req.repository, system)
        {
            tracing::info!(port = a.port, service = %a.service, from = %a.worktree.display(), "claiming the entry of a moved worktree");
            let a = &mut data.allocations[i];
            a.worktree = req.worktree.to_path_buf();
            a.repository = req.repository.to_path_buf();
        } else if of_gone_repository {
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
    let mut worktrees: Option<Vec<PathBuf>> = None;
    orphaned
        .into_iter()
        .map(|i| &data.allocations[i])
        .filter(|a| {
            theirs
                .iter()
                .any(|s| s.claims(&a.service, a.port, &a.worktree))
        })
        .filter(|a| {
            let worktrees = worktrees.get_or_insert_with(|| system.worktrees_of(repository));
            let worktrees: Vec<&Path> = worktrees.iter().map(PathBuf::as_path).collect();
            moved_along(a, &worktrees, repository, system)
        })
        .map(|a| a.port)
        .collect()
}

/// Whether `a`'s holders came along with the repository moved whole that
/// claims `a`: each that lives works, by its working directory, in one of
/// `worktrees` of `repository` ([`System::works_in`]), as a `mv` of the
/// repository leaves it (a process's working directory follows the
/// directory, whatever its path). A stamp is a claim, not a proof: one
/// planted in another repository names the port of a deleted one, whose
/// `run` still serving from the deleted directory keeps its entry where
/// it is until it ends. An entry no holder of lives came along.
fn moved_along(
    a: &Allocation,
    worktrees: &[&Path],
    repository: &Path,
    system: &mut dyn System,
) -> bool {
    a.holders.iter().all(|h| {
        !system.holder_alive(h)
            || system.holder_cwd(h).is_some_and(|dir| {
                worktrees
                    .iter()
                    .any(|w| system.works_in(&dir, w, repository))
            })
    })
}

/// The entries of `data` (by index) of `req`'s repository recorded at
/// another path, gone ([`System::worktree_gone`]).
fn of_gone_worktrees(data: &RegistryData, req: &Request, system: &mut dyn System) -> Vec<usize> {
    let mut stranded = Vec::new();
    for (i, a) in data.allocations.iter().enumerate() {
        if a.repository == req.repository
            && a.worktree != req.worktree
            && system.worktree_gone(&a.worktree, &a.repository)
        {
            stranded.push(i);
        }
    }
    stranded
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

/// The refusal of a worktree at a path whose entry a `run` of the
/// worktree removed from there still holds (its directory deleted under
/// it: `remove --force`, `rm -rf`): the port is that `run`'s until it
/// ends, and this is another worktree, which must not take it, nor a
/// second port for the same service at the same path (the registry keys
/// a worktree by its path). Once the `run` ends, its sweep frees the
/// port.
pub(super) fn refuse_a_removed_worktrees(
    data: &RegistryData,
    req: &Request,
    system: &mut dyn System,
) -> Result<()> {
    for a in data
        .allocations
        .iter()
        .filter(|a| a.belongs_to(req.repository, req.worktree))
    {
        if let Some(h) = a.holders.iter().find(|h| system.holder_dir_deleted(h)) {
            return Err(crate::error::Error::refused(format!(
                "port {} ({}) recorded at {} is held by pid {} ({}), which still runs in the worktree removed from there (its directory deleted under it): this worktree cannot take it until it ends",
                a.port,
                crate::process::printable(&a.service),
                crate::process::printable_path(req.worktree),
                h.pid,
                crate::process::printable(&h.command),
            ))
            .with_hint(format!(
                "stop it (kill {}), then run the command again; its port is then released",
                h.pid
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::left_to_claim;
    use crate::alloc::fake::{Fake, hold, req};
    use crate::alloc::{HoldMode, allocate_in};
    use crate::registry::{Allocation, RegistryData};
    use crate::worktree::Stamp;

    /// An entry of the gone repository `/old/.git` (its worktree `/old`
    /// gone too) for `app` on 5000, held by pid 10, whose port the stamp
    /// of `/r`'s main worktree lists: the claim of a repository moved
    /// whole, or of one planted there.
    fn world(cwd: &str) -> (RegistryData, Fake) {
        let mut data = RegistryData::default();
        data.allocations.push(Allocation {
            port: 5000,
            service: "app".into(),
            purpose: "feature".into(),
            repository: "/old/.git".into(),
            worktree: "/old".into(),
            created: String::new(),
            reserved: true,
            holders: vec![hold(10)],
            adhoc: false,
        });
        let sys = Fake {
            gone: ["/old".into()].into(),
            gone_repositories: ["/old/.git".into()].into(),
            stamps: [(
                "/r/.git".into(),
                Stamp::new(Path::new("/old"), vec![("app".into(), 5000)]),
            )]
            .into(),
            listed: [("/r/.git".into(), vec!["/r".into()])].into(),
            cwds: [(10, PathBuf::from(cwd))].into(),
            ..Fake::default()
        };
        (data, sys)
    }

    /// `env` in `/r`: the port it gets, and the worktree the entry of
    /// 5000 is recorded at then.
    fn env_in_r(data: &mut RegistryData, sys: &mut Fake) -> (u16, PathBuf) {
        let mut req = req("/r", vec!["app"]);
        req.git_dir = Some(Path::new("/r/.git"));
        let ports = allocate_in(data, &req, &HoldMode::Reserve, sys).unwrap();
        let at = data.allocations.iter().find(|a| a.port == 5000).unwrap();
        (ports["app"], at.worktree.clone())
    }

    #[test]
    fn a_held_entry_is_claimed_when_its_holder_moved_along() {
        let (mut data, mut sys) = world("/r/src");
        assert_eq!(
            left_to_claim(&data, Path::new("/r/.git"), &mut sys),
            [5000].into()
        );
        assert_eq!(env_in_r(&mut data, &mut sys), (5000, "/r".into()));
        assert_eq!(data.allocations[0].holders, [hold(10)]);
    }

    /// A stamp is a claim, not a proof: the holder works elsewhere (in
    /// the deleted repository), so the entry stays where it is.
    #[test]
    fn a_held_entry_stays_when_its_holder_works_elsewhere() {
        let (mut data, mut sys) = world("/old/src");
        assert!(left_to_claim(&data, Path::new("/r/.git"), &mut sys).is_empty());
        assert_eq!(env_in_r(&mut data, &mut sys), (5001, "/old".into()));
        assert_eq!(data.allocations[0].holders, [hold(10)]);
    }

    /// An entry no holder of lives is claimed as before.
    #[test]
    fn an_entry_whose_holder_is_gone_is_claimed() {
        let (mut data, mut sys) = world("/old/src");
        sys.dead = [10].into();
        assert_eq!(
            left_to_claim(&data, Path::new("/r/.git"), &mut sys),
            [5000].into()
        );
        assert_eq!(env_in_r(&mut data, &mut sys), (5000, "/r".into()));
    }
}
