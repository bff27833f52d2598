//! The terminal and job control: the child's group gets wtenv's
//! controlling terminal whenever wtenv's group is that terminal's
//! foreground group, whatever stdin is (a pager fed by a pipe, a password
//! prompt read from `/dev/tty`), and wtenv takes it back afterwards (with
//! SIGTTOU blocked, so taking it back from the background cannot stop us).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::group::{Pgid, killpg};
use super::signal::Signal;

/// wtenv's controlling terminal, opened once (`/dev/tty`): the terminal
/// a child may read whatever its stdin, so the one that decides, not
/// stdin (`seq 9 | wtenv run -- less` reads its keys there).
#[derive(Clone)]
pub(super) struct Tty(Arc<OwnedFd>);

impl Tty {
    /// wtenv's controlling terminal, if it has one: one `open`, which
    /// fails at once without one (ENXIO).
    pub(super) fn open() -> Option<Tty> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        match nix::fcntl::open("/dev/tty", flags, nix::sys::stat::Mode::empty()) {
            Ok(fd) => Some(Tty(Arc::new(fd))),
            Err(e) => {
                tracing::debug!("no controlling terminal: {e}");
                None
            }
        }
    }

    /// Whether wtenv's group is the terminal's foreground group.
    pub(super) fn is_foreground(&self) -> bool {
        nix::unistd::tcgetpgrp(&*self.0).is_ok_and(|fg| fg == nix::unistd::getpgrp())
    }

    /// Whether wtenv's group is, or within `patience` becomes, the
    /// terminal's foreground group (polled: a shell's `fg` sends no signal
    /// to a job it thinks is running).
    pub(super) fn becomes_foreground(&self, patience: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if self.is_foreground() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Hands the terminal to `pgid` if wtenv's group is its foreground
    /// group.
    pub(super) fn hand_over(&self, pgid: Pgid) -> Option<TerminalGuard> {
        if !self.is_foreground() {
            return None;
        }
        let child = nix::unistd::Pid::from_raw(pgid.as_raw() as i32);
        if let Err(e) = nix::unistd::tcsetpgrp(&*self.0, child) {
            tracing::debug!("could not hand the terminal to group {pgid}: {e}");
            return None;
        }
        // The child may have read the terminal before it was its own and
        // been stopped by SIGTTIN: let it go on.
        killpg(pgid, Signal::SIGCONT);
        Some(TerminalGuard {
            ours: nix::unistd::getpgrp(),
            tty: self.clone(),
        })
    }
}

/// The terminal lent to a child's group; given back on drop.
pub struct TerminalGuard {
    ours: nix::unistd::Pid,
    tty: Tty,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        use nix::sys::signal::SigSet;
        // We are a background process now: tcsetpgrp would stop us with
        // SIGTTOU unless it is blocked (POSIX: then the call proceeds).
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let old = ttou.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        if let Err(e) = nix::unistd::tcsetpgrp(&*self.tty.0, self.ours) {
            tracing::debug!("could not take the terminal back: {e}");
        }
        if let Ok(old) = old {
            let _ = old.thread_set_mask();
        }
    }
}

/// The signal that stopped our child `pid`, if it is stopped (job
/// control). Consumes only the stop report: the exit stays for duct's
/// `try_wait`.
#[cfg(target_os = "linux")]
pub(super) fn stopped(pid: u32) -> Option<Signal> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG;
    let id = Id::Pid(nix::unistd::Pid::from_raw(pid as i32));
    match waitid(id, flags) {
        Ok(WaitStatus::Stopped(_, sig)) => Some(sig),
        _ => None,
    }
}

/// Without waitid(2) in nix here: stops are not followed.
#[cfg(not(target_os = "linux"))]
pub(super) fn stopped(_pid: u32) -> Option<Signal> {
    None
}

/// Whether stdin is a terminal: a child started in the background
/// (`wtenv run ... &`) is then meant to get the terminal once the shell
/// brings wtenv to the foreground.
pub(super) fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Stops wtenv's whole process group with SIGTSTP, as the terminal's
/// Ctrl-Z does when that group has the terminal (sudo does the same);
/// returns once continued. The shell's job is wtenv's group, which may
/// hold more than wtenv (the rest of a pipeline, the `bash -c`, `make` or
/// npm script that ran it), and the shell sees the job stopped, and gets
/// its prompt back, only once every process of it is. SIGTSTP is not
/// caught when this is called (the child has the terminal), so wtenv
/// stops with the rest and the shell says "Stopped". A process group the
/// kernel considers orphaned ignores it, and then we go on.
pub(super) fn stop_job() {
    let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), Signal::SIGTSTP);
}

/// Stops wtenv alone with SIGSTOP, its own SIGTSTP being caught (under
/// `up`: the terminal's Ctrl-Z reached the rest of its group already);
/// returns once continued. The shell says "Stopped (signal)".
pub(super) fn stop_self() {
    let _ = nix::sys::signal::raise(Signal::SIGSTOP);
}
