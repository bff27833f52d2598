//! Own vs foreign holder (allocation rule 5): a reserved port held by a
//! process of its own worktree is in use; one held by a process outside it
//! fails, naming the process, with nothing written.

use super::gone_holder_registry;
use crate::support::{PyListener, TestEnv, held_env, run};

#[test]
fn reserved_port_held_by_a_process_of_its_own_worktree_is_in_use() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    let sub = t.repo.join("sub dir");
    std::fs::create_dir_all(&sub).unwrap();
    let _server = PyListener::start(&sub, "6", "::", t.ports.start, "");
    let again = run(&mut t.wtenv(&["env"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(again.stdout, first.stdout);
    let ports = run(&mut t.wtenv(&["ports"]));
    assert!(ports.stdout.contains("listening (pid"), "{ports}");
}

#[test]
fn reserved_port_held_by_a_foreign_process_fails_env_naming_it() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    let elsewhere = t.root().join("home");
    let server = PyListener::start(&elsewhere, "4", "127.0.0.1", t.ports.start, "");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "port {} (app): pid {} (",
            t.ports.start,
            server.pid()
        )) && out.stderr.contains(&format!(" in {}", elsewhere.display())),
        "{out}"
    );
    assert_eq!(t.allocations().len(), 1, "the reservation stays");
}

/// A dead holder's pid is nobody's to descend from: here the pid of this
/// test process, recorded with another start time (as once by a `run`
/// that was SIGKILLed, its pid then reused). A listener outside the
/// worktree under this process used to count as the worktree's own: `env`
/// exported the port and the views reported no conflict.
#[test]
fn a_listener_under_a_process_reusing_a_dead_holders_pid_is_foreign() {
    let t = TestEnv::new();
    let me = gone_holder_registry(&t);
    let outside = t.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let server = PyListener::start(&outside, "4", "127.0.0.1", t.ports.start, "");
    let held = format!("pid {} (", server.pid());
    let ports = run(&mut t.wtenv(&["ports"]));
    assert!(
        ports.stdout.contains(&format!("held by pid {me}: gone")),
        "{ports}"
    );
    let conflicts = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(conflicts.code, Some(1), "{conflicts}");
    assert!(conflicts.stdout.contains(&held), "{conflicts}");
    let validate = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(validate.code, Some(2), "{validate}");
    assert!(
        validate
            .stdout
            .contains("held by a process not of its worktree")
            && validate.stdout.contains(&held),
        "{validate}"
    );
    let registry = std::fs::read(t.registry_path()).unwrap();
    let env = run(&mut t.wtenv(&["env"]));
    assert_eq!(env.code, Some(1), "{env}");
    assert!(env.stdout.is_empty(), "{env}");
    assert!(
        env.stderr
            .contains(&format!("port {} (app): {held}", t.ports.start)),
        "{env}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
}

/// A linked worktree placed inside the main one (`git worktree add
/// .worktrees/feat`): a server started in it is its own, not the main
/// worktree's, though it works below the main worktree's path. On the
/// main worktree's port it is a foreign holder, as it is started from a
/// sibling worktree outside; on its own port it is in use. A submodule's
/// checkout inside the main worktree is another repository's, and stays
/// the main worktree's: a server started there is its own.
#[test]
fn a_server_in_a_worktree_nested_in_another_is_the_nested_ones() {
    let t = TestEnv::new();
    let module = t.root().join("module");
    t.init_repo(&module);
    t.git_in(&module, &["commit", "-q", "--allow-empty", "-m", "module"]);
    t.add_submodule(&t.repo, &module, "sm");
    let nested = t.repo.join(".worktrees/feat");
    t.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feat",
        nested.to_str().unwrap(),
    ]);
    let deep = nested.join("src/app");
    std::fs::create_dir_all(&deep).unwrap();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    assert_eq!(
        run(&mut t.wtenv_in(&nested, &["env"])).code,
        Some(0),
        "the nested worktree gets a port of its own"
    );
    let (main_port, feat_port) = (t.ports.start, t.ports.port(1));

    // In the submodule, on the main worktree's port: the main one's.
    let server = PyListener::start(&t.repo.join("sm"), "4", "127.0.0.1", main_port, "");
    let env = run(&mut t.wtenv(&["env"]));
    assert_eq!((env.code, &env.stdout), (Some(0), &first.stdout), "{env}");
    drop(server);

    // In the nested worktree, on its own port: its own.
    let _own = PyListener::start(&deep, "4", "127.0.0.1", feat_port, "");
    let env = run(&mut t.wtenv_in(&nested, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    // In the nested worktree, on the main worktree's port: foreign.
    let server = PyListener::start(&deep, "4", "127.0.0.1", main_port, "");
    let held = format!("pid {} (", server.pid());
    let registry = std::fs::read(t.registry_path()).unwrap();
    let env = run(&mut t.wtenv(&["env"]));
    assert_eq!(env.code, Some(1), "{env}");
    assert!(
        env.stderr
            .contains(&format!("port {main_port} (app): {held}")),
        "{env}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
    let ports = run(&mut t.wtenv(&["ports"]));
    assert!(
        ports
            .stdout
            .lines()
            .any(|l| l.contains(&main_port.to_string())
                && l.contains(&format!("conflict (pid {}", server.pid()))),
        "{ports}"
    );
    let conflicts = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(conflicts.code, Some(1), "{conflicts}");
    assert!(conflicts.stdout.contains(&held), "{conflicts}");
    let validate = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(validate.code, Some(2), "{validate}");
    assert!(validate.stdout.contains(&held), "{validate}");
}

/// The foreign holder was found after the write: a service added to the
/// config got its port reserved by the `env` that then exited 1. It is
/// refused before the write now, and so is a `run`'s hold.
#[test]
fn a_foreign_holder_found_while_allocating_another_service_writes_nothing() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let elsewhere = t.root().join("home");
    let _server = PyListener::start(&elsewhere, "4", "127.0.0.1", t.ports.start, "");
    t.write_config("[services.app]\n[services.api]\n");
    let registry = std::fs::read(t.registry_path()).unwrap();
    for args in [&["env"][..], &["run", "--", "true"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains("held by processes outside it"),
            "{args:?}: {out}"
        );
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            registry,
            "{args:?}: {out}"
        );
    }
}

