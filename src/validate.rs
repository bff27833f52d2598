//! The registry check behind `wtenv validate` (README, "validate"): findings
//! as plain data, each with a kind, a severity, what it concerns, why, and
//! the [`Fix`] that repairs it if one exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::alloc::{self, Fix, Stale, System, Usage};
use crate::config::Config;
use crate::ports::Conflict;
use crate::process::{printable, printable_path};
use crate::registry::{Allocation, RegistryData};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Unreadable, corrupt or newer-version registry.
    Unreadable,
    DuplicatePort,
    /// One service of a worktree recorded twice, with two ports: wtenv
    /// writes one per service (a hand edit, or a flaw of an older wtenv).
    /// Which is the worktree's is a guess: not fixed, `release` mends it.
    DuplicateService,
    /// A port below 1024: wtenv never records one (the file was edited).
    PrivilegedPort,
    WorktreeGone,
    /// Its worktree is gone, but a holder of it lives (a `run` still
    /// serving from a removed worktree): kept, not fixable; released when
    /// the holder ends ([`alloc::gone_but_held`]).
    WorktreeGoneHeld,
    /// Recorded at the path a worktree was moved from (`--fix` records it
    /// where it went).
    WorktreeMoved,
    /// Listed by the stamps of more than one other worktree: none is
    /// followed (no guessing).
    StampClaimed,
    /// Recorded at a gone path of a gone repository, listed by a stamp of
    /// the repository `validate` runs in (moved whole with `mv`): kept for
    /// its worktree, which claims it once repaired (`git worktree repair`).
    RepositoryMoved,
    HolderDead,
    OutOfRange,
    UnknownPurpose,
    /// `--verify-ports`: allocated, but nothing listens.
    Stale,
    /// `--verify-ports`: held by a process not of its worktree.
    ForeignHolder,
    /// For a service the worktree's config no longer declares.
    ServiceRemoved,
    /// `--verify-ports`: a port of a configured range free in the registry
    /// but occupied on the system (what fails an allocation fast).
    Conflict,
}

