//! The registry's permissions: a file or directory writable by others or
//! owned by another user is refused, one its owner cannot read, search or
//! write is refused (or only read) before any change, and what wtenv makes
//! is private and usable whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::assert_refused;
use crate::support::{TestEnv, Tmpfs, run, snapshot};

#[test]
fn a_group_writable_registry_directory_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o770)).unwrap();
    assert_refused(&t, "group-writable dir", "writable by group");
}

/// A state directory of mode 1777 (sticky, as /tmp) was said to have
/// mode 777: its mode is shown whole, special bits included.
#[test]
fn a_sticky_world_writable_registry_directory_is_shown_with_its_sticky_bit() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_refused(
        &t,
        "sticky world-writable dir",
        "writable by group or others (mode 1777)",
    );
}

#[test]
fn a_group_writable_registry_file_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::set_permissions(t.registry_path(), std::fs::Permissions::from_mode(0o620)).unwrap();
    assert_refused(&t, "group-writable file", "writable by group");
}

#[test]
fn a_registry_owned_by_another_user_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::os::unix::fs::chown(t.registry_path(), Some(65534), None).unwrap();
    assert_refused(&t, "foreign file", "belongs to uid 65534");
}

#[test]
fn a_registry_directory_owned_by_another_user_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::os::unix::fs::chown(t.state_dir(), Some(65534), None).unwrap();
    assert_refused(&t, "foreign dir", "belongs to uid 65534");
}

/// A state directory whose mode keeps its owner from reading or searching
/// it is refused by every command, the views included (exit 2, naming it,
/// its mode and `chmod 700`), before anything is read or written there.
/// Judged by the mode: root, whom the kernel lets through, is refused
/// alike.
#[test]
fn a_registry_directory_its_owner_cannot_read_or_search_is_refused_and_untouched() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let dir = t.state_dir();
    let before = snapshot(&dir);
    for mode in [0o300, 0o600, 0o100] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let said = format!("its directory {} has mode {mode:o}: ", dir.display());
        assert_refused(&t, &format!("mode {mode:o}"), &said);
        let out = run(&mut t.wtenv(&["env"]));
        let hint = format!("hint: chmod 700 '{}'", dir.display());
        assert_eq!(out.stderr.lines().last(), Some(hint.as_str()), "{out}");
        assert_eq!(
            snapshot(&dir),
            before,
            "mode {mode:o}: the directory changed"
        );
    }
}

/// The commands that may change the registry (every transaction, the
/// trust list beside it).
const WRITERS: &[&[&str]] = &[
    &["allocate", "--service", "x"],
    &["release"],
    &["release", "--service", "app"],
    &["validate", "--fix"],
    &["trust"],
];

/// The views, which read a state directory they cannot write in.
const VIEWS: &[&[&str]] = &[
    &["ports"],
    &["ports", "--all", "--json"],
    &["list"],
    &["env"],
    &["validate", "--verify-ports"],
    &["conflicts"],
    &["status"],
];

/// [`WRITERS`], a hold by this test's pid, and two `run`s whose command
/// creates `ran`: refused, they must not run it.
fn writers(ran: &str) -> Vec<Vec<String>> {
    let hold = std::process::id().to_string();
    let more: [&[&str]; 3] = [
        &["env", "--hold", &hold],
        &["run", "--", "touch", ran],
        &["run", "--service", "app", "--", "touch", ran],
    ];
    WRITERS
        .iter()
        .chain(more.iter())
        .map(|args| args.iter().map(|a| a.to_string()).collect())
        .collect()
}

/// A state directory its owner can read but not write (mode 500): the
/// views and `env` with its port reserved read it, and create nothing
/// there, not even a lock file (root, whom the kernel would let write,
/// included); every command that may change it is refused, exit 2, before
/// anything is read or written. `run` too, whose hold on reserved ports
/// waits for its command: it ran the command, unable to record the hold,
/// and said so only in the diagnostics; with `--service` it was refused
/// but also said it could not release ports it never held.
#[test]
fn a_registry_directory_its_owner_cannot_write_is_read_and_never_changed() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let dir = t.state_dir();
    for lock in ["registry.lock", "probe.lock"] {
        std::fs::remove_file(dir.join(lock)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let before = snapshot(&dir);
    let port = t.ports.start.to_string();
    for &args in VIEWS {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
        if ["ports", "list", "env"].contains(&args[0]) {
            assert!(out.stdout.contains(&port), "wtenv {args:?}: {out}");
        }
        assert_eq!(snapshot(&dir), before, "wtenv {args:?} wrote");
    }
    let ran = t.root().join("ran");
    let ran = ran.to_str().unwrap();
    for args in writers(ran) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let args = args.as_slice();
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "wtenv {args:?}: {out}");
        assert!(!Path::new(ran).exists(), "wtenv {args:?} ran its command");
        assert!(!out.stderr.contains("could not release"), "{args:?}: {out}");
        // `validate` says it as a finding, on stdout.
        let talk = format!("{}{}", out.stdout, out.stderr);
        assert!(
            talk.contains(&format!("its directory {} has mode 500: ", dir.display()))
                && talk.contains("hint: chmod 700 "),
            "wtenv {args:?}: {out}"
        );
        assert_eq!(snapshot(&dir), before, "wtenv {args:?} wrote");
    }
}

