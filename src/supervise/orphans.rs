//! Stopping the orphans of a SIGKILLed `run`/`up`: the processes of the
//! group it spawned that outlived it (`validate --fix`, and `down` for a
//! detached service whose supervisor was killed).
//!
//! wtenv never signals a process it cannot prove it started: each pid is
//! checked against the recorded group (same pgid, started no earlier than
//! the recorded leader: [`crate::process::orphans`]) right before each
//! signal, and signalled alone, never through its group id.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::notice::{Kills, Why};
use crate::process;

/// How long orphans get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// SIGTERM to each proven orphan of the group `pgid` (leader started at
/// `leader_start`), then, after `grace`, SIGKILL to those left: said
/// first, when `names` names what they run (`down`: `service web`), as
/// every SIGKILL wtenv sends unasked is, how many and the first
/// ([`Kills`]), and written by `also` too (`down`: into the service's
/// log, where its supervisor would have said it); `validate --fix`, which
/// says what it stopped on stdout, passes none. Returns the ones still
/// alive at the end (none, unless one resists SIGKILL).
pub fn stop(
    group: process::Group,
    grace: Duration,
    names: Option<&[String]>,
    also: &dyn Fn(&str),
) -> Vec<u32> {
    let signal_each = |pids: &[u32], sig: Signal| {
        for &pid in pids {
            if let Err(e) = kill(Pid::from_raw(pid as i32), sig) {
                tracing::debug!(pid, ?sig, "kill: {e}");
            }
        }
    };
    signal_each(&process::orphans(group), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !process::orphans(group).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = process::orphans(group);
    if let Some(names) = names
        && let Some(said) = Kills::default().say(names, Why::Grace(grace), &left)
    {
        also(&said);
    }
    signal_each(&left, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !process::orphans(group).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    process::orphans(group)
}
