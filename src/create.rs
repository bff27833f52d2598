//! Making a worktree (`wtenv create`, and `wtenv enter` when the worktree
//! is missing): a new worktree on a new branch, optionally with its ports
//! reserved. All or nothing.
//!
//! Two phases. [`plan`] validates everything it can without git and
//! changes nothing: the purpose is configured, the identifier and the base
//! are safe, the path is free. [`execute`] takes the repository lock,
//! checks the path again, and makes each
//! change under a [`Rollback`] guard that records what it made and, unless
//! disarmed at the very end, undoes it in reverse on any error, on a panic,
//! and on SIGINT/SIGTERM/SIGHUP (caught with signal-hook from before the
//! first change; the command then dies of the signal, so the shell sees
//! 130 for Ctrl-C).
//!
//! Order, and why: the branch (`git update-ref` with an empty old value:
//! atomic create-if-missing, so the rollback knows the branch is its own),
//! then the worktree's directory, empty, then `git worktree add` of the
//! branch into it, and while git checks out, the ports; then the metadata.
//! The directory comes before the reservation because a reservation for a
//! directory that does not exist is "worktree gone" to a concurrent wtenv's
//! sweep (allocation rule 4), which would hand the port out twice. The reservation
//! runs beside git because it is most of what create adds to git's own
//! time (a durable registry write); its transaction never waits for git,
//! so the registry lock is not held for git's sake. It is made for the
//! config create started from; should the new checkout's own config ask
//! for other services or another range, it is made again for that one.
//!
//! Git runs in its own process group ([`crate::git`]), so a terminal's
//! Ctrl-C reaches wtenv only and the current git step finishes whole before
//! the rollback undoes it. The rollback still undoes by looking at what
//! exists (the directory, the `.git/worktrees` entry pointing at it), so a
//! git that failed half-way leaves nothing either.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::alloc::Ports;
use crate::config::Config;
use crate::context::{self, Ctx, Scope};
use crate::error::{Error, Result};
use crate::git::{Git, RepoLock};
use crate::registry::Registry;
use crate::report;
use crate::worktree::{self, Meta, Worktree};

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

/// An identifier names a directory and a branch: letters, digits, `.`,
/// `_`, `-`; 1-64 characters; not starting with `-` (an option) or `.` (a
/// hidden file, `..`); no `..` anywhere (git refuses it in a ref).
pub fn check_identifier(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.starts_with(['-', '.'])
        && !id.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::hinted(
            format!("invalid identifier {id:?}"),
            "use 1-64 letters, digits, '.', '_' or '-', not starting with '-' or '.', without '..'",
        ))
    }
}

/// A base revision is passed to git after `--end-of-options`, but one that
/// looks like an option or holds control characters is refused outright:
/// it is a mistake, never a revision.
fn check_base(base: &str) -> Result<()> {
    if base.is_empty()
        || base.len() > 256
        || base.starts_with('-')
        || base.chars().any(char::is_control)
    {
        return Err(Error::hinted(
            format!("invalid base revision {base:?}"),
            "name a branch, tag or commit, e.g. --branch main",
        ));
    }
    Ok(())
}

/// Validates everything and decides the path and the branch, without
/// running git: what needs the repository (the base exists, the branch
/// does not) is checked by [`execute`] under the repository lock, in one
/// git process.
pub fn plan(
    ctx: &Ctx,
    purpose: &str,
    identifier: &str,
    base: Option<&str>,
    path: Option<&Path>,
) -> Result<Plan> {
    check_identifier(identifier)?;
    if let Some(b) = base {
        check_base(b)?;
    }
    let source = Worktree::require(&ctx.cwd)?;
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
    if branch.is_empty() || branch.starts_with('-') || branch.chars().any(char::is_control) {
        return Err(Error::config(
            config.source.clone().unwrap_or_default(),
            "worktrees.branch",
            format!("makes {branch:?}, which is not a valid branch name"),
        ));
    }
    let base_given = base.map(str::to_owned);
    let base = base.unwrap_or("HEAD").to_owned();

    let wanted = match path {
        Some(p) => worktree::normalize(&ctx.cwd.join(p)),
        None => worktree::normalize(
            &default_root(&config.worktrees.root, &source, config.source.as_deref())?
                .join(format!("{purpose}-{identifier}")),
        ),
    };
    if wanted.to_str().is_none() {
        return Err(Error::hinted(
            format!(
                "cannot create {}: the path is not valid UTF-8",
                wanted.display()
            ),
            "wtenv records paths as text; choose a UTF-8 path (--path)",
        ));
    }
    check_path_free(&wanted)?;
    let (path, first_new_dir) = resolve_existing_prefix(&wanted)?;
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
    })
}

