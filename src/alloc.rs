//! The allocation rules (docs/ARCHITECTURE.md, "Allocation rules", numbered
//! there and cited here as "rule N"), in one place.
//!
//! Decisions are plain functions over values: [`scan`](fn@scan) picks ports,
//! [`sweep`] finds provably stale entries, [`classify`] tells in-use from
//! foreign. They take the system as a trait ([`System`]) so they are tested
//! without sockets. [`ensure`] is the I/O edge: it runs them inside one
//! registry transaction, which is what makes concurrent wtenv processes
//! never hand out the same port (rule 7).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::background::UnitRef;
use crate::config::Ranges;
use crate::error::Result;
use crate::probe::{Holder, Holders, PortState};
use crate::process::ProcessId;
use crate::registry::{self, Allocation, Hold, Registry, RegistryData};
use crate::worktree::Stamp;

#[cfg(test)]
mod fake;
mod identity;
mod real;
mod scan;
mod stale;
mod usage;

pub use identity::left_to_claim;
pub use real::RealSystem;
pub use scan::{
    RangeConflict, Scan, describe_found, describe_holders, occupied_in, range_conflicts, scan,
    scan_ranges,
};
pub use stale::{
    Fix, Stale, apply_fixes, find_stale, find_stale_where, gone_but_held, holder_gone, live_holder,
    moved_to, moves_to, release_holds, release_holds_where, released_by, repository_gone, sweep,
    sweep_part,
};
pub use usage::{
    HolderState, Usage, busy_holders, classify, describe_pids, held_by, held_by_command,
    holder_state, holds_json, lifetime, lookup_busy, works_in_worktree,
};

