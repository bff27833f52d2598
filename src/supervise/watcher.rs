//! The watcher of an `env --hold PID` holder (README "Use with Nix"): a
//! detached `wtenv __watch PID START` that waits for that process to end
//! and then does what `release --hold PID` does, for that very process
//! (pid and start time: its pid may be another process's by then).
//!
//! Why: the EXIT trap of a `nix develop` shell is the release on a normal
//! exit, but many ends never run it: `nix develop --command CMD` (its
//! rcfile `exec`s the command, and bash drops EXIT traps on exec), `exec
//! zsh`, a killed shell, a shellHook that sets its own EXIT trap after
//! ours. The holds would stay until some allocating command swept them.
//!
//! - One watcher per holder (pid and start time): it holds an exclusive
//!   `flock` on `<state>/watch/<pid>-<start>.lock`, a file it makes and
//!   removes (while it still holds the lock) once it is done. `env
//!   --hold` starts one only when that file is missing or not locked
//!   ([`ensure`]): with a watcher running, its cost is an open and a
//!   `try_lock`. A watcher that finds the lock taken (another one won,
//!   or an `env --hold` was looking at that instant, and then starts one
//!   itself) exits at once.
//! - Detached: its own session (a terminal's hang-up, job control and a
//!   supervising `wtenv run`, which sweeps the strays of its session,
//!   leave it alone), its standard descriptors on `/dev/null` (it never
//!   keeps a caller's pipe open: `$(...)`, direnv and nix read theirs to
//!   the end), `/` as its directory (it keeps no worktree busy).
//! - The wait: on Linux a pidfd, polled (the process's end wakes it; no
//!   timer); where there is none (macOS, or a kernel without
//!   `pidfd_open`), `kill(pid, 0)` once a second, with the start time
//!   compared on Linux each time and on macOS every
//!   [`IDENTITY_EVERY`] seconds (there it costs a `ps`).
//! - Stopped by `release --hold PID` ([`stop`]): the holds are released,
//!   nothing is left to watch for (the holder may live on for ever, pid
//!   1). The watcher writes its pid into its lock file once it holds the
//!   lock; `release --hold` reads it, proves that process is the watcher
//!   of that holder (its command line ends `__watch PID START`) and sends
//!   it SIGTERM. SIGTERM, SIGINT and SIGHUP end a watcher (a self-pipe,
//!   polled beside the pidfd, or read with the one-second wait), which
//!   removes its lock file while it still holds the lock and exits 0.
//! - A watcher SIGKILLed cannot remove its lock file: the next watcher to
//!   start, and `validate --fix`, remove those of holders that are gone
//!   and that no process has locked ([`remove_stale`]); an allocating
//!   command, those of the holds its sweep released ([`remove_stale_of`]).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::files;
use crate::process::{ProcessId, printable_path};
use crate::registry::Registry;

use super::signal::{Event, Listener, Signal};

/// The signals that end a watcher, its lock file removed.
const ENDING: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The watchers' directory, beside the registry.
const DIR: &str = "watch";

/// The hidden command a watcher runs (`wtenv __watch PID START`).
pub const COMMAND: &str = "__watch";

/// Where `ps` answers for the start time (macOS), how many seconds of
/// `kill(pid, 0)` go between two comparisons of it: a pid reused within
/// that time is found that much later (the sweep would release its holds
/// anyway), and a sleeping shell's watcher starts no `ps` every second.
const IDENTITY_EVERY: u32 = 30;

/// The watchers' directory, `<state>/watch`.
pub fn dir(registry: &Registry) -> PathBuf {
    registry.sibling(DIR)
}

/// The lock file of `holder`'s watcher.
fn lock_path(registry: &Registry, holder: ProcessId) -> PathBuf {
    dir(registry).join(lock_name(holder))
}

/// `<pid>-<start>.lock`: the name of `holder`'s watcher's lock file.
fn lock_name(holder: ProcessId) -> String {
    format!("{}-{}.lock", holder.pid, holder.start_time)
}

/// The holder whose watcher's lock file is named `name` ([`lock_name`]),
/// if it is one.
fn holder_of(name: &str) -> Option<ProcessId> {
    let (pid, start) = name.strip_suffix(".lock")?.split_once('-')?;
    let holder = ProcessId {
        pid: pid.parse().ok()?,
        start_time: start.parse().ok()?,
    };
    (lock_name(holder) == name).then_some(holder)
}

