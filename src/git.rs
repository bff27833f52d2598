//! The one module that runs git: its CLI, argument vectors only,
//! never a shell, and one error text per call ([`Error::Git`] names the
//! arguments and git's own message).
//!
//! Only `create`, `enter`, `remove` and `list` come here. `wtenv env` runs
//! on every `cd` and never runs git: it finds the worktree from files
//! ([`crate::worktree`]). Each of their git steps is stopped by the user's
//! signals ([`Signals`]): a repository's config can include a FIFO, which
//! blocks every git command there.
//!
//! User text (a base revision, a path) never reaches a position where git
//! could read it as an option: revisions follow `--end-of-options`, paths
//! follow `--`, and ref names are checked in their full `refs/heads/` form.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::printable_path;

mod stop;
pub use stop::{Signals, Stop, said_if_stopped};
use stop::{Step, wait_for};

/// The environment variables that make git act on another repository
/// than the one its working directory is in (`git rev-parse
/// --local-env-vars`, less the user's config, `GIT_CONFIG*`, and the
/// ones that steer discovery): wtenv finds the repository from the
/// current directory itself, and `env` and `run` run no git, so every git
/// wtenv runs is rid of them and acts on that same repository. A
/// `GIT_DIR` left in a shell made `list` show another repository's
/// worktrees beside this one's config. Services (`run`, `up`) keep them.
const REPOSITORY_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_GRAFT_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// A repository (or one of its worktrees) that git commands run in.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// What stops a git step before it ends (the user's signals:
    /// [`Signals`]); none: each step is waited for to its end.
    stop: Option<Stop>,
}

/// A git command started by [`Git::start`]. Dropped unfinished (an early
/// return), it is still waited for: no git outlives the step that started
/// it, and a rollback never races it.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    /// The arguments, for messages.
    shown: String,
    /// [`Git::stop`], and the count of requests when git started.
    stop: Option<(Stop, usize)>,
    /// While git runs, the signals that stop it are caught.
    step: Option<Step>,
}

impl Running {
    /// Waits for git: its stdout on success, else [`Error::Git`] with its
    /// stderr.
    pub fn finish(self) -> Result<String> {
        self.wait(false)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    /// [`finish`](Running::finish), and on success git's stderr is passed
    /// on as it is: what its hooks printed (git sends a hook's output
    /// there), which the user sees as `git worktree add` would show it.
    pub fn finish_showing_hooks(self) -> Result<String> {
        self.wait(true)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    /// Git's stdout, its bytes as they are: where it holds paths.
    fn wait(mut self, show_stderr: bool) -> Result<Vec<u8>> {
        let child = self.child.take().expect("finished once");
        let out = wait_for(child, self.stop.as_ref());
        // Over: a signal from now on takes its default action; one caught
        // while git ran (it stopped git, or git ended first) ends the
        // command.
        drop(self.step.take());
        if let Some((stop, _)) = &self.stop {
            stop.check()?;
        }
        let out = out.map_err(|e| Error::io(format!("could not run git {}", self.shown), e))?;
        if out.status.success() {
            if show_stderr {
                use std::io::Write;
                let _ = std::io::stderr().write_all(&out.stderr);
            }
            Ok(out.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err(Error::Git {
                args: self.shown.clone(),
                stderr: if stderr.is_empty() {
                    format!("exited with {}", out.status)
                } else {
                    stderr
                },
            })
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = wait_for(child, self.stop.as_ref());
        }
    }
}

/// One entry of `git worktree list --porcelain -z`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedWorktree {
    pub path: PathBuf,
    /// `None` for a bare repository's entry.
    pub head: Option<String>,
    /// Short name (`feature/x`); `None` when detached or bare.
    pub branch: Option<String>,
    pub bare: bool,
    pub detached: bool,
    /// Locked (`git worktree lock`): its reason, empty when none was
    /// given. Git's own `initializing` while `git worktree add` runs.
    pub locked: Option<String>,
    /// Git would prune it (`git worktree prune`): its reason, such as
    /// `gitdir file points to non-existent location` when the directory
    /// is missing.
    pub prunable: Option<String>,
}

impl ListedWorktree {
    /// Locked by git itself, reason `initializing`, as `git worktree add`
    /// keeps the worktree it is making (or as a git killed meanwhile left
    /// it): not a user's lock, and not one to lift while git runs.
    pub fn being_added(&self) -> bool {
        self.locked.as_deref() == Some("initializing")
    }
}

impl Git {
    /// Git commands run with `dir` as their working directory.
    pub fn new(dir: impl Into<PathBuf>) -> Git {
        Git {
            dir: dir.into(),
            stop: None,
        }
    }

    /// This git, each of whose steps `stop` may stop ([`Stop`]).
    pub fn stopped_by(self, stop: Stop) -> Git {
        Git {
            stop: Some(stop),
            ..self
        }
    }

    /// This git, run in `dir` instead, stopped as this one is.
    pub fn at(&self, dir: impl Into<PathBuf>) -> Git {
        Git {
            dir: dir.into(),
            stop: self.stop.clone(),
        }
    }

    /// Runs `git ARGS`; stdout on success, else [`Error::Git`] with stderr.
    fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_input(args, None)
    }

    /// [`run`](Self::run), with `input` on git's stdin.
    fn run_with_input<I, S>(&self, args: I, input: Option<&str>) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.start(args, input, None)?.finish()
    }

