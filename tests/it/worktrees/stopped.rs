//! A repository whose config includes a FIFO (`include.path`, a git dir
//! that came in an archive) blocks every git command there: `list` and
//! `remove` waited for their git for good, and a Ctrl-C or an agent's
//! SIGTERM ended wtenv but left git blocked (it runs in a process group
//! of its own). The first signal now stops the git step, wtenv says so in
//! one line and dies of the signal; nothing else changes.
//!
//! The git processes are found by their working directory (`/proc`):
//! Linux only.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::{create, default_path, listed_by_git};
use crate::hostile::mkfifo;
use crate::support::{TestEnv, run, wait_for};

/// A hang is a failure, not a stuck suite.
const LIMIT: Duration = Duration::from_secs(30);

/// The git processes working in `dir`.
fn gits_in(dir: &Path) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim() == "git"
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
        })
        .collect()
}

/// The repository's config includes a FIFO: from now on no git runs here.
fn include_a_fifo(t: &TestEnv) {
    let fifo = t.repo.join(".git/inc");
    mkfifo(&fifo);
    t.git(&["config", "include.path", fifo.to_str().unwrap()]);
}

/// Runs `wtenv ARGS` in its own process group until git blocks on the
/// FIFO, sends `signal` (to wtenv's group when `group`: a terminal's
/// Ctrl-C; else to wtenv alone: an agent's SIGTERM), and returns how
/// wtenv ended and what it said. Whatever happens, no git is left
/// blocked behind.
fn signalled(t: &TestEnv, args: &[&str], signal: Signal, group: bool) -> (Option<i32>, String) {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child: Child = t
        .wtenv(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let cleanup = |child: &mut Child| {
        let _ = child.kill();
        for git in gits_in(&t.repo) {
            let _ = kill(Pid::from_raw(git), Signal::SIGKILL);
        }
    };
    if !wait_for(LIMIT, || !gits_in(&t.repo).is_empty()) {
        cleanup(&mut child);
        panic!("{args:?}: git never ran");
    }
    match group {
        true => killpg(pid, signal).unwrap(),
        false => kill(pid, signal).unwrap(),
    }
    if !wait_for(LIMIT, || child.try_wait().unwrap().is_some()) {
        cleanup(&mut child);
        panic!("{args:?}: wtenv still waits for git {LIMIT:?} after {signal}");
    }
    let left = wait_for(Duration::from_secs(5), || gits_in(&t.repo).is_empty());
    let gits = gits_in(&t.repo);
    cleanup(&mut child);
    assert!(left, "{args:?}: git is left blocked: {gits:?}");
    let out = child.wait_with_output().unwrap();
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wtenv list`, SIGTERM to wtenv alone (an agent's tool timeout): git
/// is stopped, wtenv dies of SIGTERM, the registry is as it was.
#[test]
fn list_in_a_repository_whose_config_includes_a_fifo_stops_git_on_sigterm() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n");
    assert_eq!(create(&t, "keep", &["--ports"]).code, Some(0));
    let registry = std::fs::read(t.registry_path()).unwrap();
    include_a_fifo(&t);
    let (signal, stderr) = signalled(&t, &["list"], Signal::SIGTERM, false);
    assert_eq!(signal, Some(Signal::SIGTERM as i32), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: git worktree list was stopped by SIGTERM: nothing was listed; \
             if git never ends here, look at what {} includes (include.path, includeIf.*.path): \
             git blocks reading a FIFO there\n",
            t.repo.join(".git/config").display()
        )
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
}

/// `wtenv remove ID`, Ctrl-C (SIGINT to wtenv's group; git has its own):
/// git is stopped before it removed anything (it blocks reading its
/// config), wtenv dies of SIGINT, the worktree and its ports are kept;
/// once the FIFO is gone, `remove` run again removes it.
#[test]
fn remove_in_a_repository_whose_config_includes_a_fifo_stops_git_on_ctrl_c() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n");
    assert_eq!(create(&t, "keep", &["--ports"]).code, Some(0));
    let keep = default_path(&t, "feature", "keep");
    let registry = std::fs::read(t.registry_path()).unwrap();
    include_a_fifo(&t);
    let (signal, stderr) = signalled(&t, &["remove", "keep"], Signal::SIGINT, true);
    assert_eq!(signal, Some(Signal::SIGINT as i32), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: git worktree remove was stopped by SIGINT: {} may be partly removed, its ports are kept; \
             run again: wtenv remove '{}' (if git refuses it for a missing .git file, remove what is left first: rm -r '{}'); \
             if git never ends here",
            keep.display(),
            keep.display(),
            keep.display()
        )) && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
    // Git never got to it: the worktree is whole.
    assert!(keep.join(".git").is_file() && keep.join("wtenv.toml").is_file());
    std::fs::remove_file(t.repo.join(".git/inc")).unwrap();
    assert!(listed_by_git(&t, &keep));
    let out = run(&mut t.wtenv(&["remove", "keep"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!keep.exists() && t.allocations().is_empty(), "{out}");
}
