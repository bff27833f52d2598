//! The registry: the per-user, machine-wide record of port allocations.
//!
//! Invariants (README "How it works" and "Hostile files"):
//! - `registry.json` is replaced atomically (temp file in the same
//!   directory, fsync, rename, fsync of the directory) and only when its
//!   bytes change: a crash at any instant leaves the old or the new file.
//! - Every read-modify-write runs under an exclusive `flock` of the sibling
//!   `registry.lock`, which is never renamed or deleted (renaming it would
//!   let two processes lock two different inodes). Reads take it shared;
//!   in a directory whose mode lets its owner read but not write, a read
//!   creates no lock file (see [`Registry::check_dir`]).
//!   The lock is held only for the transaction, never while a child runs
//!   on its account: no transaction waits for a child (`create`'s runs
//!   beside `git worktree add`, which it does not wait for).
//! - A file that cannot be trusted (empty, not JSON, wrong schema, newer
//!   version, a symlink, unsafe owner or permissions) is never overwritten
//!   and never read as empty: [`crate::error::Error::RegistryUnusable`], exit 2.
//! - A registry whose content is not what wtenv writes (a key given twice,
//!   one port twice, a port outside 1024-65535) is refused the same way:
//!   wtenv never rewrites what it cannot trust.
//! - A missing file is an empty registry; the directory is created 0700 on
//!   the first write, the file is 0600. A directory whose mode does not
//!   let its owner read and search it (to read) and write it (to change
//!   anything) is refused before anything is read or written, exit 2.
//! - Every file of the state directory is opened by [`crate::files`]: no
//!   write follows a planted link, no open blocks on a planted FIFO.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Seek;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::files;
use crate::process::{ProcessId, printable_path};

mod checked;
mod find;
mod layout;
mod lines;
mod lock;
mod part;
mod path;
mod record;
#[cfg(test)]
mod samples;
mod seal;
mod view;

use checked::Access;
pub use checked::check_ports;
use layout::{Pieces, serialize};
pub use lock::ProbeTurn;
pub use part::Part;
pub use path::Base;
use path::REGULAR_FILE_HINT;
use record::Key;

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

impl RegistryData {
    /// The same reserved allocations, in the same order, but perhaps for
    /// their holders: what differs, if anything, lives only as long as
    /// processes do (holders, and the allocations that live while their
    /// holders do).
    pub fn same_reservations(&self, other: &RegistryData) -> bool {
        fn reserved(d: &RegistryData) -> impl Iterator<Item = &Allocation> {
            d.allocations.iter().filter(|a| a.reserved)
        }
        self.version == other.version
            && reserved(self).count() == reserved(other).count()
            && reserved(self)
                .zip(reserved(other))
                .all(|(a, b)| a.same_but_holders(b))
    }
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
    /// The session that group was started in, read with `leader_start`:
    /// a group never leaves it, so a process of another session under
    /// the same id (reused) is no member ([`crate::process::orphans`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    /// The service manager's unit this holder runs as (`up --detach`,
    /// exported units): it is gone only once the unit is inactive too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<crate::background::UnitRef>,
}

impl Hold {
    /// The process group the holder recorded for its command, once it
    /// did (never for `env --hold`).
    pub fn group(&self) -> Option<crate::process::Group> {
        Some(crate::process::Group {
            pgid: self.pgid?,
            leader_start: self.leader_start?,
            session: self.session,
        })
    }

    pub fn process(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }

    pub fn is(&self, id: ProcessId) -> bool {
        id.is(self.process())
    }
}

impl Allocation {
    /// Equal in every field but `holders`. Destructured, so that a new
    /// field must be placed on one side or the other.
    fn same_but_holders(&self, other: &Allocation) -> bool {
        let Allocation {
            port,
            service,
            purpose,
            repository,
            worktree,
            created,
            reserved,
            holders: _,
            adhoc,
        } = self;
        (
            port, service, purpose, repository, worktree, created, reserved, adhoc,
        ) == (
            &other.port,
            &other.service,
            &other.purpose,
            &other.repository,
            &other.worktree,
            &other.created,
            &other.reserved,
            &other.adhoc,
        )
    }

