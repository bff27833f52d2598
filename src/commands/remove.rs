//! `wtenv remove ID|PATH`: remove a worktree and give back its ports.
//!
//! Order, and why: check everything first (the state directory takes the
//! release's write: [`crate::registry::Registry::check_usable`]; the
//! worktree exists, is not the main one, not locked, no live holder unless `--force`, and with `--delete-branch`
//! the branch is merged, as `git branch -d` requires), then `git worktree remove`,
//! then release the allocations, then (`--delete-branch`) the branch, then
//! the default placement root when the worktree was its last
//! ([`placement_root`]). Git
//! goes before the release because git is the step that refuses (a dirty
//! worktree, a locked one): when it does, the worktree and its ports stay
//! exactly as they were. If the release then fails (the registry busy),
//! the allocations belong to a worktree that is gone, which the next
//! wtenv's sweep releases (allocation rule 4): nothing is lost either way. The same
//! holds for a signal: a Ctrl-C, SIGTERM or SIGHUP stops the running git
//! step (git runs in its own process group; one that never ends, reading
//! a FIFO its config includes, must not hang `remove`: [`Signals`]), and
//! `remove` says what that step left and dies of the signal, its ports
//! kept; a wtenv killed between steps before the release leaves
//! allocations the sweep takes back once the worktree is gone. All of it
//! runs under the repository lock ([`RepoLock`]), taken before the
//! worktree listing is read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::alloc::{self, HolderState, RealSystem, Usage};
use crate::background;
use crate::config::Config;
use crate::context::Ctx;
use crate::create;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::git::{self, Git, RepoLock, Signals};
use crate::ports;
use crate::process::{self, printable_path};
use crate::registry::Allocation;
use crate::report;
use crate::worktree::{self, Worktree};
use crate::worktrees;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worktree: its identifier, or its path.
    #[arg(value_name = "ID|PATH")]
    pub target: String,
    /// Remove even with uncommitted changes or a live holder (which keeps
    /// running, and keeps the ports it holds until it ends).
    #[arg(long)]
    pub force: bool,
    /// Also delete the worktree's branch (`git branch -d`; `-D` with
    /// --force).
    #[arg(long)]
    pub delete_branch: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    // An empty word is the path "", the current directory: `remove "$WT"
    // --force` with WT unset removed the worktree it ran in.
    if args.target.is_empty() {
        return Err(
            Error::invalid("the worktree to remove is an empty word").with_hint(
                "name it by its identifier or its path ('.' for this one); 'wtenv list' shows them",
            ),
        );
    }
    // A git step that never ends (a FIFO the repository's config
    // includes) is stopped by the first Ctrl-C, SIGTERM or SIGHUP; each
    // is said with what it left ([`git::said_if_stopped`]).
    let stop = Signals::during_git()?.stop();
    let here = ctx.require_worktree_here()?;
    let common_dir = here.common_dir.clone();
    let nothing = || "nothing was removed".to_owned();
    // The release comes after git has removed the worktree, which cannot
    // be undone: a state directory the release could not write in (mode
    // 500, a read-only file system, a registry wtenv refuses) is refused
    // now, before anything is stopped or removed, as `create --ports`
    // refuses it before git runs.
    ctx.registry.check_usable()?;
    // Taken before the listing is read: a `create` holds it until its
    // worktree is whole, and while git adds one it is locked
    // ("initializing") and has no recorded identifier yet. What is decided
    // from the listing (which worktree, locked or not) is so decided on
    // what `create` leaves.
    let _lock = RepoLock::acquire(&here.common_dir, &|| Ok(()))?;
    // A FIFO planted among the worktree entries would hang `git worktree
    // remove` (and the listing): refused before anything is looked at.
    worktree::refuse_planted_entries(
        &here.common_dir,
        "remove a worktree",
        "git worktree remove",
        "nothing was removed",
    )?;
    // `--delete-branch` needs the branch: git lists it from the
    // repository, also for a worktree whose directory is gone (git run
    // inside that directory could not start). One git process either way.
    let (here, config, entries) = if args.delete_branch {
        worktrees::entries_from_git_of(ctx, here, stop.clone())
            .map_err(|e| git::said_if_stopped(e, "git worktree list", &common_dir, nothing))?
    } else {
        worktrees::entries_of(ctx, here)?
    };
    let cwd = ctx.cwd()?;
    let by_path = |target: &str| {
        let abs = cwd.join(target);
        let path = abs
            .canonicalize()
            .unwrap_or_else(|_| worktree::normalize(&abs));
        entries.iter().find(|e| e.path == path)
    };
    // An identifier never holds '/'; a bare name is an identifier first,
    // then a directory of the current one.
    let entry = if args.target.contains('/') || args.target == "." || args.target == ".." {
        by_path(&args.target)
    } else {
        match worktrees::find(&entries, &args.target, None, |_| {
            "give the path of the one to remove".into()
        })? {
            Some(e) => Some(e),
            None => by_path(&args.target),
        }
    };
    let Some(entry) = entry else {
        let named = cwd.join(&args.target).canonicalize().ok();
        if named.as_ref() == Some(&here.common_dir) {
            return Err(git_dir_refused(&here.common_dir));
        }
        // A separate git dir's main worktree, named from a linked one:
        // git's records do not name it, its own `.git` file does.
        let main = named
            .as_deref()
            .and_then(|path| Worktree::discover(path).ok().flatten())
            .filter(|w| {
                Some(&w.root) == named.as_ref()
                    && w.common_dir == here.common_dir
                    && w.main_root().as_ref() == Some(&w.root)
            });
        if let Some(main) = main {
            return Err(main_worktree_refused(&main.root));
        }
        return Err(
            Error::not_found(format!("no worktree {:?} in this repository", args.target))
                .with_hint("'wtenv list' shows the worktrees"),
        );
    };
    if entry.git_dir || entry.listed.bare {
        return Err(git_dir_refused(&entry.path));
    }
    if entry.main {
        return Err(main_worktree_refused(&entry.path));
    }
    if let Some(refused) = entry.another_repositorys(&here.common_dir, "nothing was removed") {
        return Err(refused);
    }

    // Git refuses a locked worktree even with --force (it takes `-f -f`):
    // said before anything is stopped, with the lock's reason, which says
    // whether to unlock it.
    if let Some(reason) = &entry.listed.locked {
        let why = match reason.as_str() {
            "" => String::new(),
            reason => format!(" (reason: {reason:?})"),
        };
        let unlock = format!(
            "git worktree unlock {}",
            crate::shell::quote_in_message(&entry.path)
        );
        // Git's own lock while `git worktree add` (run outside wtenv)
        // still makes it: unlocking would pull it from under git.
        let hint = if entry.listed.being_added() {
            format!(
                "git is still adding it: run this again once that is done; if git was killed while adding it: {unlock}"
            )
        } else {
            format!("unlock it first: {unlock}")
        };
        return Err(Error::refused(format!(
            "worktree {} is locked{why}; nothing was removed",
            printable_path(&entry.path)
        ))
        .with_hint(hint));
    }

    // Services in the background: stopped first with --force (their
    // managers would restart or keep them), else a refusal naming them.
    // Found by the worktree's git dir (theirs since they started, also
    // after `git worktree move`), its directory there or not.
    let git_dir = match &entry.worktree {
        Some(w) => Some(w.git_dir.clone()),
        None => worktree::admin_dir_of(&here.common_dir, &entry.path),
    };
    let owner = background::Owner {
        repository: &here.common_dir,
        root: &entry.path,
        git_dir: git_dir.as_deref(),
    };
    // Looked at under the worktree's lock, held until this `remove` is
    // done (the worktree removed and its ports released, or a refusal):
    // an `up -d` still starting its first unit, with no record written
    // yet, is waited for and its units then seen; one that waits for
    // this `remove` then finds the worktree gone and starts nothing.
    let command = if args.force {
        "wtenv remove --force"
    } else {
        "wtenv remove"
    };
    let background = background::Locked::take(ctx, &owner, command)?;
    // A damaged registry, or one locked past the wait, is refused before
    // anything is stopped or removed too: read now, under the worktree's
    // lock (an `up -d` it waited for wrote it last).
    ctx.registry.check_content()?;
    let detached = background
        .as_ref()
        .map(|b| b.running(&owner))
        .unwrap_or_default();
    if let Some(background) = background.as_ref().filter(|_| !detached.is_empty()) {
        if !args.force {
            let names: Vec<String> = detached
                .iter()
                .map(|r| {
                    format!(
                        "  {} ({}, {})",
                        process::printable(&r.service),
                        r.manager.name(),
                        process::printable(&r.unit)
                    )
                })
                .collect();
            return Err(Error::refused(format!(
                "worktree {} has services running in the background:\n{}",
                printable_path(&entry.path),
                names.join("\n")
            ))
            .with_hint(
                "stop them with 'wtenv down' in the worktree, or pass --force (they are stopped first)",
            ));
        }
        // A port still held once they stopped (a daemon out of their
        // reach) is named below with what `--force` leaves running, once.
        background.stop_all(ctx, &owner)?;
    }

    // Who still uses the ports: recorded holders that live, and listeners
    // of the worktree's own (allocation rule 5). A worktree moved with
    // `git worktree move` owns the entries recorded at the path it left
    // (its ports follow it): seen here as its own, and released with them.
    let moved = ports::Moved::find(ctx, &here.common_dir, &entry.path)?;
    let mut data = ctx.registry.read_worktree(&here.common_dir, &entry.path)?;
    data.allocations.extend(moved.entries.iter().cloned());
    moved.apply(&mut data, &entry.path);
    let mine: Vec<_> = data.allocations.iter().collect();
    let mut users = Vec::new();
    // A background service whose record this wtenv cannot read (a newer
    // wtenv's) may run: never stopped here, said with what is in use.
    if let (Some(background), Some(git_dir)) = (&background, &git_dir) {
        let naming = background::Naming::of_worktree(&here.common_dir, git_dir, &entry.path);
        for u in background.unreadable(&naming) {
            users.push(format!("  {}", u.said()));
        }
    }
    let mut named = BTreeSet::new();
    let mut system = RealSystem::new(&ctx.registry);
    // A holder lives by the rule `release` and `validate` decide by: a
    // background service's hold whose pid is gone while its unit is
    // active (the manager restarting it) is in use.
    for a in &mine {
        for h in &a.holders {
            match alloc::holder_state(h, &mut system) {
                HolderState::Alive => {
                    named.insert(h.pid);
                    users.push(format!(
                        "  port {} ({}): {}",
                        a.port,
                        process::printable(&a.service),
                        alloc::held_by_command(h, false)
                    ));
                }
                HolderState::Orphans(orphans) => {
                    named.extend(&orphans);
                    users.push(format!(
                        "  port {} ({}): orphans of gone pid {} {}: {}",
                        a.port,
                        process::printable(&a.service),
                        h.pid,
                        process::printable(&h.command),
                        alloc::describe_pids(&orphans)
                    ));
                }
                HolderState::Gone => {}
            }
        }
    }
    let usage = alloc::classify(&mine, &mut system).map_err(Error::probe)?;
    for (a, u) in mine.iter().zip(&usage) {
        if let Usage::InUse(found) = u {
            named.extend(found.iter().map(|h| h.pid));
            users.push(format!(
                "  port {} ({}): listening: {}",
                a.port,
                process::printable(&a.service),
                alloc::describe_holders(found)
            ));
        }
    }
    // Any other process working inside it (a shell, an editor, a server
    // that holds no recorded port) would be left in a deleted directory.
    for (pid, command) in process::working_in(&entry.path) {
        if named.insert(pid) {
            let command = process::printable(&command);
            users.push(format!("  pid {pid} {command}: working directory inside"));
        }
    }
    if !users.is_empty() && !args.force {
        return Err(Error::refused(format!(
            "worktree {} is in use:\n{}",
            printable_path(&entry.path),
            users.join("\n")
        ))
        .with_hint(in_use_hint(&mine, &usage, users.len())));
    }

    // Git runs from the main worktree (or the repository): never from
    // inside the worktree being removed.
    let git = Git::new(
        here.main_root()
            .filter(|m| m.exists())
            .unwrap_or_else(|| here.common_dir.clone()),
    )
    .stopped_by(stop);
    // Listed by git when needed (`None` when detached).
    let branch = entry.listed.branch.clone().filter(|_| args.delete_branch);
    // Found while `here` is whole: it may be the worktree git removes.
    let root = placement_root(&config, &here, &entry.path);

    // `git branch -d` refuses an unmerged branch: asked first, so that a
    // refusal leaves the worktree and its ports as they were.
    if let Some(branch) = branch.as_ref().filter(|_| !args.force)
        && !git.branch_merged(branch).map_err(|e| {
            git::said_if_stopped(
                e,
                "git's check that the branch is merged",
                &common_dir,
                nothing,
            )
        })?
    {
        return Err(Error::refused(format!(
            "branch {} is not fully merged; nothing was removed",
            process::printable(branch)
        ))
        .with_hint(format!(
            "merge it first, leave out --delete-branch to keep it, or pass --force to delete it anyway (git branch -D {})",
            crate::shell::quote_in_message(branch)
        )));
    }
    git.worktree_remove(&entry.path, u8::from(args.force))
        .map_err(|e| match e {
            Error::Git { stderr, .. } => Error::refused(format!(
                "git refused to remove {}: {stderr}",
                printable_path(&entry.path)
            ))
            .with_hint(refusal_hint(entry, &args)),
            e => git::said_if_stopped(e, "git worktree remove", &common_dir, || {
                stopped_removing(entry, &args)
            }),
        })?;
    report::note(&format!("removed worktree {}", printable_path(&entry.path)));
    for u in &users {
        report::warn(&format!("left running: {}", u.trim_start()));
    }
    release(ctx, &here.common_dir, &entry.path, &moved);
    if let Some(root) = root {
        // Only an empty directory goes, never a link (`rmdir` removes
        // neither a directory with anything in it nor a link put there
        // meanwhile); one left is no error: the worktree is gone.
        match std::fs::remove_dir(&root) {
            Ok(()) => tracing::debug!(root = %root.display(), "removed the empty placement root"),
            Err(e) => tracing::debug!(root = %root.display(), error = %e, "placement root left"),
        }
    }

    match &branch {
        Some(branch) => {
            git.delete_branch(branch, args.force).map_err(|e| {
                git::said_if_stopped(e, "git branch -d", &common_dir, || {
                    format!(
                        "the worktree was removed and its ports released, branch {} is kept; delete it with: git branch -d {}",
                        process::printable(branch),
                        crate::shell::quote_in_message(branch)
                    )
                })
            })?;
            report::note(&format!("deleted branch {}", process::printable(branch)));
        }
        // Git lists no branch for a worktree on a detached HEAD: nothing
        // to delete, said rather than passed over in silence.
        None if args.delete_branch => {
            report::note("no branch deleted: the worktree was on a detached HEAD");
        }
        None => {}
    }
    // The worktree's lock goes last: an `up -d` waiting for it finds the
    // worktree gone, its ports released.
    drop(background);
    Ok(Outcome::SUCCESS)
}

