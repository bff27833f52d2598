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
        if nix::unistd::tcgetpgrp(&stdin).ok()? != ours {
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

/// Whether our child `pid` is stopped (job control). Consumes only the
/// stop report: the exit stays for duct's waiter.
#[cfg(target_os = "linux")]
pub(super) fn stopped(pid: u32) -> bool {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG;
    let id = Id::Pid(nix::unistd::Pid::from_raw(pid as i32));
    matches!(waitid(id, flags), Ok(WaitStatus::Stopped(..)))
}

/// Without waitid(2) in nix here: stops are not followed.
#[cfg(not(target_os = "linux"))]
pub(super) fn stopped(_pid: u32) -> bool {
    false
}

/// Stops wtenv the way Ctrl-Z would; returns once continued. A process
/// group the kernel considers orphaned ignores it: then we go on.
pub(super) fn stop_self() {
    let _ = nix::sys::signal::raise(Signal::SIGTSTP);
}
