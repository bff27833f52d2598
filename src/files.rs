//! Opening files that someone else may have planted: nothing here blocks,
//! follows a link where a link would redirect a write, or reads without a
//! bound.
//!
//! - Lock files (`registry.lock`, `probe.lock`, `trust.lock`) are opened
//!   with `O_NOFOLLOW`, then checked through the open descriptor (`fstat`):
//!   a regular file of ours, or the command refuses. A link planted there
//!   can neither make wtenv create a file elsewhere nor lock one.
//! - A file is replaced through a temp file of a fresh name, created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600: nothing planted under that name
//!   can be written through (a link, a FIFO), and its mode is ours, never
//!   inherited from a leftover. Temp files left by a killed writer are
//!   removed by the next writer, when they are provably wtenv's (see
//!   [`clean_stale_temps`]).
//! - Files read (the config, the registry, the trust list) are opened with
//!   `O_NONBLOCK`, so a FIFO or a device cannot hang the open, must be
//!   regular files, and are read up to a cap ([`read_capped`]).
//!
//! The rules are in the README, "Hostile files".

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

mod atomic;
mod removal;

pub use atomic::{Commit, clean_stale_temps, replace, replace_error, replace_with, write_failure};
pub use removal::{Removal, planted_hint, removal};

/// Why an existing path was refused; shown after the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Symlink,
    /// Not a regular file: what it is instead ([`kind_of`]).
    NotRegular(&'static str),
    Owner(u32),
    WritableByOthers(u32),
    TooLarge(u64),
    HardLinked(u64),
    /// A link, naming this (as written: `ls -l`), that leads outside the
    /// directories a link may lead to.
    LinkOutside(PathBuf),
    /// A link to this path, where nothing is.
    LinkNowhere(PathBuf),
    /// A link to this path, which leads back to a link on the way (a
    /// loop: a link to itself, or two links to each other).
    LinkLoop(PathBuf),
    /// A file of ours whose mode (these bits) keeps us out.
    OwnerMode(u32),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Symlink => write!(f, "it is a symbolic link"),
            Refusal::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            Refusal::Owner(uid) => write!(
                f,
                "it belongs to uid {uid}, not to you (uid {})",
                nix::unistd::geteuid().as_raw()
            ),
            Refusal::WritableByOthers(mode) => {
                write!(f, "it is writable by group or others (mode {mode:o})")
            }
            Refusal::TooLarge(cap) => write!(f, "it is larger than {} KiB", cap / 1024),
            Refusal::HardLinked(n) => {
                write!(f, "it has {n} hard links, so it is also another file")
            }
            Refusal::LinkOutside(target) => write!(
                f,
                "it is a link to {}",
                crate::process::printable_path(target)
            ),
            Refusal::OwnerMode(mode) => write!(
                f,
                "its mode {mode:03o} keeps its owner (you) from reading or writing it"
            ),
            Refusal::LinkNowhere(target) => write!(
                f,
                "it is a link to {}, which does not exist",
                crate::process::printable_path(target)
            ),
            Refusal::LinkLoop(target) => write!(
                f,
                "it is a link to {}, which leads nowhere (a loop of links)",
                crate::process::printable_path(target)
            ),
        }
    }
}

/// An open failure: the OS's error, or a refusal of what is there.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    Refused(Refusal),
}

impl OpenError {
    /// The OS's error turned into the refusal of what is at `path` when
    /// [`refusal_of`] names one (a directory, a file the kernel keeps this
    /// user from): said as root's checks would say it, to everyone.
    pub fn at(self, path: &Path) -> OpenError {
        match self {
            OpenError::Io(e) => match refusal_of(path, &e) {
                Some(r) => OpenError::Refused(r),
                None => OpenError::Io(e),
            },
            refused => refused,
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ELOOP) {
            OpenError::Refused(Refusal::Symlink)
        } else {
            OpenError::Io(e)
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => e.fmt(f),
            OpenError::Refused(r) => r.fmt(f),
        }
    }
}

