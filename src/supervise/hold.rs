//! The ports a supervising wtenv (`run`, `up`) holds: its hold record, the
//! children's process group written on it, and the guard that releases the
//! holds on every exit path (return, error, panic; a SIGKILL is covered by
//! the next command's stale sweep). The holds are on the worktree's own
//! entries only (an allocation holds its own worktree's ports), so these
//! transactions read and rewrite only the worktree's part of the registry
//! (the guard's also where `git worktree move` took the worktree since).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::alloc;
use crate::config::{PortRange, Ranges};
use crate::error::Error;
use crate::process::ProcessId;
use crate::registry::{Allocation, Hold, Part, Registry, RegistryData};
use crate::worktree::Worktree;

use super::Pgid;

/// How a supervising wtenv's hold names it (its pid is that wtenv's, not
/// its command's): `wtenv run -- CMD ARGS`, and `wtenv up [SERVICE...]`.
pub const RUN: &str = "wtenv run";
pub const UP: &str = "wtenv up";

/// What a recorded holder is, for the words that say how to stop it
/// (`release`'s refusal of a port it holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// The supervisor of a background service (`up --detach`, an
    /// exported unit): stopped with `wtenv down SERVICE`.
    Background,
    /// A `wtenv run` ([`RUN`]) or a foreground `wtenv up` ([`UP`]): the
    /// one its hold names itself as.
    Supervisor(&'static str),
    /// Any other process: a shell that holds its worktree's ports (`env
    /// --hold PID`, a `nix develop` shell), recorded by its own command
    /// line.
    Shell,
}

impl Holding {
    /// What `h` is: a unit's holder by its unit, a supervising wtenv by
    /// the command its hold records ([`RUN`], [`UP`]), anything else a
    /// shell.
    pub fn of(h: &Hold) -> Holding {
        if h.unit.is_some() {
            return Holding::Background;
        }
        let names = |what: &str| {
            h.command
                .strip_prefix(what)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        };
        match [RUN, UP].into_iter().find(|w| names(w)) {
            Some(what) => Holding::Supervisor(what),
            None => Holding::Shell,
        }
    }
}

/// The hold record of this wtenv process for `command`.
pub fn hold(command: &str) -> Hold {
    let me = ProcessId::current();
    Hold {
        pid: me.pid,
        start_time: me.start_time,
        command: command.to_owned(),
        pgid: None,
        leader_start: None,
        session: None,
        unit: None,
    }
}

/// Records each child's process group and its leader's start time on this
/// process's holds, so that `ports`/`validate` (and a person) can see which
/// group holds a port, and a SIGKILLed wtenv's orphans can be proved its.
/// The holds are found by this process's identity (pid and start time)
/// where `worktree`'s entries may be recorded now
/// ([`Worktree::roots_now`]): after `git worktree move`, where they
/// followed it too, as the [`ReleaseGuard`] releases them (a restart of
/// `up`'s service records its new group there). Best effort: the child
/// already runs; a write that fails is a warning ([`Unrecorded::Group`]).
pub fn record_pgid(
    registry: &Registry,
    worktree: &Worktree,
    pgid_of: impl Fn(&Allocation) -> Option<Pgid>,
) {
    for (repository, root) in held_at(registry, worktree, ProcessId::current()) {
        let part = Part::of(&repository, &root);
        let result = registry.transaction_in(part, |data| {
            stamp_groups(data, &pgid_of);
            Ok(())
        });
        if let Err(e) = result {
            // Said once: the other path's write would fail alike.
            return Unrecorded::Group.warn(&e);
        }
    }
}

