//! The allocation rules (docs/ARCHITECTURE.md, "Allocation rules", numbered
//! there and cited here as "rule N"), in one place.
//!
//! Decisions are plain functions over values: [`scan`] picks ports,
//! [`sweep`] finds provably stale entries, [`classify`] tells in-use from
//! foreign. They take the system as a trait ([`System`]) so they are tested
//! without sockets. [`ensure`] is the I/O edge: it runs them inside one
//! registry transaction, which is what makes concurrent wtenv processes
//! never hand out the same port (rule 7).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::background::UnitRef;
use crate::config::{PortRange, Ranges};
use crate::error::{Error, Result};
use crate::probe::{self, Holder, PortState};
use crate::process::{self, ProcessId};
use crate::registry::{self, Allocation, Hold, Registry, RegistryData};

/// What the decisions need to know about the machine.
pub trait System {
    fn probe(&mut self, port: u16) -> io::Result<PortState>;
    fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, Vec<Holder>>;
    fn is_alive(&mut self, process: ProcessId) -> bool;
    /// Whether the service manager says `unit` is still active.
    fn unit_active(&mut self, unit: &UnitRef) -> bool;
    /// A holder lives while its process does, or, for one that runs as a
    /// unit of a service manager, while that unit is active (a restarted
    /// unit has a new pid): gone only when both are.
    fn holder_alive(&mut self, hold: &Hold) -> bool {
        self.is_alive(hold.process()) || hold.unit.as_ref().is_some_and(|u| self.unit_active(u))
    }
    fn worktree_gone(&mut self, worktree: &Path, repository: &Path) -> bool;
    /// Whether `pid` is `ancestor` or one of its descendants.
    fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool;
    /// The live processes of the group `hold`'s wtenv spawned, once that
    /// wtenv is gone (its orphans); none for a hold with no recorded
    /// group leader ([`process::orphans`]).
    fn orphans(&mut self, hold: &Hold) -> Vec<u32>;
}

/// The real machine, with the worktree answer cached per call site.
/// Commands use [`RealSystem::new`]; `default()` (no registry) does not
/// serialize its probes with other wtenv processes.
#[derive(Default)]
pub struct RealSystem {
    gone: BTreeMap<(PathBuf, PathBuf), bool>,
    registry: Option<Registry>,
    /// The registry's probe lock, opened at the first probe.
    probe_lock: Option<std::fs::File>,
}

impl RealSystem {
    /// The machine as the wtenv processes sharing `registry` see it: each
    /// probe holds the registry's probe lock, so their probes never see
    /// each other's sockets ([`Registry::open_probe_lock`]).
    pub fn new(registry: &Registry) -> RealSystem {
        RealSystem {
            registry: Some(registry.clone()),
            ..RealSystem::default()
        }
    }
}

impl System for RealSystem {
    fn probe(&mut self, port: u16) -> io::Result<PortState> {
        // Keep the error itself as the source: `Error::probe` recovers it,
        // so a probe lock busy past the wait still exits 2.
        let to_io = io::Error::other;
        if let (Some(r), None) = (&self.registry, &self.probe_lock) {
            self.probe_lock = r.open_probe_lock().map_err(to_io)?;
        }
        let _turn = match (&self.registry, &self.probe_lock) {
            (Some(r), Some(file)) => Some(r.probe_turn(file).map_err(to_io)?),
            _ => None,
        };
        probe::probe(port)
    }
    fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, Vec<Holder>> {
        probe::holders(ports)
    }
    fn is_alive(&mut self, p: ProcessId) -> bool {
        p.is_alive()
    }
    fn unit_active(&mut self, unit: &UnitRef) -> bool {
        unit.is_active()
    }
    fn worktree_gone(&mut self, worktree: &Path, repository: &Path) -> bool {
        *self
            .gone
            .entry((worktree.to_path_buf(), repository.to_path_buf()))
            .or_insert_with(|| crate::worktree::is_gone(worktree, repository))
    }
    fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool {
        process::descends_from(pid, ancestor)
    }
    fn orphans(&mut self, hold: &Hold) -> Vec<u32> {
        match (hold.pgid, hold.leader_start) {
            (Some(pgid), Some(start)) if !self.holder_alive(hold) => process::orphans(pgid, start),
            _ => Vec::new(),
        }
    }
}

