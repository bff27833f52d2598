//! A state directory wtenv cannot use: `create --ports` and `enter` refuse
//! it before git runs, with the registry's own error, and a lock file
//! planted as a directory is refused with the command that removes it.

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
            assert_eq!(
                out.stderr,
                format!(
                    "error: registry {} cannot be used: its lock file {}: it is a directory, not a regular file\nhint: {hint}\n",
                    t.registry_path().display(),
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
