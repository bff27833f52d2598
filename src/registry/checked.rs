//! What the registry refuses, and how it says so: a directory or file that
//! is not the user's own or is writable by others, a symbolic link, a
//! FIFO, and content wtenv did not write (not JSON, another schema, a
//! newer version, a key or a port twice, a port below 1024). A refused
//! registry is never overwritten and never read as empty:
//! [`Error::RegistryUnusable`], exit 2.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{Allocation, MIN_PORT, Registry, RegistryData, VERSION};
use crate::error::{Error, Result};
use crate::files::{self, OpenError, Refusal};
use crate::process::{printable, printable_path};
use crate::shell::quote_in_message;

/// What a command does in the state directory, for [`Registry::check_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads the registry or a file beside it (the views, `env` with
    /// every port reserved): its owner must be able to read and search it.
    Read,
    /// May change what is there (every transaction, the files beside the
    /// registry that commands write): its owner must be able to write it too.
    Write,
}

impl Access {
    /// The owner's bits of the directory's mode this access needs.
    fn owner_needs(self) -> u32 {
        match self {
            Access::Read => 0o500,
            Access::Write => 0o700,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Access::Read => "reading what is there needs its owner (you) to read and search it",
            Access::Write => {
                "changing what is there needs its owner (you) to read, write and search it"
            }
        }
    }
}

/// Where the registry is, for a hint about a path that cannot hold one.
pub(super) const WHERE_IT_IS: &str = "check the path: the registry is --registry PATH, else \
     registry.json in WTENV_STATE_DIR, XDG_STATE_HOME/wtenv or ~/.local/state/wtenv; \
     its directory must be one you can create";

/// What to do about a state directory that is not the user's own, or
/// one the kernel will not let wtenv make its lock file in whatever its
/// mode says (a directory of the kernel's, such as `/sys/kernel`).
pub(super) const OWN_DIRECTORY_HINT: &str = "use a registry directory of your own that you can write in: set WTENV_STATE_DIR or pass --registry";

/// What to do when a file stands where the state directory, or one of
/// its parents, must be.
const NOT_A_DIRECTORY_HINT: &str =
    "move that file aside, or set WTENV_STATE_DIR / --registry elsewhere";

/// The nearest of `dir`'s parents that is there and is not a directory
/// (links followed, as the kernel walks the path), with its metadata:
/// what makes a look at `dir` fail with ENOTDIR.
fn file_above(dir: &Path) -> Option<(&Path, Metadata)> {
    dir.ancestors()
        .skip(1)
        .find_map(|p| std::fs::metadata(p).ok().map(|m| (p, m)))
        .filter(|(_, meta)| !meta.is_dir())
}

