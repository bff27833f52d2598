//! Settings from the environment and the command line (`WTENV_CD_FILE`,
//! `WTENV_LOCK_TIMEOUT`, `WTENV_LOG`, `--registry`, an empty word), and
//! what a command checks where it has nothing to check, and a HOME that
//! does not exist.

use std::time::Duration;

use super::{LIMIT, Outside, mkfifo, with_registry};
use crate::support::{TestEnv, run, run_bounded, snapshot};

/// `WTENV_CD_FILE` as a FIFO hung `enter`; as a link it wrote through it.
#[test]
fn a_cd_file_that_is_a_fifo_or_a_link_is_refused_without_hanging() {
    let t = TestEnv::new();
    let out_dir = Outside::new(&t);
    let cd_dir = t.root().join("cd");
    std::fs::create_dir_all(&cd_dir).unwrap();
    let fifo = cd_dir.join("fifo");
    mkfifo(&fifo);
    let link = cd_dir.join("link");
    std::os::unix::fs::symlink(&out_dir.victim, &link).unwrap();
    let before = snapshot(&out_dir.dir);
    for file in [&fifo, &link] {
        let out = run_bounded(t.wtenv(&["enter", "x"]).env("WTENV_CD_FILE", file), LIMIT);
        assert_eq!(out.code, Some(1), "{}: {out}", file.display());
        assert!(out.stderr.contains("WTENV_CD_FILE"), "{out}");
        assert!(out.stderr.contains("hint: "), "{out}");
    }
    assert_eq!(snapshot(&out_dir.dir), before);
    assert!(
        t.allocations().is_empty(),
        "refused before anything was made"
    );
    assert!(!t.git(&["branch", "--list"]).contains("feature/x"));
    // A regular file still works.
    let file = cd_dir.join("file");
    std::fs::write(&file, "").unwrap();
    let out = run_bounded(t.wtenv(&["enter", "x"]).env("WTENV_CD_FILE", &file), LIMIT);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        out.stdout.trim_end()
    );
}

/// `WTENV_LOCK_TIMEOUT=30` was silently 10 s; `banana` too.
#[test]
fn lock_timeout_takes_bare_seconds_and_refuses_what_it_cannot_parse() {
    let t = with_registry();
    let out = run(t.wtenv(&["ports"]).env("WTENV_LOCK_TIMEOUT", "banana"));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("WTENV_LOCK_TIMEOUT=banana is not a duration"),
        "{out}"
    );
    let lock = t.state_dir().join("registry.lock");
    let mut holder = std::process::Command::new("flock")
        .args(["-F", lock.to_str().unwrap(), "sleep", "60"])
        .spawn()
        .unwrap();
    // Poll until the holder has the lock (a 0 s wait fails at once).
    assert!(crate::support::wait_for(Duration::from_secs(30), || {
        run(t.wtenv(&["ports"]).env("WTENV_LOCK_TIMEOUT", "0")).code == Some(2)
    }));
    let out = run(t.wtenv(&["ports"]).env("WTENV_LOCK_TIMEOUT", "1"));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("busy for 1s"), "{out}");
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// `--registry registry.json` (a bare file name) read an empty registry.
#[test]
fn a_bare_registry_file_name_is_resolved_like_any_relative_path() {
    let t = with_registry();
    let out = run(&mut t.wtenv_in(
        &t.state_dir(),
        &["--registry", "registry.json", "ports", "--all"],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&t.ports.start.to_string()),
        "the allocation is not listed: {out}"
    );
}

