//! `create` in a repository whose `.git/worktrees` entries hold what git
//! never writes (a FIFO, a directory, a huge file): refused before
//! anything is made, or rolled back without hanging or filling the
//! memory; never a hang only SIGKILL ends.

use std::path::Path;
use std::time::Duration;

use super::{assert_nothing_of, branch_exists, default_path, snapshot};
use crate::hostile::mkfifo;
use crate::support::{TestEnv, run_bounded};

/// A hang is a failure, not a stuck suite (a create takes well under 1 s).
const LIMIT: Duration = Duration::from_secs(30);

/// `create --purpose feature --identifier ID --ports`.
fn create(t: &TestEnv, id: &str) -> std::process::Command {
    t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        id,
        "--ports",
    ])
}

fn create_bounded(t: &TestEnv, id: &str) -> crate::support::Run {
    run_bounded(&mut create(t, id), LIMIT)
}

/// A FIFO at `gitdir`, `commondir` or `HEAD` of any entry, or at `locked`
/// of the one naming the new path, hung `git worktree add` (and a Ctrl-C
/// did not reach it: git runs in its own process group); a directory
/// there is no file git wrote either. `create` looks at them (never
/// opening one) and refuses before it makes anything: exit 1, the file
/// named, and how to remove it.
#[test]
fn a_planted_admin_file_that_is_no_regular_file_is_refused_making_nothing() {
    let t = TestEnv::new();
    let entry = t.repo.join(".git/worktrees/evil");
    for name in ["gitdir", "commondir", "HEAD", "locked"] {
        for kind in ["a FIFO", "a directory"] {
            let context = format!("{name} as {kind}");
            std::fs::create_dir_all(&entry).unwrap();
            // A whole entry for the path create makes, so that git reads
            // its `locked` too.
            let target = default_path(&t, "feature", "x").join(".git");
            std::fs::write(entry.join("gitdir"), format!("{}\n", target.display())).unwrap();
            std::fs::write(entry.join("commondir"), "../..\n").unwrap();
            std::fs::write(entry.join("HEAD"), "ref: refs/heads/main\n").unwrap();
            let planted = entry.join(name);
            let _ = std::fs::remove_file(&planted);
            match kind {
                "a FIFO" => mkfifo(&planted),
                _ => std::fs::create_dir(&planted).unwrap(),
            }
            let before = snapshot(&t);
            let out = create_bounded(&t, "x");
            let remove = match kind {
                "a FIFO" => "remove it (rm",
                _ => "remove it (rmdir",
            };
            assert_eq!(
                (out.code, out.stdout.as_str(), out.stderr.as_str()),
                (
                    Some(1),
                    "",
                    &*format!(
                        "error: cannot create a worktree: {}, which git reads on 'git worktree add', \
                         is {kind}, not a regular file; nothing was made\n\
                         hint: git writes it as a small regular file, so something else put it there: \
                         {remove} '{}'); 'git worktree prune' then forgets the entry if its worktree is gone\n",
                        planted.display(),
                        planted.display()
                    )
                ),
                "{context}: {out}"
            );
            // Nothing made: no branch, directory or reservation.
            assert_eq!(snapshot(&t), before, "{context}");
            std::fs::remove_dir_all(&entry).unwrap();
            assert_nothing_of(&t, "x", &context);
            assert!(!t.root().join("repo.worktrees").exists(), "{context}");
        }
    }
}

/// When `git worktree add` fails, the rollback deletes the half-made
/// `.git/worktrees` entry it finds for its path: one with an
/// `initializing` lock, named like its path. It read that `locked` whole:
/// a sparse 1.5 GB file planted there took 1.5 GB (a FIFO hung it). It
/// reads it as git's other small files, capped: such an entry is not
/// git's, and is left; the rest is rolled back, and the memory stays flat
/// (the peak of this test's children: wtenv and its gits).
#[test]
fn the_rollback_reads_a_planted_lock_capped_and_leaves_its_entry() {
    use nix::sys::resource::{UsageWho, getrusage};
    let t = TestEnv::new();
    // `git worktree add` fails at the checkout: the tree is gone.
    let tree = t.git(&["rev-parse", "HEAD^{tree}"]);
    let tree = tree.trim();
    std::fs::remove_file(
        t.repo
            .join(".git/objects")
            .join(&tree[..2])
            .join(&tree[2..]),
    )
    .unwrap();
    let entry = t.repo.join(".git/worktrees/feature-x7");
    std::fs::create_dir_all(&entry).unwrap();
    const HUGE: u64 = 1536 << 20;
    let locked = std::fs::File::create(entry.join("locked")).unwrap();
    locked.set_len(HUGE).unwrap();
    let out = create_bounded(&t, "x");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("unable to read tree")
            && out
                .stderr
                .contains("nothing was created (no worktree, branch or port)"),
        "{out}"
    );
    assert!(!branch_exists(&t, "feature/x"), "{out}");
    assert!(!default_path(&t, "feature", "x").exists(), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
    // The planted entry is left as it was.
    assert_eq!(std::fs::metadata(entry.join("locked")).unwrap().len(), HUGE);
    assert!(Path::new(&entry).is_dir());
    // Well under the file, whatever else this process ran: 1 GiB (the
    // peak is in KiB on Linux, in bytes on macOS).
    let peak = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    let limit = if cfg!(target_os = "macos") {
        1 << 30
    } else {
        1 << 20
    };
    assert!(
        peak < limit,
        "a child of this test peaked at {peak} (of {limit})"
    );
}

