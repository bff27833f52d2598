//! The real machine behind [`System`]: the probe (under the registry's
//! probe lock), holders from `/proc` (or `lsof`), git's files for gone and
//! moved worktrees, stamps, and the service manager.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::{System, works_in_worktree};
use crate::background::UnitRef;
use crate::probe::{self, Holder, Holders, PortState};
use crate::process::{self, ProcessId};
use crate::registry::{Allocation, Hold, Registry};
use crate::worktree::Stamp;

/// The real machine, with the worktree answer cached per call site.
/// Commands use [`RealSystem::new`]; `default()` (no registry) does not
/// serialize its probes with other wtenv processes.
#[derive(Default)]
pub struct RealSystem {
    gone: BTreeMap<(PathBuf, PathBuf), bool>,
    registry: Option<Registry>,
    /// The registry's probe lock, opened at the first probe.
    probe_lock: Option<std::fs::File>,
    /// By repository: its worktrees that exist, with their stamps (read at
    /// the first [`System::moved_to`]).
    stamped: BTreeMap<PathBuf, Vec<Stamped>>,
    /// By repository (common dir): whether it is gone.
    repositories_gone: BTreeMap<PathBuf, bool>,
    /// By worktree: its own stamp (read at the first
    /// [`System::stamp_lists`] of one of its entries).
    stamps: BTreeMap<PathBuf, Stamp>,
}

/// A worktree, with its stamp.
type Stamped = (PathBuf, Stamp);

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
    fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, Holders> {
        probe::lookup(ports)
    }
    fn is_alive(&mut self, p: ProcessId) -> bool {
        p.is_alive()
    }
    fn running(&mut self, pid: u32) -> bool {
        ProcessId::of(pid).is_some()
    }
    fn unit_active(&mut self, unit: &UnitRef) -> bool {
        unit.is_active()
    }
    fn worktree_starting(&mut self, worktree: &Path) -> bool {
        let (Some(registry), Some(git_dir)) =
            (&self.registry, crate::worktree::git_dir_at(worktree))
        else {
            return false;
        };
        crate::background::WorktreeLock::held(&registry.dir().join("background"), &git_dir)
    }

    fn worktree_gone(&mut self, worktree: &Path, repository: &Path) -> bool {
        *self
            .gone
            .entry((worktree.to_path_buf(), repository.to_path_buf()))
            .or_insert_with(|| crate::worktree::is_gone(worktree, repository))
    }
    fn repository_gone(&mut self, repository: &Path) -> bool {
        *self
            .repositories_gone
            .entry(repository.to_path_buf())
            .or_insert_with(|| crate::worktree::repository_gone(repository))
    }
    fn stamped_in(&mut self, git_dir: &Path) -> Stamp {
        crate::worktree::stamped_in(git_dir)
    }
    fn stamped_in_repository(&mut self, repository: &Path) -> Vec<Stamp> {
        crate::worktree::stamped_in_repository(repository)
    }
    fn stamp_lists(&mut self, a: &Allocation) -> bool {
        self.stamps
            .entry(a.worktree.clone())
            .or_insert_with(|| crate::worktree::stamped_ports(&a.worktree))
            .lists(&a.service, a.port)
    }
    fn claimants(&mut self, a: &Allocation) -> Vec<PathBuf> {
        let worktrees = self.stamped.entry(a.repository.clone()).or_insert_with(|| {
            crate::worktree::listed_worktrees(&a.repository)
                .into_iter()
                .filter_map(|(root, _)| {
                    // Canonical, as the registry records worktrees.
                    let root = root.canonicalize().ok()?;
                    let stamp = crate::worktree::stamped_ports(&root);
                    Some((root, stamp))
                })
                .collect()
        });
        worktrees
            .iter()
            .filter(|(root, stamp)| {
                *root != a.worktree && stamp.claims(&a.service, a.port, &a.worktree)
            })
            .map(|(root, _)| root.clone())
            .collect()
    }
    fn now_of_another_repository(&mut self, worktree: &Path, repository: &Path) -> Option<PathBuf> {
        crate::worktree::now_of_another_repository(worktree, repository)
    }
    fn works_in(&mut self, dir: &Path, worktree: &Path, repository: &Path) -> bool {
        works_in_worktree(dir, worktree, repository)
    }
    fn worktrees_of(&mut self, repository: &Path) -> Vec<PathBuf> {
        crate::worktree::listed_worktrees(repository)
            .into_iter()
            // Canonical, as a process's working directory reads.
            .filter_map(|(root, _)| root.canonicalize().ok())
            .collect()
    }
    fn holder_cwd(&mut self, hold: &Hold) -> Option<PathBuf> {
        if !hold.process().is_alive() {
            return None;
        }
        process::cwd(hold.pid)
    }
    fn holder_dir_deleted(&mut self, hold: &Hold) -> bool {
        hold.process().is_alive() && process::cwd_deleted(hold.pid)
    }
    fn holder_works_elsewhere(&mut self, hold: &Hold, repository: &Path, worktree: &Path) -> bool {
        let Some(dir) = self.holder_cwd(hold) else {
            return false;
        };
        if process::cwd_deleted(hold.pid) {
            return worktree.is_dir();
        }
        repository.exists()
            && crate::worktree::Worktree::discover_resolved(&dir)
                .is_ok_and(|w| w.is_some_and(|w| w.common_dir != repository))
    }
    fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool {
        process::descends_from(pid, ancestor)
    }
    fn orphans(&mut self, hold: &Hold) -> Vec<u32> {
        match hold.group() {
            Some(group) if !self.holder_alive(hold) => process::orphans(group),
            _ => Vec::new(),
        }
    }
    fn manager_holds(&mut self, a: &Allocation, holder: &Holder) -> bool {
        crate::background::systemd::socket_unit_holds(a, holder)
    }
}