/// What the decisions need to know about the machine.
pub trait System {
    fn probe(&mut self, port: u16) -> io::Result<PortState>;
    /// Who holds each port of `ports` ([`crate::probe::lookup`]); a port missing
    /// from the answer: holder unknown.
    fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, Holders>;
    fn is_alive(&mut self, process: ProcessId) -> bool;
    /// Whether the process `pid` still runs (not a zombie): one a holder
    /// lookup named may have ended since.
    fn running(&mut self, pid: u32) -> bool;
    /// Whether the service manager says `unit` is still active.
    fn unit_active(&mut self, unit: &UnitRef) -> bool;
    /// A holder lives while its process does, or, for one that runs as a
    /// unit of a service manager, while that unit is active (a restarted
    /// unit has a new pid): gone only when both are.
    fn holder_alive(&mut self, hold: &Hold) -> bool {
        self.is_alive(hold.process()) || hold.unit.as_ref().is_some_and(|u| self.unit_active(u))
    }
    fn worktree_gone(&mut self, worktree: &Path, repository: &Path) -> bool;
    /// Whether a wtenv is starting or stopping the background services of
    /// the worktree at `worktree` now (it holds the worktree's lock,
    /// [`crate::background::WorktreeLock`]): its reservations are its
    /// units' to hold, idle or not.
    fn worktree_starting(&mut self, _worktree: &Path) -> bool {
        false
    }
    /// Whether the common dir `repository` an entry records is gone: the
    /// repository was deleted (or moved), whatever is left at its
    /// worktrees' paths.
    fn repository_gone(&mut self, repository: &Path) -> bool {
        let _ = repository;
        false
    }
    /// The stamp in `git_dir` ([`crate::worktree::stamped_in`]).
    fn stamped_in(&mut self, git_dir: &Path) -> Stamp {
        let _ = git_dir;
        Stamp::default()
    }
    /// The stamps of every worktree of the repository whose common dir
    /// is `repository`, its git dirs' whether their directories are where
    /// git last saw them or not
    /// ([`crate::worktree::stamped_in_repository`]).
    fn stamped_in_repository(&mut self, repository: &Path) -> Vec<Stamp> {
        let _ = repository;
        Vec::new()
    }
    /// Whether the stamp of `a`'s worktree, which exists, lists `a`'s
    /// service and port ([`crate::worktree::stamped_ports`]): the entry
    /// is that worktree's. When it does not, the entry may be another's,
    /// moved away from this path ([`System::moved_to`]).
    fn stamp_lists(&mut self, a: &Allocation) -> bool {
        let _ = a;
        true
    }
    /// The other existing worktrees of `a`'s repository whose stamps
    /// list `a`'s service and port and were written at `a`'s path
    /// ([`crate::worktree::Stamp::claims`]).
    fn claimants(&mut self, a: &Allocation) -> Vec<PathBuf> {
        let _ = a;
        Vec::new()
    }
    /// Where the worktree of `a` went, when it was moved away from `a`'s
    /// path (`git worktree move` keeps the worktree's git dir, and with
    /// it the stamp the registry last wrote there): the one claimant of
    /// `a` ([`System::claimants`]). Asked of an entry whose worktree is
    /// gone, or whose worktree's own stamp does not list it
    /// ([`System::stamp_lists`]: a new worktree at the old path). Two
    /// stamps or more that list it prove nothing (one of them is stale):
    /// none is followed, and `validate` names them.
    fn moved_to(&mut self, a: &Allocation) -> Option<PathBuf> {
        let mut claimants = self.claimants(a);
        match claimants.len() {
            1 => claimants.pop(),
            _ => None,
        }
    }
    /// The repository whose own worktree `worktree`'s directory is now,
    /// when it is not `repository` and that is proven from git's files
    /// ([`crate::worktree::now_of_another_repository`]); asked by
    /// `validate` of an entry whose worktree is not gone.
    fn now_of_another_repository(&mut self, worktree: &Path, repository: &Path) -> Option<PathBuf> {
        let _ = (worktree, repository);
        None
    }
    /// Whether a process working in `dir` is, by that directory, of the
    /// worktree at `worktree` of `repository` (rule 5): `worktree` is the
    /// innermost worktree of `repository` around `dir`
    /// ([`works_in_worktree`]).
    fn works_in(&mut self, dir: &Path, worktree: &Path, repository: &Path) -> bool;
    /// The top levels of the worktrees git lists for the repository whose
    /// common dir is `repository` ([`crate::worktree::listed_worktrees`]),
    /// canonical.
    fn worktrees_of(&mut self, repository: &Path) -> Vec<PathBuf> {
        let _ = repository;
        Vec::new()
    }
    /// The working directory of `hold`'s process, the very one recorded
    /// alive ([`crate::process::cwd`]); `None` when it is gone or its
    /// directory cannot be read.
    fn holder_cwd(&mut self, hold: &Hold) -> Option<PathBuf> {
        let _ = hold;
        None
    }
    /// Whether `hold`'s process, alive, works in a directory since
    /// deleted ([`crate::process::cwd_deleted`]): the worktree it served
    /// was removed under it.
    fn holder_dir_deleted(&mut self, hold: &Hold) -> bool {
        let _ = hold;
        false
    }
    /// Whether `hold`'s process, alive, works elsewhere than the worktree
    /// of `repository` at `worktree` that its entry names, now: in a
    /// worktree of another repository, which exists (its working
    /// directory in one: the `run` of a repository moved whole (`mv`),
    /// whose entry is recorded at a path a new repository took since); or
    /// in a directory since deleted while one is at `worktree` again (the
    /// `run` of a worktree removed under it, `remove --force`, and a
    /// worktree made at that path since). What descends from it is not
    /// the new one's (rule 5). While nothing is at `repository` (moved,
    /// not claimed yet) or at `worktree` (removed), it is still its own.
    fn holder_works_elsewhere(&mut self, hold: &Hold, repository: &Path, worktree: &Path) -> bool {
        let _ = (hold, repository, worktree);
        false
    }
    /// Whether `pid` is `ancestor` or one of its descendants.
    fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool;
    /// Whether `pid` is `hold`'s holder or one of its descendants, that
    /// holder being the very process recorded, alive with its start time
    /// ([`System::is_alive`]). A dead holder's pid may be another
    /// process's by now (or tomorrow): what descends from that one is
    /// not the hold's, and must not pass for its worktree's own (rule 5)
    /// nor join its hold.
    fn descends_from_holder(&mut self, pid: u32, hold: &Hold) -> bool {
        self.is_alive(hold.process()) && self.descends_from(pid, hold.pid)
    }
    /// The live processes of the group `hold`'s wtenv spawned, once that
    /// wtenv is gone (its orphans); none for a hold with no recorded
    /// group leader ([`crate::process::orphans`]).
    fn orphans(&mut self, hold: &Hold) -> Vec<u32>;
    /// Whether `holder` is the service manager listening on `a`'s port
    /// for `a`'s own service (the `.socket` unit `export systemd` wrote):
    /// the worktree's listener, not a foreign one.
    fn manager_holds(&mut self, a: &Allocation, holder: &Holder) -> bool {
        let _ = (a, holder);
        false
    }
}

