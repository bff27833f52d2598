//! Services in the background (`up --detach`, `down`, `logs`, `status`,
//! `export`): each service runs as a unit of a service manager, under
//! `wtenv run --service S`, so wtenv still holds and releases its ports.
//!
//! Back ends ([`Manager`]): a systemd user unit ([`systemd`]), a launchd
//! agent ([`launchd`]), or a detached wtenv supervisor ([`detached`]) where
//! neither exists. Whatever the back end:
//! - the unit is named `wtenv-<repo>-<worktree>-<service>`, each part
//!   escaped with systemd's rules ([`systemd::escape`]);
//! - its hold in the registry records the unit ([`UnitRef`]): the sweep
//!   calls such a holder gone only when its pid is gone and the manager
//!   says the unit is inactive;
//! - a small record per unit (`<state>/background/<unit>.json`) says which
//!   worktree, service, ports and log file it has, for `status`, `down`
//!   and `logs`; the log is `<unit>.log` beside it ([`logfile`]).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::alloc::{self, RealSystem};
use crate::config::Service;
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::probe;
use crate::process::{self, ProcessId};
use crate::{files, health};

pub mod detached;
pub mod export;
pub mod launchd;
pub mod logfile;
pub mod systemd;

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
            Some(Manager::Launchd) if !cfg!(target_os = "macos") => Err(Error::hinted(
                "--manager launchd: launchd exists only on macOS",
                "use --manager systemd or --manager wtenv",
            )),
            Some(Manager::Systemd) if !systemd::available() => Err(Error::hinted(
                "--manager systemd: no systemd user manager answers (systemctl --user)",
                "start one (or log in with one), or use --manager wtenv",
            )),
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

/// `<state>/background`: records, logs, plists.
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn of(ctx: &Ctx) -> Result<StateDir> {
        let dir = ctx.registry.ensure_state_dir()?.join("background");
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(format!("could not create {}", dir.display()), e))?;
        }
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|e| Error::io(format!("could not read {}", dir.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::hinted(
                format!("{} is not a directory", dir.display()),
                "move it aside; wtenv keeps its background state there",
            ));
        }
        Ok(StateDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn log_path(&self, unit: &str) -> PathBuf {
        self.0.join(format!("{unit}.log"))
    }

    fn record_path(&self, unit: &str) -> PathBuf {
        self.0.join(format!("{unit}.json"))
    }

    /// Every record, in unit order; unreadable ones are skipped with a
    /// warning (they name nothing wtenv could act on safely).
    pub fn records(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return vec![];
        };
        let mut out: Vec<Record> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| {
                let bytes = read_file(&e.path(), 64 * 1024)?;
                match serde_json::from_slice(&bytes) {
                    Ok(r) => Some(r),
                    Err(err) => {
                        tracing::warn!("ignoring {}: {err}", e.path().display());
                        None
                    }
                }
            })
            .collect();
        out.sort_by(|a: &Record, b| a.unit.cmp(&b.unit));
        out
    }

    /// Records of `scope`'s worktree, of `services` (all when empty).
    pub fn records_of(&self, scope: &Scope, services: &[String]) -> Vec<Record> {
        self.records_in(&scope.worktree.common_dir, &scope.worktree.root)
            .into_iter()
            .filter(|r| services.is_empty() || services.contains(&r.service))
            .collect()
    }

    /// Records of the worktree at `worktree` of `repository`.
    pub fn records_in(&self, repository: &Path, worktree: &Path) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.belongs_to(repository, worktree))
            .collect()
    }

    fn write(&self, record: &Record) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(record).expect("records serialize");
        bytes.push(b'\n');
        write_file(&self.0, &format!("{}.json", record.unit), &bytes)
    }

    /// The log of each of `scope`'s services (all when `services` is
    /// empty) that has one, whatever ran it, also after `down`.
    pub fn logs_of(&self, scope: &Scope, services: &[String]) -> Vec<(String, PathBuf)> {
        let naming = Naming::of(scope);
        scope
            .config
            .services
            .iter()
            .filter(|s| services.is_empty() || services.contains(&s.name))
            .filter_map(|s| {
                let unit = naming.unit(&s.name);
                // The newest, when the service ran under several managers.
                [Manager::Systemd, Manager::Launchd, Manager::Wtenv]
                    .into_iter()
                    .map(|m| self.log_path(&unit_file_name(m, &unit)))
                    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
                    .max()
                    .map(|(_, p)| (s.name.clone(), p))
            })
            .collect()
    }

    fn forget(&self, unit: &str) {
        let _ = std::fs::remove_file(self.record_path(unit));
    }
}

