//! `create` all or nothing: a refusal (a held port, a taken branch or
//! path, no git, a hostile identifier or base, a branch git refuses) or a
//! failure half way (git, a signal) leaves nothing behind.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::Duration;

use super::{assert_nothing_of, branch_exists, create, default_path, listed_by_git, snapshot};
use crate::support::{HttpServer, TestEnv, Tmpfs, run};

#[test]
fn create_ports_fails_fast_on_a_held_port_with_the_seeds_message_and_leaves_nothing() {
    let t = TestEnv::new();
    let _server = HttpServer::start(&t.root(), t.ports.start);
    let before = snapshot(&t);
    let out = create(&t, "held", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    let expected = format!(
        "Port conflict detected in feature range {}.\n\
         Ports free in registry but occupied on system: {}.\n\
         Run 'wtenv validate --verify-ports' to detect and clean stale allocations.\n",
        t.ports.range(),
        t.ports.start
    );
    assert!(out.stderr.starts_with(&expected), "{out}");
    assert!(
        out.stderr
            .contains(&format!("port {}: pid {}", t.ports.start, _server.pid())),
        "the holder is named: {out}"
    );
    assert_nothing_of(&t, "held", "after a port conflict");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn create_refuses_an_existing_branch_path_unknown_base_or_no_repository_touching_nothing() {
    let t = TestEnv::new();
    t.git(&["branch", "feature/taken"]);
    std::fs::create_dir_all(default_path(&t, "feature", "occupied")).unwrap();
    let before = snapshot(&t);
    for (id, extra, says) in [
        ("taken", &[][..], "already exists"),
        ("occupied", &[][..], "already exists"),
        (
            "nobase",
            &["--branch", "no-such-branch"][..],
            "names no commit",
        ),
        ("nopurpose", &[][..], ""),
    ] {
        let out = if id == "nopurpose" {
            run(&mut t.wtenv(&["create", "--purpose", "nope", "--identifier", id]))
        } else {
            create(&t, id, extra)
        };
        assert_eq!(out.code, Some(1), "{id}: {out}");
        assert!(out.stderr.contains(says), "{id}: {out}");
        assert_eq!(snapshot(&t), before, "{id}");
    }
    let outside = t.root().join("not-a-repo");
    std::fs::create_dir(&outside).unwrap();
    let before = snapshot(&t);
    let out = run(&mut t.wtenv_in(
        &outside,
        &["create", "--purpose", "feature", "--identifier", "x"],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("not inside a git worktree"), "{out}");
    assert_eq!(snapshot(&t), before);
}

/// Without git on PATH (a minimal container, a sandbox), the commands
/// that run it said only "No such file or directory" of `git ...`; they
/// say what is missing, and touch nothing. `env` needs no git.
#[test]
fn without_git_the_commands_that_need_it_say_so_touching_nothing() {
    let t = TestEnv::new();
    let bin = t.root().join("bin-without-git");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let before = snapshot(&t);
    for args in [
        &["list"][..],
        &["create", "--purpose", "feature", "--identifier", "x"],
    ] {
        let out = run(t.wtenv(args).env("PATH", &bin));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with("error: could not run git ")
                && out.stderr.ends_with(
                    ": No such file or directory (os error 2)\nhint: install git, or put it on PATH\n"
                ),
            "{args:?}: {out}"
        );
        assert_eq!(snapshot(&t), before, "{args:?}");
    }
    let out = run(t.wtenv(&["env"]).env("PATH", &bin));
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn create_rolls_back_when_git_fails_half_way() {
    // A failing post-checkout hook: git has made the branch, the directory
    // and the .git/worktrees entry, then exits 1. create undoes all three.
    let t = TestEnv::new();
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\necho hook refuses >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = snapshot(&t);
    let out = create(&t, "hooked", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("hook refuses"),
        "git's own words: {out}"
    );
    assert!(
        out.stderr.ends_with(
            "hint: git's post-checkout hook refused the new worktree (its words are above); \
             nothing was left behind (the worktree, its branch and its ports were rolled \
             back); fix what the hook checks, then run the command again\n"
        ),
        "{out}"
    );
    assert_nothing_of(&t, "hooked", "after git failed");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn create_rolls_back_an_invalid_config_of_its_base_and_names_it_there() {
    // The branch the worktree is made from has a config wtenv refuses: the
    // error names the file on that branch (its copy in the checkout is
    // gone with the rollback) and says nothing was created.
    let t = TestEnv::new();
    t.git(&["checkout", "-q", "-b", "bad"]);
    t.write_config("\n[allocation]\nskip_occupied = \"yes\"\n");
    t.git(&["commit", "-q", "-am", "bad config"]);
    t.git(&["checkout", "-q", "main"]);
    let before = snapshot(&t);
    let out = create(&t, "x", &["--branch", "bad", "--ports"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            Some(1),
            "error: invalid config wtenv.toml:5:17 committed on bad, which the new worktree was \
             made from: allocation.skip_occupied: expected a boolean, got string \"yes\"; \
             nothing was created (the new worktree was rolled back)\n\
             hint: fix line 5 (`skip_occupied = \"yes\"`) of wtenv.toml on bad and commit it (or \
             make the worktree from another base, --branch), then run the command again\n"
        ),
        "{out}"
    );
    assert_nothing_of(&t, "x", "after the base's config was refused");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn create_rolls_back_the_worktree_when_the_new_checkout_has_no_such_purpose() {
    // The base branch's wtenv.toml lacks the purpose: the worktree is made,
    // then its ports cannot be: nothing is kept.
    let t = TestEnv::new();
    t.write_config("bugfix = \"1100-1101\"\n");
    t.git(&["commit", "-q", "-am", "bugfix purpose"]);
    t.git(&["branch", "old", "HEAD~1"]);
    let before = snapshot(&t);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "bugfix",
        "--identifier",
        "b",
        "--branch",
        "old",
        "--ports",
    ]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("bugfix"), "{out}");
    let path = default_path(&t, "bugfix", "b");
    assert!(!path.exists() && !branch_exists(&t, "bugfix/b"), "{out}");
    assert_eq!(snapshot(&t), before);
}

/// SIGINT at 16 moments spread over a whole create (before wtenv catches
/// it, during git, during allocation, after): wtenv either finished (exit
/// 0, everything there) or died of the signal with nothing left. Odd rounds
/// signal wtenv's whole process group, as a terminal's Ctrl-C does (git
/// runs in a group of its own, so it finishes its step); some even rounds
/// send SIGTERM instead.
#[test]
fn sigint_or_sigterm_at_any_moment_of_create_leaves_everything_or_nothing() {
    let t = TestEnv::new();
    // A slow post-checkout hook widens the window in the middle of git.
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\nsleep 0.05\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The delays span one whole create on this machine (measured), from 0
    // to a little past its end, so a slow machine is covered as well.
    let start = std::time::Instant::now();
    assert_eq!(create(&t, "calibrate", &["--ports"]).code, Some(0));
    let whole = start.elapsed().as_millis() as u64;
    assert_eq!(
        run(&mut t.wtenv(&["remove", "--delete-branch", "calibrate"])).code,
        Some(0)
    );
    let (mut interrupted, mut finished, mut rolled_back) = (0, 0, 0);
    for round in 0..16u64 {
        let delay_ms = whole * round / 13;
        let id = format!("sig{round}");
        let round = round as usize;
        let mut cmd = t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            &id,
            "--ports",
        ]);
        cmd.process_group(0)
            .env("WTENV_LOG", "wtenv=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Every fourth round is a SIGTERM (wtenv dies of it likewise).
        let expected = if round % 4 == 2 { 15 } else { 2 };
        if round % 2 == 1 {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT);
        } else if expected == 15 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        } else {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context = format!("round {round} ({delay_ms} ms): {:?} {stderr}", out.status);
        match (out.status.code(), out.status.signal()) {
            (Some(0), _) => {
                finished += 1;
                let path = default_path(&t, "feature", &id);
                assert!(path.is_dir() && listed_by_git(&t, &path), "{context}");
                assert!(branch_exists(&t, &format!("feature/{id}")), "{context}");
                assert!(
                    t.allocations().iter().any(|(_, _, w)| w == &path),
                    "{context}"
                );
                // Keep the port block free for the next rounds.
                let rm = run(&mut t.wtenv(&["remove", "--delete-branch", &id]));
                assert_eq!(rm.code, Some(0), "{rm}");
            }
            (None, Some(sig)) if sig == expected => {
                interrupted += 1;
                rolled_back += usize::from(stderr.contains("rolled back"));
                assert_nothing_of(&t, &id, &context);
            }
            _ => panic!("neither success nor death by the signal sent: {context}"),
        }
    }
    eprintln!("{interrupted} interrupted ({rolled_back} after a change), {finished} finished");
    assert!(
        rolled_back > 0,
        "no round was interrupted mid-create ({interrupted} interrupted, {finished} finished)"
    );
    // Empty parents the interrupted rounds made are gone too.
    let root = t.root().join("repo.worktrees");
    assert!(
        !root.exists() || std::fs::read_dir(&root).unwrap().next().is_none(),
        "leftovers in {}",
        root.display()
    );
}

#[test]
fn hostile_identifiers_and_bases_are_refused_touching_and_running_nothing() {
    let t = TestEnv::new();
    let long = "a".repeat(300);
    let before = snapshot(&t);
    let hostile = [
        "../x",
        "a b",
        "$(touch p)",
        "`touch p`",
        "-rf",
        "a\nb",
        long.as_str(),
        "ünï",
        "x;touch p",
        "a/../../b",
        ".hidden",
        "",
    ];
    for id in hostile {
        let out = run(&mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            &format!("--identifier={id}"),
            "--ports",
        ]));
        assert_eq!(out.code, Some(1), "identifier {id:?}: {out}");
        assert!(out.stderr.contains("invalid identifier"), "{id:?}: {out}");
        // `ü` is a letter, but not one an identifier may hold.
        assert!(
            out.stderr.contains("hint: use 1-64 ASCII letters, digits"),
            "{id:?}: {out}"
        );
        assert_eq!(snapshot(&t), before, "identifier {id:?}");
    }
    for base in hostile {
        let out = run(&mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "ok",
            &format!("--branch={base}"),
            "--ports",
        ]));
        assert_eq!(out.code, Some(1), "base {base:?}: {out}");
        assert_eq!(snapshot(&t), before, "base {base:?}");
    }
    // And through `enter` too.
    let out = run(&mut t.wtenv(&["enter", "--", "$(touch p)"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(snapshot(&t), before);
    assert!(!t.repo.join("p").exists() && !t.root().join("p").exists());
}

#[test]
fn a_branch_template_git_refuses_fails_touching_nothing() {
    let t = TestEnv::new();
    t.write_config("[worktrees]\nbranch = \"{identifier}.lock\"\n");
    t.git(&["commit", "-q", "-am", "bad template"]);
    let before = snapshot(&t);
    let out = create(&t, "x", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("not a valid branch name"), "{out}");
    assert_eq!(snapshot(&t), before);
}

/// A template that makes the branch `HEAD` (from the identifier, or as
/// it is): `check-ref-format` takes `refs/heads/HEAD`, so a branch `HEAD`
/// was made, `worktree add` read `HEAD` as a commit and left the worktree
/// detached, `create` said "on branch HEAD", and every git command then
/// warned that `HEAD` is ambiguous. git's own rule for a branch's name
/// refuses it, and so does `create`, before git runs.
#[test]
fn a_branch_template_making_head_is_refused_touching_nothing() {
    let t = TestEnv::new();
    for (template, identifier, says) in [
        (
            "{identifier}",
            "HEAD",
            "[worktrees] branch \"{identifier}\" makes \"HEAD\", which is not a valid branch name, from purpose \"feature\" and identifier \"HEAD\"\nhint: choose another purpose or identifier, or change [worktrees] branch\n",
        ),
        (
            "HEAD",
            "x",
            "worktrees.branch: makes \"HEAD\", which is not a valid branch name\n",
        ),
    ] {
        t.write_config(&format!("[worktrees]\nbranch = \"{template}\"\n"));
        t.git(&["commit", "-q", "-am", "HEAD template"]);
        let before = snapshot(&t);
        let out = create(&t, identifier, &["--ports"]);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains(says), "{out}");
        assert_eq!(snapshot(&t), before);
        assert!(!branch_exists(&t, "HEAD"), "{template}");
    }
}

/// A branch template that makes a part of the name (between slashes)
/// longer than a file name may be: git failed with its own "File name too
/// long" and no hint. The error says so, and the hint names the key to
/// shorten.
#[test]
fn a_branch_template_making_a_part_too_long_names_the_key_to_shorten() {
    let t = TestEnv::new();
    let long = "a".repeat(300);
    t.write_config(&format!(
        "[worktrees]\nbranch = \"{{purpose}}/{long}-{{identifier}}\"\n"
    ));
    t.git(&["commit", "-q", "-am", "long template"]);
    let before = snapshot(&t);
    let out = create(&t, "x", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "worktrees.branch: makes \"feature/{long}-x\", a part of which (between slashes) is 302 bytes long; \
             git keeps each part as a file name, at most 250 bytes\n"
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("hint: shorten [worktrees] branch in wtenv.toml"),
        "{out}"
    );
    assert_eq!(snapshot(&t), before);
}

/// Git keeps a branch as a file and the branches under its name as a
/// directory: `feature/zz` cannot be made beside `feature/zz/deeper`, nor
/// under `feature`. Git's own error ("cannot lock ref ... exists; cannot
/// create ...") came with no hint; the clash is named, with a way out
/// that works (another identifier only where the identifier is part of
/// the clashing name), and nothing is made.
#[test]
fn a_branch_that_would_clash_with_a_directory_of_branches_is_named_touching_nothing() {
    let t = TestEnv::new();
    let refused = |branch: &str, clash: &str| {
        format!(
            "error: branch \"{branch}\" cannot be made: branch \"{clash}\" exists \
             (a branch name cannot also be a directory of branches)\n"
        )
    };
    let other_id = "hint: choose another identifier, or another name for the new worktrees' \
                    branches ([worktrees] branch in wtenv.toml)\n";
    t.git(&["branch", "feature/zz/deeper"]);
    let before = snapshot(&t);
    for args in [
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "zz",
            "--ports",
        ][..],
        &["enter", "zz"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            format!("{}{other_id}", refused("feature/zz", "feature/zz/deeper")),
            "{args:?}"
        );
        assert_eq!(snapshot(&t), before, "{args:?}");
    }
    // Packed, as `git gc` leaves it: the same. Git's refused update-ref
    // leaves the empty directory it made for its lock file (`git branch
    // feature/zz` does too), which git ignores and `git pack-refs` removes.
    t.git(&["pack-refs", "--all"]);
    let before = snapshot(&t);
    let out = create(&t, "zz", &[]);
    assert_eq!(
        out.stderr,
        format!("{}{other_id}", refused("feature/zz", "feature/zz/deeper")),
    );
    let mut after = snapshot(&t);
    after.files.remove(&t.repo.join(".git/refs/heads/feature"));
    assert_eq!(after, before);
    t.git(&["branch", "-D", "-q", "feature/zz/deeper"]);

    // A branch named like the purpose: every identifier clashes with it.
    t.git(&["branch", "feature"]);
    let before = snapshot(&t);
    let out = create(&t, "zz", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "{}hint: rename branch \"feature\" (git branch -m 'feature' NEW), or choose another \
             name for the new worktrees' branches ([worktrees] branch in wtenv.toml)\n",
            refused("feature/zz", "feature")
        )
    );
    assert_eq!(snapshot(&t), before);
    t.git(&["branch", "-D", "-q", "feature"]);

    // The identifier inside the clashing name: another one helps.
    t.write_config("[worktrees]\nbranch = \"{purpose}/{identifier}/wip\"\n");
    t.git(&["commit", "-q", "-am", "wip branches"]);
    t.git(&["branch", "feature/yy"]);
    let before = snapshot(&t);
    let out = create(&t, "yy", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!("{}{other_id}", refused("feature/yy/wip", "feature/yy"))
    );
    assert_eq!(snapshot(&t), before);
}