/// What an open the kernel refused says of the file at `path`, for a
/// caller that takes only regular files of its own: a directory (EISDIR,
/// from an open for writing), a file of another user or one whose mode
/// keeps its owner out (EACCES). Root is never refused so, and meets the
/// same files in the checks after the open: this says the same to
/// everyone. `None`: the OS's error says it all.
pub fn refusal_of(path: &Path, e: &io::Error) -> Option<Refusal> {
    match e.raw_os_error()? {
        libc::EISDIR => Some(Refusal::NotRegular("a directory")),
        libc::EACCES => {
            let meta = std::fs::symlink_metadata(path).ok()?;
            if meta.uid() != nix::unistd::geteuid().as_raw() {
                Some(Refusal::Owner(meta.uid()))
            } else if meta.mode() & 0o600 != 0o600 {
                Some(Refusal::OwnerMode(meta.mode() & 0o777))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A lock file: created 0600 if missing, never through a link, and only a
/// regular file of ours with one name (a worktree's lock is written in:
/// a hard link planted there would empty another file) that its owner
/// may read and write: one wtenv made gets its owner's bits back from the
/// umask ([`keep_owner_bits`]); one that was there without them is
/// refused, root included ([`require_owner_bits`]).
pub fn open_lock(path: &Path) -> Result<File, OpenError> {
    let (file, made) = open_or_make(path, true)?;
    let meta = require_own_regular(&file)?;
    if meta.nlink() > 1 {
        return Err(OpenError::Refused(Refusal::HardLinked(meta.nlink())));
    }
    if made {
        keep_owner_bits(&file, &meta, 0o600)?;
    } else {
        require_owner_bits(&meta, 0o600)?;
    }
    Ok(file)
}

/// The file of ours at `path`, opened for writing (and reading, when
/// `read`) never through a link and never blocking (a FIFO), else the one
/// this call creates exclusively, mode 600, and whether this call made it:
/// made exclusively, so "made" is never said of another's file.
fn open_or_make(path: &Path, read: bool) -> Result<(File, bool), OpenError> {
    let open = |create: bool| {
        OpenOptions::new()
            .read(read)
            .write(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
    };
    match open(false) {
        Ok(file) => Ok((file, false)),
        Err(e) if e.kind() == ErrorKind::NotFound => match open(true) {
            Ok(file) => Ok((file, true)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((open(false)?, false)),
            Err(e) => Err(e.into()),
        },
        // A FIFO nobody reads, opened for writing without blocking.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            Err(OpenError::Refused(Refusal::NotRegular("a FIFO")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A file of ours has the owner's bits `needs` (0o400 to read it, 0o600
/// to read and write it) that the open it was given asks for. The kernel
/// refuses a user such an open ([`refusal_of`] says so in these words);
/// root, whom it lets through, is refused here alike (README, "Hostile
/// files"), not made to use, or repair, a file its owner's mode closes.
pub fn require_owner_bits(meta: &std::fs::Metadata, needs: u32) -> Result<(), OpenError> {
    if meta.mode() & needs != needs {
        return Err(OpenError::Refused(Refusal::OwnerMode(meta.mode() & 0o777)));
    }
    Ok(())
}

/// What wtenv made must let its owner use it the next time: the umask
/// takes bits from the mode a file or directory is created with (under
/// 0277, a lock file made 0400 could not be opened again, by anyone but
/// root; a state directory made 0500 is refused). The owner's bits in
/// `owner` (0o600 for a file, 0o700 for a directory) are given back when
/// missing, the rest of the mode kept: a chmod only then, through what is
/// open (never a path a link could redirect).
pub fn keep_owner_bits(file: &File, meta: &std::fs::Metadata, owner: u32) -> io::Result<()> {
    match with_owner_bits(meta, owner) {
        Some(permissions) => file.set_permissions(permissions),
        None => Ok(()),
    }
}

/// The mode `meta`'s with the owner's bits in `owner` given back, when
/// any is missing ([`keep_owner_bits`]).
fn with_owner_bits(meta: &std::fs::Metadata, owner: u32) -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    (meta.mode() & owner != owner)
        .then(|| std::fs::Permissions::from_mode((meta.mode() & 0o777) | owner))
}

/// [`open_lock`] for a reader, never creating it: opened for reading only
/// (`flock` needs no more, so a read-only file system opens it too),
/// `None` when it does not exist. Checked as [`open_lock`] checks it (a
/// regular file of ours, never through a link), with the owner's bits
/// `needs` (0o600 where writers use it too, 0o400 to read).
pub fn open_existing_lock(path: &Path, needs: u32) -> Result<Option<File>, OpenError> {
    let Some(file) = open_read(path, false)? else {
        return Ok(None);
    };
    require_owner_bits(&require_own_regular(&file)?, needs)?;
    Ok(Some(file))
}

/// An existing file for reading, without following a final link
/// (`follow = false`) or through it, without blocking; `None` when it does
/// not exist. Not checked: see [`require_regular`].
pub fn open_read(path: &Path, follow: bool) -> Result<Option<File>, OpenError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The open file is a regular file.
pub fn require_regular(file: &File) -> Result<std::fs::Metadata, OpenError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpenError::Refused(Refusal::NotRegular(kind_of(&meta))));
    }
    Ok(meta)
}

/// What a file that is not a regular one is, for a message that says
/// so: "a FIFO", "a directory", ...
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "a file of another kind"
    }
}

/// The open file is a regular file owned by the effective user.
pub fn require_own_regular(file: &File) -> Result<std::fs::Metadata, OpenError> {
    let meta = require_regular(file)?;
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(OpenError::Refused(Refusal::Owner(meta.uid())));
    }
    Ok(meta)
}

/// The whole file, refused past `cap` bytes (read through the open file:
/// its size on disk may lie, `/dev/zero` has none).
pub fn read_capped(mut file: &File, cap: u64, size: u64) -> Result<Vec<u8>, OpenError> {
    // Room for the `size` the file's metadata gave, and the one more byte
    // that shows it ended: two reads, where an empty buffer grows by small
    // probes (five reads for a 138-byte config).
    let mut bytes = Vec::with_capacity(size.min(cap) as usize + 1);
    (&mut file).take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(OpenError::Refused(Refusal::TooLarge(cap)));
    }
    Ok(bytes)
}