/// Where the new worktree's branch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
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
fn start_branch(plan: &Plan, reuse_branch: bool) -> Result<Start> {
    let err = match plan.git.create_branch(&plan.branch, &plan.base) {
        Ok(()) => return Ok(Start::NewBranch),
        Err(e @ Error::Git { .. }) => e,
        Err(e) => return Err(e),
    };
    let found = plan.git.lookup(&[
        format!("{}^{{commit}}", plan.base),
        format!("refs/heads/{}", plan.branch),
    ])?;
    if found[1].is_some() {
        if reuse_branch && plan.base_given.is_none() {
            return Ok(Start::ExistingBranch);
        }
        return Err(Error::hinted(
            format!("branch {:?} already exists", plan.branch),
            format!(
                "choose another identifier, or delete the branch: git branch -d {}",
                plan.branch
            ),
        ));
    }
    if !matches!(&found[0], Some((_, kind)) if kind == "commit") {
        return Err(Error::hinted(
            format!("base revision {:?} names no commit", plan.base),
            "name an existing branch, tag or commit with --branch",
        ));
    }
    if !plan.git.is_valid_branch_name(&plan.branch)? {
        return Err(Error::hinted(
            format!("{:?} is not a valid branch name", plan.branch),
            "check [worktrees] branch in wtenv.toml, or choose another identifier",
        ));
    }
    Err(err)
}

fn check_path_free(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::hinted(
            format!("path {} already exists", path.display()),
            "choose another identifier or --path, or remove that directory",
        ));
    }
    Ok(())
}

/// `[worktrees] root` with `{repo}` filled in, relative to the main
/// worktree (for a bare repository: beside the repository).
fn default_root(template: &str, source: &Worktree, config: Option<&Path>) -> Result<PathBuf> {
    let (base, repo) = match source.main_root() {
        Some(main) => {
            let name = main.file_name().map(|n| n.to_string_lossy().into_owned());
            (main.clone(), name.unwrap_or_default())
        }
        None => {
            let common = &source.common_dir;
            let name = common
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                common.parent().unwrap_or(Path::new("/")).to_path_buf(),
                name,
            )
        }
    };
    let root = template.replace("{repo}", &repo);
    if root.contains(['{', '}']) {
        return Err(Error::config(
            config.map(Path::to_path_buf).unwrap_or_default(),
            "worktrees.root",
            format!("{template:?}: only {{repo}} can be filled in"),
        ));
    }
    Ok(base.join(root))
}

/// `path` with its longest existing prefix canonicalized (what git records
/// as the worktree's path), and the topmost component that does not exist.
fn resolve_existing_prefix(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut existing = path;
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        rest.push(existing.file_name().unwrap_or_default().to_owned());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let mut resolved = existing
        .canonicalize()
        .map_err(|e| Error::io(format!("could not resolve {}", existing.display()), e))?;
    if !resolved.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory",
            resolved.display()
        )));
    }
    let first_missing = rest.last().cloned().unwrap_or_default();
    let first_new_dir = resolved.join(first_missing);
    for part in rest.iter().rev() {
        resolved.push(part);
    }
    Ok((resolved, first_new_dir))
}

/// Catches SIGINT, SIGTERM and SIGHUP from before the first change: the
/// signal number lands in a flag checked between steps.
struct Signals {
    caught: Arc<AtomicUsize>,
}

impl Signals {
    fn catch() -> Result<Signals> {
        let caught = Arc::new(AtomicUsize::new(0));
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            signal_hook::flag::register_usize(sig, Arc::clone(&caught), sig as usize)
                .map_err(|e| Error::io("could not install signal handlers", e))?;
        }
        Ok(Signals { caught })
    }

    /// `Err(Interrupted)` once a signal arrived: the caller returns it and
    /// the rollback guard runs on the way out.
    fn check(&self) -> Result<()> {
        match self.caught.load(Ordering::SeqCst) {
            0 => Ok(()),
            sig => Err(Error::Interrupted(sig as i32)),
        }
    }
}

