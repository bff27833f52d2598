//! The worktree's own git dir, where a downloaded tree can plant
//! anything: a `.git` or `commondir` that is no regular file, leads under
//! `/proc`, `/sys` or `/dev`, names a foreign directory or holds secrets;
//! a stamp planted as a link.

use std::path::Path;

use super::{LIMIT, Outside, env_bounded, mkfifo, with_registry};
use crate::support::{TestEnv, run, run_bounded, snapshot};

/// A downloaded tree whose `.git/commondir` is a link to a file of the
/// user's: the error named the unresolvable common dir by the file's
/// text, so every `cd` printed `/proc/self/environ` or a credentials
/// file. It names the `commondir` file instead, and prints none of it.
#[test]
fn a_planted_commondir_never_prints_what_it_holds() {
    let t = TestEnv::new();
    let credentials = t.root().join("credentials");
    std::fs::write(&credentials, "https://alice:TOKEN-IN-FILE@example.com\n").unwrap();
    let tree = t.root().join("downloaded");
    std::fs::create_dir_all(tree.join(".git")).unwrap();
    let pointer = tree.join(".git/commondir");
    for target in [Path::new("/proc/self/environ"), &credentials] {
        let _ = std::fs::remove_file(&pointer);
        std::os::unix::fs::symlink(target, &pointer).unwrap();
        for args in [&["env"][..], &["env", "--hook"], &["list"]] {
            let out = run_bounded(t.wtenv_in(&tree, args).env("SECRET", "TOKEN-IN-ENV"), LIMIT);
            assert_ne!(out.code, Some(0), "{target:?} {args:?}: {out}");
            assert!(
                !out.stderr.contains("TOKEN-IN"),
                "{target:?} {args:?}: {out}"
            );
            assert!(
                !out.stdout.contains("TOKEN-IN"),
                "{target:?} {args:?}: {out}"
            );
            assert!(
                out.stderr.contains(&format!(
                    "could not resolve the git common dir {} names",
                    pointer.display()
                )),
                "{target:?} {args:?}: {out}"
            );
        }
    }
}

/// A `.git/commondir` that names nothing (it holds `x`): the error gave
/// the system's "No such file or directory" and nothing to do. The hint
/// says what the file should hold and what mends a moved repository's
/// worktrees (never what the file holds: see above).
#[test]
fn a_commondir_that_names_nothing_says_what_to_check() {
    let t = TestEnv::new();
    let pointer = t.repo.join(".git/commondir");
    std::fs::write(&pointer, "x\n").unwrap();
    let out = env_bounded(&t, &["env"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            Some(1),
            &*format!(
                "error: could not resolve the git common dir {} names: No such file or directory (os error 2)\n\
                 hint: it should hold the path of the repository's git directory, relative to the directory it is in \
                 (git writes ../.. in a linked worktree's): check it; if the repository was moved, \
                 run 'git worktree repair' in its main worktree\n",
                pointer.display()
            )
        ),
        "{out}"
    );
    assert!(t.allocations().is_empty());
}

/// A `.git` that is a FIFO or a link to `/dev/zero` (a downloaded tree can
/// hold anything) hung or read without end every prompt hook run in it.
#[test]
fn a_dot_git_that_is_not_a_regular_file_hangs_nothing() {
    let t = TestEnv::new();
    for plant in ["fifo", "/dev/zero"] {
        let dir = t.repo.join(format!("sub-{}", plant.replace('/', "_")));
        std::fs::create_dir_all(&dir).unwrap();
        let dot_git = dir.join(".git");
        if plant == "fifo" {
            mkfifo(&dot_git);
        } else {
            std::os::unix::fs::symlink(plant, &dot_git).unwrap();
        }
        for args in [&["env", "--hook"][..], &["env"]] {
            let out = run_bounded(&mut t.wtenv_in(&dir, args), LIMIT);
            assert_eq!(out.code, Some(1), "{plant} {args:?}: {out}");
            let kind = match plant {
                "fifo" => "a FIFO",
                _ => "a character device",
            };
            assert!(
                out.stderr.contains(&format!(
                    "could not read {}: it is {kind}, not a regular file",
                    dot_git.display()
                )),
                "{plant} {args:?}: {out}"
            );
        }
    }
}