/// Where the holds of `me` on `worktree`'s entries may be recorded now,
/// as (repository, worktree): [`Worktree::roots_now`]; once the worktree
/// moved, also each path of its repository that no worktree is at now
/// where an entry carries a hold of `me` (its entries followed it to a
/// path it has left since: `env` there, then `git worktree move` again;
/// they follow it on at the next sweep, the holds with them). One read of
/// the repository's lines, only after a move; unmoved, one read of its
/// `.git`. A repository moved whole (`mv`: its common dir gone, `env`
/// recording its entries at the new paths, holds and all, once or after
/// each of several moves): wherever an entry carries a hold of `me`, in
/// one read of the whole registry, only then. A worktree moved alone with
/// a plain `mv` (git names its old path until `git worktree repair`): the
/// worktree this process works in now, when it is that one.
fn held_at(registry: &Registry, worktree: &Worktree, me: ProcessId) -> Vec<(PathBuf, PathBuf)> {
    let mut roots = worktree.roots_now();
    // Moved with a plain `mv` (git names the old path until `git worktree
    // repair`): its `env` recorded its entries where it is now, and this
    // process's working directory moved with it. Unmoved, it is still
    // under `root` (one getcwd, no file read).
    if roots == std::slice::from_ref(&worktree.root)
        && let Ok(cwd) = std::env::current_dir()
        && !cwd.starts_with(&worktree.root)
        && let Ok(Some(now)) = Worktree::discover(&cwd)
        && now.git_dir == worktree.git_dir
        && now.root != worktree.root
    {
        roots.push(now.root);
    }
    if roots != std::slice::from_ref(&worktree.root)
        && let Ok(data) = registry.read_repository(&worktree.common_dir)
    {
        for a in data.allocations {
            let left = !roots.contains(&a.worktree)
                && a.holders.iter().any(|h| h.is(me))
                && crate::worktree::git_dir_at(&a.worktree).is_none();
            if left {
                roots.push(a.worktree);
            }
        }
    }
    let mut at: Vec<(PathBuf, PathBuf)> = roots
        .into_iter()
        .map(|root| (worktree.common_dir.clone(), root))
        .collect();
    if !worktree.common_dir.exists()
        && let Ok(data) = registry.read()
    {
        for a in data.allocations {
            let place = (a.repository, a.worktree);
            if a.holders.iter().any(|h| h.is(me)) && !at.contains(&place) {
                at.push(place);
            }
        }
    }
    at
}

/// What a supervising wtenv could not write once its command ran: said as
/// a warning (the command goes on), with what that costs and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecorded {
    /// `run`'s hold on ports that were all reserved ([`record_hold`]).
    Hold,
    /// The children's process group on the holds ([`record_pgid`]).
    Group,
}

impl Unrecorded {
    fn warn(self, e: &Error) {
        let (message, hint) = self.text(e);
        crate::report::warn_hinted(&message, &hint);
    }

    /// The warning and its hint for the write that failed with `e`: the
    /// error's own hint says how to mend its cause (a full disk, a
    /// read-only file system, a busy lock) and run the command again,
    /// when it has one; the command running now keeps going unrecorded.
    fn text(self, e: &Error) -> (String, String) {
        let message = match self {
            Unrecorded::Hold => format!(
                "could not record the hold of this wtenv: {e}; its ports stay reserved for the worktree but are not recorded as held by this run, so `wtenv remove` and `wtenv validate` do not see it"
            ),
            Unrecorded::Group => format!(
                "could not record the child's process group: {e}; its ports are recorded as held by this wtenv but not by the group, so if this wtenv is killed, `wtenv validate --fix` cannot prove the processes it leaves are its and will not stop them"
            ),
        };
        let mend = e
            .hint()
            .unwrap_or_else(|| "mend what the error says, then run the command again".to_owned());
        let what = match self {
            Unrecorded::Hold => "hold",
            Unrecorded::Group => "group",
        };
        let hint = format!("{mend} (stop this one first: it records its {what} only as it starts)");
        (message, hint)
    }
}

