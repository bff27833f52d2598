//! The repository's worktrees as wtenv sees them: every worktree git lists
//! (the main one, those `create` made, those made by hand) with the
//! purpose and identifier wtenv knows for it, and the lookup by identifier
//! that `enter`, `remove` and `list` share.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::git::{Git, ListedWorktree, Stop};
use crate::process::printable_path;
use crate::worktree::{self, Meta, Worktree};

/// One worktree as git lists it, with what wtenv knows of it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub listed: ListedWorktree,
    /// Canonical path (git's own when the directory is missing).
    pub path: PathBuf,
    /// Found on disk; `None` when the directory is missing (prunable) or
    /// for a bare repository's entry.
    pub worktree: Option<Worktree>,
    /// Recorded by `create`, else the `default_purpose` of the worktree's
    /// own config (as its `env` takes it; the current config's when its
    /// directory is gone, or under `--config`).
    pub purpose: String,
    /// Recorded by `create` (read from the worktree's git dir, also when
    /// its directory is missing), else the directory name.
    pub identifier: String,
    pub main: bool,
    /// Git lists the repository's git dir in the main worktree's place,
    /// and wtenv cannot name that worktree either: a separate git dir
    /// without `core.worktree`, seen from a linked worktree (git lists the
    /// git dir there from any directory). No worktree one could enter:
    /// `list` says so, `remove` refuses it as the git dir.
    pub git_dir: bool,
    /// The directory as the worktree of another repository, whose own
    /// it is: its `.git` names that repository's git dir, which leads
    /// back to it ([`worktree::is_of_another_repository`]). This
    /// repository's record of it is stale (a repository copied with `cp
    /// -a` lists the original's worktrees): `list` says so, `remove`
    /// refuses it.
    pub of_another_repository: Option<Worktree>,
}

/// The repository around the current directory ([`Ctx::cwd`]): its
/// worktree, its config, and every worktree of it, found from git's files
/// without running git (`enter` runs on a `cd`, `remove` should cost what
/// `git worktree remove` costs).
/// The entries' `branch` is left unknown; `list` asks git instead
/// ([`entries_from_git_of`]).
pub fn entries(ctx: &Ctx) -> Result<(Worktree, Config, Vec<Entry>)> {
    entries_of(ctx, ctx.require_worktree_here()?)
}

/// [`entries`] of the worktree `here`, already found (`remove` finds it,
/// takes the repository lock, then reads the listing).
pub fn entries_of(ctx: &Ctx, here: Worktree) -> Result<(Worktree, Config, Vec<Entry>)> {
    let config = ctx.config_for(&here.root)?;
    let listed = worktree::listed_worktrees_with(&here.common_dir, here.main_root())
        .into_iter()
        .map(|(path, locked)| ListedWorktree {
            path,
            locked,
            ..ListedWorktree::default()
        })
        .collect();
    let entries = build(ctx, &here, &config, listed);
    Ok((here, config, entries))
}

/// Like [`entries_of`], from `git worktree list --porcelain -z`: with
/// each worktree's branch, and whether it is detached, locked or
/// prunable; `stop` stops git ([`crate::git::Signals`]). Git reads
/// each worktree's branch from the repository (the worktree's git dir),
/// so it is known also for a worktree whose directory is gone (`remove
/// --delete-branch`).
pub fn entries_from_git_of(
    ctx: &Ctx,
    here: Worktree,
    stop: Stop,
) -> Result<(Worktree, Config, Vec<Entry>)> {
    let config = ctx.config_for(&here.root)?;
    // A FIFO planted among the worktree entries would hang git's listing.
    worktree::refuse_planted_entries(
        &here.common_dir,
        "list the worktrees",
        "git worktree list",
        "nothing was changed",
    )?;
    let listed = Git::new(&here.root).stopped_by(stop).worktrees()?;
    let entries = build(ctx, &here, &config, listed);
    Ok((here, config, entries))
}

