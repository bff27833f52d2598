//! Which worktree are we in, found without running git.
//!
//! `wtenv env` runs on every `cd`, so discovery reads files only: walk up to
//! the first `.git` (a directory in the main worktree, a `gitdir:` file in a
//! linked one), then follow `commondir` to the repository. Identities are
//! canonical paths: the repository is its git common dir, a worktree its
//! top level.
//!
//! Per-worktree metadata (purpose, identifier) lives in the worktree's own
//! git dir (`.git/worktrees/<name>/wtenv.json`), so git deletes it with the
//! worktree and nothing is written into the user's checkout.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process::printable_path;
use crate::shell::quote_in_message;

const META_NAME: &str = "wtenv.json";
const STAMP_NAME: &str = "wtenv.stamp";

#[derive(Serialize, Deserialize)]
struct Creating {
    path: PathBuf,
    #[serde(flatten)]
    meta: Meta,
}

/// The value of [`crate::settings::CREATING`] for the worktree `create` makes at `path`.
pub fn creating_value(path: &Path, purpose: &str, identifier: &str) -> String {
    serde_json::to_string(&Creating {
        path: path.to_path_buf(),
        meta: Meta {
            purpose: Some(purpose.to_owned()),
            identifier: Some(identifier.to_owned()),
        },
    })
    .expect("the creating record serializes")
}

/// An identifier names a directory and a branch: ASCII letters, digits, `.`,
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
        Err(Error::invalid(format!("invalid identifier {id:?}")).with_hint(
            "use 1-64 ASCII letters, digits, '.', '_' or '-', not starting with '-' or '.', without '..'",
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// Canonical top level.
    pub root: PathBuf,
    /// This worktree's private git dir.
    pub git_dir: PathBuf,
    /// Canonical git common dir: the repository's identity.
    pub common_dir: PathBuf,
}

/// What `create` recorded about a worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    pub purpose: Option<String>,
    pub identifier: Option<String>,
}

impl Worktree {
    /// The worktree around `start`, or `None` outside any git worktree.
    pub fn discover(start: &Path) -> Result<Option<Worktree>> {
        let start = start
            .canonicalize()
            .map_err(|e| Error::io(format!("could not resolve {}", printable_path(start)), e))?;
        Worktree::discover_resolved(&start)
    }

    /// Like [`discover`](Self::discover), for a path that is already
    /// absolute and free of symbolic links and dots, as the kernel gives
    /// the current directory ([`crate::context::Ctx::cwd`]): resolving it
    /// again costs one `readlink` per component, on every `cd`. So does a
    /// `.git` that is a directory of its own (not a link), in a resolved
    /// directory, with no `commondir` (a main worktree).
    ///
    /// Only a `.git` that is not there (or a dangling link) lets the walk
    /// go on up; one that cannot be looked at (a directory on the way the
    /// user may not search) is an error naming it: going on would answer
    /// "not in a worktree", or name the repository around this one.
    pub fn discover_resolved(start: &Path) -> Result<Option<Worktree>> {
        for dir in start.ancestors() {
            let dot_git = dir.join(".git");
            let meta = match std::fs::symlink_metadata(&dot_git) {
                Ok(meta) => meta,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(unreadable(&dot_git, e)),
            };
            let resolved = !meta.is_symlink();
            let meta = if resolved {
                meta
            } else {
                match std::fs::metadata(&dot_git) {
                    Ok(meta) => meta,
                    Err(e) if is_absent(&e) => continue,
                    Err(e) => return Err(unreadable(&dot_git, e)),
                }
            };
            let git_dir = if meta.is_dir() {
                dot_git
            } else {
                match read_gitdir_file(&dot_git)? {
                    Some(d) => d,
                    // Removed between the look and the read.
                    None => continue,
                }
            };
            let common_dir = common_dir_of(&git_dir, resolved && meta.is_dir())?;
            return Ok(Some(Worktree {
                root: dir.to_path_buf(),
                git_dir,
                common_dir,
            }));
        }
        Ok(None)
    }

    /// Like [`discover`](Self::discover), but outside a worktree is an error.
    pub fn require(start: &Path) -> Result<Worktree> {
        Worktree::discover(start)?.ok_or_else(|| Worktree::outside(start))
    }

