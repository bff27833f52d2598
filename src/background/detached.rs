//! The wtenv back end, where no service manager answers (a container, a
//! machine without a user session): each service is a detached
//! `wtenv run --setsid --service S --log FILE`, in a session of its own
//! with stdin from `/dev/null`, its output in a size-limited log file under
//! the state directory. That `run` is the supervisor: `down` sends it
//! SIGTERM, and it stops its service's process group (SIGKILL after its
//! grace) and releases the ports, exactly as in the foreground.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Launch, Live, Record, unix_now};
use crate::error::{Error, Result};
use crate::process::ProcessId;

/// A supervisor this process started and has not left yet: while `up`
/// waits for readiness it is our child, and its early exit is seen here
/// (not as a zombie that looks alive).
pub struct Child {
    inner: std::process::Child,
    pub pid: u32,
}

impl Child {
    /// Lets the supervisor go on, once its record is written: it waits
    /// for this byte on its stdin before anything else (`run
    /// --await-start`). An `up -d` killed before this closes that stdin
    /// without it, and the supervisor ends with nothing started: never a
    /// unit that no record names, which no command would find.
    pub fn go(&mut self) {
        use std::io::Write;
        if let Some(mut stdin) = self.inner.stdin.take() {
            // One that ended already is seen ended by the readiness wait.
            let _ = stdin.write_all(b"\n");
        }
    }

    /// How it ended, if it did.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.inner.try_wait().ok()??;
        Some(crate::supervise::services::describe(status))
    }
}

pub fn start(launch: &Launch) -> Result<Child> {
    let (exe, args) = launch
        .argv
        .split_first()
        .expect("a launch has a command line");
    let mut command = Command::new(exe);
    command
        .args(args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The supervisor passes its signal state on to the service, as `run`
    // does: started by posix_spawn, it had glibc's signals 32 and 33
    // ignored, and so had every service of the wtenv back end.
    crate::supervise::spawn::start_clean(&mut command);
    let inner = command
        .spawn()
        .map_err(|e| Error::io(format!("could not start {}", launch.unit), e))?;
    let pid = inner.id();
    Ok(Child { inner, pid })
}

fn process(record: &Record) -> ProcessId {
    ProcessId {
        pid: record.pid,
        start_time: record.start_time,
    }
}

/// Running while the supervisor lives (same pid, same start time);
/// `orphaned` while its service's group outlives a killed supervisor.
pub fn query(record: &Record) -> Live {
    let alive = record.pid != 0 && process(record).is_alive();
    let orphans = if alive { vec![] } else { orphans(record) };
    Live {
        state: match (alive, orphans.is_empty()) {
            (true, _) => "running",
            (false, false) => "orphaned",
            (false, true) => "inactive",
        }
        .into(),
        pid: if alive {
            Some(record.pid)
        } else {
            orphans.first().copied()
        },
        restarts: Some(0),
        uptime: (alive || !orphans.is_empty())
            .then(|| Duration::from_secs(unix_now().saturating_sub(record.started))),
    }
}

/// The live members of the service's group that outlived its killed
/// supervisor, each proven of the group it started
/// ([`crate::process::orphans`]).
pub(super) fn orphans(record: &Record) -> Vec<u32> {
    match record.process_group() {
        Some(group) => crate::process::orphans(group),
        None => vec![],
    }
}

/// Writes wtenv's line `said` at the end of `record`'s log, as its dead
/// supervisor would have ([`super::logfile::note`]). The supervisor's
/// size limit is not recorded: a line appended never rotates the log (the
/// next supervisor does). A log that cannot be opened is left alone:
/// stderr said it.
fn note_in_log(record: &Record, said: &str) {
    match super::logfile::RotatingLog::open(&record.log, u64::MAX) {
        Ok(log) => super::logfile::note(&std::sync::Mutex::new(log), said),
        Err(e) => tracing::debug!("{}: {e}", crate::process::printable(&record.unit)),
    }
}

/// SIGTERM to each live supervisor: it stops its service and releases.
/// A service whose supervisor was killed is stopped here: SIGTERM to each
/// proven orphan, SIGKILL after `grace`, said as its supervisor would
/// have said it (`wtenv: service web did not stop within 30s: killed 1
/// process, ...`), on stderr and in the service's log, which `logs`
/// shows, as the supervisor's own SIGKILL is (`run --log`).
pub fn stop(records: &[&Record], grace: Duration) {
    use nix::sys::signal::{Signal, kill};
    for r in records {
        if r.pid != 0 && process(r).is_alive() {
            let _ = kill(nix::unistd::Pid::from_raw(r.pid as i32), Signal::SIGTERM);
        } else if let Some(group) = r.process_group() {
            let names = [format!("service {}", r.service)];
            let left = crate::supervise::orphans::stop(group, grace, Some(&names), &|said| {
                note_in_log(r, said)
            });
            if !left.is_empty() {
                tracing::warn!(
                    "{}: {left:?} still run after SIGKILL",
                    crate::process::printable(&r.unit)
                );
            }
        }
    }
}