/// The directory `create` places this repository's new worktrees in by
/// default ([`create::default_root`], for the config `remove` runs under),
/// when it is the parent of the worktree at `path` and a directory, not a
/// link: `remove` takes it away once it is empty (git leaves it; in a
/// submodule it is an untracked directory of the superproject). `None`
/// for any other parent, such as a `--path` worktree's, and for a root
/// whose template does not name `{repo}`: a directory shared by several
/// repositories (`root = "~/worktrees"`) is the user's, not this one's.
fn placement_root(config: &Config, here: &Worktree, path: &Path) -> Option<PathBuf> {
    if !config.worktrees.root.contains("{repo}") {
        return None;
    }
    let root = worktree::normalize(&create::default_root(&config.worktrees.root, here));
    let is_dir = std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir());
    (is_dir && root.canonicalize().ok().as_deref() == path.parent()).then_some(root)
}

/// What a `git worktree remove` of `entry` stopped by a signal left:
/// maybe nothing (a git that never began, blocked reading its config),
/// maybe part of it (git deletes the worktree's `.git` file and files,
/// then its entry in the repository), never its ports, which are
/// released after git. Run again, `remove` finishes the job; git refuses
/// a directory left without its `.git` file, which goes first (with the
/// directory gone, `git worktree remove` drops git's entry).
fn stopped_removing(entry: &worktrees::Entry, args: &Args) -> String {
    format!(
        "{} may be partly removed, its ports are kept; run again: {} (if git refuses it for a missing .git file, remove what is left first: rm -r {})",
        printable_path(&entry.path),
        again(entry, args),
        crate::shell::quote_in_message(&entry.path)
    )
}