    /// Starts `git ARGS` without waiting for it: [`Running::finish`] waits
    /// and gives [`run`](Self::run)'s result.
    fn start<I, S>(
        &self,
        args: I,
        input: Option<&str>,
        env: Option<(&str, &str)>,
    ) -> Result<Running>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        tracing::debug!(args = %shown, dir = %self.dir.display(), "git");
        // Counted before git starts: a request from then on stops it. The
        // signals of `Signals::during_git` are caught only after the
        // count: one in between takes its default action, never counted
        // in `asked`, where it would not stop git.
        let stop = self.stop.clone().map(|stop| {
            let asked = stop.requests();
            (stop, asked)
        });
        let step = self.stop.as_ref().map(Stop::step);
        // Its own process group: a terminal's Ctrl-C reaches wtenv only,
        // which lets `create`'s git step finish whole and then undoes it
        // (see `commands::create`), instead of git dying half-way with
        // children still holding ref locks; wtenv stops it itself when
        // asked to ([`Stop`]).
        let mut command = Command::new("git");
        for name in REPOSITORY_VARS {
            command.env_remove(name);
        }
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        // A repository's `core.fsmonitor` names a command git runs whenever
        // it refreshes an index (`worktree add`'s checkout, `worktree
        // remove`'s dirty check): a git dir that came with an archive
        // could name anything. It only makes git faster, so wtenv's git
        // runs without it; `-c` reaches git's own git children too.
        let mut child = command
            .args(["-c", "core.fsmonitor=false"])
            .args(&args)
            .current_dir(&self.dir)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                // The kernel says ENOENT alike for a missing program and a
                // missing working directory: a directory deleted behind
                // wtenv's back is no reason to install git.
                if e.kind() == std::io::ErrorKind::NotFound && !self.dir.exists() {
                    return Error::not_found(format!(
                        "could not run git {shown}: its working directory {} does not exist",
                        printable_path(&self.dir)
                    ))
                    .with_hint(
                        "it was deleted or moved: run wtenv again from a worktree that exists ('wtenv list' shows them)",
                    );
                }
                let missing = e.kind() == std::io::ErrorKind::NotFound;
                let err = Error::io(format!("could not run git {shown}"), e);
                if missing {
                    err.with_hint("install git, or put it on PATH")
                } else {
                    err
                }
            })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            // Small (a few lines): fits the pipe, no deadlock with stdout.
            if let Err(e) = stdin.write_all(text.as_bytes()) {
                let _ = child.wait();
                return Err(Error::io(format!("could not write to git {shown}"), e));
            }
        }
        Ok(Running {
            child: Some(child),
            shown,
            stop,
            step,
        })
    }

    /// Resolves each of `names` (revisions: `main`, `HEAD~2`,
    /// `refs/heads/x`, `v1^{commit}`) in ONE git process (`git cat-file
    /// --batch-check`; names go through stdin, never argv, so none can be
    /// an option): `Some((hash, type))`, or `None` for a name that names
    /// nothing. A name must not hold a newline.
    pub fn lookup(&self, names: &[String]) -> Result<Vec<Option<(String, String)>>> {
        debug_assert!(names.iter().all(|n| !n.contains('\n')));
        let input: String = names.iter().map(|n| format!("{n}\n")).collect();
        let out = self.run_with_input(["cat-file", "--batch-check"], Some(&input))?;
        let mut lines = out.lines();
        Ok(names
            .iter()
            .map(|_| {
                let line = lines.next().unwrap_or_default();
                let mut words = line.split(' ');
                match (words.next(), words.next(), words.next()) {
                    // "<hash> <type> <size>"; a miss is "<name> missing".
                    (Some(hash), Some(kind), Some(_))
                        if hash.len() >= 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        Some((hash.to_owned(), kind.to_owned()))
                    }
                    _ => None,
                }
            })
            .collect())
    }

    /// Creates branch `name` at the commit `base` names, only if no such
    /// branch exists: one atomic `git update-ref` (the empty old value
    /// means "must not exist"), which also refuses a bad ref name. The
    /// reflog says what `git branch` would.
    pub fn create_branch(&self, name: &str, base: &str) -> Result<()> {
        self.run([
            "update-ref",
            "-m",
            &format!("branch: Created from {base}"),
            "--",
            &format!("refs/heads/{name}"),
            &format!("{base}^{{commit}}"),
            "",
        ])
        .map(drop)
    }

    /// The first branch under `name/` (`feature/x/y` for `feature/x`),
    /// which keeps a branch `name` from being made: git keeps a branch as
    /// a file, and a directory of branches under the same name. `name`
    /// is a valid branch name (no glob characters).
    pub fn branch_under(&self, name: &str) -> Result<Option<String>> {
        let out = self.run([
            "for-each-ref",
            "--count=1",
            "--format=%(refname)",
            &format!("refs/heads/{name}/"),
        ])?;
        Ok(out
            .lines()
            .next()
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .map(str::to_owned))
    }

    /// Whether `name` is a valid branch name (`git check-ref-format` on
    /// `refs/heads/<name>`, so it can never be read as an option).
    pub fn is_valid_branch_name(&self, name: &str) -> Result<bool> {
        match self.run(["check-ref-format", &format!("refs/heads/{name}")]) {
            Ok(_) => Ok(true),
            Err(Error::Git { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts `git worktree add --quiet -- PATH BRANCH`: checks out an
    /// existing branch (`create` makes it first, with
    /// [`Git::create_branch`]) at PATH, missing or an empty directory. The
    /// caller works while git checks out, then [`Running::finish`]es.
    /// `env` is given to git, and so to its hooks (`create` names the
    /// worktree it makes: [`crate::settings::CREATING`]).
    pub fn start_worktree_add(
        &self,
        path: &Path,
        branch: &str,
        env: (&str, &str),
    ) -> Result<Running> {
        let args: [&OsStr; 6] = [
            "worktree".as_ref(),
            "add".as_ref(),
            "--quiet".as_ref(),
            "--".as_ref(),
            path.as_os_str(),
            branch.as_ref(),
        ];
        self.start(args, None, Some(env))
    }

    /// `git worktree remove [--force [--force]] -- PATH`. `force` 2 also
    /// removes a locked worktree (rollback of a half-made one).
    pub fn worktree_remove(&self, path: &Path, force: u8) -> Result<()> {
        let mut args: Vec<&OsStr> = vec!["worktree".as_ref(), "remove".as_ref()];
        for _ in 0..force {
            args.push("--force".as_ref());
        }
        args.push("--".as_ref());
        args.push(path.as_os_str());
        self.run(args).map(drop)
    }

    /// Deletes branch `name` (`git update-ref -d`: no merge check; for a
    /// rollback of a branch this very command created).
    pub fn delete_branch_ref(&self, name: &str) -> Result<()> {
        self.run(["update-ref", "-d", "--", &format!("refs/heads/{name}")])
            .map(drop)
    }

    /// The branch checked out in this worktree, `None` when detached.
    pub fn current_branch(&self) -> Result<Option<String>> {
        match self.run(["symbolic-ref", "--quiet", "--short", "HEAD"]) {
            Ok(out) => Ok(Some(out.trim().to_owned())),
            Err(Error::Git { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `git branch -d NAME`, run here, would find the branch
    /// merged: its tip is reachable from its upstream when it has one that
    /// resolves, else from HEAD (git's own rule for `-d`). Asked before
    /// anything is removed, so a refusal removes nothing.
    pub fn branch_merged(&self, name: &str) -> Result<bool> {
        let branch = format!("refs/heads/{name}");
        let upstream = self.run(["for-each-ref", "--format=%(upstream)", &branch])?;
        let upstream = upstream.trim();
        let into = match upstream.is_empty() {
            false if self.lookup(&[upstream.to_owned()])?[0].is_some() => upstream,
            _ => "HEAD",
        };
        match self.run(["merge-base", "--is-ancestor", &branch, into]) {
            Ok(_) => Ok(true),
            Err(Error::Git { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `git branch -d|-D -- NAME`: `-d` refuses an unmerged branch.
    pub fn delete_branch(&self, name: &str, force: bool) -> Result<()> {
        let flag = if force { "-D" } else { "-d" };
        self.run(["branch", flag, "--", name]).map(drop)
    }

    /// Every worktree of the repository, the main one first.
    pub fn worktrees(&self) -> Result<Vec<ListedWorktree>> {
        // Paths as bytes: a worktree's path need not be UTF-8.
        let out = self
            .start(["worktree", "list", "--porcelain", "-z"], None, None)?
            .wait(false)?;
        Ok(parse_worktree_list(&out))
    }
}

/// Serializes wtenv's own `git worktree add` and `remove` in one
/// repository: git's `worktree add` is not safe against a concurrent one
/// (it reads the other's half-made `.git/worktrees` entry and fails with
/// "failed to read .../commondir"). An exclusive `flock` on the git common
/// dir itself (git never flocks it), so no file is added to the
/// repository; released on drop.
pub struct RepoLock {
    _file: File,
}

/// How long a wtenv waits for another one's worktree change.
const REPO_LOCK_WAIT: Duration = Duration::from_secs(60);

impl RepoLock {
    /// Waits for the lock, polling `interrupted` so a Ctrl-C while waiting
    /// is seen at once (an `Err` from it is returned as is).
    pub fn acquire(common_dir: &Path, interrupted: &dyn Fn() -> Result<()>) -> Result<RepoLock> {
        Self::acquire_within(common_dir, REPO_LOCK_WAIT, interrupted)
    }

    /// [`RepoLock::acquire`], waiting at most `wait`.
    fn acquire_within(
        common_dir: &Path,
        wait: Duration,
        interrupted: &dyn Fn() -> Result<()>,
    ) -> Result<RepoLock> {
        let path = common_dir;
        let file = File::open(path)
            .map_err(|e| Error::io(format!("could not open {}", printable_path(path)), e))?;
        let mut waiting = crate::report::SlowWait::start();
        loop {
            interrupted()?;
            match file.try_lock() {
                Ok(()) => return Ok(RepoLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if waiting.elapsed() < wait => {
                    // A `remove` that waits for an `up -d` of its
                    // worktree to get ready holds this lock meanwhile.
                    waiting.tick(|| {
                        format!(
                            "waiting for another wtenv creating or removing a worktree of this repository (at most {} s)",
                            wait.as_secs()
                        )
                    });
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::refused(format!(
                        "could not lock {}: busy for {} s",
                        printable_path(path),
                        wait.as_secs()
                    ))
                    .with_hint(crate::error::lock_busy_hint(
                        "another wtenv creating or removing a worktree of this repository",
                        &format!("the lock on {}", printable_path(path)),
                        "retry",
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(
                        format!("could not lock {}", printable_path(path)),
                        e,
                    ));
                }
            }
        }
    }
}

/// Parses `git worktree list --porcelain -z`: NUL-terminated `key value`
/// fields, an empty field between entries. `-z` keeps paths with newlines
/// intact, and a path is read as its bytes (UTF-8 or not), never lossily:
/// a copy with U+FFFD would name another directory.
pub fn parse_worktree_list(bytes: &[u8]) -> Vec<ListedWorktree> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut cur: Option<ListedWorktree> = None;
    for field in bytes.split(|&b| b == 0) {
        if field.is_empty() {
            out.extend(cur.take());
            continue;
        }
        let (key, raw) = match field.iter().position(|&b| b == b' ') {
            Some(space) => (&field[..space], &field[space + 1..]),
            None => (field, &[][..]),
        };
        if key == b"worktree" {
            out.extend(cur.take());
            cur = Some(ListedWorktree {
                path: PathBuf::from(OsStr::from_bytes(raw)),
                ..ListedWorktree::default()
            });
            continue;
        }
        let Some(w) = cur.as_mut() else { continue };
        let key = String::from_utf8_lossy(key);
        let value = &*String::from_utf8_lossy(raw);
        let key = &*key;
        match key {
            "HEAD" => w.head = Some(value.to_owned()),
            "branch" => {
                w.branch = Some(
                    value
                        .strip_prefix("refs/heads/")
                        .unwrap_or(value)
                        .to_owned(),
                )
            }
            "bare" => w.bare = true,
            "detached" => w.detached = true,
            "locked" => w.locked = Some(value.to_owned()),
            "prunable" => w.prunable = Some(value.to_owned()),
            _ => {}
        }
    }
    out.extend(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Git spawned in a directory that is gone fails with ENOENT, as a
    /// git missing from PATH does: it was said as "install git".
    #[test]
    fn a_missing_working_directory_is_named_not_a_missing_git() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        let err = Git::new(&gone).worktrees().unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "could not run git worktree list --porcelain -z: its working directory {} does not exist",
                gone.display()
            )
        );
        let hint = err.hint().unwrap_or_default();
        assert!(!hint.contains("install git"), "{hint}");
    }

    /// Any process may hold the flock on the common dir (`flock(1)`, a
    /// script): the hint says so and names what is locked.
    #[test]
    fn a_busy_repository_lock_names_the_lock_and_any_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let other = File::open(tmp.path()).unwrap();
        other.try_lock().unwrap();
        let Err(err) = RepoLock::acquire_within(tmp.path(), Duration::ZERO, &|| Ok(())) else {
            panic!("the lock was busy");
        };
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("could not lock {}: busy for 0 s", tmp.path().display())
        );
        assert_eq!(
            err.hint().unwrap(),
            format!(
                "another process (usually another wtenv creating or removing a worktree of this repository) holds the lock on {}; retry",
                tmp.path().display()
            )
        );
        drop(other);
        RepoLock::acquire_within(tmp.path(), Duration::ZERO, &|| Ok(())).unwrap();
    }

    /// Every variable git itself counts as selecting the repository is
    /// cleared, but the user's config (`GIT_CONFIG_COUNT`,
    /// `GIT_CONFIG_PARAMETERS`), which says how git acts, not on what.
    #[test]
    fn every_repository_variable_git_knows_is_cleared() {
        let out = Command::new("git")
            .args(["rev-parse", "--local-env-vars"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|v| !v.starts_with("GIT_CONFIG"))
            .filter(|v| !REPOSITORY_VARS.contains(v))
            .map(str::to_owned)
            .collect();
        assert_eq!(missing, Vec::<String>::new());
        assert!(!REPOSITORY_VARS.iter().any(|v| v.starts_with("GIT_CONFIG")));
    }

    #[test]
    fn parses_porcelain_z() {
        let text = "worktree /r\0HEAD abc\0branch refs/heads/main\0\0\
                    worktree /w x\nnl\0HEAD def\0detached\0locked on a USB disk\0prunable gitdir file points to non-existent location\0\0\
                    worktree /l\0HEAD abc\0branch refs/heads/l\0locked\0\0\
                    worktree /a\0HEAD abc\0branch refs/heads/a\0locked initializing\0\0";
        let list = parse_worktree_list(text.as_bytes());
        assert_eq!(list.len(), 4);
        assert_eq!(list[0].branch.as_deref(), Some("main"));
        assert_eq!(list[1].path, PathBuf::from("/w x\nnl"));
        assert!(list[1].detached);
        assert_eq!(
            list[1].prunable.as_deref(),
            Some("gitdir file points to non-existent location")
        );
        assert_eq!(list[0].prunable, None);
        assert_eq!(list[1].locked.as_deref(), Some("on a USB disk"));
        assert_eq!(list[1].branch, None);
        assert_eq!(list[0].locked, None);
        assert_eq!(list[2].locked.as_deref(), Some(""), "locked, no reason");
        assert!(list[3].being_added(), "git's own lock while it adds one");
        assert!(!list[0].being_added() && !list[1].being_added() && !list[2].being_added());
    }

    /// A path that is not UTF-8 keeps its bytes: a lossy copy (U+FFFD)
    /// names another directory, or another worktree.
    #[test]
    fn a_listed_path_keeps_its_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let list = parse_worktree_list(b"worktree /bad\xffname\0HEAD abc\0branch refs/heads/b\0\0");
        assert_eq!(list[0].path.as_os_str().as_bytes(), b"/bad\xffname");
        assert_eq!(list[0].branch.as_deref(), Some("b"));
    }
}
