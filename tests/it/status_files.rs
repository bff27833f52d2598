//! `up/<pid>.json`, the status file of a running `up`: one left by a
//! SIGKILLed `up` (or whose pid was reused since) is removed by
//! `validate --fix` and by the next `up`; nothing else there is touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::supervise::{PATIENCE, Wtenv, alive, assert_all_clean, server_script, wait_pidfile};
use crate::support::{Sleeper, TestEnv, wait_for};
use wtenv::process::{self, ProcessId};

/// A pid that was alive a moment ago and is not any more.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn status_json(pid: u32, start_time: u64) -> String {
    format!(r#"{{"version":1,"pid":{pid},"start_time":{start_time},"services":{{}}}}"#)
}

/// What must stay whatever is swept: a live `up`'s file (its true start
/// time), a link named as a dead `up`'s file (and what it points to), a
/// name that is not the pid as `up` writes it, a directory, another file.
struct Bystanders {
    _live: Sleeper,
    paths: Vec<PathBuf>,
    target: PathBuf,
}

impl Bystanders {
    fn plant(t: &TestEnv, dir: &Path) -> Bystanders {
        let live = Sleeper::new();
        let me = ProcessId::of(live.0.id()).unwrap();
        let live_file = dir.join(format!("{}.json", me.pid));
        std::fs::write(&live_file, status_json(me.pid, me.start_time)).unwrap();
        let target = t.root().join("target.json");
        std::fs::write(&target, status_json(dead_pid(), 1)).unwrap();
        let link = dir.join(format!("{}.json", dead_pid()));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let padded = dir.join(format!("0{}.json", dead_pid()));
        std::fs::write(&padded, status_json(dead_pid(), 1)).unwrap();
        let subdir = dir.join(format!("{}.json", dead_pid()));
        std::fs::create_dir(&subdir).unwrap();
        let other = dir.join("notes.txt");
        std::fs::write(&other, "mine").unwrap();
        Bystanders {
            _live: live,
            paths: vec![live_file, link, padded, subdir, other],
            target,
        }
    }

    fn assert_kept(&self) {
        for p in &self.paths {
            assert!(p.symlink_metadata().is_ok(), "{} was removed", p.display());
        }
        assert!(self.target.exists(), "a link was followed");
    }
}

/// A file of a live pid that records another start time: the pid reused.
fn plant_reused(dir: &Path) -> (Sleeper, PathBuf) {
    let c = Sleeper::new();
    let path = dir.join(format!("{}.json", c.0.id()));
    std::fs::write(&path, status_json(c.0.id(), 1)).unwrap();
    (c, path)
}

fn start_up(t: &TestEnv, pidfile: &Path) -> (Wtenv, u32, PathBuf) {
    let w = Wtenv::start(t, &["up", "--grace", "5s"]);
    let server = wait_pidfile(pidfile, &w);
    let file = t.state_dir().join(format!("up/{}.json", w.pid()));
    assert!(
        wait_for(PATIENCE, || file.exists()),
        "no status file: {}",
        w.stderr_text()
    );
    (w, server, file)
}

#[test]
fn stale_status_files_are_removed_by_validate_fix_and_by_the_next_up() {
    let t = TestEnv::new();
    let script = server_script(&t);
    let pidfile = t.root().join("web.pid");
    t.write_config(&format!(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"exec python3 {} {}\"\n",
        script.display(),
        pidfile.display()
    ));
    let port = t.ports.port(0);
    let dir = t.state_dir().join("up");

    // A SIGKILLed up cannot remove its file; its service runs on.
    let (mut w, server, killed) = start_up(&t, &pidfile);
    w.signal(Signal::SIGKILL);
    w.wait();
    assert!(killed.exists());
    assert!(alive(server));
    let (reused, reused_file) = plant_reused(&dir);
    let bystanders = Bystanders::plant(&t, &dir);

    let out = crate::support::run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "removed 2 status files of gone up processes from {}\n",
            dir.display()
        )),
        "{out}"
    );
    assert!(!killed.exists(), "the killed up's file stays: {out}");
    assert!(!reused_file.exists(), "a reused pid's file stays: {out}");
    bystanders.assert_kept();
    assert_all_clean(&t, process::pgid(server).unwrap_or(server), server, port);

    // The next up removes the stale files of others, not only its own.
    std::fs::remove_file(&pidfile).unwrap();
    let dead = dir.join(format!("{}.json", dead_pid()));
    std::fs::write(&dead, status_json(dead_pid(), 1)).unwrap();
    std::fs::write(&reused_file, status_json(reused.0.id(), 1)).unwrap();
    let (mut w, server, own) = start_up(&t, &pidfile);
    assert!(!dead.exists(), "a dead up's file stays");
    assert!(!reused_file.exists(), "a reused pid's file stays");
    assert!(own.exists());
    bystanders.assert_kept();
    let pgid = process::pgid(server).unwrap();
    w.signal(Signal::SIGINT);
    w.wait();
    assert_all_clean(&t, pgid, server, port);
}
