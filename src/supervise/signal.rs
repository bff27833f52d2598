//! Signals as typed values, and the thread that turns the ones wtenv
//! listens for into [`Event`]s for the supervisor's loop.
//!
//! What children inherit (README "Supervision"): a handled disposition
//! resets to the default across `exec`, an ignored one stays ignored. So
//! the listener installs handlers (signal-hook) only for signals that were
//! not ignored when wtenv started: under `nohup`, SIGHUP stays ignored for
//! wtenv and for its children, and nothing wtenv handles for itself leaks.

use std::io;
use std::process::ExitStatus;
use std::sync::mpsc::Sender;

pub use nix::sys::signal::Signal;

/// The signals wtenv forwards to its children.
pub const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// What wakes the supervisor's loop.
pub(super) enum Event {
    /// wtenv received one of [`FORWARDED`].
    Signal(Signal),
    /// SIGTSTP (Ctrl-Z while wtenv, not a child, has the terminal).
    Stop,
    /// SIGCONT: the shell continued wtenv (`fg`, `bg`).
    Continued,
    /// SIGCHLD: an orphan may be waiting to be reaped, a child may have
    /// stopped.
    Child,
    /// A leader, by spawn order, exited.
    Exited(usize, io::Result<ExitStatus>),
    /// A [`Policy`](super::supervisor::Policy) has news (a health check's
    /// result): take a turn now.
    Wake,
}

/// The listener: its thread sends [`Event`]s; dropping it unregisters.
pub(super) struct Listener {
    handle: signal_hook::iterator::Handle,
    ignored: Vec<Signal>,
}

impl Listener {
    /// Starts the listener thread for [`FORWARDED`], SIGCHLD and SIGCONT,
    /// leaving alone every signal ignored since wtenv started.
    pub fn start(tx: Sender<Event>) -> io::Result<Listener> {
        let ignored = ignored_at_start();
        let mut raw: Vec<i32> = FORWARDED
            .iter()
            .filter(|s| !ignored.contains(s))
            .map(|s| *s as i32)
            .collect();
        raw.extend([Signal::SIGCHLD as i32, Signal::SIGCONT as i32]);
        let mut signals = signal_hook::iterator::Signals::new(raw)?;
        let handle = signals.handle();
        std::thread::Builder::new()
            .name("wtenv-signals".into())
            .spawn(move || {
                for raw in signals.forever() {
                    let event = match Signal::try_from(raw) {
                        Ok(Signal::SIGCHLD) => Event::Child,
                        Ok(Signal::SIGCONT) => Event::Continued,
                        Ok(Signal::SIGTSTP) => Event::Stop,
                        Ok(sig) => Event::Signal(sig),
                        Err(_) => continue,
                    };
                    if tx.send(event).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Listener { handle, ignored })
    }

    /// Also catch Ctrl-Z (SIGTSTP), unless it was ignored at start: for
    /// children that do not have the terminal, wtenv stops them itself.
    pub fn catch_stop(&self) {
        if self.ignored.contains(&Signal::SIGTSTP) {
            return;
        }
        if let Err(e) = self.handle.add_signal(Signal::SIGTSTP as i32) {
            tracing::debug!("could not catch SIGTSTP: {e}");
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// The signals ignored when wtenv started (`nohup` ignores SIGHUP; a
/// non-interactive shell's `&` ignores SIGINT and SIGQUIT), as Linux's
/// `/proc/self/status` tells. Elsewhere: none known.
fn ignored_at_start() -> Vec<Signal> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|hex| ignored_in_mask(hex.trim()))
        .unwrap_or_default()
}

/// The signals set in a `SigIgn` mask (hex; bit N-1 is signal N).
fn ignored_in_mask(hex: &str) -> Vec<Signal> {
    let Ok(mask) = u64::from_str_radix(hex, 16) else {
        return Vec::new();
    };
    Signal::iterator()
        .filter(|s| {
            let n = *s as i32;
            (1..=64).contains(&n) && mask & (1u64 << (n - 1)) != 0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sigign_mask_names_its_signals() {
        // nohup: SIGHUP (1); glibc-internal 32/33 are not `Signal`s.
        assert_eq!(ignored_in_mask("0000000180000001"), vec![Signal::SIGHUP]);
        assert_eq!(
            ignored_in_mask("0000000000000006"),
            vec![Signal::SIGINT, Signal::SIGQUIT]
        );
        assert!(ignored_in_mask("0000000000000000").is_empty());
        assert!(ignored_in_mask("garbage").is_empty());
    }
}
