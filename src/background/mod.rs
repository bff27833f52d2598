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
//!   and `logs`; the log is `<unit>.log` beside it ([`logfile`]). A record
//!   is its worktree's by the worktree's git dir, which `git worktree
//!   move` keeps ([`Owner`]): a unit keeps the name it was started with;
//! - one lock per worktree ([`WorktreeLock`]) serializes what starts or
//!   stops its units (`up -d`, `down`, `remove`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Service;
use crate::error::{Error, Result};
use crate::health::{Check, Health};

pub mod detached;
pub mod export;
mod guard;
mod launch;
pub mod launchd;
mod lock;
pub mod logfile;
mod naming;
mod readiness;
mod startup;
mod state;
mod stopping;
pub mod systemd;

pub use guard::{refuse_running, refuse_unreadable, unit_pids};
pub use launch::{Launch, Options, passed_env, run_argv, unset_hint};
pub use lock::WorktreeLock;
use naming::is_unit_name;
pub use naming::{Naming, unit_file_name};
pub use readiness::{CheckVariables, check_variables, health_of};
pub use startup::{Started, up};
pub use state::{StateDir, Unreadable, read_file, write_file};
pub use stopping::{Locked, StillHeld, forget_gone, stop, stop_saying};

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

/// The version of the records this wtenv writes and reads
/// ([`Record::version`]): a change an older wtenv cannot read bumps it
/// (docs/ARCHITECTURE.md, "Versions").
pub const RECORD_VERSION: u32 = 1;

/// What wtenv remembers of one unit it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub manager: Manager,
    pub unit: String,
    pub service: String,
    pub repository: PathBuf,
    /// Where the worktree was when the unit started.
    pub worktree: PathBuf,
    /// The worktree's own git dir (`.git/worktrees/<name>`, or the main
    /// worktree's `.git`), which `git worktree move` keeps: the record is
    /// that worktree's wherever it moves ([`Owner`]). `None` in a record an
    /// older wtenv wrote, matched by `worktree` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dir: Option<PathBuf>,
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
    /// The session of that group, as the registry's hold records it
    /// ([`crate::process::Group`]); `None` in an older wtenv's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_session: Option<u32>,
    /// The service's health check as it started: the one `status` runs
    /// ([`Record::started_health`]). `None` in an older wtenv's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<StartedHealth>,
    /// An older wtenv's record of the service's `cmd` check as it started
    /// (read, never written: [`Record::health`] holds it now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_cmd: Option<String>,
}

/// The health check a background service started with, as `up --detach`
/// recorded it: what `status` runs, whatever the config says now. The
/// config may be another's (a branch checked out since) or no longer name
/// the service; a `cmd` line is the only one `status` runs, and what it
/// runs (a script of the worktree's, `npm run health`) is the worktree's
/// as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartedHealth {
    /// `None` (`null`): it had none, a `socket = true` service without a
    /// `health` key ([`Service::default_health`]).
    pub check: Option<Check>,
    /// One check's limit (its `timeout`), in milliseconds.
    pub timeout_ms: u64,
    /// The address wtenv bound its socket to ([`Service::bound`]): where
    /// a check of its port connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<IpAddr>,
    /// A `cmd` check's variables of the service's own port (`PORT`, its
    /// `env` names the check saw as it started), each set to the
    /// record's port when `status` runs it, whatever the config says now:
    /// one that no longer names the service exports none of them. Empty
    /// (absent) in an older wtenv's record, and for the other checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

impl StartedHealth {
    /// `service`'s check ([`Service::health`]), as it starts; `vars`:
    /// what a `cmd` check of it sees then.
    pub fn of(service: &Service, vars: &[(String, String)]) -> StartedHealth {
        let health = service.health();
        let timeout = health
            .as_ref()
            .map_or(Health::default().timeout, |h| h.timeout);
        let env = match health.as_ref().map(|h| &h.check) {
            Some(Check::Cmd { .. }) => service
                .env
                .iter()
                .filter(|name| vars.iter().any(|(seen, _)| seen == *name))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        StartedHealth {
            check: health.map(|h| h.check),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            bound: service.bound(),
            env,
        }
    }
}

impl Record {
    /// The service's process group, once recorded ([`Record::group`],
    /// [`Record::group_session`]).
    pub fn process_group(&self) -> Option<crate::process::Group> {
        let (pgid, leader_start) = self.group?;
        Some(crate::process::Group {
            pgid,
            leader_start,
            session: self.group_session,
        })
    }