/// What a worktree asks for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub repository: &'a Path,
    pub worktree: &'a Path,
    pub purpose: &'a str,
    /// Tried in order: the next when one has no free port left.
    pub ranges: Ranges,
    /// Service names, in allocation order.
    pub services: Vec<&'a str>,
    pub skip_occupied: bool,
    /// `allocate --service S` for a service the config does not declare
    /// (recorded on the new allocations).
    pub adhoc: bool,
    /// The file of the config the ranges come from (`None`: the built-in
    /// defaults), which the error of a full range names
    /// ([`crate::config::file_named`]): where to widen them.
    pub config_source: Option<&'a Path>,
    /// The worktree's own git dir, already found, where its stamp is:
    /// before its entries are used without a transaction, the stamp must
    /// list them ([`ensure_vetted`]). `None` (`create`, whose git dir git
    /// may not have made yet): not checked there.
    pub git_dir: Option<&'a Path>,
}

/// How the allocations a command makes or uses are tied to a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldMode {
    /// New allocations are reserved (sticky); nothing is marked held. A
    /// process under a live holder of the worktree joins that hold instead
    /// ([`ensure_allocations`]): `env` in a `nix develop` shell.
    Reserve,
    /// [`HoldMode::Reserve`], whatever hold the calling process is under:
    /// for a command whose result outlives that hold (`up --detach`'s
    /// units, `export`'s unit files, `allocate`, `create --ports`,
    /// `enter`), whose
    /// ports must stay the worktree's once the shell is gone.
    Sticky,
    /// `run`/`up`/`env --hold PID`: every allocation of the worktree gets
    /// this holder, reserved ones too (so `remove` sees it); new ones live
    /// only while it lives.
    HoldAll(Hold),
    /// `run --service S...`: only these services' allocations get this
    /// holder (new ones live while it lives); the others are reserved, as
    /// by a plain `env`, so the command still sees every port.
    HoldServices(Hold, Vec<String>),
    /// `run`: [`HoldMode::HoldAll`], except that when every port is
    /// already reserved for the worktree nothing is written: the caller
    /// records the hold once its command has settled ([`Ensured::hold_waits`]).
    Settling(Hold),
}

impl HoldMode {
    /// The holder `service`'s allocation gets, if any.
    fn holder_for(&self, service: &str) -> Option<&Hold> {
        match self {
            HoldMode::Reserve | HoldMode::Sticky => None,
            HoldMode::HoldAll(h) | HoldMode::Settling(h) => Some(h),
            HoldMode::HoldServices(h, only) => only.iter().any(|s| s == service).then_some(h),
        }
    }
}

/// The worktree's ports by service after [`ensure`], in the request's
/// (the config's declaration) order.
pub type Ports = indexmap::IndexMap<String, u16>;