/// The refusal of the main worktree at `path`, which is never removed.
fn main_worktree_refused(path: &Path) -> Error {
    Error::refused(format!(
        "{} is the main worktree; it is never removed",
        printable_path(path)
    ))
    .with_hint(format!(
        "to free its ports instead: wtenv release --worktree {}",
        crate::shell::quote_in_message(path)
    ))
}

/// The refusal of the repository's git dir at `path` (`.git`, a bare
/// repository, a separate git dir, which git lists in the place of a main
/// worktree it cannot name): no worktree, and never removed.
fn git_dir_refused(path: &Path) -> Error {
    Error::invalid(format!(
        "{} is the repository's git dir, not a worktree; nothing was removed",
        printable_path(path)
    ))
    .with_hint("name a worktree by its identifier or its path; 'wtenv list' shows them")
}

/// What to do when git refused to remove `entry`. A directory that is
/// there but is no worktree any more (its `.git` file deleted or broken:
/// nothing found it, see [`worktrees::Entry::worktree`]) is refused by
/// git's validation, `--force` or not; `git worktree repair` writes the
/// `.git` file again from the repository's record, after which git checks
/// the worktree for changes as for any other. Otherwise git found changes
/// (or what `--force` does not override): `--force` is offered only when
/// it was not given. The command to run again repeats the flags given.
fn refusal_hint(entry: &worktrees::Entry, args: &Args) -> String {
    if entry.worktree.is_none() && entry.path.is_dir() {
        format!(
            "its .git file is missing or broken: restore it with 'git worktree repair' (run here), then run again: {}",
            again(entry, args)
        )
    } else if args.force {
        "git refused even with --force; its message says why".into()
    } else {
        "commit or stash the changes, or pass --force to discard them".into()
    }
}

