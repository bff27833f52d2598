//! `release` is all or nothing: a port a live process holds (a `run`
//! serving, a shell that holds them) is never released from under it,
//! and then nothing is; a dead holder is no holder (QA 23, finding 1),
//! unless its orphans run on (QA 23 h7, finding 1).

use std::process::Stdio;
use std::time::Duration;

use super::gone_holder_registry;
use crate::support::{Sleeper, TestEnv, held_env, held_run, run, wait_for};

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

/// A `wtenv run` SIGKILLed while its server serves (QA 23 h7, finding 1):
/// the holder is gone but its group's orphan listens on the port, and the
/// sweep and `validate` keep the hold (it is what names the orphan).
/// `release` keeps it too: exit 1, the orphan named as `ports` names it,
/// the hint's `wtenv validate --fix`, and the registry byte for byte.
/// Once `validate --fix` has stopped the orphan, `release` releases.
#[test]
fn release_refuses_a_gone_holders_port_while_its_orphans_serve_on_it() {
    let t = TestEnv::new();
    let port = t.ports.start;
    let mut w = t
        .wtenv(&[
            "run",
            "--",
            "python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let group = || t.registry()["allocations"][0]["holders"][0]["pgid"].as_u64();
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    let ready = wait_for(Duration::from_secs(60), || {
        t.registry_path().exists() && group().is_some() && listening()
    });
    let _ = w.kill();
    let _ = w.wait();
    assert!(ready, "{}", t.registry());
    // The server leads its group: the orphan, killed on drop.
    let server = group().unwrap() as u32;
    let _server = KillOnDrop(server);
    assert!(listening(), "the orphan serves on");
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["release"]));
    assert_eq!(out.code, Some(1), "{out}");
    // As the kernel has its command line (python3 may be a full path).
    let command = std::fs::read_to_string(format!("/proc/{server}/cmdline")).unwrap();
    let command = command.trim_end_matches('\0').replace('\0', " ");
    assert!(command.ends_with(&format!("python3 -m http.server {port} --bind 127.0.0.1")));
    let orphan = format!(
        "held by pid {}: gone, its orphans run: pid {server} ({command})",
        w.id()
    );
    assert!(
        out.stderr.contains(&format!(
            "error: ports of worktree {} are held by live processes; nothing was released:\n  port {port} (app): {orphan}: wtenv run -- python3 -m http.server {port} --bind 127.0.0.1\n",
            t.repo.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "hint: stop what holds them, then release again: orphans whose holder is gone: 'wtenv validate --fix' stops them, or 'kill {server}'\n"
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before, "{out}");
    let ports = run(&mut t.wtenv(&["ports"]));
    assert!(ports.stdout.contains(&orphan), "as ports says it: {ports}");
    // The hint's command, as it says.
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fix.code, Some(0), "{fix}");
    assert!(!listening(), "{fix}");
    let out = run(&mut t.wtenv(&["release"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// SIGKILLs a process when dropped (an orphan no wtenv supervises).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}
