//! Making a worktree (`wtenv create`, and `wtenv enter` when the worktree
//! is missing): a new worktree on a new branch, optionally with its ports
//! reserved. All or nothing.
//!
//! Two phases. [`plan`] validates everything it can without git and
//! changes nothing: the purpose is configured, the identifier and the base
//! are safe, the path is free ([`checks`]), and the branch and the
//! directories it will make hold no character a message would escape. [`execute`] takes the
//! repository lock, checks the path again, and makes each change under a
//! [`rollback::Rollback`] guard that records what it made and, unless
//! disarmed at the very end, undoes it in reverse on any error, on a panic,
//! and on SIGINT/SIGTERM/SIGHUP (caught with signal-hook from before the
//! first change; the command then dies of the signal, so the shell sees
//! 130 for Ctrl-C).
//!
//! Order, and why: with `--ports`, first the reservation's request
//! ([`reserve::request`]: what it refuses on input alone, an export too
//! large for the new path and identifier, refuses the command) and a
//! look at the registry ([`crate::registry::Registry::check_usable`]):
//! one the reservation could not use refuses the command. Both before
//! git runs, so nothing is made (the rollback stays for what cannot be
//! foreseen: a registry damaged meanwhile, content a transaction
//! refuses, the new checkout's own config). Then the branch
//! ([`branch`]: `git update-ref` with an empty old value: atomic
//! create-if-missing, so the rollback knows the branch is its own), then
//! the worktree's directory, empty, then `git worktree add` of the branch
//! into it, and while git checks out, the ports ([`reserve`]); then the
//! metadata, then the ports confirmed for the new checkout's own config,
//! and the worktree's stamp, should the reservation have been written
//! before git made the git dir it lives in ([`reserve::confirm`]). The
//! directory comes before the reservation because a reservation for a
//! directory that does not exist is "worktree gone" to a concurrent
//! wtenv's sweep (allocation rule 4), which would hand the port out
//! twice.
//!
//! Git runs in its own process group ([`crate::git`]), so a terminal's
//! Ctrl-C reaches wtenv only and the current git step finishes whole before
//! the rollback undoes it. A second Ctrl-C, a SIGTERM or a SIGHUP stops
//! the git step instead ([`Signals::stop`], [`crate::git::Stop`]): one
//! that never ends must not hang the command.

mod base;
mod branch;
mod checks;
mod reserve;
mod rollback;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::alloc::Ports;
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::git::{Git, RepoLock, Signals};
use crate::process::{first_escaped, printable, printable_path};
use crate::report;
use crate::worktree::{self, Meta, Worktree};
use branch::{Start, start_branch};
pub use checks::default_root;
use checks::{
    check_admin_entries, check_base, check_new_dirs, check_outside_git_dirs, check_path_free,
    resolve_existing_prefix,
};
use rollback::{Rollback, make_dir};

/// What is wrong with a character [`crate::process::printable`] escapes
/// in a name wtenv would make (a branch, a worktree's directories).
const NOT_SHOWN: &str = "a character a terminal does not show as it is";
/// The kinds of characters that [`NOT_SHOWN`] covers, for a hint.
const HIDDEN: &str = "control, bidirectional or invisible characters";

/// Everything `create` will do, validated; nothing has been touched.
#[derive(Debug, Clone)]
pub struct Plan {
    pub git: Git,
    /// The repository (canonical git common dir).
    pub common_dir: PathBuf,
    pub purpose: String,
    pub identifier: String,
    /// Absolute, with every existing ancestor resolved (what git records).
    pub path: PathBuf,
    /// The topmost directory of `path` that does not exist yet (removed on
    /// rollback, if empty).
    pub first_new_dir: PathBuf,
    pub branch: String,
    pub base: String,
    /// `--branch BASE` as given.
    pub base_given: Option<String>,
    /// The worktree `create` ran in (its `.envrc` decides `direnv allow`).
    pub source_root: PathBuf,
    /// That worktree's config.
    pub config: Config,
    /// `--skip-occupied`: the ports are reserved skipping occupied ones,
    /// whatever the config says.
    pub skip_occupied: bool,
}

/// What `create` made.
#[derive(Debug, Clone)]
pub struct Created {
    pub path: PathBuf,
    pub branch: String,
    pub purpose: String,
    pub identifier: String,
    pub ports: Ports,
}