/// This command again, for `entry` by its path, with the flags given.
fn again(entry: &worktrees::Entry, args: &Args) -> String {
    let flags = [
        (args.force, " --force"),
        (args.delete_branch, " --delete-branch"),
    ];
    let flags: String = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    format!(
        "wtenv remove{flags} {}",
        crate::shell::quote_in_message(&entry.path)
    )
}

/// Releases every allocation of the removed worktree, those `moved`
/// names with them, but one whose holder the sweep would keep (it lives,
/// or its orphans run: [`alloc::holder_gone`]): a `run` still serving
/// after `--force` keeps its port, no longer reserved, until it ends, as
/// after `git worktree remove --force` (allocation rule 4), so that the
/// port is not handed to another worktree while it serves. A failure here
/// is a warning: the worktree is gone, so the next sweep releases them.
fn release(ctx: &Ctx, repository: &Path, root: &Path, moved: &ports::Moved) {
    let part = moved.part(repository, root);
    let mut system = RealSystem::new(&ctx.registry);
    let held = |a: &Allocation| {
        a.holders
            .iter()
            .any(|h| !alloc::holder_gone(&mut system, h))
    };
    match ctx
        .registry
        .release_worktree_keeping(part, |data| moved.apply(data, root), held)
    {
        Ok((gone, kept)) => {
            for (service, port) in gone {
                report::note(&format!(
                    "released port {port} ({})",
                    process::printable(&service)
                ));
            }
            for (service, port) in kept {
                report::note(&format!(
                    "kept port {port} ({}) while its holder runs: released when it ends",
                    process::printable(&service)
                ));
            }
        }
        Err(e) => report::warn(&format!(
            "could not release the ports of {}: {e}; the next wtenv command sweeps them",
            printable_path(root)
        )),
    }
}

