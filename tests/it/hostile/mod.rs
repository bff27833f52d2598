//! Hostile input: files planted in the state directory, a config or a
//! directive file that is not a regular file, registries wtenv did not
//! write, a worktree record holding what `create` refuses, paths that are
//! not UTF-8. Each test asserts the exit code and
//! message, that nothing hangs (a bounded run), and that nothing outside
//! the state directory was written or created (a snapshot of it before and
//! after).
//!
//! A module per concept; this file holds the helpers several of them
//! share (`mkfifo` and `with_registry` other areas' tests use too).

mod configs;
mod git_dir;
mod names;
mod registries;
mod settings;
mod state_dir;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Run, TestEnv, run, run_bounded};

/// A hang is a failure, not a stuck suite.
const LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A directory outside the state directory holding a file a planted link
/// points to, and the path of a file that must never be created.
struct Outside {
    dir: PathBuf,
    victim: PathBuf,
    absent: PathBuf,
}

impl Outside {
    fn new(t: &TestEnv) -> Outside {
        let dir = t.root().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "the user's file\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        Outside {
            absent: dir.join("absent"),
            dir,
            victim,
        }
    }
}

fn env_bounded(t: &TestEnv, args: &[&str]) -> Run {
    run_bounded(&mut t.wtenv(args), LIMIT)
}

/// A state directory with a registry in it (made by a first `env`).
pub(crate) fn with_registry() -> TestEnv {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    t
}
