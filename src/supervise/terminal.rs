//! The terminal and job control: the child's group gets the terminal when
//! stdin is one and wtenv is its foreground group, and wtenv takes it back
//! afterwards (with SIGTTOU blocked, so taking it back from the background
//! cannot stop us).

use super::group::{Pgid, killpg};
use super::signal::Signal;

/// The terminal lent to a child's group; given back on drop.
pub struct TerminalGuard {
    ours: nix::unistd::Pid,
}

impl TerminalGuard {
    /// Hands the terminal on stdin to `pgid` if stdin is a terminal and
    /// wtenv's group is its foreground group.
    pub(super) fn hand_over(pgid: Pgid) -> Option<TerminalGuard> {
        use std::io::IsTerminal;
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let ours = nix::unistd::getpgrp();
        if !is_foreground() {
            return None;
        }
        let child = nix::unistd::Pid::from_raw(pgid.as_raw() as i32);
        if let Err(e) = nix::unistd::tcsetpgrp(&stdin, child) {
            tracing::debug!("could not hand the terminal to group {pgid}: {e}");
            return None;
        }
        // The child may have read the terminal before it was its own and
        // been stopped by SIGTTIN: let it go on.
        killpg(pgid, Signal::SIGCONT);
        Some(TerminalGuard { ours })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        use nix::sys::signal::SigSet;
        // We are a background process now: tcsetpgrp would stop us with
        // SIGTTOU unless it is blocked (POSIX: then the call proceeds).
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let old = ttou.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        if let Err(e) = nix::unistd::tcsetpgrp(std::io::stdin(), self.ours) {
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

/// Whether wtenv's group is the foreground group of the terminal on stdin.
pub(super) fn is_foreground() -> bool {
    nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|fg| fg == nix::unistd::getpgrp())
}

/// Whether wtenv's group is, or within `patience` becomes, the foreground
/// group of the terminal on stdin (polled: a shell's `fg` sends no signal
/// to a job it thinks is running).
pub(super) fn becomes_foreground(patience: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if is_foreground() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether stdin is a terminal (a child may be given it).
pub(super) fn is_terminal() -> bool {
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