impl Kind {
    pub fn severity(self) -> Severity {
        match self {
            Kind::Unreadable | Kind::DuplicatePort | Kind::PrivilegedPort | Kind::ForeignHolder => {
                Severity::Critical
            }
            Kind::DuplicateService
            | Kind::WorktreeGone
            | Kind::HolderDead
            | Kind::OutOfRange
            | Kind::UnknownPurpose
            | Kind::ServiceRemoved
            | Kind::Conflict => Severity::Error,
            Kind::Stale
            | Kind::WorktreeMoved
            | Kind::StampClaimed
            | Kind::WorktreeGoneHeld
            | Kind::RepositoryMoved => Severity::Warning,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    pub port: Option<u16>,
    pub service: Option<String>,
    pub worktree: Option<PathBuf>,
    pub reason: String,
    pub fixable: bool,
    /// Set once `--fix` applied it.
    pub fixed: bool,
    /// For a dead holder whose process group still runs: those processes
    /// (its orphans), which `--fix` stops first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<u32>,
    /// Index of the allocation and its repair (not serialized).
    #[serde(skip)]
    pub fix: Option<(usize, Fix)>,
}

impl Finding {
    fn about(kind: Kind, a: &Allocation, reason: String, fix: Option<(usize, Fix)>) -> Finding {
        Finding {
            kind,
            severity: kind.severity(),
            port: Some(a.port),
            service: Some(a.service.clone()),
            worktree: Some(a.worktree.clone()),
            reason,
            fixable: fix.is_some(),
            fixed: false,
            orphans: Vec::new(),
            fix,
        }
    }

    /// Whether `--fix` applies its fix ([`fix`]): a dead holder whose
    /// orphans still run is left as it is (its record names them).
    fn applies(&self) -> bool {
        self.fixable && self.orphans.is_empty()
    }

    /// A port taken outside the registry's record: `--fix` cannot free a
    /// port another process holds.
    pub fn conflict(c: &Conflict) -> Finding {
        Finding {
            kind: Kind::Conflict,
            severity: Kind::Conflict.severity(),
            port: Some(c.port),
            service: None,
            worktree: None,
            reason: format!(
                "port {} of the {} range {} is free in the registry but occupied on the system: {}",
                c.port,
                c.purpose,
                c.range,
                c.describe()
            ),
            fixable: false,
            fixed: false,
            orphans: Vec::new(),
            fix: None,
        }
    }

    /// The finding for a registry that cannot be read at all.
    pub fn unreadable(reason: String) -> Finding {
        Finding {
            kind: Kind::Unreadable,
            severity: Severity::Critical,
            port: None,
            service: None,
            worktree: None,
            reason,
            fixable: false,
            fixed: false,
            orphans: Vec::new(),
            fix: None,
        }
    }
}

/// One allocation as checked, for `--verbose`.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub port: u16,
    pub service: String,
    pub purpose: String,
    pub worktree: PathBuf,
    pub lifetime: String,
    /// `ok`, the worst finding's kind, or with `--verify-ports` the live state.
    pub state: String,
}

/// Checks every allocation. `config_of` gives the config that applies to an
/// allocation's worktree (None: unknown, range and service checks
/// skipped). `conflicts` are the ranges' ports taken outside the registry
/// (given with `--verify-ports`). `here` is the repository (common dir)
/// `validate` runs in, if any: the entries of a repository moved whole
/// that its stamps list are left for its worktrees to claim, as its
/// allocations' sweep leaves them ([`alloc::left_to_claim`]).
pub fn check(
    data: &RegistryData,
    verify_ports: bool,
    here: Option<&Path>,
    system: &mut dyn System,
    config_of: &mut dyn FnMut(&Allocation) -> Option<Config>,
    conflicts: &[Conflict],
) -> (Vec<Finding>, Vec<Checked>) {
    let mut findings = Vec::new();
    let mut by_port: BTreeMap<u16, usize> = BTreeMap::new();
    let mut by_service: BTreeMap<(&Path, &Path, &str), u16> = BTreeMap::new();
    for (i, a) in data.allocations.iter().enumerate() {
        let key = (
            a.repository.as_path(),
            a.worktree.as_path(),
            a.service.as_str(),
        );
        if let Some(&other) = by_service.get(&key) {
            findings.push(Finding::about(
                Kind::DuplicateService,
                a,
                format!(
                    "service {} of {} is also recorded with port {other}: wtenv records one port per service of a worktree, and which is its own is a guess; run 'wtenv release --service {}' in that worktree, then its next 'wtenv env' takes one",
                    printable(&a.service),
                    printable_path(&a.worktree),
                    printable(&a.service)
                ),
                None,
            ));
        } else {
            by_service.insert(key, a.port);
        }
        if a.port < crate::config::MIN_PORT {
            findings.push(Finding::about(
                Kind::PrivilegedPort,
                a,
                format!(
                    "port {} is below {}: wtenv never records one, so the registry was edited; wtenv will not rewrite it",
                    a.port,
                    crate::config::MIN_PORT
                ),
                None,
            ));
        }
        if let Some(&first) = by_port.get(&a.port) {
            let other = &data.allocations[first];
            findings.push(Finding::about(
                Kind::DuplicatePort,
                a,
                format!(
                    "port {} is also allocated to {} of {}",
                    a.port,
                    printable(&other.service),
                    printable_path(&other.worktree)
                ),
                None,
            ));
        } else {
            by_port.insert(a.port, i);
        }
    }
    let left = here.map_or_else(BTreeSet::new, |r| alloc::left_to_claim(data, r, system));
    let stale = alloc::find_stale_where(data, system, |a| !left.contains(&a.port));
    let mut gone = vec![false; data.allocations.len()];
    for (i, a) in data.allocations.iter().enumerate() {
        if left.contains(&a.port) {
            // Not fixable: `git worktree repair`, then the worktree's own
            // `env`, takes it.
            gone[i] = true;
            let reason = format!(
                "worktree {} is gone with its repository {}, and a stamp of this repository lists it (moved with it): kept for that worktree, whose next 'wtenv env' takes it; git lists a linked one as prunable until it is found again: {}",
                printable_path(&a.worktree),
                printable_path(&a.repository),
                crate::worktree::MOVED_OR_DELETED
            );
            findings.push(Finding::about(Kind::RepositoryMoved, a, reason, None));
        }
    }
    for (i, why) in &stale {
        let a = &data.allocations[*i];
        let (kind, reason) = match why {
            Stale::WorktreeGone => {
                gone[*i] = true;
                (Kind::WorktreeGone, worktree_gone(a))
            }
            Stale::RepositoryGone => {
                gone[*i] = true;
                (
                    Kind::WorktreeGone,
                    format!(
                        "worktree {} is gone: its repository {} no longer exists",
                        printable_path(&a.worktree),
                        printable_path(&a.repository)
                    ),
                )
            }
            Stale::Moved(to) => {
                // Its config is read where it went, at the next check.
                gone[*i] = true;
                (
                    Kind::WorktreeMoved,
                    format!(
                        "worktree {} was moved to {} (git worktree move): its ports follow it",
                        printable_path(&a.worktree),
                        printable_path(to)
                    ),
                )
            }
            Stale::HolderGone(h) => (
                Kind::HolderDead,
                format!("holder pid {} ({}) is gone", h.pid, printable(&h.command)),
            ),
        };
        findings.push(Finding::about(kind, a, reason, Some((*i, why.fix()))));
    }
    // A gone worktree's entry whose holder lives (a `run` still serving
    // from a worktree removed under it) is not stale: said, and never
    // released by `--fix`; the holder's release frees it, or the sweep
    // once the holder is dead.
    for (i, a) in data.allocations.iter().enumerate() {
        if gone[i] {
            continue;
        }
        if let Some(h) = alloc::gone_but_held(data, a, system) {
            gone[i] = true;
            let reason = format!("{}, {}", worktree_gone(a), alloc::held_by_command(h, true));
            findings.push(Finding::about(Kind::WorktreeGoneHeld, a, reason, None));
        }
    }
    // Two stamps or more claim an entry that its own worktree's stamp
    // does not list (or whose worktree is gone): none is followed
    // (`System::moved_to`), and this names them.
    for a in &data.allocations {
        let unlisted = system.worktree_gone(&a.worktree, &a.repository) || !system.stamp_lists(a);
        let claimants = if unlisted {
            system.claimants(a)
        } else {
            Vec::new()
        };
        if claimants.len() > 1 {
            let names: Vec<String> = claimants.iter().map(|c| printable_path(c)).collect();
            findings.push(Finding::about(
                Kind::StampClaimed,
                a,
                format!(
                    "the stamps of {} worktrees list it ({}): wtenv cannot tell which one, if any, it was moved to, so none gets it (it stays where it is recorded, or goes with its worktree); `wtenv env` in each of them rewrites its stamp",
                    claimants.len(),
                    names.join(", ")
                ),
                None,
            ));
        }
    }
    // A worktree whose directory is now another repository's own (a
    // deleted worktree replaced by a clone at its path): proven from git's
    // files, and only while no holder of the entry lives. Not part of the
    // sweep (rule 4), which looks no further than a missing directory.
    for (i, a) in data.allocations.iter().enumerate() {
        if gone[i] || a.holders.iter().any(|h| system.holder_alive(h)) {
            continue;
        }
        if let Some(other) = system.now_of_another_repository(&a.worktree, &a.repository) {
            gone[i] = true;
            findings.push(Finding::about(
                Kind::WorktreeGone,
                a,
                format!(
                    "worktree {} is gone: its directory is now a worktree of another repository ({})",
                    printable_path(&a.worktree),
                    printable_path(&other)
                ),
                Some((i, Fix::Release)),
            ));
        }
    }
    // A gone `run` whose group still runs is not swept (its orphans use
    // the port): it is reported here, and `--fix` stops them first.
    for (i, a) in data.allocations.iter().enumerate() {
        for h in &a.holders {
            let orphans = system.orphans(h);
            if orphans.is_empty() {
                continue;
            }
            let mut f = Finding::about(
                Kind::HolderDead,
                a,
                format!(
                    "holder pid {} ({}) is gone, its process group still runs (orphans): {}",
                    h.pid,
                    printable(&h.command),
                    alloc::describe_pids(&orphans)
                ),
                Some((i, Fix::DropHolder(h.clone()))),
            );
            f.orphans = orphans;
            findings.push(f);
        }
    }
    for (i, a) in data.allocations.iter().enumerate() {
        if gone[i] {
            continue;
        }
        let Some(config) = config_of(a) else {
            continue;
        };
        match config.purpose_ranges(&a.purpose) {
            None => findings.push(Finding::about(
                Kind::UnknownPurpose,
                a,
                format!("purpose \"{}\" is not configured", printable(&a.purpose)),
                Some((i, Fix::Release)),
            )),
            Some(r) if !r.contains(a.port) => findings.push(Finding::about(
                Kind::OutOfRange,
                a,
                format!(
                    "port {} is outside the {} {}",
                    a.port,
                    printable(&a.purpose),
                    r.label()
                ),
                Some((i, Fix::Release)),
            )),
            Some(_) => {}
        }
        if !a.adhoc && config.service(&a.service).is_none() {
            findings.push(Finding::about(
                Kind::ServiceRemoved,
                a,
                format!(
                    "service {} is not declared in the worktree's config (stale)",
                    printable(&a.service)
                ),
                Some((i, Fix::Release)),
            ));
        }
    }
    findings.extend(
        conflicts
            .iter()
            .filter(|c| c.reserved_for.is_none())
            .map(Finding::conflict),
    );
    let mut states: Vec<Option<String>> = vec![None; data.allocations.len()];
    if verify_ports {
        // A port whose finding's fix releases it (out of range, a service
        // removed, a dead holder's held-only port) is not stale as well:
        // one port, one finding, one fix. A dead holder's whose orphans
        // still run too: `--fix` stops them first, then makes that fix.
        let fixes: Vec<(usize, Fix)> = findings
            .iter()
            .filter(|f| f.fixable)
            .filter_map(|f| f.fix.clone())
            .collect();
        let released = alloc::released_by(data, &fixes);
        let live: Vec<(usize, &Allocation)> = data
            .allocations
            .iter()
            .enumerate()
            .filter(|(i, _)| !gone[*i])
            .collect();
        let refs: Vec<&Allocation> = live.iter().map(|(_, a)| *a).collect();
        match alloc::classify(&refs, system) {
            Ok(usage) => {
                for ((i, a), u) in live.iter().zip(usage) {
                    states[*i] = Some(crate::ports::state_text(&u));
                    match u {
                        // Nothing listens yet, but a live process holds it
                        // (a `nix develop` shell, a `run` whose server still
                        // starts, a background service between restarts):
                        // its owner has the number, so it is not stale.
                        Usage::Idle if a.holders.iter().any(|h| system.holder_alive(h)) => {}
                        Usage::Idle if released.contains(i) => {}
                        // An `up -d` starting its units, whose `run`s
                        // have yet to hold their ports.
                        Usage::Idle if system.worktree_starting(&a.worktree) => {}
                        Usage::Idle => findings.push(Finding::about(
                            Kind::Stale,
                            a,
                            "nothing is listening on it (stale)".into(),
                            Some((*i, Fix::Release)),
                        )),
                        Usage::Foreign(h) => findings.push(Finding::about(
                            Kind::ForeignHolder,
                            a,
                            format!(
                                "held by a process not of its worktree: {}",
                                alloc::describe_found(&h)
                            ),
                            None,
                        )),
                        Usage::InUse(_) => {}
                    }
                }
            }
            Err(e) => findings.push(Finding::unreadable(format!("could not probe ports: {e}"))),
        }
    }
    let checked = data
        .allocations
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let worst = findings
                .iter()
                .filter(|f| {
                    f.fix.as_ref().is_some_and(|(j, _)| *j == i)
                        || (f.port == Some(a.port) && f.worktree.as_ref() == Some(&a.worktree))
                })
                .max_by_key(|f| f.severity);
            Checked {
                port: a.port,
                service: a.service.clone(),
                purpose: a.purpose.clone(),
                worktree: a.worktree.clone(),
                lifetime: alloc::lifetime(a, system),
                state: match (worst, &states[i]) {
                    (Some(f), _) => serde_json::to_value(f.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    (None, Some(s)) => s.clone(),
                    (None, None) => "ok".into(),
                },
            }
        })
        .collect();
    (findings, checked)
}

