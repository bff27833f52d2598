//! Rule 4: entries that are provably stale (a holder gone, a worktree
//! gone), the fixes for them, and releasing a holder's holds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::System;
use crate::process::ProcessId;
use crate::registry::{Allocation, Hold, RegistryData};

/// Why an entry is provably stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// A holder process is gone (dead, or its pid reused).
    HolderGone(Hold),
    /// The worktree's directory is missing and git no longer lists it, or
    /// lists it only as prunable (unlocked): `git worktree prune` drops it.
    /// Never while a holder of the entry lives ([`live_holder`]): a `run`
    /// still serving from a removed worktree keeps its port until it ends.
    WorktreeGone,
    /// The repository (the common dir the entry records) is gone, and no
    /// holder of the entry lives: nothing of it can reach the entry again,
    /// whatever is left at the worktree's path.
    RepositoryGone,
    /// The worktree is gone from its path because it was moved (`git
    /// worktree move`) to this one: the moved worktree's stamp lists the
    /// entry ([`System::moved_to`]). The entry follows it, sticky as ever.
    Moved(PathBuf),
}

/// Rule 4: what to change for every provably stale entry, without changing
/// anything. Pair with [`apply_fixes`].
pub fn find_stale(data: &RegistryData, system: &mut dyn System) -> Vec<(usize, Stale)> {
    find_stale_where(data, system, |_| true)
}

/// [`find_stale`] among the entries `wanted` picks.
pub fn find_stale_where(
    data: &RegistryData,
    system: &mut dyn System,
    wanted: impl Fn(&Allocation) -> bool,
) -> Vec<(usize, Stale)> {
    let mut out = Vec::new();
    for (i, a) in data.allocations.iter().enumerate() {
        if !wanted(a) {
            continue;
        }
        if let Some(why) = worktree_stale(data, a, system) {
            out.push((i, why));
            continue;
        }
        for h in &a.holders {
            if holder_gone(system, h) {
                out.push((i, Stale::HolderGone(h.clone())));
            }
        }
    }
    out
}

/// Whether `a`'s worktree is gone ([`Stale::WorktreeGone`]), or gone from
/// its path because it was moved ([`Stale::Moved`]); `None` while it is
/// there. A worktree at `a`'s path is `a`'s only if its own stamp lists
/// `a` or no other worktree's stamp does: when another's does (the
/// worktree `git worktree move` took away, its git dir and stamp with
/// it; a new one was added at the old path), the entry follows that one,
/// unless that one has a port of its own for the service by then (the
/// entry then stays where it is: nothing proves it stale). A gone
/// worktree's entry whose holder lives is not stale ([`gone_but_held`]).
fn worktree_stale(data: &RegistryData, a: &Allocation, system: &mut dyn System) -> Option<Stale> {
    if system.worktree_gone(&a.worktree, &a.repository) {
        return match system.moved_to(a) {
            // The move's fix releases it when `to` has a port of its own
            // by then: not while a holder of it lives (its server would
            // answer on a port the registry calls free).
            Some(to) if has_port_for(data, a, &to) && live_holder(a, system).is_some() => None,
            Some(to) => Some(Stale::Moved(to)),
            None if live_holder(a, system).is_some() => None,
            None => Some(Stale::WorktreeGone),
        };
    }
    if repository_gone(a, system) {
        return Some(Stale::RepositoryGone);
    }
    if system.stamp_lists(a) {
        return None;
    }
    let to = system.moved_to(a)?;
    (!has_port_for(data, a, &to)).then_some(Stale::Moved(to))
}

/// Whether the worktree at `worktree` (of `a`'s repository) has a port
/// of its own in `data` for `a`'s service.
pub(super) fn has_port_for(data: &RegistryData, a: &Allocation, worktree: &Path) -> bool {
    data.allocations
        .iter()
        .any(|b| b.belongs_to(&a.repository, worktree) && b.service == a.service)
}

/// Whether `a`'s repository is gone ([`System::repository_gone`]) while
/// no holder of `a` lives ([`Stale::RepositoryGone`]): a `run` still
/// serving in a checkout whose repository was deleted keeps its port
/// until it ends.
pub fn repository_gone(a: &Allocation, system: &mut dyn System) -> bool {
    system.repository_gone(&a.repository) && live_holder(a, system).is_none()
}

