//! A worktree's ports as one service, shared by the commands that need
//! them (`env`, `run`, `up`, `create`, `enter`): allocate what is missing
//! and verify the worktree's own ports ([`ensure_verified`]), reserve them
//! ([`reserve`]), the hold record for a pid given on the command line ([`hold_for`]), and
//! how a port's state reads ([`state_text`]).
//!
//! The allocation rules themselves are plain functions in [`crate::alloc`];
//! this module is where they meet the registry, the system and the stamp.
//! The holds of a supervising wtenv (`run`, `up`) are in
//! [`crate::supervise::hold`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::alloc::{self, HoldMode, RealSystem, System, Usage};
use crate::config::{Config, PortRange, Ranges};
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::exports;
use crate::probe::Holders;
use crate::process::{ProcessId, printable, printable_path};
use crate::registry::{Allocation, Hold, Part, RegistryData};
use crate::report;

/// A hold record for a live pid given on the command line.
pub fn hold_for(pid: u32) -> Result<Hold> {
    let process = ProcessId::of(pid).ok_or_else(|| {
        Error::not_found(format!("--hold {pid}: no such process"))
            .with_hint("pass the pid of a live process, e.g. $$")
    })?;
    Ok(Hold {
        pid,
        start_time: process.start_time,
        command: crate::process::command(pid).unwrap_or_default(),
        // Recorded so that views can name the holder's process group
        // (docs/ARCHITECTURE.md, "Registry"); wtenv never signals a group it did not spawn.
        pgid: crate::process::pgid(pid),
        leader_start: None,
        session: None,
        unit: None,
    })
}

/// The entries a worktree owns at a path it was moved from (`git worktree
/// move`; the stamp in its git dir lists them), found as the sweep finds
/// them ([`alloc::moves_to`]): what `remove` and `release` record at the
/// worktree's path before they release what it owns, so that they
/// release those too. `env` and `allocate` make the same move in their
/// sweep.
#[derive(Debug, Default)]
pub struct Moved {
    pub entries: Vec<Allocation>,
    /// Their ports, one range each: the [`Part`] the release covers.
    ports: Option<Ranges>,
}

impl Moved {
    /// The entries of `repository` recorded elsewhere for the worktree at
    /// `root`, read under the shared lock. Nothing more is read (nor a
    /// directory looked at) when its stamp lists no port it lacks there.
    pub fn find(ctx: &Ctx, repository: &Path, root: &Path) -> Result<Moved> {
        let stamped = crate::worktree::stamped_ports(root);
        if stamped.ports.is_empty() {
            return Ok(Moved::default());
        }
        let own = ctx.registry.read_worktree(repository, root)?;
        let lacks = |(service, port): &(String, u16)| {
            !own.allocations
                .iter()
                .any(|a| a.belongs_to(repository, root) && a.service == *service && a.port == *port)
        };
        if !stamped.ports.iter().any(lacks) {
            return Ok(Moved::default());
        }
        let data = ctx.registry.read_repository(repository)?;
        let mut system = RealSystem::new(&ctx.registry);
        let entries: Vec<Allocation> = alloc::moves_to(&data, &mut system, repository, root)
            .into_iter()
            .map(|(i, _)| data.allocations[i].clone())
            .collect();
        let mut ports: Vec<u16> = entries.iter().map(|a| a.port).collect();
        ports.sort_unstable();
        ports.dedup();
        let ports = Ranges::new(
            ports
                .into_iter()
                .map(|p| PortRange { start: p, end: p })
                .collect(),
        );
        Ok(Moved { entries, ports })
    }