/// A `.git` naming `/proc/self` (or `/proc/thread-self`, or `/dev/fd/0`)
/// resolves to another directory in every process: the registry recorded
/// the repository as `/proc/18536`, then `/proc/18537`, and every `env`
/// reserved another port. A git dir or common dir under `/proc`, `/sys`
/// or `/dev`, however it is named (`.git` file or link, `commondir`), is
/// refused with exit 1 naming the file, and nothing is reserved. So is one
/// whose name only passes through them: `/proc/self/cwd` resolves to the
/// current directory, outside `/proc`, and made each subdirectory `cd`
/// entered a repository of its own, with a port of its own; a link to it
/// did the same.
#[test]
fn a_git_dir_under_proc_sys_or_dev_is_refused_and_reserves_nothing() {
    let t = with_registry();
    let registry = std::fs::read(t.registry_path()).unwrap();
    let via = t.root().join("via-link");
    std::os::unix::fs::symlink("/proc/self/cwd", &via).unwrap();
    let via = via.to_str().unwrap();
    let plants = [
        ("file", "/proc/self", "/proc/"),
        ("file", "/proc/thread-self", "/proc/"),
        ("file", "/dev/fd/0", "/dev/"),
        ("file", "/sys/kernel", "/sys/kernel"),
        ("link", "/proc/self", "/proc/"),
        ("commondir", "/proc/self", "/proc/"),
        ("file", "/proc/self/cwd", "/proc/self/cwd"),
        ("link", "/proc/self/cwd", "/proc/self/cwd"),
        ("commondir", "/proc/self/cwd", "/proc/self/cwd"),
        ("file", via, "/proc/self/cwd"),
        ("commondir", via, "/proc/self/cwd"),
    ];
    for (i, (how, target, shown)) in plants.into_iter().enumerate() {
        let dir = t.root().join(format!("tree-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("wtenv.toml"), "[services.web]\n").unwrap();
        let dot_git = dir.join(".git");
        let named_by = match how {
            "file" => {
                std::fs::write(&dot_git, format!("gitdir: {target}\n")).unwrap();
                dot_git.clone()
            }
            "link" => {
                std::os::unix::fs::symlink(target, &dot_git).unwrap();
                dot_git.clone()
            }
            _ => {
                std::fs::create_dir_all(&dot_git).unwrap();
                std::fs::write(dot_git.join("commondir"), format!("{target}\n")).unwrap();
                dot_git.join("commondir")
            }
        };
        // From a subdirectory too: `/proc/self/cwd` names it there.
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        for (cwd, args) in [
            (&dir, &["env"][..]),
            (&dir, &["env", "--hook"]),
            (&dir, &["list"]),
            (&sub, &["env"]),
        ] {
            let out = run_bounded(&mut t.wtenv_in(cwd, args), LIMIT);
            assert_eq!(out.code, Some(1), "{how} {target} {args:?}: {out}");
            assert!(
                out.stderr
                    .starts_with(&format!("error: cannot use {shown}"))
                    && out
                        .stderr
                        .contains(&format!(": {} names it, and ", named_by.display()))
                    && out.stderr.contains("\nhint: "),
                "{how} {target} {args:?}: {out}"
            );
            assert!(!out.stdout.contains("WEB_PORT"), "{out}");
        }
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            registry,
            "{how} {target}: the registry was written"
        );
    }
}

/// `env` rewrites the worktree's stamp when its ports change (direnv
/// watches it). Planted as a link, or as a hard link, to a user's file, the
/// stamp must not be written through: entering the tree would overwrite
/// that file. Nor into a FIFO. Each time a warning says what direnv then
/// misses, and how to remove what is there.
#[test]
fn a_stamp_planted_as_a_link_or_hard_link_is_never_written_through() {
    let t = TestEnv::new();
    let outside = Outside::new(&t);
    let stamp = t.repo.join(".git/wtenv.stamp");
    for (kind, why) in [
        ("symlink", "it is a symbolic link"),
        ("hard link", "it has 2 hard links"),
        ("fifo", "it is a FIFO"),
    ] {
        let _ = std::fs::remove_file(&stamp);
        match kind {
            "symlink" => std::os::unix::fs::symlink(&outside.victim, &stamp).unwrap(),
            "hard link" => std::fs::hard_link(&outside.victim, &stamp).unwrap(),
            _ => mkfifo(&stamp),
        }
        // A change of ports, so the stamp is due: allocate, then release.
        for args in [&["env"][..], &["release"]] {
            let out = env_bounded(&t, args);
            assert_eq!(out.code, Some(0), "{kind} {args:?}: {out}");
            let warning = format!("warning: did not write {}: {why}", stamp.display());
            let consequence = "; direnv will not reload this worktree's environment when its ports change\n\
                 hint: something other than wtenv put it there: remove it (rm '";
            assert!(
                out.stderr.contains(&warning) && out.stderr.contains(consequence),
                "{kind} {args:?}: {out}"
            );
            assert!(
                out.stderr.contains(&format!(
                    "rm '{}'), wtenv makes a new one\n",
                    stamp.display()
                )),
                "{kind} {args:?}: {out}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&outside.victim).unwrap(),
            "the user's file\n",
            "{kind}: the stamp was written through"
        );
    }
    // The stamp is written again once it is a file of ours.
    std::fs::remove_file(&stamp).unwrap();
    let out = env_bounded(&t, &["env"]);
    assert_eq!(out.code, Some(0), "{out}");
    let written = std::fs::symlink_metadata(&stamp).unwrap();
    assert!(written.is_file(), "{written:?}");
}

/// A `.git` file (or a `.git` link) in a downloaded tree can name any
/// directory as the worktree's git dir. `env` still exports ports there,
/// but writes nothing into that directory, and a FIFO planted where the
/// worktree's record would be hangs nothing.
#[test]
fn a_dot_git_naming_a_foreign_directory_gets_nothing_written_there() {
    let t = TestEnv::new();
    let outside = Outside::new(&t);
    mkfifo(&outside.dir.join("wtenv.json"));
    let before = snapshot(&outside.dir);
    let by_file = t.root().join("by-file");
    std::fs::create_dir_all(&by_file).unwrap();
    std::fs::write(
        by_file.join(".git"),
        format!("gitdir: {}\n", outside.dir.display()),
    )
    .unwrap();
    let by_link = t.root().join("by-link");
    std::fs::create_dir_all(&by_link).unwrap();
    std::os::unix::fs::symlink(&outside.dir, by_link.join(".git")).unwrap();
    for tree in [&by_file, &by_link] {
        for args in [&["env"][..], &["release"], &["env"]] {
            let out = run_bounded(&mut t.wtenv_in(tree, args), LIMIT);
            assert_eq!(out.code, Some(0), "{} {args:?}: {out}", tree.display());
        }
        let out = run_bounded(&mut t.wtenv_in(tree, &["env"]), LIMIT);
        assert!(out.stdout.contains("export PORT="), "{out}");
    }
    assert_eq!(
        snapshot(&outside.dir),
        before,
        "written into the foreign directory"
    );
    assert!(!outside.absent.exists());
}

/// A git dir that came with a downloaded archive may set `core.fsmonitor`
/// to any command, and git runs it whenever it refreshes an index:
/// `create`'s `git worktree add` ran it twice, `remove`'s dirty check
/// again. wtenv's git runs without it.
#[test]
fn a_planted_fsmonitor_command_never_runs() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    t.write_config("[services.web]\n");
    let marker = t.root().join("fsmonitor-ran");
    let monitor = t.root().join("monitor.sh");
    let script = format!("#!/bin/sh\necho \"$@\" >>'{}'\nexit 1\n", marker.display());
    std::fs::write(&monitor, script).unwrap();
    std::fs::set_permissions(&monitor, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.git(&["config", "core.fsmonitor", monitor.to_str().unwrap()]);
    // The premise: git itself runs it.
    t.git(&["status", "--porcelain"]);
    assert!(
        marker.exists(),
        "git ran no core.fsmonitor: this test shows nothing"
    );
    std::fs::remove_file(&marker).unwrap();

    let create = [
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "fsm",
        "--ports",
    ];
    for args in [
        &create[..],
        &["list"],
        &["remove", "--delete-branch", "fsm"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
        let ran = std::fs::read_to_string(&marker).unwrap_or_default();
        assert_eq!(ran, "", "{args:?} ran core.fsmonitor: {out}");
    }
}
