//! What a running `up` tells `list` and `ports`: each service's health and
//! restart count, in `up/<pid>.json` beside the registry.
//!
//! Why a file of its own and not the registry: a state change (ready,
//! unhealthy, restarting) would otherwise be a locked registry write, and
//! every reader (`env` on each `cd`) would parse fields it never uses.
//! `up` writes the file (temp file, rename) only when a state changes and
//! removes it when it ends; a reader trusts it only for a live holder of
//! the registry with the same pid and start time, so a file left by a
//! SIGKILLed `up` is never shown; the next `up`, or `validate --fix`,
//! removes it ([`remove_stale`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files;
use crate::process::{ProcessId, printable_path};

/// The file's format version.
const VERSION: u32 = 1;
/// A status file is small: one line per service.
const MAX_SIZE: u64 = 1 << 20;

/// One service of a running `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `waiting`, `starting`, `ready`, `unhealthy`, `restarting`, `ended`.
    pub health: String,
    pub restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct File {
    version: u32,
    pid: u32,
    start_time: u64,
    services: BTreeMap<String, ServiceStatus>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("up")
}

fn path(state_dir: &Path, pid: u32) -> PathBuf {
    dir(state_dir).join(format!("{pid}.json"))
}

impl ServiceStatus {
    /// `ready`, `unhealthy, 2 restarts`.
    pub fn text(&self) -> String {
        match self.restarts {
            0 => self.health.clone(),
            1 => format!("{}, 1 restart", self.health),
            n => format!("{}, {n} restarts", self.health),
        }
    }
}

/// A port's state (`listening (pid 12 node)`) and, while `up` runs its
/// service, the service's health: `listening (...); ready, 1 restart`.
pub fn with_state(state: String, health: Option<&ServiceStatus>) -> String {
    match health {
        Some(h) => format!("{state}; {}", crate::process::printable(&h.text())),
        None => state,
    }
}

/// The health `list` and `ports` show for allocations: read from the
/// status file of each allocation's live holder, once per holder.
pub struct Lookup {
    state_dir: Option<PathBuf>,
    seen: BTreeMap<(u32, u64), Option<BTreeMap<String, ServiceStatus>>>,
}

impl Lookup {
    pub fn new(registry: &crate::registry::Registry) -> Lookup {
        Lookup {
            state_dir: registry.path().parent().map(Path::to_path_buf),
            seen: BTreeMap::new(),
        }
    }

    /// The health of `a`'s service in the `up` that holds it, if one does.
    pub fn of(&mut self, a: &crate::registry::Allocation) -> Option<ServiceStatus> {
        let dir = self.state_dir.as_ref()?;
        for h in &a.holders {
            let id = ProcessId {
                pid: h.pid,
                start_time: h.start_time,
            };
            let found = self
                .seen
                .entry((id.pid, id.start_time))
                .or_insert_with(|| read(dir, id).filter(|_| id.is_alive()));
            if let Some(s) = found.as_ref().and_then(|m| m.get(&a.service)) {
                return Some(s.clone());
            }
        }
        None
    }
}

/// The status of the `up` that is `holder`, if it wrote one: a regular
/// file, read without following a link, up to a cap.
pub fn read(state_dir: &Path, holder: ProcessId) -> Option<BTreeMap<String, ServiceStatus>> {
    let file = files::open_read(&path(state_dir, holder.pid), false).ok()??;
    let meta = files::require_regular(&file).ok()?;
    let bytes = files::read_capped(&file, MAX_SIZE, meta.len()).ok()?;
    let f: File = serde_json::from_slice(&bytes).ok()?;
    (f.version == VERSION && f.pid == holder.pid && f.start_time == holder.start_time)
        .then_some(f.services)
}

/// Who wrote a status file: all a stale one needs to show.
#[derive(Deserialize)]
struct Writer {
    pid: u32,
    start_time: u64,
}

/// Removes the status files of `up`s that are gone (a SIGKILLed `up`
/// cannot remove its own): each `<pid>.json` (the pid as `up` writes it)
/// that is a regular file of ours, whose pid is dead, or alive with
/// another start time than the file records (the pid reused). Never
/// through a link (the directory planted as one, or an entry), and
/// anything else in the directory is left alone, as is a file of a live
/// pid that does not say whose it is. Best effort; the number removed.
pub fn remove_stale(state_dir: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let dir = dir(state_dir);
    let me = nix::unistd::geteuid().as_raw();
    let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me);
    if !ours {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|pid| name.to_str() == Some(&format!("{pid}.json")))
        else {
            continue;
        };
        let path = e.path();
        let Ok(Some(file)) = files::open_read(&path, false) else {
            continue;
        };
        let Ok(meta) = files::require_own_regular(&file) else {
            continue;
        };
        let stale = match ProcessId::of(pid) {
            None => true,
            Some(now) => files::read_capped(&file, MAX_SIZE, meta.len())
                .ok()
                .and_then(|b| serde_json::from_slice::<Writer>(&b).ok())
                .is_some_and(|w| {
                    w.pid == pid
                        && !now.is(ProcessId {
                            pid,
                            start_time: w.start_time,
                        })
                }),
        };
        if stale && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The file of this `up`; removed on drop.
pub struct StatusFile {
    state_dir: PathBuf,
    me: ProcessId,
    last: Option<BTreeMap<String, ServiceStatus>>,
}

impl StatusFile {
    /// For this process, under `state_dir`; removes the files of `up`s
    /// that are gone (see [`remove_stale`]).
    pub fn new(state_dir: &Path) -> StatusFile {
        remove_stale(state_dir);
        StatusFile {
            state_dir: state_dir.to_path_buf(),
            me: ProcessId::current(),
            last: None,
        }
    }

    /// Records `services`, if they changed. Best effort: a failure is
    /// logged, `up` goes on.
    pub fn write(&mut self, services: BTreeMap<String, ServiceStatus>) {
        if self.last.as_ref() == Some(&services) {
            return;
        }
        let f = File {
            version: VERSION,
            pid: self.me.pid,
            start_time: self.me.start_time,
            services,
        };
        if let Err(e) = self.write_file(&f) {
            tracing::warn!("could not write the status of up: {e}");
        }
        self.last = Some(f.services);
    }

    fn write_file(&self, f: &File) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = dir(&self.state_dir);
        files::create_private_dir(&dir, false)?;
        // Only a directory of ours: a link planted as `up` would redirect
        // the write.
        let meta = std::fs::symlink_metadata(&dir)?;
        if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory of ours",
                printable_path(&dir)
            )));
        }
        let name = format!("{}.json", self.me.pid);
        files::replace(&dir, &name, &serde_json::to_vec(f)?).map_err(|(what, path, e)| {
            std::io::Error::other(format!("could not {what} {}: {e}", printable_path(&path)))
        })
    }
}

impl Drop for StatusFile {
    fn drop(&mut self) {
        if self.last.is_some() {
            let _ = std::fs::remove_file(path(&self.state_dir, self.me.pid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_status_reads_back_only_for_its_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = StatusFile::new(tmp.path());
        let me = ProcessId::current();
        assert_eq!(read(tmp.path(), me), None);
        let services: BTreeMap<String, ServiceStatus> = [(
            "web".to_owned(),
            ServiceStatus {
                health: "ready".into(),
                restarts: 2,
            },
        )]
        .into();
        s.write(services.clone());
        assert_eq!(read(tmp.path(), me), Some(services));
        let reused = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert_eq!(read(tmp.path(), reused), None, "pid reused");
        drop(s);
        assert_eq!(read(tmp.path(), me), None, "removed when up ends");
    }
}