/// `--registry` naming the state directory instead of its file: the
/// locks were made in its parent, and the hint said to move the
/// directory, registry and all, aside. It is refused first, naming the
/// file to pass, and nothing is made anywhere.
#[test]
fn a_registry_flag_naming_a_directory_points_at_its_file_and_makes_nothing() {
    let t = with_registry();
    // The directory, and a link to it (in a directory of its own, whose
    // snapshot shows a lock made beside the link).
    let links = t.root().join("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink(t.state_dir(), links.join("state")).unwrap();
    let before = (snapshot(&t.root().join("state")), snapshot(&links));
    for dir in [t.state_dir(), links.join("state")] {
        for args in [
            &["env"][..],
            &["ports"],
            &["allocate", "--service", "x"],
            &["validate", "--fix"],
        ] {
            let mut full = vec!["--registry", dir.to_str().unwrap()];
            full.extend_from_slice(args);
            let out = run(&mut t.wtenv(&full));
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: registry {dir} cannot be used: it is a directory\n\
                     hint: --registry names the registry's file, not its directory: pass --registry '{dir}/registry.json'\n",
                    dir = dir.display()
                ),
            );
        }
    }
    assert_eq!(
        (snapshot(&t.root().join("state")), snapshot(&links)),
        before
    );
}

/// `--registry /dev/null` made its lock in `/dev`, then said to move
/// `/dev/null` aside. A device, a FIFO or a socket is refused before any
/// lock is made beside it (here a FIFO, and a link to `/dev/null`, each
/// in a directory of its own whose snapshot would show the lock).
#[test]
fn a_registry_flag_naming_a_device_or_fifo_is_refused_and_makes_nothing() {
    let t = with_registry();
    let dir = t.root().join("special");
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let null = dir.join("null");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    let before = (snapshot(&t.state_dir()), snapshot(&dir));
    for path in [&fifo, &null] {
        for args in [&["env"][..], &["ports"], &["validate", "--fix"]] {
            let mut full = vec!["--registry", path.to_str().unwrap()];
            full.extend_from_slice(args);
            let out = run_bounded(&mut t.wtenv(&full), LIMIT);
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: registry {} cannot be used: it is {}, not a regular file\n\
                     hint: --registry names the registry's file: pass the path of a regular file, or of one wtenv may create\n",
                    path.display(),
                    if path == &fifo {
                        "a FIFO"
                    } else {
                        "a character device"
                    }
                ),
                "{args:?}"
            );
        }
    }
    assert_eq!((snapshot(&t.state_dir()), snapshot(&dir)), before);
}

/// `--registry /proc/self/environ` (a regular file of the kernel's) was
/// refused with the hint to `mv` it aside, to `/proc/self/environ.bak`.
/// A file under /proc, /sys or /dev gets the hint a device gets: pass
/// the path of a regular file.
#[test]
fn a_registry_flag_naming_a_kernel_file_is_not_to_be_moved_aside() {
    let t = with_registry();
    for path in ["/proc/self/environ", "/proc/self/status"] {
        let out = run_bounded(&mut t.wtenv(&["--registry", path, "ports"]), LIMIT);
        assert_eq!(out.code, Some(2), "{out}");
        assert!(!out.stderr.contains("mv "), "{out}");
        assert!(
            out.stderr.ends_with(
                "\nhint: --registry names the registry's file: pass the path of a regular file, or of one wtenv may create\n"
            ),
            "{out}"
        );
    }
}

/// `--registry /sys/kernel/notes`, a regular file in a directory of mode
/// 755 whose files the kernel makes alone: root passes the checks of
/// the state directory, then the lock file beside it could not be made,
/// and the error was the OS's "Permission denied", exit 1, with no hint.
/// It is the registry that cannot be used (exit 2), with the way out
/// that a directory of another user's gets; nothing is made there. Linux
/// only, and only where /sys is mounted read-write (as here, not in
/// every container); anyone else meets another user's directory, refused
/// with the same hint.
#[cfg(target_os = "linux")]
#[test]
fn a_registry_where_no_lock_can_be_made_says_to_use_a_directory_of_ones_own() {
    let notes = std::path::Path::new("/sys/kernel/notes");
    let read_only = nix::sys::statvfs::statvfs("/sys/kernel")
        .is_ok_and(|fs| fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    if !notes.is_file() || read_only {
        eprintln!("skipped: no /sys/kernel/notes, or /sys is mounted read-only");
        return;
    }
    let t = with_registry();
    let before = t.allocations();
    for args in [&["env"][..], &["ports"], &["allocate", "--service", "x"]] {
        let mut full = vec!["--registry", "/sys/kernel/notes"];
        full.extend_from_slice(args);
        let out = run_bounded(&mut t.wtenv(&full), LIMIT);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(2), ""),
            "{args:?}: {out}"
        );
        assert!(
            out.stderr
                .starts_with("error: registry /sys/kernel/notes cannot be used: "),
            "{args:?}: {out}"
        );
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                out.stderr,
                "error: registry /sys/kernel/notes cannot be used: its lock file \
                 /sys/kernel/registry.lock cannot be opened or made: Permission denied (os error 13)\n\
                 hint: use a registry directory of your own that you can write in: \
                 set WTENV_STATE_DIR or pass --registry\n",
                "{args:?}"
            );
        }
        assert!(
            out.stderr.ends_with(
                "\nhint: use a registry directory of your own that you can write in: \
                 set WTENV_STATE_DIR or pass --registry\n"
            ),
            "{args:?}: {out}"
        );
    }
    assert!(!std::path::Path::new("/sys/kernel/registry.lock").exists());
    assert_eq!(t.allocations(), before);
}

