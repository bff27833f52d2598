//! Stopping a git step that does not end ([`Stop`]): the user's signals
//! ([`Signals`]), SIGTERM then SIGKILL to git's process group.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::printable_path;

/// The requests to stop, counted so far (`create`: a second Ctrl-C, a
/// SIGTERM, a SIGHUP; the other commands: any of them): a git step
/// started before the count grows is stopped, SIGTERM to its process
/// group (its hooks too), then SIGKILL after [`KILL_GRACE`]. A step
/// started once a stop was asked for (the rollback of a stopped `create`)
/// is stopped alike after [`STOPPING_LIMIT`]: a git that hangs there (a
/// FIFO planted meanwhile) must not hang the way out.
#[derive(Clone)]
pub struct Stop {
    requests: Arc<dyn Fn() -> usize + Send + Sync>,
    /// [`Signals::during_git`]'s: the flag under which a signal takes its
    /// default action (cleared while a step runs: [`Stop::step`]), and
    /// the signal caught.
    during_git: Option<(Arc<AtomicBool>, Arc<AtomicUsize>)>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stop")
    }
}

impl Stop {
    /// The requests counted so far.
    pub(super) fn requests(&self) -> usize {
        (self.requests)()
    }

    /// A git step begins: until the [`Step`] is dropped, the signals of
    /// [`Signals::during_git`] are caught rather than fatal.
    pub(super) fn step(&self) -> Step {
        let idle = self.during_git.as_ref().map(|(idle, _)| Arc::clone(idle));
        if let Some(idle) = &idle {
            idle.store(false, Ordering::SeqCst);
        }
        Step(idle)
    }

    /// [`Signals::during_git`]'s: `Err(Interrupted)` once a signal was
    /// caught (looked at once its [`Step`] is over: a later one is fatal).
    /// `create`'s own signals are its to look at ([`Signals::check`]).
    pub(super) fn check(&self) -> Result<()> {
        match self
            .during_git
            .as_ref()
            .map(|(_, caught)| caught.load(Ordering::SeqCst))
        {
            None | Some(0) => Ok(()),
            Some(sig) => Err(Error::Interrupted(sig as i32)),
        }
    }
}

/// A git step of a [`Stop`] runs: dropped, a signal of
/// [`Signals::during_git`] takes its default action again.
#[derive(Debug)]
pub(super) struct Step(Option<Arc<AtomicBool>>);

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(idle) = &self.0 {
            idle.store(true, Ordering::SeqCst);
        }
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP: the signal number lands in a flag
/// the command looks at, and [`Signals::stop`] counts them as requests to
/// stop its git step. `create` ([`Signals::catch`], from before its first
/// change, also `up -d`'s) rolls back first; a command with nothing to
/// roll back ([`Signals::during_git`]) stops its git step at the first.
pub struct Signals {
    caught: Arc<AtomicUsize>,
    /// One byte per SIGINT delivered, written by its handler: each is
    /// counted, however many arrive before the [`Stop`]'s count looks.
    interrupts: Arc<UnixStream>,
    /// Likewise per SIGTERM or SIGHUP.
    terminates: Arc<UnixStream>,
    /// [`Signals::during_git`]: set while no git step runs, when the
    /// signals take their default action.
    idle: Option<Arc<AtomicBool>>,
}

impl Signals {
    /// Caught for the rest of the command, each looked at between its
    /// steps ([`Signals::check`]).
    pub fn catch() -> Result<Signals> {
        Signals::install(None)
    }

    /// Caught only while a git step of [`Signals::stop`] runs, which they
    /// stop at once; the step's result is then `Err(Interrupted)`, and the
    /// command dies of the signal. Between the steps each takes its
    /// default action, as before they were caught; one ignored since wtenv
    /// started (`nohup`) stays ignored.
    pub fn during_git() -> Result<Signals> {
        Signals::install(Some(Arc::new(AtomicBool::new(true))))
    }