fn current_ports(data: &RegistryData, req: &Request) -> Ports {
    let mine: BTreeMap<&str, u16> = data
        .allocations
        .iter()
        .filter(|a| a.belongs_to(req.repository, req.worktree))
        .map(|a| (a.service.as_str(), a.port))
        .collect();
    req.services
        .iter()
        .filter_map(|s| mine.get(s).map(|p| ((*s).to_owned(), *p)))
        .collect()
}

/// Makes sure every service of `req` has a port (rules 1-4, 7).
///
/// Fast path, for [`HoldMode::Reserve`], [`HoldMode::Sticky`] and
/// [`HoldMode::Settling`]: every service already has a *reserved*
/// allocation and every recorded holder of it lives: one shared-lock
/// read of this worktree's entries, no write. Otherwise one exclusive
/// transaction: over the worktree's own entries when every
/// service has its port (a hold to record, one merely held, a dead holder
/// of ours to sweep), else over its ranges too, to sweep them and scan. On
/// a conflict only the sweep is written, and the error carries the
/// conflict message.
pub fn ensure(
    registry: &Registry,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
) -> Result<Ports> {
    ensure_allocations(registry, req, mode, system).map(|e| e.ports)
}

/// What [`ensure_allocations`] leaves.
#[derive(Debug)]
pub struct Ensured {
    pub ports: Ports,
    /// The worktree's allocations as they stand afterwards (for the
    /// checks `env` makes), so callers need not read the registry again.
    pub mine: Vec<Allocation>,
    /// A [`HoldMode::Settling`] hold was not written: every port was
    /// reserved. A reservation is never swept while its worktree exists,
    /// so no other worktree can take the ports meanwhile; the caller
    /// writes the hold when its command has run for a moment
    /// ([`crate::supervise::hold::record_hold`]), and a command that ends
    /// sooner (`run -- true`) never writes the registry.
    pub hold_waits: bool,
}

/// A command's check of the worktree's allocations as [`ensure_vetted`]
/// finds them, before it locks or writes anything: it may probe and walk
/// `/proc` (a port held from outside the worktree), which should not
/// happen under the registry's lock. Only the entries its sweep records
/// at the worktree from elsewhere (a moved worktree's, rare) are checked
/// under it ([`transact`]). Its refusal writes nothing.
pub type Had<'h> = dyn FnMut(&[Allocation], &mut dyn System) -> Result<()> + 'h;

/// A command's check of what [`ensure_vetted`] would leave (the ports it
/// would export), inside the transaction before its write: cheap, no
/// system calls, since the lock is held. Its refusal writes nothing.
pub type Vet<'v> = dyn FnMut(&Ensured) -> Result<()> + 'v;

/// [`ensure`], also saying what the worktree's allocations are afterwards.
pub fn ensure_allocations(
    registry: &Registry,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
) -> Result<Ensured> {
    ensure_vetted(registry, req, mode, system, &mut |_, _| Ok(()), &mut |_| {
        Ok(())
    })
}