    /// The error for `start`, which is outside any git worktree (see
    /// [`repository::outside`]).
    pub fn outside(start: &Path) -> Error {
        repository::outside(start)
    }

    /// The registry and every export format are text: a worktree or
    /// repository whose path is not valid UTF-8 is refused with this
    /// error, before anything is allocated (a lossy copy would name
    /// another directory).
    pub fn require_utf8(&self) -> Result<()> {
        for path in [&self.root, &self.common_dir] {
            if let Some(why) = not_utf8(path) {
                return Err(Error::invalid(format!(
                    "cannot use {}: its path {why}",
                    printable_path(path),
                ))
                .with_hint(
                    "wtenv records paths as text; rename the directory (or a parent) to a UTF-8 name",
                ));
            }
        }
        Ok(())
    }

    /// The main worktree's directory, when wtenv can know it: as the
    /// repository's files name it ([`main_root_of`]: `.git`'s parent, the
    /// directory `core.worktree` names), or this very worktree when its
    /// `.git` file names the repository itself and that is not bare (a
    /// separate git dir, seen from its main worktree; the `.bare` layout's
    /// `.git` names a bare one). `None` for a bare repository, and for a
    /// separate git dir without `core.worktree` seen from a linked
    /// worktree: git's records do not name its main worktree. Where to
    /// put and how to show worktrees only: what is the repository's own
    /// (trust, the stamp) is [`ownership`](Self::ownership).
    pub fn main_root(&self) -> Option<PathBuf> {
        main_root_of(&self.common_dir)
            .or_else(|| self.names_repository().then(|| self.root.clone()))
    }

    /// What `create` recorded; while `create` is still making this
    /// worktree (its git hooks run), what it passed in [`crate::settings::CREATING`].
    /// An identifier that `create` would refuse is dropped with a warning
    /// naming where it was read, so [`identifier`](Self::identifier) falls
    /// back to the directory name: it is exported to shells, and a NUL in
    /// it would make fish's `source` fail, applying nothing.
    pub fn meta(&self) -> Meta {
        recorded_meta(&self.git_dir).unwrap_or_else(|| {
            checked_meta(
                self.creating_meta().unwrap_or_default(),
                crate::settings::CREATING,
            )
        })
    }

    fn creating_meta(&self) -> Option<Meta> {
        let creating: Creating = serde_json::from_str(crate::settings::creating()?).ok()?;
        (creating.path == self.root).then_some(creating.meta)
    }

    pub fn set_meta(&self, meta: &Meta) -> Result<()> {
        let path = self.git_dir.join(META_NAME);
        let bytes = serde_json::to_vec(meta).expect("meta serializes");
        crate::files::write_own(&path, &bytes)
            .map(drop)
            .map_err(|e| match e {
                crate::files::OpenError::Io(e) => {
                    Error::io(format!("could not write {}", printable_path(&path)), e)
                }
                crate::files::OpenError::Refused(r) => {
                    Error::refused(format!("could not write {}: {r}", printable_path(&path)))
                        .with_hint(
                            "it is wtenv's record in the worktree's git dir; remove what is there",
                        )
                }
            })
    }

    /// The identifier: recorded by `create` (in `meta`, this worktree's
    /// [`meta`](Self::meta)), else the directory name.
    pub fn identifier(&self, meta: &Meta) -> String {
        identifier_of(&self.root, meta)
    }

    /// A small per-worktree file that changes when this worktree's ports
    /// change: the one thing direnv watches besides the config.
    pub fn stamp_path(&self) -> PathBuf {
        self.git_dir.join(STAMP_NAME)
    }

    /// Writes this worktree's stamp for `ports` ([`write_stamp`]) unless
    /// it already holds their [`stamp_line`]: one read of the small file
    /// when it does. For `create --ports`, whose reservation, made while
    /// git checks out, may be written before git has made the git dir the
    /// stamp lives in: the registry's rewrite of it is then skipped, and
    /// the confirmation, finding the ports reserved, writes nothing.
    pub fn stamp_unless_current<'a>(&self, ports: impl IntoIterator<Item = (&'a str, u16)>) {
        let line = stamp_line(&self.root, ports);
        if !stamp_holds(&self.git_dir, &line) {
            write_stamp(&self.root, &line);
        }
    }
}

