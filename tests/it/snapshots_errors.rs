//! Snapshots of the errors every command can meet before doing its work:
//! no repository, a bad config, an unusable registry (busy lock, torn or
//! corrupt file, unsafe permissions), an unknown worktree, bad arguments.
//! Each leaves the registry as it was.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;

use crate::snapshots::{snap, two_services};
use crate::support::{TestEnv, run, snapshot};

#[test]
fn outside_a_repository_env_and_list_say_so() {
    let t = TestEnv::new();
    let outside = t.root().join("home");
    snap(
        &t,
        "env_outside_a_repository_says_so",
        &mut t.wtenv_in(&outside, &["env"]),
    );
    snap(
        &t,
        "list_outside_a_repository_says_so",
        &mut t.wtenv_in(&outside, &["list"]),
    );
}

#[test]
fn bad_configs_are_named_with_the_key_and_position() {
    let t = TestEnv::new();
    // Fixed ranges below the test port blocks: a block at the same ports
    // would be redacted to `[PORT+i]` in the snapshot.
    let cases = [
        (
            "config_that_is_not_toml_names_line_and_column",
            "[services.web]\nenv = [\"PORT\"\n",
        ),
        (
            "config_with_an_unknown_table_suggests_the_right_one",
            "[purpose]\nfeature = \"5000-5019\"\n",
        ),
        (
            "config_with_a_reversed_range_is_refused",
            "[purposes]\nfeature = \"5019-5000\"\n",
        ),
        (
            "config_with_a_refused_env_name_is_refused",
            "[env]\nLD_PRELOAD = \"x\"\n",
        ),
    ];
    for (name, text) in cases {
        std::fs::write(t.repo.join("wtenv.toml"), text).unwrap();
        snap(&t, name, &mut t.wtenv(&["env"]));
    }
    t.write_config("[services.web]\nunknown_key = 1\n");
    snap(
        &t,
        "config_with_an_unknown_key_warns_and_goes_on",
        &mut t.wtenv(&["env"]),
    );
    snap(
        &t,
        "config_named_on_the_command_line_that_is_missing",
        &mut t.wtenv(&["--config", "no-such.toml", "env"]),
    );
}