/// The hold of a `run` whose ports were all reserved
/// ([`crate::alloc::Ensured::hold_waits`]), written once its child has
/// settled: `holder` on `verified`, the worktree's allocations as `run`
/// verified and exported them, with the child's group, in one
/// transaction. Whether it was written; best effort, as [`record_pgid`].
///
/// The entries are the worktree's where it is now: after `git worktree
/// move` (since `run` found it), those `env` made follow it to the path
/// git names for its git dir, which its stamp lists (an entry another
/// worktree left at that path is not its), or those still at the path it
/// started at while nothing is there ([`Worktree::roots_now`]); never a
/// worktree's that is at that path now.
///
/// An allocation gone since (`validate --verify-ports --fix` saw its port
/// idle and unheld in that moment) is recorded again, held, where the
/// worktree is now: the command was given that port and uses it. The
/// transaction's part covers those ports, so it sees who records each
/// now: one another worktree took in between stays theirs (never twice),
/// the rest is held, and the user is told which.
pub fn record_hold(
    registry: &Registry,
    worktree: &Worktree,
    holder: &Hold,
    verified: &[Allocation],
    pgid: Pgid,
) -> bool {
    let ports = Ranges::new(
        verified
            .iter()
            .map(|a| PortRange {
                start: a.port,
                end: a.port,
            })
            .collect(),
    );
    let roots = worktree.roots_now();
    let (started, repository) = (&worktree.root, &worktree.common_dir);
    let now = roots.last().unwrap_or(started);
    // Moved: the entries at the new path that are its are those its stamp
    // lists; at the path it started at, those not followed yet.
    let stamped = (now != started).then(|| crate::worktree::stamped_in(&worktree.git_dir));
    let ours = |a: &Allocation| {
        a.repository == *repository
            && if a.worktree == *now {
                stamped.as_ref().is_none_or(|s| s.lists(&a.service, a.port))
            } else {
                a.worktree == *started && roots.contains(started)
            }
    };
    let part = Part {
        ports: ports.as_ref(),
        ..Part::of(repository, now)
    };
    // What it recorded again, and what it found taken.
    let result = registry.transaction_in(part, |data| {
        let (mut restored, mut taken) = (Vec::new(), Vec::new());
        for want in verified {
            let mine = |a: &Allocation| ours(a) && a.service == want.service;
            match data.allocations.iter().position(mine) {
                Some(i) => {
                    let a = &mut data.allocations[i];
                    // Held already; or allocated anew meanwhile (a
                    // `release`, then an `env`), a port the command does
                    // not have: left alone.
                    if a.port == want.port && !a.holders.contains(holder) {
                        a.holders.push(holder.clone());
                    }
                }
                None if data.allocations.iter().any(|a| a.port == want.port) => {
                    taken.push(label(want));
                }
                None => {
                    restored.push(label(want));
                    let mut again = want.clone();
                    again.worktree = now.clone();
                    again.holders = vec![holder.clone()];
                    data.allocations.push(again);
                }
            }
        }
        stamp_groups(data, &|_| Some(pgid));
        Ok((restored, taken))
    });
    match &result {
        Ok((restored, taken)) => {
            if !taken.is_empty() {
                let (what, was) = if taken.len() == 1 {
                    ("port", "was")
                } else {
                    ("ports", "were")
                };
                crate::report::warn(&format!(
                    "{what} {} {was} released while this command started and another worktree has it now; the command still uses it",
                    taken.join(", ")
                ));
            }
            if !restored.is_empty() {
                tracing::info!(ports = %restored.join(", "), "recorded again: released while the command started");
            }
        }
        Err(e) => Unrecorded::Hold.warn(e),
    }
    result.is_ok()
}

/// Drops the holds of `pid` (`release --hold PID`, the EXIT trap of the
/// shell that holds): of this very process while it lives (pid and start
/// time: a hold an earlier process with that pid left is not its), else
/// of any gone process with that pid, each hold's own process proven gone
/// under the lock (a process that took the pid since and held is not
/// it). Ports only it held are released, reservations stay. Whether it
/// held any, and what was released.
pub fn release_pid(registry: &Registry, pid: u32) -> crate::error::Result<(bool, Vec<Allocation>)> {
    match ProcessId::of(pid) {
        Some(me) => release_holder(registry, me),
        None => release_where(registry, |h| h.pid == pid && !h.process().is_alive()),
    }
}