    /// The part of the registry a release of the worktree at `root`
    /// covers: its own entries, and these.
    pub fn part<'a>(&'a self, repository: &'a Path, root: &'a Path) -> Part<'a> {
        Part {
            repository,
            worktree: root,
            ports: self.ports.as_ref(),
        }
    }

    /// Records at `root` those of these entries `data` still holds as
    /// they were found ([`alloc::Fix::MoveTo`], as the sweep does: one
    /// whose service the worktree has a port of its own for by now is
    /// released instead).
    pub fn apply(&self, data: &mut RegistryData, root: &Path) {
        if self.entries.is_empty() {
            return;
        }
        let fixes: Vec<(usize, alloc::Fix)> = data
            .allocations
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                self.entries.iter().any(|m| {
                    m.belongs_to(&a.repository, &a.worktree)
                        && m.service == a.service
                        && m.port == a.port
                })
            })
            .map(|(i, _)| (i, alloc::Fix::MoveTo(root.to_path_buf())))
            .collect();
        alloc::apply_fixes(data, &fixes);
    }
}

/// Allocates what is missing, refuses a port held by another worktree's
/// process (allocation rule 5), and returns the variables. (The stamp direnv watches
/// is the registry's to rewrite: [`crate::registry::Registry::transaction`].)
/// Shared by `env` and `run`. `accept` is the command's own check of the
/// variables (`env`'s output format): like the foreign holder's refusal,
/// it is made before anything is written, so a refusal writes nothing.
pub fn ensure_verified(
    ctx: &Ctx,
    scope: &Scope,
    mode: &HoldMode,
    skip_occupied: bool,
    accept: &Accept<'_>,
) -> Result<Verified> {
    let verified = verify(ctx, scope, mode, skip_occupied, accept)?;
    // The one gate of [env], for every integration (hooks, direnv, nix,
    // `run`, `up`): what it leaves out is said in one line.
    if let Some(message) = &verified.untrusted {
        report::warn(message);
    }
    Ok(verified)
}

/// A command's own check of the worktree's variables (name, value), made
/// before anything is written ([`ensure_verified`]).
pub type Accept<'a> = dyn Fn(&[(String, String)]) -> Result<()> + 'a;

/// [`ensure_verified`]'s `accept` for a command that takes any variables
/// (`run`, `up`: they go into a child's environment, not into text).
pub fn accept_any(_: &[(String, String)]) -> Result<()> {
    Ok(())
}

/// What [`verify`] leaves.
pub struct Verified {
    /// The worktree's variables.
    pub vars: Vec<(String, String)>,
    /// The worktree's ports, by service.
    pub ports: alloc::Ports,
    /// The line saying what an untrusted `[env]` left out.
    pub untrusted: Option<String>,
    /// A [`HoldMode::Settling`] hold is still to be written
    /// ([`alloc::Ensured::hold_waits`]).
    pub hold_waits: bool,
    /// The worktree's allocations as verified: what that hold is to hold.
    pub mine: Vec<Allocation>,
}

/// [`ensure_verified`], giving the line about an untrusted `[env]` to the
/// caller instead of saying it: the prompt hook says it once per worktree.
pub fn verify(
    ctx: &Ctx,
    scope: &Scope,
    mode: &HoldMode,
    skip_occupied: bool,
    accept: &Accept<'_>,
) -> Result<Verified> {
    let mut system = RealSystem::new(&ctx.registry);
    let request = scope.request(skip_occupied);
    let gate = ctx.trust_gate(scope);
    let mut vars = Vec::new();
    // The ports the worktree had, before anything is written or locked;
    // the variables, inside the allocation's transaction, before its write.
    // `run --service S` (a background service's supervisor) looks at S's
    // ports only, the ones it holds: the others are its siblings', which
    // may be binding their sockets that very moment (a probe of one then
    // would be an empty connection to it), and the `up -d` that started
    // them all looked at every port before it started any.
    let mut had = |mine: &[Allocation], system: &mut dyn System| {
        let looked: Vec<Allocation> = match mode {
            HoldMode::HoldServices(_, services) => mine
                .iter()
                .filter(|a| services.contains(&a.service))
                .cloned()
                .collect(),
            _ => mine.to_vec(),
        };
        refuse_foreign(scope, &looked, system)
    };
    let mut vet = |ensured: &alloc::Ensured| {
        vars = exports::variables(scope, &ensured.ports, gate.applies());
        accept(&vars)
    };
    let ensured = alloc::ensure_vetted(
        &ctx.registry,
        &request,
        mode,
        &mut system,
        &mut had,
        &mut vet,
    )?;
    Ok(Verified {
        vars,
        ports: ensured.ports,
        untrusted: gate.message(&scope.config),
        hold_waits: ensured.hold_waits,
        mine: ensured.mine,
    })
}

