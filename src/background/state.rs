//! `<state>/background`: one record per unit wtenv started (what `status`,
//! `down` and `logs` read) and the files beside it, written atomically and
//! read capped, never through a planted link.

use std::path::{Path, PathBuf};

use super::{Manager, Naming, Owner, RECORD_VERSION, Record, is_unit_name, unit_file_name};
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::files::{self, OpenError, Refusal};
use crate::process::{printable, printable_path};
use crate::registry::Registry;

/// `<state>/background`: records, logs, plists; and the registry, whose
/// holds name the group of a service not yet ready ([`StateDir::records`]).
pub struct StateDir {
    dir: PathBuf,
    registry: Registry,
}

impl StateDir {
    /// The directory, made (with the state directory) if missing: for
    /// the commands that start services.
    pub fn of(ctx: &Ctx) -> Result<StateDir> {
        let dir = ctx.registry.ensure_state_dir()?.join("background");
        // A full disk or a read-only file system is said as such, with
        // what to do, as every write of the state directory says it.
        crate::files::create_private_dir(&dir, false).map_err(|e| {
            crate::files::replace_error(format!("could not create {}", printable_path(&dir)), e)
        })?;
        // Gone again only if removed under us: said as the read it fails.
        let missing = || {
            let e = std::io::ErrorKind::NotFound.into();
            Error::io(format!("could not read {}", printable_path(&dir)), e)
        };
        StateDir::checked(ctx, dir.clone())?.ok_or_else(missing)
    }

    /// The directory [`of`](StateDir::of) makes, made by nothing yet (it
    /// may be missing, the state directory too), for a command that names
    /// paths in it before anything can refuse it (`export`'s logs): one
    /// that is not a directory is refused here, as `of` refuses it.
    pub fn planned(ctx: &Ctx) -> Result<StateDir> {
        match StateDir::existing(ctx)? {
            Some(dir) => Ok(dir),
            None => Ok(StateDir {
                dir: ctx.registry.dir().join("background"),
                registry: ctx.registry.clone(),
            }),
        }
    }

    /// The directory if it exists, for the commands that only read it
    /// (`status`, `logs`): they create nothing in the state directory,
    /// like the registry's readers. `None`: nothing ever ran in the
    /// background.
    pub fn existing(ctx: &Ctx) -> Result<Option<StateDir>> {
        match ctx.registry.state_dir()? {
            Some(state) => StateDir::checked(ctx, state.join("background")),
            None => Ok(None),
        }
    }