/// The first holder of `a` that lives ([`System::holder_alive`]: the very
/// process recorded, pid and start time, or its active unit).
pub fn live_holder<'a>(a: &'a Allocation, system: &mut dyn System) -> Option<&'a Hold> {
    a.holders.iter().find(|h| system.holder_alive(h))
}

/// The live holder that keeps `a` though its worktree is gone (not moved
/// elsewhere): a `run` still serving from a worktree `git worktree remove
/// --force` removed. Neither the sweep nor `validate --fix` releases such
/// an entry; its holder's own release does when it ends, or, if it dies
/// without, the next sweep. `validate` names it.
pub fn gone_but_held<'a>(
    data: &RegistryData,
    a: &'a Allocation,
    system: &mut dyn System,
) -> Option<&'a Hold> {
    if !system.worktree_gone(&a.worktree, &a.repository)
        || worktree_stale(data, a, system).is_some()
    {
        return None;
    }
    live_holder(a, system)
}

/// Where the worktree of `a` went, when it was moved away from `a`'s
/// path ([`Stale::Moved`]): what the views say instead of "worktree
/// gone", as `validate` does.
pub fn moved_to(data: &RegistryData, a: &Allocation, system: &mut dyn System) -> Option<PathBuf> {
    match worktree_stale(data, a, system) {
        Some(Stale::Moved(to)) => Some(to),
        _ => None,
    }
}

/// Whether `a`, recorded at a worktree that exists, belongs to another
/// worktree moved away from that path ([`worktree_stale`]).
pub fn moved_away(data: &RegistryData, a: &Allocation, system: &mut dyn System) -> bool {
    matches!(worktree_stale(data, a, system), Some(Stale::Moved(_)))
}

/// The sweep's moved-worktree step ([`Stale::Moved`]) for one worktree:
/// the entries of `data` recorded at another path of `repository`, gone
/// because its worktree was moved to `worktree` (`git worktree move`: its
/// stamp lists them), by index, each with the fix that records it there.
/// `remove` and `release` make these moves before they release what the
/// worktree owns; `env` and `allocate` get them from their sweep.
pub fn moves_to(
    data: &RegistryData,
    system: &mut dyn System,
    repository: &Path,
    worktree: &Path,
) -> Vec<(usize, Fix)> {
    let mut out = Vec::new();
    for (i, a) in data.allocations.iter().enumerate() {
        if a.repository != repository || a.worktree == worktree {
            continue;
        }
        if let Some(Stale::Moved(to)) = worktree_stale(data, a, system)
            && to == worktree
        {
            out.push((i, Fix::MoveTo(to)));
        }
    }
    out
}

/// A holder provably gone: dead (or its pid reused), and nothing of its
/// group left. A gone `run` whose group still runs (it was SIGKILLed) is
/// not: its orphans use the port, and the hold is what names them until
/// `validate --fix` stops them. The sweep drops only such holds, and
/// `release` refuses every other.
pub fn holder_gone(system: &mut dyn System, h: &Hold) -> bool {
    !system.holder_alive(h) && system.orphans(h).is_empty()
}

/// Whether the sweep releases `a` (its worktree there): held, not
/// reserved, and every holder gone. Such a port is no longer the
/// worktree's, whoever holds it now.
pub fn released_by_sweep(a: &Allocation, system: &mut dyn System) -> bool {
    !a.reserved && a.holders.iter().all(|h| holder_gone(system, h))
}

/// A repair of one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Remove the allocation.
    Release,
    /// Drop this holder; a held (not reserved) entry left with no holder is
    /// released.
    DropHolder(Hold),
    /// Record the entry for the worktree it moved to; released instead when
    /// that worktree has a port of its own for the service by then.
    MoveTo(PathBuf),
}

impl Stale {
    pub fn fix(&self) -> Fix {
        match self {
            Stale::WorktreeGone | Stale::RepositoryGone => Fix::Release,
            Stale::HolderGone(h) => Fix::DropHolder(h.clone()),
            Stale::Moved(to) => Fix::MoveTo(to.clone()),
        }
    }
}

