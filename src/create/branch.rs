//! `create`'s first git step: the branch, made atomically at the base, or
//! (for `enter`) an existing one checked out again.

use super::Plan;
use crate::error::{Error, Result};
use crate::shell::quote_in_message;

/// Where the new worktree's branch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// A new branch at the base, made by this command.
    NewBranch,
    /// The branch exists already (`enter` of a worktree removed without
    /// `--delete-branch`): check it out.
    ExistingBranch,
}

/// Makes the branch at the base in one atomic git call (it refuses an
/// existing branch, an unknown base, a bad name). Only when that fails are
/// more questions asked, to say why, and, for `enter` (`reuse_branch`,
/// no base given), to check an existing branch out instead.
pub(super) fn start_branch(plan: &Plan, reuse_branch: bool) -> Result<Start> {
    let err = match plan.git.create_branch(&plan.branch, &plan.base) {
        Ok(()) => return Ok(Start::NewBranch),
        Err(e @ Error::Git { .. }) => e,
        Err(e) => return Err(e),
    };
    // The base, the branch, then each branch the new one would be a
    // directory of (`feature` for `feature/x`).
    let above: Vec<&str> = plan
        .branch
        .match_indices('/')
        .map(|(i, _)| &plan.branch[..i])
        .collect();
    let mut names = vec![
        format!("{}^{{commit}}", plan.base),
        format!("refs/heads/{}", plan.branch),
    ];
    names.extend(above.iter().map(|a| format!("refs/heads/{a}")));
    let found = plan.git.lookup(&names)?;
    if found[1].is_some() {
        if reuse_branch && plan.base_given.is_none() {
            return Ok(Start::ExistingBranch);
        }
        return Err(
            Error::refused(format!("branch {:?} already exists", plan.branch)).with_hint(format!(
                "choose another identifier, or delete the branch: git branch -d {}",
                quote_in_message(&plan.branch)
            )),
        );
    }
    if !matches!(&found[0], Some((_, kind)) if kind == "commit") {
        return Err(
            Error::not_found(format!("base revision {:?} names no commit", plan.base))
                .with_hint("name an existing branch, tag or commit with --branch"),
        );
    }
    if !plan.git.is_valid_branch_name(&plan.branch)? {
        return Err(
            Error::invalid(format!("{:?} is not a valid branch name", plan.branch)).with_hint(
                format!(
                    "check {} in {}, or choose another identifier",
                    plan.config.syntax().key(&["worktrees"], "branch"),
                    plan.config.file_named_for(&plan.source_root)
                ),
            ),
        );
    }
    // Git keeps a branch as a file and the branches under its name as a
    // directory of that name: one cannot be both. Git's own words for it
    // name a lock and no way out.
    let clash = match above.iter().zip(&found[2..]).find(|(_, f)| f.is_some()) {
        Some((above, _)) => Some((*above).to_owned()),
        None => plan.git.branch_under(&plan.branch)?,
    };
    if let Some(clash) = clash {
        let template = &plan.config.worktrees.branch;
        let branches = format!(
            "another name for the new worktrees' branches ({} in {})",
            plan.config.syntax().key(&["worktrees"], "branch"),
            plan.config.file_named_for(&plan.source_root)
        );
        // Another identifier helps when the identifier is part of the
        // clashing name: not with `feature` for `feature/{identifier}`.
        let identifier_at = template
            .find("{identifier}")
            .map(|at| template[..at].replace("{purpose}", &plan.purpose).len());
        let hint = match identifier_at {
            Some(at) if clash.len() > at => {
                format!("choose another identifier, or {branches}")
            }
            _ => format!(
                "rename branch {clash:?} (git branch -m {} NEW), or choose {branches}",
                quote_in_message(&clash)
            ),
        };
        return Err(Error::refused(format!(
            "branch {:?} cannot be made: branch {clash:?} exists (a branch name cannot also be a directory of branches)",
            plan.branch
        ))
        .with_hint(hint));
    }
    Err(err)
}