    fn install(idle: Option<Arc<AtomicBool>>) -> Result<Signals> {
        use nix::sys::signal::Signal;
        use signal_hook::{flag, low_level::pipe};
        let failed = |e| Error::io("could not install signal handlers", e);
        let caught = Arc::new(AtomicUsize::new(0));
        let (interrupts, interrupted) = UnixStream::pair().map_err(failed)?;
        let (terminates, terminated) = UnixStream::pair().map_err(failed)?;
        interrupts.set_nonblocking(true).map_err(failed)?;
        terminates.set_nonblocking(true).map_err(failed)?;
        let ignored = match idle {
            Some(_) => crate::supervise::signal::ignored_at_start(),
            None => Vec::new(),
        };
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            if ignored.contains(&sig) {
                continue;
            }
            let raw = sig as i32;
            // The handlers run in the order registered: the flag, then the
            // byte, then (last, once they are set) the default action.
            flag::register_usize(raw, Arc::clone(&caught), raw as usize)
                .and_then(|_| match sig {
                    Signal::SIGINT => interrupted.try_clone(),
                    _ => terminated.try_clone(),
                })
                .and_then(|written| pipe::register(raw, written))
                .and_then(|_| match &idle {
                    Some(idle) => {
                        flag::register_conditional_default(raw, Arc::clone(idle)).map(drop)
                    }
                    None => Ok(()),
                })
                .map_err(failed)?;
        }
        Ok(Signals {
            caught,
            interrupts: Arc::new(interrupts),
            terminates: Arc::new(terminates),
            idle,
        })
    }

    /// The requests to stop a git step: with [`Signals::catch`] every
    /// SIGINT but the first (the first lets git finish its step, then the
    /// rollback undoes it), every SIGTERM and SIGHUP; with
    /// [`Signals::during_git`] every one. Each signal delivered counts,
    /// however many arrive before a look (the kernel merges only those
    /// that arrive while one of the same kind waits to be handled).
    pub fn stop(&self) -> Stop {
        let (interrupts, terminates) = (Arc::clone(&self.interrupts), Arc::clone(&self.terminates));
        let first_lets_git_finish = self.idle.is_none();
        let interrupted = AtomicUsize::new(0);
        let terminated = AtomicUsize::new(0);
        Stop {
            requests: Arc::new(move || {
                interrupted.fetch_add(delivered(&interrupts), Ordering::SeqCst);
                terminated.fetch_add(delivered(&terminates), Ordering::SeqCst);
                let interrupts = interrupted.load(Ordering::SeqCst);
                let interrupts = match first_lets_git_finish {
                    true => interrupts.saturating_sub(1),
                    false => interrupts,
                };
                interrupts + terminated.load(Ordering::SeqCst)
            }),
            during_git: self
                .idle
                .as_ref()
                .map(|idle| (Arc::clone(idle), Arc::clone(&self.caught))),
        }
    }

    /// `Err(Interrupted)` once a signal arrived: the caller returns it and
    /// the rollback guard runs on the way out.
    pub fn check(&self) -> Result<()> {
        match self.caught.load(Ordering::SeqCst) {
            0 => Ok(()),
            sig => Err(Error::Interrupted(sig as i32)),
        }
    }
}

/// The bytes the handlers wrote to `stream` since it was last read, one
/// per signal delivered (without waiting: the stream does not block).
fn delivered(mut stream: &UnixStream) -> usize {
    use std::io::{ErrorKind, Read};
    let mut count = 0;
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            // No handler writes to it (its signals ignored at start).
            Ok(0) => return count,
            Ok(n) => count += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return count,
        }
    }
}

