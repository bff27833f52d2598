//! The repository is the one around the current directory, whatever git's
//! own variables in the environment say: wtenv's git acts on it too.

use std::path::PathBuf;

use super::default_path;
use crate::support::{TestEnv, run};

/// A `GIT_DIR` (and friends) left in a shell named another repository:
/// `list` showed that one's worktrees beside this one's config and
/// registry, and `create` failed with "git made ... but it is not a
/// worktree of ...". Every git wtenv runs now acts on the repository
/// wtenv found from its directory.
#[test]
fn git_variables_in_the_environment_do_not_redirect_wtenvs_git() {
    let t = TestEnv::new();
    let other = t.root().join("other");
    t.init_repo(&other);
    t.git_in(&other, &["commit", "-q", "--allow-empty", "-m", "init"]);
    let other_linked = t.root().join("other-linked");
    t.git_in(
        &other,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "o",
            other_linked.to_str().unwrap(),
        ],
    );
    let redirect = |cmd: &mut std::process::Command| {
        cmd.env("GIT_DIR", other.join(".git"))
            .env("GIT_WORK_TREE", &other)
            .env("GIT_INDEX_FILE", other.join(".git/index"));
    };

    let mut cmd = t.wtenv(&["list", "--json"]);
    redirect(&mut cmd);
    let json = run(&mut cmd);
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let paths: Vec<PathBuf> = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| PathBuf::from(w["path"].as_str().unwrap()))
        .collect();
    assert_eq!(paths, std::slice::from_ref(&t.repo), "{json}");

    let mut cmd = t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "g1",
        "--ports",
    ]);
    redirect(&mut cmd);
    let made = run(&mut cmd);
    assert_eq!(made.code, Some(0), "{made}");
    let path = default_path(&t, "feature", "g1");
    assert!(path.join("wtenv.toml").is_file(), "{made}");
    assert_eq!(
        t.git(&["for-each-ref", "--format=%(refname)", "refs/heads/feature"])
            .trim(),
        "refs/heads/feature/g1"
    );
    assert_eq!(
        t.git_in(&other, &["for-each-ref", "refs/heads/feature"]),
        "",
        "a branch made in the other repository"
    );
    assert_eq!(t.allocations().len(), 1, "{:?}", t.allocations());

    let mut cmd = t.wtenv(&["remove", "g1", "--delete-branch"]);
    redirect(&mut cmd);
    let removed = run(&mut cmd);
    assert_eq!(removed.code, Some(0), "{removed}");
    assert!(!path.exists() && t.allocations().is_empty(), "{removed}");
    // The other repository is as it was.
    assert!(other_linked.join(".git").is_file());
}
