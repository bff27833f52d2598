//! Stopping a git step that does not end ([`Stop`]): `create`'s
//! signals, SIGTERM then SIGKILL to git's process group.

use std::process::Child;
use std::time::{Duration, Instant};

/// The requests to stop, counted so far (`create`: a second Ctrl-C, a
/// SIGTERM, a SIGHUP): a git step started before the count grows is
/// stopped, SIGTERM to its process group (its hooks too), then SIGKILL
/// after [`KILL_GRACE`]. A step started once a stop was asked for (the
/// rollback of a stopped `create`) is stopped alike after
/// [`STOPPING_LIMIT`]: a git that hangs there (a FIFO planted meanwhile)
/// must not hang the way out.
#[derive(Clone)]
pub struct Stop(pub std::sync::Arc<dyn Fn() -> usize + Send + Sync>);

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stop")
    }
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
    let Some((Stop(requests), asked)) = stop else {
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
            None if requests() > *asked || (*asked > 0 && started.elapsed() >= STOPPING_LIMIT) => {
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
