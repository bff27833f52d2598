//! Rule 5: the live state of allocated ports (idle, in use by their
//! worktree, held by a foreign process), and how holders read in views.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use super::System;
use crate::probe::{Holder, Holders, PortState};
use crate::process;
use crate::registry::{Allocation, Hold};

/// The live state of one allocated port (rule 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// Nothing listens.
    Idle,
    /// Held on the system by a process of its own worktree: working
    /// inside it, descending from a live holder of the allocation
    /// ([`System::descends_from_holder`]), or the service manager
    /// listening for its service ([`System::manager_holds`]).
    InUse(Vec<Holder>),
    /// Held by a process not of its worktree, only such processes named
    /// (not the worktree's own beside them); none named: holder unknown,
    /// or no listening socket ([`Holders::unlistened`]).
    Foreign(Holders),
}

impl Usage {
    pub fn label(&self) -> &'static str {
        match self {
            Usage::Idle => "idle",
            Usage::InUse(_) => "listening",
            Usage::Foreign(_) => "conflict",
        }
    }

    /// Whether a socket listens on the port ([`Holders::listening`]):
    /// not when idle (the probe found it free), so when in use; held
    /// from outside, as the lookup found it.
    pub fn listening(&self) -> Option<bool> {
        match self {
            Usage::Idle => Some(false),
            Usage::InUse(_) => Some(true),
            Usage::Foreign(h) => h.listening,
        }
    }

    /// The processes found listening: none when idle, or held from
    /// outside by a process nobody can name.
    pub fn listeners(&self) -> &[Holder] {
        match self {
            Usage::Idle => &[],
            Usage::InUse(h) => h,
            Usage::Foreign(h) => &h.processes,
        }
    }
}

/// Who holds each port of `busy` (ports a probe found occupied), as the
/// system names them: where a probe and a holder lookup meet, for every
/// caller (`env`, `run`, `up`, an allocation's conflict, `list`,
/// `conflicts`, `validate --verify-ports`). A port whose lookup finds
/// nobody is probed once more: its holder may have exited between the
/// probe and the lookup (a dev server stopping), and a port free now is
/// free: it leaves `busy`. One still occupied stays in `busy` with no
/// holder: holder unknown (a hidden `/proc`, another namespace), or no
/// listening socket at all ([`Holders::unlistened`]). No port busy, no
/// system call.
pub fn lookup_busy(
    busy: &mut BTreeSet<u16>,
    system: &mut dyn System,
) -> io::Result<BTreeMap<u16, Holders>> {
    if busy.is_empty() {
        return Ok(BTreeMap::new());
    }
    let holders = system.holders(busy);
    let unnamed: Vec<u16> = busy
        .iter()
        .copied()
        .filter(|p| holders.get(p).is_none_or(|h| h.processes.is_empty()))
        .collect();
    for port in unnamed {
        if system.probe(port)? == PortState::Free {
            tracing::debug!(port, "occupied, then held by nobody: free now");
            busy.remove(&port);
        }
    }
    Ok(holders)
}

/// The ports of `ports` busy on the system now, each with who holds it
/// ([`lookup_busy`]), for a caller that refuses or reports a busy port
/// outside an allocation (`up`'s refusal of a port something holds, `up
/// -d`'s not-ready error). A port whose probe fails is left out: nothing
/// is said of it; one whose second probe fails stays, holder unknown.
pub fn busy_holders(
    ports: impl IntoIterator<Item = u16>,
    system: &mut dyn System,
) -> BTreeMap<u16, Holders> {
    let mut busy: BTreeSet<u16> = ports
        .into_iter()
        .filter(|&p| system.probe(p).is_ok_and(|s| s == PortState::Occupied))
        .collect();
    let mut found = lookup_busy(&mut busy, system).unwrap_or_default();
    busy.into_iter()
        .map(|port| (port, found.remove(&port).unwrap_or_default()))
        .collect()
}

