//! What `run` exits with: the command's code or signal (a shell's 128 +
//! N), 127 and 126 for a command that cannot start (and what it lets go),
//! and a usage error for a mistyped flag, the command's own flags left to
//! it.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use super::assert_no_holds;
use crate::support::TestEnv;

#[test]
fn exit_code_7_is_propagated_and_the_port_released() {
    let t = TestEnv::new();
    let out = crate::support::run(
        t.wtenv(&["run", "--", "sh", "-c", "test -n \"$PORT\" && exit 7"])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(7), "{out}");
    assert_no_holds(&t);
    assert!(
        t.allocations().is_empty(),
        "a port allocated by run is released"
    );
}

#[test]
fn a_child_killed_by_sigterm_makes_wtenv_die_of_sigterm() {
    let t = TestEnv::new();
    let status = t
        .wtenv(&["run", "--", "sh", "-c", "kill -TERM $$"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    // The shell's view: 128 + 15.
    let shell = Command::new("sh")
        .arg("-c")
        .arg("\"$@\"; echo $?")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_wtenv"))
        .args(["run", "--", "sh", "-c", "kill -TERM $$"])
        .current_dir(&t.repo)
        .env_clear()
        .envs(isolated_env(&t))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&shell.stdout).trim(), "143");
    assert_no_holds(&t);
}

fn isolated_env(t: &TestEnv) -> Vec<(String, String)> {
    t.wtenv(&[])
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect()
}

#[test]
fn a_command_not_found_exits_127_and_releases_the_port() {
    let t = TestEnv::new();
    let out = crate::support::run(
        t.wtenv(&["run", "--", "wtenv-no-such-command"])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .contains("could not run wtenv-no-such-command: command not found"),
        "{out}"
    );
    assert_no_holds(&t);
    assert!(t.allocations().is_empty());
}

/// A script that is there but whose `#!` interpreter is not: execve says
/// ENOENT, and "command not found" sent the user looking for a file they
/// could see. The error names the interpreter, exit 127 as a shell's.
#[test]
fn a_script_whose_interpreter_is_missing_names_it_and_exits_127() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let script = t.repo.join("serve");
    std::fs::write(&script, "#!/nonexistent/python9 -u\nprint(1)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = crate::support::run(t.wtenv(&["run", "--", "./serve"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(127), "{out}");
    assert_eq!(
        out.stderr,
        "error: could not run ./serve: its interpreter /nonexistent/python9 (its #! line) was not found\n\
         hint: install /nonexistent/python9, or fix the first line of ./serve\n"
    );
    // An empty name is shown as one.
    let out = crate::support::run(t.wtenv(&["run", "--", ""]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .starts_with("error: could not run '': command not found\n"),
        "{out}"
    );
    assert_no_holds(&t);
    assert!(t.allocations().is_empty());
}

/// `run --service S` holds only S's port and reserves the others (as
/// `env` does). A command that could not start, or a socket that could
/// not be bound, lets S's port go as at any exit, and leaves the others
/// reserved and held by nothing: a reservation has no owner to give it
/// back, and a shell may have exported it meanwhile.
#[test]
fn run_service_that_cannot_start_leaves_no_hold_and_the_others_reserved() {
    let t = TestEnv::new();
    for args in [
        &["run", "--service", "web", "--", "wtenv-no-such-command"][..],
        &["run", "--service", "web", "--sockets", "--", "true"],
    ] {
        // A socket on an address this machine does not have cannot be bound.
        t.write_config("[services.web]\nbind = \"192.0.2.1\"\n[services.api]\n[services.db]\n");
        let out = crate::support::run(t.wtenv(args).stdin(Stdio::null()));
        assert_ne!(out.code, Some(0), "{args:?}: {out}");
        let allocations = t.registry()["allocations"].as_array().unwrap().clone();
        let services: Vec<&str> = allocations
            .iter()
            .map(|a| a["service"].as_str().unwrap())
            .collect();
        assert_eq!(services, ["api", "db"], "{args:?}: {out}");
        for a in &allocations {
            assert_eq!(a["reserved"], true, "{args:?}: {a}");
            assert!(
                a.get("holders")
                    .is_none_or(|h| h.as_array().unwrap().is_empty()),
                "{a}"
            );
        }
    }
}

#[test]
fn a_file_that_is_not_executable_exits_126() {
    let t = TestEnv::new();
    let file = t.root().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let out = crate::support::run(
        t.wtenv(&["run", "--", file.to_str().unwrap()])
            .stdin(Stdio::null()),
    );
    assert_eq!(out.code, Some(126), "{out}");
    assert!(t.allocations().is_empty());
}

/// A mistyped flag before the command is a usage error that runs
/// nothing; the command's own flags, after `--` or after its name, are
/// its own, and `--` lets a command start with a hyphen.
#[test]
fn run_refuses_a_mistyped_flag_and_leaves_the_commands_flags_to_it() {
    let t = TestEnv::new();
    let ran = t.root().join("ran");
    let ran = ran.to_str().unwrap();
    for typo in [&["--gracee", "1s"][..], &["--bogus"]] {
        let args = [&["run"], typo, &["--", "touch", ran]].concat();
        let out = crate::support::run(&mut t.wtenv(&args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .starts_with(&format!("error: unexpected argument '{}' found", typo[0])),
            "{args:?}: {out}"
        );
        assert!(!Path::new(ran).exists(), "{args:?} ran the command");
    }
    let echo = ["sh", "-c", "echo \"$@\"", "sh", "start", "--port", "3"];
    for args in [
        [&["run", "--"][..], &echo].concat(),
        [&["run"][..], &echo].concat(),
    ] {
        let out = crate::support::run(&mut t.wtenv(&args));
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
        assert_eq!(out.stdout, "start --port 3\n", "{args:?}: {out}");
    }
    let out = crate::support::run(&mut t.wtenv(&["run", "--", "-x"]));
    assert_eq!(out.code, Some(127), "{out}");
    assert!(
        out.stderr
            .starts_with("error: could not run -x: command not found"),
        "{out}"
    );
}

/// A directory named as the command was "permission denied (not
/// executable)" (execve's EACCES): it is said to be a directory, as a
/// shell says it, exit 126.
#[test]
fn a_directory_run_as_a_command_is_said_to_be_one_and_exits_126() {
    let t = TestEnv::new();
    let out = crate::support::run(t.wtenv(&["run", "--", "/etc"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(126), "{out}");
    assert_eq!(
        out.stderr,
        "error: could not run /etc: is a directory\nhint: name a program, not a directory\n"
    );
    // Under `up`, a directory of the worktree is named by its path.
    std::fs::create_dir(t.repo.join("serve")).unwrap();
    t.write_config("[services.web]\nrun = \"./serve\"\n");
    let out = crate::support::run(t.wtenv(&["up"]).stdin(Stdio::null()));
    assert_eq!(out.code, Some(126), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: could not run service web ({}/serve): is a directory\n",
            t.repo.display()
        )),
        "{out}"
    );
    assert_no_holds(&t);
}