/// Replaces `dir/name` with `bytes` (0600, atomically, never through a
/// planted link or FIFO).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    files::replace(dir, name, bytes)
        .map_err(|(what, path, e)| Error::io(format!("could not {what} {}", path.display()), e))
}

/// A regular file's bytes, refused past `cap`; `None` for anything else
/// (a link, a FIFO, a device) or when it cannot be read.
pub fn read_file(path: &Path, cap: u64) -> Option<Vec<u8>> {
    let file = files::open_read(path, false).ok()??;
    files::require_regular(&file).ok()?;
    files::read_capped(&file, cap).ok()
}

/// The unit names of one worktree: `wtenv-<repo>-<worktree>` and a
/// `-<service>` per service, each part escaped, so the dashes between them
/// are the only unescaped ones (systemd reads them as the slice nesting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub base: String,
}

/// Unit names are at most 255 bytes with their suffix: a longer one keeps
/// its start and ends with a hash of the whole.
const NAME_MAX: usize = 240;

impl Naming {
    pub fn new(repo: &str, worktree: &str) -> Naming {
        Naming {
            base: format!(
                "wtenv-{}-{}",
                systemd::escape(repo),
                systemd::escape(worktree)
            ),
        }
    }

    pub fn of(scope: &Scope) -> Naming {
        let repo = scope
            .worktree
            .main_root()
            .unwrap_or_else(|| scope.worktree.common_dir.clone());
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Naming::new(&name(&repo), &name(&scope.worktree.root))
    }

    /// The unit of `service`, without a suffix.
    pub fn unit(&self, service: &str) -> String {
        shorten(format!("{}-{}", self.base, systemd::escape(service)))
    }

    /// The worktree's slice (systemd) or target (export), without suffix.
    pub fn group(&self) -> String {
        shorten(self.base.clone())
    }
}

fn shorten(name: String) -> String {
    if name.len() <= NAME_MAX {
        return name;
    }
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    // The escaped name is ASCII, so any byte index is a char boundary.
    format!("{}-{hash:016x}", &name[..NAME_MAX - 17])
}

/// What starting one service in the background takes.
#[derive(Debug, Clone)]
pub struct Launch {
    pub service: String,
    /// The unit name, without suffix.
    pub unit: String,
    /// The worktree's slice, without suffix.
    pub group: String,
    pub root: PathBuf,
    pub ports: Vec<u16>,
    pub log: PathBuf,
    /// `wtenv ... run --service S --unit M:NAME ... -- CMD` (CMD's words,
    /// or `sh -c CMD`: [`crate::supervise::command_words`]).
    pub argv: Vec<OsString>,
    /// The environment the unit gets (a manager does not pass ours).
    pub env: Vec<(String, OsString)>,
    pub grace: Duration,
}

/// Variables a unit inherits from the command that starts it: what finds
/// programs, the user's directories, wtenv's own settings. A service
/// manager starts units with its own environment, not the caller's.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "WTENV_STATE_DIR",
    "WTENV_LOCK_TIMEOUT",
    "WTENV_LOG",
    "NO_COLOR",
];

/// How `up --detach` runs the services.
#[derive(Debug, Clone)]
pub struct Options {
    pub manager: Manager,
    pub grace: Duration,
    pub log_limit: u64,
}

/// The `wtenv run` command line a unit runs for `service`.
pub fn run_argv(
    ctx: &Ctx,
    service: &Service,
    unit: &UnitRef,
    log: Option<&Path>,
    options: &Options,
) -> Result<Vec<OsString>> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("could not find wtenv's own executable", e))?;
    let mut argv: Vec<OsString> = vec![exe.into(), "--registry".into()];
    argv.push(ctx.cwd.join(ctx.registry.path()).into());
    if let Some(config) = &ctx.config_path {
        argv.push("--config".into());
        argv.push(ctx.cwd.join(config).into());
    }
    argv.push("run".into());
    if options.manager == Manager::Wtenv {
        // Its own session: the terminal that ran `up` can close.
        argv.push("--setsid".into());
    }
    for arg in [
        "--grace",
        &humantime::format_duration(options.grace).to_string(),
        "--service",
        &service.name,
        "--unit",
        &unit.to_arg(),
    ] {
        argv.push(arg.into());
    }
    if let Some(log) = log {
        argv.push("--log".into());
        argv.push(log.into());
        argv.push("--log-limit".into());
        argv.push(options.log_limit.to_string().into());
    }
    // As in the foreground: a line without shell syntax is exec'd, so a
    // handed-off socket's LISTEN_PID names the server.
    argv.push("--".into());
    argv.extend(crate::supervise::command_words(
        service.run.as_deref().unwrap_or_default(),
    ));
    Ok(argv)
}

