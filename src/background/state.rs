//! `<state>/background`: one record per unit wtenv started (what `status`,
//! `down` and `logs` read) and the files beside it, written atomically and
//! read capped, never through a planted link.

use std::path::{Path, PathBuf};

use super::{Manager, Naming, Owner, Record, is_unit_name, unit_file_name};
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::files;
use crate::process::{printable, printable_path};

/// `<state>/background`: records, logs, plists.
pub struct StateDir(PathBuf);

impl StateDir {
    /// The directory, made (with the state directory) if missing: for
    /// the commands that start services.
    pub fn of(ctx: &Ctx) -> Result<StateDir> {
        let dir = ctx.registry.ensure_state_dir()?.join("background");
        crate::files::create_private_dir(&dir, false)
            .map_err(|e| Error::io(format!("could not create {}", printable_path(&dir)), e))?;
        // Gone again only if removed under us: said as the read it fails.
        let missing = || {
            let e = std::io::ErrorKind::NotFound.into();
            Error::io(format!("could not read {}", printable_path(&dir)), e)
        };
        StateDir::checked(dir.clone())?.ok_or_else(missing)
    }

    /// The directory [`of`](StateDir::of) makes, made by nothing yet (it
    /// may be missing, the state directory too), for a command that names
    /// paths in it before anything can refuse it (`export`'s logs): one
    /// that is not a directory is refused here, as `of` refuses it.
    pub fn planned(ctx: &Ctx) -> Result<StateDir> {
        match StateDir::existing(ctx)? {
            Some(dir) => Ok(dir),
            None => Ok(StateDir(ctx.registry.dir().join("background"))),
        }
    }

    /// The directory if it exists, for the commands that only read it
    /// (`status`, `logs`): they create nothing in the state directory,
    /// like the registry's readers. `None`: nothing ever ran in the
    /// background.
    pub fn existing(ctx: &Ctx) -> Result<Option<StateDir>> {
        match ctx.registry.state_dir()? {
            Some(state) => StateDir::checked(state.join("background")),
            None => Ok(None),
        }
    }

    /// `dir` when it is a directory; `None` when it does not exist.
    fn checked(dir: PathBuf) -> Result<Option<StateDir>> {
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("could not read {}", printable_path(&dir)),
                    e,
                ));
            }
        };
        if !meta.is_dir() {
            return Err(
                Error::refused(format!("{} is not a directory", printable_path(&dir)))
                    .with_hint("move it aside; wtenv keeps its background state there"),
            );
        }
        Ok(Some(StateDir(dir)))
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
    /// warning (they name nothing wtenv could act on safely), and so is
    /// one whose unit is not a name wtenv makes or not its file's name
    /// (`<unit>.json`): the unit names files here (the record, a plist)
    /// and is passed to the manager, so `../../x` would have `down`
    /// delete `x.json` outside the state directory.
    pub fn records(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return vec![];
        };
        let mut out: Vec<Record> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".json")?;
                let bytes = read_file(&e.path(), 64 * 1024)?;
                let record: Record = match serde_json::from_slice(&bytes) {
                    Ok(r) => r,
                    Err(err) => {
                        tracing::warn!("ignoring {}: {err}", printable_path(&e.path()));
                        return None;
                    }
                };
                if record.unit != stem || !is_unit_name(&record.unit) {
                    tracing::warn!(
                        "ignoring {}: its unit {} is not a name wtenv makes for it \
                         (wtenv-..., named as the file); wtenv acts on nothing it names: \
                         stop what it started yourself, then remove it by hand \
                         (rm {})",
                        printable_path(&e.path()),
                        printable(&format!("{:?}", record.unit)),
                        crate::shell::quote_in_message(e.path()),
                    );
                    return None;
                }
                Some(record)
            })
            .collect();
        out.sort_by(|a: &Record, b| a.unit.cmp(&b.unit));
        out
    }

    /// Records of `scope`'s worktree, of `services` (all when empty).
    pub fn records_of(&self, scope: &Scope, services: &[String]) -> Vec<Record> {
        self.records_in(&Owner::of(&scope.worktree))
            .into_iter()
            .filter(|r| services.is_empty() || services.contains(&r.service))
            .collect()
    }

    /// Records of the worktree `owner` ([`Record::belongs_to`]).
    pub fn records_in(&self, owner: &Owner) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.belongs_to(owner))
            .collect()
    }

    pub(super) fn write(&self, record: &Record) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| {
            Error::invalid(format!("cannot keep the record of {}: {e}", record.unit))
        })?;
        bytes.push(b'\n');
        write_file(&self.0, &format!("{}.json", record.unit), &bytes)
    }

    /// The log of each of `scope`'s services (all when `services` is
    /// empty) that has one, whatever ran it, also after `down`: by the
    /// unit names the worktree has now, and by its records (a unit started
    /// before the worktree moved keeps its name, and its log).
    pub fn logs_of(&self, scope: &Scope, services: &[String]) -> Vec<(String, PathBuf)> {
        let naming = Naming::of(scope);
        let records = self.records_of(scope, services);
        scope
            .config
            .services
            .iter()
            .filter(|s| services.is_empty() || services.contains(&s.name))
            .filter_map(|s| {
                let unit = naming.unit(&s.name);
                // The newest, when the service ran under several managers
                // or names. A record's log is its unit's (the unit is
                // checked as a name wtenv makes: `records`).
                let recorded = records.iter().filter(|r| r.service == s.name);
                [Manager::Systemd, Manager::Launchd, Manager::Wtenv]
                    .into_iter()
                    .map(|m| self.log_path(&unit_file_name(m, &unit)))
                    .chain(recorded.map(|r| self.log_path(&r.unit)))
                    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
                    .max()
                    .map(|(_, p)| (s.name.clone(), p))
            })
            .collect()
    }

    /// Removes `record`'s file while it is still that record (the same
    /// process started): never one another command wrote since under the
    /// same unit name.
    pub(super) fn forget(&self, record: &Record) {
        let path = self.record_path(&record.unit);
        let same = read_file(&path, 64 * 1024)
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            .is_some_and(|r| {
                (r.pid, r.start_time, r.started) == (record.pid, record.start_time, record.started)
            });
        if same {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Replaces `dir/name` with `bytes` (0600, atomically, never through a
/// planted link or FIFO).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    files::replace(dir, name, bytes).map_err(|(what, path, e)| {
        files::replace_error(format!("could not {what} {}", printable_path(&path)), e)
    })
}

/// A regular file's bytes, refused past `cap`; `None` for anything else
/// (a link, a FIFO, a device) or when it cannot be read.
pub fn read_file(path: &Path, cap: u64) -> Option<Vec<u8>> {
    let file = files::open_read(path, false).ok()??;
    let meta = files::require_regular(&file).ok()?;
    files::read_capped(&file, cap, meta.len()).ok()
}