/// Rule 5 for a batch of allocations: probe each; look up holders of the
/// busy ones in one pass ([`lookup_busy`]). A port whose every named
/// holder ended before it was judged ([`judge`]) is looked up once more:
/// what holds it now decides, and a port free by then is idle.
pub fn classify(allocations: &[&Allocation], system: &mut dyn System) -> io::Result<Vec<Usage>> {
    let mut busy = BTreeSet::new();
    for a in allocations {
        if system.probe(a.port)? == PortState::Occupied {
            busy.insert(a.port);
        }
    }
    let mut holders = lookup_busy(&mut busy, system)?;
    let mut usage: Vec<Option<Usage>> = Vec::with_capacity(allocations.len());
    for a in allocations {
        usage.push(match holders.remove(&a.port) {
            Some(found) if busy.contains(&a.port) => judge(a, found, system),
            None if busy.contains(&a.port) => Some(Usage::Foreign(Holders::default())),
            _ => Some(Usage::Idle),
        });
    }
    let mut again: BTreeSet<u16> = allocations
        .iter()
        .zip(&usage)
        .filter(|(_, u)| u.is_none())
        .map(|(a, _)| a.port)
        .collect();
    let mut holders = lookup_busy(&mut again, system)?;
    for (a, u) in allocations.iter().zip(usage.iter_mut()) {
        if u.is_some() {
            continue;
        }
        let found = holders.remove(&a.port).unwrap_or_default();
        *u = Some(if !again.contains(&a.port) {
            Usage::Idle
        } else {
            // Named again and ended again: holder unknown.
            judge(a, found.clone(), system).unwrap_or(Usage::Foreign(Holders {
                processes: Vec::new(),
                ..found
            }))
        });
    }
    Ok(usage.into_iter().flatten().collect())
}

/// Rule 5 for one busy port of `a`, by the processes `found` listening
/// on it: in use when each is of `a`'s worktree (working in it,
/// descending from a live holder of `a` that does not work in another
/// repository's worktree, or the service manager listening for it),
/// foreign when one is not, and then only those not
/// of it are named: what to stop, never the worktree's own server beside
/// them. A holder that ended since the lookup holds nothing any more, and
/// its ancestry can no longer be read: it is left out (a short-lived
/// child that inherited a handed-on socket, such as a subshell of a
/// version manager's shim working in the shim's own directory, must not
/// pass for a foreign holder). `None`: every holder named has ended.
fn judge(a: &Allocation, mut found: Holders, system: &mut dyn System) -> Option<Usage> {
    if found.processes.is_empty() {
        return Some(Usage::Foreign(found));
    }
    let (mut own, mut foreign) = (Vec::new(), Vec::new());
    for h in std::mem::take(&mut found.processes) {
        if h.cwd
            .as_deref()
            .is_some_and(|c| system.works_in(c, &a.worktree, &a.repository))
            || a.holders.iter().any(|hold| {
                system.descends_from_holder(h.pid, hold)
                    && !system.holder_works_elsewhere(hold, &a.repository, &a.worktree)
            })
            || system.manager_holds(a, &h)
        {
            own.push(h);
        } else if system.running(h.pid) {
            foreign.push(h);
        }
    }
    if !foreign.is_empty() {
        found.processes = foreign;
        Some(Usage::Foreign(found))
    } else if own.is_empty() {
        None
    } else {
        Some(Usage::InUse(own))
    }
}

/// Whether a process working in `dir` is of the worktree at `worktree`
/// of `repository` by that directory (rule 5): `dir` is inside
/// `worktree`, and no directory on the way up from `dir` to `worktree` is
/// the top level of another worktree of `repository`. A linked worktree
/// placed inside another (`git worktree add .worktrees/feat` in the main
/// one) owns what runs in it; a checkout of another repository inside
/// `worktree` (a submodule, a clone) does not end the walk: a dev server
/// started in a submodule is still the worktree's own. Only a directory
/// with a `.git` is read ([`Worktree::discover_resolved`], git's files, no
/// git process); one that cannot be read proves nothing, and the walk
/// goes on. Asked only of a process found listening on a worktree's port.
///
/// [`Worktree::discover_resolved`]: crate::worktree::Worktree::discover_resolved
pub fn works_in_worktree(dir: &Path, worktree: &Path, repository: &Path) -> bool {
    if !dir.starts_with(worktree) {
        return false;
    }
    !dir.ancestors()
        .take_while(|d| *d != worktree)
        .filter(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
        .any(|d| {
            crate::worktree::Worktree::discover_resolved(d)
                .is_ok_and(|found| found.is_some_and(|w| w.root == d && w.common_dir == repository))
        })
}

/// How long `a` lives, as the read-only views show it: `reserved`, then
/// each recorded holder in the words of [`held_by`]; `held` when it has
/// neither.
pub fn lifetime(a: &Allocation, system: &mut dyn System) -> String {
    let mut parts: Vec<String> = Vec::new();
    if a.reserved {
        parts.push("reserved".into());
    }
    for h in &a.holders {
        parts.push(held_by(h, system));
    }
    if parts.is_empty() {
        parts.push("held".into());
    }
    parts.join(", ")
}

/// A recorded holder, in the words every command uses for one: `held by
/// pid N` (and its unit, for a background service, so that what to stop
/// is named) while it lives ([`System::holder_alive`]), `held by pid N:
/// gone` once it is not (a view writes nothing: the next allocating
/// command or `validate --fix` sweeps it), with its orphans when its
/// group outlived it. Where its command is said too, [`held_by_command`].
pub fn held_by(h: &Hold, system: &mut dyn System) -> String {
    let holder = holder(h);
    match holder_state(h, system) {
        HolderState::Alive => format!("held by {holder}"),
        HolderState::Gone => format!("held by {holder}: gone"),
        HolderState::Orphans(orphans) => format!(
            "held by {holder}: gone, its orphans run: {}",
            describe_pids(&orphans)
        ),
    }
}

/// What is left running of a recorded holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderState {
    /// It lives ([`System::holder_alive`]).
    Alive,
    /// It is gone, the processes of its group that outlived it run
    /// ([`System::orphans`]).
    Orphans(Vec<u32>),
    /// It is gone, and nothing of its group runs.
    Gone,
}

