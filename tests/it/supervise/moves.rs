//! A supervising wtenv (`run`, `up`) whose worktree `git worktree move`
//! takes elsewhere while it runs: what it writes later (a restarted
//! service's group) lands on the entries that followed the worktree, and
//! its holds are released there when it ends. One removed under it
//! cannot restart a service, and says why.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use wtenv::probe::{self, PortState};

use super::{PATIENCE, Wtenv, app_port, assert_all_clean, recorded_pgid};
use crate::support::{TestEnv, wait_for};

/// A server on `$PORT` that `exec`s, so its group's leader listens.
const SERVE: &str = "exec python3 -m http.server $PORT --bind 127.0.0.1";

/// `git worktree move FROM TO`.
fn move_worktree(t: &TestEnv, from: &Path, to: &Path) {
    t.git(&[
        "worktree",
        "move",
        from.to_str().unwrap(),
        to.to_str().unwrap(),
    ]);
}

/// `wtenv ARGS` in `dir`; it must succeed.
fn ok_in(t: &TestEnv, dir: &Path, args: &[&str]) -> crate::support::Run {
    let out = crate::support::run(&mut t.wtenv_in(dir, args));
    assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
    out
}

/// The one allocation of `port`: its worktree, and its holders' pgids.
fn entry(t: &TestEnv, port: u16) -> (String, Vec<Option<u64>>) {
    let reg = t.registry();
    let a = reg["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["port"] == port)
        .unwrap_or_else(|| panic!("no entry of {port}: {reg}"))
        .clone();
    let pgids = a["holders"]
        .as_array()
        .map(|h| h.iter().map(|h| h["pgid"].as_u64()).collect())
        .unwrap_or_default();
    (a["worktree"].as_str().unwrap().to_owned(), pgids)
}

/// `validate` finds nothing.
fn assert_valid(t: &TestEnv) {
    let check = crate::support::run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
}

/// A worktree `first` whose `wtenv ARGS` serves the one service `app`
/// (declared by `config`), started and listening; returns the worktree,
/// the wtenv, its port and the group recorded on its hold.
fn serving(t: &TestEnv, config: &str, args: &[&str]) -> (PathBuf, Wtenv, u16, u32) {
    t.write_config(config);
    t.git(&["commit", "-q", "--allow-empty", "-am", "the service"]);
    let first = t.add_worktree("first");
    let port = app_port(t);
    let w = Wtenv::start_in(t, &first, args);
    assert!(wait_for(PATIENCE, || t.registry_path().exists()));
    let pgid = recorded_pgid(t, port);
    assert!(
        wait_for(PATIENCE, || probe::probe(port).unwrap()
            == PortState::Occupied),
        "the server never listened\nstderr: {}",
        w.stderr_text()
    );
    (first, w, port, pgid)
}

/// `up` started before `git worktree move`: once `env` in the moved
/// worktree made its entries follow, a restart of its service records the
/// new group there (it wrote at the path it started at, where no entry is
/// left: the hold kept naming the dead group).
#[test]
fn a_restarted_service_of_a_moved_worktree_records_its_group_where_the_entries_went() {
    let t = TestEnv::new();
    let config =
        format!("[services.app]\nenv = [\"PORT\"]\nrun = \"{SERVE}\"\nrestart = \"on-failure\"\n");
    let (first, mut w, port, old) = serving(&t, &config, &["up"]);
    let moved = t.root().join("moved");
    move_worktree(&t, &first, &moved);
    ok_in(&t, &moved, &["env"]);
    let here = moved.to_str().unwrap().to_owned();
    assert_eq!(entry(&t, port), (here.clone(), vec![Some(u64::from(old))]));

    killpg(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    let restarted = || {
        let (_, pgids) = entry(&t, port);
        pgids
            .first()
            .copied()
            .flatten()
            .filter(|&p| p != u64::from(old))
    };
    assert!(
        wait_for(PATIENCE, || restarted().is_some()),
        "the restart's group was never recorded: {}\nstderr: {}",
        t.registry(),
        w.stderr_text()
    );
    let new = restarted().unwrap() as u32;
    assert!(
        super::alive(new),
        "the recorded group {new} is not the restart's"
    );
    let (at, pgids) = entry(&t, port);
    assert_eq!((at, pgids.len()), (here, 1), "{}", t.registry());
    let ports = ok_in(&t, &moved, &["ports", "--json"]);
    let listed: Value = serde_json::from_str(&ports.stdout).unwrap();
    assert!(
        listed.to_string().contains(&format!("\"pgid\":{new}")),
        "ports --json names the restart's group {new}: {listed}"
    );
    assert_valid(&t);

    w.signal(Signal::SIGTERM);
    w.wait();
    assert_all_clean(&t, new, new, port);
    assert_valid(&t);
}

/// Two moves with no wtenv command between (first → second → third):
/// `env` in the third path makes the entries follow there, held, and the
/// `run` releases its hold there when it stops.
#[test]
fn a_run_whose_worktree_moved_twice_releases_its_hold_where_the_entries_went() {
    let t = TestEnv::new();
    let config = "[services.app]\nenv = [\"PORT\"]\n";
    let (first, mut w, port, pgid) = serving(&t, config, &["run", "--", "sh", "-c", SERVE]);
    let (second, third) = (t.root().join("second"), t.root().join("third"));
    move_worktree(&t, &first, &second);
    move_worktree(&t, &second, &third);
    ok_in(&t, &third, &["env"]);
    let here = third.to_str().unwrap().to_owned();
    assert_eq!(entry(&t, port), (here, vec![Some(u64::from(pgid))]));
    assert_valid(&t);

    w.signal(Signal::SIGTERM);
    w.wait();
    assert_all_clean(&t, pgid, pgid, port);
    assert_valid(&t);
}

/// Moved on after its entries followed it (first → second, `env` there,
/// then second → third, no command in the third path yet): the `run`
/// still clears its hold where the entries are, at the path the worktree
/// left (it looked only where it started and where it is now, and left
/// them `held by pid N: gone` for a sweep); an `env` in the third path
/// then takes them there, and `validate` finds nothing.
#[test]
fn a_run_clears_its_hold_at_a_path_its_worktree_left_after_its_entries_followed() {
    let t = TestEnv::new();
    let config = "[services.app]\nenv = [\"PORT\"]\n";
    let (first, mut w, port, pgid) = serving(&t, config, &["run", "--", "sh", "-c", SERVE]);
    let (second, third) = (t.root().join("second"), t.root().join("third"));
    move_worktree(&t, &first, &second);
    ok_in(&t, &second, &["env"]);
    move_worktree(&t, &second, &third);
    let middle = second.to_str().unwrap().to_owned();
    assert_eq!(
        entry(&t, port),
        (middle.clone(), vec![Some(u64::from(pgid))])
    );

    w.signal(Signal::SIGTERM);
    w.wait();
    assert_all_clean(&t, pgid, pgid, port);
    assert_eq!(entry(&t, port), (middle, vec![]), "the reservation stays");
    ok_in(&t, &third, &["env"]);
    let here = third.to_str().unwrap().to_owned();
    assert_eq!(entry(&t, port), (here, vec![]), "it followed");
    assert_valid(&t);
}

/// `up` whose worktree was removed (`rm -rf`) while its service ran: the
/// restart could not start there, and the error names the directory that
/// is gone, not the command (`sh` is there: "a #! interpreter ... was not
/// found" sent the user looking at the command).
#[test]
fn a_restart_in_a_removed_worktree_names_its_working_directory() {
    let t = TestEnv::new();
    let config =
        format!("[services.app]\nenv = [\"PORT\"]\nrun = \"{SERVE}\"\nrestart = \"on-failure\"\n");
    let (first, mut w, _, old) = serving(&t, &config, &["up", "--grace", "5s"]);
    std::fs::remove_dir_all(&first).unwrap();
    killpg(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    let status = w.wait();
    let stderr = w.stderr_text();
    let gone = format!(
        "error: could not run service app: its working directory {} is gone\n\
         hint: its worktree was moved or removed: 'wtenv list' shows the worktrees and where they are\n",
        first.display()
    );
    assert!(stderr.contains(&gone), "{stderr}");
    assert!(!stderr.contains("interpreter"), "{stderr}");
    assert_eq!(status.code(), Some(127), "{stderr}");
}