    pub fn belongs_to(&self, repository: &Path, worktree: &Path) -> bool {
        // Both sides are canonical paths, so equal bytes is equal paths;
        // `Path`'s component-wise `==` was a visible cost of `env`'s hot
        // path on a registry of 1,000 entries.
        self.worktree.as_os_str() == worktree.as_os_str()
            && self.repository.as_os_str() == repository.as_os_str()
    }
}

/// Where the registry lives and how long to wait for its lock.
#[derive(Debug, Clone)]
pub struct Registry {
    path: PathBuf,
    /// What its state directory may be made below (`None`: anywhere, as
    /// named by `WTENV_STATE_DIR` or `--registry`).
    base: Option<Base>,
    lock_timeout: Duration,
    /// The state directory's metadata once it is found a directory: `env`
    /// looks at it for its read, its probe and its trust list, and one
    /// stat per process is enough (the directory is never chmodded by
    /// wtenv once there).
    dir_meta: std::sync::OnceLock<std::fs::Metadata>,
    /// Whether this process (through this registry or a clone of it) has
    /// replaced the file: before that, nothing of this process's is in
    /// it, and there is nothing to release ([`Registry::wrote`]).
    wrote: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Allocations a release went through, as (service, port).
pub type Released = Vec<(String, u16)>;

impl Registry {
    pub fn new(path: PathBuf) -> Registry {
        Registry {
            path,
            base: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            dir_meta: std::sync::OnceLock::new(),
            wrote: Default::default(),
        }
    }