pub fn passed_env() -> Vec<(String, OsString)> {
    PASSED_ENV
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (k.to_string(), v)))
        .collect()
}

/// A service started by `up --detach`.
#[derive(Debug, Clone)]
pub struct Started {
    pub record: Record,
    pub pid: Option<u32>,
    /// Already running before this `up`.
    pub already: bool,
}

/// `up --detach`: reserves the ports, starts each service (and what it
/// depends on, after those are ready) as a unit, waits until each is
/// ready, and returns them. When one does not get ready, what this call
/// started is stopped and the error says why.
pub fn up(
    ctx: &Ctx,
    scope: &Scope,
    services: &[&Service],
    options: &Options,
) -> Result<Vec<Started>> {
    // The variables the services see (for `cmd` health checks), after the
    // checks `env` makes (a port held outside the worktree is refused).
    let vars = crate::ports::ensure_verified(ctx, scope, &alloc::HoldMode::Reserve, false)?;
    let ports = crate::ports::reserve(ctx, scope)?;
    let dir = StateDir::of(ctx)?;
    let naming = Naming::of(scope);
    let all = &scope.config.services;
    let graph: Vec<(&str, &[String])> = all
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
        .collect();
    let wanted: Vec<usize> = services
        .iter()
        .filter_map(|s| all.iter().position(|x| x.name == s.name))
        .collect();
    let mut run = Startup {
        ctx,
        dir: &dir,
        vars: &vars,
        started: Vec::new(),
        pending: Vec::new(),
        ready: BTreeSet::new(),
    };
    for i in health::start_order(&graph, &wanted) {
        let service = &all[i];
        if service.run.is_none() {
            // Nothing to start (a dependency run some other way).
            run.ready.insert(service.name.clone());
            continue;
        }
        for dep in &service.depends_on {
            run.await_ready(Some(dep))?;
        }
        if let Some(record) = dir
            .records_of(scope, std::slice::from_ref(&service.name))
            .into_iter()
            .find(|r| query(r).running())
        {
            let pid = query(&record).pid;
            run.ready.insert(service.name.clone());
            run.started.push(Started {
                record,
                pid,
                already: true,
            });
            continue;
        }
        let unit_ref = UnitRef {
            manager: options.manager,
            name: unit_file_name(options.manager, &naming.unit(&service.name)),
        };
        let log = dir.log_path(&unit_ref.name);
        let launch = Launch {
            service: service.name.clone(),
            unit: unit_ref.name.clone(),
            group: naming.group(),
            root: scope.worktree.root.clone(),
            ports: ports.get(&service.name).copied().into_iter().collect(),
            argv: run_argv(
                ctx,
                service,
                &unit_ref,
                (options.manager != Manager::Launchd).then_some(log.as_path()),
                options,
            )?,
            log,
            env: passed_env(),
            grace: options.grace,
        };
        let result = match options.manager {
            Manager::Systemd => systemd::start(&launch).map(|pid| (pid, None)),
            Manager::Launchd => launchd::start(&launch, dir.path()).map(|pid| (pid, None)),
            Manager::Wtenv => detached::start(&launch).map(|c| (Some(c.pid), Some(c))),
        };
        let (pid, child) = match result {
            Ok(x) => x,
            Err(e) => {
                run.stop_started();
                return Err(e);
            }
        };
        let record = Record {
            version: 1,
            manager: options.manager,
            unit: unit_ref.name.clone(),
            service: service.name.clone(),
            repository: scope.worktree.common_dir.clone(),
            worktree: scope.worktree.root.clone(),
            ports: launch.ports.clone(),
            log: launch.log.clone(),
            pid: pid.unwrap_or(0),
            start_time: pid.and_then(ProcessId::of).map_or(0, |p| p.start_time),
            started: unix_now(),
            group: None,
        };
        dir.write(&record)?;
        run.pending.push((run.started.len(), service, child));
        run.started.push(Started {
            record,
            pid,
            already: false,
        });
    }
    run.await_ready(None)?;
    Ok(run.started)
}

