//! The registry: the per-user, machine-wide record of port allocations.
//!
//! Invariants (README "How it works" and "Hostile files"):
//! - `registry.json` is replaced atomically (temp file in the same
//!   directory, fsync, rename, fsync of the directory) and only when its
//!   bytes change: a crash at any instant leaves the old or the new file.
//! - Every read-modify-write runs under an exclusive `flock` of the sibling
//!   `registry.lock`, which is never renamed or deleted (renaming it would
//!   let two processes lock two different inodes). Reads take it shared.
//!   The lock is held only for the transaction, never while a child runs
//!   on its account: no transaction waits for a child (`create`'s runs
//!   beside `git worktree add`, which it does not wait for).
//! - A file that cannot be trusted (empty, not JSON, wrong schema, newer
//!   version, a symlink, unsafe owner or permissions) is never overwritten
//!   and never read as empty: [`Error::RegistryUnusable`], exit 2.
//! - A registry whose content is not what wtenv writes (a key given twice,
//!   one port twice, a port outside 1024-65535) is refused the same way:
//!   wtenv never rewrites what it cannot trust.
//! - A missing file is an empty registry; the directory is created 0700 on
//!   the first write, the file is 0600.
//! - Every file of the state directory is opened by [`crate::files`]: no
//!   write follows a planted link, no open blocks on a planted FIFO.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::{self, OpenError, Refusal};
use crate::process::ProcessId;

mod seal;
mod view;

pub const VERSION: u32 = 1;
pub const FILE_NAME: &str = "registry.json";
pub const LOCK_NAME: &str = "registry.lock";
/// Serializes port probes among the wtenv processes of one registry (see
/// [`Registry::open_probe_lock`]). Like `registry.lock`, never renamed or deleted.
pub const PROBE_LOCK_NAME: &str = "probe.lock";
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// The lowest port a registry may record (allocation rule 6: privileged ports are
/// refused; a record below it would make the liveness probe bind there).
const MIN_PORT: u16 = crate::config::MIN_PORT;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryData {
    pub version: u32,
    pub allocations: Vec<Allocation>,
}

impl Default for RegistryData {
    fn default() -> Self {
        RegistryData {
            version: VERSION,
            allocations: Vec::new(),
        }
    }
}

/// One port given to one (worktree, service). Unknown fields are refused:
/// rewriting a record we do not fully understand would drop data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub port: u16,
    pub service: String,
    pub purpose: String,
    /// Canonical git common dir.
    pub repository: PathBuf,
    /// Canonical worktree top level.
    pub worktree: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    /// `true`: lives while the worktree exists (sticky). `false`: lives
    /// while any of `holders` lives.
    pub reserved: bool,
    /// Live processes using the port (`wtenv run`, `up`, `env --hold`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Hold>,
    /// Made by `allocate --service S` for a service the config does not
    /// declare: not stale for being undeclared (`validate`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adhoc: bool,
}

/// A process that holds an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub pid: u32,
    /// With `pid`, the identity that survives pid reuse.
    pub start_time: u64,
    pub command: String,
    /// The supervised child's process group, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    /// The start time of that group's leader, recorded by the wtenv that
    /// spawned it (`run`, `up`): what proves a process is of the group
    /// wtenv started ([`crate::process::orphans`]). Never set for a group
    /// wtenv did not spawn (`env --hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_start: Option<u64>,
    /// The service manager's unit this holder runs as (`up --detach`,
    /// exported units): it is gone only once the unit is inactive too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<crate::background::UnitRef>,
}

impl Hold {
    pub fn process(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }

    pub fn is(&self, id: ProcessId) -> bool {
        self.process() == id
    }
}

impl Allocation {
    pub fn belongs_to(&self, repository: &Path, worktree: &Path) -> bool {
        // Both sides are canonical paths, so equal bytes is equal paths;
        // `Path`'s component-wise `==` was a visible cost of `env`'s hot
        // path on a registry of 1,000 entries.
        self.worktree.as_os_str() == worktree.as_os_str()
            && self.repository.as_os_str() == repository.as_os_str()
    }

