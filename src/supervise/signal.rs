//! Signals as typed values, and the thread that turns the ones wtenv
//! listens for into [`Event`]s for the supervisor's loop.
//!
//! The listener is registered before any child is spawned, so no
//! SIGINT/SIGTERM/SIGHUP/SIGQUIT can kill wtenv between a spawn and the
//! loop. signal-hook installs real handlers (not `SIG_IGN`): a handled
//! disposition resets to the default across `exec`, so children do not
//! inherit it.

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
    /// SIGCHLD: an orphan may be waiting to be reaped, a child may have
    /// stopped.
    Child,
    /// A leader, by spawn order, exited.
    Exited(usize, io::Result<ExitStatus>),
    /// A [`Policy`](super::supervisor::Policy) has news (a health check's
    /// result): take a turn now.
    Wake,
}

/// Starts the listener thread; its events go to `tx`. The handle closes it.
pub(super) fn listen(tx: Sender<Event>) -> io::Result<signal_hook::iterator::Handle> {
    let mut raw: Vec<i32> = FORWARDED.iter().map(|s| *s as i32).collect();
    raw.push(Signal::SIGCHLD as i32);
    let mut signals = signal_hook::iterator::Signals::new(raw)?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("wtenv-signals".into())
        .spawn(move || {
            for raw in signals.forever() {
                let event = match Signal::try_from(raw) {
                    Ok(Signal::SIGCHLD) => Event::Child,
                    Ok(sig) => Event::Signal(sig),
                    Err(_) => continue,
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        })?;
    Ok(handle)
}
