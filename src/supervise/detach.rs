//! Leaving the caller behind: what a detached wtenv (the wtenv back end's
//! supervisor `run --setsid`, an `env --hold` holder's watcher) does first.
//!
//! A new session, so no terminal's hang-up or job control reaches it; and
//! every descriptor the caller passed down beyond 0-2 closed (its spawner
//! put 0-2 on `/dev/null`). A descriptor left open without close-on-exec
//! (nix's fd 3, a CI runner's pipe, `exec 7>file` in a shell) would
//! otherwise live as long as the detached process, and what it runs: a
//! reader of that pipe, waiting for its end, would wait for ever.

use std::io::Read;
use std::os::fd::RawFd;

/// Starts a session and closes every inherited descriptor above 2. Call
/// it first, before this process opens anything of its own: whatever is
/// open above 2 then is the caller's.
/// The descriptors are closed even when `setsid` fails (this process
/// already leads a group): a caller that goes on regardless must not keep
/// its caller's pipes.
pub fn detach() -> nix::Result<()> {
    let session = nix::unistd::setsid();
    for fd in inherited() {
        // Owned by no one here: nothing of this process was opened yet.
        let _ = nix::unistd::close(fd);
    }
    session.map(drop)
}

/// What a supervisor of the wtenv back end waits for before anything else
/// (`run --await-start`): a byte on its stdin, which the `up --detach`
/// that started it writes once it has recorded it (a unit nothing records
/// is one no command finds). `false` when stdin ends without one: that
/// `up -d` was killed in between, and this run starts nothing. Either
/// way stdin is `/dev/null` afterwards, as the service's.
pub fn await_start() -> bool {
    let mut byte = [0u8; 1];
    let go = matches!(std::io::stdin().read(&mut byte), Ok(1));
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
    }
    go
}

/// The open descriptors above 2, listed before any is closed (the
/// listing's own descriptor among them is gone by then: closing it again
/// fails harmlessly).
fn inherited() -> Vec<RawFd> {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| fd > 2)
        .collect()
}