/// A state directory on a file system mounted read-only: the views and
/// `env` with its port reserved read it as ever, the lock files opened
/// read-only (they failed, exit 1, "could not open lock file ...:
/// Read-only file system", no hint), or none taken when there is none
/// (no writer can be at work there); every command that must write says
/// the file system is read-only, exit 1, with what to do, before it
/// starts anything. Nothing changes.
#[test]
fn a_read_only_file_system_is_read_as_ever_and_a_write_says_what_to_do() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("disk"), "1m");
    let state = disk.path().join("state");
    let wtenv = |args: &[&str]| run(t.wtenv(args).env("WTENV_STATE_DIR", &state));
    assert_eq!(wtenv(&["env"]).code, Some(0));
    // The same registry without its lock files, on a disk of its own.
    let bare = Tmpfs::mount(&t.root().join("bare"), "1m");
    let bare_state = bare.path().join("state");
    std::fs::create_dir(&bare_state).unwrap();
    std::fs::set_permissions(&bare_state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(
        state.join("registry.json"),
        bare_state.join("registry.json"),
    )
    .unwrap();
    disk.remount_read_only();
    bare.remount_read_only();
    let before = (snapshot(&state), snapshot(&bare_state));
    let port = t.ports.start.to_string();
    for &args in VIEWS {
        for dir in [&state, &bare_state] {
            let out = run(t.wtenv(args).env("WTENV_STATE_DIR", dir));
            assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
            if ["ports", "list", "env"].contains(&args[0]) {
                assert!(out.stdout.contains(&port), "wtenv {args:?}: {out}");
            }
        }
    }
    let ran = t.root().join("ran");
    let ran = ran.to_str().unwrap();
    for args in writers(ran) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let args = args.as_slice();
        let out = wtenv(args);
        assert_eq!(out.code, Some(1), "wtenv {args:?}: {out}");
        assert!(!Path::new(ran).exists(), "wtenv {args:?} ran its command");
        let said = format!(
            "error: could not write in the state directory {}: \
             Read-only file system (os error 30)\n\
             hint: its file system is read-only: nothing was changed; \
             remount it read-write, or set WTENV_STATE_DIR to a directory you can write\n",
            state.display()
        );
        assert_eq!(out.stderr, said, "wtenv {args:?}: {out}");
    }
    assert_eq!((snapshot(&state), snapshot(&bare_state)), before);
}

/// `remove` in a state directory the release could not be written in
/// removed the worktree, then warned that it could not release its ports
/// ("the next wtenv command sweeps them", which could not either) and
/// exited 0. Now it is refused before anything is removed, as any
/// command that would change the state directory is: exit 2 for mode
/// 500, exit 1 for a file system mounted read-only; the worktree and the
/// state directory as they were.
#[test]
fn remove_in_a_state_directory_it_cannot_write_removes_nothing() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("disk"), "1m");
    let on_disk = disk.path().join("state");
    let wt = t.add_worktree("feature-x");
    let path = wt.to_str().unwrap();
    let cases = [
        (t.state_dir(), 2, "has mode 500: "),
        (on_disk, 1, "Read-only file system (os error 30)"),
    ];
    for (state, ..) in &cases {
        let out = run(t.wtenv_in(&wt, &["env"]).env("WTENV_STATE_DIR", state));
        assert_eq!(out.code, Some(0), "{out}");
    }
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o500)).unwrap();
    disk.remount_read_only();
    for (state, code, said) in cases {
        let before = snapshot(&state);
        let out = run(t.wtenv(&["remove", path]).env("WTENV_STATE_DIR", &state));
        assert_eq!(out.code, Some(code), "{out}");
        let dir = state.display().to_string();
        assert!(
            out.stderr.contains(said) && out.stderr.contains(&dir),
            "{out}"
        );
        assert!(!out.stderr.contains("removed worktree"), "{out}");
        assert!(wt.join(".git").is_file(), "removed: {out}");
        assert!(t.git(&["worktree", "list"]).contains(path), "{out}");
        assert_eq!(snapshot(&state), before, "{dir} changed");
    }
}