/// Whether `dir`'s metadata is a directory of ours: a link there would
/// place the lock files elsewhere.
fn is_own_dir(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw()
}

/// Whether `path` still names the open `file` (not removed, nor replaced).
fn names(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Removes the lock files killed watchers left (SIGKILL ends a watcher
/// before it can remove its own; nothing else would, and they pile up):
/// each whose holder is gone and that no process has locked
/// ([`remove_if_stale`]). Returns how many it removed. Run by a watcher
/// once it holds its lock (`env --hold` started it), off its caller's
/// path, and by `validate --fix`; never by `env`, `allocate` or `run`,
/// which remove only those of the holds their sweep released
/// ([`remove_stale_of`]).
pub fn remove_stale(registry: &Registry) -> usize {
    let Some(dir) = own_dir(registry) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(holder_of))
        .filter(|&holder| remove_if_stale(&dir, holder))
        .count()
}

/// [`remove_stale`] for the lock files of `holders` alone: those of the
/// holds an allocating command's sweep released as stale (their holders
/// gone, a watcher killed too), so they do not wait for the next
/// watcher or `validate --fix`. A holder with no lock file (a `run`, a
/// hold whose watcher ended well) costs a failed open. Returns how many
/// it removed; none, and no system call, for no holder.
pub fn remove_stale_of(registry: &Registry, holders: &[ProcessId]) -> usize {
    if holders.is_empty() {
        return 0;
    }
    let Some(dir) = own_dir(registry) else {
        return 0;
    };
    holders
        .iter()
        .filter(|&&holder| remove_if_stale(&dir, holder))
        .count()
}

/// The watchers' directory, when it is there and a directory of ours
/// ([`is_own_dir`]): nothing is removed anywhere else.
fn own_dir(registry: &Registry) -> Option<PathBuf> {
    let dir = dir(registry);
    std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| is_own_dir(&m))
        .then_some(dir)
}

/// Removes the lock file of `holder`'s watcher in `dir` when `holder` is
/// gone and no process has it locked: whether it did. It is locked
/// before it is removed, as a watcher removes its own: a watcher that
/// opened it meanwhile finds it gone and takes another ([`take_lock`]).
/// A locked one (a watcher runs there) is never removed, nor one of a
/// holder that lives (its next watcher takes it again), nor anything
/// but a regular file of ours ([`files::open_existing_lock`]).
fn remove_if_stale(dir: &Path, holder: ProcessId) -> bool {
    if holder.is_alive() {
        return false;
    }
    let path = dir.join(lock_name(holder));
    let Ok(Some(file)) = files::open_existing_lock(&path, 0o400) else {
        return false;
    };
    let removed =
        file.try_lock().is_ok() && names(&file, &path) && std::fs::remove_file(&path).is_ok();
    if removed {
        tracing::info!("removed {}: its watcher was killed", path.display());
    }
    removed
}

/// Whether a watcher of `holder` runs: its lock file is there and
/// locked. A file that cannot be looked at counts as none: the watcher
/// started then says nothing and exits, having found what refused it.
fn running(path: &Path) -> bool {
    match files::open_existing_lock(path, 0o400) {
        Ok(Some(file)) => matches!(
            file.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        ),
        _ => false,
    }
}

/// Starts the watcher of `holder` unless one runs: called by `env --hold`
/// once it recorded the hold. Best effort: a watcher that cannot be
/// started is said, and the holds are then released by the shell's EXIT
/// trap or swept by the next allocating command, as before watchers.
pub fn ensure(registry: &Registry, holder: ProcessId) {
    if running(&lock_path(registry, holder)) {
        return;
    }
    match start(registry, holder) {
        Ok(watcher) => tracing::info!("started the watcher of pid {}: pid {watcher}", holder.pid),
        Err(e) => crate::report::warn(&format!(
            "could not start the watcher of pid {}, which releases its holds once it is gone: {e}",
            holder.pid
        )),
    }
}