    /// Where the allocation's line goes in the file: by repository, then
    /// worktree, as bytes (the order [`view::find`] searches).
    fn sort_key(&self) -> (&[u8], &[u8]) {
        (
            self.repository.as_os_str().as_bytes(),
            self.worktree.as_os_str().as_bytes(),
        )
    }
}

/// A turn at probing ports: the probe lock, released on drop.
pub struct ProbeTurn<'f>(&'f File);

impl Drop for ProbeTurn<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Where the registry lives and how long to wait for its lock.
#[derive(Debug, Clone)]
pub struct Registry {
    path: PathBuf,
    lock_timeout: Duration,
}

impl Registry {
    pub fn new(path: PathBuf) -> Registry {
        Registry {
            path,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// [`new`](Registry::new), waiting for locks as long as
    /// `WTENV_LOCK_TIMEOUT` says: a bare number is seconds (`30`), else a
    /// duration (`30s`, `500ms`); anything else is an error naming it.
    pub fn from_env(path: PathBuf) -> Result<Registry> {
        let mut registry = Registry::new(path);
        const VAR: &str = crate::settings::LOCK_TIMEOUT;
        if let Some(value) = crate::settings::lock_timeout() {
            registry.lock_timeout = value.to_str().and_then(parse_timeout).ok_or_else(|| {
                Error::hinted(
                    format!("{VAR}={value:?} is not a duration"),
                    format!("set {VAR} to seconds (30) or a duration (30s, 500ms, 1m)"),
                )
            })?;
        }
        Ok(registry)
    }

    /// `$WTENV_STATE_DIR`, else `$XDG_STATE_HOME/wtenv`, else
    /// `~/.local/state/wtenv`; then `registry.json`.
    pub fn default_path() -> Result<PathBuf> {
        let dir = crate::settings::state_dir().ok_or_else(|| {
            Error::hinted(
                "cannot find the registry: none of WTENV_STATE_DIR, XDG_STATE_HOME, HOME is set",
                "set WTENV_STATE_DIR or pass --registry PATH",
            )
        })?;
        Ok(dir.join(FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        // `--registry registry.json`: its parent is "", the current directory.
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    fn lock_path(&self) -> PathBuf {
        self.dir().join(LOCK_NAME)
    }

    /// A consistent snapshot under the shared lock.
    pub fn read(&self) -> Result<RegistryData> {
        self.read_with(|file| self.parse(&self.read_all(file)?))
    }

    /// [`read`](Registry::read) without the checks of the records' ports
    /// (one port twice, a port below 1024), for `validate`, which reports
    /// them as findings. Everything else is refused alike.
    pub fn read_unchecked(&self) -> Result<RegistryData> {
        self.read_with(|file| self.parse_schema(&self.read_all(file)?))
    }

    /// [`read`](Registry::read), keeping only the allocations of
    /// `worktree` (of `repository`): `env`'s hot path. It refuses exactly
    /// what `read` refuses, with the same errors.
    pub fn read_worktree(&self, repository: &Path, worktree: &Path) -> Result<RegistryData> {
        self.read_with(|mut file| {
            // Sealed, as wtenv writes it: only this worktree's lines, found
            // by binary search (see `seal` for what vouches for the rest).
            let meta = file.metadata().map_err(|e| self.read_error(e))?;
            if seal::is_sealed(&meta)
                && let Some((data, lines)) = view::find(file, meta.len(), repository, worktree)
                    .map_err(|e| self.read_error(e))?
            {
                tracing::debug!(
                    lines,
                    bytes = meta.len(),
                    "registry: own entries found by binary search"
                );
                return Ok(data);
            }
            // In the layout wtenv writes but not sealed (an older wtenv):
            // line by line, no whole-file buffer.
            if let Some(data) =
                view::read_lines(file, repository, worktree).map_err(|e| self.read_error(e))?
            {
                return Ok(data);
            }
            // Another layout, or not a valid registry: the full parse
            // reads it, or says exactly what is wrong.
            file.rewind().map_err(|e| self.read_error(e))?;
            let mut data = self.parse(&self.read_all(file)?)?;
            data.allocations
                .retain(|a| a.belongs_to(repository, worktree));
            Ok(data)
        })
    }

    fn read_with(&self, parse: impl FnOnce(&File) -> Result<RegistryData>) -> Result<RegistryData> {
        if !self.dir().exists() {
            return Ok(RegistryData::default());
        }
        self.check_dir()?;
        let _lock = self.lock(false)?;
        match self.open_checked()? {
            Some(file) => parse(&file),
            None => Ok(RegistryData::default()),
        }
    }

    /// Read-modify-write under the exclusive lock. `f` decides; the file is
    /// rewritten only if the data changed. An error from `f` writes nothing.
    pub fn transaction<T>(&self, f: impl FnOnce(&mut RegistryData) -> Result<T>) -> Result<T> {
        self.ensure_dir()?;
        let _lock = self.lock(true)?;
        let mut data = self.load()?;
        let before = data.clone();
        let out = f(&mut data)?;
        // Compare data, not bytes: a file written by another serializer
        // (by hand, by a script, by an older wtenv) is left as it is
        // unless an allocation really changed.
        if data != before {
            self.write(&serialize(&data)?)?;
            restamp(&before, &data);
        }
        Ok(out)
    }

    /// Releases every allocation of one worktree, in one transaction:
    /// what it released, as (service, port).
    pub fn release_worktree(
        &self,
        repository: &Path,
        worktree: &Path,
    ) -> Result<Vec<(String, u16)>> {
        self.transaction(|data| {
            let mut gone = Vec::new();
            data.allocations.retain(|a| {
                let hit = a.belongs_to(repository, worktree);
                if hit {
                    gone.push((a.service.clone(), a.port));
                }
                !hit
            });
            Ok(gone)
        })
    }

    fn unusable(&self, reason: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::RegistryUnusable {
            path: self.path.clone(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    fn move_aside_hint(&self) -> String {
        format!(
            "wtenv never overwrites a registry it cannot read; inspect it, or move it aside to start afresh: mv '{0}' '{0}.bak'",
            self.path.display()
        )
    }

    /// The state directory (the registry's own), created 0700 if missing
    /// and checked like it: other state files live beside the registry.
    pub fn ensure_state_dir(&self) -> Result<&Path> {
        self.ensure_dir()?;
        Ok(self.dir())
    }

    fn ensure_dir(&self) -> Result<()> {
        let dir = self.dir();
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    Error::io(
                        format!("could not create registry directory {}", dir.display()),
                        e,
                    )
                })?;
        }
        self.check_dir()
    }

    /// The directory must be ours and writable by nobody else: anyone who can
    /// write there can replace the registry under us.
    fn check_dir(&self) -> Result<()> {
        let dir = self.dir();
        let meta = std::fs::metadata(dir).map_err(|e| {
            Error::io(
                format!("could not read registry directory {}", dir.display()),
                e,
            )
        })?;
        if !meta.is_dir() {
            return Err(self.unusable(
                format!("its directory {} is not a directory", dir.display()),
                "move that file aside, or set WTENV_STATE_DIR / --registry elsewhere",
            ));
        }
        let uid = nix::unistd::geteuid().as_raw();
        if meta.uid() != uid {
            return Err(self.unusable(
                format!(
                    "its directory {} belongs to uid {}, not to you (uid {uid})",
                    dir.display(),
                    meta.uid()
                ),
                "use a registry directory of your own: set WTENV_STATE_DIR or pass --registry",
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(self.unusable(
                format!(
                    "its directory {} is writable by group or others (mode {:o})",
                    dir.display(),
                    meta.mode() & 0o777
                ),
                format!("chmod 700 '{}'", dir.display()),
            ));
        }
        Ok(())
    }

    /// The probe lock's file, opened once per process; `None` before the
    /// registry directory exists. Take a turn with [`probe_turn`].
    ///
    /// Why: a probe is itself a listener for a few microseconds (bind +
    /// listen) and a target for the other's connect backstop, so two wtenv
    /// processes probing one port at once each see the other's socket and
    /// call the port occupied (a false conflict, "holder unknown"). Holding
    /// the lock while probing makes the probes of one registry's processes
    /// never overlap. No other lock is wanted while it is held, so it
    /// cannot deadlock with `registry.lock`.
    ///
    /// [`probe_turn`]: Registry::probe_turn
    pub fn open_probe_lock(&self) -> Result<Option<File>> {
        if !self.dir().is_dir() {
            return Ok(None);
        }
        self.open_lock(&self.dir().join(PROBE_LOCK_NAME)).map(Some)
    }

    /// The probe lock, exclusive, until the turn is dropped; bounded wait.
    pub fn probe_turn<'f>(&self, file: &'f File) -> Result<ProbeTurn<'f>> {
        self.wait_lock(file, &self.dir().join(PROBE_LOCK_NAME), true)?;
        Ok(ProbeTurn(file))
    }

    fn lock(&self, exclusive: bool) -> Result<File> {
        let path = self.lock_path();
        let file = self.open_lock(&path)?;
        self.wait_lock(&file, &path, exclusive)?;
        Ok(file)
    }

    /// A lock file of the state directory, exclusive, held until dropped:
    /// for other files kept beside the registry (the trust list).
    pub fn lock_sibling(&self, name: &str) -> Result<File> {
        self.ensure_dir()?;
        let path = self.dir().join(name);
        let file = self.open_lock(&path)?;
        self.wait_lock(&file, &path, true)?;
        Ok(file)
    }

    /// A file beside the registry (it need not exist).
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// The directory holding the registry, checked like the registry's.
    pub fn state_dir(&self) -> Result<Option<&Path>> {
        if !self.dir().exists() {
            return Ok(None);
        }
        self.check_dir()?;
        Ok(Some(self.dir()))
    }

    fn open_lock(&self, path: &Path) -> Result<File> {
        files::open_lock(path).map_err(|e| match e {
            OpenError::Io(e) => {
                Error::io(format!("could not open lock file {}", path.display()), e)
            }
            OpenError::Refused(r) => self.unusable(
                format!("its lock file {}: {r}", path.display()),
                format!(
                    "something other than wtenv put it there: remove it (rm '{}'), wtenv makes a new one",
                    path.display()
                ),
            ),
        })
    }

    /// Waits at most `lock_timeout` for the lock; never forever.
    fn wait_lock(&self, file: &File, path: &Path, exclusive: bool) -> Result<()> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(format!("could not lock {}", path.display()), e));
                }
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(if path.file_name() == Some(LOCK_NAME.as_ref()) {
                    Error::RegistryBusy {
                        path: self.path.clone(),
                        waited: self.lock_timeout,
                    }
                } else {
                    Error::LockBusy {
                        path: path.to_path_buf(),
                        waited: self.lock_timeout,
                    }
                });
            }
            tracing::debug!(lock = %path.display(), "lock busy, waiting");
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The data, read and checked (an empty registry when there is no file yet).
    fn load(&self) -> Result<RegistryData> {
        match self.open_checked()? {
            Some(file) => self.parse(&self.read_all(&file)?),
            None => Ok(RegistryData::default()),
        }
    }

    /// The file, opened once its type, owner and mode are checked; `None`
    /// when there is no file yet.
    fn open_checked(&self) -> Result<Option<File>> {
        // Opened first, then checked through the open file: what is checked
        // is what is read. O_NOFOLLOW refuses a symbolic link (ELOOP);
        // O_NONBLOCK keeps a FIFO put there from blocking the open.
        let file = match files::open_read(&self.path, false) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(OpenError::Refused(Refusal::Symlink)) => {
                return Err(self.unusable(
                    "it is a symbolic link; wtenv replaces the registry by rename, which would break the link",
                    "replace the link with the file it points to, or pass --registry with the real path",
                ));
            }
            Err(OpenError::Refused(r)) => {
                return Err(self.unusable(r.to_string(), self.move_aside_hint()));
            }
            Err(OpenError::Io(e)) => return Err(self.read_error(e)),
        };
        let meta = file.metadata().map_err(|e| self.read_error(e))?;
        if !meta.is_file() {
            return Err(self.unusable("it is not a regular file", self.move_aside_hint()));
        }
        let uid = nix::unistd::geteuid().as_raw();
        if meta.uid() != uid {
            return Err(self.unusable(
                format!("it belongs to uid {}, not to you (uid {uid})", meta.uid()),
                "use a registry of your own: set WTENV_STATE_DIR or pass --registry",
            ));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(self.unusable(
                format!(
                    "it is writable by group or others (mode {:o})",
                    meta.permissions().mode() & 0o777
                ),
                format!("chmod 600 '{}'", self.path.display()),
            ));
        }
        Ok(Some(file))
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        Error::io(
            format!("could not read registry {}", self.path.display()),
            e,
        )
    }

    fn read_all(&self, mut file: &File) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| self.read_error(e))?;
        Ok(bytes)
    }

    /// The data, with every record's port checked: see [`check_ports`].
    fn parse(&self, bytes: &[u8]) -> Result<RegistryData> {
        let data = self.parse_schema(bytes)?;
        check_ports(&data.allocations).map_err(|reason| {
            self.unusable(
                reason,
                "wtenv never rewrites a registry it cannot trust; 'wtenv validate' shows it, then edit the file or move it aside",
            )
        })?;
        Ok(data)
    }

    fn parse_schema(&self, bytes: &[u8]) -> Result<RegistryData> {
        // The common case, a valid file of our version, parses straight
        // into the typed struct: one pass instead of two (JSON value tree,
        // then struct), which is most of `wtenv ports`' time on a big
        // registry. Anything else takes the slow path below, which says
        // exactly what is wrong.
        // (serde also reads a struct from an array, `[1, []]`: not ours.)
        let object = bytes.trim_ascii_start().starts_with(b"{");
        if object
            && let Ok(data) = serde_json::from_slice::<RegistryData>(bytes)
            && data.version == VERSION
        {
            return Ok(data);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(self.unusable(
                "it is empty (a registry always holds at least {\"version\": 1})",
                self.move_aside_hint(),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            self.unusable(
                format!("it is not valid JSON ({e})"),
                self.move_aside_hint(),
            )
        })?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v > u64::from(VERSION) => {
                return Err(self.unusable(
                    format!("it was written by a newer wtenv (registry version {v}; this wtenv knows version {VERSION})"),
                    "upgrade wtenv; the registry is left as it is",
                ));
            }
            Some(v) if v == u64::from(VERSION) => {}
            _ => {
                return Err(self.unusable(
                    format!("it has no \"version\": {VERSION} (not a wtenv registry, or from an unknown version)"),
                    self.move_aside_hint(),
                ));
            }
        }
        // From the bytes, not from `value`: a value tree keeps the last of
        // two equal keys, the typed parse refuses them (a second, empty
        // "allocations" must not make the first one's entries vanish).
        serde_json::from_slice(bytes).map_err(|e| {
            let reason = if e.to_string().starts_with("duplicate field") {
                format!("a key is given twice ({e}); which one counts would be a guess")
            } else {
                format!("it does not match the registry schema ({e})")
            };
            self.unusable(reason, self.move_aside_hint())
        })
    }

    fn write(&self, bytes: &[u8]) -> Result<()> {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(FILE_NAME);
        files::replace_with(self.dir(), name, bytes, seal::stamp).map_err(|(what, path, e)| {
            Error::io(
                format!(
                    "could not {what} {} (replacing registry {})",
                    path.display(),
                    self.path.display()
                ),
                e,
            )
        })
    }
}

