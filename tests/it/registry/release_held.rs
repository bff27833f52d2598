//! `release` is all or nothing: a port a live process holds (a `run`
//! serving, a shell that holds them) is never released from under it,
//! and then nothing is; a dead holder is no holder (QA 23, finding 1).

use super::gone_holder_registry;
use crate::support::{Sleeper, TestEnv, held_env, held_run, run};

/// A live `wtenv run` holds the worktree's port: `release` (the whole
/// worktree, `--service` of its port, `--worktree` of its path) exits 1
/// naming the port, its service and holder, with how to stop it, and the
/// registry stays byte for byte; a service nobody holds is released as
/// before; once the run ends, `release` releases the rest.
#[test]
fn release_refuses_what_a_live_run_holds_and_releases_it_once_the_run_ends() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let (serving, held) = held_run(&t, &t.repo);
    let (port, pid) = held[0];
    let extra = run(&mut t.wtenv(&["allocate", "--service", "extra"]));
    assert_eq!(extra.code, Some(0), "{extra}");
    let before = std::fs::read(t.registry_path()).unwrap();
    let repo = t.repo.to_str().unwrap();
    for args in [
        &["release"][..],
        &["release", "--service", "app"],
        &["release", "--worktree", repo],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "error: ports of worktree {} are held by live processes; nothing was released:\n  port {port} (app): held by pid {pid}: wtenv run -- sleep 600\n",
                t.repo.display()
            )),
            "{args:?}: {out}"
        );
        assert!(
            out.stderr.contains(&format!(
                "hint: stop what holds them, then release again: a wtenv run: Ctrl-C it, or 'kill {pid}'\n"
            )),
            "{args:?}: {out}"
        );
        assert!(!out.stderr.contains("released port"), "{args:?}: {out}");
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            before,
            "{args:?}: {out}"
        );
    }
    let out = run(&mut t.wtenv(&["release", "--service", "extra"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("released port {} (extra)", extra.stdout.trim())),
        "{out}"
    );
    drop(serving);
    let out = run(&mut t.wtenv(&["release"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!("released port {port} (app)")),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{out}");
}

/// A shell that holds the worktree's ports (`env --hold`, as a `nix
/// develop` shell does) is a live holder too: the hint says to leave it
/// or drop its holds; `release --hold` does, and `release` then works.
#[test]
fn release_refuses_what_a_holding_shell_holds_and_names_release_hold() {
    let t = TestEnv::new();
    let (shell, pid) = held_env(&t);
    // Killed on drop: a failed assertion leaks nothing.
    let _shell = Sleeper(shell);
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["release"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "  port {} (app): held by pid {pid}: sleep 600\n",
            t.ports.start
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "a shell that holds them (env --hold, a nix develop shell): exit it, or 'wtenv release --hold {pid}'"
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before, "{out}");
    let dropped = run(&mut t.wtenv(&["release", "--hold", &pid]));
    assert_eq!(dropped.code, Some(0), "{dropped}");
    let out = run(&mut t.wtenv(&["release"]));
    assert_eq!(out.code, Some(0), "{out}");
}

/// A holder recorded alive once but gone now (here this test's pid with
/// another start time, as a SIGKILLed `run`'s reused pid) holds nothing:
/// `release` releases the port as before.
#[test]
fn release_takes_a_port_whose_recorded_holder_is_gone() {
    let t = TestEnv::new();
    gone_holder_registry(&t);
    let out = run(&mut t.wtenv(&["release"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}