/// Starts the watcher of `holder`: its pid.
fn start(registry: &Registry, holder: ProcessId) -> Result<u32> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("could not find wtenv's own executable", e))?;
    // It runs in `/`: a registry named relative to here is named whole.
    let registry_path = std::path::absolute(registry.path()).map_err(|e| {
        Error::io(
            format!("could not resolve {}", printable_path(registry.path())),
            e,
        )
    })?;
    let child = Command::new(exe)
        .arg("--registry")
        .arg(registry_path)
        .args([
            COMMAND,
            &holder.pid.to_string(),
            &holder.start_time.to_string(),
        ])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("could not start it", e))?;
    // Not waited for: once this process exits, the watcher is adopted.
    Ok(child.id())
}

/// The watcher's life: leave the caller's session, take the lock (or
/// leave it to the watcher that has it), write its pid there, wait for
/// `holder` to end, release its holds, remove the lock file. Ended by a
/// signal of [`ENDING`] instead (`release --hold`: [`stop`]), it removes
/// the lock file and releases nothing.
pub fn run(registry: &Registry, holder: ProcessId) -> Result<()> {
    // Fails only for a group leader (which `env --hold`'s spawn is not);
    // the descriptors are closed all the same.
    let _ = super::detach();
    // Before the pid is written: `release --hold` signals no watcher that
    // would not handle it. Without handlers it watches as before.
    let mut signals = Listener::of(&[], &ENDING).ok();
    let Some((file, path)) = take_lock(registry, holder)? else {
        return Ok(());
    };
    let me = format!("{}\n", std::process::id());
    if let Err(e) = file
        .set_len(0)
        .and_then(|()| file.write_all_at(me.as_bytes(), 0))
    {
        tracing::info!("could not write the watcher's pid: {e}");
    }
    remove_stale(registry);
    let released = match wait_for_end(holder, signals.as_mut()) {
        End::Ended => Some(super::hold::release_holder(registry, holder)),
        End::Signalled => None,
    };
    // Removed while locked: whoever opened it before sees it locked, and
    // whoever opens the path after finds none.
    let _ = std::fs::remove_file(&path);
    drop(file);
    let Some(released) = released else {
        return Ok(());
    };
    let (_, released) = released?;
    for a in released {
        tracing::info!(port = a.port, service = %a.service, "released");
    }
    Ok(())
}

/// Stops the watcher of the live process `pid`, whose holds `release
/// --hold PID` released: the one whose lock file names its pid, once
/// that process is proven to be it (its command line ends `__watch PID
/// START`); unsure (no lock file, not locked, no pid, another process), it
/// is left to end with its holder. Not waited for.
pub fn stop(registry: &Registry, pid: u32) {
    // A holder gone: its watcher ends on its own.
    let Some(holder) = ProcessId::of(pid) else {
        return;
    };
    let path = lock_path(registry, holder);
    let Ok(Some(file)) = files::open_existing_lock(&path, 0o400) else {
        return;
    };
    if !matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    ) {
        return;
    }
    let mut text = String::new();
    let _ = (&file).take(32).read_to_string(&mut text);
    let Ok(watcher) = text.trim().parse::<u32>() else {
        return;
    };
    let theirs = format!(" {COMMAND} {} {}", holder.pid, holder.start_time);
    if !crate::process::command(watcher).is_some_and(|c| c.ends_with(&theirs)) {
        return;
    }
    let to = nix::unistd::Pid::from_raw(watcher as i32);
    match nix::sys::signal::kill(to, Signal::SIGTERM) {
        Ok(()) => tracing::info!("stopped the watcher of pid {pid}: pid {watcher}"),
        Err(e) => tracing::info!("could not stop the watcher of pid {pid}: {e}"),
    }
}

/// How a watcher's wait ended.
enum End {
    /// The holder has ended.
    Ended,
    /// A signal of [`ENDING`] came.
    Signalled,
}

/// Whether `signals` received one of [`ENDING`] (drained).
fn ending(events: Vec<Event>) -> bool {
    events
        .into_iter()
        .any(|e| matches!(e, Event::Signal(s) if ENDING.contains(&s)))
}