/// Makes the worktree (and its ports); all or nothing.
/// `reuse_branch` (for `enter`): an existing branch of the template's name
/// is checked out instead of refused, unless a base was given.
pub fn execute(ctx: &Ctx, plan: &Plan, with_ports: bool, reuse_branch: bool) -> Result<Created> {
    let signals = Signals::catch()?;
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
    // Taken before the guard, so it is released after the rollback ran.
    let _lock = RepoLock::acquire(&plan.common_dir, &|| signals.check())?;
    // Under the lock, so no other wtenv makes this path between the check
    // and `git worktree add`.
    check_path_free(&plan.path)?;
    let mut guard = Rollback {
        plan,
        registry: &ctx.registry,
        branch_created: false,
        worktree_attempted: false,
        dir_made: false,
        worktree_added: false,
        allocated_for: None,
        armed: true,
    };
    signals.check()?;

    // The branch first, then `worktree add` of it: as many git processes
    // as `git worktree add -b` (which runs `git branch` itself), and the
    // rollback knows for sure whether the branch is its own.
    let start = start_branch(plan, reuse_branch)?;
    guard.branch_created = start == Start::NewBranch;
    if start == Start::ExistingBranch {
        report::note(&format!("branch {} exists: checking it out", plan.branch));
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
    // While git checks out, most of create's time, the ports are reserved
    // for the config create started from: the new checkout's own is almost
    // always the same file, and is looked at once git is done.
    let reserved = if with_ports {
        let asked = context::request(
            &plan.config,
            &plan.common_dir,
            &plan.path,
            &plan.purpose,
            plan.config.require_purpose(&plan.purpose)?,
            false,
        );
        guard.allocated_for = Some(plan.path.clone());
        // Only its error is kept: the ports are read back once git is done.
        let early = crate::ports::reserve_request(ctx, &asked).map(drop);
        Some((asked, early))
    } else {
        None
    };
    let added = adding.finish_showing_hooks();
    guard.worktree_added = added.is_ok();
    signals.check()?;
    added?;

    let wt = Worktree::discover(&plan.path)?
        .filter(|w| w.root == plan.path && w.common_dir == plan.common_dir)
        .ok_or_else(|| {
            Error::usage(format!(
                "git made {} but it is not a worktree of {}",
                plan.path.display(),
                plan.common_dir.display()
            ))
        })?;
    let meta = Meta {
        purpose: Some(plan.purpose.clone()),
        identifier: Some(plan.identifier.clone()),
    };
    wt.set_meta(&meta)?;
    signals.check()?;

    let mut ports = Ports::new();
    if let Some((asked, early)) = reserved {
        // The new checkout's own config decides: its branch may have
        // another wtenv.toml, asking for other services, another range or
        // skip_occupied. Then what was reserved (or refused) for the
        // source's config does not count.
        let config = ctx.config_for_like(&wt.root, &plan.config)?;
        let scope = Scope::new(wt.clone(), &meta, config)?;
        let wanted = scope.request(false);
        if (&wanted.services, &wanted.ranges, wanted.skip_occupied)
            == (&asked.services, &asked.ranges, asked.skip_occupied)
        {
            early?;
        } else {
            ctx.registry
                .release_worktree(&plan.common_dir, &plan.path)?;
        }
        // Confirmed against the registry (one read when it stands, as it
        // almost always does), or made: a `validate --fix` that ran while
        // git was checking out may have released it, judging the half-made
        // checkout by the default config.
        ports = crate::ports::reserve(ctx, &scope)?;
        signals.check()?;
    }

    guard.armed = false;
    report::note(&format!(
        "created worktree {} on branch {} from {}",
        wt.root.display(),
        plan.branch,
        match start {
            Start::NewBranch => plan.base.as_str(),
            Start::ExistingBranch => "its existing tip",
        }
    ));
    for (service, port) in &ports {
        report::note(&format!("reserved port {port} ({service})"));
    }
    if plan.config.worktrees.direnv_allow {
        direnv_allow(&plan.source_root, &wt.root);
    }
    Ok(Created {
        path: wt.root,
        branch: plan.branch.clone(),
        purpose: plan.purpose.clone(),
        identifier: plan.identifier.clone(),
        ports,
    })
}

/// Undoes, in reverse, what [`execute`] made, unless disarmed.
struct Rollback<'a> {
    plan: &'a Plan,
    /// The branch was made by this command.
    branch_created: bool,
    registry: &'a Registry,
    worktree_attempted: bool,
    /// The worktree's directory was made by this command (empty, for git).
    dir_made: bool,
    /// `git worktree add` succeeded: the directory is ours.
    worktree_added: bool,
    /// The canonical worktree path ports may have been reserved for.
    allocated_for: Option<PathBuf>,
    armed: bool,
}