    /// Whether this process has changed the registry file. A process
    /// whose every write was refused (a registry it cannot use) holds
    /// nothing in it: its release guard has nothing to say.
    pub fn wrote(&self) -> bool {
        self.wrote.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state directory, whether it exists or not.
    pub fn dir(&self) -> &Path {
        // `--registry registry.json`: its parent is "", the current directory.
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// A consistent snapshot under the shared lock.
    pub fn read(&self) -> Result<RegistryData> {
        self.read_with(|file, meta| self.parse(&self.read_all(file, meta)?))
    }

    /// [`read`](Registry::read) without the checks of the records' ports
    /// (one port twice, a port below 1024), for `validate`, which reports
    /// them as findings. Everything else is refused alike.
    pub fn read_unchecked(&self) -> Result<RegistryData> {
        self.read_with(|file, meta| self.parse_schema(&self.read_all(file, meta)?))
    }

    /// [`read`](Registry::read), keeping only the allocations of
    /// `worktree` (of `repository`): `env`'s hot path. It refuses exactly
    /// what `read` refuses, with the same errors.
    pub fn read_worktree(&self, repository: &Path, worktree: &Path) -> Result<RegistryData> {
        self.read_matching(Key::new(repository, worktree))
    }

    /// [`read`](Registry::read), keeping only the allocations of the
    /// worktrees of `repository`: `ports` in a repository.
    pub fn read_repository(&self, repository: &Path) -> Result<RegistryData> {
        self.read_matching(Key::repository(repository))
    }

    fn read_matching(&self, key: Key) -> Result<RegistryData> {
        self.read_with(|mut file, meta| {
            // Sealed, as wtenv writes it: only the wanted lines, found by
            // binary search (see `seal` for what vouches for the rest).
            if seal::is_sealed(meta)
                && let Some((data, lines)) =
                    find::find(file, meta.len(), key).map_err(|e| self.read_error(e))?
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
            if let Some(data) = view::read_lines(file, key).map_err(|e| self.read_error(e))? {
                return Ok(data);
            }
            // Another layout, or not a valid registry: the full parse
            // reads it, or says exactly what is wrong.
            file.rewind().map_err(|e| self.read_error(e))?;
            let mut data = self.parse(&self.read_all(file, meta)?)?;
            data.allocations.retain(|a| key.wants_owned(a));
            Ok(data)
        })
    }

    /// The file read as a transaction reads it: under the shared lock,
    /// waited for as a transaction waits, and parsed unless sealed (the
    /// seal vouches that wtenv wrote it whole). For a command that stops
    /// things before its first write (`down`, `remove`, which checked the
    /// directory first: [`Registry::check_usable`]): a damaged registry,
    /// or one locked past the wait, is refused before anything is
    /// stopped, not after.
    pub fn check_content(&self) -> Result<()> {
        self.read_with(|file, meta| {
            if !seal::is_sealed(meta) {
                self.parse(&self.read_all(file, meta)?)?;
            }
            Ok(RegistryData::default())
        })
        .map(drop)
    }

    /// `parse` gets the file and the metadata it was checked on.
    fn read_with(
        &self,
        parse: impl FnOnce(&File, &std::fs::Metadata) -> Result<RegistryData>,
    ) -> Result<RegistryData> {
        if !self.dir_is_there() {
            self.check_base()?;
            return Ok(RegistryData::default());
        }
        let may_write = self.check_dir(Access::Read)?;
        let _lock = self.read_lock(may_write)?;
        match self.open_checked()? {
            Some((file, meta)) => parse(&file, &meta),
            None => Ok(RegistryData::default()),
        }
    }

    /// Read-modify-write under the exclusive lock. `f` decides; the file is
    /// rewritten only if the data changed. An error from `f` writes nothing.
    pub fn transaction<T>(&self, f: impl FnOnce(&mut RegistryData) -> Result<T>) -> Result<T> {
        self.ensure_dir()?;
        let _lock = self.lock(true)?;
        self.commit(self.load()?, f, |d| serialize(d).map(Pieces::from))
    }

    /// Runs `f` on `data`; when it changed anything, writes what `render`
    /// makes of the result and rewrites the stamps of the worktrees whose
    /// ports changed. Compares data, not bytes: a file written by another
    /// serializer (by hand, by a script, by an older wtenv) is left as it
    /// is unless an allocation really changed.
    fn commit<'b, T>(
        &self,
        mut data: RegistryData,
        f: impl FnOnce(&mut RegistryData) -> Result<T>,
        render: impl FnOnce(&RegistryData) -> Result<Pieces<'b>>,
    ) -> Result<T> {
        let before = data.clone();
        let out = f(&mut data)?;
        if data != before {
            // A change that only processes live by need not survive a
            // crash: the processes do not either (docs/ARCHITECTURE.md,
            // "Registry").
            let commit = if before.same_reservations(&data) {
                files::Commit::OldOrNew
            } else {
                files::Commit::Durable
            };
            self.write(&render(&data)?, commit)?;
            restamp(&before, &data);
        }
        Ok(out)
    }

    /// Releases every allocation of `part`'s worktree, in one transaction
    /// over `part`, after `first` (`remove`: the entries recorded where
    /// the worktree was moved from, recorded at its path): what it
    /// released, as (service, port).
    pub fn release_worktree(
        &self,
        part: Part,
        first: impl FnOnce(&mut RegistryData),
    ) -> Result<Released> {
        self.release_worktree_keeping(part, first, |_| false)
            .map(|(gone, _)| gone)
    }

    /// [`Registry::release_worktree`], but an allocation `keep` picks
    /// stays, no longer reserved, with its holders: it lives while they
    /// do (`remove --force` of a worktree a `run` still serves from).
    /// What it released, then what it kept, as (service, port).
    pub fn release_worktree_keeping(
        &self,
        part: Part,
        first: impl FnOnce(&mut RegistryData),
        mut keep: impl FnMut(&Allocation) -> bool,
    ) -> Result<(Released, Released)> {
        let (repository, worktree) = (part.repository, part.worktree);
        self.transaction_in(part, |data| {
            first(data);
            let (mut gone, mut kept) = (Vec::new(), Vec::new());
            data.allocations.retain_mut(|a| {
                if !a.belongs_to(repository, worktree) {
                    return true;
                }
                let stays = keep(a);
                if stays {
                    a.reserved = false;
                    kept.push((a.service.clone(), a.port));
                } else {
                    gone.push((a.service.clone(), a.port));
                }
                stays
            });
            Ok((gone, kept))
        })
    }

    /// The state directory (the registry's own), created 0700 if missing
    /// and checked like it, for writing: other state files live beside
    /// the registry.
    pub fn ensure_state_dir(&self) -> Result<&Path> {
        self.ensure_dir()?;
        Ok(self.dir())
    }

    fn ensure_dir(&self) -> Result<()> {
        let dir = self.dir();
        if !is_there(dir) {
            self.check_base()?;
            crate::files::create_private_dir(dir, true).map_err(|e| {
                // A read-only file system is said as such (exit 1).
                if e.raw_os_error() == Some(nix::libc::EROFS) {
                    return files::replace_error(
                        format!(
                            "could not create the state directory {}",
                            printable_path(dir)
                        ),
                        e,
                    );
                }
                // Unusable (exit 2), like a directory that is not one: the
                // path wtenv was given cannot hold a registry.
                self.unusable(
                    format!(
                        "could not create its directory {}: {e}",
                        printable_path(dir)
                    ),
                    checked::WHERE_IT_IS,
                )
            })?;
        }
        self.check_dir(Access::Write).map(drop)
    }

    /// Refuses, as a transaction would, a state directory whose mode keeps
    /// its owner from changing it: for a command whose first write comes
    /// later (`run`'s hold that waits for its command), before it starts
    /// anything.
    pub fn check_writable(&self) -> Result<()> {
        self.check_dir(Access::Write).map(drop)
    }

    /// A file beside the registry (it need not exist).
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// The directory holding the registry, checked like the registry's,
    /// for reading what is beside it ([`ensure_state_dir`] to write).
    ///
    /// [`ensure_state_dir`]: Registry::ensure_state_dir
    pub fn state_dir(&self) -> Result<Option<&Path>> {
        if !self.dir_is_there() {
            self.check_base()?;
            return Ok(None);
        }
        self.check_dir(Access::Read)?;
        Ok(Some(self.dir()))
    }

    fn write(&self, pieces: &Pieces, commit: files::Commit) -> Result<()> {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(FILE_NAME);
        // An error means nothing was renamed in: the file is as it was.
        files::replace_with(
            self.dir(),
            name,
            |file| pieces.write_to(file),
            seal::stamp,
            commit,
        )
        .map(|()| self.wrote.store(true, std::sync::atomic::Ordering::Relaxed))
        .map_err(|(what, path, e)| {
            files::replace_error(
                format!(
                    "could not {what} {} (replacing registry {})",
                    printable_path(&path),
                    printable_path(&self.path)
                ),
                e,
            )
        })
    }
}

/// Whether anything is at `path`, a link included (not followed): a link
/// that leads nowhere is there, and checked, not taken for "no state yet".
/// So is a path wtenv cannot look at: one through a file (`<file>/sub`,
/// a HOME that is a file: ENOTDIR) or through a directory it may not
/// search. Only "nothing there" (ENOENT) is no state yet; the rest is
/// checked, and refused with what is in the way.
fn is_there(path: &Path) -> bool {
    !matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

impl Registry {
    /// [`is_there`] of the state directory: its metadata
    /// ([`dir_meta`](Registry::dir_meta)), or, when that cannot be had, a
    /// look at the link itself.
    fn dir_is_there(&self) -> bool {
        self.dir_meta().is_ok() || is_there(self.dir())
    }

    /// The state directory's metadata, through a link: stat'ed until it is
    /// found a directory, then kept.
    fn dir_meta(&self) -> std::io::Result<std::fs::Metadata> {
        if let Some(meta) = self.dir_meta.get() {
            return Ok(meta.clone());
        }
        let meta = std::fs::metadata(self.dir())?;
        if meta.is_dir() {
            let _ = self.dir_meta.set(meta.clone());
        }
        Ok(meta)
    }
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
    // With each worktree's repository: a worktree whose directory is gone
    // has its stamp found through it ([`crate::worktree::write_stamp_of`]).
    type Ports<'a> = HashMap<&'a [u8], (&'a Path, BTreeSet<(&'a str, u16)>)>;
    fn ports(data: &RegistryData) -> Ports<'_> {
        let mut out = Ports::with_capacity(data.allocations.len());
        for a in &data.allocations {
            out.entry(a.worktree.as_os_str().as_bytes())
                .or_insert_with(|| (a.repository.as_path(), BTreeSet::new()))
                .1
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
        let (was, now) = (old.get(worktree), new.get(worktree));
        if was.map(|w| &w.1) != now.map(|n| &n.1) {
            let Some(&(repository, _)) = now.or(was) else {
                continue;
            };
            let worktree = Path::new(std::ffi::OsStr::from_bytes(worktree));
            let line =
                crate::worktree::stamp_line(worktree, now.into_iter().flat_map(|n| &n.1).copied());
            crate::worktree::write_stamp_of(worktree, repository, &line);
        }
    }
}

/// Now, as the registry writes it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::error::Error;
    use crate::registry::samples::{alloc, registry};

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
            Err(Error::failed("no"))
        });
        assert!(r.is_err());
        assert!(!reg.path().exists());
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
}
