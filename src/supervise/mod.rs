//! Supervision of `wtenv run` and `wtenv up`: children that never leave a
//! process behind (README "Supervision").
//!
//! Contract:
//! - Each child runs in its own process group (duct's `before_spawn` with
//!   std's `process_group(0)`: no `pre_exec`, no unsafe). Its [`Pgid`] is its
//!   pid, known at spawn; we never `getpgid` after the fact, and we always
//!   signal the group (`killpg`), never only the leader ([`group`]).
//! - The signal handlers ([`signal`]: one self-pipe, read by the loop
//!   itself; no thread waits on signals or children) are installed in
//!   [`Supervisor::new`], before any spawn. SIGINT/SIGTERM/SIGHUP/SIGQUIT
//!   are forwarded to every group once; after the grace the groups get
//!   SIGKILL; a second SIGINT kills at once, one within 200 ms of the
//!   last being the same Ctrl-C ([`Escalation`], a plain state
//!   machine).
//!   A stopped group also gets SIGCONT, so it acts on the signal at once.
//! - After a leader exits, what is left of its group (the server `npm start`
//!   left behind) gets SIGTERM, then SIGKILL after the grace (at once for
//!   a process stopped again by a signal meanwhile, not by its tracer:
//!   [`tree::kill_stopped`]): a group is
//!   done only when none of its processes is left, zombies included (a
//!   zombie main thread's other threads may still hold its sockets).
//! - On Linux wtenv is a child subreaper ([`reap`]): orphans of the tree
//!   become our children, so they are reaped here and swept; after the
//!   last group, the tree's zombies are reaped (bounded by the grace)
//!   before the ports are released.
//! - The tree's strays ([`tree`]): processes below wtenv, in its session,
//!   in groups of their own (job control). Each gets the forwarded signals
//!   alone (not job control's stop and continue: a terminal's Ctrl-Z
//!   leaves them running too, and stopping one ends a `set -m` shell's
//!   `wait`), and once every leader has exited they are swept as a group's rest is. A
//!   stray found below a group's member is that group's: stopped and swept
//!   with it, so `up` restarts a service only once its strays are gone.
//! - The terminal is handed to the child's group whenever wtenv has a
//!   controlling terminal and is its foreground group, whatever stdin is
//!   ([`terminal`]); job control
//!   follows the child: Ctrl-Z stops it, then wtenv takes the terminal back
//!   and stops its own group (the shell's job: a pipeline, a `bash -c`);
//!   `fg`/`bg` (SIGCONT) continue it all, the child with the terminal when
//!   wtenv is in the foreground. Under `up`, wtenv's own
//!   Ctrl-Z stops every group, then wtenv.
//! - Children start clean ([`spawn::start_clean`], [`signal`]): the
//!   dispositions and mask wtenv was started with, nothing of its own.
//! - A panic while children run SIGKILLs the tree's strays (the
//!   supervisor's `Drop`), then their groups (`Group`'s `Drop`).
//! - The ports a supervising wtenv holds are released on every exit path
//!   ([`hold`]); `up`'s per-service output and readiness live in
//!   [`services`]. The holds of an `env --hold` holder (a `nix develop`
//!   shell) are released once it ends by its [`watcher`].

mod detach;
pub mod escalation;
pub mod group;
pub mod hold;
mod notice;
pub mod orphans;
pub mod reap;
pub mod services;
pub mod signal;
pub mod spawn;
mod supervisor;
pub mod terminal;
mod tree;
pub mod up;
pub mod watcher;

pub use detach::{await_start, detach};

use std::time::Duration;

pub use escalation::{Action, Escalation, Report, outcome_of, run_outcome, up_outcome};
pub use group::Pgid;
pub use signal::{FORWARDED, Signal, Waker};
pub use spawn::{SpawnError, command_words, in_dir};
pub use supervisor::{Policy, Supervisor};
pub use terminal::TerminalGuard;

/// `--grace` default: how long a group has between SIGTERM (or the
/// forwarded signal) and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How often group membership is polled while a group is being swept.
const POLL: Duration = Duration::from_millis(10);

/// How long children run before [`Supervisor::wait`]'s `settled` callback
/// fires: a command that ends sooner (`wtenv run -- true`) skips the
/// registry write it would do (the pgid record), which costs more than the
/// command itself.
pub const SETTLE: Duration = Duration::from_millis(50);

/// How long `run`'s children run before their group is recorded (with
/// the hold, when the hold waits for it): [`SETTLE`] for an interactive
/// `run`, whose `run -- true` then skips the write; none for the
/// supervisor of a background service (`run --unit`, what `up --detach`
/// starts), whose start is not measured in milliseconds, and whose
/// service a SIGKILL would otherwise leave running unrecorded for the
/// settle time and the wait for the registry's lock behind other writers
/// (docs/ARCHITECTURE.md, "Hold first, group later").
pub fn settle_for(background: bool) -> Duration {
    if background { Duration::ZERO } else { SETTLE }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The supervisor of a background service records its group (and its
    /// hold) at once: a SIGKILL of it any time after the spawn leaves an
    /// orphan that the registry names. An interactive `run` waits
    /// [`SETTLE`], so that `run -- true` writes nothing.
    #[test]
    fn a_background_supervisor_records_its_group_without_a_settle_time() {
        assert_eq!(settle_for(true), Duration::ZERO);
        assert_eq!(settle_for(false), SETTLE);
        assert!(SETTLE > Duration::ZERO);
    }
}