/// What is left running of the recorded holder `h` (the views' words,
/// [`held_by`], and `remove`'s in-use check): whether it lives by the one
/// rule wherever a recorded holder's liveness decides, which `release`,
/// the sweep and `validate` ask directly ([`System::holder_alive`]: its
/// process, or, for one that runs as a unit of a service manager, that
/// unit while it is active, the manager restarting it under a new pid);
/// once gone, its orphans.
pub fn holder_state(h: &Hold, system: &mut dyn System) -> HolderState {
    if system.holder_alive(h) {
        return HolderState::Alive;
    }
    let orphans = system.orphans(h);
    if orphans.is_empty() {
        HolderState::Gone
    } else {
        HolderState::Orphans(orphans)
    }
}

/// A live recorded holder with its command, in the words of every
/// refusal, warning and finding that names one (`remove`, `release`,
/// `validate`): [`held_by`]'s, then `: COMMAND`, as in `held by pid 4242:
/// wtenv run -- npm start` (`held by pid 4242 (systemd unit U): wtenv up`
/// for a background service). `live` says outright that it lives (`held
/// by live pid N: COMMAND`), where that is the point: `validate`'s entry
/// of a gone worktree, kept only while its holder lives. Asked only of
/// a holder found alive.
pub fn held_by_command(h: &Hold, live: bool) -> String {
    let live = if live { "live " } else { "" };
    format!(
        "held by {live}{}: {}",
        holder(h),
        process::printable(&h.command)
    )
}

/// `pid N`, and the unit it runs as (` (systemd unit U)`), if any.
fn holder(h: &Hold) -> String {
    let unit = h
        .unit
        .as_ref()
        .map(|u| {
            format!(
                " ({} unit {})",
                u.manager.name(),
                process::printable(&u.name)
            )
        })
        .unwrap_or_default();
    format!("pid {}{unit}", h.pid)
}

/// The recorded holders of `a` as JSON, each with whether it lives.
pub fn holds_json(a: &Allocation, system: &mut dyn System) -> serde_json::Value {
    a.holders
        .iter()
        .map(|h| {
            let mut v = serde_json::to_value(h).expect("a hold serializes");
            v["alive"] = system.holder_alive(h).into();
            let orphans: Vec<serde_json::Value> = system
                .orphans(h)
                .into_iter()
                .map(|p| serde_json::json!({"pid": p, "command": process::command(p)}))
                .collect();
            v["orphans"] = orphans.into();
            v
        })
        .collect()
}

