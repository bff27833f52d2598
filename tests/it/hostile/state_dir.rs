//! Files planted in the state directory (temp files and lock files as
//! links, FIFOs, directories, or with mode 0666), and a state directory
//! that is a link leading nowhere or a path through a file.

use std::os::unix::fs::PermissionsExt;

use super::{LIMIT, Outside, env_bounded, mkfifo, with_registry};
use crate::support::{TestEnv, run_bounded, snapshot};

/// Today's temp names and the fixed name older versions used, planted as
/// links: the write goes to a fresh temp file, the registry stays a
/// regular 0600 file, and neither link's target is written or created.
#[test]
fn a_link_planted_as_the_temp_file_redirects_no_write() {
    let t = with_registry();
    let out_dir = Outside::new(&t);
    let state = t.state_dir();
    std::os::unix::fs::symlink(&out_dir.victim, state.join("registry.json.tmp")).unwrap();
    std::os::unix::fs::symlink(&out_dir.absent, state.join("registry.json.tmp.999999999.0"))
        .unwrap();
    let before = snapshot(&out_dir.dir);
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        snapshot(&out_dir.dir),
        before,
        "written outside the state dir"
    );
    let meta = std::fs::symlink_metadata(t.registry_path()).unwrap();
    assert!(meta.file_type().is_file(), "the registry became a link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(t.allocations().len(), 2);
}

/// A FIFO as a temp file blocked a write forever, holding the lock.
#[test]
fn a_fifo_planted_as_the_temp_file_blocks_nothing() {
    let t = with_registry();
    mkfifo(&t.state_dir().join("registry.json.tmp"));
    mkfifo(&t.state_dir().join("registry.json.tmp.999999999.0"));
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(t.allocations().len(), 2);
}

