//! What `create --ports` and `enter` refuse before git runs: a state
//! directory wtenv cannot use (with the registry's own error), and a
//! config whose exports would be over the limit in the new worktree. A
//! lock file or the trust list planted as a directory is refused with the
//! command that removes it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::hostile::{mkfifo, with_registry};
use crate::support::{TestEnv, run, run_bounded, snapshot};

/// A hang is a failure, not a stuck suite.
const LIMIT: Duration = Duration::from_secs(60);

/// Git hooks that append their name to `marker` whenever git runs one: a
/// branch made or deleted (`reference-transaction`), a checkout
/// (`post-checkout`). The rollback undoes what git made; that git ran
/// at all shows here.
fn record_git_hooks(t: &TestEnv, marker: &Path) {
    let hooks = t.repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for name in ["reference-transaction", "post-checkout"] {
        let hook = hooks.join(name);
        std::fs::write(
            &hook,
            format!("#!/bin/sh\necho {name} >> '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A change made to the state directory, or undone.
type Step<'a> = &'a dyn Fn();

/// `create --ports` had git make the branch and check the worktree out,
/// then met the registry it could not use and rolled it all back. Now a
/// registry (or state directory) the reservation cannot use refuses
/// `create --ports` and `enter` before git runs: the error and exit code
/// `allocate` gives for it, and nothing made, not even for a moment.
#[test]
fn create_and_enter_refuse_an_unusable_registry_before_git_runs() {
    let t = with_registry();
    let marker = t.root().join("git-ran");
    record_git_hooks(&t, &marker);
    let state = t.state_dir();
    let registry = t.registry_path();
    let lock = state.join("registry.lock");
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
    // Each way, with how to make it and how to mend it.
    let cases: [(&str, Step, Step); 5] = [
        (
            "registry.lock is a directory",
            &|| {
                std::fs::remove_file(&lock).unwrap();
                std::fs::create_dir(&lock).unwrap();
            },
            &|| {
                std::fs::remove_dir(&lock).unwrap();
            },
        ),
        (
            "the registry is a FIFO",
            &|| {
                std::fs::rename(&registry, state.join("aside")).unwrap();
                mkfifo(&registry);
            },
            &|| {
                std::fs::rename(state.join("aside"), &registry).unwrap();
            },
        ),
        (
            "the registry is a directory",
            &|| {
                std::fs::rename(&registry, state.join("aside")).unwrap();
                std::fs::create_dir(&registry).unwrap();
            },
            &|| {
                std::fs::remove_dir(&registry).unwrap();
                std::fs::rename(state.join("aside"), &registry).unwrap();
            },
        ),
        (
            "the registry is another user's",
            &|| std::os::unix::fs::chown(&registry, Some(65534), None).unwrap(),
            &|| std::os::unix::fs::chown(&registry, Some(0), None).unwrap(),
        ),
        (
            "the state directory is not writable",
            &|| mode(&state, 0o500).unwrap(),
            &|| mode(&state, 0o700).unwrap(),
        ),
    ];
    let worktrees = || t.git(&["worktree", "list", "--porcelain"]);
    let branches = || t.git(&["branch", "--list"]);
    let (listed, branched) = (worktrees(), branches());
    for (case, damage, mend) in cases {
        damage();
        let repo = snapshot(&t.repo);
        let allocate = run_bounded(&mut t.wtenv(&["allocate", "--service", "web"]), LIMIT);
        assert_eq!(allocate.code, Some(2), "{case}: {allocate}");
        assert!(
            allocate.stderr.starts_with(&format!(
                "error: registry {} cannot be used: ",
                registry.display()
            )),
            "{case}: {allocate}"
        );
        for args in [
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "x",
                "--ports",
            ][..],
            &["enter", "x"],
        ] {
            let out = run_bounded(&mut t.wtenv(args), LIMIT);
            assert_eq!(out.code, Some(2), "{case}: {args:?}: {out}");
            assert_eq!(out.stdout, "", "{case}: {args:?}");
            assert_eq!(out.stderr, allocate.stderr, "{case}: {args:?}");
            assert!(
                !marker.exists(),
                "{case}: {args:?}: git ran: {}",
                std::fs::read_to_string(&marker).unwrap_or_default()
            );
            assert_eq!(worktrees(), listed, "{case}: {args:?}");
            assert_eq!(branches(), branched, "{case}: {args:?}");
            assert!(
                !t.root().join("repo.worktrees").exists(),
                "{case}: {args:?}"
            );
            assert!(snapshot(&t.repo) == repo, "{case}: {args:?}: repo changed");
        }
        mend();
    }
    // Mended, the same command runs git (the hooks fire) and makes it.
    let out = run(&mut t.wtenv(&["enter", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        marker.exists(),
        "the hooks never fire: the test proves nothing"
    );
    assert_ne!(worktrees(), listed);
}

/// The reservation's request, with its check that what the worktree
/// would export fits (64 KiB), was made once `git worktree add` had
/// started: a create refused on the new worktree's identifier alone ran
/// git and its hooks, then rolled back. Now it is refused before git
/// runs, `create --ports` and `enter` alike, with the config's error.
#[test]
fn create_and_enter_refuse_an_export_over_the_limit_before_git_runs() {
    let t = with_registry();
    let marker = t.root().join("git-ran");
    record_git_hooks(&t, &marker);
    // 1100 copies of the identifier: 4.4 KB for the main worktree's
    // (`repo`), over 64 KiB for one of 64 characters.
    t.write_config(&format!(
        "[env]\nIDS = \"{}\"\n",
        "{identifier}".repeat(1100)
    ));
    let config = t.repo.join("wtenv.toml");
    assert_eq!(
        run(&mut t.wtenv(&["env"])).code,
        Some(0),
        "the config fits here"
    );
    let long = "x".repeat(64);
    let (listed, branched) = (
        t.git(&["worktree", "list", "--porcelain"]),
        t.git(&["branch", "--list"]),
    );
    let registry = std::fs::read(t.registry_path()).unwrap();
    let repo = snapshot(&t.repo);
    for args in [
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            &long,
            "--ports",
        ][..],
        &["enter", &long],
    ] {
        let out = run_bounded(&mut t.wtenv(args), LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(out.stdout, "", "{args:?}");
        let want = format!(
            "error: invalid config {}: env.IDS: the variables it exports would take ",
            config.display()
        );
        assert!(out.stderr.starts_with(&want), "{args:?}: {out}");
        assert!(
            !marker.exists(),
            "{args:?}: git ran: {}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
        assert_eq!(t.git(&["worktree", "list", "--porcelain"]), listed);
        assert_eq!(t.git(&["branch", "--list"]), branched);
        assert!(!t.root().join("repo.worktrees").exists(), "{args:?}");
        assert!(snapshot(&t.repo) == repo, "{args:?}: repo changed");
        assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
    }
    // A short identifier fits: git runs (the hooks fire) and it is made.
    let out = run(&mut t.wtenv(&["enter", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        marker.exists(),
        "the hooks never fire: the test proves nothing"
    );
}

/// A directory where a lock file goes was refused with the hint to
/// `rm` it, which fails on a directory. The hint now names the command
/// for what is there (`rmdir` when empty, `rm -r` when it holds
/// anything), and that command, run as given, mends it.
#[test]
fn a_lock_planted_as_a_directory_is_refused_with_the_command_that_removes_it() {
    // Each lock, with a command that takes it: `allocate` of a new
    // service probes (the probe lock), `trust` writes the trust list.
    let locks: [(&str, &[&str]); 3] = [
        ("registry.lock", &["allocate", "--service", "api"]),
        ("probe.lock", &["allocate", "--service", "api"]),
        ("trust.lock", &["trust"]),
    ];
    for (name, args) in locks {
        for holds in [None, Some("left")] {
            let t = with_registry();
            let path = t.state_dir().join(name);
            if path.exists() {
                std::fs::remove_file(&path).unwrap();
            }
            std::fs::create_dir(&path).unwrap();
            if let Some(file) = holds {
                std::fs::write(path.join(file), "").unwrap();
            }
            let quoted = format!("'{}'", path.display());
            let hint = match holds {
                None => format!(
                    "something other than wtenv put it there: remove it (rmdir {quoted}), wtenv makes a new one"
                ),
                Some(_) => format!(
                    "something other than wtenv put it there: see what it holds, then remove it (rm -r {quoted}); wtenv makes a new one"
                ),
            };
            let out = run_bounded(&mut t.wtenv(args), LIMIT);
            let case = format!("{name} holding {holds:?}");
            assert_eq!(out.code, Some(2), "{case}: {out}");
            // Said of the file the lock serves: `trust` uses the trust list.
            let (what, file) = match name {
                "trust.lock" => ("trust list", t.state_dir().join("trust.json")),
                _ => ("registry", t.registry_path()),
            };
            assert_eq!(
                out.stderr,
                format!(
                    "error: {what} {} cannot be used: its lock file {}: it is a directory, not a regular file\nhint: {hint}\n",
                    file.display(),
                    path.display()
                ),
                "{case}"
            );
            // The command as the hint gives it.
            let command = &hint[hint.find(" (").unwrap() + 2..hint.find(')').unwrap()];
            let status = std::process::Command::new("sh")
                .args(["-c", command])
                .status()
                .unwrap();
            assert!(status.success(), "{case}: {command} failed");
            let out = run_bounded(&mut t.wtenv(args), LIMIT);
            assert_eq!(out.code, Some(0), "{case}: once mended: {out}");
        }
    }
}

/// The trust list's hint said `rm` it, which fails on a directory
/// planted there. Its command is now the one for what is there, as for
/// a lock file, and run as given it mends the list: `trust` then works.
#[test]
fn a_trust_list_planted_as_a_directory_is_refused_with_the_command_that_removes_it() {
    for holds in [None, Some("left")] {
        let t = with_registry();
        let path = t.state_dir().join("trust.json");
        std::fs::create_dir(&path).unwrap();
        if let Some(file) = holds {
            std::fs::write(path.join(file), "").unwrap();
        }
        let command = match holds {
            None => format!("rmdir '{}'", path.display()),
            Some(_) => format!("rm -r '{}'", path.display()),
        };
        let out = run_bounded(&mut t.wtenv(&["trust"]), LIMIT);
        assert_eq!(out.code, Some(2), "{holds:?}: {out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: trust list {} cannot be used: it is a directory, not a regular file\n\
                 hint: wtenv never rewrites it; inspect it, or remove it to trust nothing: {command}\n",
                path.display()
            ),
            "{holds:?}"
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
            .unwrap();
        assert!(status.success(), "{holds:?}: {command} failed");
        let out = run_bounded(&mut t.wtenv(&["trust"]), LIMIT);
        assert_eq!(out.code, Some(0), "{holds:?}: once mended: {out}");
    }
}