/// The result of scanning a range for `count` free ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Free in the registry and on the system, lowest first.
    pub free: Vec<u16>,
    /// Free in the registry but occupied on the system.
    pub conflicts: Vec<u16>,
}

/// Rule 2 and 3: walk `range` upwards, skipping `taken`, probing the rest.
/// Stops once `count` ports are found, unless a conflict was met and
/// `skip_occupied` is off: then it scans to the end so the failure lists
/// every conflict in the range.
pub fn scan(
    range: PortRange,
    taken: &BTreeSet<u16>,
    count: usize,
    skip_occupied: bool,
    system: &mut dyn System,
) -> io::Result<Scan> {
    let mut out = Scan {
        free: Vec::new(),
        conflicts: Vec::new(),
    };
    for port in range.ports() {
        let failing = !skip_occupied && !out.conflicts.is_empty();
        if out.free.len() >= count && !failing {
            break;
        }
        if taken.contains(&port) {
            continue;
        }
        match system.probe(port)? {
            PortState::Occupied => {
                tracing::debug!(port, "free in registry, occupied on system: conflict");
                out.conflicts.push(port);
            }
            PortState::Free if out.free.len() < count => {
                tracing::debug!(port, "free: taken");
                out.free.push(port);
            }
            PortState::Free => {}
        }
    }
    Ok(out)
}

/// Every port of `range` that is free in the registry (not in `taken`) but
/// occupied on the system: the whole range, for `wtenv conflicts`.
pub fn occupied_in(
    range: PortRange,
    taken: &BTreeSet<u16>,
    system: &mut dyn System,
) -> io::Result<Vec<u16>> {
    let mut out = Vec::new();
    for port in range.ports().filter(|p| !taken.contains(p)) {
        if system.probe(port)? == PortState::Occupied {
            out.push(port);
        }
    }
    Ok(out)
}

/// A port of a configured range that is free in the registry but occupied
/// on the system (rule 3's conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeConflict {
    pub purpose: String,
    pub range: PortRange,
    pub port: u16,
}

/// Every [`RangeConflict`] of every range of `purposes`: what `conflicts`,
/// `list` and `validate --verify-ports` show.
pub fn range_conflicts(
    purposes: &BTreeMap<String, Ranges>,
    taken: &BTreeSet<u16>,
    system: &mut dyn System,
) -> io::Result<Vec<RangeConflict>> {
    let mut found = Vec::new();
    for (purpose, ranges) in purposes {
        for range in ranges.iter() {
            for port in occupied_in(range, taken, system)? {
                found.push(RangeConflict {
                    purpose: purpose.clone(),
                    range,
                    port,
                });
            }
        }
    }
    Ok(found)
}

/// Why an entry is provably stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// A holder process is gone (dead, or its pid reused).
    HolderGone(Hold),
    /// The worktree's directory is missing and git no longer lists it.
    WorktreeGone,
}

/// Rule 4: what to change for every provably stale entry, without changing
/// anything. Pair with [`apply_fixes`].
pub fn find_stale(data: &RegistryData, system: &mut dyn System) -> Vec<(usize, Stale)> {
    find_stale_where(data, system, |_| true)
}