impl Registry {
    pub(super) fn unusable(&self, reason: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::RegistryUnusable {
            what: "registry",
            path: self.path.clone(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    pub(super) fn move_aside_hint(&self) -> String {
        // A file of /proc, /sys or /dev is the kernel's: never to be
        // moved, and never one wtenv could write its registry to.
        if crate::worktree::in_kernel_dir(&self.path) {
            return super::REGULAR_FILE_HINT.to_owned();
        }
        format!(
            "wtenv never overwrites a registry it cannot read; {}",
            self.move_aside()
        )
    }

    /// `inspect it, or move it aside to start afresh: mv FILE FILE.bak`.
    fn move_aside(&self) -> String {
        let mut aside = self.path.clone().into_os_string();
        aside.push(".bak");
        format!(
            "inspect it, or move it aside to start afresh: mv {} {}",
            quote_in_message(&self.path),
            quote_in_message(aside)
        )
    }

    /// What to do with a registry holding a field this wtenv does not
    /// know ([`crate::versions::newer_field`]): the newer wtenv first,
    /// the way aside ([`move_aside_hint`](Registry::move_aside_hint))
    /// only when none wrote it.
    fn newer_field_hint(&self) -> String {
        format!(
            "use the newer wtenv that wrote it, or upgrade this one; the registry is left as it is. Only if no newer wtenv has used it: {}",
            self.move_aside()
        )
    }

    /// The state directory (the registry's own) must be ours and writable
    /// by nobody else: anyone who can write there can replace the registry
    /// under us. Its mode must also grant us what `access` needs (read and
    /// search, and write to change anything), judged by the mode and not
    /// by trying: root passes every permission check, and a directory the
    /// kernel would refuse halfway (a rename that works, then an fsync of
    /// the directory that cannot open it) must be refused before anything
    /// is read or written, for root as for anyone. Returns whether the
    /// mode lets its owner write it.
    pub(super) fn check_dir(&self, access: Access) -> Result<bool> {
        let dir = self.dir();
        // A link that leads nowhere (dangling, a loop) cannot hold a
        // registry: unusable, like a directory that is not one.
        let meta = self.dir_meta().map_err(|e| {
            // A path through a file: the file is named, the way out said.
            if e.kind() == std::io::ErrorKind::NotADirectory
                && let Some((file, meta)) = file_above(dir)
            {
                let kind = if meta.is_file() {
                    "a file"
                } else {
                    files::kind_of(&meta)
                };
                return self.unusable(
                    format!(
                        "its directory {} cannot be made: {} is {kind}, not a directory",
                        printable_path(dir),
                        printable_path(file),
                    ),
                    NOT_A_DIRECTORY_HINT,
                );
            }
            self.unusable(
                format!("its directory {} cannot be read: {e}", printable_path(dir)),
                WHERE_IT_IS,
            )
        })?;
        self.check_dir_meta(&meta, access)
    }

    /// [`check_dir`](Registry::check_dir) of the directory's metadata,
    /// for a caller that has it already.
    pub(super) fn check_dir_meta(&self, meta: &std::fs::Metadata, access: Access) -> Result<bool> {
        let dir = self.dir();
        if !meta.is_dir() {
            return Err(self.unusable(
                format!("its directory {} is not a directory", printable_path(dir)),
                NOT_A_DIRECTORY_HINT,
            ));
        }
        let uid = nix::unistd::geteuid().as_raw();
        if meta.uid() != uid {
            return Err(self.unusable(
                format!(
                    "its directory {} belongs to uid {}, not to you (uid {uid})",
                    printable_path(dir),
                    meta.uid()
                ),
                OWN_DIRECTORY_HINT,
            ));
        }
        // Shown with its special bits: a directory of mode 1777 (sticky,
        // as /tmp) was said to have mode 777.
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(self.unusable(
                format!(
                    "its directory {} is writable by group or others (mode {mode:o})",
                    printable_path(dir),
                ),
                format!("chmod 700 {}", quote_in_message(dir)),
            ));
        }
        if mode & access.owner_needs() != access.owner_needs() {
            return Err(self.unusable(
                format!(
                    "its directory {} has mode {mode:o}: {}",
                    printable_path(dir),
                    access.needs()
                ),
                format!("chmod 700 {}", quote_in_message(dir)),
            ));
        }
        if access == Access::Write {
            self.refuse_read_only()?;
        }
        Ok(mode & 0o200 != 0)
    }

    /// A state directory on a file system mounted read-only takes no
    /// write, whatever its mode says (root's neither): a command that
    /// would change anything says so before it starts, as a write would
    /// (a read-only file system, exit 1, with what to do). Reads never
    /// ask: they need no write ([`Registry::read_lock`]).
    fn refuse_read_only(&self) -> Result<()> {
        use nix::sys::statvfs::{FsFlags, statvfs};
        match statvfs(self.dir()) {
            Ok(fs) if fs.flags().contains(FsFlags::ST_RDONLY) => Err(files::replace_error(
                format!(
                    "could not write in the state directory {}",
                    printable_path(self.dir())
                ),
                std::io::Error::from_raw_os_error(nix::libc::EROFS),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses, with the error a transaction would give, a registry no
    /// transaction could use, as far as the filesystem tells: its
    /// directory (made if missing, then checked for writing), its lock
    /// file (opened, made if missing, not locked: nobody waits, and
    /// nobody is made to wait), the file itself (its type, owner and
    /// mode), in a transaction's order, so the first refusal is the one
    /// a transaction meets. Its content is not read: that is the
    /// transaction's, and a file replaced meanwhile too. For a command
    /// whose first write follows a step it would have to undo
    /// (`create --ports`, before git runs).
    pub fn check_usable(&self) -> Result<()> {
        self.ensure_dir()?;
        self.open_lock(&self.lock_path())?;
        self.open_checked().map(drop)
    }

    /// The data, read and checked (an empty registry when there is no file yet).
    pub(super) fn load(&self) -> Result<RegistryData> {
        match self.open_checked()? {
            Some((file, meta)) => self.parse(&self.read_all(&file, &meta)?),
            None => Ok(RegistryData::default()),
        }
    }

    /// The file, opened once its type, owner and mode are checked, with
    /// the metadata they were checked on (the seal and the read's size
    /// come from it: one `fstat` per open); `None` when there is no file
    /// yet.
    pub(super) fn open_checked(&self) -> Result<Option<(File, Metadata)>> {
        // Opened first, then checked through the open file: what is checked
        // is what is read. O_NOFOLLOW refuses a symbolic link (ELOOP);
        // O_NONBLOCK keeps a FIFO put there from blocking the open.
        let file = match files::open_read(&self.path, false) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(OpenError::Refused(Refusal::Symlink)) => {
                return Err(self.unusable(
                    "it is a symbolic link; wtenv replaces the registry by rename, which would break the link",
                    "replace the link with the file it points to, or pass --registry with the real path",
                ));
            }
            Err(OpenError::Refused(r)) => {
                return Err(self.unusable(r.to_string(), self.move_aside_hint()));
            }
            // What the kernel refused a user (root reads on, to the
            // checks below) is said as those checks say it, exit 2.
            Err(OpenError::Io(e)) => {
                return Err(match files::refusal_of(&self.path, &e) {
                    Some(Refusal::Owner(uid)) => self.not_ours(uid),
                    Some(r @ Refusal::OwnerMode(_)) => self.owner_mode(r),
                    Some(r) => self.unusable(r.to_string(), self.move_aside_hint()),
                    None => self.read_error(e),
                });
            }
        };
        let meta = file.metadata().map_err(|e| self.read_error(e))?;
        if !meta.is_file() {
            return Err(self.unusable(
                Refusal::NotRegular(files::kind_of(&meta)).to_string(),
                self.move_aside_hint(),
            ));
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(self.not_ours(meta.uid()));
        }
        // Root reads past its owner's mode; a user does not: refused alike.
        if let Err(OpenError::Refused(r)) = files::require_owner_bits(&meta, 0o400) {
            return Err(self.owner_mode(r));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(self.unusable(
                format!(
                    "it is writable by group or others (mode {:o})",
                    meta.permissions().mode() & 0o777
                ),
                format!("chmod 600 {}", quote_in_message(&self.path)),
            ));
        }
        Ok(Some((file, meta)))
    }

    /// The registry file is ours, but its mode keeps its owner out
    /// (`Refusal::OwnerMode`).
    fn owner_mode(&self, refusal: Refusal) -> Error {
        self.unusable(
            refusal.to_string(),
            format!("chmod 600 {}", quote_in_message(&self.path)),
        )
    }

    /// The registry file belongs to `uid`, another user.
    fn not_ours(&self, uid: u32) -> Error {
        self.unusable(
            Refusal::Owner(uid).to_string(),
            "use a registry of your own: set WTENV_STATE_DIR or pass --registry",
        )
    }

    pub(super) fn read_error(&self, e: std::io::Error) -> Error {
        Error::io(
            format!("could not read registry {}", printable_path(&self.path)),
            e,
        )
    }

    /// The rest of `file`, whose metadata `meta` (from
    /// [`open_checked`](Registry::open_checked)) sizes the buffer: std's
    /// `read_to_end` on a `File` would `fstat` it again for that, and a
    /// `Take` does not. The size is a hint only: the read goes to the end,
    /// whatever the file holds by then.
    pub(super) fn read_all(&self, file: &File, meta: &Metadata) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
        file.take(u64::MAX)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(e))?;
        Ok(bytes)
    }

    /// The data, with every record's port checked: see [`check_ports`].
    pub(super) fn parse(&self, bytes: &[u8]) -> Result<RegistryData> {
        let data = self.parse_schema(bytes)?;
        check_ports(&data.allocations).map_err(|reason| {
            self.unusable(
                reason,
                "wtenv never rewrites a registry it cannot trust; 'wtenv validate' shows it, then edit the file or move it aside",
            )
        })?;
        Ok(data)
    }

    pub(super) fn parse_schema(&self, bytes: &[u8]) -> Result<RegistryData> {
        // The common case, a valid file of our version, parses straight
        // into the typed struct: one pass instead of two (JSON value tree,
        // then struct), which is most of `wtenv ports`' time on a big
        // registry. Anything else takes the slow path below, which says
        // exactly what is wrong.
        // (serde also reads a struct from an array, `[1, []]`: not ours.)
        let object = bytes.trim_ascii_start().starts_with(b"{");
        if object
            && let Ok(data) = serde_json::from_slice::<RegistryData>(bytes)
            && data.version == VERSION
        {
            return Ok(data);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(self.unusable(
                "it is empty (a registry always holds at least {\"version\": 1})",
                self.move_aside_hint(),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            self.unusable(
                format!("it is not valid JSON ({e})"),
                self.move_aside_hint(),
            )
        })?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v > u64::from(VERSION) => {
                return Err(self.unusable(
                    format!("it was written by a newer wtenv (registry version {v}; this wtenv knows version {VERSION})"),
                    "upgrade wtenv; the registry is left as it is",
                ));
            }
            Some(v) if v == u64::from(VERSION) => {}
            _ => {
                return Err(self.unusable(
                    format!("it has no \"version\": {VERSION} (not a wtenv registry, or from an unknown version)"),
                    self.move_aside_hint(),
                ));
            }
        }
        // From the bytes, not from `value`: a value tree keeps the last of
        // two equal keys, the typed parse refuses them (a second, empty
        // "allocations" must not make the first one's entries vanish).
        serde_json::from_slice(bytes).map_err(|e| {
            // A field this wtenv does not know, in a file of its version:
            // most likely a newer wtenv's (its holds gained fields before
            // 0.1.0 without a new version), said first, the way aside last.
            if let Some(reason) = crate::versions::newer_field::<RegistryData>(bytes, &e) {
                return self.unusable(reason, self.newer_field_hint());
            }
            let reason = if e.to_string().starts_with("duplicate field") {
                format!("a key is given twice ({e}); which one counts would be a guess")
            } else {
                // serde names an unknown key as the file spells it.
                format!(
                    "it does not match the registry schema ({})",
                    printable(&e.to_string())
                )
            };
            self.unusable(reason, self.move_aside_hint())
        })
    }
}

/// What wtenv never writes: a port below 1024, one port twice. Either
/// means the file was edited or damaged, and acting on it would probe a
/// privileged port or export one port for two services. (One service of
/// a worktree twice is `validate`'s `duplicate-service`, not a refusal:
/// the registry stays usable, and `release` mends it.)
pub fn check_ports(allocations: &[Allocation]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashMap::with_capacity(allocations.len());
    for a in allocations {
        if a.port < MIN_PORT {
            return Err(format!(
                "it records port {} (service {} of {}), outside {MIN_PORT}-65535",
                a.port,
                printable(&a.service),
                printable_path(&a.worktree)
            ));
        }
        if let Some(other) = seen.insert(a.port, a) {
            return Err(format!(
                "it records port {} twice (service {} of {}, and service {} of {})",
                a.port,
                printable(&other.service),
                printable_path(&other.worktree),
                printable(&a.service),
                printable_path(&a.worktree)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::registry::samples::registry;

    #[test]
    fn bad_files_are_refused_and_untouched() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{\"version\": 1, \"allocations\": [", "not valid JSON"),
            (b"[1,2]", "no \"version\""),
            (b"[1, []]", "no \"version\""),
            (b"{\"version\": 2, \"allocations\": []}", "newer wtenv"),
            (
                b"{\"version\": 1, \"allocations\": [],\n\"leases\": []}",
                "written by a newer wtenv: line 2 has a field this wtenv does not know, `leases`",
            ),
            (
                b"{\"version\": 1, \"allocations\": [{\"port\": \"x\"}]}",
                "schema",
            ),
        ];
        for (bytes, expected) in cases {
            let (_d, reg) = registry();
            std::fs::write(reg.path(), bytes).unwrap();
            std::fs::set_permissions(reg.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = reg.transaction(|_| Ok(())).unwrap_err();
            assert!(matches!(err, Error::RegistryUnusable { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
            // `env`'s filtered read refuses it alike, with the same words.
            let filtered = reg
                .read_worktree(Path::new("/r/.git"), Path::new("/r"))
                .unwrap_err();
            assert_eq!(filtered.to_string(), err.to_string());
            // So does a transaction on part of it.
            let part = crate::registry::Part {
                repository: Path::new("/r/.git"),
                worktree: Path::new("/r"),
                ports: None,
            };
            let scoped = reg.transaction_in(part, |_| Ok(())).unwrap_err();
            assert_eq!(scoped.to_string(), err.to_string());
            assert_eq!(std::fs::read(reg.path()).unwrap(), *bytes);
        }
    }
}
