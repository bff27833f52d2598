//! Signals as typed values, and the self-pipe that turns the ones wtenv
//! listens for into [`Event`]s: each handler, installed once, records its
//! signal and writes a byte that the supervisor's loop waits for (with its
//! timeout). No thread waits on signals or children: the loop itself does.
//!
//! What children inherit (README "Supervision"): a handled disposition
//! resets to the default across `exec`, an ignored one stays ignored. So
//! the listener installs handlers (signal-hook) only for signals that were
//! not ignored when wtenv started: under `nohup`, SIGHUP stays ignored for
//! wtenv and for its children, and nothing wtenv handles for itself leaks.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

pub use nix::sys::signal::Signal;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

/// The signals wtenv forwards to its children.
pub const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// What wakes the supervisor's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// wtenv received one of [`FORWARDED`].
    Signal(Signal),
    /// SIGTSTP (Ctrl-Z while wtenv, not a child, has the terminal).
    Stop,
    /// SIGCONT: the shell continued wtenv (`fg`, `bg`).
    Continued,
    /// SIGCHLD: a leader may have exited, an orphan may be waiting to be
    /// reaped, a child may have stopped.
    Child,
}

/// The listener: signal handlers that write to a self-pipe, read by the
/// supervisor's loop; dropping it unregisters them.
pub(super) struct Listener {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
    /// Another handle on the pipe's write end, for [`Waker`]s.
    wake: Arc<UnixStream>,
    ignored: Vec<Signal>,
}

impl Listener {
    /// Installs the handlers for [`FORWARDED`], SIGCHLD and SIGCONT,
    /// leaving alone every signal ignored since wtenv started.
    pub fn start() -> io::Result<Listener> {
        Listener::of(&FORWARDED, &[Signal::SIGCHLD, Signal::SIGCONT])
    }

    /// Installs the handlers for `signals` (but those ignored since wtenv
    /// started) and `always`: the supervisor's, or the few the watcher of
    /// an `env --hold` holder ends on ([`super::watcher`]).
    pub fn of(signals: &[Signal], always: &[Signal]) -> io::Result<Listener> {
        let ignored = ignored_at_start();
        let mut raw: Vec<i32> = signals
            .iter()
            .filter(|s| !ignored.contains(s))
            .map(|s| *s as i32)
            .collect();
        raw.extend(always.iter().map(|s| *s as i32));
        let (read, write) = UnixStream::pair()?;
        let wake = write.try_clone()?;
        // A waker never blocks on a full pipe: one byte pending is enough.
        wake.set_nonblocking(true)?;
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, raw)?;
        Ok(Listener {
            delivery,
            wake: Arc::new(wake),
            ignored,
        })
    }

    /// Also catch Ctrl-Z (SIGTSTP), unless it was ignored at start: for
    /// children that do not have the terminal, wtenv stops them itself.
    pub fn catch_stop(&self) {
        if self.ignored.contains(&Signal::SIGTSTP) {
            return;
        }
        if let Err(e) = self.delivery.handle().add_signal(Signal::SIGTSTP as i32) {
            tracing::debug!("could not catch SIGTSTP: {e}");
        }
    }

    /// The signals received so far, without waiting.
    pub fn pending(&mut self) -> Vec<Event> {
        self.delivery.pending().filter_map(event).collect()
    }

    /// Waits until a signal arrives, a [`Waker`] wakes the loop, or
    /// `timeout` passes; then the signals received.
    pub fn wait(&mut self, timeout: Duration) -> Vec<Event> {
        let read = self.delivery.get_read();
        // A zero timeout would mean "block forever".
        let timeout = timeout.max(Duration::from_millis(1));
        if read.set_read_timeout(Some(timeout)).is_ok() {
            // Timeout, interruption or a byte: the pending signals tell.
            let _ = (&mut &*read).read(&mut [0u8; 64]);
        } else {
            std::thread::sleep(timeout);
        }
        self.pending()
    }

    /// The self-pipe's read end, readable once a signal arrived: for a
    /// `poll` beside other descriptors, then [`Listener::pending`].
    #[cfg(target_os = "linux")]
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self.delivery.get_read())
    }

    /// A handle that wakes [`Listener::wait`] from any thread.
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }
}

/// Makes the supervisor's loop take a turn now, from any thread.
#[derive(Clone)]
pub struct Waker(Arc<UnixStream>);

impl Waker {
    pub fn wake(&self) {
        // Full (the loop has not read yet): it wakes anyway.
        let _ = (&*self.0).write(&[1]);
    }
}

fn event(raw: i32) -> Option<Event> {
    Some(match Signal::try_from(raw).ok()? {
        Signal::SIGCHLD => Event::Child,
        Signal::SIGCONT => Event::Continued,
        Signal::SIGTSTP => Event::Stop,
        sig => Event::Signal(sig),
    })
}

/// The signals ignored when wtenv started (`nohup` ignores SIGHUP; a
/// non-interactive shell's `&` ignores SIGINT and SIGQUIT), as Linux's
/// `/proc/self/status` tells. Elsewhere: none known.
pub(crate) fn ignored_at_start() -> Vec<Signal> {
    let status = crate::files::read_proc("/proc/self/status").unwrap_or_default();
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
