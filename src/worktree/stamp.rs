//! The stamp: one small file in a worktree's own git dir
//! (`wtenv.stamp`, one line `@<mark>,service=port,...`) that the registry
//! rewrites whenever the worktree's ports change. direnv watches it, and
//! it tells a worktree's entries from another's at the same path
//! (docs/ARCHITECTURE.md, "An entry follows the worktree's identity").
//! The mark says where the worktree was when its stamp was written: a
//! stamp proves that the worktree moved away from an entry's path only
//! when it was written at that path.

use std::path::Path;

use super::{STAMP_NAME, own_git_dir};
use crate::process::printable_path;

/// What a stamp says: the ports the registry last gave its worktree, and
/// where that worktree was then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    /// [`mark_of`] the worktree's path when the stamp was written; `None`
    /// for a stamp without one (made by hand, or by a build before the
    /// mark), which proves no move.
    pub mark: Option<u64>,
    /// `(service, port)`, as listed.
    pub ports: Vec<(String, u16)>,
}

impl Stamp {
    /// The stamp [`stamp_line`] writes for the worktree at `root`.
    pub fn new(root: &Path, ports: Vec<(String, u16)>) -> Stamp {
        Stamp {
            mark: Some(mark_of(root)),
            ports,
        }
    }

    /// Whether it lists `service` on `port`.
    pub fn lists(&self, service: &str, port: u16) -> bool {
        self.ports.iter().any(|(s, p)| s == service && *p == port)
    }

    /// Whether it was written while its worktree was at `root`.
    pub fn written_at(&self, root: &Path) -> bool {
        self.mark == Some(mark_of(root))
    }

    /// Whether it lists `service` on `port` and was written at `root`:
    /// the proof that the entry of that service, port and path is its
    /// worktree's, wherever that worktree is now.
    pub fn claims(&self, service: &str, port: u16, root: &Path) -> bool {
        self.lists(service, port) && self.written_at(root)
    }
}

/// The mark of a worktree at `root` (its canonical path, as the registry
/// records it): 16 hex digits of its hash.
fn mark_of(root: &Path) -> u64 {
    crate::hash::fnv1a(root.as_os_str().as_encoded_bytes())
}

/// The stamp's content for the worktree at `root` with `ports`: one line,
/// its mark (`@` and 16 hex digits: no service name holds `@`), then
/// `service=port,...`, sorted, whatever their order (what [`parse`] reads
/// back). A line, so never empty.
pub fn stamp_line<'a>(root: &Path, ports: impl IntoIterator<Item = (&'a str, u16)>) -> String {
    let sorted: std::collections::BTreeSet<(&str, u16)> = ports.into_iter().collect();
    let mut line = format!("@{:016x}", mark_of(root));
    for (service, port) in sorted {
        line.push_str(&format!(",{service}={port}"));
    }
    line.push('\n');
    line
}

/// Rewrites the stamp of the worktree at `root` with `content` (a
/// [`stamp_line`] of its ports), so that direnv reloads it. The registry
/// calls this for every worktree whose ports a transaction changed,
/// whatever the command; `create --ports` once more when git is done, if
/// the stamp is not current ([`super::Worktree::stamp_unless_current`]).
/// Nothing happens for a worktree that is gone or not made yet.
///
/// direnv compares modification times in whole seconds: when the stamp
/// was already written within the current second, its time is moved one
/// second past the old one, so a second change in that second still
/// reloads.
///
/// The worktree may be a tree someone else made: the stamp is written only
/// into a git dir that is this worktree's own (see [`own_git_dir`]), never
/// through a link and only over a regular file of ours
/// ([`replace_own`]: a temp file renamed over it, so a write that fails
/// leaves the stamp as it was, never empty); otherwise it is skipped, and
/// direnv misses the reload: a warning says so, and how to remove what
/// is there instead.
///
/// [`replace_own`]: crate::files::replace_own
pub fn write_stamp(root: &Path, content: &str) {
    if let Some(git_dir) = own_git_dir(root) {
        write_stamp_in(&git_dir, content);
    }
}

/// [`write_stamp`] for the worktree at `root` of the repository whose
/// common dir is `repository`, also when its directory is gone while git
/// keeps its git dir (a worktree deleted with `rm -rf` or moved with
/// `mv`, listed as prunable): the stamp there is rewritten too, found by
/// its `gitdir` file ([`super::admin_dir_of`]). A stamp left listing
/// ports the registry has released would claim them for that worktree
/// once its directory is back (README, "Allocation").
pub fn write_stamp_of(root: &Path, repository: &Path, content: &str) {
    if let Some(git_dir) = own_git_dir(root) {
        write_stamp_in(&git_dir, content);
    } else if !root.exists()
        && let Some(git_dir) = super::admin_dir_of(repository, root)
    {
        write_stamp_in(&git_dir, content);
    }
}