/// Allocation rule 5: a port of the worktree that a process outside it
/// holds is refused. (A port picked by this call was proved free under
/// the probe lock: it is not among them.)
fn refuse_foreign(scope: &Scope, mine: &[Allocation], system: &mut dyn System) -> Result<()> {
    let mine: Vec<_> = mine.iter().collect();
    let usage = alloc::classify(&mine, system).map_err(Error::probe)?;
    let foreign: Vec<(u16, String, Holders)> = mine
        .iter()
        .zip(usage)
        .filter_map(|(a, u)| match u {
            Usage::Foreign(h) => Some((a.port, a.service.clone(), h)),
            _ => None,
        })
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::ForeignHolder {
        worktree: scope.worktree.root.clone(),
        ports: foreign,
    })
}

/// Reserves every service's port for `scope`'s worktree (sticky, fail
/// fast unless `skip_occupied`, the `--skip-occupied` flag, or the
/// config's key): what `create --ports`, `enter`, `up --detach` and
/// `export` do. Even under a live hold of the worktree's ports (a `nix
/// develop` shell's), unlike `env`: what they leave outlives that hold.
pub fn reserve(ctx: &Ctx, scope: &Scope, skip_occupied: bool) -> Result<alloc::Ports> {
    reserve_request(ctx, &scope.request(skip_occupied))
}

/// [`reserve`] for a request made by hand, for a worktree git may not
/// have finished making (`create`).
pub fn reserve_request(ctx: &Ctx, request: &alloc::Request) -> Result<alloc::Ports> {
    alloc::ensure(
        &ctx.registry,
        request,
        &HoldMode::Sticky,
        &mut RealSystem::new(&ctx.registry),
    )
}

/// A port of a configured range that someone outside wtenv's record
/// holds: free in the registry but occupied on the system, or reserved for
/// a worktree but held by a process not of it (allocation rule 5's foreign holder).
#[derive(Debug, Clone)]
pub struct Conflict {
    pub port: u16,
    pub purpose: String,
    pub range: PortRange,
    /// The reservation it takes over, as (service, worktree); `None`: the
    /// port is free in the registry.
    pub reserved_for: Option<(String, PathBuf)>,
    pub holders: Holders,
}

impl Conflict {
    /// `pid 12 (node) in /dir`, then for a reserved port whose it is.
    pub fn describe(&self) -> String {
        let mut text = alloc::describe_found(&self.holders);
        if let Some((service, worktree)) = &self.reserved_for {
            text.push_str(&format!(
                "; reserved for {} of {}",
                printable(service),
                printable_path(worktree)
            ));
        }
        text
    }
}

/// Every conflict of `config`'s ranges, both kinds, by port: what
/// `conflicts` and `validate --verify-ports` agree on.
pub fn conflicts(
    config: &Config,
    data: &RegistryData,
    system: &mut dyn System,
) -> Result<Vec<Conflict>> {
    let mut out = unrecorded_conflicts(config, data, system)?;
    let range_of = |port: u16| {
        config.purposes.iter().find_map(|(purpose, ranges)| {
            ranges
                .iter()
                .find(|r| r.contains(port))
                .map(|r| (purpose.clone(), r))
        })
    };
    let reserved: Vec<&Allocation> = data
        .allocations
        .iter()
        .filter(|a| range_of(a.port).is_some())
        .collect();
    let usage = alloc::classify(&reserved, system).map_err(Error::probe)?;
    for (a, u) in reserved.into_iter().zip(usage) {
        if let (Usage::Foreign(holders), Some((purpose, range))) = (u, range_of(a.port)) {
            out.push(Conflict {
                port: a.port,
                purpose,
                range,
                reserved_for: Some((a.service.clone(), a.worktree.clone())),
                holders,
            });
        }
    }
    out.sort_by_key(|c| c.port);
    Ok(out)
}