/// [`find_stale`] among the entries `wanted` picks.
fn find_stale_where(
    data: &RegistryData,
    system: &mut dyn System,
    wanted: impl Fn(&Allocation) -> bool,
) -> Vec<(usize, Stale)> {
    let mut out = Vec::new();
    for (i, a) in data.allocations.iter().enumerate() {
        if !wanted(a) {
            continue;
        }
        if system.worktree_gone(&a.worktree, &a.repository) {
            out.push((i, Stale::WorktreeGone));
            continue;
        }
        for h in &a.holders {
            // A gone `run` whose group still runs (it was SIGKILLed) is
            // not stale: its orphans use the port, and the hold is what
            // names them until `validate --fix` stops them.
            if !system.holder_alive(h) && system.orphans(h).is_empty() {
                out.push((i, Stale::HolderGone(h.clone())));
            }
        }
    }
    out
}

/// `pid 12 (npm run dev), pid 13 (node vite)`: processes named for a
/// message.
pub fn describe_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| format!("pid {p} ({})", process::command(*p).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A repair of one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Remove the allocation.
    Release,
    /// Drop this holder; a held (not reserved) entry left with no holder is
    /// released.
    DropHolder(Hold),
}

impl Stale {
    pub fn fix(&self) -> Fix {
        match self {
            Stale::WorktreeGone => Fix::Release,
            Stale::HolderGone(h) => Fix::DropHolder(h.clone()),
        }
    }
}