fn build(ctx: &Ctx, here: &Worktree, config: &Config, listed: Vec<ListedWorktree>) -> Vec<Entry> {
    let main_root = here.main_root();
    listed
        .into_iter()
        .map(|mut l| {
            // Git lists the main worktree of a submodule, or of a separate
            // git dir, as the git dir itself: named by the worktree, when
            // wtenv knows it, so that its row is that worktree's.
            let names_git_dir =
                !l.bare && l.path.canonicalize().ok().as_ref() == Some(&here.common_dir);
            // Else it stays the git dir, as git lists it ([`Entry::git_dir`]).
            let git_dir = names_git_dir && main_root.is_none();
            if let Some(main) = main_root.as_ref().filter(|_| names_git_dir) {
                l.path = main.clone();
            }
            let found = match l.bare {
                true => None,
                false => Worktree::discover(&l.path).ok().flatten(),
            };
            let at_path = |w: &Worktree| w.root == l.path.canonicalize().unwrap_or_default();
            let found = found.filter(at_path);
            let (worktree, of_another_repository) = match found {
                Some(w) if w.common_dir == here.common_dir => (Some(w), None),
                Some(w) if worktree::is_of_another_repository(&w, &here.common_dir) => {
                    (None, Some(w))
                }
                _ => (None, None),
            };
            let path = worktree
                .as_ref()
                .map(|w| w.root.clone())
                .unwrap_or_else(|| l.path.clone());
            // A worktree whose directory is gone, or whose `.git` file
            // is, keeps its record in its git dir until git prunes it:
            // it is still found by the identifier it was made with.
            let meta = match &worktree {
                Some(w) => w.meta(),
                None if l.bare => Meta::default(),
                None => worktree::admin_dir_of(&here.common_dir, &l.path)
                    .and_then(|admin_dir| worktree::recorded_meta(&admin_dir))
                    .unwrap_or_default(),
            };
            let identifier = worktree::identifier_of(&path, &meta);
            Entry {
                main: names_git_dir || main_root.as_deref() == Some(path.as_path()),
                git_dir,
                purpose: meta.purpose.unwrap_or_else(|| {
                    // A branch may have its own config, and another
                    // default purpose in it: the one its `env` uses.
                    worktree
                        .as_ref()
                        .and_then(|w| ctx.config_for_like(&w.root, config).ok())
                        .unwrap_or_else(|| config.clone())
                        .worktrees
                        .default_purpose
                }),
                identifier,
                path,
                worktree,
                of_another_repository,
                listed: l,
            }
        })
        .collect()
}

impl Entry {
    /// The refusal of this worktree when it is another repository's own
    /// ([`Entry::of_another_repository`]), ending with `nothing` (what
    /// was not done). This repository's record of it
    /// (`<common_dir>/worktrees/<name>`) is stale, as a repository copied
    /// with `cp -a` has: git refuses to remove the worktree by it, and
    /// `git worktree repair` run here would point the worktree at this
    /// repository, taking it from its own. Removing that record alone
    /// touches neither the worktree nor its repository (`git worktree
    /// prune` does not: the directory it names is there).
    pub fn another_repositorys(&self, common_dir: &Path, nothing: &str) -> Option<Error> {
        let other = self.of_another_repository.as_ref()?;
        let record = worktree::admin_dir_of(common_dir, &self.path)
            .unwrap_or_else(|| common_dir.join("worktrees"));
        let error = Error::refused(format!(
            "worktree {} is another repository's ({}): its .git file names that repository's git dir, which leads back to it; this repository's record of it ({}) is {}; {nothing}",
            printable_path(&self.path),
            printable_path(&other.common_dir),
            printable_path(&record),
            stale_record(other)
        ))
        .with_hint(format!(
            "to drop this repository's record and leave the worktree as it is: {}; use the worktree from its own repository (never 'git worktree repair' here: it would take the worktree from its repository)",
            crate::files::removal(&record).command
        ));
        Some(error)
    }
}

/// What is said of this repository's record of `other`'s own worktree
/// ([`Entry::of_another_repository`]): a copy of that repository's own
/// record (`other` is one of its linked worktrees, whose record was
/// copied with it: `cp -a` of a repository), or stale (a worktree
/// deleted and replaced by a clone, say).
pub fn stale_record(other: &Worktree) -> &'static str {
    if other.git_dir != other.common_dir {
        "a stale copy of that repository's own"
    } else {
        "stale"
    }
}

/// The worktree named `identifier` (and of `purpose`, if given), never a
/// repository's own directory (bare, or [`Entry::git_dir`]). `None` if
/// there is none; an error if the name is ambiguous, with the hint
/// `tell_apart` gives: what the command takes to say which (`enter` a
/// purpose, `remove` a path), told whether a purpose would.
pub fn find<'a>(
    entries: &'a [Entry],
    identifier: &str,
    purpose: Option<&str>,
    tell_apart: impl Fn(bool) -> String,
) -> Result<Option<&'a Entry>> {
    let hits: Vec<&Entry> = entries
        .iter()
        .filter(|e| !e.listed.bare && !e.git_dir && e.identifier == identifier)
        .filter(|e| purpose.is_none_or(|p| e.purpose == p))
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => {
            // Whether a purpose could still tell them apart.
            let by_purpose = purpose.is_none() && many.iter().any(|e| e.purpose != many[0].purpose);
            Err(Error::invalid(format!(
                "{} worktrees are named {identifier:?}: {}",
                many.len(),
                many.iter()
                    .map(|e| printable_path(&e.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_hint(tell_apart(by_purpose)))
        }
    }
}