impl Created {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "path": self.path,
            "branch": self.branch,
            "purpose": self.purpose,
            "identifier": self.identifier,
            "ports": self.ports,
        })
    }
}

/// The longest part (between slashes) of a branch name git can keep as a
/// file: a file name's 255 bytes, less the `.lock` it is written through.
const MAX_BRANCH_PART: usize = 250;

/// Validates everything and decides the path and the branch, without
/// running git: what needs the repository (the base exists, the branch
/// does not) is checked by [`execute`] under the repository lock, in one
/// git process.
/// The way out of a place the worktree cannot be made in.
const PLACE_HINT: &str =
    "choose another place for the worktree with --path DIR, or set [worktrees] root";

/// A `[worktrees] root` other than the default applies only from a
/// trusted config, as `[env]` does: it chooses where a checkout of the
/// repository's files is written, and a repository someone else wrote
/// could name a directory another program loads code from (an autostart
/// or a plugin directory). Refused, before anything is touched, with the
/// way out: trust the config after review, or pass `--path`.
fn refuse_untrusted_root(ctx: &Ctx, source: &Worktree, config: &Config) -> Result<()> {
    let root = &config.worktrees.root;
    if root == crate::config::DEFAULT_ROOT {
        return Ok(());
    }
    let gate = crate::trust::Gate::decide(
        &ctx.registry,
        &source.common_dir,
        config,
        ctx.config_path.is_some(),
        || source.ownership(),
    );
    let Some(why) = gate.why() else {
        return Ok(());
    };
    Err(Error::refused(format!(
        "{} {root:?} of {} is not applied: {why}",
        config.syntax().key(&["worktrees"], "root"),
        printable_path(config.source.as_deref().unwrap_or(&source.root))
    ))
    .with_hint(
        "a config chooses where 'create' writes a checkout only once trusted (README, \"Trust\"); or pass --path DIR",
    ))
}