/// Applies `fixes` (by allocation index). Returns the released allocations.
pub fn apply_fixes(data: &mut RegistryData, fixes: &[(usize, Fix)]) -> Vec<Allocation> {
    let mut release = BTreeSet::new();
    for (i, fix) in fixes {
        let a = &mut data.allocations[*i];
        match fix {
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

/// Sweeps every entry and logs; returns what was released.
pub fn sweep(data: &mut RegistryData, system: &mut dyn System) -> Vec<Allocation> {
    sweep_where(data, system, |_| true)
}

/// [`sweep`] among the entries `wanted` picks.
pub fn sweep_where(
    data: &mut RegistryData,
    system: &mut dyn System,
    wanted: impl Fn(&Allocation) -> bool,
) -> Vec<Allocation> {
    let stale = find_stale_where(data, system, wanted);
    for (i, why) in &stale {
        let a = &data.allocations[*i];
        tracing::info!(port = a.port, service = %a.service, worktree = %a.worktree.display(), ?why, "sweeping stale entry");
    }
    let fixes: Vec<(usize, Fix)> = stale.iter().map(|(i, s)| (*i, s.fix())).collect();
    apply_fixes(data, &fixes)
}

/// The live state of one allocated port (rule 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// Nothing listens.
    Idle,
    /// Held on the system by a process of its own worktree.
    InUse(Vec<Holder>),
    /// Held by a process not of its worktree; empty: holder unknown.
    Foreign(Vec<Holder>),
}

impl Usage {
    pub fn label(&self) -> &'static str {
        match self {
            Usage::Idle => "idle",
            Usage::InUse(_) => "listening",
            Usage::Foreign(_) => "conflict",
        }
    }
}

/// Rule 5 for a batch of allocations: probe each; look up holders of the
/// busy ones in one pass.
pub fn classify(allocations: &[&Allocation], system: &mut dyn System) -> io::Result<Vec<Usage>> {
    let mut busy = BTreeSet::new();
    for a in allocations {
        if system.probe(a.port)? == PortState::Occupied {
            busy.insert(a.port);
        }
    }
    let holders = system.holders(&busy);
    Ok(allocations
        .iter()
        .map(|a| {
            if !busy.contains(&a.port) {
                return Usage::Idle;
            }
            let found = holders.get(&a.port).cloned().unwrap_or_default();
            let own = !found.is_empty()
                && found.iter().all(|h| {
                    h.cwd.as_deref().is_some_and(|c| c.starts_with(&a.worktree))
                        || a.holders
                            .iter()
                            .any(|hold| system.descends_from(h.pid, hold.pid))
                });
            if own {
                Usage::InUse(found)
            } else {
                Usage::Foreign(found)
            }
        })
        .collect())
}

/// How long `a` lives, as the read-only views show it: `reserved`, then
/// each recorded holder, `held by pid N` (and its unit, for a background
/// service) while it lives and `held by pid N: gone` once it is not (a view writes nothing: the next allocating
/// command or `validate --fix` sweeps it).
pub fn lifetime(a: &Allocation, system: &mut dyn System) -> String {
    let mut parts: Vec<String> = Vec::new();
    if a.reserved {
        parts.push("reserved".into());
    }
    for h in &a.holders {
        // A background service's unit, so `list` names what to stop.
        let unit = h
            .unit
            .as_ref()
            .map(|u| format!(" ({} unit {})", u.manager.name(), u.name))
            .unwrap_or_default();
        if system.holder_alive(h) {
            parts.push(format!("held by pid {}{unit}", h.pid));
        } else {
            let orphans = system.orphans(h);
            if orphans.is_empty() {
                parts.push(format!("held by pid {}{unit}: gone", h.pid));
            } else {
                parts.push(format!(
                    "held by pid {}{unit}: gone, its orphans run: {}",
                    h.pid,
                    describe_pids(&orphans)
                ));
            }
        }
    }
    if parts.is_empty() {
        parts.push("held".into());
    }
    parts.join(", ")
}

/// The recorded holders of `a` as JSON, each with whether it lives.
pub fn holds_json(a: &Allocation, system: &mut dyn System) -> serde_json::Value {
    a.holders
        .iter()
        .map(|h| {
            let mut v = serde_json::to_value(h).expect("a hold serializes");
            v["alive"] = system.holder_alive(h).into();
            let orphans: Vec<serde_json::Value> = system
                .orphans(h)
                .into_iter()
                .map(|p| serde_json::json!({"pid": p, "command": process::command(p)}))
                .collect();
            v["orphans"] = orphans.into();
            v
        })
        .collect()
}

/// One line per holder, or "holder unknown".
pub fn describe_holders(holders: &[Holder]) -> String {
    if holders.is_empty() {
        "holder unknown".into()
    } else {
        holders
            .iter()
            .map(Holder::describe)
            .collect::<Vec<_>>()
            .join("; ")
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
}

/// How the allocations a command makes or uses are tied to a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldMode {
    /// New allocations are reserved (sticky); nothing is marked held. A
    /// process under a live holder of the worktree joins that hold instead
    /// ([`ensure_allocations`]).
    Reserve,
    /// `run`/`up`/`env --hold PID`: every allocation of the worktree gets
    /// this holder, reserved ones too (so `remove` sees it); new ones live
    /// only while it lives.
    HoldAll(Hold),
    /// `run --service S...`: only these services' allocations get this
    /// holder (new ones live while it lives); the others are reserved, as
    /// by a plain `env`, so the command still sees every port.
    HoldServices(Hold, Vec<String>),
}

impl HoldMode {
    /// The holder `service`'s allocation gets, if any.
    fn holder_for(&self, service: &str) -> Option<&Hold> {
        match self {
            HoldMode::Reserve => None,
            HoldMode::HoldAll(h) => Some(h),
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
/// Fast path, for [`HoldMode::Reserve`] only: every service already has a
/// *reserved* allocation and every recorded holder of it lives: one
/// shared-lock read of this worktree's entries, no write. Otherwise (a hold
/// to record, a port missing, one merely held, a dead holder to sweep) one
/// exclusive transaction sweeps stale entries, scans, and writes. On a conflict
/// nothing is written (not even the sweep), and the error carries the
/// conflict message.
pub fn ensure(
    registry: &Registry,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
) -> Result<Ports> {
    ensure_allocations(registry, req, mode, system).map(|(ports, _)| ports)
}

/// [`ensure`], also returning the worktree's allocations as they stand
/// afterwards (for the checks `env` makes), so callers need not read the
/// registry a second time.
pub fn ensure_allocations(
    registry: &Registry,
    req: &Request,
    mode: &HoldMode,
    system: &mut dyn System,
) -> Result<(Ports, Vec<Allocation>)> {
    let mut joined = None;
    if *mode == HoldMode::Reserve {
        let data = registry.read_worktree(req.repository, req.worktree)?;
        let ports = current_ports(&data, req);
        let mine = allocations_of(&data, req, &ports);
        // A process under a live holder of this worktree's ports (a prompt
        // hook or a `wtenv env` inside a `nix develop` shell, a command
        // under `wtenv run`) joins that hold: making the ports sticky
        // would keep them after the holder is gone. Only held ports cost
        // this /proc walk.
        let me = std::process::id();
        joined = data
            .allocations
            .iter()
            .flat_map(|a| &a.holders)
            .find(|h| system.descends_from(me, h.pid) && system.holder_alive(h))
            .cloned();
        // Otherwise only reservations: a port merely held (by a `nix
        // develop` shell, a `run`) goes away with its holder, so a plain
        // `env` that exports it must make it sticky first (in the
        // transaction below). A dead holder of ours (a SIGKILLed `run`) is
        // swept there too: reading its /proc entry is cheap, and it is
        // only this worktree's holds.
        let fast = ports.len() == req.services.len()
            && (joined.is_some() || mine.iter().all(|a| a.reserved))
            && mine
                .iter()
                .flat_map(|a| &a.holders)
                .all(|h| system.holder_alive(h));
        if fast {
            tracing::debug!(
                joined = joined.is_some(),
                "fast path: every service has its port"
            );
            return Ok((ports, mine));
        }
    }
    let mode = match joined {
        Some(holder) => &HoldMode::HoldAll(holder),
        None => mode,
    };
    // The sweep is committed even when the allocation then fails: it only
    // removes what is provably stale, so the next command starts clean and
    // the failure can name the process that outlived its holder (rule 4).
    registry.transaction(|data| {
        Ok(allocate_in(data, req, mode, system).map(|ports| {
            let mine = allocations_of(data, req, &ports);
            (ports, mine)
        }))
    })?
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
    sweep_where(data, system, |a| {
        req.ranges.iter().any(|r| r.contains(a.port)) || a.belongs_to(req.repository, req.worktree)
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
        let free = scan_ranges(req, &taken, missing.len(), system)?;
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
    for a in data.allocations.iter_mut() {
        if !a.belongs_to(req.repository, req.worktree) || !have.contains_key(&a.service) {
            continue;
        }
        match mode {
            // Sticky (rule 1): what a plain `env` exported stays the
            // worktree's even after the process that held it is gone.
            HoldMode::Reserve if !a.reserved => a.reserved = true,
            HoldMode::HoldAll(h) if !a.holders.contains(h) => a.holders.push(h.clone()),
            HoldMode::HoldServices(..) => match mode.holder_for(&a.service) {
                Some(h) if !a.holders.contains(h) => a.holders.push(h.clone()),
                Some(_) => {}
                None if !a.reserved => a.reserved = true,
                None => {}
            },
            _ => {}
        }
    }
    Ok(current_ports(data, req))
}

/// Overflow ranges: `count` free ports from `req`'s ranges in order, the
/// next range only for what the current one could not give. Fail fast
/// stays per range: a conflict in a range fails with that range's message
/// (unless `skip_occupied`), even when a later range has room.
pub fn scan_ranges(
    req: &Request,
    taken: &BTreeSet<u16>,
    count: usize,
    system: &mut dyn System,
) -> Result<Vec<u16>> {
    let mut free = Vec::new();
    for range in req.ranges.iter() {
        if free.len() >= count {
            break;
        }
        let found = scan(range, taken, count - free.len(), req.skip_occupied, system)
            .map_err(Error::probe)?;
        if !found.conflicts.is_empty() && !req.skip_occupied {
            let holders = system.holders(&found.conflicts.iter().copied().collect());
            return Err(Error::Conflict(Box::new(crate::report::PortConflict {
                purpose: req.purpose.to_owned(),
                range,
                ranges: req.ranges.clone(),
                ports: found
                    .conflicts
                    .iter()
                    .map(|p| (*p, holders.get(p).cloned().unwrap_or_default()))
                    .collect(),
            })));
        }
        if found.free.len() < count - free.len() {
            tracing::debug!(%range, "range has no more free ports: next range");
        }
        free.extend(found.free);
    }
    if free.len() < count {
        return Err(Error::RangeExhausted {
            purpose: req.purpose.to_owned(),
            ranges: req.ranges.label(),
        });
    }
    Ok(free)
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

    /// A scripted machine: occupied ports, dead processes, gone worktrees.
    #[derive(Default)]
    struct Fake {
        occupied: BTreeSet<u16>,
        dead: BTreeSet<u32>,
        gone: BTreeSet<PathBuf>,
        holders: BTreeMap<u16, Vec<Holder>>,
        probes: Vec<u16>,
        active_units: BTreeSet<String>,
        /// Orphans by the pid of their dead holder.
        orphans: BTreeMap<u32, Vec<u32>>,
    }

    impl System for Fake {
        fn probe(&mut self, port: u16) -> io::Result<PortState> {
            self.probes.push(port);
            Ok(if self.occupied.contains(&port) {
                PortState::Occupied
            } else {
                PortState::Free
            })
        }
        fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, Vec<Holder>> {
            self.holders
                .iter()
                .filter(|(p, _)| ports.contains(p))
                .map(|(p, h)| (*p, h.clone()))
                .collect()
        }
        fn is_alive(&mut self, p: ProcessId) -> bool {
            !self.dead.contains(&p.pid)
        }
        fn unit_active(&mut self, unit: &UnitRef) -> bool {
            self.active_units.contains(&unit.name)
        }
        fn worktree_gone(&mut self, w: &Path, _: &Path) -> bool {
            self.gone.contains(w)
        }
        fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool {
            pid == ancestor
        }
        fn orphans(&mut self, hold: &Hold) -> Vec<u32> {
            self.orphans.get(&hold.pid).cloned().unwrap_or_default()
        }
    }

    const RANGE: PortRange = PortRange {
        start: 5000,
        end: 5009,
    };

    fn req(worktree: &str, services: Vec<&'static str>) -> Request<'static> {
        Request {
            repository: Path::new("/r/.git"),
            worktree: Box::leak(PathBuf::from(worktree).into_boxed_path()),
            purpose: "feature",
            ranges: Ranges::one(RANGE),
            services,
            skip_occupied: false,
            adhoc: false,
        }
    }

    /// `allocate_in` for worktree `wt` of repository `/r/.git`.
    fn alloc(
        data: &mut RegistryData,
        wt: &str,
        services: Vec<&'static str>,
        mode: &HoldMode,
        sys: &mut dyn System,
    ) -> Result<Ports> {
        allocate_in(data, &req(wt, services), mode, sys)
    }

    fn hold(pid: u32) -> Hold {
        Hold {
            pid,
            start_time: 1,
            command: "x".into(),
            pgid: None,
            leader_start: None,
            unit: None,
        }
    }

    #[test]
    fn lowest_free_port_skipping_the_registry() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let a = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
        let b = alloc(
            &mut data,
            "/w",
            vec!["app", "db"],
            &HoldMode::Reserve,
            &mut sys,
        )
        .unwrap();
        assert_eq!(a["app"], 5000);
        assert_eq!((b["app"], b["db"]), (5001, 5002));
    }

    #[test]
    fn allocation_is_sticky_and_probes_nothing_when_complete() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
        sys.probes.clear();
        sys.occupied.insert(5000); // our own server now runs there
        let again = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
        assert_eq!(again["app"], 5000);
        assert!(sys.probes.is_empty());
    }

    #[test]
    fn conflicts_fail_fast_listing_every_one_and_allocate_nothing() {
        let mut sys = Fake {
            occupied: [5001, 5002, 5003].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        data.allocations.push(Allocation {
            port: 5000,
            service: "app".into(),
            purpose: "feature".into(),
            repository: "/r/.git".into(),
            worktree: "/other".into(),
            created: "t".into(),
            reserved: true,
            holders: vec![],
            adhoc: false,
        });
        let before = data.clone();
        let err = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(
            "Port conflict detected in feature range 5000-5009.\n\
             Ports free in registry but occupied on system: 5001, 5002, 5003.\n\
             Run 'wtenv validate --verify-ports' to detect and clean stale allocations.\n  port 5001: holder unknown"
        ), "{msg}");
        assert_eq!(data.allocations.len(), before.allocations.len());
    }

    #[test]
    fn skip_occupied_takes_the_next_free() {
        let mut sys = Fake {
            occupied: [5000, 5001].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        let mut r = req("/r", vec!["app"]);
        r.skip_occupied = true;
        assert_eq!(
            allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap()["app"],
            5002
        );
    }

    #[test]
    fn exhausted_range_is_an_error() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let one = PortRange {
            start: 5000,
            end: 5000,
        };
        let (mut first, mut second) = (req("/r", vec!["app"]), req("/w", vec!["app"]));
        first.ranges = Ranges::one(one);
        second.ranges = Ranges::one(one);
        allocate_in(&mut data, &first, &HoldMode::Reserve, &mut sys).unwrap();
        let err = allocate_in(&mut data, &second, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert!(matches!(err, Error::RangeExhausted { .. }), "{err}");
    }

    /// `feature` with a first range of 2 ports, then 5100-5109.
    fn overflow(worktree: &str) -> Request<'static> {
        let mut r = req(worktree, vec!["app"]);
        r.ranges = Ranges::new(vec![
            PortRange {
                start: 5000,
                end: 5001,
            },
            PortRange {
                start: 5100,
                end: 5109,
            },
        ])
        .unwrap();
        r
    }

    #[test]
    fn a_full_first_range_overflows_to_the_next_ranges_first_port() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mut got = Vec::new();
        for wt in ["/a", "/b", "/c"] {
            let ports = allocate_in(&mut data, &overflow(wt), &HoldMode::Reserve, &mut sys);
            got.push(ports.unwrap()["app"]);
        }
        assert_eq!(got, vec![5000, 5001, 5100]);
        // One worktree's services may span the ranges.
        let mut two = overflow("/d");
        two.services = vec!["a", "b"];
        let mut data = RegistryData::default();
        allocate_in(&mut data, &overflow("/a"), &HoldMode::Reserve, &mut sys).unwrap();
        let ports = allocate_in(&mut data, &two, &HoldMode::Reserve, &mut sys).unwrap();
        assert_eq!((ports["a"], ports["b"]), (5001, 5100));
    }

    #[test]
    fn a_conflict_in_the_first_range_fails_fast_naming_that_range_and_every_range() {
        let mut sys = Fake {
            occupied: [5001].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        allocate_in(&mut data, &overflow("/a"), &HoldMode::Reserve, &mut sys).unwrap();
        let err = allocate_in(&mut data, &overflow("/b"), &HoldMode::Reserve, &mut sys)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "Port conflict detected in feature range 5000-5001.\n\
                 Ports free in registry but occupied on system: 5001.\n"
            ),
            "{err}"
        );
        assert!(err.contains("feature ranges 5000-5001, 5100-5109"), "{err}");
        assert_eq!(data.allocations.len(), 1, "nothing allocated");
        assert!(!sys.probes.contains(&5100), "the next range is not tried");

        let mut skip = overflow("/b");
        skip.skip_occupied = true;
        let ports = allocate_in(&mut data, &skip, &HoldMode::Reserve, &mut sys).unwrap();
        assert_eq!(ports["app"], 5100, "skip_occupied moves on");
    }

    #[test]
    fn every_range_exhausted_names_every_range() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mut r = overflow("/a");
        r.services = (0..13).map(|i| &*format!("s{i}").leak()).collect();
        let err = allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free port left in feature ranges 5000-5001, 5100-5109"
        );
        assert!(data.allocations.is_empty());
    }

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

    #[test]
    fn hold_services_holds_only_the_named_services_and_reserves_the_rest() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mode = HoldMode::HoldServices(hold(10), vec!["web".into()]);
        alloc(&mut data, "/w", vec!["web", "api"], &mode, &mut sys).unwrap();
        let by = |s: &str| data.allocations.iter().find(|a| a.service == s).unwrap();
        assert!(!by("web").reserved && by("web").holders.len() == 1);
        assert!(by("api").reserved && by("api").holders.is_empty());
        // Existing allocations: the same split.
        let mode = HoldMode::HoldServices(hold(11), vec!["api".into()]);
        alloc(&mut data, "/w", vec!["web", "api"], &mode, &mut sys).unwrap();
        let by = |s: &str| data.allocations.iter().find(|a| a.service == s).unwrap();
        assert_eq!(by("web").holders.len(), 1);
        assert_eq!(by("api").holders[0].pid, 11);
    }

    #[test]
    fn run_marks_reservations_held_and_releases_only_its_own() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
        let me = hold(42);
        alloc(
            &mut data,
            "/r",
            vec!["app", "db"],
            &HoldMode::HoldAll(me.clone()),
            &mut sys,
        )
        .unwrap();
        assert_eq!(data.allocations[0].holders, vec![me.clone()]);
        assert!(!data.allocations[1].reserved);
        let released = release_holds(&mut data, me.process());
        assert_eq!(
            released.len(),
            1,
            "the db port was allocated by the run: released"
        );
        assert_eq!(data.allocations.len(), 1);
        assert!(data.allocations[0].holders.is_empty() && data.allocations[0].reserved);
    }

    #[test]
    fn plain_env_makes_a_held_port_sticky_and_a_dead_holders_port_is_swept_first() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        // A `nix develop` shell (pid 10) allocated it, held.
        alloc(
            &mut data,
            "/r",
            vec!["app"],
            &HoldMode::HoldAll(hold(10)),
            &mut sys,
        )
        .unwrap();
        assert!(!data.allocations[0].reserved);
        // direnv's plain `env` in the same worktree, while it lives.
        let ports = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
        assert_eq!(ports["app"], 5000);
        assert!(data.allocations[0].reserved, "exported by env: sticky");
        // Another worktree whose nix shell died: swept, then reserved anew.
        alloc(
            &mut data,
            "/w",
            vec!["app"],
            &HoldMode::HoldAll(hold(11)),
            &mut sys,
        )
        .unwrap();
        sys.dead.insert(11);
        alloc(&mut data, "/w", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
        let w: Vec<_> = data
            .allocations
            .iter()
            .filter(|a| a.worktree == Path::new("/w"))
            .collect();
        assert_eq!(w.len(), 1);
        assert!(w[0].reserved && w[0].holders.is_empty());
    }

    #[test]
    fn classify_tells_own_from_foreign() {
        let holder = |pid, cwd: &str| Holder {
            pid,
            command: "srv".into(),
            cwd: Some(cwd.into()),
        };
        let mut sys = Fake {
            occupied: [5000, 5001, 5002].into(),
            holders: [
                (5000, vec![holder(1, "/r/sub")]),
                (5001, vec![holder(2, "/elsewhere")]),
            ]
            .into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        alloc(
            &mut data,
            "/r",
            vec!["a", "b", "c", "d"],
            &HoldMode::Reserve,
            &mut Fake::default(),
        )
        .unwrap();
        let refs: Vec<&Allocation> = data.allocations.iter().collect();
        let usage = classify(&refs, &mut sys).unwrap();
        assert!(matches!(usage[0], Usage::InUse(_)));
        assert!(matches!(&usage[1], Usage::Foreign(h) if h[0].pid == 2));
        assert_eq!(usage[2], Usage::Foreign(vec![]));
        assert_eq!(usage[3], Usage::Idle);
    }
}