/// The registry as a first command made it, then `damage` applied: every
/// command meeting it exits 2, names the file, and leaves it as it was.
fn unusable_registry(name: &str, damage: impl FnOnce(&TestEnv)) {
    let t = TestEnv::new();
    two_services(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    damage(&t);
    let before = snapshot(&t.state_dir());
    for cmd in ["env", "ports", "list"] {
        snap(&t, &format!("{cmd}_with_{name}"), &mut t.wtenv(&[cmd]));
    }
    assert_eq!(snapshot(&t.state_dir()), before, "the registry was touched");
}

#[test]
fn a_torn_registry_is_refused_with_exit_2() {
    unusable_registry("a_torn_registry_exits_2", |t| {
        let text = std::fs::read(t.registry_path()).unwrap();
        std::fs::write(t.registry_path(), &text[..text.len() / 2]).unwrap();
    });
}

#[test]
fn a_registry_that_is_not_json_is_refused_with_exit_2() {
    unusable_registry("a_registry_that_is_not_json_exits_2", |t| {
        std::fs::write(t.registry_path(), "not json\n").unwrap();
    });
}

#[test]
fn a_registry_writable_by_others_is_refused_with_exit_2() {
    unusable_registry("a_registry_writable_by_others_exits_2", |t| {
        std::fs::set_permissions(t.registry_path(), std::fs::Permissions::from_mode(0o666))
            .unwrap();
    });
}

#[test]
fn a_registry_of_a_newer_version_is_refused_with_exit_2() {
    unusable_registry("a_registry_of_a_newer_version_exits_2", |t| {
        std::fs::write(
            t.registry_path(),
            "{\"version\": 99, \"allocations\": []}\n",
        )
        .unwrap();
    });
}

/// Every command that reads or writes the registry waits for its lock
/// at most WTENV_LOCK_TIMEOUT, then exits 2, saying that another process
/// (here the test itself, as `flock(1)` would) holds it. `run -- true`
/// in a worktree whose ports are all reserved writes nothing, but reads
/// them under the shared lock: it waits too.
#[test]
fn a_busy_registry_lock_is_reported_with_exit_2() {
    let t = TestEnv::new();
    two_services(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    t.add_worktree("side");
    let lock = File::create(t.state_dir().join("registry.lock")).unwrap();
    lock.lock().unwrap();
    for cmd in [
        &["env"][..],
        &["ports"],
        &["list"],
        &["allocate", "--service", "web"],
        &["release"],
        &["remove", "side"],
        &["validate"],
        &["run", "--", "true"],
    ] {
        snap(
            &t,
            &format!("{}_with_the_registry_lock_busy_exits_2", cmd[0]),
            t.wtenv(cmd).env("WTENV_LOCK_TIMEOUT", "100ms"),
        );
    }
}

#[test]
fn a_busy_probe_lock_is_reported_with_exit_2() {
    let t = TestEnv::new();
    two_services(&t);
    assert_eq!(run(&mut t.wtenv(&["ports"])).code, Some(0));
    std::fs::create_dir_all(t.state_dir()).unwrap();
    let lock = File::create(t.state_dir().join("probe.lock")).unwrap();
    lock.lock().unwrap();
    snap(
        &t,
        "env_with_the_probe_lock_busy_exits_2",
        t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", "100ms"),
    );
}

/// WTENV_LOCK_TIMEOUT is read as every duration a user types (`--grace`),
/// and a refusal says which it is: not a duration, or longer than a year
/// (`2y`, `400d`, one second more than a year, were "not a duration").
/// `1e3` is a number of seconds, as `1.5` is.
#[test]
fn a_bad_lock_timeout_is_named() {
    let t = TestEnv::new();
    snap(
        &t,
        "env_with_a_bad_lock_timeout_names_it",
        t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", "soon"),
    );
    let over = snap(
        &t,
        "env_with_a_lock_timeout_over_a_year_says_so",
        t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", "2y"),
    );
    for value in ["400d", "31557601"] {
        let out = run(t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", value));
        let said = over.stderr.replace("=2y ", &format!("={value} "));
        assert_eq!((out.code, out.stderr), (Some(1), said), "{value}");
    }
    let out = run(t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", "1e3"));
    assert_eq!(out.code, Some(0), "{out}");
    // In the words `--grace 2x` says (it quoted the value, `"2x" is not
    // a duration`, and said nothing of what a duration is).
    let env = run(t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", "2x"));
    let grace = run(&mut t.wtenv(&["run", "--grace", "2x", "--", "true"]));
    let words = |stderr: &str, after: &str| {
        stderr
            .lines()
            .find_map(|l| Some(l.split_once(after)?.1.to_owned()))
    };
    let said = words(&grace.stderr, "'--grace <DUR>': ");
    assert!(said.is_some(), "{grace}");
    assert_eq!(words(&env.stderr, "WTENV_LOCK_TIMEOUT="), said, "{env}");
}

#[test]
fn an_unknown_worktree_is_named() {
    let t = TestEnv::new();
    let nowhere = t.root().join("nowhere");
    snap(
        &t,
        "release_of_a_path_that_is_no_worktree_says_so",
        &mut t.wtenv(&["release", "--worktree", nowhere.to_str().unwrap()]),
    );
    snap(
        &t,
        "remove_of_a_path_that_is_no_worktree_says_so",
        &mut t.wtenv(&["remove", nowhere.to_str().unwrap()]),
    );
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let t = TestEnv::new();
    snap(
        &t,
        "an_unknown_command_is_refused",
        &mut t.wtenv(&["no-such-command"]),
    );
    snap(
        &t,
        "an_unknown_format_is_refused",
        &mut t.wtenv(&["env", "--format", "csh"]),
    );
    snap(
        &t,
        "run_without_a_command_is_refused",
        &mut t.wtenv(&["run"]),
    );
    snap(
        &t,
        "run_with_a_grace_that_is_no_duration_says_what_is",
        &mut t.wtenv(&["run", "--grace", "banana", "--", "true"]),
    );
    // A negative value was an unknown flag to clap, whose tip (`-- -1`)
    // would have run `-1` as the command.
    snap(
        &t,
        "run_with_a_negative_grace_says_what_a_duration_is",
        &mut t.wtenv(&["run", "--grace", "-1s", "--", "true"]),
    );
    // A flag says which refusal it is, as WTENV_LOCK_TIMEOUT and a
    // config do (it said "expected ..." alone, or "longer than a year").
    let out = run(&mut t.wtenv(&["run", "--grace", "2y", "--", "true"]));
    let said =
        "invalid value '2y' for '--grace <DUR>': 2y is longer than a year (1y), the most accepted";
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains(said), "{out}");
    snap(
        &t,
        "env_with_a_negative_hold_names_the_flag",
        &mut t.wtenv(&["env", "--hold", "-1"]),
    );
    snap(
        &t,
        "allocate_with_an_invalid_service_name_says_what_a_name_is",
        &mut t.wtenv(&["allocate", "--service", "web ui"]),
    );
}

#[test]
fn the_main_worktree_is_never_removed_and_its_ports_can_be_freed() {
    let t = TestEnv::new();
    let out = snap(
        &t,
        "remove_of_the_main_worktree_says_how_to_free_its_ports",
        &mut t.wtenv(&["remove", t.repo.to_str().unwrap()]),
    );
    // The hint's command, run as it says, frees them.
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert!(!t.allocations().is_empty());
    let hint = out.stderr.lines().last().unwrap();
    let command = hint.split_once(": wtenv ").unwrap().1;
    let words: Vec<&str> = command.split(' ').map(|w| w.trim_matches('\'')).collect();
    let freed = run(&mut t.wtenv(&words));
    assert_eq!(freed.code, Some(0), "{freed}");
    assert!(t.allocations().is_empty(), "{freed}");
}

/// A path the user gave that the OS refuses: the error says what, then
/// what to do; a registry that cannot be made exits 2.
#[test]
fn paths_that_cannot_be_used_are_named_with_a_hint() {
    let t = TestEnv::new();
    snap(
        &t,
        "a_registry_whose_directory_cannot_be_made_is_unusable",
        &mut t.wtenv(&["--registry", "/proc/nope/registry.json", "env"]),
    );
    t.write_config("[services.web]\nrun = \"true\"\n");
    snap(
        &t,
        "export_into_a_directory_that_cannot_be_made_says_where_to",
        &mut t.wtenv(&["export", "systemd", "/proc/nope"]),
    );
}

/// A service named on the command line keeps the rule of a
/// `[services.NAME]` key (letters, digits, `_` or `-`, at most 64
/// characters) and is refused in its words: `allocate` recorded a
/// 300-character name a config could never declare. Every command that
/// takes a service name refuses, exit 1, with nothing written.
#[test]
fn a_service_name_a_config_would_refuse_is_refused_on_the_command_line() {
    let t = TestEnv::new();
    two_services(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let before = snapshot(&t.state_dir());
    let long = "a".repeat(300);
    let cases = [
        (
            long.as_str(),
            format!("\"{}...\"", "a".repeat(64)),
            "a service name is 300 characters long; at most 64 are allowed",
        ),
        (
            "web.ui",
            "\"web.ui\"".to_owned(),
            "a service name is ASCII letters, digits, '_' or '-'",
        ),
        // `é` is a letter, but not one a name may hold.
        (
            "caf\u{e9}",
            "\"caf\u{e9}\"".to_owned(),
            "a service name is ASCII letters, digits, '_' or '-'",
        ),
    ];
    for (name, shown, reason) in &cases {
        for args in [
            &["allocate", "--service", name][..],
            &["release", "--service", name],
            &["run", "--service", name, "--", "true"],
            &["up", name],
            &["down", name],
            &["logs", name],
        ] {
            let out = run(t.wtenv(args).stdin(std::process::Stdio::null()));
            assert_eq!(out.code, Some(1), "{args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: invalid service name {shown}: {reason}\n\
                     hint: use ASCII letters, digits, '_' or '-', not starting with '-', at most 64 characters: the names a config's [services] accepts\n"
                ),
                "{args:?}"
            );
            assert_eq!(snapshot(&t.state_dir()), before, "{args:?}: written");
        }
        // A config says the same of the same name, its key written as
        // the file writes it: `services.web.ui` read as key `ui` of a
        // service `web`.
        t.write_config(&format!("[services.{name:?}]\n"));
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr
                .contains(&format!(": services.{shown}: {reason}\n")),
            "{out}"
        );
        two_services(&t);
    }
}
