//! Services in the background (`up --detach`, `down`, `logs`, `status`,
//! `export`): each service runs as a unit of a service manager, under
//! `wtenv run --service S`, so wtenv still holds and releases its ports.
//!
//! Back ends ([`Manager`]): a systemd user unit ([`systemd`]), a launchd
//! agent ([`launchd`]), or a detached wtenv supervisor ([`detached`]) where
//! neither exists. Whatever the back end:
//! - the unit is named `wtenv-<repo>_<hash>-<worktree>-<service>`, each part
//!   escaped with systemd's rules ([`systemd::escape`]);
//! - its hold in the registry records the unit ([`UnitRef`]): the sweep
//!   calls such a holder gone only when its pid is gone and the manager
//!   says the unit is inactive;
//! - a small record per unit (`<state>/background/<unit>.json`) says which
//!   worktree, service, ports and log file it has, for `status`, `down`
//!   and `logs`; the log is `<unit>.log` beside it ([`logfile`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod detached;
pub mod export;
mod launch;
pub mod launchd;
pub mod logfile;
mod naming;
mod readiness;
mod startup;
mod state;
mod stopping;
pub mod systemd;

pub use launch::{Launch, Options, passed_env, run_argv, unset_hint};
use naming::is_unit_name;
pub use naming::{Naming, unit_file_name};
pub use readiness::{check_variables, health_of};
pub use startup::{Started, up};
pub use state::{StateDir, read_file, write_file};
pub use stopping::{running, stop, stop_all};

/// Who runs the services in the background.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    /// A transient systemd user unit (`systemd-run --user`).
    Systemd,
    /// A launchd agent in the user's GUI domain (macOS).
    Launchd,
    /// A detached wtenv supervisor (its own session).
    Wtenv,
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::Launchd => "launchd",
            Manager::Wtenv => "wtenv",
        }
    }

    /// `requested`, checked; else launchd on macOS, systemd where
    /// `systemctl --user` answers, else wtenv.
    pub fn choose(requested: Option<Manager>) -> Result<Manager> {
        match requested {
            Some(Manager::Launchd) if !cfg!(target_os = "macos") => Err(Error::invalid(
                "--manager launchd: launchd exists only on macOS",
            )
            .with_hint("use --manager systemd or --manager wtenv")),
            Some(Manager::Systemd) if !systemd::available() => Err(Error::not_found(
                "--manager systemd: no systemd user manager answers (systemctl --user)",
            )
            .with_hint("start one (or log in with one), or use --manager wtenv")),
            Some(m) => Ok(m),
            None if cfg!(target_os = "macos") => Ok(Manager::Launchd),
            None if systemd::available() => Ok(Manager::Systemd),
            None => Ok(Manager::Wtenv),
        }
    }
}

/// A unit of a service manager, as a registry hold records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitRef {
    pub manager: Manager,
    pub name: String,
}

impl UnitRef {
    /// Whether the manager says the unit is active. A detached wtenv
    /// supervisor has no manager above it: its pid is the whole answer.
    pub fn is_active(&self) -> bool {
        match self.manager {
            Manager::Systemd => systemd::is_active(&self.name),
            Manager::Launchd => launchd::is_active(&self.name),
            Manager::Wtenv => false,
        }
    }

    /// `MANAGER:NAME`, the form `run --unit` takes.
    pub fn parse(text: &str) -> std::result::Result<UnitRef, String> {
        let (manager, name) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected MANAGER:NAME"))?;
        let manager = clap::ValueEnum::from_str(manager, false)?;
        if name.is_empty() {
            return Err(format!("{text:?}: empty unit name"));
        }
        Ok(UnitRef {
            manager,
            name: name.to_owned(),
        })
    }

    pub fn to_arg(&self) -> String {
        format!("{}:{}", self.manager.name(), self.name)
    }
}

/// What wtenv remembers of one unit it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub manager: Manager,
    pub unit: String,
    pub service: String,
    pub repository: PathBuf,
    pub worktree: PathBuf,
    pub ports: Vec<u16>,
    pub log: PathBuf,
    /// The main process when it started (wtenv's `run`).
    pub pid: u32,
    pub start_time: u64,
    /// Unix seconds.
    pub started: u64,
    /// The service's process group and its leader's start time, once
    /// ready (the detached back end: what `down` stops if its supervisor
    /// was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<(u32, u64)>,
    /// The service's `cmd` health check as it started: the only command
    /// line `status` runs. The config as it is now may be another's (a
    /// branch checked out since); what that line runs (a script of the
    /// worktree's, `npm run health`) is the worktree's as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_cmd: Option<String>,
}

impl Record {
    pub fn unit_ref(&self) -> UnitRef {
        UnitRef {
            manager: self.manager,
            name: self.unit.clone(),
        }
    }

    fn belongs_to(&self, repository: &Path, worktree: &Path) -> bool {
        self.worktree == worktree && self.repository == repository
    }
}

/// The live state of a unit, as its manager tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The manager's word: `active`, `inactive`, `failed`, `activating`...
    pub state: String,
    pub pid: Option<u32>,
    pub restarts: Option<u32>,
    /// Since when the unit is active.
    pub uptime: Option<Duration>,
}

impl Live {
    pub fn running(&self) -> bool {
        matches!(
            self.state.as_str(),
            "active" | "activating" | "reloading" | "running" | "orphaned"
        )
    }
}

/// Asks the unit's manager how it is.
pub fn query(record: &Record) -> Live {
    match record.manager {
        Manager::Systemd => systemd::query(&record.unit),
        Manager::Launchd => launchd::query(&record.unit),
        Manager::Wtenv => detached::query(record),
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_refs_parse_from_the_run_flag() {
        let u = UnitRef::parse("systemd:wtenv-a-b-web.service").unwrap();
        assert_eq!(u.manager, Manager::Systemd);
        assert_eq!(u.to_arg(), "systemd:wtenv-a-b-web.service");
        assert!(UnitRef::parse("nothing").is_err());
        assert!(UnitRef::parse("upstart:x").is_err());
        assert!(UnitRef::parse("wtenv:").is_err());
    }
}