/// A file of /proc, whole, as text. Their size reads as 0, so std's
/// `read_to_string` sizes its buffer with a `statx`, then starts from a
/// 32-byte read and doubles: eight reads for `/proc/self/status`, which
/// `run` reads at every start. One page holds every such file wtenv reads
/// but the socket tables, which grow it as needed.
pub fn read_proc(path: impl AsRef<Path>) -> io::Result<String> {
    let mut bytes = Vec::with_capacity(4096);
    File::open(path)?.take(u64::MAX).read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))
}

/// A small file's bytes, through a link, only from a regular file, read
/// without blocking and up to `cap`; `None` when it does not exist.
pub fn read_regular(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, OpenError> {
    let Some(file) = open_read(path, true)? else {
        return Ok(None);
    };
    let meta = require_regular(&file)?;
    read_capped(&file, cap, meta.len()).map(Some)
}

/// [`read_regular`] for a file a link may name only within `allowed`
/// (directories): a final link is followed to a file under one of them,
/// else refused, naming what the link says (as `ls -l` shows it, not
/// where it resolves), as is a link that leads nowhere (or in a loop).
/// A planted link must
/// not make wtenv read, and
/// quote in its errors, a file of the user's elsewhere
/// (`/proc/self/environ`, `~/.git-credentials`). A file that is no link
/// costs no more than [`read_regular`]: the link is seen at `open`.
pub fn read_regular_within(
    path: &Path,
    allowed: &[&Path],
    cap: u64,
) -> Result<Option<Vec<u8>>, OpenError> {
    let file = match open_read(path, false) {
        Err(OpenError::Refused(Refusal::Symlink)) => {
            let target = match std::fs::canonicalize(path) {
                Ok(t) => t,
                // A dangling link is no file, but it is not "no config"
                // either: read as absent, a config Nix made and then
                // collected would silently give the built-in ranges.
                Err(e) if e.kind() == ErrorKind::NotFound && !path.exists() => {
                    return Err(OpenError::Refused(Refusal::LinkNowhere(
                        std::fs::read_link(path)?,
                    )));
                }
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(OpenError::Refused(Refusal::LinkLoop(std::fs::read_link(
                        path,
                    )?)));
                }
                // A link that leads somewhere with no path (`/dev/stdin` to
                // `pipe:[...]`): outside, whatever it is.
                Err(e) if e.kind() == ErrorKind::NotFound => std::fs::read_link(path)?,
                Err(e) => return Err(e.into()),
            };
            let within =
                |dir: &&Path| std::fs::canonicalize(dir).is_ok_and(|d| target.starts_with(d));
            if !allowed.iter().any(within) {
                return Err(OpenError::Refused(Refusal::LinkOutside(
                    std::fs::read_link(path)?,
                )));
            }
            open_read(&target, false)?
        }
        other => other?,
    };
    let Some(file) = file else {
        return Ok(None);
    };
    let meta = require_regular(&file)?;
    read_capped(&file, cap, meta.len()).map(Some)
}