/// `remove ""` (a script's `wtenv remove "$WT" --force` with WT unset)
/// read the empty word as the path "", the current directory, and with
/// --force removed the worktree it ran in. It is refused, and the
/// worktree, its branch and its ports stay.
#[test]
fn remove_of_an_empty_word_is_refused_and_removes_nothing() {
    let t = TestEnv::new();
    let wt = t.add_worktree("linked");
    assert_eq!(run(&mut t.wtenv_in(&wt, &["env"])).code, Some(0));
    let before = (t.allocations(), t.git(&["worktree", "list"]));
    for args in [&["remove", ""][..], &["remove", "", "--force"]] {
        let out = run(&mut t.wtenv_in(&wt, args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            "error: the worktree to remove is an empty word\n\
             hint: name it by its identifier or its path ('.' for this one); 'wtenv list' shows them\n",
            "{args:?}"
        );
        assert!(wt.exists(), "{args:?}: {out}");
    }
    assert_eq!((t.allocations(), t.git(&["worktree", "list"])), before);
}

/// An unparsable `WTENV_LOG` was silently ignored.
#[test]
fn an_unparsable_wtenv_log_is_an_error_naming_it() {
    let t = TestEnv::new();
    for bad in ["banana", "wtenv=loud"] {
        let out = run(t.wtenv(&["env"]).env("WTENV_LOG", bad));
        assert_eq!(out.code, Some(1), "{bad}: {out}");
        assert!(
            out.stderr
                .contains(&format!("WTENV_LOG={bad:?} is not a log filter")),
            "{out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    for good in ["debug", "wtenv=debug", "info,wtenv::probe=trace", ""] {
        let out = run(t.wtenv(&["env"]).env("WTENV_LOG", good));
        assert_eq!(out.code, Some(0), "{good}: {out}");
    }
}

/// `conflicts` outside a repository probed the built-in ranges, which
/// have nothing to do with any repository of the user's.
#[test]
fn conflicts_outside_a_repository_has_nothing_to_check_unless_all() {
    let t = with_registry();
    let outside = t.root().join("home");
    let out = run(&mut t.wtenv_in(&outside, &["conflicts"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: {} is not inside a git worktree\n\
             hint: cd into a git repository or one of its worktrees; \
             or pass --config PATH, or --all for every repository in the registry\n",
            outside.display()
        ),
        "the words every command says outside a worktree"
    );
    let out = run(&mut t.wtenv_in(&outside, &["conflicts", "--all"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("no conflicts in feature {}", t.ports.range())),
        "the registry's repository's range: {out}"
    );
    // A registry that records no repository: nothing was checked, and
    // the line says so (it was "no conflicts in ", naming nothing).
    let empty = t.root().join("empty-registry.json");
    let out = run(&mut t.wtenv_in(
        &outside,
        &["--registry", empty.to_str().unwrap(), "conflicts", "--all"],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr,
        "no conflicts: no range to check (no repository of the registry has a main worktree)\n",
        "{out}"
    );
    let busy = t.ports.port(5);
    let _listener = crate::support::PyListener::start(&outside, "4", "127.0.0.1", busy, "");
    let out = run(&mut t.wtenv_in(&outside, &["conflicts", "--all", "--json"]));
    assert_eq!(out.code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["conflicts"][0]["port"], busy, "{out}");
}

/// A misspelt `[purpose]` fell back to the built-in ranges, and
/// `validate --fix` then released every allocation without a word. Now
/// the config error is shown and nothing is released; a warning of a
/// config (an unknown key) is shown by `validate` too.
#[test]
fn validate_shows_config_problems_and_a_misspelt_table_releases_nothing() {
    let t = with_registry();
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purpose]\nfeature = \"{}\"\n", t.ports.range()),
    )
    .unwrap();
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert!(out.stderr.contains("did you mean [purposes]?"), "{out}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before, "{out}");
    t.write_config("[services.app]\nreadyness = \"5s\"\n");
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains("unknown key \"services.app.readyness\""),
        "{out}"
    );
}

/// A HOME that does not exist (`HOME=/nonexistent`, as for `nobody`,
/// systemd's DynamicUser, many containers) was made, parents and all,
/// with a second, empty registry in it, which handed out again the ports
/// the real registry reserved. It is now an error, as an unset HOME is
/// (exit 1, the hint to set WTENV_STATE_DIR or HOME), for the views as
/// for the writers, and nothing is made; so is an XDG_STATE_HOME whose
/// parent does not exist. One inside an existing HOME is made as ever.
#[test]
fn a_home_that_does_not_exist_is_an_error_and_nothing_is_made() {
    let t = TestEnv::new();
    let absent = t.root().join("absent");
    let home = absent.join("home");
    let cases = [
        (
            "HOME",
            home.clone(),
            format!(
                "error: cannot find the registry: HOME={} does not exist, and wtenv makes its state directory only in a HOME that does\n\
                 hint: set WTENV_STATE_DIR, or HOME to a directory that exists, or pass --registry PATH\n",
                home.display()
            ),
        ),
        (
            "XDG_STATE_HOME",
            absent.join("state"),
            format!(
                "error: cannot find the registry: XDG_STATE_HOME={} is in {}, which does not exist\n\
                 hint: set WTENV_STATE_DIR, or XDG_STATE_HOME in a directory that exists, or pass --registry PATH\n",
                absent.join("state").display(),
                absent.display()
            ),
        ),
    ];
    for (var, value, said) in cases {
        for args in [
            &["env"][..],
            &["ports"],
            &["status"],
            &["allocate", "--service", "x"],
            &["trust"],
        ] {
            let mut cmd = t.wtenv(args);
            cmd.env_remove("XDG_STATE_HOME").env(var, &value);
            let out = run(&mut cmd);
            assert_eq!(out.code, Some(1), "{var} {args:?}: {out}");
            assert_eq!(out.stderr, said, "{var} {args:?}");
            assert!(
                !absent.exists(),
                "{var} {args:?}: made {}",
                absent.display()
            );
        }
    }
    // No HOME at all, or a relative one (and neither of the two above):
    // the same way out, HOME named in it too.
    for home in [None, Some("relative")] {
        let mut cmd = t.wtenv(&["ports", "--all"]);
        cmd.env_remove("XDG_STATE_HOME").env_remove("HOME");
        if let Some(home) = home {
            cmd.env("HOME", home);
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(1), "HOME={home:?}: {out}");
        assert_eq!(
            out.stderr,
            "error: cannot find the registry: none of WTENV_STATE_DIR, XDG_STATE_HOME, HOME is set to an absolute path\n\
             hint: set WTENV_STATE_DIR, or HOME to an absolute path, or pass --registry PATH\n",
            "HOME={home:?}"
        );
    }
    // XDG_STATE_HOME inside a HOME that exists: its missing parents are
    // made, as under HOME itself.
    let home = t.root().join("home");
    let state = home.join(".local/state");
    let out = run(t
        .wtenv(&["env"])
        .env("XDG_STATE_HOME", &state)
        .env("HOME", &home));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(state.join("wtenv/registry.json").is_file(), "{out}");
}