/// Drops the holds of `holder`, alive or gone: the holds recorded with
/// its pid and its start time, never those of another process with that
/// pid (the [watcher](super::watcher) of a holder that has ended, whose
/// pid may be reused by now). As [`release_pid`] otherwise.
pub fn release_holder(
    registry: &Registry,
    holder: ProcessId,
) -> crate::error::Result<(bool, Vec<Allocation>)> {
    release_where(registry, |h| h.is(holder))
}

/// Drops the holds `its` picks, in every worktree: whether there were
/// any, and what was released.
fn release_where(
    registry: &Registry,
    its: impl Fn(&Hold) -> bool,
) -> crate::error::Result<(bool, Vec<Allocation>)> {
    registry.transaction(|data| {
        let held = data.allocations.iter().any(|a| a.holders.iter().any(&its));
        Ok((held, alloc::release_holds_where(data, &its)))
    })
}

/// `PORT (SERVICE)`, as messages name an allocation.
fn label(a: &Allocation) -> String {
    format!("{} ({})", a.port, crate::process::printable(&a.service))
}

/// Writes each child's group and its leader's start time on this
/// process's holds. Each leader's /proc entry is read once, and only for
/// an allocation this process holds.
fn stamp_groups(data: &mut RegistryData, pgid_of: &impl Fn(&Allocation) -> Option<Pgid>) {
    let me = ProcessId::current();
    let mut starts: BTreeMap<u32, (Option<u64>, Option<u32>)> = BTreeMap::new();
    for a in &mut data.allocations {
        if !a.holders.iter().any(|h| h.is(me)) {
            continue;
        }
        let Some(pgid) = pgid_of(a) else { continue };
        // The leader's pid is the group's id; its start time is taken
        // now, while it runs: a leader already gone proves nothing.
        // With it, the session it is in: one a group never leaves.
        let (leader_start, session) = *starts.entry(pgid.as_raw()).or_insert_with(|| {
            (
                ProcessId::of(pgid.as_raw()).map(|p| p.start_time),
                crate::process::session(pgid.as_raw()),
            )
        });
        for h in a.holders.iter_mut().filter(|h| h.is(me)) {
            h.pgid = Some(pgid.as_raw());
            h.leader_start = leader_start;
            h.session = session;
        }
    }
}

/// Releases this process's holds when dropped: on return, on error, on
/// panic (unwinding). A SIGKILL skips it; the stale sweep covers that.
pub struct ReleaseGuard<'a> {
    registry: &'a Registry,
    /// The worktree whose entries this process holds, as it started.
    worktree: &'a Worktree,
    /// Whether a hold may be in the registry: off while a `run`'s hold
    /// waits ([`record_hold`]), so a command that ended sooner reads and
    /// writes nothing.
    armed: Cell<bool>,
}

impl<'a> ReleaseGuard<'a> {
    pub fn new(registry: &'a Registry, worktree: &'a Worktree) -> Self {
        ReleaseGuard {
            registry,
            worktree,
            armed: Cell::new(true),
        }
    }

    /// Whether a hold may be in the registry (see `armed`).
    pub fn set_armed(&self, armed: bool) {
        self.armed.set(armed);
    }
}

impl ReleaseGuard<'_> {
    /// Whether the registry may still record a hold of `me` at `root`:
    /// yes when it cannot be read to tell.
    fn holds_any(&self, repository: &Path, root: &Path, me: ProcessId) -> bool {
        self.registry
            .read_worktree(repository, root)
            .map_or(true, |d| {
                d.allocations
                    .iter()
                    .any(|a| a.holders.iter().any(|h| h.is(me)))
            })
    }
}