/// [`ensure_allocations`], with two checks whose refusal leaves the
/// registry as it was (not even the sweep is written, unlike a
/// conflict's): `had` on the worktree's allocations as read, before any
/// lock is taken or anything written (a port held from outside the
/// worktree; a port this call picks is proved free as it is picked), and
/// `vet` on the outcome inside the transaction, before its write (a value
/// the output format cannot carry; on the fast path, which writes
/// nothing, after the read).
pub fn ensure_vetted(
    registry: &Registry,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
    had: &mut Had,
    vet: &mut Vet,
) -> Result<Ensured> {
    // This worktree's entries, under the shared lock (a binary search in
    // the sealed file): whether a port must be picked decides which
    // transaction, if any, follows.
    let data = registry.read_worktree(req.repository, req.worktree)?;
    let ports = current_ports(&data, req);
    let complete = ports.len() == req.services.len();
    let mine = allocations_of(&data, req, &ports);
    // The entries are the worktree's only if its own stamp lists them, or
    // no other worktree's stamp does (README, "Allocation": a new
    // worktree at the path another was moved from is not that one). One
    // read of the stamp in the git dir already found; when it does not
    // list them, the transaction below decides.
    let stamped = req
        .git_dir
        .is_none_or(|g| identity::stamp_is_current(g, &data, req));
    // What the sweep below will leave: a port held only by a gone holder
    // is released by it, and one that follows a moved worktree is that
    // one's, not this worktree's to refuse as held from outside. (A
    // reserved entry whose stamp lists it costs this no system call.)
    let kept: Vec<Allocation> = mine
        .iter()
        .filter(|a| {
            !stale::released_by_sweep(a, system)
                && (stamped || !stale::moved_away(&data, a, system))
        })
        .cloned()
        .collect();
    had(&kept, system)?;
    let mut joined = None;
    if *mode == HoldMode::Reserve {
        // A process under a live holder of this worktree's ports (a prompt
        // hook or a `wtenv env` inside a `nix develop` shell, a command
        // under `wtenv run`) joins that hold: making the ports sticky
        // would keep them after the holder is gone. (What outlives the
        // holder asks for [`HoldMode::Sticky`], which never joins.) Only
        // held ports cost this /proc walk.
        let me = std::process::id();
        joined = data
            .allocations
            .iter()
            .flat_map(|a| &a.holders)
            .find(|h| system.descends_from_holder(me, h))
            .cloned();
    }
    // Nothing to write when every port is reserved: a port merely held (by
    // a `nix develop` shell, a `run`) goes away with its holder, so a plain
    // `env` that exports it must make it sticky first, and a hold must be
    // recorded at once (in the transaction below). A `Settling` hold
    // waits for its command instead ([`Ensured::hold_waits`]). A dead
    // holder of ours (a SIGKILLed `run`) is swept below too: reading its
    // /proc entry is cheap, and it is only this worktree's holds.
    let unwritten = match mode {
        HoldMode::Reserve => joined.is_some() || mine.iter().all(|a| a.reserved),
        HoldMode::Sticky | HoldMode::Settling(_) => mine.iter().all(|a| a.reserved),
        HoldMode::HoldAll(_) | HoldMode::HoldServices(..) => false,
    };
    let fast = complete
        && unwritten
        && stamped
        && mine
            .iter()
            .flat_map(|a| &a.holders)
            .all(|h| system.holder_alive(h));
    if fast {
        let hold_waits = matches!(mode, HoldMode::Settling(_));
        tracing::debug!(
            joined = joined.is_some(),
            hold_waits,
            "fast path: every service has its port"
        );
        let ensured = Ensured {
            ports,
            mine,
            hold_waits,
        };
        vet(&ensured)?;
        return Ok(ensured);
    }
    let mode = match joined {
        Some(holder) => &HoldMode::HoldAll(holder),
        None => mode,
    };
    // The stamp's line once the transaction is done, to write when the
    // stamp did not list the worktree's entries and they stay its own
    // (a stamp an older wtenv never wrote): the registry rewrites a stamp
    // only when the worktree's ports change.
    let mut line = None;
    let ensured = transact(registry, req, mode, system, had, vet, complete, &mut line)?;
    if !stamped
        && let Some(line) = line
        && req
            .git_dir
            .is_some_and(|g| !crate::worktree::stamp_holds(g, &line))
    {
        crate::worktree::write_stamp(req.worktree, &line);
    }
    Ok(ensured)
}