/// What no check beforehand sees (a FIFO planted while git runs, a hook
/// that never ends) hung `create` for good: git runs in its own process
/// group, so Ctrl-C never reached it, and wtenv waited for it. A second
/// Ctrl-C, or one SIGTERM, stops the git step (SIGTERM to its group, the
/// hook with it), then the rollback leaves nothing, and wtenv dies of the
/// signal.
#[test]
fn a_second_ctrl_c_or_a_sigterm_stops_a_git_step_that_never_ends() {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let t = TestEnv::new();
    let pids = t.root().join("hook.pid");
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 600\n",
            pids.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (id, signals, dies_of) in [
        ("term", &[Signal::SIGTERM][..], 15),
        ("twice", &[Signal::SIGINT, Signal::SIGINT][..], 2),
    ] {
        let _ = std::fs::remove_file(&pids);
        let mut child = create(&t, id)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let group = Pid::from_raw(child.id() as i32);
        assert!(
            crate::support::wait_for(LIMIT, || std::fs::read_to_string(&pids)
                .is_ok_and(|p| p.ends_with('\n'))),
            "{id}: the hook never ran"
        );
        let hook_pid: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for (i, &sig) in signals.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            // A terminal's Ctrl-C: wtenv's whole group (git has its own).
            killpg(group, sig).unwrap();
        }
        let ended = crate::support::wait_for(LIMIT, || child.try_wait().unwrap().is_some());
        if !ended {
            let _ = child.kill();
            let _ = kill(Pid::from_raw(hook_pid), Signal::SIGKILL);
            panic!("{id}: create still waits for git after {LIMIT:?}");
        }
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(dies_of), "{id}: {status:?}");
        assert_nothing_of(&t, id, id);
        // The hook, in git's group, was stopped with it.
        assert!(
            crate::support::wait_for(Duration::from_secs(5), || kill(
                Pid::from_raw(hook_pid),
                None
            )
            .is_err()),
            "{id}: the hook still runs"
        );
    }
    assert!(!t.root().join("repo.worktrees").exists());
}

/// `list` (`git worktree list`) and `remove` (`git worktree remove`, and
/// the listing of `--delete-branch`) hung alike on a FIFO at an entry's
/// `gitdir`, and a Ctrl-C ended wtenv but left git blocked on it. They
/// refuse it as `create` does, before git runs: exit 1, the file named,
/// the worktree and its ports left as they were.
#[test]
fn list_and_remove_refuse_a_planted_fifo_before_git_runs() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n");
    let made = create_bounded(&t, "keep");
    assert_eq!(made.code, Some(0), "{made}");
    let evil = t.repo.join(".git/worktrees/evil");
    std::fs::create_dir_all(&evil).unwrap();
    let planted = evil.join("gitdir");
    mkfifo(&planted);
    let before = snapshot(&t);
    let cases: [(&[&str], &str, &str, &str); 3] = [
        (
            &["list"],
            "list the worktrees",
            "git worktree list",
            "nothing was changed",
        ),
        (
            &["remove", "keep"],
            "remove a worktree",
            "git worktree remove",
            "nothing was removed",
        ),
        (
            &["remove", "--delete-branch", "keep"],
            "remove a worktree",
            "git worktree remove",
            "nothing was removed",
        ),
    ];
    for (args, what, step, nothing) in cases {
        let out = run_bounded(&mut t.wtenv(args), LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: cannot {what}: {}, which git reads on '{step}', is a FIFO, not a regular file; {nothing}\n",
                planted.display()
            )),
            "{args:?}: {out}"
        );
        assert_eq!(snapshot(&t), before, "{args:?}");
        assert!(default_path(&t, "feature", "keep").is_dir(), "{args:?}");
    }
    std::fs::remove_dir_all(&evil).unwrap();
    let removed = run_bounded(&mut t.wtenv(&["remove", "--delete-branch", "keep"]), LIMIT);
    assert_eq!(removed.code, Some(0), "{removed}");
    assert!(!branch_exists(&t, "feature/keep"));
}