    /// Records `group` as the service's ([`Record::process_group`]).
    pub fn set_process_group(&mut self, group: crate::process::Group) {
        self.group = Some((group.pgid, group.leader_start));
        self.group_session = group.session;
    }
    /// The check `status` runs, from this record alone, and the address
    /// its socket was bound to; `None`: the service has no check. An older
    /// wtenv's record, which kept a `cmd` check's line only, gets that
    /// check, else the default one of a service it says nothing more of:
    /// its port (both with the default timing).
    pub fn started_health(&self) -> Option<(Health, Option<IpAddr>)> {
        let Some(started) = &self.health else {
            let check = match &self.health_cmd {
                Some(command) => Check::Cmd {
                    command: command.clone(),
                },
                None => Check::Tcp,
            };
            return Some((
                Health {
                    check,
                    ..Health::default()
                },
                None,
            ));
        };
        let health = Health {
            check: started.check.clone()?,
            timeout: Duration::from_millis(started.timeout_ms),
            ..Health::default()
        };
        Some((health, started.bound))
    }

    pub fn unit_ref(&self) -> UnitRef {
        UnitRef {
            manager: self.manager,
            name: self.unit.clone(),
        }
    }

    /// Whether the record is `owner`'s: by the git dir both know (a moved
    /// worktree's units stay its own; a new worktree made at the path it
    /// left has another git dir), else by the path the unit started in.
    /// A repository moved whole (`mv`) leaves every path the record knows
    /// gone: its unit is the worktree's where the process it started
    /// (the same pid and start time) works now, its working directory
    /// having moved with the directory, as its holds are claimed.
    fn belongs_to(&self, owner: &Owner) -> bool {
        let same = match (&self.git_dir, owner.git_dir) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => self.worktree == owner.root,
        };
        if same && self.repository == owner.repository {
            return true;
        }
        self.repository != owner.repository
            && !self.repository.exists()
            && crate::process::ProcessId {
                pid: self.pid,
                start_time: self.start_time,
            }
            .is_alive()
            && crate::process::cwd(self.pid).as_deref() == Some(owner.root)
    }
}

impl Record {
    /// Whether the record's worktree is gone (allocation rule 4), where it
    /// is now: a linked worktree's git dir that its repository no longer
    /// lists is gone with it; else where that git dir says it is, or (the
    /// main worktree, a record without a git dir) where the unit started.
    fn worktree_gone(&self) -> bool {
        let now = match &self.git_dir {
            Some(git_dir) if git_dir.parent() == Some(&self.repository.join("worktrees")) => {
                match crate::worktree::root_of_admin_dir(&self.repository, git_dir) {
                    Some(root) => root,
                    None => return true,
                }
            }
            _ => self.worktree.clone(),
        };
        crate::worktree::is_gone(&now, &self.repository)
    }
}

/// A worktree whose background records are looked for: its repository
/// (canonical git common dir), where it is now, and its own git dir when
/// known ([`Record::git_dir`]).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub repository: &'a Path,
    pub root: &'a Path,
    pub git_dir: Option<&'a Path>,
}