/// `worktree PATH is gone (directory missing, ...)`, with what git says
/// of it: an unlocked worktree whose directory was deleted is listed, as
/// prunable, until `git worktree prune`.
fn worktree_gone(a: &Allocation) -> String {
    let listing = if crate::worktree::still_listed(&a.worktree, &a.repository) {
        "git still lists it, as prunable"
    } else {
        "not listed by git"
    };
    format!(
        "worktree {} is gone (directory missing, {listing})",
        printable_path(&a.worktree)
    )
}

/// Applies every fixable finding; marks them fixed. A dead holder whose
/// orphans still run (the caller stops them first) is left as it is: its
/// record is what names them.
pub fn fix(data: &mut RegistryData, findings: &mut [Finding]) {
    let fixes: Vec<(usize, Fix)> = findings
        .iter()
        .filter(|f| f.applies())
        .filter_map(|f| f.fix.clone())
        .collect();
    alloc::apply_fixes(data, &fixes);
    for f in findings.iter_mut().filter(|f| f.applies()) {
        f.fixed = true;
    }
}

/// The exit code for what remains: 2 critical, 1 errors, 0 otherwise.
pub fn exit_code(findings: &[Finding]) -> u8 {
    let remaining = findings
        .iter()
        .filter(|f| !f.fixed)
        .map(|f| f.severity)
        .max();
    match remaining {
        Some(Severity::Critical) => crate::exit::REGISTRY,
        Some(Severity::Error) => crate::exit::FAILURE,
        _ => crate::exit::SUCCESS,
    }
}