/// When `err` is a signal's (a git step of [`Signals::during_git`] that
/// the signal stopped, or that ended as it came), says so in one line:
/// `{step} was stopped by SIG...: {then}`, then what makes git block in a
/// repository (its config, in `common_dir`, including a FIFO). `err` is
/// returned either way, for the command to end with (it dies of the
/// signal).
pub fn said_if_stopped(
    err: Error,
    step: &str,
    common_dir: &Path,
    then: impl FnOnce() -> String,
) -> Error {
    if let Error::Interrupted(sig) = &err {
        let signal = nix::sys::signal::Signal::try_from(*sig)
            .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned());
        crate::report::problem(
            &format!(
                "{step} was stopped by {signal}: {}; if git never ends here, look at what {} includes (include.path, includeIf.*.path): git blocks reading a FIFO there",
                then(),
                printable_path(&common_dir.join("config"))
            ),
            None,
        );
    }
    err
}

/// How often a stoppable git step looks at its [`Stop`].
const STOP_POLL: Duration = Duration::from_millis(20);
/// Between the SIGTERM that stops a git step and the SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long a git step started after a stop request may run: a further
/// signal stops it sooner; this bounds one that nobody sends (a single
/// SIGTERM of `timeout`), long enough for a large checkout's removal.
const STOPPING_LIMIT: Duration = Duration::from_secs(30);

/// Waits for git's end and output; with a [`Stop`], stops it as that
/// says (the count of requests was `asked` when it started). The wait
/// runs in a thread of its own, so the caller's loop sees the end at
/// once, and looks at the stop between.
pub(super) fn wait_for(
    child: Child,
    stop: Option<&(Stop, usize)>,
) -> std::io::Result<std::process::Output> {
    use nix::sys::signal::{Signal, killpg};
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let Some((stop, asked)) = stop else {
        return child.wait_with_output();
    };
    // Git leads a process group of its own (`start`): its id is git's pid.
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let started = Instant::now();
    let mut termed: Option<Instant> = None;
    let mut killed = false;
    loop {
        match rx.recv_timeout(STOP_POLL) {
            Ok(out) => return out,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(std::io::Error::other("lost track of git"));
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        match termed {
            None if stop.requests() > *asked
                || (*asked > 0 && started.elapsed() >= STOPPING_LIMIT) =>
            {
                tracing::info!("stopping git (SIGTERM to its process group)");
                let _ = killpg(group, Signal::SIGTERM);
                termed = Some(Instant::now());
            }
            Some(at) if !killed && at.elapsed() >= KILL_GRACE => {
                let _ = killpg(group, Signal::SIGKILL);
                killed = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{Signal, raise};

    /// Each signal delivered counts, however many arrive before a look:
    /// a flag that a look swapped counted two SIGINTs as one, and the
    /// second Ctrl-C did not stop `create`'s git step. Delivered with
    /// `raise`, whose handler runs before it returns; `catch` first, so
    /// that no signal here takes its default action (one test: the
    /// handlers stay, and would count another test's signals).
    #[test]
    fn each_signal_delivered_counts_however_many_arrive_before_a_look() {
        let signals = Signals::catch().unwrap();
        let stop = signals.stop();
        assert_eq!(stop.requests(), 0);
        for sig in [Signal::SIGINT, Signal::SIGINT, Signal::SIGINT] {
            raise(sig).unwrap();
        }
        // The first lets git finish its step.
        assert_eq!(stop.requests(), 2);
        raise(Signal::SIGTERM).unwrap();
        raise(Signal::SIGHUP).unwrap();
        assert_eq!(stop.requests(), 4);
        assert_eq!(stop.requests(), 4, "a look counts each once");
        assert!(matches!(signals.check(), Err(Error::Interrupted(1))));

        // Between git steps these take their default action: only while
        // a step runs here.
        let stop = Signals::during_git().unwrap().stop();
        let step = stop.step();
        raise(Signal::SIGINT).unwrap();
        raise(Signal::SIGINT).unwrap();
        assert_eq!(stop.requests(), 2);
        assert!(matches!(stop.check(), Err(Error::Interrupted(2))));
        drop(step);
    }
}