/// A leftover temp file with mode 0666 passed its mode to the next
/// registry, which wtenv then refused as writable by others.
#[test]
fn a_leftover_temp_file_with_mode_0666_is_cleaned_and_its_mode_not_inherited() {
    let t = with_registry();
    let state = t.state_dir();
    let leftovers = [
        state.join("registry.json.tmp"),
        state.join("registry.json.tmp.999999999.0"),
    ];
    for p in &leftovers {
        std::fs::write(p, "{\"half\": ").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    let mode = std::fs::metadata(t.registry_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for p in &leftovers {
        assert!(!p.exists(), "{} was left", p.display());
    }
    let out = env_bounded(&t, &["env"]);
    assert_eq!(
        out.code,
        Some(0),
        "the next command refused the registry: {out}"
    );
}

/// The lock files, planted as links (to an existing file, to a missing
/// one), as FIFOs or as directories: refused with exit 2 naming the file
/// (a directory was "Is a directory (os error 21)", exit 1, no hint); no
/// link is followed (nothing created or locked elsewhere), nothing hangs.
#[test]
fn planted_lock_files_are_refused_followed_nowhere_and_never_hang() {
    for lock in ["registry.lock", "probe.lock"] {
        for plant in ["link", "dangling link", "fifo", "directory"] {
            let t = with_registry();
            // A new service, so `allocate` probes (and takes the probe lock).
            let out_dir = Outside::new(&t);
            let path = t.state_dir().join(lock);
            std::fs::remove_file(&path).unwrap();
            match plant {
                "link" => std::os::unix::fs::symlink(&out_dir.victim, &path).unwrap(),
                "dangling link" => std::os::unix::fs::symlink(&out_dir.absent, &path).unwrap(),
                "directory" => std::fs::create_dir(&path).unwrap(),
                _ => mkfifo(&path),
            }
            let before = snapshot(&out_dir.dir);
            let registry = std::fs::read(t.registry_path()).unwrap();
            let out = env_bounded(&t, &["allocate", "--service", "api"]);
            assert_eq!(out.code, Some(2), "{lock} as {plant}: {out}");
            assert!(
                out.stderr
                    .contains(&format!("its lock file {}: ", path.display())),
                "{lock} as {plant}: {out}"
            );
            assert!(out.stderr.contains("hint: "), "{out}");
            assert_eq!(snapshot(&out_dir.dir), before, "{lock} as {plant}");
            assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
        }
    }
}

/// Lock files planted with mode 0666, regular files of the user's own:
/// only their lock is used, never their content, and the 0700 state
/// directory keeps everyone else out, so the command works, the registry
/// it writes is 0600, and nothing outside the state directory changes.
#[test]
fn lock_files_planted_with_mode_0666_lock_and_leak_nothing() {
    let t = with_registry();
    let out_dir = Outside::new(&t);
    let before = snapshot(&out_dir.dir);
    for lock in ["registry.lock", "probe.lock"] {
        let path = t.state_dir().join(lock);
        std::fs::write(&path, "planted\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    // A new service, so `allocate` probes (and takes the probe lock).
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().iter().any(|(_, s, _)| s == "api"), "{out}");
    let mode = std::fs::metadata(t.registry_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for lock in ["registry.lock", "probe.lock"] {
        let text = std::fs::read_to_string(t.state_dir().join(lock)).unwrap();
        assert_eq!(text, "planted\n", "{lock} was written");
    }
    assert_eq!(snapshot(&out_dir.dir), before);
}

/// A state directory that is a link leading nowhere (a loop, or dangling):
/// `env` said "could not create its directory: File exists", and the views
/// showed an empty registry, as if nothing were recorded. Both now say the
/// directory cannot be read, exit 2, and nothing is created.
#[test]
fn a_state_directory_that_is_a_broken_link_is_unusable_everywhere() {
    let t = TestEnv::new();
    let state = t.root().join("state-link");
    for (how, target) in [
        ("loop", state.clone()),
        ("dangling", t.root().join("absent")),
    ] {
        let _ = std::fs::remove_file(&state);
        std::os::unix::fs::symlink(&target, &state).unwrap();
        for args in [&["env"][..], &["ports"], &["list"], &["validate"]] {
            let out = run_bounded(t.wtenv(args).env("WTENV_STATE_DIR", &state), LIMIT);
            assert_eq!(out.code, Some(2), "{how} {args:?}: {out}");
            // validate reports it as a finding, on stdout.
            let said = if args[0] == "validate" {
                &out.stdout
            } else {
                &out.stderr
            };
            assert!(
                said.contains(&format!(
                    "its directory {} cannot be read: ",
                    state.display()
                )),
                "{how} {args:?}: {out}"
            );
            assert!(
                args[0] == "validate" || out.stderr.contains("\nhint: check the path"),
                "{how} {args:?}: {out}"
            );
        }
        assert!(!t.root().join("absent").exists(), "{how}: created");
    }
}

/// A state directory whose path leads through a file
/// (`WTENV_STATE_DIR=<file>/sub`, or HOME or XDG_STATE_HOME a file): `env`
/// refused it (exit 2), but the views showed an empty, valid registry,
/// exit 0, as if nothing were recorded. Every command now names the file
/// in the way, exit 2, and creates nothing.
#[test]
fn a_state_directory_through_a_file_is_unusable_everywhere() {
    let t = TestEnv::new();
    let file = t.root().join("a-file");
    std::fs::write(&file, "not a directory\n").unwrap();
    let cases = [
        ("WTENV_STATE_DIR", file.join("sub"), file.join("sub")),
        ("XDG_STATE_HOME", file.clone(), file.join("wtenv")),
        ("HOME", file.clone(), file.join(".local/state/wtenv")),
    ];
    let views: [&[&str]; 7] = [
        &["env"],
        &["ports"],
        &["list"],
        &["validate"],
        &["conflicts"],
        &["status"],
        &["logs"],
    ];
    for (var, value, dir) in cases {
        for args in views {
            let mut cmd = t.wtenv(args);
            cmd.env_remove("XDG_STATE_HOME").env(var, &value);
            let out = run_bounded(&mut cmd, LIMIT);
            assert_eq!(out.code, Some(2), "{var} {args:?}: {out}");
            // validate reports it as a finding, on stdout.
            let said = if args[0] == "validate" {
                &out.stdout
            } else {
                &out.stderr
            };
            let reason = format!(
                "its directory {} cannot be made: {} is a file, not a directory",
                dir.display(),
                file.display()
            );
            assert!(said.contains(&reason), "{var} {args:?}: {out}");
            assert!(
                args[0] == "validate"
                    || out.stderr.ends_with(
                        "\nhint: move that file aside, or set WTENV_STATE_DIR / --registry elsewhere\n"
                    ),
                "{var} {args:?}: {out}"
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory\n");
}