pub fn plan(
    ctx: &Ctx,
    purpose: &str,
    identifier: &str,
    base: Option<&str>,
    path: Option<&Path>,
    skip_occupied: bool,
) -> Result<Plan> {
    worktree::check_identifier(identifier)?;
    if let Some(b) = base {
        check_base(b)?;
    }
    let source = ctx.require_worktree_here()?;
    source.require_utf8()?;
    let config = ctx.config_for(&source.root)?;
    config.require_purpose(purpose)?;
    let git = Git::new(&source.root);
    // Whether git accepts the name is git's to say: `worktree add` refuses
    // an invalid one before it touches anything.
    let branch = config
        .worktrees
        .branch
        .replace("{purpose}", purpose)
        .replace("{identifier}", identifier);
    // git's rules for a branch's name beyond a ref's (`git branch` refuses
    // these, `check-ref-format` of `refs/heads/NAME` does not): a branch
    // `HEAD` would be made, and `worktree add` would then read `HEAD` as
    // the commit it names and leave the worktree detached.
    if branch.is_empty() || branch.starts_with('-') || branch == "HEAD" {
        let reason = format!("makes {branch:?}, which is not a valid branch name");
        // The default template is no key of the file's to fix: name it,
        // and the purpose and identifier that made the name.
        if config.worktrees.branch == crate::config::DEFAULT_BRANCH {
            return Err(Error::invalid(format!(
                "the default branch template {:?} (no [worktrees] branch is set) {reason}, from purpose {purpose:?} and identifier {identifier:?}",
                crate::config::DEFAULT_BRANCH
            ))
            .with_hint("choose another purpose or identifier, or set [worktrees] branch"));
        }
        // A template that made it from them: they can change, not the file.
        if config.worktrees.branch != branch {
            let key = config.syntax().key(&["worktrees"], "branch");
            return Err(Error::invalid(format!(
                "{key} {:?} {reason}, from purpose {purpose:?} and identifier {identifier:?}",
                config.worktrees.branch
            ))
            .with_hint(format!(
                "choose another purpose or identifier, or change {key}"
            )));
        }
        return Err(Error::config(
            config.source.clone().unwrap_or_default(),
            "worktrees.branch",
            reason,
        ));
    }
    // Purpose and identifier are letters, digits and punctuation: what a
    // message would have to escape comes from the template itself.
    if let Some(shown) = first_escaped(&branch) {
        return Err(Error::config(
            config.source.clone().unwrap_or_default(),
            "worktrees.branch",
            format!("makes {branch:?}, which holds {shown}, {NOT_SHOWN}"),
        )
        .with_hint(format!(
            "remove {shown} from {}: wtenv makes no branch that holds {HIDDEN}",
            config.syntax().key(&["worktrees"], "branch")
        )));
    }
    // Each part of a branch name is a file name in the repository (a
    // loose ref, written through its `.lock`): git's own error for one
    // too long is the system's "File name too long", and it leaves the
    // directories it made on the way. Refused before git runs.
    let longest = branch.split('/').map(str::len).max().unwrap_or(0);
    if longest > MAX_BRANCH_PART {
        return Err(Error::config(
            config.source.clone().unwrap_or_default(),
            "worktrees.branch",
            format!(
                "makes {branch:?}, a part of which (between slashes) is {longest} bytes long; \
                 git keeps each part as a file name, at most {MAX_BRANCH_PART} bytes"
            ),
        )
        .with_hint(format!(
            "shorten {} in {} (each part at most {MAX_BRANCH_PART} bytes once {{purpose}} and {{identifier}} are filled in), or choose a shorter identifier",
            config.syntax().key(&["worktrees"], "branch"),
            config.file_named_for(&source.root)
        )));
    }
    let base_given = base.map(str::to_owned);
    let base = base.unwrap_or("HEAD").to_owned();

    let path_given = path.is_some();
    let wanted = match path {
        Some(p) => worktree::normalize(&ctx.absolute(p)?),
        None => {
            refuse_untrusted_root(ctx, &source, &config)?;
            worktree::normalize(
                &default_root(&config.worktrees.root, &source)
                    .join(format!("{purpose}-{identifier}")),
            )
        }
    };
    if let Some(why) = worktree::not_utf8(&wanted) {
        return Err(Error::invalid(format!(
            "cannot create {}: the path {why}",
            printable_path(&wanted)
        ))
        .with_hint("wtenv records paths as text; choose a UTF-8 path (--path)"));
    }
    check_path_free(&wanted)?;
    let (path, first_new_dir) = resolve_existing_prefix(&wanted)?;
    check_new_dirs(&path, &first_new_dir, path_given, config.source.as_deref())?;
    check_outside_git_dirs(&path, path_given, config.source.as_deref())?;
    Ok(Plan {
        git,
        common_dir: source.common_dir.clone(),
        purpose: purpose.to_owned(),
        identifier: identifier.to_owned(),
        path,
        first_new_dir,
        branch,
        base,
        base_given,
        source_root: source.root.clone(),
        config,
        skip_occupied,
    })
}

/// Makes the worktree (and its ports); all or nothing.
/// `reuse_branch` (for `enter`): an existing branch of the template's name
/// is checked out instead of refused, unless a base was given.
pub fn execute(ctx: &Ctx, plan: &Plan, with_ports: bool, reuse_branch: bool) -> Result<Created> {
    let signals = Signals::catch()?;
    // Every git step of the command, the rollback's too, stops on request.
    let plan = &Plan {
        git: plan.git.clone().stopped_by(signals.stop()),
        ..plan.clone()
    };
    // A step a signal made fail (a probe's EINTR, a git that saw it too)
    // is the signal's doing: die of it, after the rollback ran.
    make(ctx, plan, with_ports, reuse_branch, &signals).map_err(|e| match signals.check() {
        Err(interrupted) => interrupted,
        Ok(()) => e,
    })
}

