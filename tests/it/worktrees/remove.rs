//! `remove`: releases the ports (and deletes the branch if asked), and
//! refuses, removing nothing, what git or a live holder would lose.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{branch_exists, create, default_path, listed_by_git, snapshot};
use crate::support::{PyListener, Run, TestEnv, run, wait_for};

#[test]
fn remove_releases_the_ports_and_delete_branch_deletes_the_branch() {
    let t = TestEnv::new();
    for id in ["keep", "drop"] {
        assert_eq!(create(&t, id, &["--ports"]).code, Some(0));
    }
    let keep = default_path(&t, "feature", "keep");
    let out = run(&mut t.wtenv(&["remove", "keep"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("released port {}", t.ports.start)),
        "{out}"
    );
    assert!(!keep.exists() && !listed_by_git(&t, &keep));
    assert!(
        branch_exists(&t, "feature/keep"),
        "the branch stays by default"
    );
    assert!(t.allocations().iter().all(|a| a.2 != keep));

    // By path, with the branch.
    let drop = default_path(&t, "feature", "drop");
    let out = run(&mut t.wtenv(&["remove", drop.to_str().unwrap(), "--delete-branch"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!drop.exists() && !branch_exists(&t, "feature/drop"));
    assert!(t.allocations().is_empty());
}

/// `remove` of the last worktree in the default root (`repo.worktrees`)
/// left that directory behind, empty, as git does. It goes now, with the
/// worktree, and nothing else does: not while anything is in it, not
/// through a link, not a `--path` worktree's parent, not a root shared
/// by several repositories.
#[test]
fn remove_of_the_last_worktree_takes_its_empty_default_root_and_nothing_else() {
    let t = TestEnv::new();
    let root = t.root().join("repo.worktrees");
    for id in ["one", "two"] {
        assert_eq!(create(&t, id, &[]).code, Some(0));
    }
    let out = run(&mut t.wtenv(&["remove", "one"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(root.is_dir(), "another worktree is in it: {out}");
    let out = run(&mut t.wtenv(&["remove", "two"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!root.exists(), "{out}");
    assert_eq!(
        out.stderr,
        format!("removed worktree {}\n", root.join("feature-two").display())
    );

    // Anything else in it keeps it.
    assert_eq!(create(&t, "three", &[]).code, Some(0));
    std::fs::write(root.join("notes"), "mine").unwrap();
    let out = run(&mut t.wtenv(&["remove", "three"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(std::fs::read_to_string(root.join("notes")).unwrap(), "mine");
    std::fs::remove_file(root.join("notes")).unwrap();
    std::fs::remove_dir(&root).unwrap();

    // A link in its place stays, and so does the directory it names.
    let real = t.root().join("real-root");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &root).unwrap();
    assert_eq!(create(&t, "four", &[]).code, Some(0));
    assert!(real.join("feature-four").is_dir());
    let out = run(&mut t.wtenv(&["remove", "four"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        root.symlink_metadata().unwrap().is_symlink() && real.is_dir(),
        "{out}"
    );
    std::fs::remove_file(&root).unwrap();

    // A worktree placed with --path leaves its parent as it is.
    let elsewhere = t.root().join("elsewhere");
    let path = elsewhere.join("five");
    let made = create(&t, "five", &["--path", path.to_str().unwrap()]);
    assert_eq!(made.code, Some(0), "{made}");
    let out = run(&mut t.wtenv(&["remove", "five"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && elsewhere.is_dir(), "{out}");

    // A root whose template does not name the repository may be shared
    // by several: it stays, empty.
    t.write_config("[worktrees]\nroot = \"../pool\"\n");
    // A root of the config's own applies once trusted.
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let pool = t.root().join("pool");
    assert_eq!(create(&t, "six", &[]).code, Some(0));
    assert!(pool.join("feature-six").is_dir());
    let out = run(&mut t.wtenv(&["remove", "six"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(pool.is_dir(), "{out}");
}

/// A worktree on a detached HEAD has no branch to delete: `remove
/// --delete-branch` deleted none and said nothing of it. It says so now,
/// and succeeds.
#[test]
fn remove_delete_branch_of_a_detached_worktree_says_no_branch_was_deleted() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "det", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "det");
    t.git_in(&path, &["checkout", "-q", "--detach"]);
    let branches = t.git(&["for-each-ref", "--format=%(refname)", "refs/heads"]);
    let out = run(&mut t.wtenv(&["remove", "det", "--delete-branch"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty(), "{out}");
    assert!(
        out.stderr
            .ends_with("no branch deleted: the worktree was on a detached HEAD\n"),
        "{out}"
    );
    assert_eq!(
        t.git(&["for-each-ref", "--format=%(refname)", "refs/heads"]),
        branches,
        "a branch was deleted"
    );
    // Said only when a branch was asked for.
    assert_eq!(create(&t, "det2", &[]).code, Some(0));
    t.git_in(
        &default_path(&t, "feature", "det2"),
        &["checkout", "-q", "--detach"],
    );
    let out = run(&mut t.wtenv(&["remove", "det2"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains("no branch deleted"), "{out}");
}

/// `git branch -d` refuses an unmerged branch; asked after the worktree
/// was gone, that left the worktree removed and the command failed. It is
/// asked first now, by git's rule (merged into the branch's upstream when
/// it has one, else into HEAD).
#[test]
fn remove_delete_branch_of_an_unmerged_branch_removes_nothing() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "work", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "work");
    t.git_in(&path, &["commit", "-q", "--allow-empty", "-m", "unmerged"]);
    let registry = std::fs::read(t.registry_path()).unwrap();

    let out = run(&mut t.wtenv(&["remove", "work", "--delete-branch"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("error: branch feature/work is not fully merged; nothing was removed"),
        "{out}"
    );
    assert!(path.is_dir() && listed_by_git(&t, &path));
    assert!(branch_exists(&t, "feature/work"));
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);

    // Merged into its upstream though not into HEAD: git deletes it.
    t.git(&["branch", "published", "feature/work"]);
    t.git(&[
        "branch",
        "-q",
        "--set-upstream-to=published",
        "feature/work",
    ]);
    let out = run(&mut t.wtenv(&["remove", "work", "--delete-branch"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !branch_exists(&t, "feature/work"));
    assert!(t.allocations().is_empty());

    // --force deletes an unmerged one (git branch -D).
    assert_eq!(create(&t, "gone", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "gone");
    t.git_in(&path, &["commit", "-q", "--allow-empty", "-m", "unmerged"]);
    let out = run(&mut t.wtenv(&["remove", "gone", "--delete-branch", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !branch_exists(&t, "feature/gone"));
}

#[test]
fn remove_refuses_while_a_holder_lives_unless_forced() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "busy", &[]).code, Some(0));
    let path = default_path(&t, "feature", "busy");
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let held = run(&mut t.wtenv_in(&path, &["env", "--hold", &pid]));
    assert_eq!(held.code, Some(0), "{held}");
    let before = t.allocations();
    assert_eq!(before.len(), 1);

    // The holder in the words of `release` and `validate`.
    let (port, service, _) = &before[0];
    let named = format!("port {port} ({service}): held by pid {pid}: sleep 600\n");

    let out = run(&mut t.wtenv(&["remove", "busy"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("is in use:\n  {named}")),
        "{out}"
    );
    assert!(path.is_dir() && listed_by_git(&t, &path));
    assert_eq!(t.allocations(), before, "nothing released");

    let out = run(&mut t.wtenv(&["remove", "busy", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("warning: left running: {named}")),
        "{out}"
    );
    assert!(!path.exists());
    // The holder keeps running, and its port: no longer reserved, held
    // until it ends, as after `git worktree remove --force`.
    assert!(
        out.stderr.contains(&format!(
            "kept port {port} ({service}) while its holder runs: released when it ends\n"
        )),
        "{out}"
    );
    assert!(!out.stderr.contains("released port"), "{out}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the holder keeps running"
    );
    let data = t.registry();
    let kept = &data["allocations"][0];
    assert_eq!(kept["port"], *port, "{data}");
    assert_eq!(kept["reserved"], false, "{data}");
    assert_eq!(kept["holders"][0]["pid"], sleeper.id(), "{data}");
    // Another worktree gets another port meanwhile.
    assert_eq!(create(&t, "next", &["--ports"]).code, Some(0));
    let next = t.allocations();
    assert!(
        next.iter().all(|(p, _, w)| p != port || *w == path),
        "{next:?}"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // Gone, its holder's port is swept (`validate --fix`, or the next
    // allocation scanning the range).
    assert_eq!(run(&mut t.wtenv(&["validate", "--fix"])).code, Some(0));
    assert!(t.allocations().iter().all(|(p, _, _)| p != port));
}

#[test]
fn remove_refuses_a_dirty_worktree_keeping_its_ports_unless_forced() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "dirty", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "dirty");
    std::fs::write(path.join("wtenv.toml"), "# edited\n").unwrap();
    let before = t.allocations();
    let out = run(&mut t.wtenv(&["remove", "dirty"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("git refused"), "{out}");
    assert!(path.is_dir());
    assert_eq!(t.allocations(), before, "a refusal releases nothing");
    let out = run(&mut t.wtenv(&["remove", "dirty", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty());
}

#[test]
fn remove_never_removes_the_main_worktree() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["remove", t.repo.to_str().unwrap(), "--force"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("main worktree"), "{out}");
    assert!(t.repo.join(".git").is_dir());
}

/// A locked worktree is refused, and the refusal gives git's reason for
/// the lock (escaped like all text in messages), so that the user knows
/// why it was locked before unlocking it. The refusal said only "is
/// locked".
#[test]
fn remove_of_a_locked_worktree_names_the_lock_reason_and_removes_nothing() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "usb", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "usb");
    let shown = path.display();
    assert_eq!(t.allocations().len(), 1);

    let unlock = format!("git worktree unlock '{shown}'");
    let unlock_first = format!("unlock it first: {unlock}");
    // Git's own lock while `git worktree add` runs: wait, or unlock only
    // what a killed git left.
    let git_adding = format!(
        "git is still adding it: run this again once that is done; if git was killed while adding it: {unlock}"
    );
    for (reason, said, hint) in [
        (
            "on a USB disk",
            r#" (reason: "on a USB disk")"#,
            &unlock_first,
        ),
        (
            "\"mine\"\x1b[2J",
            r#" (reason: "\"mine\"\u{1b}[2J")"#,
            &unlock_first,
        ),
        ("", "", &unlock_first),
        ("initializing", r#" (reason: "initializing")"#, &git_adding),
    ] {
        let mut lock = vec!["worktree", "lock"];
        if !reason.is_empty() {
            lock.extend(["--reason", reason]);
        }
        lock.push(path.to_str().unwrap());
        t.git(&lock);
        let before = snapshot(&t);
        for force in [&[][..], &["--force"]] {
            let mut args = vec!["remove", "usb"];
            args.extend(force);
            let out = run(&mut t.wtenv(&args));
            assert_eq!(out.code, Some(1), "{reason:?}: {out}");
            assert!(
                out.stderr.contains(&format!(
                    "error: worktree {shown} is locked{said}; nothing was removed\n\
                     hint: {hint}\n"
                )),
                "{reason:?}: {out}"
            );
            assert!(!out.stderr.contains('\x1b'), "{out}");
            assert_eq!(snapshot(&t), before, "{reason:?}: nothing removed");
            assert!(branch_exists(&t, "feature/usb") && listed_by_git(&t, &path));
        }
        t.git(&["worktree", "unlock", path.to_str().unwrap()]);
    }
    let out = run(&mut t.wtenv(&["remove", "usb"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty());
}

/// While `git worktree add` runs, git locks the new worktree with the
/// reason "initializing"; `create` holds the repository lock until its
/// worktree is whole. `remove` read the listing before taking that lock,
/// so during a concurrent `create` it could see git's transient lock and
/// refuse with "unlock it first". It reads the listing under the lock
/// now. Here the test holds the lock as `create` would, with git's
/// "initializing" lock in place, and lifts both (git's first) only once
/// `remove` either ended (as it did, refusing) or holds the lock's file
/// open, waiting: it opens that file before it reads anything of the
/// listing, so no timing decides the outcome.
#[test]
fn remove_reads_the_worktree_listing_under_the_repository_lock() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "late", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "late");
    let common_dir = t.repo.join(".git");
    let held = std::fs::File::open(&common_dir).unwrap();
    held.lock().unwrap();
    t.git(&[
        "worktree",
        "lock",
        "--reason",
        "initializing",
        path.to_str().unwrap(),
    ]);

    let mut remove = t
        .wtenv(&["remove", "late"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fds = format!("/proc/{}/fd", remove.id());
    let waits_on_the_lock = || {
        std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == common_dir))
    };
    assert!(wait_for(Duration::from_secs(20), || {
        remove.try_wait().unwrap().is_some() || waits_on_the_lock()
    }));
    t.git(&["worktree", "unlock", path.to_str().unwrap()]);
    drop(held);

    let out = remove.wait_with_output().unwrap();
    let out = Run::of(out.status, out.stdout, out.stderr);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !listed_by_git(&t, &path), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

#[test]
fn remove_refuses_while_its_own_server_listens_on_its_port() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "serving", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "serving");
    let server = PyListener::start(&path, "4", "127.0.0.1", t.ports.start, "");
    let out = run(&mut t.wtenv(&["remove", "serving"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("listening: pid {}", server.pid())),
        "{out}"
    );
    assert!(path.is_dir() && t.allocations().len() == 1);
    drop(server);
    let out = run(&mut t.wtenv(&["remove", "serving"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty());
}

/// `remove --force` of a worktree a real `wtenv run` server still serves
/// from: the server keeps its port, which no other worktree is given
/// meanwhile; `run`'s own release frees it once the server is stopped.
/// `remove --force` used to release it at once, and the next worktree's
/// `env` exported the port the server still listened on.
#[test]
fn remove_force_leaves_a_serving_run_its_port_until_it_ends() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "a", &[]).code, Some(0));
    let path = default_path(&t, "feature", "a");
    let mut server = t
        .wtenv_in(
            &path,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "exec python3 -m http.server $PORT --bind 127.0.0.1",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = || t.allocations().first().map(|(p, _, _)| *p);
    assert!(wait_for(Duration::from_secs(10), || port().is_some_and(
        |p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
    )));
    let served = port().unwrap();

    let out = run(&mut t.wtenv(&["remove", "a", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!("kept port {served} (app)")),
        "{out}"
    );
    assert_eq!(create(&t, "b", &["--ports"]).code, Some(0));
    let b = default_path(&t, "feature", "b");
    let env = run(&mut t.wtenv_in(&b, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(!env.stdout.contains(&format!("PORT='{served}'")), "{env}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    server.wait().unwrap();
    assert!(
        t.allocations().iter().all(|(p, _, _)| *p != served),
        "{:?}",
        t.allocations()
    );
}

/// `remove --force` keeps the port a `run` of the worktree still serves;
/// a worktree made again at that path (`enter`, `create`) took that very
/// port as its own, reserved, while the old server answered on it. It is
/// another worktree: it is refused, naming the `run`, until that ends;
/// then it gets its port.
#[test]
fn a_worktree_made_again_where_a_removed_ones_run_serves_waits_for_it() {
    use crate::supervise::Wtenv;
    let t = TestEnv::new();
    assert_eq!(create(&t, "busy", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "busy");
    let port = t.allocations()[0].0;
    let mut served = Wtenv::start_in(&t, &path, &["run", "--", "sleep", "600"]);
    assert!(
        wait_for(Duration::from_secs(30), || {
            t.registry()["allocations"][0]["holders"][0]["pgid"].is_u64()
        }),
        "{}",
        t.registry()
    );
    let out = run(&mut t.wtenv(&["remove", "busy", "--force", "--delete-branch"]));
    assert_eq!(out.code, Some(0), "{out}");
    let before = t.allocations();
    for args in [
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "busy",
            "--ports",
        ][..],
        &["enter", "busy"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "error: port {port} (app) recorded at {} is held by pid {} (wtenv run -- sleep 600), which still runs in the worktree removed from there",
                path.display(),
                served.pid()
            )),
            "{args:?}: {out}"
        );
        assert!(
            out.stderr
                .contains(&format!("hint: stop it (kill {}), then", served.pid())),
            "{out}"
        );
        assert!(!path.exists(), "{args:?}");
        assert_eq!(t.allocations(), before, "{args:?}");
    }
    served.signal(nix::sys::signal::Signal::SIGTERM);
    served.wait();
    let out = run(&mut t.wtenv(&["enter", "busy"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(path.is_dir());
    let now = t.allocations();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].2, path);
}