    /// `dir` when it is a directory; `None` when it does not exist.
    fn checked(ctx: &Ctx, dir: PathBuf) -> Result<Option<StateDir>> {
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
        Ok(Some(StateDir {
            dir,
            registry: ctx.registry.clone(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.log"))
    }

    fn record_path(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.json"))
    }

    /// Every record, in unit order, each with its service's group when
    /// its supervisor recorded one in the registry before the record
    /// names it ([`super::readiness::with_group`]: one not ready yet,
    /// whose supervisor may since have been SIGKILLed, is found orphaned,
    /// and stopped, by it); one this wtenv cannot read is skipped with a
    /// warning ([`Unreadable`]; `warning: ignoring ...`, with its hint,
    /// as every message of one): for what looks at every worktree's
    /// (`validate --fix`). A worktree's own are said by what acts on it
    /// ([`StateDir::unreadable_in`]).
    pub fn records(&self) -> Vec<Record> {
        let (records, unreadable) = self.scan();
        for u in unreadable {
            crate::report::warn_hinted(
                &format!("ignoring {}", u.said()),
                &Unreadable::hint(std::slice::from_ref(&u)),
            );
        }
        records
    }

    /// Every record file, in unit order: the records this wtenv reads,
    /// and those it cannot ([`Unreadable`]). The one place that tells
    /// them apart. One whose unit is not a name wtenv makes or not its
    /// file's name (`<unit>.json`) is neither, skipped with a warning: the
    /// unit names files here (the record, a plist) and is passed to the
    /// manager, so `../../x` would have `down` delete `x.json` outside the
    /// state directory.
    fn scan(&self) -> (Vec<Record>, Vec<Unreadable>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (vec![], vec![]);
        };
        let mut records = Vec::new();
        let mut unreadable = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            match read_record(&e.path(), stem) {
                Ok(None) => {}
                Ok(Some(record)) if record.unit != stem || !is_unit_name(&record.unit) => {
                    tracing::warn!(
                        "ignoring {}: its unit {} is not a name wtenv makes for it \
                         (wtenv-..., named as the file); wtenv acts on nothing it names: \
                         stop what it started yourself, then remove it by hand \
                         (rm {})",
                        printable_path(&e.path()),
                        printable(&format!("{:?}", record.unit)),
                        crate::shell::quote_in_message(e.path()),
                    );
                }
                Ok(Some(record)) => {
                    records.push(super::readiness::with_group(&self.registry, record))
                }
                Err(u) => unreadable.push(u),
            }
        }
        records.sort_by(|a: &Record, b| a.unit.cmp(&b.unit));
        unreadable.sort_by(|a: &Unreadable, b| a.unit.cmp(&b.unit));
        (records, unreadable)
    }

    /// The record files this wtenv cannot read ([`Unreadable`]) of the
    /// worktree whose unit names `naming` gives, of `services` (all when
    /// empty): by the file's name, the one thing of such a file wtenv
    /// trusts, and the name a unit it started there would be given (its
    /// record's file). A unit started before the worktree moved has
    /// another name, and is not found here.
    pub fn unreadable_in(&self, naming: &Naming, services: &[String]) -> Vec<Unreadable> {
        self.scan()
            .1
            .into_iter()
            .filter_map(|mut u| {
                let unit = u.unit.strip_suffix(".service").unwrap_or(&u.unit);
                // The service is the one the name gives: what the file
                // says is not to be trusted (damaged, it says none).
                let service = match services {
                    [] => naming.service_of(unit),
                    named => named.iter().find(|s| naming.unit(s) == unit).cloned(),
                };
                u.service = Some(service?);
                Some(u)
            })
            .collect()
    }

    /// Records of `scope`'s worktree, of `services` (all when empty).
    pub fn records_of(&self, scope: &Scope, services: &[String]) -> Vec<Record> {
        self.records_in(&Owner::of(&scope.worktree))
            .into_iter()
            .filter(|r| services.is_empty() || services.contains(&r.service))
            .collect()
    }

    /// Records of the worktree `owner` ([`Record::belongs_to`]). Those
    /// this wtenv cannot read are not warned of here: the commands that
    /// act on the worktree say its own ([`StateDir::unreadable_in`]).
    pub fn records_in(&self, owner: &Owner) -> Vec<Record> {
        self.scan()
            .0
            .into_iter()
            .filter(|r| r.belongs_to(owner))
            .collect()
    }

    pub(super) fn write(&self, record: &Record) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| {
            Error::invalid(format!("cannot keep the record of {}: {e}", record.unit))
        })?;
        bytes.push(b'\n');
        write_file(&self.dir, &format!("{}.json", record.unit), &bytes)
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
        let same = read_file(&path, RECORD_CAP)
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            .is_some_and(|r| {
                (r.pid, r.start_time, r.started) == (record.pid, record.start_time, record.started)
            });
        if same {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A record file (`<unit>.json`) this wtenv cannot read: a newer wtenv's
/// (a field this one does not know, a newer `version`), or damaged. It is
/// never deleted, overwritten or renamed by this wtenv (the file of the
/// unit it would start under that name), and it blocks acting on its
/// unit: `up -d` refuses to start its service, `down` and `remove
/// --force` leave it, `status` shows it (docs/ARCHITECTURE.md,
/// "Versions").
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub path: PathBuf,
    /// The file's name without `.json`: the unit it is the record of.
    pub unit: String,
    /// The service its file's name gives, for a worktree's
    /// ([`StateDir::unreadable_in`]); elsewhere the `service` it names,
    /// when it is JSON that names one.
    pub service: Option<String>,
    /// Why it cannot be read, its likely cause first.
    pub why: String,
    /// A newer wtenv's (a newer `version`, a field this one does not
    /// know), not damaged (not JSON, a field missing, a wrong value, a
    /// file that cannot be read): the hint differs.
    pub newer: bool,
}

impl Unreadable {
    /// `web (<unit>): its record <file> cannot be read: <why>`.
    pub fn said(&self) -> String {
        format!(
            "{} ({}): its record {} cannot be read: {}",
            printable(self.service.as_deref().unwrap_or("?")),
            printable(&self.unit),
            printable_path(&self.path),
            self.why
        )
    }

    /// What to do with `files`: a newer wtenv's, stop what they name
    /// with the wtenv that started it, or remove them when nothing of it
    /// runs; a damaged one, remove it when nothing of it runs.
    pub fn hint(files: &[Unreadable]) -> String {
        let rm = |newer: bool| {
            let paths: Vec<String> = files
                .iter()
                .filter(|u| u.newer == newer)
                .map(|u| crate::shell::quote_in_message(&u.path))
                .collect();
            (!paths.is_empty()).then(|| paths.join(" "))
        };
        let newer = rm(true).map(|paths| {
            format!(
                "stop it with the wtenv that started it (a newer one: 'wtenv down'); if nothing of it runs, remove the record: rm {paths}"
            )
        });
        let damaged = rm(false).map(|paths| match newer {
            Some(_) => format!("a damaged one: remove it if nothing of it runs (rm {paths})"),
            None => format!("remove it if nothing of it runs (rm {paths})"),
        });
        [newer, damaged]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The record at `path` (a file named `<stem>.json`), or why this wtenv
/// cannot read it ([`Unreadable`]); `None` for what is no file (a link, a
/// directory, a FIFO: no wtenv writes one), or gone.
fn read_record(path: &Path, stem: &str) -> std::result::Result<Option<Record>, Unreadable> {
    let unreadable = |service: Option<String>, why: String| Unreadable {
        path: path.to_owned(),
        unit: stem.to_owned(),
        service,
        why,
        newer: false,
    };
    let newer = |service: Option<String>, why: String| Unreadable {
        newer: true,
        ..unreadable(service, why)
    };
    let no_file = |e: &OpenError| {
        matches!(
            e,
            OpenError::Refused(Refusal::Symlink | Refusal::NotRegular(_))
        )
    };
    let file = match files::open_read(path, false) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(e) if no_file(&e) => return Ok(None),
        Err(e) => return Err(unreadable(None, e.to_string())),
    };
    let meta = match files::require_regular(&file) {
        Ok(meta) => meta,
        Err(e) if no_file(&e) => return Ok(None),
        Err(e) => return Err(unreadable(None, e.to_string())),
    };
    let bytes = files::read_capped(&file, RECORD_CAP, meta.len())
        .map_err(|e| unreadable(None, e.to_string()))?;
    let parsed = serde_json::from_slice::<Record>(&bytes);
    let value = serde_json::from_slice::<serde_json::Value>(&bytes);
    let service = value
        .as_ref()
        .ok()
        .and_then(|v| Some(v.get("service")?.as_str()?.to_owned()));
    // A newer version first: its fields may be any.
    let version = value.as_ref().ok().and_then(|v| v.get("version")?.as_u64());
    match version {
        Some(v) if v > u64::from(RECORD_VERSION) => {
            return Err(newer(
                service,
                format!(
                    "it was written by a newer wtenv (record version {v}; this wtenv knows version {RECORD_VERSION})"
                ),
            ));
        }
        Some(v) if v == u64::from(RECORD_VERSION) => {}
        _ if value.is_ok() => {
            return Err(unreadable(
                service,
                format!(
                    "it has no \"version\": {RECORD_VERSION} (not a record of wtenv's, or from an unknown version)"
                ),
            ));
        }
        _ => {}
    }
    parsed.map(Some).map_err(|e| {
        match (&value, crate::versions::newer_field::<Record>(&bytes, &e)) {
            (_, Some(why)) => newer(service, why),
            (Err(e), _) => unreadable(service, format!("it is not valid JSON ({e})")),
            (Ok(_), _) => unreadable(
                service,
                format!(
                    "it does not match the record schema ({})",
                    printable(&e.to_string())
                ),
            ),
        }
    })
}

/// A record is a few hundred bytes; a bigger file is none of wtenv's.
const RECORD_CAP: u64 = 64 * 1024;

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

/// A file of the background directory that cannot be used (`what`: the
/// worktree's lock, a service's log), refused as the registry refuses
/// its own (exit 2): what is there named (a link, a FIFO, a directory,
/// another's file, one with other hard links), with the command that
/// removes it. Any other failure to open it is said as such, a full disk
/// or a read-only file system with what mends it.
pub(super) fn unusable(what: &'static str, path: &Path, e: OpenError) -> Error {
    match e.at(path) {
        OpenError::Io(e) => {
            files::replace_error(format!("could not open {what} {}", printable_path(path)), e)
        }
        OpenError::Refused(r) => Error::RegistryUnusable {
            what,
            path: path.to_path_buf(),
            reason: r.to_string(),
            hint: files::planted_hint(path),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as `up -d` writes it, with `extra` over it.
    fn bytes(extra: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec_pretty(&crate::background::record_json(extra)).unwrap()
    }

    fn why(bytes: &[u8]) -> (Option<String>, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtenv-a_1-b-web.json");
        std::fs::write(&path, bytes).unwrap();
        let u = read_record(&path, "wtenv-a_1-b-web").unwrap_err();
        assert_eq!((u.path, u.unit.as_str()), (path, "wtenv-a_1-b-web"));
        (u.service, u.why)
    }

    /// Why a record cannot be read, its likely cause first: a newer
    /// wtenv's version, or a field this one does not know; else damage.
    #[test]
    fn an_unreadable_record_says_why_a_newer_wtenv_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.json");
        std::fs::write(&path, bytes(serde_json::json!({}))).unwrap();
        assert!(read_record(&path, "u").unwrap().is_some());
        // No file: skipped, as no wtenv writes one.
        let planted = dir.path().join("d.json");
        std::fs::create_dir(&planted).unwrap();
        assert!(read_record(&planted, "d").unwrap().is_none());
        let web = Some("web".to_owned());
        let newer = why(&bytes(serde_json::json!({"version": 2, "ports": "x"})));
        let said = "it was written by a newer wtenv (record version 2; this wtenv knows version 1)";
        assert_eq!(newer, (web.clone(), said.into()));
        let (service, field) = why(&bytes(serde_json::json!({"lease": 7})));
        assert_eq!(service, web);
        assert!(
            field.starts_with("it was probably written by a newer wtenv: line ")
                && field.ends_with("has a field this wtenv does not know, `lease`"),
            "{field}"
        );
        let (_, wrong) = why(&bytes(serde_json::json!({"ports": "x", "lease": 7})));
        assert!(
            wrong.starts_with("it does not match the record schema"),
            "{wrong}"
        );
        let (service, json) = why(b"{\"version\": 1,");
        assert_eq!(service, None);
        assert!(json.starts_with("it is not valid JSON"), "{json}");
        let (_, version) = why(b"{\"service\": \"web\"}");
        assert!(version.starts_with("it has no \"version\": 1"), "{version}");
    }

    /// A newer wtenv's record is hinted as one; a damaged one (not JSON,
    /// a field missing, a wrong value) as what it is.
    #[test]
    fn only_a_newer_wtenvs_record_is_hinted_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, bytes).unwrap();
            read_record(&path, name).unwrap_err()
        };
        let newer = [
            read("v", &bytes(serde_json::json!({"version": 2}))),
            read("f", &bytes(serde_json::json!({"lease": 7}))),
        ];
        let damaged = [
            read("j", b"garbage\n"),
            read("e", b""),
            read("o", b"{}"),
            read("s", &bytes(serde_json::json!({"ports": "x"}))),
            read("m", b"{\"version\": 1, \"service\": \"web\"}"),
        ];
        assert!(newer.iter().all(|u| u.newer), "{newer:?}");
        assert!(damaged.iter().all(|u| !u.newer), "{damaged:?}");
        let rm = |u: &Unreadable| crate::shell::quote_in_message(&u.path);
        assert_eq!(
            Unreadable::hint(&newer[..1]),
            format!(
                "stop it with the wtenv that started it (a newer one: 'wtenv down'); if nothing of it runs, remove the record: rm {}",
                rm(&newer[0])
            )
        );
        assert_eq!(
            Unreadable::hint(&damaged[..2]),
            format!(
                "remove it if nothing of it runs (rm {} {})",
                rm(&damaged[0]),
                rm(&damaged[1])
            )
        );
        let both = Unreadable::hint(&[newer[1].clone(), damaged[0].clone()]);
        assert!(
            both.ends_with(&format!(
                "rm {}; a damaged one: remove it if nothing of it runs (rm {})",
                rm(&newer[1]),
                rm(&damaged[0])
            )),
            "{both}"
        );
    }
}
