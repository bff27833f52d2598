//! Unit names: `wtenv-<repo>_<hash>-<worktree>-<service>`, each part
//! escaped with systemd's rules, the same whatever the manager. `<hash>`
//! (8 hex digits of the worktree's own git dir's path) keeps apart two
//! repositories with the same directory name (`/a/app` and `/b/app`), and
//! two worktrees of one repository with the same directory name
//! (`/a/dup` and `/b/dup`: git names their git dirs apart, `worktrees/dup`
//! and `worktrees/dup1`).

use std::path::Path;

use super::{Manager, systemd};
use crate::context::Scope;
use crate::hash::fnv1a;
use crate::worktree::main_root_of;

/// The unit names of one worktree: `wtenv-<repo>_<hash>-<worktree>` and a
/// `-<service>` per service, each part escaped, so the dashes between them
/// are the only unescaped ones (systemd reads them as the slice nesting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub base: String,
}

/// Unit names are at most 255 bytes with their suffix: a longer one keeps
/// its start and ends with a hash of the whole.
const NAME_MAX: usize = 240;

impl Naming {
    /// `repo` and `worktree` are directory names; `git_dir` is what tells
    /// worktrees apart, whatever their names: the worktree's own git dir
    /// (the repository's canonical common dir for its main worktree,
    /// `worktrees/<name>` in it for a linked one). A worktree keeps it when
    /// `git worktree move` moves it; no two worktrees have one at once.
    pub fn new(repo: &str, git_dir: &Path, worktree: &str) -> Naming {
        let id = fnv1a(git_dir.as_os_str().as_encoded_bytes()) as u32;
        Naming {
            base: format!(
                "wtenv-{}_{id:08x}-{}",
                systemd::escape(repo),
                systemd::escape(worktree)
            ),
        }
    }

    /// The names of the worktree at `root` whose own git dir is `git_dir`,
    /// of the repository whose git common dir is `common_dir` (`<repo>`:
    /// the main worktree's directory name, or a bare repository's).
    pub fn of_worktree(common_dir: &Path, git_dir: &Path, root: &Path) -> Naming {
        let repo = main_root_of(common_dir).unwrap_or_else(|| common_dir.to_path_buf());
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        // A linked worktree's git dir as git lists it in the common dir,
        // however it was reached: the same bytes, the same name.
        let git_dir = match git_dir.file_name() {
            Some(own) if git_dir != common_dir => common_dir.join("worktrees").join(own),
            _ => common_dir.to_path_buf(),
        };
        Naming::new(&name(&repo), &git_dir, &name(root))
    }

    pub fn of(scope: &Scope) -> Naming {
        let w = &scope.worktree;
        Naming::of_worktree(&w.common_dir, &w.git_dir, &w.root)
    }

    /// The names of the worktree git knows at `root` (an entry of the
    /// registry's), its git dir found by its path: the main worktree's,
    /// or the linked worktree's whose `gitdir` file names `root`, whether
    /// its directory is there or not. `None` when git knows none there.
    pub fn at(common_dir: &Path, root: &Path) -> Option<Naming> {
        let git_dir = if main_root_of(common_dir).as_deref() == Some(root) {
            common_dir.to_path_buf()
        } else {
            crate::worktree::admin_dir_of(common_dir, root)?
        };
        Some(Naming::of_worktree(common_dir, &git_dir, root))
    }

    /// The unit of `service`, without a suffix.
    pub fn unit(&self, service: &str) -> String {
        shorten(format!("{}-{}", self.base, systemd::escape(service)))
    }

    /// Whether `unit` (without a manager's suffix) is the unit of one of
    /// this worktree's services, whichever: this worktree's prefix, then
    /// one escaped part (no `-`: the dashes between parts are the only
    /// ones). A name shortened with a hash is not told this way.
    pub fn is_service_unit(&self, unit: &str) -> bool {
        unit.strip_prefix(self.base.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|service| !service.is_empty() && !service.contains('-'))
    }

    /// The service whose unit `unit` (without a manager's suffix) is, as
    /// [`Naming::is_service_unit`] tells it: its last part, unescaped.
    pub fn service_of(&self, unit: &str) -> Option<String> {
        let part = unit.strip_prefix(self.base.as_str())?.strip_prefix('-')?;
        if !self.is_service_unit(unit) {
            return None;
        }
        systemd::unescape(part)
    }

    /// The worktree's slice (systemd) or target (export), without suffix.
    pub fn group(&self) -> String {
        shorten(self.base.clone())
    }
}

fn shorten(name: String) -> String {
    if name.len() <= NAME_MAX {
        return name;
    }
    let hash = fnv1a(name.as_bytes());
    // The escaped name is ASCII, so any byte index is a char boundary.
    format!("{}-{hash:016x}", &name[..NAME_MAX - 17])
}

/// Whether `unit` is a name [`Naming`] could have made, with a manager's
/// suffix ([`unit_file_name`]): `wtenv-`, then only what [`systemd::escape`]
/// writes (its kept bytes, its `\xNN` escapes, the `-` between parts), at
/// most 255 bytes. Such a name holds no `/` and does not start with `.`:
/// it names a file in the state directory and nothing else, and is safe to
/// pass to a manager.
pub(super) fn is_unit_name(unit: &str) -> bool {
    unit.len() <= NAME_MAX + ".service".len()
        && unit.starts_with("wtenv-")
        && unit
            .bytes()
            .all(|b| systemd::kept(b) || matches!(b, b'\\' | b'-'))
}