/// [`ensure_vetted`]'s transaction, once the fast path is ruled out;
/// `line` gets the worktree's stamp line as it leaves the registry.
/// `had` is asked again, under the lock, of the entries the sweep
/// recorded at this worktree from elsewhere (those that followed it after
/// a `git worktree move`, or claimed from its repository moved whole):
/// unknown to the look before the lock, they are as much the worktree's
/// to export, and a process outside it holding one refuses them with
/// nothing written.
#[allow(clippy::too_many_arguments)]
fn transact(
    registry: &Registry,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
    had: &mut Had,
    vet: &mut Vet,
    complete: bool,
    line: &mut Option<String>,
) -> Result<Ensured> {
    // Every service has its port (a `run` or `up` in a worktree `env`
    // entered, a port to make sticky): only this worktree's entries are
    // read, swept and changed. The entries of its ranges (every sibling
    // worktree of a fleet) are needed only to pick a new port, which the
    // sweep may still make necessary.
    // The holders whose holds the sweep dropped: once it is written, the
    // lock files their watchers left, killed too, go with them.
    let mut swept = Vec::new();
    if complete {
        let own = registry::Part::of(req.repository, req.worktree);
        if let Some(done) = registry.transaction_in(own, |data| {
            let before = holders_in(data);
            let Some(ports) = hold_in(data, req, mode, system) else {
                return Ok(None);
            };
            swept = dropped(&before, data);
            let ensured = Ensured {
                mine: allocations_of(data, req, &ports),
                ports,
                hold_waits: false,
            };
            vet(&ensured)?;
            *line = Some(identity::own_line(data, req));
            Ok(Some(ensured))
        })? {
            crate::supervise::watcher::remove_stale_of(registry, &swept);
            return Ok(done);
        }
    }
    // The sweep is committed even when the allocation then fails: it only
    // removes what is provably stale, so the next command starts clean and
    // the failure can name the process that outlived its holder (rule 4).
    // Only the part of the registry the allocation bears on: this
    // worktree's entries and those in the ranges it scans (with their
    // worktrees'), which are also all that `allocate_in` sweeps.
    let part = registry::Part {
        repository: req.repository,
        worktree: req.worktree,
        ports: Some(&req.ranges),
    };
    let ensured = registry.transaction_in(part, |data| {
        let before = holders_in(data);
        let elsewhere: BTreeSet<u16> = data
            .allocations
            .iter()
            .filter(|a| !a.belongs_to(req.repository, req.worktree))
            .map(|a| a.port)
            .collect();
        let ports = allocate_in(data, req, mode, system);
        swept = dropped(&before, data);
        let ports = match ports {
            Ok(ports) => ports,
            // The sweep alone is written.
            Err(e) => return Ok(Err(e)),
        };
        let ensured = Ensured {
            mine: allocations_of(data, req, &ports),
            ports,
            hold_waits: false,
        };
        let followed: Vec<Allocation> = ensured
            .mine
            .iter()
            .filter(|a| elsewhere.contains(&a.port))
            .cloned()
            .collect();
        if !followed.is_empty() {
            had(&followed, system)?;
        }
        vet(&ensured)?;
        *line = Some(identity::own_line(data, req));
        Ok(Ok(ensured))
    })?;
    crate::supervise::watcher::remove_stale_of(registry, &swept);
    ensured
}

/// Every holder `data` records, as (pid, start time).
fn holders_in(data: &RegistryData) -> BTreeSet<(u32, u64)> {
    data.allocations
        .iter()
        .flat_map(|a| &a.holders)
        .map(|h| (h.pid, h.start_time))
        .collect()
}

/// The holders of `before` that `data` no longer records: those whose
/// holds the sweep dropped (an allocation only adds holders).
fn dropped(before: &BTreeSet<(u32, u64)>, data: &RegistryData) -> Vec<ProcessId> {
    before
        .difference(&holders_in(data))
        .map(|&(pid, start_time)| ProcessId { pid, start_time })
        .collect()
}

fn allocations_of(data: &RegistryData, req: &Request, ports: &Ports) -> Vec<Allocation> {
    data.allocations
        .iter()
        .filter(|a| {
            a.belongs_to(req.repository, req.worktree) && ports.get(&a.service) == Some(&a.port)
        })
        .cloned()
        .collect()
}