/// Applies `fixes` (by allocation index). Returns the released allocations.
pub fn apply_fixes(data: &mut RegistryData, fixes: &[(usize, Fix)]) -> Vec<Allocation> {
    let release = mark_fixes(data, fixes);
    let mut released = Vec::new();
    let mut i = 0;
    data.allocations.retain(|a| {
        let keep = !release.contains(&i);
        if !keep {
            released.push(a.clone());
        }
        i += 1;
        keep
    });
    released
}

/// The allocations (by index) that [`apply_fixes`] would release, `data`
/// left as it is: `validate` reports no other finding of a port its fix
/// releases.
pub fn released_by(data: &RegistryData, fixes: &[(usize, Fix)]) -> BTreeSet<usize> {
    if fixes.is_empty() {
        return BTreeSet::new();
    }
    mark_fixes(&mut data.clone(), fixes)
}

/// [`apply_fixes`] but for the releases: the holders dropped and the
/// moves made in `data`, and the allocations to release, by index.
fn mark_fixes(data: &mut RegistryData, fixes: &[(usize, Fix)]) -> BTreeSet<usize> {
    let mut release = BTreeSet::new();
    for (i, fix) in fixes {
        if let Fix::MoveTo(to) = fix {
            if has_port_for(data, &data.allocations[*i], to) {
                release.insert(*i);
            } else {
                data.allocations[*i].worktree = to.clone();
            }
            continue;
        }
        let a = &mut data.allocations[*i];
        match fix {
            Fix::MoveTo(_) => {}
            Fix::Release => {
                release.insert(*i);
            }
            Fix::DropHolder(h) => {
                a.holders.retain(|x| x != h);
                if !a.reserved && a.holders.is_empty() {
                    release.insert(*i);
                }
            }
        }
    }
    release
}

/// Sweeps every entry and logs; returns what was released.
pub fn sweep(data: &mut RegistryData, system: &mut dyn System) -> Vec<Allocation> {
    sweep_where(data, system, |_| true)
}

/// [`sweep`] among the entries `wanted` picks.
fn sweep_where(
    data: &mut RegistryData,
    system: &mut dyn System,
    wanted: impl Fn(&Allocation) -> bool,
) -> Vec<Allocation> {
    let stale = find_stale_where(data, system, wanted);
    apply_logged(data, stale)
}

/// [`sweep`] among the entries `wanted` picks, in the part of the
/// registry a transaction of the worktree `own` read
/// ([`crate::registry::Part`]: the worktree's entries, and those of the
/// ranges it scans, each with all the entries of its worktree). An entry
/// recorded where a worktree was moved from follows that worktree to
/// `own`; to a worktree with an entry in the part (the part then holds
/// all of them); and away from `own`'s path (left there, `own` would
/// take it as its own). To another, from another path, the part cannot
/// tell whether that worktree has a port of its own for the service by
/// then, and the move would record one service of it twice: such an
/// entry waits, as it is, for that worktree's own transaction or
/// `validate --fix`.
pub fn sweep_part(
    data: &mut RegistryData,
    system: &mut dyn System,
    own: &Path,
    wanted: impl Fn(&Allocation) -> bool,
) -> Vec<Allocation> {
    let mut stale = find_stale_where(data, system, wanted);
    stale.retain(|(i, why)| match why {
        Stale::Moved(to) => {
            let a = &data.allocations[*i];
            to == own
                || a.worktree == own
                || data
                    .allocations
                    .iter()
                    .any(|b| b.belongs_to(&a.repository, to))
        }
        _ => true,
    });
    apply_logged(data, stale)
}

/// Applies the fixes of `stale`, each logged.
fn apply_logged(data: &mut RegistryData, stale: Vec<(usize, Stale)>) -> Vec<Allocation> {
    for (i, why) in &stale {
        let a = &data.allocations[*i];
        tracing::info!(port = a.port, service = %a.service, worktree = %a.worktree.display(), ?why, "sweeping stale entry");
    }
    let fixes: Vec<(usize, Fix)> = stale.iter().map(|(i, s)| (*i, s.fix())).collect();
    apply_fixes(data, &fixes)
}

/// Drops `holder` from every allocation; held-only ones it was the last
/// holder of are released. Used when `run`/`up` end.
pub fn release_holds(data: &mut RegistryData, holder: ProcessId) -> Vec<Allocation> {
    release_holds_where(data, |h| h.is(holder))
}