/// The manager's own name for the unit.
pub fn unit_file_name(manager: Manager, unit: &str) -> String {
    match manager {
        Manager::Systemd => format!("{unit}.service"),
        Manager::Launchd | Manager::Wtenv => unit.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_escape_each_part_so_only_the_separators_are_dashes() {
        let n = Naming::of_worktree(
            Path::new("/src/my-repo/.git"),
            Path::new("/src/my-repo/.git/worktrees/feature-login"),
            Path::new("/wt/feature-login"),
        );
        let id = format!(
            "{:08x}",
            fnv1a(b"/src/my-repo/.git/worktrees/feature-login") as u32
        );
        assert_eq!(n.base, format!(r"wtenv-my\x2drepo_{id}-feature\x2dlogin"));
        assert_eq!(
            n.unit("web"),
            format!(r"wtenv-my\x2drepo_{id}-feature\x2dlogin-web")
        );
        assert_eq!(n.group(), n.base);
        assert!(n.is_service_unit(&n.unit("web")) && n.is_service_unit(&n.unit("a-b")));
        let sibling = Naming::of_worktree(
            Path::new("/src/my-repo/.git"),
            Path::new("/src/my-repo/.git/worktrees/feature"),
            Path::new("/wt/feature"),
        );
        assert!(!sibling.is_service_unit(&n.unit("web")), "feature-login's");
        assert!(!n.is_service_unit(&n.base) && !n.is_service_unit(&format!("{}-", n.base)));
        // The service a unit's name gives back, its escapes undone.
        for service in ["web", "a-b", "x.y", ".dot", "é"] {
            assert_eq!(n.service_of(&n.unit(service)).as_deref(), Some(service));
        }
        assert_eq!(sibling.service_of(&n.unit("web")), None);
        assert_eq!(n.service_of(&format!(r"{}-a\x2", n.base)), None);
    }

    /// The main worktree of the repository at `dir`.
    fn main_of(dir: &str) -> Naming {
        let git = Path::new(dir).join(".git");
        Naming::of_worktree(&git, &git, Path::new(dir))
    }

    #[test]
    fn two_repositories_with_the_same_names_get_distinct_units() {
        let (a, b) = (main_of("/tmp/a/app"), main_of("/tmp/b/app"));
        assert_ne!(a.unit("web"), b.unit("web"));
        assert_ne!(a.group(), b.group());
        assert!(a.unit("web").starts_with("wtenv-app_") && a.unit("web").ends_with("-app-web"));
        // Stable: the same repository always gets the same name.
        assert_eq!(a, main_of("/tmp/a/app"));
    }

    /// Two worktrees of one repository at `/a/dup` and `/b/dup` (git names
    /// their git dirs `dup` and `dup1`), and a linked worktree named as the
    /// main one: each its own units. A worktree's git dir reached through
    /// another path to the same repository names it the same.
    #[test]
    fn two_worktrees_of_one_repository_with_the_same_name_get_distinct_units() {
        let common = Path::new("/src/app/.git");
        let linked = |admin: &str, root: &str| {
            Naming::of_worktree(
                common,
                &common.join("worktrees").join(admin),
                Path::new(root),
            )
        };
        let (a, b) = (linked("dup", "/a/dup"), linked("dup1", "/b/dup"));
        assert_ne!(a.unit("web"), b.unit("web"));
        assert!(a.unit("web").ends_with("-dup-web") && b.unit("web").ends_with("-dup-web"));
        let main = main_of("/src/app");
        assert_ne!(main.unit("web"), linked("app", "/wt/app").unit("web"));
        let elsewhere = Naming::of_worktree(
            common,
            Path::new("/mnt/same/.git/worktrees/dup"),
            Path::new("/a/dup"),
        );
        assert_eq!(a, elsewhere);
    }

    #[test]
    fn only_names_naming_makes_are_unit_names() {
        let git = Path::new("/r/my-app/.git");
        let n = Naming::of_worktree(git, git, Path::new("/w/.hidden w"));
        let long = Naming::new("r", Path::new("/r/.git"), &"é".repeat(200));
        for m in [Manager::Systemd, Manager::Launchd, Manager::Wtenv] {
            assert!(is_unit_name(&unit_file_name(m, &n.unit("web/é"))));
            assert!(is_unit_name(&unit_file_name(m, &long.unit("web"))));
        }
        for bad in [
            "../../victim",
            "wtenv-a/../../b",
            ".wtenv-a",
            "wtenv-\u{202e}gnp.exe",
            "wtenv-a b",
            "other-web",
            "",
        ] {
            assert!(!is_unit_name(bad), "{bad}");
        }
        assert!(!is_unit_name(&format!("wtenv-{}", "x".repeat(250))));
    }

    #[test]
    fn a_too_long_unit_name_is_shortened_with_a_hash_and_stays_distinct() {
        let long = "x".repeat(300);
        let a = Naming::new("r", Path::new("/r/.git"), &long).unit("web");
        let b = Naming::new("r", Path::new("/r/.git"), &long).unit("api");
        assert!(a.len() <= NAME_MAX && b.len() <= NAME_MAX, "{}", a.len());
        assert_ne!(a, b);
        assert!(a.starts_with("wtenv-r_") && a.contains("-xxx"), "{a}");
    }
}