/// Rewrites the stamp in `git_dir`, a worktree's own ([`write_stamp`]).
fn write_stamp_in(git_dir: &Path, content: &str) {
    let path = git_dir.join(STAMP_NAME);
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let old = std::fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .ok();
    let result = crate::files::replace_own(&path, content.as_bytes(), |file| {
        let Some(old) = old else { return Ok(()) };
        let now = file.metadata()?.modified()?;
        if secs(now) <= secs(old) {
            file.set_modified(old + std::time::Duration::from_secs(1))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        let message = format!(
            "did not write {}: {e}; direnv will not reload this worktree's environment when its ports change",
            printable_path(&path)
        );
        match e {
            crate::files::OpenError::Refused(_) => {
                crate::report::warn_hinted(&message, &crate::files::planted_hint(&path));
            }
            crate::files::OpenError::Io(_) => crate::report::warn(&message),
        }
    }
}

/// The stamp in the own git dir of the worktree at `root`: what the
/// registry last gave the worktree of that git dir. Empty when there is
/// no stamp, or no such git dir.
pub fn stamped_ports(root: &Path) -> Stamp {
    match own_git_dir(root) {
        Some(git_dir) => stamped_in(&git_dir),
        None => Stamp::default(),
    }
}

/// Whether the stamp in `git_dir` is `line` (a [`stamp_line`]), byte for
/// byte: one read of the small file, capped at the line's length.
pub fn stamp_holds(git_dir: &Path, line: &str) -> bool {
    let now = crate::files::read_regular(&git_dir.join(STAMP_NAME), line.len() as u64);
    matches!(now, Ok(Some(bytes)) if bytes == line.as_bytes())
}

/// The stamp in `git_dir` ([`stamped_ports`], for a git dir already
/// found: one read of the small file). Empty when there is no stamp.
pub fn stamped_in(git_dir: &Path) -> Stamp {
    match crate::files::read_regular(&git_dir.join(STAMP_NAME), 64 * 1024) {
        Ok(Some(bytes)) => parse(&String::from_utf8_lossy(&bytes)),
        _ => Stamp::default(),
    }
}

/// A stamp's line ([`stamp_line`]); what is not a mark nor a
/// `service=port` pair is skipped.
fn parse(line: &str) -> Stamp {
    let mut stamp = Stamp::default();
    for item in line.trim().split(',') {
        if let Some(hex) = item.strip_prefix('@') {
            stamp.mark = u64::from_str_radix(hex, 16).ok();
        } else if let Some((service, port)) = item.rsplit_once('=')
            && let Ok(port) = port.parse()
        {
            stamp.ports.push((service.to_owned(), port));
        }
    }
    stamp
}

/// The stamps of every worktree of the repository whose common dir is
/// `common_dir`: its own git dir's (the main worktree's) and each linked
/// worktree's (`worktrees/*`), wherever git last saw their directories.
pub fn stamped_in_repository(common_dir: &Path) -> Vec<Stamp> {
    let mut out = vec![stamped_in(common_dir)];
    if let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) {
        for entry in entries.flatten() {
            out.push(stamped_in(&entry.path()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_its_mark_and_ports_sorted() {
        let root = Path::new("/wt/feature");
        let line = stamp_line(root, [("web", 5001), ("api", 5000)]);
        assert!(
            line.starts_with('@') && line.ends_with(",api=5000,web=5001\n"),
            "{line}"
        );
        let stamp = parse(&line);
        let ports = vec![("api".to_owned(), 5000), ("web".to_owned(), 5001)];
        assert_eq!(stamp, Stamp::new(root, ports));
        assert!(stamp.claims("web", 5001, root));
        assert!(!stamp.claims("web", 5001, Path::new("/wt/other")));
        assert!(!stamp.claims("web", 5000, root));
        assert_eq!(parse(&stamp_line(root, [])), Stamp::new(root, vec![]));
    }

    /// A stamp without a mark (by hand, or by a build before it) lists
    /// its ports, and proves no move: it claims nothing.
    #[test]
    fn a_stamp_without_a_mark_lists_but_claims_nothing() {
        let stamp = parse("api=5000,web=5001\n");
        assert_eq!(stamp.mark, None);
        assert!(stamp.lists("web", 5001));
        assert!(!stamp.claims("web", 5001, Path::new("/wt/feature")));
        let garbled = parse("@zz,web=x,api=5000");
        assert_eq!(garbled.mark, None);
        assert_eq!(garbled.ports, vec![("api".to_owned(), 5000)]);
    }
}