/// `is not valid UTF-8 (byte \\xff after /src/wt-)` for a path that is
/// not, naming its first such byte; `None` for a UTF-8 path.
pub fn not_utf8(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let e = std::str::from_utf8(bytes).err()?;
    let before = String::from_utf8_lossy(&bytes[..e.valid_up_to()]);
    Some(format!(
        "is not valid UTF-8 (byte \\x{:02x} after {})",
        bytes[e.valid_up_to()],
        crate::process::printable(&before),
    ))
}

/// What `create` recorded in `git_dir` (a linked worktree's own git dir,
/// `.git/worktrees/<name>`), `None` when there is no record. Read from
/// the git dir alone, so it holds for a worktree whose directory is gone
/// or whose `.git` file is: git keeps the git dir until it prunes the
/// worktree. An identifier `create` would refuse is dropped with a
/// warning naming the file (see [`Worktree::meta`]).
pub fn recorded_meta(git_dir: &Path) -> Option<Meta> {
    let path = git_dir.join(META_NAME);
    // Read like any planted file: a FIFO there must not hang the hook.
    let bytes = crate::files::read_regular(&path, 64 * 1024).ok()??;
    Some(checked_meta(
        serde_json::from_slice(&bytes).unwrap_or_default(),
        &printable_path(&path),
    ))
}

/// `meta` without an identifier `create` would refuse, which a warning
/// names, saying where it was read (`from`).
fn checked_meta(mut meta: Meta, from: &str) -> Meta {
    if let Some(e) = meta
        .identifier
        .as_deref()
        .and_then(|id| check_identifier(id).err())
    {
        crate::report::warn(&format!("{from}: {e}; using the directory name"));
        meta.identifier = None;
    }
    meta
}

/// The identifier of the worktree at `root`: recorded by `create` (in
/// `meta`), else the directory name.
pub fn identifier_of(root: &Path, meta: &Meta) -> String {
    meta.identifier.clone().unwrap_or_else(|| {
        root.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// The private git dir of the worktree whose top level is `root`, read
/// from `root/.git` alone (no walk up): `None` when `root` is not, or no
/// longer, a worktree.
pub fn git_dir_at(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    let meta = std::fs::metadata(&dot_git).ok()?;
    if meta.is_dir() {
        Some(dot_git)
    } else {
        read_gitdir_file(&dot_git).ok().flatten()
    }
}

/// A git pointer file (`.git` of a linked worktree, `commondir`): a few
/// hundred bytes. Read like any file a stranger may have planted (a FIFO
/// named `.git` in a downloaded tree must not hang the prompt hook).
/// Its bytes as they are: a path git wrote there need not be UTF-8, and a
/// lossy copy (U+FFFD) would name another directory ([`path_in`]). Every
/// small file of git's that wtenv reads goes through here (`create`'s
/// rollback reads `.git/worktrees/*/gitdir` and `locked` with it).
pub(crate) fn read_pointer(path: &Path) -> Result<Option<Vec<u8>>> {
    use crate::files::{self, OpenError};
    match files::read_regular(path, 64 * 1024) {
        Ok(bytes) => Ok(bytes),
        Err(OpenError::Io(e)) => Err(unreadable(path, e)),
        Err(OpenError::Refused(r)) => Err(Error::refused(format!(
            "could not read {}: {r}",
            printable_path(path)
        ))
        .with_hint("git writes it as a small regular file; remove or fix what is there")),
    }
}

/// The path a line of git's files holds, its bytes as they are (what
/// git writes is the path's own bytes, UTF-8 or not), ASCII whitespace
/// around it trimmed as git trims it.
pub(crate) fn path_in(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes.trim_ascii()))
}

/// Whether looking up a path failed because nothing is there: not found,
/// or a component on the way is a file. Any other failure (no permission,
/// an I/O error) leaves unknown what is there.
fn is_absent(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// The error for git's file `path`, which could not be looked at or read.
/// On a permission error, the hint names the first directory on the way
/// the user may not search, when there is one (found only now: the walk
/// makes no call for it).
fn unreadable(path: &Path, e: std::io::Error) -> Error {
    let denied = e.kind() == std::io::ErrorKind::PermissionDenied;
    let hint = not_read_hint(&e);
    let error = Error::io(format!("could not read {}", printable_path(path)), e);
    if !denied {
        return error.with_hint(hint);
    }
    match unsearchable_dir(path) {
        Some(dir) => error.with_hint(format!(
            "you may not search {}: have its permissions fixed (x for you), or run wtenv from a directory you can read",
            printable_path(&dir)
        )),
        None => error.with_hint(
            "fix its permissions (or those of what it links to), or run wtenv from a directory you can read",
        ),
    }
}

/// What to do about git's file that could not be read or resolved, for
/// an error that is not a permission's. Only a loop of links is what is
/// there (fix or remove it); any other error (out of descriptors, the
/// disk's EIO) is the system's, and removing the file would take away
/// what makes the directory a worktree without mending anything.
fn not_read_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        return "fix or remove it, or run wtenv from another directory";
    }
    crate::error::too_many_files_hint(e).unwrap_or("check the file system, then run it again")
}