/// `pid 12 (npm run dev), pid 13 (node vite)`: processes named for a
/// message.
pub fn describe_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| {
            let command = process::command(*p).unwrap_or_default();
            format!("pid {p} ({})", process::printable(&command))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::HoldMode;
    use crate::alloc::fake::*;
    use crate::registry::RegistryData;

    #[test]
    fn classify_tells_own_from_foreign() {
        let holder = |pid, cwd: &str| Holder {
            pid,
            command: "srv".into(),
            cwd: Some(cwd.into()),
            unit: None,
        };
        let mut sys = Fake {
            occupied: [5000, 5001, 5002].into(),
            holders: [
                (5000, vec![holder(1, "/r/sub")]),
                // The worktree's own server and a stranger on one socket:
                // only the stranger is named (what to stop).
                (5001, vec![holder(3, "/r"), holder(2, "/elsewhere")]),
            ]
            .into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        alloc(
            &mut data,
            "/r",
            vec!["a", "b", "c", "d"],
            &HoldMode::Reserve,
            &mut Fake::default(),
        )
        .unwrap();
        let refs: Vec<&Allocation> = data.allocations.iter().collect();
        let usage = classify(&refs, &mut sys).unwrap();
        assert!(matches!(usage[0], Usage::InUse(_)));
        assert!(
            matches!(&usage[1], Usage::Foreign(h) if h.processes == [holder(2, "/elsewhere")]),
            "{usage:?}"
        );
        assert_eq!(usage[2], Usage::Foreign(Holders::default()));
        assert_eq!(usage[3], Usage::Idle);
    }

    /// A listener outside the worktree under its allocation's holder is
    /// its own while that holder lives; once the holder is gone, its pid
    /// is nobody's to descend from (another process may have it now).
    #[test]
    fn only_a_live_holder_makes_its_descendants_own() {
        let mut data = app_reserved();
        data.allocations[0].holders.push(hold(7));
        let refs: Vec<&Allocation> = data.allocations.iter().collect();
        let listener = Holder {
            pid: 7,
            command: "srv".into(),
            cwd: Some("/elsewhere".into()),
            unit: None,
        };
        let mut sys = Fake {
            occupied: [5000].into(),
            holders: [(5000, vec![listener.clone()])].into(),
            ..Fake::default()
        };
        let usage = classify(&refs, &mut sys).unwrap();
        assert_eq!(usage, vec![Usage::InUse(vec![listener.clone()])]);
        sys.dead.insert(7);
        let usage = classify(&refs, &mut sys).unwrap();
        let foreign = Holders {
            processes: vec![listener],
            ..Holders::default()
        };
        assert_eq!(usage, vec![Usage::Foreign(foreign)]);
    }

    /// A listener named by both lookups and ended before each judgment
    /// (another short-lived one each time, as far as rule 5 can tell) is
    /// not named: the port is busy, its holder unknown.
    #[test]
    fn a_port_whose_named_listeners_end_each_time_is_held_by_someone_unknown() {
        let data = app_reserved();
        let refs: Vec<&Allocation> = data.allocations.iter().collect();
        let listener = Holder {
            pid: 9,
            command: "sh".into(),
            cwd: Some("/elsewhere".into()),
            unit: None,
        };
        let mut sys = Fake {
            occupied: [5000].into(),
            holders: [(5000, vec![listener])].into(),
            ended: [9].into(),
            ..Fake::default()
        };
        let usage = classify(&refs, &mut sys).unwrap();
        assert_eq!(usage, vec![Usage::Foreign(Holders::default())]);
    }

    /// A holder lives while its process does, or while the unit it runs
    /// as is active (a unit the manager restarts, its recorded pid gone):
    /// the one rule `remove`'s in-use check, `release` and `validate`
    /// decide by. Gone, its orphans are what is left of it.
    #[test]
    fn a_holder_whose_unit_is_active_lives_though_its_pid_is_gone() {
        let unit = "wtenv-r-wt-web.service";
        let mut h = hold(7);
        h.unit = Some(crate::background::UnitRef {
            manager: crate::background::Manager::Systemd,
            name: unit.into(),
        });
        let mut sys = Fake {
            dead: [7].into(),
            active_units: [unit.to_owned()].into(),
            orphans: [(7, vec![8])].into(),
            ..Fake::default()
        };
        assert_eq!(holder_state(&h, &mut sys), HolderState::Alive);
        sys.active_units.clear();
        assert_eq!(holder_state(&h, &mut sys), HolderState::Orphans(vec![8]));
        sys.orphans.clear();
        assert_eq!(holder_state(&h, &mut sys), HolderState::Gone);
        sys.dead.clear();
        assert_eq!(holder_state(&h, &mut sys), HolderState::Alive);
    }

    /// A live holder reads the same in the views ([`held_by`]) and where
    /// its command is said too ([`held_by_command`]: `remove`, `release`,
    /// `validate`), unit included; the command is said printable.
    #[test]
    fn a_holder_with_its_command_reads_as_the_views_say_it() {
        let mut h = hold(7);
        h.command = "wtenv up\x1b[2J".into();
        h.unit = Some(crate::background::UnitRef {
            manager: crate::background::Manager::Systemd,
            name: "wtenv-r-wt-web.service".into(),
        });
        let mut sys = Fake::default();
        let view = held_by(&h, &mut sys);
        assert_eq!(view, "held by pid 7 (systemd unit wtenv-r-wt-web.service)");
        assert_eq!(
            held_by_command(&h, false),
            format!("{view}: wtenv up\\u{{1b}}[2J")
        );
        assert_eq!(
            held_by_command(&h, true),
            "held by live pid 7 (systemd unit wtenv-r-wt-web.service): wtenv up\\u{1b}[2J"
        );
    }
}
