//! What `create` says of the config the new worktree gets from the
//! revision it was made from (its base, or the existing branch `enter`
//! checks out again): none while the repository's worktrees have one (a
//! `wtenv.toml` never committed), or one it refuses, said once the
//! rollback ran, since the checkout's copy it would name is gone by then.
//! A git hook that refused the new worktree is said here too, and any
//! other git step that failed, with what the rollback left.

use std::path::Path;

use super::Plan;
use super::branch::Start;
use crate::config::{self, Config};
use crate::context::Ctx;
use crate::error::{Error, KeyPrefix, Place};
use crate::process::{printable, printable_path};
use crate::report;
use crate::worktree::main_root_of;

/// The revision the new checkout came from, as the user names it: the
/// base given, else the branch the worktree `create` ran in is on (`HEAD`
/// when detached); for an existing branch checked out again, that branch.
/// Asked of git only when a message needs it.
fn name(plan: &Plan, start: Start) -> String {
    let name = match (start, &plan.base_given) {
        (Start::ExistingBranch, _) => plan.branch.clone(),
        (Start::NewBranch, Some(base)) => base.clone(),
        (Start::NewBranch, None) => plan
            .git
            .current_branch()
            .ok()
            .flatten()
            .unwrap_or_else(|| plan.base.clone()),
    };
    printable(&name)
}

/// What the rollback left, for the error that follows it.
fn outcome(undone: bool) -> &'static str {
    match undone {
        true => "nothing was created (the new worktree was rolled back)",
        false => "the rollback could not undo everything (see above)",
    }
}

/// The new worktree at `root` has no config while the worktree `create`
/// ran in has one, or the main worktree has: its ports come from the
/// built-in ranges, not the ones the user set, and nothing else would say
/// so. Not with `--config`, whose file applies to every worktree.
pub(super) fn warn_if_missing(ctx: &Ctx, plan: &Plan, root: &Path, start: Start, ports: bool) {
    if ctx.config_path.is_some() || config::file_in(root).is_some() {
        return;
    }
    let Some(file) = config::file_in(&plan.source_root)
        .or_else(|| main_root_of(&plan.common_dir).and_then(|main| config::file_in(&main)))
    else {
        return;
    };
    let base = name(plan, start);
    let then = match ports {
        true => {
            ", then run 'wtenv release' and 'wtenv env' there to take its ports from its ranges"
        }
        false => "",
    };
    report::warn_hinted(
        &format!(
            "new worktree {} has no {file} (it is not committed on {base}, which the worktree \
             was made from), so its ports come from the built-in ranges",
            printable_path(root)
        ),
        &format!(
            "commit {file} on {base}, so that the worktrees made from it have it; for this one, \
             copy it in{then}"
        ),
    )
}

/// The new checkout's config does not define the purpose `create` was
/// asked for: a config error, said by [`refused`] of the base.
pub(super) fn no_purpose(plan: &Plan, config: &Config, root: &Path) -> Error {
    let reason = match &config.source {
        Some(_) => format!(
            "defines no purpose {:?} (it has {})",
            plan.purpose,
            config.purpose_names()
        ),
        None => format!(
            "is not there, and the built-in purposes ({}) have no {:?}",
            config.purpose_names(),
            plan.purpose
        ),
    };
    let path = config
        .source
        .clone()
        .unwrap_or_else(|| root.join(config::TOML_NAME));
    Error::config(path, "", reason)
}

/// The new checkout's config at `root` refused (`err`, from
/// [`super::reserve::scope`]), once the rollback ran (`undone`: nothing is
/// left). The file is named as it is on the revision the worktree was made
/// from (`wtenv.toml on main`), since its copy in the checkout is gone,
/// and the hint says to fix it there. Other errors pass unchanged.
pub(super) fn refused(err: Error, plan: &Plan, start: Start, root: &Path, undone: bool) -> Error {
    let Error::Config {
        path,
        at,
        key,
        reason,
        hint,
    } = &err
    else {
        return err;
    };
    let Ok(file) = path.strip_prefix(root) else {
        return err;
    };
    let file = printable_path(file);
    let base = name(plan, start);
    let message = format!(
        "invalid config {file}{} committed on {base}, which the new worktree was made from: \
         {}{reason}; {}",
        Place(at),
        KeyPrefix(key),
        outcome(undone)
    );
    let fix = match at {
        Some(at) if !at.text.is_empty() => format!("fix line {} (`{}`) of", at.line, at.text),
        _ => "fix".to_owned(),
    };
    let hint = match hint {
        Some(own) => format!("{own}; on {base}: commit the fix there"),
        None => format!(
            "{fix} {file} on {base} and commit it (or make the worktree from another base, \
             --branch), then run the command again"
        ),
    };
    Error::invalid(message).with_hint(hint)
}

/// `git worktree add` failed, but left the worktree whole (`dir` is one
/// git made): git runs the `post-checkout` hook last and keeps the
/// worktree when the hook fails, while its own failures remove what it
/// made. So the hook refused; `undone` says what the rollback left.
pub(super) fn hook_refused(err: Error, undone: bool) -> Error {
    let hint = match undone {
        true => {
            "git's post-checkout hook refused the new worktree (its words are above); nothing \
             was left behind (the worktree, its branch and its ports were rolled back); fix \
             what the hook checks, then run the command again"
        }
        false => {
            "git's post-checkout hook refused the new worktree (its words are above); the \
             rollback could not undo everything (see above)"
        }
    };
    Error::failed(err.to_string()).with_hint(hint)
}

/// A git step of `create` failed (`err`, git's own words), once the
/// rollback ran (`undone`: nothing is left): the hint says what was left
/// and what to do. Git's words name no way out, and a full disk is the
/// one failure where what to do is known. Other errors pass unchanged.
pub(super) fn git_failed(err: Error, undone: bool) -> Error {
    let Error::Git { stderr, .. } = &err else {
        return err;
    };
    let then = if stderr.contains("No space left on device") {
        "free space on the file system git names, or make the worktree on another one (--path)"
    } else {
        "git's words say why: mend what they name, then run the command again"
    };
    Error::failed(err.to_string()).with_hint(left(undone, then))
}

/// What the rollback left, then what to do (`then`), for the hint of a
/// failure of `create` that the rollback undid.
pub(super) fn left(undone: bool, then: &str) -> String {
    match undone {
        true => format!("nothing was created (no worktree, branch or port); {then}"),
        false => format!("the rollback could not undo everything (see above); {then}"),
    }
}