/// The first directory above `path`, from the root down, that the user
/// may not search: the one whose entry cannot be looked at.
fn unsearchable_dir(path: &Path) -> Option<PathBuf> {
    let mut above: Vec<&Path> = path.ancestors().collect();
    above.reverse();
    above.windows(2).find_map(|pair| {
        let denied = std::fs::symlink_metadata(pair[1])
            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
        denied.then(|| pair[0].to_path_buf())
    })
}

/// The hint for a pointer file (`.git`, `commondir`) whose directory
/// cannot be resolved because a directory on the way may not be searched.
const SEARCH_DENIED_HINT: &str = "you may not search a directory on the way to the one it names: have its permissions fixed, or run wtenv from a directory you can read";

/// The git dir a `.git` file names; `None` only when the file is gone.
///
/// A `.git` file that names no git dir, or one that is not there (the
/// worktree was pruned, or its repository moved), is an error, as it is
/// to git: walking on up would take the repository around this directory,
/// and give this worktree the ports of that one's.
fn read_gitdir_file(dot_git: &Path) -> Result<Option<PathBuf>> {
    let Some(bytes) = read_pointer(dot_git)? else {
        return Ok(None);
    };
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some(target) = first_line.strip_prefix(b"gitdir:") else {
        return Err(Error::invalid(format!(
            "{} is not a git dir, nor a file naming one (\"gitdir: PATH\")",
            printable_path(dot_git)
        ))
        .with_hint("git finds no repository here either: fix or remove it"));
    };
    let base = dot_git.parent().unwrap_or(Path::new("/"));
    let path = base.join(path_in(target));
    match resolve(&path) {
        Ok(Resolved::Dir(git_dir)) => Ok(Some(git_dir)),
        Ok(Resolved::Kernel(shown, root)) => Err(kernel_dir(&shown, root, "git dir", dot_git)),
        Err(e) if is_absent(&e) => Err(Error::not_found(format!(
            "{} names the git dir {}, which is not there",
            printable_path(dot_git),
            printable_path(&path)
        ))
        .with_hint(format!(
            "git finds no repository here either: if the worktree was pruned, remove {}; if its repository moved, go there and run: git worktree repair {}",
            quote_in_message(dot_git),
            quote_in_message(base)
        ))),
        // Named by the file, never by what it says (see `common_dir_of`).
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                SEARCH_DENIED_HINT
            } else {
                not_read_hint(&e)
            };
            Err(Error::io(
                format!(
                    "could not resolve the git dir {} names",
                    printable_path(dot_git)
                ),
                e,
            )
            .with_hint(hint))
        }
    }
}

/// The kernel's own file systems. Nothing there is a repository, and
/// some of it names another directory in every process (`/proc/self`,
/// `/proc/thread-self`, `/dev/fd/N`) or in every directory
/// (`/proc/self/cwd`): a `.git` naming one gave the repository a new
/// identity on every run or every `cd`, and each reserved another port.
const KERNEL_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Whether `path`, resolved as [`resolve`] resolves it, passes through
/// one of [`KERNEL_DIRS`]: a file there is the kernel's, never one to
/// move aside (`--registry /proc/self/environ` was told to `mv` it).
pub(crate) fn in_kernel_dir(path: &Path) -> bool {
    matches!(resolve(path), Ok(Resolved::Kernel(..)))
}

