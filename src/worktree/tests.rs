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

/// `resolve` finds what `canonicalize` finds, through relative and
/// absolute links and `..` after a link; it fails where that fails.
#[test]
fn resolve_agrees_with_canonicalize() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(base.join("a/b/c")).unwrap();
    std::os::unix::fs::symlink("a/b", base.join("rel")).unwrap();
    std::os::unix::fs::symlink(base.join("a/b/c"), base.join("abs")).unwrap();
    std::os::unix::fs::symlink("../rel/c", base.join("a/up")).unwrap();
    for p in [
        "a/b/c",
        "rel/c",
        "abs",
        "abs/..",
        "a/up",
        "a/up/../c",
        "a/./b",
    ] {
        let path = base.join(p);
        match resolve(&path).unwrap() {
            Resolved::Dir(d) => assert_eq!(d, path.canonicalize().unwrap(), "{p}"),
            Resolved::Kernel(k, _) => panic!("{p}: {k:?}"),
        }
    }
    std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
    for p in ["missing", "loop", "a/b/c/missing"] {
        assert!(resolve(&base.join(p)).is_err(), "{p}");
    }
}

/// The current directory's fast path finds what resolving finds: in a
/// main worktree, a linked one, and where `.git` is a symbolic link
/// (the one case where the directory found is not resolved already).
#[test]
fn discovery_without_resolving_agrees_with_resolving() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let git = |args: &[&str], dir: &Path| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@e.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    let main = base.join("main");
    std::fs::create_dir(&main).unwrap();
    git(&["init", "-q"], &main);
    git(&["commit", "-q", "--allow-empty", "-m", "init"], &main);
    git(&["worktree", "add", "-q", "../linked"], &main);
    // A checkout whose .git is a link to the repository's directory.
    let linked_git = base.join("via-link");
    std::fs::create_dir_all(linked_git.join("sub")).unwrap();
    std::os::unix::fs::symlink(main.join(".git"), linked_git.join(".git")).unwrap();
    for start in [
        main.clone(),
        base.join("linked"),
        linked_git.join("sub"),
        linked_git.clone(),
    ] {
        let fast = Worktree::discover_resolved(&start).unwrap().unwrap();
        let slow = Worktree::discover(&start).unwrap().unwrap();
        assert_eq!(fast.root, slow.root, "{start:?}");
        assert_eq!(fast.git_dir, slow.git_dir, "{start:?}");
        assert_eq!(fast.common_dir, slow.common_dir, "{start:?}");
    }
    let linked = Worktree::discover_resolved(&linked_git).unwrap().unwrap();
    assert_eq!(linked.common_dir, main.join(".git"));
    assert!(Worktree::discover_resolved(&base).unwrap().is_none());
}

#[test]
fn main_root_of_common_dir() {
    assert_eq!(
        main_root_of(Path::new("/a/b/.git")),
        Some(PathBuf::from("/a/b"))
    );
    assert_eq!(main_root_of(Path::new("/a/b.git")), None);
}

#[test]
fn normalize_resolves_dots() {
    assert_eq!(
        normalize(Path::new("/a/b/../c/./d")),
        PathBuf::from("/a/c/d")
    );
}

/// A directory that cannot be resolved is named escaped, as every path
/// in a message is: it was shown as it stood.
#[test]
fn a_path_that_cannot_be_resolved_is_named_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let start = tmp.path().join("gone\x1b[2J\u{202e}");
    let err = Worktree::discover(&start).unwrap_err().to_string();
    assert!(
        err.starts_with("could not resolve ") && err.contains(r"gone\u{1b}[2J\u{202e}"),
        "{err}"
    );
}

/// A key of git's own config file is read from its section only, names
/// compared without case, as git writes them.
#[test]
fn config_values_are_read_from_their_section() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config"),
        "[remote \"origin\"]\n\tworktree = /not/this\n\tbare = true\n[Core]\n\tBare = false\n\tworktree = ../../../sm\n",
    )
    .unwrap();
    assert_eq!(
        repository::config_value(tmp.path(), "core", "bare").as_deref(),
        Some(b"false".as_slice())
    );
    assert_eq!(
        core_worktree(tmp.path()),
        Some(PathBuf::from("../../../sm"))
    );
    assert_eq!(
        repository::config_value(tmp.path(), "core", "ignorecase"),
        None
    );
    assert_eq!(
        repository::config_value(&tmp.path().join("missing"), "core", "bare"),
        None
    );
}
