//! What is planted in the background state directory is never written
//! through: a worktree's lock file or a service's log that is a link, a
//! hard link to another file or a directory is refused (exit 2, naming
//! it, with the command that removes it), the file it names left as it
//! was. And a `down` whose last write fails on a full disk says that it
//! stopped the services.

use std::path::{Path, PathBuf};

use super::{DownOnDrop, free, listeners, serves};
use crate::supervise::alive;

use crate::support::{TestEnv, Tmpfs, run};

/// One python3 http.server, `web`.
fn web(t: &TestEnv) {
    t.write_config(
        "[services.web]\nrun = \"exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
}

/// `web` run in the background once, and stopped: its lock file and its
/// log are there.
fn ran_once(t: &TestEnv) {
    web(t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
}

/// The file in the background directory whose name ends with `suffix`.
fn planted_at(t: &TestEnv, suffix: &str) -> PathBuf {
    std::fs::read_dir(t.state_dir().join("background"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in the background directory"))
}

/// A user's file, and a hard link to it planted at `at`.
fn hard_link_at(t: &TestEnv, at: &Path) -> PathBuf {
    let notes = t.root().join("home/notes.txt");
    std::fs::create_dir_all(notes.parent().unwrap()).unwrap();
    std::fs::write(&notes, "my notes\n").unwrap();
    let _ = std::fs::remove_file(at);
    std::fs::hard_link(&notes, at).unwrap();
    notes
}

/// QA finding: the worktree's lock file planted as a hard link to a
/// user's file had that file emptied by `up -d` and `down` (the holder
/// writes its name in it, and empties it when done); a directory there
/// was an exit 1 with the OS's words. Both are refused as a planted
/// registry lock is.
#[test]
fn a_planted_worktree_lock_is_refused_and_its_target_kept() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    ran_once(&t);
    let lock = planted_at(&t, ".lock");
    let notes = hard_link_at(&t, &lock);
    for args in [&["up", "-d", "--manager", "wtenv"][..], &["down"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: worktree lock {} cannot be used: it has 2 hard links, so it is also another file",
                lock.display()
            )),
            "{args:?}: {out}"
        );
        assert!(
            out.stderr
                .contains("hint: something other than wtenv put it there: remove it (rm "),
            "{out}"
        );
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
    }
    assert!(free(t.ports.port(0)));
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let out = run(&mut t.wtenv(&["down"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("it is a directory, not a regular file"),
        "{out}"
    );
    assert!(out.stderr.contains("(rmdir "), "{out}");
}

/// QA finding: a service's log planted as a hard link to a user's file
/// had the service's output appended to that file; as a symbolic link,
/// `up -d` said the service `ended (exit code 1)` and pointed to a `logs`
/// that showed nothing. Both are refused before anything is reserved or
/// started.
#[test]
fn a_planted_log_is_refused_before_anything_starts() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    ran_once(&t);
    let log = planted_at(&t, "-web.log");
    let notes = hard_link_at(&t, &log);
    let elsewhere = t.root().join("home/elsewhere");
    for planted in ["hard link", "symbolic link"] {
        if planted == "symbolic link" {
            std::fs::remove_file(&log).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &log).unwrap();
        }
        let before = std::fs::read(t.registry_path()).unwrap();
        let out = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
        assert_eq!(out.code, Some(2), "{planted}: {out}");
        assert!(
            out.stderr
                .starts_with(&format!("error: log {} cannot be used: ", log.display())),
            "{planted}: {out}"
        );
        assert!(out.stderr.contains("put it there: remove it (rm "), "{out}");
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            before,
            "{planted}"
        );
        assert!(free(t.ports.port(0)), "{planted}: {out}");
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
        assert!(!elsewhere.exists(), "{planted}");
    }
}

/// QA finding: `down` on a full disk stopped the service, then failed on
/// its last write with `nothing was changed`: it says what it stopped,
/// and a `down` once there is room again forgets it.
#[test]
fn down_on_a_full_disk_says_it_stopped_the_services() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("state"), "1m");
    let _down = DownOnDrop(&t);
    web(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = t.ports.port(0);
    assert!(serves(port), "{up}");
    let pids = listeners(port);
    disk.fill();
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(1), "{down}");
    assert!(
        down.stderr.contains("error: stopped wtenv-")
            && down.stderr.contains(", but could not then drop the holds"),
        "{down}"
    );
    assert!(
        down.stderr.contains("hint: its disk is full (or your quota used up): free some space, then run 'wtenv down' again"),
        "{down}"
    );
    assert!(!down.stderr.contains("nothing was changed"), "{down}");
    for pid in pids {
        assert!(!alive(pid), "{pid}: {down}");
    }
    std::fs::remove_file(disk.path().join("fill")).unwrap();
    let again = run(&mut t.wtenv(&["down"]));
    assert_eq!(again.code, Some(0), "{again}");
    let status = run(&mut t.wtenv(&["status"]));
    assert!(
        status.stderr.contains("nothing of this worktree runs"),
        "{status}"
    );
}

/// QA finding: `up -d` that could not make `<state>/background` on a full
/// disk (no inode left) said the OS's words alone; it says what to do, as
/// every other write of the state directory does.
#[test]
fn up_detach_on_a_full_disk_says_what_to_do() {
    let t = TestEnv::new();
    let disk = Tmpfs::mount(&t.root().join("state"), "1m,nr_inodes=64");
    web(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let mut n = 0;
    while std::fs::File::create(disk.path().join(format!("inode-{n}"))).is_ok() {
        n += 1;
    }
    let before = std::fs::read(t.registry_path()).unwrap();
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("No space left on device"), "{up}");
    assert!(
        up.stderr.contains("hint: its disk is full (or your quota used up): nothing was changed; free some space, then run the command again"),
        "{up}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
    assert!(free(t.ports.port(0)));
}