/// Creates the directory `path` (with its missing parents when
/// `parents`), mode 0700 whatever the umask: wtenv's own directories must
/// let their owner read, write and search them (under a umask of 0277 one
/// would be made 0500, which wtenv then refuses), and no one else. The
/// parents it makes get 0700 too, as the XDG base directory spec asks of a
/// base directory made on the way (`~/.local/state`): under that umask
/// they were made 0500, so the state directory could not be made in them,
/// and they stayed so for every other program. One that exists is left as
/// it is, its checks the caller's: `Ok(false)`.
pub fn create_private_dir(path: &Path, parents: bool) -> io::Result<bool> {
    create_dir_for_owner(path, parents, 0o700, &mut Vec::new())
}

/// Creates the directory `path` and its missing parents for files the
/// user asked for (the units `export` writes): the mode the umask leaves
/// of 0777, with the owner's `rwx` given back when the umask took them
/// (under 0277 the directory was made 0500 and the files could not be
/// written into it). Returns the directories it made, parents first, for
/// a command refused afterwards to remove ([`remove_made_dirs`]); on an
/// error it has removed them itself.
pub fn create_user_dir_all(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    create_dir_for_owner(path, true, 0o777, &mut made).inspect_err(|_| remove_made_dirs(&made))?;
    Ok(made)
}

/// Removes the directories [`create_user_dir_all`] made, newest first,
/// each only while empty: what something else put there meanwhile stays.
pub fn remove_made_dirs(made: &[PathBuf]) {
    for dir in made.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Checks, writing nothing, that [`replace`] can write files into `dir`:
/// it opens as a directory (the fsync after the rename needs that) and
/// its user may write and search it. Returns what failed (`open`, `write
/// into`) with the OS's error.
pub fn check_writable_dir(dir: &Path) -> Result<(), (&'static str, io::Error)> {
    use nix::unistd::{AccessFlags, access};
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| ("open", e))?;
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
        .map_err(|errno| ("write into", io::Error::from(errno)))
}