/// A path as [`resolve`] found it.
enum Resolved {
    /// Absolute, with no link, `.` or `..` left (what `canonicalize` gives).
    Dir(PathBuf),
    /// Resolving it reached this path, under this one of [`KERNEL_DIRS`].
    Kernel(PathBuf, &'static str),
}

/// `path` resolved as `canonicalize` does, one component at a time, so
/// that a step into one of [`KERNEL_DIRS`] is seen wherever it is: in the
/// name itself, or in a link's target on the way. What it resolves *to*
/// can lie outside them (`/proc/self/cwd` is the current directory). As
/// many system calls as `canonicalize` makes: one per component.
fn resolve(path: &Path) -> std::io::Result<Resolved> {
    // The components still to resolve, the next one last.
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => todo.push(n.to_owned()),
                Component::ParentDir => todo.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir()?
    };
    push(&mut todo, path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            out.pop();
            continue;
        }
        out.push(&name);
        if let Some(root) = KERNEL_DIRS.iter().find(|root| out.starts_with(root)) {
            let mut shown = out;
            shown.extend(todo.iter().rev());
            return Ok(Resolved::Kernel(shown, root));
        }
        if std::fs::symlink_metadata(&out)?.is_symlink() {
            links += 1;
            if links > 40 {
                return Err(nix::errno::Errno::ELOOP.into());
            }
            let target = std::fs::read_link(&out)?;
            out.pop();
            if target.is_absolute() {
                out = PathBuf::from("/");
            }
            push(&mut todo, &target);
        }
    }
    Ok(Resolved::Dir(out))
}

/// The error for a `what` (git dir, common dir) that `named_by` names
/// and whose resolution reached `shown`, under `root`, one of
/// [`KERNEL_DIRS`].
fn kernel_dir(shown: &Path, root: &str, what: &str, named_by: &Path) -> Error {
    Error::refused(format!(
        "cannot use {} as a {what}: {} names it, and {root} is the kernel's, not a repository",
        printable_path(shown),
        printable_path(named_by),
    ))
    .with_hint(format!(
        "git writes it to name the repository; remove or fix {}",
        printable_path(named_by)
    ))
}

/// The repository `git_dir` belongs to, resolved. `resolved`: `git_dir`
/// is already (a real directory under a resolved path), so with no
/// `commondir` it is returned as it is.
fn common_dir_of(git_dir: &Path, resolved: bool) -> Result<PathBuf> {
    let pointer = git_dir.join("commondir");
    let (common, named_by) = match read_pointer(&pointer)? {
        Some(bytes) => (git_dir.join(path_in(&bytes)), pointer.as_path()),
        None if resolved => return Ok(git_dir.to_path_buf()),
        None => (git_dir.to_path_buf(), git_dir),
    };
    // Named by the file that names it, never by what that file says: a
    // `commondir` planted as a link to `~/.git-credentials` or
    // `/proc/self/environ` would print it on every `cd`.
    match resolve(&common) {
        Ok(Resolved::Dir(common)) => Ok(common),
        Ok(Resolved::Kernel(shown, root)) => {
            Err(kernel_dir(&shown, root, "git common dir", named_by))
        }
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                SEARCH_DENIED_HINT
            } else {
                "it should hold the path of the repository's git directory, relative to the directory it is in \
                 (git writes ../.. in a linked worktree's): check it; if the repository was moved, \
                 run 'git worktree repair' in its main worktree"
            };
            Err(Error::io(
                format!(
                    "could not resolve the git common dir {} names",
                    printable_path(named_by)
                ),
                e,
            )
            .with_hint(hint))
        }
    }
}

/// Lexical normalization (`.` and `..`), for paths that may not exist.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

mod admin;
mod listing;
mod own;
mod repository;
mod stamp;
#[cfg(test)]
mod tests;

pub use admin::refuse_planted_entries;
pub use own::Ownership;
use own::own_git_dir;
use repository::core_worktree;
pub use repository::enclosing_git_dir;

pub use stamp::{
    Stamp, stamp_holds, stamp_line, stamped_in, stamped_in_repository, stamped_ports, write_stamp,
    write_stamp_of,
};

pub use listing::{
    MOVED_OR_DELETED, admin_dir_of, is_gone, is_of_another_repository, listed_worktrees,
    listed_worktrees_with, main_root_of, now_of_another_repository, repository_gone,
    root_of_admin_dir, still_listed,
};