impl Drop for ReleaseGuard<'_> {
    fn drop(&mut self) {
        // Nothing written by this process, nothing of it to release: a
        // registry that refused the hold must not be said to keep one.
        if !self.armed.get() || !self.registry.wrote() {
            return;
        }
        let me = ProcessId::current();
        for (repository, root) in held_at(self.registry, self.worktree, me) {
            let part = Part::of(&repository, &root);
            match self
                .registry
                .transaction_in(part, |d| Ok(alloc::release_holds(d, me)))
            {
                Ok(released) => {
                    for a in released {
                        tracing::info!(port = a.port, service = %a.service, "released");
                    }
                }
                // Only when something is left behind: a registry this
                // process could not change (refused before its hold) holds
                // nothing of it. Said once: the next command releases all.
                Err(e) if self.holds_any(&repository, &root, me) => {
                    return crate::report::urgent(
                        &format!("could not release the ports held by this wtenv: {e}"),
                        "the next wtenv command releases them (its holder is gone)",
                    );
                }
                Err(e) => tracing::debug!("nothing to release: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::registry::FILE_NAME;

    /// A panic unwinds through the guard: the holds of this process are
    /// released in the real registry file, a held-only allocation with
    /// them, a reservation kept.
    #[test]
    fn the_release_guard_releases_on_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let registry = Registry::new(dir.path().join(FILE_NAME));
        let entry = |port, reserved| Allocation {
            port,
            service: format!("s{port}"),
            purpose: "feature".into(),
            repository: dir.path().join(".git"),
            worktree: dir.path().to_path_buf(),
            created: crate::registry::now_rfc3339(),
            reserved,
            holders: vec![hold("npm start")],
            adhoc: false,
        };
        registry
            .transaction(|d| {
                d.allocations = vec![entry(5000, true), entry(5001, false)];
                Ok(())
            })
            .unwrap();
        let result = std::panic::catch_unwind(|| {
            let worktree = Worktree {
                root: dir.path().to_path_buf(),
                git_dir: dir.path().join(".git"),
                common_dir: dir.path().join(".git"),
            };
            let _release = ReleaseGuard::new(&registry, &worktree);
            panic!("a bug in the supervisor");
        });
        assert!(result.is_err());
        let left = registry.read().unwrap().allocations;
        assert_eq!(left.len(), 1, "the held-only port was released: {left:?}");
        assert_eq!((left[0].port, left[0].holders.len()), (5000, 0));
    }

    /// A repository at `base/main` with a linked worktree at `base/first`
    /// (branch `a`); what is returned runs git in `main`.
    fn main_and_first(base: &Path) -> impl Fn(&[&str]) + '_ {
        let git = move |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@e.invalid"])
                .args(args)
                .current_dir(base.join("main"))
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        std::fs::create_dir(base.join("main")).unwrap();
        git(&["init", "-q"]);
        git(&["commit", "-q", "--allow-empty", "-m", "init"]);
        git(&["worktree", "add", "-q", "-b", "a", "../first"]);
        git
    }

    /// Where the guard (and the group's and the waited hold's writes)
    /// look for the holds: the path it started at while the worktree is
    /// there; after `git worktree move`, that path and the one the moves
    /// took it to, however many; once another worktree is at the old
    /// path, only the new one (that worktree's entries are its own).
    #[test]
    fn the_holds_are_looked_for_where_a_moved_worktree_is_and_no_other() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let git = main_and_first(&base);
        let [first, moved, again] = ["first", "moved", "again"].map(|n| base.join(n));
        let worktree = Worktree::discover(&first).unwrap().unwrap();
        assert_eq!(worktree.roots_now(), vec![first.clone()]);
        assert_eq!(worktree.root_now(), first);
        git(&["worktree", "move", "../first", "../moved"]);
        assert_eq!(worktree.roots_now(), vec![first.clone(), moved.clone()]);
        assert_eq!(worktree.root_now(), moved);
        git(&["worktree", "move", "../moved", "../again"]);
        assert_eq!(worktree.roots_now(), vec![first.clone(), again.clone()]);
        git(&["worktree", "add", "-q", "-b", "b", "../first"]);
        assert_eq!(worktree.roots_now(), vec![again.clone()]);
        assert_eq!(worktree.root_now(), again);
    }

    /// A `run`'s waited hold, written after `git worktree move` took its
    /// worktree and `env` made its entries follow: on the entries at the
    /// new path that its stamp lists, one released meanwhile recorded
    /// again there; an entry at that path its stamp does not list (left
    /// by another worktree) is not its, and nothing is written at the
    /// path it started at.
    #[test]
    fn a_waited_hold_is_written_where_a_moved_worktree_took_its_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let git = main_and_first(&base);
        let (first, moved) = (base.join("first"), base.join("moved"));
        let worktree = Worktree::discover(&first).unwrap().unwrap();
        git(&["worktree", "move", "../first", "../moved"]);
        let state = base.join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let registry = Registry::new(state.join(FILE_NAME));
        let entry = |service: &str, port, at: &Path| Allocation {
            port,
            service: service.into(),
            purpose: "feature".into(),
            repository: worktree.common_dir.clone(),
            worktree: at.to_path_buf(),
            created: crate::registry::now_rfc3339(),
            reserved: true,
            holders: Vec::new(),
            adhoc: false,
        };
        // `app` followed the worktree; `web` was left at that path by a
        // worktree there before (its stamp does not list it).
        registry
            .transaction(|d| {
                d.allocations = vec![entry("app", 5000, &moved), entry("web", 5001, &moved)];
                Ok(())
            })
            .unwrap();
        std::fs::write(worktree.stamp_path(), "app=5000\n").unwrap();
        let verified = [
            entry("app", 5000, &first),
            entry("web", 5001, &first),
            entry("api", 5002, &first),
        ];
        let holder = hold("wtenv run -- serve");
        let me = std::process::id();
        assert!(record_hold(
            &registry,
            &worktree,
            &holder,
            &verified,
            Pgid(me)
        ));
        let mut left: Vec<_> = registry
            .read()
            .unwrap()
            .allocations
            .into_iter()
            .map(|a| {
                let held = a
                    .holders
                    .iter()
                    .map(|h| (h.is(ProcessId::current()), h.pgid));
                (a.service, a.worktree, held.collect::<Vec<_>>())
            })
            .collect();
        left.sort();
        let held = vec![(true, Some(me))];
        assert_eq!(
            left,
            [
                ("api".into(), moved.clone(), held.clone()),
                ("app".into(), moved.clone(), held),
                ("web".into(), moved, vec![]),
            ]
        );
    }

    /// A hold says what holds it: a unit's by its unit, a supervising
    /// wtenv by the command line its hold records, a shell by anything
    /// else (a command that merely starts with the same letters too).
    #[test]
    fn a_hold_is_a_units_a_supervisors_or_a_shells() {
        let of = |command: &str, unit: bool| {
            let mut h = hold(command);
            h.unit = unit.then(|| crate::background::UnitRef::parse("wtenv:wtenv-r-web").unwrap());
            Holding::of(&h)
        };
        assert_eq!(of("wtenv run -- sleep 1", true), Holding::Background);
        assert_eq!(of("wtenv run -- sleep 1", false), Holding::Supervisor(RUN));
        assert_eq!(of("wtenv up", false), Holding::Supervisor(UP));
        assert_eq!(of("wtenv up web api", false), Holding::Supervisor(UP));
        assert_eq!(of("bash", false), Holding::Shell);
        assert_eq!(of("wtenv runner", false), Holding::Shell);
        assert_eq!(of("wtenv upload", false), Holding::Shell);
    }
}
