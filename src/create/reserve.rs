//! `create --ports`: the reservation made beside `git worktree add`, then
//! confirmed for the new checkout's own config.
//!
//! It runs beside git because it is most of what create adds to git's own
//! time (a durable registry write); its transaction never waits for git,
//! so the registry lock is not held for git's sake. It is made for the
//! config create started from; should the new checkout's own config ask
//! for other services or another range, it is made again for that one.

use crate::alloc::{Ports, Request};
use crate::context::{self, Ctx, Scope};
use crate::error::Result;
use crate::worktree::{Meta, Worktree};

use super::Plan;

/// What was asked for while git checked out, and how that went (only its
/// error is kept: the ports are read back once git is done).
pub(super) struct Early<'p> {
    asked: Request<'p>,
    outcome: Result<()>,
}

/// The request for the config `create` started from: the new checkout's
/// own is almost always the same file, and is looked at once git is done.
/// Its checks need nothing but the plan (no registry, no file git checks
/// out), so it is made before git runs: what it refuses, git never starts.
pub(super) fn request(plan: &Plan) -> Result<Request<'_>> {
    crate::exports::check_size(&plan.config, &plan.path, &plan.purpose, &plan.identifier)?;
    Ok(context::request(
        &plan.config,
        &plan.common_dir,
        &plan.path,
        &plan.purpose,
        plan.config.require_purpose(&plan.purpose)?,
        plan.skip_occupied,
    ))
}

/// Reserves `asked` while git checks out.
pub(super) fn early<'p>(ctx: &Ctx, asked: Request<'p>) -> Early<'p> {
    let outcome = crate::ports::reserve_request(ctx, &asked).map(drop);
    Early { asked, outcome }
}

/// The scope of the new worktree `wt`, by its own config: its branch may
/// have another wtenv.toml, asking for other services, another range or
/// skip_occupied. What it refuses, the caller says of the base the file
/// came from ([`super::base::refused`]), once the rollback ran.
pub(super) fn scope(ctx: &Ctx, plan: &Plan, wt: &Worktree, meta: &Meta) -> Result<Scope> {
    let config = ctx.config_for_like(&wt.root, &plan.config)?;
    if config.purpose_ranges(&plan.purpose).is_none() {
        return Err(super::base::no_purpose(plan, &config, &wt.root));
    }
    Scope::new(wt.clone(), meta, config)
}

/// The ports of the new worktree, by its own `scope`: when that asks for
/// other services, another range or skip_occupied, what was reserved (or
/// refused) for the source's config does not count.
pub(super) fn confirm(ctx: &Ctx, plan: &Plan, scope: &Scope, early: Early) -> Result<Ports> {
    let wanted = scope.request(plan.skip_occupied);
    let asked = &early.asked;
    if (&wanted.services, &wanted.ranges, wanted.skip_occupied)
        == (&asked.services, &asked.ranges, asked.skip_occupied)
    {
        early.outcome?;
    } else {
        let part = crate::registry::Part::of(&plan.common_dir, &plan.path);
        ctx.registry.release_worktree(part, |_| {})?;
    }
    // Confirmed against the registry (one read when it stands, as it
    // almost always does), or made: a `validate --fix` that ran while
    // git was checking out may have released it, judging the half-made
    // checkout by the default config.
    let ports = crate::ports::reserve(ctx, scope, plan.skip_occupied)?;
    // The reservation's write may have come before git made the git dir
    // the stamp lives in (the stamp was then skipped), and a confirmation
    // that finds the ports reserved writes nothing: git is done now.
    scope
        .worktree
        .stamp_unless_current(ports.iter().map(|(s, p)| (s.as_str(), *p)));
    Ok(ports)
}