/// The body of [`ensure`]'s transaction, over plain data. On error, `data`
/// has been changed by the sweep only.
pub fn allocate_in(
    data: &mut RegistryData,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
) -> Result<Ports> {
    // Rule 4, for what bears on this allocation: the entries in the ranges
    // it scans (a stale one frees its port) and the worktree's own. The
    // others wait for an allocation in their range or `validate --fix`:
    // checking every entry is a stat (and a /proc read per holder) each,
    // which made an allocation grow with the registry (20,000 stats).
    let kept = identity::claim_from_gone_repository(data, req, system);
    identity::refuse_a_removed_worktrees(data, req, system)?;
    sweep_part(data, system, req.worktree, |a| {
        (req.ranges.iter().any(|r| r.contains(a.port))
            || a.belongs_to(req.repository, req.worktree))
            && !kept.contains(&a.port)
    });
    let have = current_ports(data, req);
    let missing: Vec<&str> = req
        .services
        .iter()
        .copied()
        .filter(|s| !have.contains_key(*s))
        .collect();
    if !missing.is_empty() {
        let taken: BTreeSet<u16> = data.allocations.iter().map(|a| a.port).collect();
        let own = data
            .allocations
            .iter()
            .filter(|a| a.belongs_to(req.repository, req.worktree) && req.ranges.contains(a.port))
            .count();
        let free = scan_ranges(req, &taken, missing.len(), own, system)?;
        let created = registry::now_rfc3339();
        for (service, port) in missing.iter().zip(free) {
            let (reserved, holders) = match mode.holder_for(service) {
                None => (true, vec![]),
                Some(h) => (false, vec![h.clone()]),
            };
            data.allocations.push(Allocation {
                port,
                service: (*service).to_owned(),
                purpose: req.purpose.to_owned(),
                repository: req.repository.to_path_buf(),
                worktree: req.worktree.to_path_buf(),
                created: created.clone(),
                reserved,
                holders,
                adhoc: req.adhoc,
            });
        }
    }
    mark(data, req, mode, &have);
    Ok(current_ports(data, req))
}

/// [`allocate_in`] over a part holding only the worktree's own entries
/// ([`registry::Part::of`]), for a worktree with nothing to allocate: its
/// stale entries swept, its ports marked as `mode` says. `None`, with
/// `data` as it was, when a service has no port once the sweep is done:
/// a new port must be picked where the ranges' entries are all seen.
fn hold_in(
    data: &mut RegistryData,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
) -> Option<Ports> {
    if identity::refuse_a_removed_worktrees(data, req, system).is_err() {
        // Said by the transaction over the ranges, which meets it too.
        return None;
    }
    let before = data.clone();
    sweep_part(data, system, req.worktree, |a| {
        a.belongs_to(req.repository, req.worktree)
    });
    let have = current_ports(data, req);
    if have.len() < req.services.len() {
        *data = before;
        return None;
    }
    mark(data, req, mode, &have);
    Some(have)
}

/// Ties the worktree's existing allocations (`have`) to `mode`: made
/// sticky, or given its holder.
fn mark(data: &mut RegistryData, req: &Request, mode: &HoldMode, have: &Ports) {
    for a in data.allocations.iter_mut() {
        if !a.belongs_to(req.repository, req.worktree) || !have.contains_key(&a.service) {
            continue;
        }
        match mode {
            // Sticky (rule 1): what a plain `env` exported stays the
            // worktree's even after the process that held it is gone.
            HoldMode::Reserve | HoldMode::Sticky if !a.reserved => a.reserved = true,
            HoldMode::HoldAll(h) | HoldMode::Settling(h) if !a.holders.contains(h) => {
                a.holders.push(h.clone())
            }
            HoldMode::HoldServices(..) => match mode.holder_for(&a.service) {
                Some(h) if !a.holders.contains(h) => a.holders.push(h.clone()),
                Some(_) => {}
                None if !a.reserved => a.reserved = true,
                None => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
