//! `wtenv run [--grace DUR] -- CMD ARGS...`: CMD with the worktree's
//! variables, its ports held by this wtenv while it runs, released on every
//! exit path.
//!
//! Order matters: the signal thread first (a Ctrl-C from here on is ours),
//! then the release guard (so a failure after the registry write still
//! releases), then allocate-and-hold (one short transaction), then spawn,
//! then, once the child has run for [`supervise::SETTLE`], record its pgid
//! (another short transaction), then release. The registry lock is never
//! held while the child runs.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use crate::alloc::{self, HoldMode};
use crate::commands::env::ensure_verified;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::process::ProcessId;
use crate::registry::{Allocation, Hold, Registry};
use crate::supervise::{self, Pgid, Supervisor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between the forwarded signal and SIGKILL (e.g. 10s, 500ms).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, default_value = "10s")]
    pub grace: Duration,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let mut supervisor = Supervisor::new(args.grace)
        .map_err(|e| Error::io("could not set up signal handling", e))?;
    let scope = ctx.scope()?;
    let line = args
        .command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let _release = ReleaseGuard::new(&ctx.registry);
    let vars = ensure_verified(ctx, &scope, &HoldMode::HoldAll(hold(&line)), false)?;
    if let Some(sig) = supervisor.pending_signal() {
        return Err(Error::Interrupted(sig));
    }
    let program = args.command[0].clone();
    let path = vars
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| v.into())
        .or_else(|| std::env::var_os("PATH"));
    let mut expr = match supervise::resolve_program(&program, path.as_deref()) {
        // The child still sees the name it was given as argv[0].
        Some(exe) => duct::cmd(exe, &args.command[1..]).before_spawn(move |c| {
            c.arg0(&program);
            Ok(())
        }),
        None => duct::cmd(&program, &args.command[1..]),
    };
    for (name, value) in &vars {
        expr = expr.env(name, value);
    }
    let pgid = match supervisor.spawn(&expr, &args.command[0].to_string_lossy(), true) {
        Ok(pgid) => pgid,
        Err(e) => {
            eprintln!("error: {}", e.message());
            if !ctx.quiet {
                eprintln!("hint: check the command's name, PATH and permissions");
            }
            return Ok(e.outcome());
        }
    };
    let report = supervisor.wait(false, || record_pgid(&ctx.registry, |_| Some(pgid)));
    Ok(supervise::run_outcome(&report))
}

/// The hold record of this wtenv process for `command`.
pub fn hold(command: &str) -> Hold {
    let me = ProcessId::current();
    Hold {
        pid: me.pid,
        start_time: me.start_time,
        command: command.to_owned(),
        pgid: None,
    }
}

/// Records each child's process group on this process's holds, so that
/// `ports`/`validate` (and a person) can see which group holds a port.
/// Best effort: the child already runs; a busy registry is logged.
pub fn record_pgid(registry: &Registry, pgid_of: impl Fn(&Allocation) -> Option<Pgid>) {
    let me = ProcessId::current();
    let result = registry.transaction(|data| {
        for a in &mut data.allocations {
            let Some(pgid) = pgid_of(a) else { continue };
            for h in a.holders.iter_mut().filter(|h| h.is(me)) {
                h.pgid = Some(pgid.as_raw());
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!("could not record the child's process group: {e}");
    }
}

/// Releases this process's holds when dropped: on return, on error, on
/// panic (unwinding). A SIGKILL skips it; the stale sweep covers that.
pub struct ReleaseGuard<'a> {
    registry: &'a Registry,
}

impl<'a> ReleaseGuard<'a> {
    pub fn new(registry: &'a Registry) -> Self {
        ReleaseGuard { registry }
    }
}

impl Drop for ReleaseGuard<'_> {
    fn drop(&mut self) {
        let me = ProcessId::current();
        match self
            .registry
            .transaction(|d| Ok(alloc::release_holds(d, me)))
        {
            Ok(released) => {
                for a in released {
                    tracing::info!(port = a.port, service = %a.service, "released");
                }
            }
            Err(e) => eprintln!(
                "error: could not release the ports held by this wtenv: {e}\nhint: the next wtenv command releases them (its holder is gone)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::registry::{Allocation, FILE_NAME};

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
        };
        registry
            .transaction(|d| {
                d.allocations = vec![entry(5000, true), entry(5001, false)];
                Ok(())
            })
            .unwrap();
        let result = std::panic::catch_unwind(|| {
            let _release = ReleaseGuard::new(&registry);
            panic!("a bug in the supervisor");
        });
        assert!(result.is_err());
        let left = registry.read().unwrap().allocations;
        assert_eq!(left.len(), 1, "the held-only port was released: {left:?}");
        assert_eq!((left[0].port, left[0].holders.len()), (5000, 0));
    }
}