/// What a user (not root) saw in a state directory of mode 300: `env`
/// wrote the registry (creating and renaming need no read permission),
/// then failed to open the directory to sync it, exit 1, the port
/// recorded. Now refused first: exit 2, nothing written. And with mode
/// 500 and no lock file yet, the views failed to create one (exit 1); now
/// they read, creating nothing, and a writer is refused.
#[test]
fn a_user_state_directory_its_owner_cannot_read_or_write_fails_before_any_change() {
    let t = TestEnv::new();
    let dir = t.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    t.give_to_nobody();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o300)).unwrap();
    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains(&format!("its directory {} has mode 300: ", dir.display())),
        "{out}"
    );
    let hint = format!("hint: chmod 700 '{}'", dir.display());
    assert_eq!(out.stderr.lines().last(), Some(hint.as_str()), "{out}");
    assert_eq!(snapshot(&dir), vec![], "written behind the failure");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(run(&mut t.wtenv_as_nobody(&["env"])).code, Some(0));
    for lock in ["registry.lock", "probe.lock"] {
        std::fs::remove_file(dir.join(lock)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let before = snapshot(&dir);
    for args in [&["ports"][..], &["list"], &["validate"], &["env"]] {
        let out = run(&mut t.wtenv_as_nobody(args));
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
    }
    let out = run(&mut t.wtenv_as_nobody(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("has mode 500: "), "{out}");
    assert_eq!(snapshot(&dir), before, "written in a directory of mode 500");
}

#[test]
fn a_new_registry_is_private() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&t.state_dir()), 0o700);
    assert_eq!(mode(&t.registry_path()), 0o600);
    assert_eq!(t.registry()["version"], 1);
}

/// A user whose umask takes the owner's bits (0277) still gets a state
/// directory and files its next run can use: every command after the
/// first worked only for root, whom the kernel lets through a lock file
/// made 0400.
#[test]
fn a_umask_that_takes_the_owners_bits_leaves_a_registry_the_next_run_can_use() {
    let t = TestEnv::new();
    std::fs::create_dir_all(t.state_dir().parent().unwrap()).unwrap();
    t.give_to_nobody();
    let as_nobody_under_umask =
        |args: &[&str]| run(&mut t.wtenv_as_nobody_under_umask("277", args));
    for args in [
        &["env"][..],
        &["env"],
        &["allocate", "--service", "x"],
        &["run", "--", "true"],
        &["release", "--service", "x"],
        &["trust"],
    ] {
        let out = as_nobody_under_umask(args);
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&t.state_dir()), 0o700);
    for file in ["registry.json", "registry.lock", "probe.lock"] {
        assert_eq!(mode(&t.state_dir().join(file)), 0o600, "{file}");
    }
}

/// A user with no `~/.local` yet, under a umask of 0277: the state
/// directory's missing parents were made 0500, so the state directory
/// could not be made in them (exit 2), and `~/.local` stayed 0500 for
/// every other program. Each directory made on the way is 0700, as the
/// XDG base directory spec asks. Under 0477 too, which takes the owner's
/// read bit: a directory made so cannot be opened to be chmodded.
#[test]
fn a_umask_that_takes_the_owners_bits_makes_the_missing_parents_usable_too() {
    let t = TestEnv::new();
    for umask in ["277", "477"] {
        let home = t.root().join(format!("fresh-home-{umask}"));
        std::fs::create_dir(&home).unwrap();
        t.give_to_nobody();
        for _ in 0..2 {
            let mut env = t.wtenv_as_nobody_under_umask(umask, &["env"]);
            env.env_remove("XDG_STATE_HOME").env("HOME", &home);
            let out = run(&mut env);
            assert_eq!(out.code, Some(0), "umask {umask}: {out}");
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for dir in [".local", ".local/state", ".local/state/wtenv"] {
            assert_eq!(mode(&home.join(dir)), 0o700, "umask {umask}: {dir}");
        }
        assert_eq!(mode(&home.join(".local/state/wtenv/registry.json")), 0o600);
    }
}