/// The lock of `holder`'s watcher, made in `<state>/watch`, with its
/// path; `None` when another process has it (a watcher, or an `env
/// --hold` looking, which then starts another). A file removed between
/// its open and its lock (its watcher was done, or [`remove_stale`]
/// took it for a killed watcher's: either way `holder` has ended) is
/// made again and locked: the holds are then released here, if they are
/// not yet. A few tries, then `None`.
fn take_lock(registry: &Registry, holder: ProcessId) -> Result<Option<(File, PathBuf)>> {
    let dir = registry.ensure_state_dir()?.join(DIR);
    let could_not = |what: &str, e: std::io::Error| {
        Error::io(format!("could not {what} {}", printable_path(&dir)), e)
    };
    files::create_private_dir(&dir, false).map_err(|e| could_not("create", e))?;
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| could_not("read", e))?;
    if !is_own_dir(&meta) {
        return Err(could_not(
            "use",
            std::io::Error::other("it is not a directory of ours"),
        ));
    }
    let path = lock_path(registry, holder);
    for _ in 0..3 {
        let file = files::open_lock(&path).map_err(|e| {
            Error::io(
                format!("could not open {}", printable_path(&path)),
                std::io::Error::other(e.to_string()),
            )
        })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(
                    format!("could not lock {}", printable_path(&path)),
                    e,
                ));
            }
        }
        if names(&file, &path) {
            return Ok(Some((file, path)));
        }
    }
    Ok(None)
}

/// Returns once `holder` has ended (at once when it has already), or a
/// signal of [`ENDING`] came (`signals`).
fn wait_for_end(holder: ProcessId, mut signals: Option<&mut Listener>) -> End {
    #[cfg(target_os = "linux")]
    if let Some(end) = linux::wait(holder, signals.as_deref_mut()) {
        return end;
    }
    let pid = nix::unistd::Pid::from_raw(holder.pid as i32);
    let mut seconds = 0u32;
    loop {
        // EPERM: alive, another user's (a pid reused by one).
        if nix::sys::signal::kill(pid, None) == Err(nix::errno::Errno::ESRCH) {
            return End::Ended;
        }
        let compare = cfg!(target_os = "linux") || seconds.is_multiple_of(IDENTITY_EVERY);
        if compare && !holder.is_alive() {
            return End::Ended;
        }
        let second = Duration::from_secs(1);
        match signals.as_deref_mut() {
            Some(signals) => {
                if ending(signals.wait(second)) {
                    return End::Signalled;
                }
            }
            None => std::thread::sleep(second),
        }
        seconds = seconds.wrapping_add(1);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use rustix::event::{PollFd, PollFlags, poll};
    use rustix::io::Errno;
    use rustix::process::{Pid, PidfdFlags, pidfd_open};

    use super::{End, Listener, ending};
    use crate::process::ProcessId;

    /// Waits on a pidfd of `holder`, beside the self-pipe of `signals`:
    /// how it ended, `None` when no pidfd can be had or polled (the
    /// caller then polls).
    pub fn wait(holder: ProcessId, mut signals: Option<&mut Listener>) -> Option<End> {
        let Some(pid) = Pid::from_raw(holder.pid as i32) else {
            return Some(End::Ended);
        };
        let fd = match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(Errno::SRCH) => return Some(End::Ended),
            Err(_) => return None,
        };
        // Checked after the open: a pid reused before it names another
        // process, whose start time differs; one reused after it cannot
        // be, the pidfd naming the process that had it.
        if !holder.is_alive() {
            return Some(End::Ended);
        }
        loop {
            let (ended, signalled) = {
                let pipe = signals.as_deref().map(Listener::fd);
                let mut fds = vec![PollFd::new(&fd, PollFlags::IN)];
                if let Some(pipe) = &pipe {
                    fds.push(PollFd::new(pipe, PollFlags::IN));
                }
                match poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(Errno::INTR) => continue,
                    Err(_) => return None,
                }
                let ready = |f: &PollFd| !f.revents().is_empty();
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            if ended {
                return Some(End::Ended);
            }
            if signalled && signals.as_deref_mut().is_some_and(|s| ending(s.pending())) {
                return Some(End::Signalled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the names [`lock_name`] makes are a holder's: a file named
    /// otherwise in the directory is left alone.
    #[test]
    fn a_lock_files_name_is_read_back_as_its_holder_and_no_other_is() {
        let holder = ProcessId {
            pid: 4242,
            start_time: 5133241558091585346,
        };
        assert_eq!(holder_of(&lock_name(holder)), Some(holder));
        for name in [
            "+4242-7.lock",
            "4242-07.lock",
            "4242-7.lock.tmp",
            "4242.lock",
            "x-7.lock",
        ] {
            assert_eq!(holder_of(name), None, "{name}");
        }
    }
}