/// A git step that fails past wtenv's checks (here `git worktree add` on
/// a full disk) gave git's words and no hint: the hint now says that
/// nothing was left and what to do.
#[test]
fn a_git_step_failing_on_a_full_disk_says_nothing_was_created_and_what_to_do() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("full"), "16k");
    disk.fill();
    let path = disk.path().join("wt");
    let before = snapshot(&t);
    let out = create(&t, "full", &["--ports", "--path", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: git worktree add --quiet -- {} feature/full failed: ",
            path.display()
        )) && out.stderr.contains("No space left on device"),
        "{out}"
    );
    assert!(
        out.stderr.ends_with(
            "\nhint: nothing was created (no worktree, branch or port); free space on the file \
             system git names, or make the worktree on another one (--path)\n"
        ),
        "{out}"
    );
    assert!(!branch_exists(&t, "feature/full") && !listed_by_git(&t, &path));
    assert_eq!(snapshot(&t), before);
}

/// The branch step failing for a reason of git's own (a repository on a
/// read-only file system): git's words, and the hint that nothing was
/// created.
#[test]
fn a_branch_step_git_fails_says_nothing_was_created() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("ro"), "4m");
    let repo = disk.path().join("repo");
    t.init_repo(&repo);
    t.git_in(&repo, &["add", "wtenv.toml"]);
    t.git_in(&repo, &["commit", "-q", "-m", "config"]);
    disk.remount_read_only();
    let out = run(&mut t.wtenv_in(
        &repo,
        &["create", "--purpose", "feature", "--identifier", "ro"],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.starts_with("error: git update-ref ")
            && out.stderr.contains("cannot lock ref")
            && out.stderr.ends_with(
                "\nhint: nothing was created (no worktree, branch or port); git's words say \
                 why: mend what they name, then run the command again\n"
            ),
        "{out}"
    );
}

/// A `--path` where no directory can be made (under a file, in `/proc`)
/// is refused with what to do instead, the tree as it was. The errors had
/// no hint (found by a QA pass).
#[test]
fn create_at_a_path_that_cannot_be_made_says_where_else_touching_nothing() {
    let t = TestEnv::new();
    let file = t.root().join("afile");
    std::fs::write(&file, "").unwrap();
    let before = snapshot(&t);
    for (path, said) in [
        (
            file.join("sub"),
            format!("error: {} is not a directory\n", file.display()),
        ),
        (
            "/proc/no-such-dir/x".into(),
            "error: could not create /proc/no-such-dir: ".to_owned(),
        ),
    ] {
        let out = run(&mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--path",
            path.to_str().unwrap(),
        ]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.starts_with(&said), "{out}");
        assert!(
            out.stderr.ends_with(
                "hint: choose another place for the worktree with --path DIR, or set [worktrees] root\n"
            ),
            "{out}"
        );
        assert_eq!(snapshot(&t), before, "{out}");
        assert!(!branch_exists(&t, "feature/x"), "{out}");
    }
}