/// The conflicts of the first kind only: ports of `config`'s ranges free
/// in the registry (`data`: every repository's records) but held on the
/// system. `list` shows these; a reservation held by a foreign process is
/// already its worktree's row, so probing every recorded port of the
/// ranges (a fleet's worth) would be for nothing.
pub fn unrecorded_conflicts(
    config: &Config,
    data: &RegistryData,
    system: &mut dyn System,
) -> Result<Vec<Conflict>> {
    let taken: BTreeSet<u16> = data.allocations.iter().map(|a| a.port).collect();
    let free = alloc::range_conflicts(&config.purposes, &taken, system).map_err(Error::probe)?;
    let mut busy = free.iter().map(|c| c.port).collect();
    let holders = alloc::lookup_busy(&mut busy, system).map_err(Error::probe)?;
    Ok(free
        .into_iter()
        .filter(|c| busy.contains(&c.port))
        .map(|c| Conflict {
            holders: holders.get(&c.port).cloned().unwrap_or_default(),
            port: c.port,
            purpose: c.purpose,
            range: c.range,
            reserved_for: None,
        })
        .collect())
}

/// The STATE of an unrecorded conflict's row in `list`: the state a
/// reserved port held from outside its worktree reads as ([`state_text`]:
/// one rendering of holders for every row), then that the registry has
/// the port free: `conflict (pid 12 node): free in the registry`.
pub fn unrecorded_state_text(c: &Conflict) -> String {
    let state = state_text(&Usage::Foreign(c.holders.clone()));
    format!("{state}: free in the registry")
}

/// `state` (a row's STATE in `ports` and `list`), said of a port whose
/// worktree is gone (allocation rule 4: its directory is missing, and git
/// lists it no more, or as prunable): `worktree gone, idle`. The port is
/// still recorded, and its live state still read, until the next
/// allocation in its range or `validate --fix` (`worktree-gone`) sweeps
/// it. First, so that a table shortened to fit a terminal keeps it.
pub fn with_worktree_gone(state: String, gone: bool) -> String {
    if gone {
        format!("worktree gone, {state}")
    } else {
        state
    }
}

/// `state` said of a port kept for a worktree of a repository moved
/// whole (`mv` of its main worktree and its worktrees), as `validate` run
/// in that repository reports it (`repository-moved`, the same rule:
/// [`crate::alloc::left_to_claim`]): `repository moved, idle`. Kept, not
/// freed: the worktree's next `env` takes it, once git finds it again
/// (`git worktree repair`).
pub fn with_repository_moved(state: String, kept: bool) -> String {
    if kept {
        format!("repository moved, {state}")
    } else {
        state
    }
}

/// `state` said of a port whose worktree was moved away from the path
/// recorded (`git worktree move`): `moved to /src/m, idle`. The entry
/// follows it at the next allocation in its range, its own `env`, or
/// `validate --fix` (`worktree-moved`): it is not freed.
pub fn with_moved_to(state: String, to: Option<&Path>) -> String {
    match to {
        Some(to) => format!("moved to {}, {state}", printable_path(to)),
        None => state,
    }
}

/// `idle`, `listening (pid 12 node)`, `conflict (holder unknown)`,
/// `conflict (no listening process (...))`.
pub fn state_text(usage: &Usage) -> String {
    let who = match usage {
        Usage::Idle => return "idle".into(),
        Usage::Foreign(h) if h.processes.is_empty() => h.unnamed().to_owned(),
        _ => usage
            .listeners()
            .iter()
            .map(|h| format!("pid {} {}", h.pid, printable(&h.command)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{} ({who})", usage.label())
}