/// The state of one `up --detach` while it starts services.
struct Startup<'a> {
    ctx: &'a Ctx,
    dir: &'a StateDir,
    /// The worktree's variables, for `cmd` health checks.
    vars: &'a [(String, String)],
    started: Vec<Started>,
    /// Started, not yet seen ready: (index in `started`, its service,
    /// the detached supervisor while it is our child).
    pending: Vec<(usize, &'a Service, Option<detached::Child>)>,
    ready: BTreeSet<String>,
}

impl Startup<'_> {
    /// Waits until `service` (or every pending one) is ready; on failure
    /// stops what this `up` started and says why.
    fn await_ready(&mut self, service: Option<&str>) -> Result<()> {
        while let Some(k) = self
            .pending
            .iter()
            .position(|(_, s, _)| service.is_none_or(|n| s.name == n))
        {
            let (i, svc, mut child) = self.pending.remove(k);
            let deadline = Instant::now() + svc.ready_timeout;
            let check = Readiness {
                service: svc,
                vars: self.vars,
            };
            match check.wait(&self.started[i].record, child.as_mut(), deadline) {
                Ok(pid) => {
                    self.started[i].pid = Some(pid);
                    self.ready.insert(svc.name.clone());
                    let record = &mut self.started[i].record;
                    if record.manager == Manager::Wtenv {
                        record.group = recorded_group(self.ctx, &record.unit);
                        self.dir.write(record)?;
                    }
                }
                Err(reason) => {
                    self.stop_started();
                    let record = &self.started[i].record;
                    let tail = logfile::tail(&record.log, 10);
                    let mut hint = format!("see its output with 'wtenv logs {}'", svc.name);
                    if !tail.is_empty() {
                        hint = format!("its last lines:\n{tail}{hint}");
                    }
                    return Err(Error::hinted(
                        format!(
                            "service {} did not get ready: {reason}; stopped what this 'up --detach' started",
                            svc.name
                        ),
                        hint,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stops the units this call started (not those that ran before it).
    fn stop_started(&self) {
        let mine: Vec<Record> = self
            .started
            .iter()
            .filter(|s| !s.already)
            .map(|s| s.record.clone())
            .collect();
        if let Err(e) = stop(self.ctx, self.dir, &mine, Duration::from_secs(60)) {
            tracing::warn!("could not stop what was started: {e}");
        }
    }
}

/// Whether a background service is ready: its unit runs, its health check
/// passes, and (unless the check is a command) its port's listener is of
/// the unit's own process tree.
struct Readiness<'a> {
    service: &'a Service,
    vars: &'a [(String, String)],
}

impl Readiness<'_> {
    /// Polls until ready (the unit's main pid) or why not.
    fn wait(
        &self,
        record: &Record,
        mut child: Option<&mut detached::Child>,
        deadline: Instant,
    ) -> std::result::Result<u32, String> {
        let health = self.service.health();
        let mut last = String::from("it does not listen on its port");
        loop {
            let live = query(record);
            let exited = child.as_mut().and_then(|c| c.exited());
            if !live.running() || exited.is_some() {
                return Err(match exited {
                    Some(status) => format!("it ended ({status})"),
                    None => format!("its unit is {}", live.state),
                });
            }
            if let Some(pid) = live.pid {
                match self.check(&health, record, pid) {
                    Ok(()) => return Ok(pid),
                    Err(why) => last = why,
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{last} after {}",
                    humantime::format_duration(self.service.ready_timeout)
                ));
            }
            std::thread::sleep(health.ready_poll());
        }
    }

    fn check(&self, health: &health::Health, record: &Record, pid: u32) -> health::Probe {
        let port = record.ports.first().copied();
        if !matches!(health.check, health::Check::Cmd { .. })
            && let Some(port) = port
            && !listens_for(port, pid)
        {
            return Err(format!("nothing of the unit listens on port {port}"));
        }
        health::check::probe(health, port, self.vars, &record.worktree)
    }
}

/// The manager's own name for the unit.
fn unit_file_name(manager: Manager, unit: &str) -> String {
    match manager {
        Manager::Systemd => format!("{unit}.service"),
        Manager::Launchd | Manager::Wtenv => unit.to_owned(),
    }
}

/// The process group (and its leader's start time) the registry records
/// for `unit`'s hold: its `run` records them once the service started.
fn recorded_group(ctx: &Ctx, unit: &str) -> Option<(u32, u64)> {
    let data = ctx.registry.read().ok()?;
    data.allocations
        .iter()
        .flat_map(|a| &a.holders)
        .find(|h| h.unit.as_ref().is_some_and(|u| u.name == unit))
        .and_then(|h| h.pgid.zip(h.leader_start))
}

/// The variables a `cmd` health check of `status` sees: the worktree's
/// ports as recorded (nothing is allocated), without `[env]`.
pub fn check_variables(ctx: &Ctx, scope: &Scope) -> Result<Vec<(String, String)>> {
    let data = ctx
        .registry
        .read_worktree(&scope.worktree.common_dir, &scope.worktree.root)?;
    let ports: alloc::Ports = data
        .allocations
        .iter()
        .map(|a| (a.service.clone(), a.port))
        .collect();
    Ok(crate::exports::variables(scope, &ports, false))
}

/// One run of the service's health check (the default: its port accepts
/// a connection), as `status` shows it.
pub fn health_of(scope: &Scope, record: &Record, vars: &[(String, String)]) -> health::Probe {
    let health = scope
        .config
        .service(&record.service)
        .map(|s| s.health())
        .unwrap_or_default();
    health::check::probe(
        &health,
        record.ports.first().copied(),
        vars,
        &record.worktree,
    )
}

/// Whether `port` accepts connections and every listener found on it is
/// `main` or descends from it.
fn listens_for(port: u16, main: u32) -> bool {
    if !probe::accepts(port) {
        return false;
    }
    let found = probe::holders(&[port].into())
        .remove(&port)
        .unwrap_or_default();
    !found.is_empty()
        && found
            .iter()
            .all(|h| h.pid == main || process::descends_from(h.pid, main))
}

/// `down`: stops `records`' units, waits until they are inactive and their
/// holds are gone from the registry, and forgets them.
pub fn stop(ctx: &Ctx, dir: &StateDir, records: &[Record], patience: Duration) -> Result<()> {
    for manager in [Manager::Systemd, Manager::Launchd, Manager::Wtenv] {
        let mine: Vec<&Record> = records.iter().filter(|r| r.manager == manager).collect();
        if mine.is_empty() {
            continue;
        }
        match manager {
            Manager::Systemd => systemd::stop(&mine)?,
            Manager::Launchd => launchd::stop(&mine, dir.path())?,
            Manager::Wtenv => detached::stop(&mine, patience / 2),
        }
    }
    let deadline = Instant::now() + patience;
    let mut left: Vec<&Record> = records.iter().collect();
    while !left.is_empty() {
        left.retain(|r| query(r).running());
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let names: Vec<&str> = left.iter().map(|r| r.unit.as_str()).collect();
            return Err(Error::hinted(
                format!(
                    "{} still running after {}",
                    names.join(", "),
                    humantime::format_duration(patience)
                ),
                "run 'wtenv down' again, or 'wtenv status' to see them",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A unit's run released its own holds; one killed with SIGKILL did
    // not: sweep those now that their units are inactive.
    ctx.registry.transaction(|data| {
        alloc::sweep(data, &mut RealSystem::new(&ctx.registry));
        Ok(())
    })?;
    for r in records {
        dir.forget(&r.unit);
    }
    Ok(())
}

/// The background services of a worktree that still run.
pub fn running(ctx: &Ctx, repository: &Path, worktree: &Path) -> Result<Vec<Record>> {
    let dir = StateDir::of(ctx)?;
    Ok(dir
        .records_in(repository, worktree)
        .into_iter()
        .filter(|r| query(r).running())
        .collect())
}

/// Stops every background service of a worktree (`remove --force`).
pub fn stop_all(ctx: &Ctx, repository: &Path, worktree: &Path) -> Result<()> {
    let dir = StateDir::of(ctx)?;
    let records = dir.records_in(repository, worktree);
    stop(ctx, &dir, &records, Duration::from_secs(60))
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
    fn unit_names_escape_each_part_so_only_the_separators_are_dashes() {
        let n = Naming::new("my-repo", "feature-login");
        assert_eq!(n.base, r"wtenv-my\x2drepo-feature\x2dlogin");
        assert_eq!(n.unit("web"), r"wtenv-my\x2drepo-feature\x2dlogin-web");
        assert_eq!(n.group(), n.base);
    }

    #[test]
    fn a_too_long_unit_name_is_shortened_with_a_hash_and_stays_distinct() {
        let long = "x".repeat(300);
        let a = Naming::new("r", &long).unit("web");
        let b = Naming::new("r", &long).unit("api");
        assert!(a.len() <= NAME_MAX && b.len() <= NAME_MAX, "{}", a.len());
        assert_ne!(a, b);
        assert!(a.starts_with("wtenv-r-xxx"));
    }

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