/// [`release_holds`] for the holds `which` picks.
pub fn release_holds_where(
    data: &mut RegistryData,
    which: impl Fn(&Hold) -> bool,
) -> Vec<Allocation> {
    let fixes: Vec<(usize, Fix)> = data
        .allocations
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.holders
                .iter()
                .filter(|h| which(h))
                .map(move |h| (i, Fix::DropHolder(h.clone())))
        })
        .collect();
    apply_fixes(data, &fixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::HoldMode;
    use crate::alloc::fake::*;
    use crate::background::UnitRef;

    #[test]
    fn sweep_drops_dead_holders_and_gone_worktrees() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        alloc(
            &mut data,
            "/held",
            vec!["app"],
            &HoldMode::HoldAll(hold(10)),
            &mut sys,
        )
        .unwrap();
        alloc(
            &mut data,
            "/reserved",
            vec!["app"],
            &HoldMode::HoldAll(hold(11)),
            &mut sys,
        )
        .unwrap();
        data.allocations[1].reserved = true;
        alloc(
            &mut data,
            "/gone",
            vec!["app"],
            &HoldMode::Reserve,
            &mut sys,
        )
        .unwrap();
        sys.dead = [10, 11].into();
        sys.gone.insert("/gone".into());
        let released = sweep(&mut data, &mut sys);
        assert_eq!(
            released.iter().map(|a| a.port).collect::<Vec<_>>(),
            vec![5000, 5002]
        );
        assert_eq!(data.allocations.len(), 1);
        assert!(data.allocations[0].reserved && data.allocations[0].holders.is_empty());
    }

    /// A gone worktree's entry whose holder lives is kept (and said by
    /// [`gone_but_held`]); once the holder is dead, it is released.
    #[test]
    fn a_gone_worktrees_entry_is_kept_while_its_holder_lives() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mode = HoldMode::HoldAll(hold(10));
        alloc(&mut data, "/gone", vec!["app"], &mode, &mut sys).unwrap();
        data.allocations[0].reserved = true;
        sys.gone.insert("/gone".into());
        assert!(find_stale(&data, &mut sys).is_empty());
        let a = &data.allocations[0];
        assert_eq!(gone_but_held(&data, a, &mut sys), Some(&hold(10)));
        assert!(sweep(&mut data, &mut sys).is_empty());
        sys.dead = [10].into();
        let a = &data.allocations[0];
        assert_eq!(gone_but_held(&data, a, &mut sys), None);
        assert_eq!(sweep(&mut data, &mut sys).len(), 1);
        assert!(data.allocations.is_empty());
    }

    #[test]
    fn entries_of_a_moved_worktree_follow_it_unless_it_has_its_own() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        alloc(
            &mut data,
            "/old",
            vec!["web", "api"],
            &HoldMode::Reserve,
            &mut sys,
        )
        .unwrap();
        alloc(&mut data, "/new", vec!["api"], &HoldMode::Reserve, &mut sys).unwrap();
        sys.gone.insert("/old".into());
        sys.moved = [(5000, "/new".into()), (5001, "/new".into())].into();
        let released = sweep(&mut data, &mut sys);
        // api: /new has a port of its own by now, so /old's is freed.
        assert_eq!(released.iter().map(|a| a.port).collect::<Vec<_>>(), [5001]);
        let left: Vec<_> = data
            .allocations
            .iter()
            .map(|a| (a.port, a.service.as_str(), a.worktree.to_str().unwrap()))
            .collect();
        assert_eq!(left, [(5000, "web", "/new"), (5002, "api", "/new")]);
    }

    /// A moved worktree's entry that a holder still holds stays, also
    /// when the worktree has a port of its own for the service by then:
    /// the move's fix would release it while its server answers on it.
    /// Once the holder is gone, it is released as before.
    #[test]
    fn a_held_entry_of_a_moved_worktree_with_its_own_port_stays_while_held() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        alloc(&mut data, "/old", vec!["web"], &HoldMode::Reserve, &mut sys).unwrap();
        alloc(&mut data, "/new", vec!["web"], &HoldMode::Reserve, &mut sys).unwrap();
        data.allocations[0].holders = vec![hold(10)];
        sys.gone.insert("/old".into());
        sys.moved = [(5000, "/new".into())].into();
        assert!(sweep(&mut data, &mut sys).is_empty());
        assert_eq!(data.allocations.len(), 2);
        sys.dead.insert(10);
        let released = sweep(&mut data, &mut sys);
        assert_eq!(released.iter().map(|a| a.port).collect::<Vec<_>>(), [5000]);
    }

    /// A worktree at the path another was moved from: an entry its own
    /// stamp does not list, that another worktree's stamp does, follows
    /// that one (unless it has a port of its own for the service); one
    /// its stamp lists, or that nobody claims, stays.
    #[test]
    fn an_entry_at_an_existing_path_follows_the_stamp_that_lists_it() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let services = vec!["web", "api", "db"];
        alloc(&mut data, "/old", services, &HoldMode::Reserve, &mut sys).unwrap();
        alloc(&mut data, "/new", vec!["db"], &HoldMode::Reserve, &mut sys).unwrap();
        // web: claimed by /new; api: nobody's claim; db: /new has its own.
        sys.unstamped = [5000, 5001, 5002].into();
        sys.moved = [(5000, "/new".into()), (5002, "/new".into())].into();
        assert!(sweep(&mut data, &mut sys).is_empty());
        let left: Vec<_> = data
            .allocations
            .iter()
            .map(|a| (a.port, a.worktree.to_str().unwrap()))
            .collect();
        assert_eq!(
            left,
            [
                (5000, "/new"),
                (5001, "/old"),
                (5002, "/old"),
                (5003, "/new")
            ]
        );
        // Listed by its own stamp: its own, whoever else claims it.
        let mut data = RegistryData::default();
        alloc(&mut data, "/old", vec!["web"], &HoldMode::Reserve, &mut sys).unwrap();
        sys.unstamped.clear();
        assert!(find_stale(&data, &mut sys).is_empty());
    }

    /// Two stamps that list one entry prove nothing: a gone worktree's
    /// entry is released as if none did, one at an existing path stays.
    #[test]
    fn an_entry_two_stamps_claim_follows_neither() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        alloc(
            &mut data,
            "/gone",
            vec!["web"],
            &HoldMode::Reserve,
            &mut sys,
        )
        .unwrap();
        alloc(
            &mut data,
            "/here",
            vec!["web"],
            &HoldMode::Reserve,
            &mut sys,
        )
        .unwrap();
        sys.gone.insert("/gone".into());
        sys.unstamped = [5001].into();
        sys.moved = [(5000, "/a".into()), (5001, "/a".into())].into();
        sys.claimed_too = [(5000, "/b".into()), (5001, "/b".into())].into();
        assert_eq!(
            find_stale(&data, &mut sys),
            [(0, Stale::WorktreeGone)],
            "the gone one's released, the other stays"
        );
    }

    /// One worktree's moves: only the entries that moved to it, whatever
    /// else is stale (a gone worktree's, a moved one's elsewhere).
    #[test]
    fn moves_to_finds_only_what_moved_to_that_worktree() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        for (worktree, services) in [("/old", vec!["web", "api"]), ("/gone", vec!["web"])] {
            alloc(&mut data, worktree, services, &HoldMode::Reserve, &mut sys).unwrap();
        }
        sys.gone = ["/old".into(), "/gone".into()].into();
        sys.moved = [(5000, "/new".into()), (5001, "/other".into())].into();
        let repository = data.allocations[0].repository.clone();
        let moves = moves_to(&data, &mut sys, &repository, Path::new("/new"));
        assert_eq!(moves, [(0, Fix::MoveTo("/new".into()))]);
        assert!(moves_to(&data, &mut sys, Path::new("/elsewhere"), Path::new("/new")).is_empty());
    }

    #[test]
    fn a_unit_holder_lives_while_its_unit_is_active() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mut h = hold(10);
        h.unit = Some(UnitRef {
            manager: crate::background::Manager::Systemd,
            name: "wtenv-r-w-app.service".into(),
        });
        alloc(
            &mut data,
            "/w",
            vec!["app"],
            &HoldMode::HoldAll(h),
            &mut sys,
        )
        .unwrap();
        sys.dead = [10].into();
        sys.active_units.insert("wtenv-r-w-app.service".into());
        assert!(sweep(&mut data, &mut sys).is_empty(), "unit still active");
        sys.active_units.clear();
        assert_eq!(sweep(&mut data, &mut sys).len(), 1, "unit and pid gone");
    }
}