/// Creates `path` with `mode` (less the umask), and its missing parents
/// alike when `parents`, adding each it made to `made`; each gets the
/// owner's `rwx` if the umask took them. `Ok(false)`: `path` was there.
fn create_dir_for_owner(
    path: &Path,
    parents: bool,
    mode: u32,
    made: &mut Vec<PathBuf>,
) -> io::Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    // One directory at a time, not `recursive`: whether this call made
    // one is what says it may be chmodded.
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound && parents => match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                create_dir_for_owner(parent, true, mode, made)?;
                create_dir_for_owner(path, false, mode, made)
            }
            _ => Err(e),
        },
        Err(e) => Err(e),
        Ok(()) => {
            made.push(path.to_path_buf());
            let opened = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path);
            match opened {
                Ok(dir) => keep_owner_bits(&dir, &dir.metadata()?, 0o700)?,
                // A umask that took the owner's read bit (0477): the
                // directory this call just made cannot be opened, so it is
                // chmodded by its path, once seen to be a directory still.
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    let meta = std::fs::symlink_metadata(path)?;
                    if !meta.is_dir() {
                        return Err(e);
                    }
                    if let Some(permissions) = with_owner_bits(&meta, 0o700) {
                        std::fs::set_permissions(path, permissions)?;
                    }
                }
                Err(e) => return Err(e),
            }
            Ok(true)
        }
    }
}

/// Writes `bytes` into the file at `path` (the shell function's directive
/// file, a worktree's stamp): never through a link, never blocking on a
/// FIFO, only into a regular file of ours with one name (a hard link to a
/// user's file, planted in a downloaded tree, is refused), created 0600 if
/// missing. Returns the open file.
///
/// Written in place, then cut to its length: a file that passes through
/// size 0 on the way costs its block freed and taken again, and, on ext4,
/// a flush when it is closed (its "replace by truncate" heuristic), about
/// 0.3 ms on every change of a worktree's ports.
pub fn write_own(path: &Path, bytes: &[u8]) -> Result<File, OpenError> {
    let (file, meta, _) = open_own_with_meta(path)?;
    file.write_all_at(bytes, 0)?;
    let len = bytes.len() as u64;
    if meta.len() > len {
        file.set_len(len)?;
    }
    Ok(file)
}

/// Replaces the file of ours at `path` with `bytes` through a temp file
/// beside it, renamed over it ([`replace_with`], nothing fsynced:
/// [`Commit::Unsynced`]), `finish` run on the temp file once written (the
/// stamp's time is set there). A write that fails (a full disk) leaves
/// the file as it was, never empty or torn, as [`write_own`]'s in place
/// could: a new file stayed empty, a longer line could be cut short.
/// What is there is checked as [`write_own`] checks it, and refused
/// alike (a link, a FIFO, a directory, another user's file, one with
/// other hard links), though the rename would only replace its name.
pub fn replace_own(
    path: &Path,
    bytes: &[u8],
    finish: impl FnOnce(&File) -> io::Result<()>,
) -> Result<(), OpenError> {
    use std::io::Write;
    if let Some(file) = open_read(path, false)? {
        let meta = require_own_regular(&file)?;
        if meta.nlink() > 1 {
            return Err(OpenError::Refused(Refusal::HardLinked(meta.nlink())));
        }
    }
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => (dir, name),
        _ => return Err(OpenError::Io(io::Error::from(ErrorKind::InvalidInput))),
    };
    replace_with(dir, name, |f| f.write_all(bytes), finish, Commit::Unsynced)
        .map_err(|(_, _, e)| OpenError::from(e))
}

/// [`write_own`]'s open and checks, writing nothing: the file, and whether
/// this call made it (a command that refuses later removes what it made).
pub fn open_own(path: &Path) -> Result<(File, bool), OpenError> {
    open_own_with_meta(path).map(|(file, _, made)| (file, made))
}

fn open_own_with_meta(path: &Path) -> Result<(File, std::fs::Metadata, bool), OpenError> {
    let (file, made) = open_or_make(path, false)?;
    let meta = require_own_regular(&file)?;
    if meta.nlink() > 1 {
        return Err(OpenError::Refused(Refusal::HardLinked(meta.nlink())));
    }
    keep_owner_bits(&file, &meta, 0o600)?;
    Ok((file, meta, made))
}

#[cfg(test)]
mod tests;
