//! Stopping background services (`down`, `remove --force`, a failed
//! `up --detach`), which still run, and whose ports are still held once
//! they stopped.

use std::time::{Duration, Instant};

use super::{
    Live, Manager, Owner, Record, StateDir, WorktreeLock, detached, launchd, query, systemd,
};
use crate::alloc::{self, RealSystem};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::probe::Holders;
use crate::process::{printable, printable_path};
use crate::report;

/// `down`: stops `records`' units, waits until they are inactive and their
/// holds are gone from the registry, and forgets them. What still holds
/// one of their ports then ([`StillHeld::probe`]) is no unit's (a daemon
/// that double-forked out of its group, a server that moved to a group
/// of its own before its supervisor was SIGKILLed).
pub fn stop(ctx: &Ctx, dir: &StateDir, records: &[Record], patience: Duration) -> Result<()> {
    for manager in [Manager::Systemd, Manager::Launchd, Manager::Wtenv] {
        let mine: Vec<&Record> = records.iter().filter(|r| r.manager == manager).collect();
        if mine.is_empty() {
            continue;
        }
        match manager {
            Manager::Systemd => systemd::stop(&mine)?,
            Manager::Launchd => launchd::stop(&mine, dir.path())?,
            Manager::Wtenv => detached::stop(&mine, patience / 2),
        }
    }
    let deadline = Instant::now() + patience;
    let mut left: Vec<Record> = records.to_vec();
    while !left.is_empty() {
        left.retain_mut(|r| still_running(ctx, r, patience, deadline));
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = left.iter().map(|r| printable(&r.unit)).collect();
            return Err(Error::failed(format!(
                "{} still running after {}",
                names.join(", "),
                humantime::format_duration(patience)
            ))
            .with_hint("run 'wtenv down' again, or 'wtenv status' to see them"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A unit's run released its own holds; one killed with SIGKILL did
    // not: those are dropped now that their units are inactive. Only
    // those: a sweep of the whole registry here released the entries of a
    // repository moved whole (`mv`) that its worktrees had yet to claim.
    let units: Vec<&str> = records.iter().map(|r| r.unit.as_str()).collect();
    let dropped = ctx.registry.transaction(|data| {
        let mut system = RealSystem::new(&ctx.registry);
        let gone: Vec<crate::registry::Hold> = data
            .allocations
            .iter()
            .flat_map(|a| &a.holders)
            .filter(|h| {
                h.unit
                    .as_ref()
                    .is_some_and(|u| units.contains(&u.name.as_str()))
            })
            .filter(|h| alloc::holder_gone(&mut system, h))
            .cloned()
            .collect();
        alloc::release_holds_where(data, |h| gone.contains(h));
        Ok(())
    });
    // The units are stopped whatever the write did: said so, and how the
    // rest is done (a `down` again finds them stopped and forgets them).
    if let Err(e) = dropped {
        let cause = match &e {
            Error::Io { source, .. } => {
                crate::files::write_failure(source).map(|(what, mend)| format!("{what}: {mend}"))
            }
            _ => None,
        }
        .unwrap_or_else(|| "mend what the error says".to_owned());
        return Err(Error::failed(format!(
            "stopped {}, but could not then drop the holds their supervisors left: {e}",
            units
                .iter()
                .map(|u| printable(u))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint(format!(
            "{cause}, then run 'wtenv down' again: it finds them stopped, and forgets them"
        )));
    }
    for r in records {
        dir.forget(r);
    }
    Ok(())
}

/// Whether `record`'s unit still runs, while [`stop`] waits for it until
/// `deadline`. A supervisor of the wtenv back end that was SIGKILLed
/// after the SIGTERM reached it, before it stopped its service, leaves
/// its service running on, orphaned: it is stopped here at once, as
/// `stop` stops an orphan ([`detached::stop`]: SIGTERM, SIGKILL after
/// half of `patience`, or of what is left of it), not waited for until
/// the deadline. Its group is read again when the record names none yet
/// ([`super::readiness::with_group`]): the supervisor may have recorded
/// it since the record was read.
fn still_running(ctx: &Ctx, record: &mut Record, patience: Duration, deadline: Instant) -> bool {
    if record.manager != Manager::Wtenv {
        return query(record).running();
    }
    *record = super::readiness::with_group(&ctx.registry, record.clone());
    let live = query(record);
    if live.state != "orphaned" {
        return live.running();
    }
    let left = deadline.saturating_duration_since(Instant::now());
    detached::stop(&[record], (patience / 2).min(left / 2));
    query(record).running()
}

/// Ports of stopped services that something still holds, each with who
/// (the lookup and words of `conflicts`).
#[derive(Debug)]
pub struct StillHeld {
    /// Port, service, holders.
    busy: Vec<(u16, String, Holders)>,
    /// The main pids of the worktree's units that still run: a port one
    /// of them (or a process under it) holds is stopped with `wtenv
    /// down`, not `kill`.
    units: Vec<u32>,
}

impl StillHeld {
    /// The ports of `records`, stopped ([`stop`]), probed once; `None`
    /// when all are free. A port no socket listens on that only a
    /// connection's TIME_WAIT keeps busy is left out: it clears by
    /// itself, and nothing of the service is left in it. Probed in turn
    /// with other wtenv processes (the probe lock), whose probe of the
    /// port would make it look busy. `units`: the main pids of the
    /// worktree's units that still run ([`super::unit_pids`], read once
    /// `records` are forgotten), for the hint.
    pub fn probe(ctx: &Ctx, records: &[Record], units: Vec<u32>) -> Option<StillHeld> {
        let ports = records.iter().flat_map(|r| r.ports.iter().copied());
        let mut holders = alloc::busy_holders(ports, &mut RealSystem::new(&ctx.registry));
        let busy: Vec<(u16, String, Holders)> = records
            .iter()
            .flat_map(|r| r.ports.iter().map(move |&p| (p, r)))
            .filter_map(|(port, r)| Some((port, r.service.clone(), holders.remove(&port)?)))
            .filter(|(_, _, h)| !(h.unlistened() && h.time_wait))
            .collect();
        (!busy.is_empty()).then_some(StillHeld { busy, units })
    }

    /// `ports of the stopped services are still held:` and a line per
    /// port, as `up`'s refusal of a busy port names its holders.
    fn message(&self) -> String {
        format!(
            "ports of the stopped services are still held:\n{}",
            report::foreign_lines(&self.busy)
        )
    }

    /// What to do: `up`'s words for a busy port
    /// ([`crate::supervise::services::busy_hint`]).
    fn hint(&self) -> String {
        crate::supervise::services::busy_hint(&self.busy, &self.units, None)
    }

    /// `down`'s error (exit 1: it could not do all it was asked).
    pub fn error(&self) -> Error {
        Error::failed(self.message()).with_hint(self.hint())
    }

    /// What a failed `up -d` says of it.
    pub fn warn(&self) {
        report::warn_hinted(&self.message(), &self.hint());
    }
}

/// A worktree's background records, looked at under its lock
/// ([`WorktreeLock`]) when its git dir is known (`None` when its
/// directory is gone): `remove` looks for what runs, and with `--force`
/// stops it, in one turn, so that an `up -d` at work in that worktree is
/// waited for (said once, as `down` says it) and its units then seen,
/// or waits for this one.
pub struct Locked {
    dir: StateDir,
    _lock: Option<WorktreeLock>,
}

impl Locked {
    /// The lock of `owner`'s worktree, taken for `command`; `None` when
    /// nothing ever ran in the background (no state directory).
    pub fn take(ctx: &Ctx, owner: &Owner, command: &str) -> Result<Option<Locked>> {
        let Some(dir) = StateDir::existing(ctx)? else {
            return Ok(None);
        };
        let place = format!("worktree {}", printable_path(owner.root));
        let lock = owner
            .git_dir
            .map(|g| WorktreeLock::acquire(&dir, g, command, &place, &|| Ok(())))
            .transpose()?;
        Ok(Some(Locked { dir, _lock: lock }))
    }

    /// The background services of `owner`'s worktree that still run.
    pub fn running(&self, owner: &Owner) -> Vec<Record> {
        self.dir
            .records_in(owner)
            .into_iter()
            .filter(|r| query(r).running())
            .collect()
    }

    /// The record files of the worktree whose units `naming` names that
    /// this wtenv cannot read ([`super::Unreadable`]): left as they are,
    /// and what they name left running.
    pub fn unreadable(&self, naming: &super::Naming) -> Vec<super::Unreadable> {
        self.dir.unreadable_in(naming, &[])
    }

    /// Stops every background service of `owner`'s worktree (`remove
    /// --force`), saying each one as `down` does. What still holds a
    /// port of theirs is not probed here: `remove` names it with what it
    /// leaves running (`left running: port 5000 (web): listening: ...`).
    pub fn stop_all(&self, ctx: &Ctx, owner: &Owner) -> Result<()> {
        let records = self.dir.records_in(owner);
        stop_saying(ctx, &self.dir, &records, Duration::from_secs(60))
    }
}

/// `validate --fix`: forgets the records whose unit no longer runs and
/// whose worktree is gone ([`Record::worktree_gone`]): nothing could find
/// them again (`down`, `status` run in a worktree). Their logs stay.
pub fn forget_gone(ctx: &Ctx) -> Result<Vec<Record>> {
    let Some(dir) = StateDir::existing(ctx)? else {
        return Ok(Vec::new());
    };
    let gone: Vec<Record> = dir
        .records()
        .into_iter()
        .filter(|r| r.worktree_gone() && !query(r).running())
        .collect();
    for r in &gone {
        dir.forget(r);
    }
    Ok(gone)
}

/// [`stop`], then one line per record: `stopped web (<unit>)`, or that it
/// was not running (as its manager said before the stop) and its record
/// is removed (`down`'s and `remove --force`'s words).
pub fn stop_saying(
    ctx: &Ctx,
    dir: &StateDir,
    records: &[Record],
    patience: Duration,
) -> Result<()> {
    // A service that died on its own is not stopped here: said so, by the
    // state its manager gives (as `status` shows it). Its record is
    // removed and its holds swept all the same.
    let before: Vec<Live> = records.iter().map(query).collect();
    stop(ctx, dir, records, patience)?;
    for (r, live) in records.iter().zip(&before) {
        // Read back from a record, a file anyone may have edited.
        let service = printable(&r.service);
        report::status(&if live.running() {
            format!("stopped {service} ({})", printable(&r.unit))
        } else {
            format!(
                "{service} was not running ({}); its record is removed",
                printable(&live.state)
            )
        });
    }
    Ok(())
}
