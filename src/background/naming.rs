//! Unit names: `wtenv-<repo>-<worktree>-<service>`, each part escaped
//! with systemd's rules, the same whatever the manager.

use std::path::Path;

use super::{Manager, systemd};
use crate::context::Scope;

/// The unit names of one worktree: `wtenv-<repo>-<worktree>` and a
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
    pub fn new(repo: &str, worktree: &str) -> Naming {
        Naming {
            base: format!(
                "wtenv-{}-{}",
                systemd::escape(repo),
                systemd::escape(worktree)
            ),
        }
    }

    pub fn of(scope: &Scope) -> Naming {
        let repo = scope
            .worktree
            .main_root()
            .unwrap_or_else(|| scope.worktree.common_dir.clone());
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Naming::new(&name(&repo), &name(&scope.worktree.root))
    }

    /// The unit of `service`, without a suffix.
    pub fn unit(&self, service: &str) -> String {
        shorten(format!("{}-{}", self.base, systemd::escape(service)))
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
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    // The escaped name is ASCII, so any byte index is a char boundary.
    format!("{}-{hash:016x}", &name[..NAME_MAX - 17])
}

/// The manager's own name for the unit.
pub(super) fn unit_file_name(manager: Manager, unit: &str) -> String {
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
        let n = Naming::new("my-repo", "feature-login");
        assert_eq!(n.base, r"wtenv-my\x2drepo-feature\x2dlogin");
        assert_eq!(n.unit("web"), r"wtenv-my\x2drepo-feature\x2dlogin-web");
        assert_eq!(n.group(), n.base);
    }

    #[test]
    fn a_too_long_unit_name_is_shortened_with_a_hash_and_stays_distinct() {
        let long = "x".repeat(300);
        let a = Naming::new("r", &long).unit("web");
        let b = Naming::new("r", &long).unit("api");
        assert!(a.len() <= NAME_MAX && b.len() <= NAME_MAX, "{}", a.len());
        assert_ne!(a, b);
        assert!(a.starts_with("wtenv-r-xxx"));
    }
}