impl<'a> Owner<'a> {
    pub fn of(worktree: &'a crate::worktree::Worktree) -> Owner<'a> {
        Owner {
            repository: &worktree.common_dir,
            root: &worktree.root,
            git_dir: Some(&worktree.git_dir),
        }
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

/// [`query`] of each of `records`, in their order: the systemd units
/// among them asked in one `systemctl show` ([`systemd::query_all`]),
/// none when there are none.
pub fn query_all<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Live> {
    let records: Vec<&Record> = records.into_iter().collect();
    let units: Vec<&str> = records
        .iter()
        .filter(|r| r.manager == Manager::Systemd)
        .map(|r| r.unit.as_str())
        .collect();
    lives(&records, &systemd::query_all(&units))
}

/// Each record's [`Live`]: a systemd unit's from `systemd`'s answer,
/// another's from its own manager.
fn lives(records: &[&Record], systemd: &systemd::Lives) -> Vec<Live> {
    records
        .iter()
        .map(|r| match r.manager {
            Manager::Systemd => systemd.of(&r.unit),
            _ => query(r),
        })
        .collect()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A record's JSON as `up -d` writes it (unit `wtenv-a_1-b-web`, service
/// `web` on port 5000), with `extra`'s fields over it.
#[cfg(test)]
fn record_json(extra: serde_json::Value) -> serde_json::Value {
    let mut json = serde_json::json!({
        "version": 1, "manager": "wtenv", "unit": "wtenv-a_1-b-web",
        "service": "web", "repository": "/r/.git", "worktree": "/r",
        "ports": [5000], "log": "/s/web.log", "pid": 1, "start_time": 2,
        "started": 3,
    });
    json.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json
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

    /// `status`'s check comes from the record alone: the one it keeps,
    /// none when it kept none, and for an older wtenv's record (no
    /// `health`) its `cmd` line, else its port, with the default timing.
    #[test]
    fn the_check_status_runs_is_the_records() {
        let record = |extra| -> Record { serde_json::from_value(record_json(extra)).unwrap() };
        let default = Health::default();
        let http = record(serde_json::json!({"health": {
            "check": {"http": {"path": "/ok"}}, "timeout_ms": 2500, "bound": "127.0.0.2",
        }}));
        let (health, bound) = http.started_health().unwrap();
        assert_eq!(health.check, Check::Http { path: "/ok".into() });
        assert_eq!(health.timeout, Duration::from_millis(2500));
        assert_eq!(bound, Some("127.0.0.2".parse().unwrap()));
        let none = record(serde_json::json!({"health": {"check": null, "timeout_ms": 1000}}));
        assert_eq!(none.started_health(), None, "a socket service without one");
        let older = record(serde_json::json!({"health_cmd": "pg_isready"}));
        let cmd = Check::Cmd {
            command: "pg_isready".into(),
        };
        assert_eq!(older.started_health().unwrap().0.check, cmd);
        let (port, bound) = record(serde_json::json!({})).started_health().unwrap();
        assert_eq!((port, bound), (default, None));
        // As `up -d` writes it, read back.
        let written = serde_json::to_value(&http).unwrap();
        assert_eq!(
            written["health"]["check"],
            serde_json::json!({"http": {"path": "/ok"}})
        );
        assert_eq!(serde_json::from_value::<Record>(written).unwrap(), http);
        let started = |json| serde_json::from_value::<StartedHealth>(json);
        assert!(started(serde_json::json!({"check": "tcp", "timeout_ms": 1})).is_ok());
        assert!(
            started(serde_json::json!({"check": "tcp", "timeout_ms": 1, "retries": 3})).is_err(),
            "unknown fields are refused"
        );
    }

    /// One answer for the systemd units among the records, each record's
    /// own state in its place; another manager's from that manager.
    #[test]
    fn each_record_gets_its_own_state_in_its_place() {
        let record = |manager: Manager, unit: &str| -> Record {
            serde_json::from_value(serde_json::json!({
                "version": 1, "manager": manager.name(), "unit": unit,
                "service": "web", "repository": "/r/.git", "worktree": "/r",
                "ports": [], "log": "/s/web.log", "pid": 0, "start_time": 0,
                "started": 0,
            }))
            .unwrap()
        };
        let (a, b) = ("a.service", "b.service");
        let text = "Id=a.service\nLoadState=loaded\nActiveState=active\nMainPID=7\n\nId=b.service\nLoadState=not-found\nActiveState=inactive\nMainPID=0\n";
        let systemd = systemd::Lives::parsed(text, &[a, b], None);
        let records = [
            record(Manager::Systemd, b),
            record(Manager::Wtenv, "wtenv-r-web"),
            record(Manager::Systemd, a),
        ];
        let states: Vec<(String, Option<u32>)> =
            lives(&records.iter().collect::<Vec<_>>(), &systemd)
                .into_iter()
                .map(|l| (l.state, l.pid))
                .collect();
        let state = |s: &str, pid| (s.to_owned(), pid);
        assert_eq!(
            states,
            [
                state("inactive", None),
                // A supervisor with no pid: nothing runs.
                state("inactive", None),
                state("active", Some(7)),
            ]
        );
    }

    #[test]
    fn a_record_is_its_worktrees_by_git_dir_and_an_older_ones_by_path() {
        let record = |git_dir: Option<&str>| Record {
            version: 1,
            manager: Manager::Wtenv,
            unit: "wtenv-r_00000000-a-web".into(),
            service: "web".into(),
            repository: "/r/.git".into(),
            worktree: "/w/a".into(),
            git_dir: git_dir.map(PathBuf::from),
            ports: vec![],
            log: "/s/x.log".into(),
            pid: 0,
            start_time: 0,
            started: 0,
            group: None,
            group_session: None,
            health: None,
            health_cmd: None,
        };
        let owner = |root: &'static str, git_dir: &'static str| Owner {
            repository: Path::new("/r/.git"),
            root: Path::new(root),
            git_dir: Some(Path::new(git_dir)),
        };
        let new = record(Some("/r/.git/worktrees/a"));
        // Moved: another path, the same git dir.
        assert!(new.belongs_to(&owner("/w/m", "/r/.git/worktrees/a")));
        // A new worktree at the path it left: another git dir.
        assert!(!new.belongs_to(&owner("/w/a", "/r/.git/worktrees/a1")));
        let other_repository = Owner {
            repository: Path::new("/q/.git"),
            ..owner("/w/m", "/r/.git/worktrees/a")
        };
        assert!(!new.belongs_to(&other_repository));
        // Written by an older wtenv: by the path it started in.
        let old = record(None);
        assert!(old.belongs_to(&owner("/w/a", "/r/.git/worktrees/a")));
        assert!(!old.belongs_to(&owner("/w/m", "/r/.git/worktrees/a")));
        // An older record reads as it did.
        let json = serde_json::to_value(&old).unwrap();
        assert!(json.get("git_dir").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<Record>(json).unwrap(), old);
    }
}