/// `release --hold PID` (a `nix develop` shell's EXIT trap) releases the
/// ports only PID held; run again, or for a pid that holds nothing, it
/// says so, exits 0 and writes nothing.
#[test]
fn release_hold_releases_what_the_pid_held_and_says_when_it_holds_nothing() {
    let t = TestEnv::new();
    let (mut holder, pid) = held_env(&t);
    assert_eq!(t.allocations().len(), 1);
    let out = run(&mut t.wtenv(&["release", "--hold", &pid]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("released port {} (app)", t.ports.start)),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{out}");
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["release", "--hold", &pid]));
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr,
        format!("warning: pid {pid} holds no port of any worktree\n"),
        "{out}"
    );
    let quiet = run(&mut t.wtenv(&["-q", "release", "--hold", "0"]));
    assert_eq!(
        (quiet.code, quiet.stderr.as_str()),
        (Some(0), ""),
        "{quiet}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
}

/// `wtenv ARGS` run by a shell whose current directory was deleted under
/// it (`rmdir` of its own directory).
fn in_a_deleted_directory(t: &TestEnv, args: &[&str]) -> crate::support::Run {
    let gone = t.root().join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    let mut cmd = std::process::Command::new("sh");
    t.apply_env(&mut cmd);
    cmd.args(["-c", "rmdir \"$PWD\" && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_wtenv"))
        .args(args)
        .current_dir(&gone);
    let out = run(&mut cmd);
    assert!(!gone.exists());
    out
}

/// A `nix develop` shell exited from a directory deleted under it: its
/// EXIT trap's `release --hold $$` needs no worktree, so it needs no
/// current directory; neither do `ports --all` and `validate`. A command
/// that acts on the worktree around it says the directory is gone.
#[test]
fn release_hold_and_the_registry_views_work_from_a_deleted_directory() {
    let t = TestEnv::new();
    let (mut holder, pid) = held_env(&t);
    let ports = in_a_deleted_directory(&t, &["ports", "--all"]);
    assert_eq!(ports.code, Some(0), "{ports}");
    assert!(
        ports.stdout.contains(&format!("held by pid {pid}")),
        "{ports}"
    );
    let validate = in_a_deleted_directory(&t, &["validate"]);
    assert_eq!(validate.code, Some(0), "{validate}");
    // Their forms that need the worktree say which form works anywhere.
    for (args, form) in [
        (&["ports"][..], "'wtenv ports --all'"),
        (
            &["validate", "--verify-ports"][..],
            "'wtenv validate' without --verify-ports",
        ),
    ] {
        let here = in_a_deleted_directory(&t, args);
        assert_eq!(here.code, Some(1), "{here}");
        assert_eq!(
            here.stderr,
            format!(
                "error: the current directory no longer exists: it was deleted\n\
                 hint: cd to a directory that exists, or run {form}, which works from anywhere\n"
            )
        );
        assert!(here.stdout.is_empty(), "{here}");
    }
    let release = in_a_deleted_directory(&t, &["release", "--hold", &pid]);
    assert_eq!(release.code, Some(0), "{release}");
    assert!(
        release
            .stderr
            .contains(&format!("released port {} (app)", t.ports.start)),
        "{release}"
    );
    assert!(t.allocations().is_empty());
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// A relative `--registry` names a file of the current directory: from a
/// deleted one it said `could not open lock file ./registry.lock: No such
/// file or directory`, without a hint. It now says the directory is gone
/// and what to do, as every command that needs it does, even for the
/// forms that otherwise work from anywhere.
#[test]
fn a_relative_registry_from_a_deleted_directory_says_the_directory_is_gone() {
    let t = TestEnv::new();
    for args in [
        &["ports", "--all"][..],
        &["validate"],
        &["release", "--hold", "1"],
        &["env"],
    ] {
        let mut full = vec!["--registry", "rel.json"];
        full.extend(args);
        let out = in_a_deleted_directory(&t, &full);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            "error: the current directory no longer exists: it was deleted\n\
             hint: cd to a directory that exists\n",
            "{args:?}"
        );
    }
}