fn make(
    ctx: &Ctx,
    plan: &Plan,
    with_ports: bool,
    reuse_branch: bool,
    signals: &Signals,
) -> Result<Created> {
    // What can be refused before git makes anything the rollback would
    // have to undo is refused now, before the repository lock (it waits
    // for no other create's checkout): the reservation's request, with the
    // checks it makes on input alone (what the worktree would export
    // fits), then a registry the reservation could not use, with the error
    // the reservation would give. Not under the registry's lock: the
    // reservation beside git takes it for itself.
    let asked = if with_ports {
        let asked = reserve::request(plan)?;
        ctx.registry.check_usable()?;
        Some(asked)
    } else {
        None
    };
    // Taken before the guard, so it is released after the rollback ran.
    let _lock = RepoLock::acquire(&plan.common_dir, &|| signals.check())?;
    // Under the lock, so no other wtenv makes this path between the check
    // and `git worktree add`.
    check_path_free(&plan.path)?;
    // A file planted in the repository's worktree entries that would hang
    // `git worktree add` (a FIFO) is refused before anything is made.
    check_admin_entries(&plan.common_dir)?;
    let mut guard = Rollback::new(plan, &ctx.registry);
    signals.check()?;

    // The branch first, then `worktree add` of it: as many git processes
    // as `git worktree add -b` (which runs `git branch` itself), and the
    // rollback knows for sure whether the branch is its own.
    let start = match start_branch(plan, reuse_branch) {
        Ok(start) => start,
        Err(e @ Error::Git { .. }) => return Err(base::git_failed(e, guard.undo_now())),
        Err(e) => return Err(e),
    };
    guard.branch_created = start == Start::NewBranch;
    if start == Start::ExistingBranch {
        report::note(&format!(
            "branch {} exists: checking it out",
            printable(&plan.branch)
        ));
    }
    signals.check()?;

    // The directory first, empty (git fills an empty one in): from now on
    // a reservation for it is never "worktree gone" to a concurrent sweep,
    // which requires the directory to be missing (allocation rule 4). Marked before:
    // git may leave part of its work behind if it fails half-way.
    guard.worktree_attempted = true;
    make_dir(&plan.path)?;
    guard.dir_made = true;
    // Its hooks (post-checkout) run before create can record the
    // worktree's purpose and identifier in its git dir: they get them
    // through the environment, for this path only.
    let creating = crate::worktree::creating_value(&plan.path, &plan.purpose, &plan.identifier);
    let adding = plan.git.start_worktree_add(
        &plan.path,
        &plan.branch,
        (crate::settings::CREATING, &creating),
    )?;
    // While git checks out, most of create's time, the ports are reserved.
    let reserved = asked.map(|asked| {
        guard.allocated_for = Some(plan.path.clone());
        reserve::early(ctx, asked)
    });
    let added = adding.finish_showing_hooks();
    guard.worktree_added = added.is_ok();
    signals.check()?;
    if let Err(e) = added {
        if !matches!(e, Error::Git { .. }) {
            return Err(e);
        }
        // Git keeps the worktree whole only when its hook refused it.
        let hook = rollback::made_by_git(&plan.path, &plan.common_dir);
        let undone = guard.undo_now();
        return Err(match hook {
            true => base::hook_refused(e, undone),
            false => base::git_failed(e, undone),
        });
    }

    let found = Worktree::discover(&plan.path)?
        .filter(|w| w.root == plan.path && w.common_dir == plan.common_dir);
    let Some(wt) = found else {
        let undone = guard.undo_now();
        return Err(Error::failed(format!(
            "git made {} but it is not a worktree of {}",
            printable_path(&plan.path),
            printable_path(&plan.common_dir)
        ))
        .with_hint(base::left(
            undone,
            "see what git lists ('git worktree list'), then run the command again",
        )));
    };
    let meta = Meta {
        purpose: Some(plan.purpose.clone()),
        identifier: Some(plan.identifier.clone()),
    };
    wt.set_meta(&meta)?;
    signals.check()?;

    let mut ports = Ports::new();
    if let Some(early) = reserved {
        let scope = match reserve::scope(ctx, plan, &wt, &meta) {
            Ok(scope) => scope,
            Err(e) => return Err(base::refused(e, plan, start, &wt.root, guard.undo_now())),
        };
        ports = reserve::confirm(ctx, plan, &scope, early)?;
        signals.check()?;
    }

    guard.armed = false;
    report::note(&format!(
        "created worktree {} on branch {} from {}",
        printable_path(&wt.root),
        printable(&plan.branch),
        match start {
            // A base may name another's branch, which git lets hold
            // U+202E: shown escaped, like any text wtenv did not write.
            Start::NewBranch => printable(&plan.base),
            Start::ExistingBranch => "its existing tip".to_owned(),
        }
    ));
    for (service, port) in &ports {
        report::note(&format!("reserved port {port} ({service})"));
    }
    base::warn_if_missing(ctx, plan, &wt.root, start, with_ports);
    if plan.config.worktrees.direnv_allow {
        crate::direnv::allow_like(&plan.git, &plan.source_root, &wt.root);
    }
    Ok(Created {
        path: wt.root,
        branch: plan.branch.clone(),
        purpose: plan.purpose.clone(),
        identifier: plan.identifier.clone(),
        ports,
    })
}