/// A bare number of seconds (`30`, `1.5`), or a duration (`30s`, `500ms`).
fn parse_timeout(text: &str) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
        Err(_) => humantime::parse_duration(text).ok(),
    }
}

/// What wtenv never writes: a port below 1024, one port twice. Either
/// means the file was edited or damaged, and acting on it would probe a
/// privileged port or export one port for two services.
pub fn check_ports(allocations: &[Allocation]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashMap::with_capacity(allocations.len());
    for a in allocations {
        if a.port < MIN_PORT {
            return Err(format!(
                "it records port {} (service {} of {}), outside {MIN_PORT}-65535",
                a.port,
                a.service,
                a.worktree.display()
            ));
        }
        if let Some(other) = seen.insert(a.port, a) {
            return Err(format!(
                "it records port {} twice (service {} of {}, and service {} of {})",
                a.port,
                other.service,
                other.worktree.display(),
                a.service,
                a.worktree.display()
            ));
        }
    }
    Ok(())
}

/// Rewrites the stamp of every worktree whose ports (service and port) a
/// transaction changed: here, where every command's change is committed,
/// so that none can give a port away while a direnv shell keeps
/// exporting it ([`crate::worktree::write_stamp`]). A change of holders
/// alone changes no exported variable and no stamp.
fn restamp(before: &RegistryData, after: &RegistryData) {
    // Keyed by the paths' bytes, in hash maps: `Path`'s component-wise
    // ordering in a BTreeMap made this most of a transaction's time on a
    // big registry (1.6 billion instructions for 20,000 allocations).
    type Ports<'a> = HashMap<&'a [u8], BTreeSet<(&'a str, u16)>>;
    fn ports(data: &RegistryData) -> Ports<'_> {
        let mut out = Ports::with_capacity(data.allocations.len());
        for a in &data.allocations {
            out.entry(a.worktree.as_os_str().as_bytes())
                .or_default()
                .insert((a.service.as_str(), a.port));
        }
        out
    }
    let (old, new) = (ports(before), ports(after));
    // Every worktree of either side, once: those of `old`, then those
    // only in `new`.
    let worktrees = old
        .keys()
        .chain(new.keys().filter(|w| !old.contains_key(*w)));
    for &worktree in worktrees {
        let now = new.get(worktree);
        if old.get(worktree) != now {
            let worktree = Path::new(std::ffi::OsStr::from_bytes(worktree));
            let summary: Vec<String> = now
                .into_iter()
                .flatten()
                .map(|(service, port)| format!("{service}={port}"))
                .collect();
            crate::worktree::write_stamp(worktree, &summary.join(","));
        }
    }
}