/// What to do about a worktree in use, `users` things using it, `usage`
/// the listeners of its allocations `mine`: stop the processes, but a
/// service manager listening for a unit by that unit, as `up`'s refusal
/// says ([`crate::probe::manager::stopping`]); or `--force`.
fn in_use_hint(mine: &[&crate::registry::Allocation], usage: &[Usage], users: usize) -> String {
    let listeners = usage.iter().flat_map(|u| match u {
        Usage::InUse(found) => found.as_slice(),
        _ => &[],
    });
    let own = |unit: &str| {
        let a = mine.first()?;
        let naming = background::Naming::at(&a.repository, &a.worktree)?;
        crate::supervise::services::exported_target(&naming, unit, mine.iter().map(|a| &a.service))
    };
    let managed = listeners
        .clone()
        .filter(|h| crate::probe::manager::Manager::of(h).is_some())
        .count();
    let (_, managers) = crate::probe::manager::stopping(listeners, &own);
    const FORCE: &str = "or pass --force (they keep running)";
    match (managers.is_empty(), users > managed) {
        (true, _) => format!("stop those processes first, {FORCE}"),
        (false, true) => format!(
            "{}; stop the other processes first, {FORCE}",
            managers.join("; ")
        ),
        (false, false) => format!("{}, {FORCE}", managers.join("; ")),
    }
}