impl Rollback<'_> {
    fn failed(&self, what: &str, err: impl std::fmt::Display) {
        // Said even with -q: something was left behind.
        report::urgent(
            &format!("rollback could not {what}: {err}"),
            "remove it by hand",
        );
    }

    fn undo(&mut self) {
        let plan = self.plan;
        if !(self.branch_created || self.worktree_attempted || self.allocated_for.is_some()) {
            return; // nothing made yet
        }
        if let Some(root) = self.allocated_for.take()
            && let Err(e) = self.registry.release_worktree(&plan.common_dir, &root)
        {
            self.failed(&format!("release the ports of {}", root.display()), e);
        }
        if self.worktree_attempted {
            // A complete worktree: git removes the directory and its entry.
            // Anything half-made: by hand, below. A directory git refused to
            // use (someone made it after the check) is never touched: only one
            // whose `.git` points into this repository's worktrees is ours.
            if plan.path.exists() {
                let _ = plan.git.worktree_remove(&plan.path, 2);
            }
            if plan.path.exists()
                && (self.worktree_added || made_by_git(&plan.path, &plan.common_dir))
                && let Err(e) = std::fs::remove_dir_all(&plan.path)
            {
                self.failed(&format!("remove {}", plan.path.display()), e);
            }
            remove_admin_entries(&plan.common_dir, &plan.path);
            // The directory if this command made it and it is still empty
            // (git failed before filling it), and the empty parents this
            // command made (e.g. `../repo.worktrees`); `remove_dir` leaves
            // a directory another worktree now uses.
            let mut dir = if self.dir_made {
                Some(plan.path.as_path())
            } else {
                plan.path.parent()
            };
            while let Some(d) = dir.filter(|d| d.starts_with(&plan.first_new_dir)) {
                match std::fs::remove_dir(d) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => break,
                    _ => dir = d.parent(),
                }
            }
        }
        if self.branch_created
            && let Err(e) = plan.git.delete_branch_ref(&plan.branch)
        {
            self.failed(&format!("delete branch {}", plan.branch), e);
        }
        tracing::info!(path = %plan.path.display(), "rolled back: nothing was kept");
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.undo();
        }
    }
}

/// Makes the worktree's directory, and its missing parents, for git to
/// fill in. The path was checked free under the repository lock.
fn make_dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("could not create {}", parent.display()), e))?;
    }
    std::fs::create_dir(path)
        .map_err(|e| Error::io(format!("could not create {}", path.display()), e))
}

/// Whether `dir` is a worktree checkout git made for `common_dir`: its
/// `.git` file points into `<common_dir>/worktrees/`.
fn made_by_git(dir: &Path, common_dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(".git")).is_ok_and(|text| {
        text.lines()
            .next()
            .and_then(|l| l.strip_prefix("gitdir:"))
            .is_some_and(|target| {
                worktree::normalize(&dir.join(target.trim()))
                    .starts_with(common_dir.join("worktrees"))
            })
    })
}