/// One allocation per line: as easy to read and grep as indented JSON,
/// and about 30% smaller. The lines are sorted by repository, then
/// worktree (as bytes; a worktree's own lines keep their order), so that
/// [`view::find`] finds one worktree's lines by binary search; files of
/// older wtenvs, in insertion order, are read whole ([`view::read_lines`])
/// until the next write sorts them.
fn serialize(data: &RegistryData) -> Result<Vec<u8>> {
    let RegistryData {
        version,
        allocations,
    } = data;
    let mut sorted: Vec<&Allocation> = allocations.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut bytes = layout::header(*version).into_bytes();
    for (i, a) in sorted.into_iter().enumerate() {
        bytes.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        bytes.extend_from_slice(layout::INDENT);
        // Paths are bytes; JSON strings are UTF-8. Worktrees are refused
        // earlier (`Scope`), this is the backstop: an error, never a panic.
        serde_json::to_writer(&mut bytes, a).map_err(|e| {
            Error::hinted(
                format!(
                    "could not record port {} for {}: {e}",
                    a.port,
                    a.worktree.display()
                ),
                "wtenv handles paths that are valid UTF-8 only; rename the directory",
            )
        })?;
    }
    if !allocations.is_empty() {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(layout::FOOTER);
    Ok(bytes)
}

/// The pieces of the layout [`serialize`] writes.
mod layout {
    /// Opens the object and the `allocations` array (closed on the same
    /// line when there are none).
    pub fn header(version: u32) -> String {
        format!("{{\"version\": {version}, \"allocations\": [")
    }
    /// Before each allocation, on a line of its own.
    pub const INDENT: &[u8] = b"  ";
    /// Closes the array and the object; the file's last line.
    pub const FOOTER: &[u8] = b"]}\n";
}

/// Now, as the registry writes it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let reg = Registry::new(dir.path().join(FILE_NAME));
        (dir, reg)
    }

    fn alloc(port: u16) -> Allocation {
        Allocation {
            port,
            service: "app".into(),
            purpose: "feature".into(),
            repository: "/r/.git".into(),
            worktree: "/r".into(),
            created: now_rfc3339(),
            reserved: true,
            holders: vec![],
            adhoc: false,
        }
    }

    #[test]
    fn missing_registry_reads_empty_and_round_trips() {
        let (_d, reg) = registry();
        assert_eq!(reg.read().unwrap(), RegistryData::default());
        reg.transaction(|d| {
            d.allocations.push(alloc(5000));
            Ok(())
        })
        .unwrap();
        let read = reg.read().unwrap();
        assert_eq!(read.allocations.len(), 1);
        assert_eq!(read.allocations[0].port, 5000);
        let mode = std::fs::metadata(reg.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_file_holds_one_allocation_per_line_and_parses_back() {
        let mut data = RegistryData::default();
        assert_eq!(
            serialize(&data).unwrap(),
            b"{\"version\": 1, \"allocations\": []}\n"
        );
        data.allocations = vec![alloc(5000), alloc(5001)];
        let text = String::from_utf8(serialize(&data).unwrap()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.lines().nth(1).unwrap().contains("\"port\":5000"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RegistryData>(&text).unwrap(), data);
    }

    #[test]
    fn unchanged_data_is_not_rewritten() {
        let (_d, reg) = registry();
        reg.transaction(|d| {
            d.allocations.push(alloc(5000));
            Ok(())
        })
        .unwrap();
        let before = std::fs::metadata(reg.path()).unwrap().ino();
        reg.transaction(|_| Ok(())).unwrap();
        assert_eq!(
            std::fs::metadata(reg.path()).unwrap().ino(),
            before,
            "a no-op transaction renamed a new file in"
        );
    }

    #[test]
    fn unchanged_data_in_another_layout_is_not_rewritten() {
        let (_d, reg) = registry();
        let compact = br#"{"allocations":[],"version":1}"#;
        std::fs::write(reg.path(), compact).unwrap();
        std::fs::set_permissions(reg.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        reg.transaction(|_| Ok(())).unwrap();
        assert_eq!(std::fs::read(reg.path()).unwrap(), compact);
    }

    #[test]
    fn a_failing_transaction_writes_nothing() {
        let (_d, reg) = registry();
        let r: Result<()> = reg.transaction(|d| {
            d.allocations.push(alloc(5000));
            Err(Error::usage("no"))
        });
        assert!(r.is_err());
        assert!(!reg.path().exists());
    }

    #[test]
    fn bad_files_are_refused_and_untouched() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{\"version\": 1, \"allocations\": [", "not valid JSON"),
            (b"[1,2]", "no \"version\""),
            (b"[1, []]", "no \"version\""),
            (b"{\"version\": 2, \"allocations\": []}", "newer wtenv"),
            (
                b"{\"version\": 1, \"allocations\": [{\"port\": \"x\"}]}",
                "schema",
            ),
        ];
        for (bytes, expected) in cases {
            let (_d, reg) = registry();
            std::fs::write(reg.path(), bytes).unwrap();
            std::fs::set_permissions(reg.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = reg.transaction(|_| Ok(())).unwrap_err();
            assert!(matches!(err, Error::RegistryUnusable { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
            // `env`'s filtered read refuses it alike, with the same words.
            let filtered = reg
                .read_worktree(Path::new("/r/.git"), Path::new("/r"))
                .unwrap_err();
            assert_eq!(filtered.to_string(), err.to_string());
            assert_eq!(std::fs::read(reg.path()).unwrap(), *bytes);
        }
    }

    #[test]
    fn read_worktree_is_read_filtered() {
        let (_d, reg) = registry();
        reg.transaction(|d| {
            d.allocations.push(alloc(5000));
            d.allocations.push(Allocation {
                worktree: "/r/other".into(),
                ..alloc(5001)
            });
            Ok(())
        })
        .unwrap();
        let mut all = reg.read().unwrap();
        all.allocations.retain(|a| a.worktree == Path::new("/r"));
        let mine = reg
            .read_worktree(Path::new("/r/.git"), Path::new("/r"))
            .unwrap();
        assert_eq!(mine, all);
        assert_eq!(mine.allocations.len(), 1);
    }

    #[test]
    fn lock_wait_is_bounded() {
        let (_d, mut reg) = registry();
        reg.lock_timeout = Duration::from_millis(100);
        let held = reg.lock(true).unwrap();
        let err = reg.read().unwrap_err();
        assert!(matches!(err, Error::RegistryBusy { .. }), "{err}");
        drop(held);
        reg.read().unwrap();
    }
}
