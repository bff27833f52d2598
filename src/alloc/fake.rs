//! A scripted machine for the decisions' tests, and the requests they
//! make.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::{HoldMode, Ports, Request, System, allocate_in};
use crate::background::UnitRef;
use crate::config::{PortRange, Ranges};
use crate::error::Result;
use crate::probe::{Holder, Holders, PortState};
use crate::process::ProcessId;
use crate::registry::{Hold, RegistryData};
use crate::worktree::Stamp;

/// A scripted machine: occupied ports, dead processes, gone worktrees.
#[derive(Default)]
pub struct Fake {
    pub occupied: BTreeSet<u16>,
    /// Recorded processes that are gone (their pid may run another by now).
    pub dead: BTreeSet<u32>,
    /// Listeners the holder lookup named that have ended since.
    pub ended: BTreeSet<u32>,
    pub gone: BTreeSet<PathBuf>,
    pub holders: BTreeMap<u16, Vec<Holder>>,
    /// Occupied ports the lookup finds no listening socket on.
    pub unlistened: BTreeSet<u16>,
    /// Ports the lookup finds a connection in TIME_WAIT on.
    pub time_wait: BTreeSet<u16>,
    pub probes: Vec<u16>,
    pub active_units: BTreeSet<String>,
    /// Orphans by the pid of their dead holder.
    pub orphans: BTreeMap<u32, Vec<u32>>,
    /// Where the worktree of a port's entry was moved, by port.
    pub moved: BTreeMap<u16, PathBuf>,
    /// A second worktree whose stamp lists a port's entry, by port.
    pub claimed_too: BTreeMap<u16, PathBuf>,
    /// Ports whose worktree's own stamp does not list them.
    pub unstamped: BTreeSet<u16>,
    /// Repositories (common dirs) that are gone.
    pub gone_repositories: BTreeSet<PathBuf>,
    /// Each git dir's stamp.
    pub stamps: BTreeMap<PathBuf, Stamp>,
    /// The worktrees git lists, by repository.
    pub listed: BTreeMap<PathBuf, Vec<PathBuf>>,
    /// Working directories, by pid.
    pub cwds: BTreeMap<u32, PathBuf>,
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
    fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, Holders> {
        ports
            .iter()
            .map(|p| {
                let found = Holders {
                    processes: self.holders.get(p).cloned().unwrap_or_default(),
                    listening: self.unlistened.contains(p).then_some(false),
                    time_wait: self.time_wait.contains(p),
                };
                (*p, found)
            })
            .collect()
    }
    fn is_alive(&mut self, p: ProcessId) -> bool {
        !self.dead.contains(&p.pid)
    }
    fn running(&mut self, pid: u32) -> bool {
        !self.ended.contains(&pid)
    }
    fn unit_active(&mut self, unit: &UnitRef) -> bool {
        self.active_units.contains(&unit.name)
    }
    fn worktree_gone(&mut self, w: &Path, _: &Path) -> bool {
        self.gone.contains(w)
    }
    fn repository_gone(&mut self, repository: &Path) -> bool {
        self.gone_repositories.contains(repository)
    }
    fn stamped_in(&mut self, git_dir: &Path) -> Stamp {
        self.stamps.get(git_dir).cloned().unwrap_or_default()
    }
    fn stamped_in_repository(&mut self, repository: &Path) -> Vec<Stamp> {
        self.stamps
            .iter()
            .filter(|(git_dir, _)| git_dir.starts_with(repository))
            .map(|(_, stamp)| stamp.clone())
            .collect()
    }
    fn worktrees_of(&mut self, repository: &Path) -> Vec<PathBuf> {
        self.listed.get(repository).cloned().unwrap_or_default()
    }
    fn holder_cwd(&mut self, hold: &Hold) -> Option<PathBuf> {
        self.cwds
            .get(&hold.pid)
            .filter(|_| !self.dead.contains(&hold.pid))
            .cloned()
    }
    fn stamp_lists(&mut self, a: &crate::registry::Allocation) -> bool {
        !self.unstamped.contains(&a.port)
    }
    fn claimants(&mut self, a: &crate::registry::Allocation) -> Vec<PathBuf> {
        [self.moved.get(&a.port), self.claimed_too.get(&a.port)]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
    fn works_in(&mut self, dir: &Path, worktree: &Path, _: &Path) -> bool {
        dir.starts_with(worktree)
    }
    fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool {
        pid == ancestor
    }
    fn orphans(&mut self, hold: &Hold) -> Vec<u32> {
        self.orphans.get(&hold.pid).cloned().unwrap_or_default()
    }
}

pub const RANGE: PortRange = PortRange {
    start: 5000,
    end: 5009,
};

pub fn req(worktree: &str, services: Vec<&'static str>) -> Request<'static> {
    Request {
        repository: Path::new("/r/.git"),
        worktree: Box::leak(PathBuf::from(worktree).into_boxed_path()),
        purpose: "feature",
        ranges: Ranges::one(RANGE),
        services,
        skip_occupied: false,
        adhoc: false,
        config_source: None,
        git_dir: None,
    }
}

/// `allocate_in` for worktree `wt` of repository `/r/.git`.
pub fn alloc(
    data: &mut RegistryData,
    wt: &str,
    services: Vec<&'static str>,
    mode: &HoldMode,
    sys: &mut dyn System,
) -> Result<Ports> {
    allocate_in(data, &req(wt, services), mode, sys)
}

/// A registry with one allocation, port 5000 reserved for service `app`
/// of worktree `/r`.
pub fn app_reserved() -> RegistryData {
    let mut data = RegistryData::default();
    alloc(
        &mut data,
        "/r",
        vec!["app"],
        &HoldMode::Reserve,
        &mut Fake::default(),
    )
    .unwrap();
    data
}

pub fn hold(pid: u32) -> Hold {
    Hold {
        pid,
        start_time: 1,
        command: "x".into(),
        pgid: None,
        leader_start: None,
        session: None,
        unit: None,
    }
}