/// Deletes the `.git/worktrees/<name>` entries that point at `path`, and
/// the one git was still initializing for it (no `gitdir` yet). What
/// `git worktree prune` would do, limited to our own path.
fn remove_admin_entries(common_dir: &Path, path: &Path) {
    let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) else {
        return;
    };
    let dot_git = path.join(".git");
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for entry in entries.flatten() {
        let dir = entry.path();
        let ours = match std::fs::read_to_string(dir.join("gitdir")) {
            Ok(text) => worktree::normalize(&dir.join(text.trim())) == dot_git,
            Err(_) => {
                let name = entry.file_name().to_string_lossy().into_owned();
                let initializing = std::fs::read_to_string(dir.join("locked"))
                    .is_ok_and(|t| t.trim() == "initializing");
                initializing
                    && name
                        .strip_prefix(&base)
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            }
        };
        if ours {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// `direnv allow NEW` when the source worktree's `.envrc` is allowed and
/// the new one's is the same file, byte for byte, so the new worktree loads
/// at once. An `.envrc` that differs (the new branch came from someone
/// else) is code the user has not seen: it is left for them to review,
/// with a warning. Best effort: the worktree is made either way; without
/// direnv, nothing is said.
fn direnv_allow(source: &Path, new: &Path) {
    const CAP: u64 = 1024 * 1024;
    let read = |dir: &Path| {
        crate::files::read_regular(&dir.join(".envrc"), CAP)
            .ok()
            .flatten()
    };
    let (Some(source_rc), Some(new_rc)) = (read(source), read(new)) else {
        return;
    };
    let status = std::process::Command::new("direnv")
        .arg("status")
        .current_dir(source)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(status) = status else {
        return; // direnv is not installed
    };
    // direnv 2.32 prints "Found RC allowed true", newer ones "... 0".
    let allowed = String::from_utf8_lossy(&status.stdout).lines().any(|l| {
        l.strip_prefix("Found RC allowed ")
            .is_some_and(|v| matches!(v.trim(), "true" | "0"))
    });
    if !allowed {
        return;
    }
    if source_rc != new_rc {
        report::warn(&format!(
            "did not run direnv allow {}: its .envrc differs from the one allowed in {}; \
             review it, then run `direnv allow {}`",
            new.display(),
            source.display(),
            new.display()
        ));
        return;
    }
    match std::process::Command::new("direnv")
        .arg("allow")
        .arg(new)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            tracing::info!(worktree = %new.display(), "direnv allow");
        }
        Ok(out) => report::warn(&format!(
            "direnv allow {} failed: {}",
            new.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => report::warn(&format!("could not run direnv allow: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "x-1", "A.b_c", &"a".repeat(64)] {
            assert!(check_identifier(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-rf",
            ".x",
            "a..b",
            "../x",
            "a b",
            "$(touch p)",
            "a\nb",
            "é",
            "a/b",
            &"a".repeat(65),
        ] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rollback_removes_only_the_admin_entries_of_its_own_path() {
        let tmp = tempfile::tempdir().unwrap();
        let common = tmp.path().join("repo/.git");
        let entry = |name: &str, gitdir: Option<&str>, locked: Option<&str>| {
            let dir = common.join("worktrees").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(g) = gitdir {
                std::fs::write(dir.join("gitdir"), format!("{g}\n")).unwrap();
            }
            if let Some(l) = locked {
                std::fs::write(dir.join("locked"), l).unwrap();
            }
        };
        entry("feature-a", Some("/w/feature-a/.git"), None);
        entry("feature-a1", None, Some("initializing"));
        entry("feature-ab", None, Some("initializing"));
        entry("feature-b", Some("/w/feature-b/.git"), None);
        entry("feature-a2", None, Some("on a usb disk"));
        remove_admin_entries(&common, Path::new("/w/feature-a"));
        let mut left: Vec<String> = std::fs::read_dir(common.join("worktrees"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["feature-a2", "feature-ab", "feature-b"]);

        let wt = tmp.path().join("wt");
        std::fs::create_dir_all(&wt).unwrap();
        assert!(!made_by_git(&wt, &common));
        std::fs::write(
            wt.join(".git"),
            format!("gitdir: {}\n", common.join("worktrees/feature-a").display()),
        )
        .unwrap();
        assert!(made_by_git(&wt, &common));
        std::fs::write(wt.join(".git"), "gitdir: /elsewhere/.git/worktrees/x\n").unwrap();
        assert!(!made_by_git(&wt, &common));
    }

    #[test]
    fn bases() {
        assert!(check_base("main").is_ok() && check_base("HEAD~2").is_ok());
        for bad in ["", "-rf", "a\nb", &"a".repeat(300)] {
            assert!(check_base(bad).is_err(), "{bad:?}");
        }
    }
}
