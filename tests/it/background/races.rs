//! Starts and stops of one worktree's background services at once: one
//! lock per worktree makes them take turns, each made deterministic here
//! by ordering (a service that listens only once the test says so, one
//! that ignores SIGTERM), never by sleeps.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{DownOnDrop, free, naming, ports, serves, status_cells};
use crate::support::{Run, TestEnv, run, wait_for};

/// `wtenv ARGS` started in the main worktree, its output in files.
pub(super) struct Spawned {
    pub(super) child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Spawned {
    pub(super) fn start(t: &TestEnv, name: &str, args: &[&str]) -> Spawned {
        Spawned::of(t, name, t.wtenv(args))
    }

    /// `command` (a `wtenv` of [`TestEnv`]'s), started.
    pub(super) fn of(t: &TestEnv, name: &str, mut command: Command) -> Spawned {
        let out = t.root().join(format!("{name}.out"));
        let err = t.root().join(format!("{name}.err"));
        let child = command
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Spawned { child, out, err }
    }

    pub(super) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub(super) fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        Run::of(
            status,
            std::fs::read(&self.out).unwrap(),
            std::fs::read(&self.err).unwrap(),
        )
    }
}

/// A test that failed half-way stops its wtenv with SIGTERM first, so that
/// a foreground `up` stops its services (SIGKILL would leave them).
impl Drop for Spawned {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let ended = wait_for(Duration::from_secs(20), || {
                self.child.try_wait().ok().flatten().is_some()
            });
            if !ended {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

/// A service `web` whose server listens only once the test creates `go`
/// in the worktree: the test, not a sleep, decides when it is ready.
const GATED_WEB: &str = "[services.web]\nrun = \"while [ ! -e go ]; do sleep 0.05; done; exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n";

/// The record files of the main worktree's units.
fn records(t: &TestEnv) -> Vec<PathBuf> {
    let dir = t.state_dir().join("background");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "json"));
    found
}

fn record_of(t: &TestEnv, service: &str) -> PathBuf {
    t.state_dir()
        .join(format!("background/{}.json", naming(t).unit(service)))
}

fn touch(path: &Path) {
    std::fs::write(path, "").unwrap();
}

/// Two `up -d` at once: the loser started a second unit of the same name,
/// failed on the port, and its cleanup removed the winner's record (the
/// service ran where `status` and `down` could not see it). The second
/// now waits for the first, saying for whom, and then finds its service
/// running: `(already running)`, one unit, one record.
#[test]
fn a_second_up_detach_waits_for_the_first_and_finds_its_service_running() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // Listens once the test creates `go` in the worktree.
    t.write_config(GATED_WEB);
    let (web, _) = ports(&t);
    let first = Spawned::start(&t, "first", &["up", "-d", "--manager", "wtenv"]);
    // Its unit started, not ready: the first holds the lock.
    assert!(
        wait_for(Duration::from_secs(30), || record_of(&t, "web").exists()),
        "{}",
        first.stderr()
    );
    let second = Spawned::start(&t, "second", &["up", "-d", "--manager", "wtenv"]);
    let waiting = format!(
        "wtenv: waiting for 'wtenv up --detach' (pid {}) in this worktree\n",
        first.child.id()
    );
    let said = wait_for(Duration::from_secs(30), || {
        second.stderr().contains(&waiting)
    });
    assert!(said, "{}", second.stderr());
    touch(&t.repo.join("go"));
    let first = first.finish();
    assert_eq!(first.code, Some(0), "{first}");
    let second = second.finish();
    assert_eq!(second.code, Some(0), "{second}");
    assert!(
        second.stdout.contains("(already running)"),
        "{second}\n{first}"
    );
    assert_eq!(second.stderr.matches("waiting for").count(), 1, "{second}");
    assert_eq!(records(&t).len(), 1, "{second}");
    assert!(serves(web));
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status_cells(&status, "web")[3], "running", "{status}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web), "{down}");
}

/// `up -d` during a slow `down` (a service that ignores SIGTERM) said
/// "(already running)" of the service being stopped, and the `down` then
/// removed the record of a unit it never stopped. It now waits for the
/// `down` and starts the service anew.
#[test]
fn up_detach_during_a_slow_down_waits_for_it_and_starts_anew() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    std::fs::write(
        t.repo.join("stubborn.py"),
        "import http.server, os, signal\n\
         signal.signal(signal.SIGTERM, lambda *a: open('termed', 'w').close())\n\
         http.server.HTTPServer(('127.0.0.1', int(os.environ['WEB_PORT'])), \
         http.server.SimpleHTTPRequestHandler).serve_forever(0.05)\n",
    )
    .unwrap();
    t.write_config("[services.web]\nrun = \"python3 stubborn.py\"\n");
    let (web, _) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv", "--grace", "3s"]));
    assert_eq!(up.code, Some(0), "{up}");
    let down = Spawned::start(&t, "down", &["down"]);
    // The service got its SIGTERM: the `down` is stopping it.
    assert!(
        wait_for(Duration::from_secs(30), || t.repo.join("termed").exists()),
        "{}",
        down.stderr()
    );
    let again = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv", "--grace", "1s"]));
    let down_pid = down.child.id();
    let down = down.finish();
    assert_eq!(down.code, Some(0), "{down}");
    assert_eq!(again.code, Some(0), "{again}");
    let waiting = format!(
        "wtenv: waiting for 'wtenv down' (pid {}) in this worktree\n",
        down_pid
    );
    assert!(!again.stdout.contains("(already running)"), "{again}");
    assert!(again.stderr.contains(&waiting), "{again}");
    assert!(serves(web), "{again}");
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status_cells(&status, "web")[3], "running", "{status}");
    assert_eq!(records(&t).len(), 1);
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web), "{down}");
}

/// The foreground `up` of a service still starting in the background
/// started a second copy, reported it ready (the background one's port
/// answered), and failed on "address in use". It now waits for the
/// `up -d`, then refuses, naming the unit and the `down` that stops it,
/// with nothing started or held.
#[test]
fn foreground_up_refuses_a_service_that_runs_as_a_background_unit() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(GATED_WEB);
    let (web, _) = ports(&t);
    let detached = Spawned::start(&t, "detached", &["up", "-d", "--manager", "wtenv", "web"]);
    assert!(
        wait_for(Duration::from_secs(30), || record_of(&t, "web").exists()),
        "{}",
        detached.stderr()
    );
    let fg = Spawned::start(&t, "fg", &["up", "web"]);
    let waiting = format!(
        "wtenv: waiting for 'wtenv up --detach' (pid {}) in this worktree\n",
        detached.child.id()
    );
    let said = wait_for(Duration::from_secs(30), || fg.stderr().contains(&waiting));
    assert!(said, "{}", fg.stderr());
    touch(&t.repo.join("go"));
    let detached = detached.finish();
    assert_eq!(detached.code, Some(0), "{detached}");
    let mut fg = fg;
    let ended = wait_for(Duration::from_secs(30), || {
        fg.child.try_wait().ok().flatten().is_some()
    });
    assert!(ended, "foreground up runs on: {}", fg.stderr());
    let fg = fg.finish();
    assert_eq!(fg.code, Some(1), "{fg}");
    let unit = naming(&t).unit("web");
    assert!(
        fg.stderr.contains(&format!(
            "error: services to start already run in the background; nothing was started:\n  web (wtenv, {unit})\n"
        )) && fg.stderr.contains("hint: stop them with 'wtenv down web' (or 'wtenv down' for all)"),
        "{fg}"
    );
    assert!(
        !fg.stdout.contains("web |") && !fg.stderr.contains("web |"),
        "{fg}"
    );
    let held: Vec<_> = super::holders(&t, "web");
    assert_eq!(held.len(), 1, "only the unit holds it: {held:?}");
    assert!(serves(web));
}

/// A port of a service to start that a background unit's process listens
/// on (here another service's, told to listen there) is the unit's: the
/// hint says `wtenv down`, not `kill PID`.
#[test]
fn a_port_a_background_unit_listens_on_is_said_with_wtenv_down() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n\
         [services.api]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n\
         health = { cmd = \"true\" }\n",
    );
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv", "api"]));
    assert_eq!(up.code, Some(0), "{up}");
    let (web, _) = ports(&t);
    assert!(wait_for(Duration::from_secs(30), || serves(web)), "{up}");
    let fg = crate::support::run_bounded(&mut t.wtenv(&["up", "web"]), Duration::from_secs(30));
    assert_eq!(fg.code, Some(1), "{fg}");
    assert!(
        fg.stderr.contains(
            "hint: a service of this worktree runs in the background there: stop it with 'wtenv down'"
        ) && !fg.stderr.contains("kill "),
        "{fg}"
    );
}

/// A supervisor SIGKILLed while `up -d` waits for its service: the
/// failed `up -d` stopped what it started but left the dead supervisor's
/// hold (`validate` exit 1, holder dead). Its ports are left reserved and
/// held by nothing, as after any failed `up -d`.
#[test]
fn a_failed_up_detach_sweeps_the_hold_of_a_supervisor_killed_meanwhile() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(GATED_WEB);
    let (web, _) = ports(&t);
    let up = Spawned::start(&t, "up", &["up", "-d", "--manager", "wtenv"]);
    // Its run has recorded the service's group: it supervises it.
    let supervised = wait_for(Duration::from_secs(30), || {
        record_of(&t, "web").exists()
            && super::holders(&t, "web")
                .first()
                .is_some_and(|h| h["pgid"].is_u64())
    });
    assert!(supervised, "{}", up.stderr());
    let supervisor = super::holders(&t, "web")[0]["pid"].as_u64().unwrap();
    super::signal(supervisor as i32, nix::sys::signal::Signal::SIGKILL);
    let up = up.finish();
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("killed by SIGKILL"), "{up}");
    assert_eq!(
        super::holders(&t, "web"),
        Vec::<serde_json::Value>::new(),
        "{up}"
    );
    let reserved = t.allocations();
    assert!(
        reserved.iter().any(|(p, s, _)| *p == web && s == "web"),
        "{reserved:?}"
    );
    let validate = run(&mut t.wtenv(&["validate"]));
    assert_eq!(validate.code, Some(0), "{validate}");
    assert!(free(web));
}

/// Ctrl-C of `up -d` while it waits for a service: it died with no word,
/// its units running on unsaid. It now says what it leaves running in
/// the background and how to stop it, then dies of SIGINT (130); the unit
/// runs on, recorded, and `down` stops it.
#[test]
fn ctrl_c_of_up_detach_says_what_it_leaves_running() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(GATED_WEB);
    let (web, _) = ports(&t);
    let up = Spawned::start(&t, "up", &["up", "-d", "--manager", "wtenv"]);
    assert!(
        wait_for(Duration::from_secs(30), || record_of(&t, "web").exists()),
        "{}",
        up.stderr()
    );
    super::signal(up.child.id(), nix::sys::signal::Signal::SIGINT);
    let up = up.finish();
    assert_eq!(up.signal, Some(2), "{up}");
    let unit = naming(&t).unit("web");
    assert!(
        up.stderr.contains(&format!(
            "warning: interrupted; left running in the background, not waited for: web ({unit})\n\
             hint: see them with 'wtenv status', stop them with 'wtenv down'"
        )),
        "{up}"
    );
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status_cells(&status, "web")[3], "running", "{status}");
    touch(&t.repo.join("go"));
    assert!(wait_for(Duration::from_secs(30), || serves(web)));
    let down = run(&mut t.wtenv(&["down"]));
    assert!(down.stderr.contains("stopped web"), "{down}");
    assert!(free(web), "{down}");
}

/// `validate --verify-ports --fix` while `up -d` starts its units: a port
/// reserved for a unit whose `run` has yet to hold it is idle and unheld,
/// and was released as stale; that `run` then allocated it held only,
/// and the reservation was gone for good once it stopped. An `up -d` at
/// work (the worktree's lock held) keeps its reservations.
#[test]
fn validate_fix_keeps_the_reservations_of_an_up_detach_at_work() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // api starts once web is ready, which it is once the test says so:
    // meanwhile api's port is reserved, and nothing holds it.
    t.write_config(
        &format!(
            "{GATED_WEB}[services.api]\nrun = \"exec python3 -m http.server $API_PORT --bind 127.0.0.1\"\n\
             depends_on = [\"web\"]\n"
        ),
    );
    let (web, api) = ports(&t);
    let up = Spawned::start(&t, "up", &["up", "-d", "--manager", "wtenv"]);
    assert!(
        wait_for(Duration::from_secs(30), || record_of(&t, "web").exists()),
        "{}",
        up.stderr()
    );
    let fix = run(&mut t.wtenv(&["validate", "--verify-ports", "--fix"]));
    assert!(
        t.allocations()
            .iter()
            .any(|(p, s, _)| *p == api && s == "api"),
        "api's reservation released: {fix}"
    );
    touch(&t.repo.join("go"));
    let up = up.finish();
    assert_eq!(up.code, Some(0), "{up}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    // Both reserved still, held by nothing.
    let reserved: Vec<serde_json::Value> = t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reserved"] == true)
        .map(|a| a["port"].clone())
        .collect();
    assert!(
        reserved.contains(&web.into()) && reserved.contains(&api.into()),
        "{reserved:?}: {}",
        t.registry()
    );
}

/// The foreground `up` looks under the worktree's lock even before any
/// record is written: an `up -d` holding it (here the test, holding it as
/// a wtenv that has not named itself) may be about to write its first.
#[test]
fn foreground_up_waits_for_the_lock_with_no_record_yet() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let (web, _) = ports(&t);
    let lock = worktree_lock(&t, &t.repo.join(".git"));
    lock.lock().unwrap();
    let fg = Spawned::start(&t, "fg", &["up", "web"]);
    let waiting = "wtenv: waiting for another wtenv in this worktree\n";
    let said = wait_for(Duration::from_secs(30), || fg.stderr().contains(waiting));
    assert!(said, "{}", fg.stderr());
    assert!(free(web), "started while the lock was held");
    lock.unlock().unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || serves(web)),
        "{}",
        fg.stderr()
    );
    super::signal(fg.child.id(), nix::sys::signal::Signal::SIGINT);
    let fg = fg.finish();
    assert!(free(web), "{fg}");
}

/// The lock file of the worktree whose git dir is `git_dir`, opened (and
/// made, with its directory): `worktree-<FNV-1a of the canonical git
/// dir>.lock` in the background directory.
pub(super) fn worktree_lock(t: &TestEnv, git_dir: &Path) -> std::fs::File {
    let dir = t.state_dir().join("background");
    std::fs::create_dir_all(&dir).unwrap();
    let git_dir = std::fs::canonicalize(git_dir).unwrap();
    let hash = git_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(format!("worktree-{hash:016x}.lock")))
        .unwrap()
}

/// `remove --force` while an `up -d` of that worktree starts, before it
/// wrote its first record: the `remove` saw nothing running (its look was
/// made without the worktree's lock), removed the worktree, and the unit
/// then started ran on where nothing could find it. It now waits for the
/// `up -d` under that lock, saying once for whom, then stops its unit.
/// Held by ordering: the test holds the worktree's lock until `up -d`
/// waits for it, then the registry's, which `up -d` wants next (its
/// ports reserved again under the worktree's lock, before its first
/// unit starts), until the `remove` says it waits.
#[test]
fn remove_force_waits_for_an_up_detach_with_no_record_yet_and_stops_its_unit() {
    remove_during_an_up_detach_with_no_record_yet(true);
}

/// A plain `remove` at the same moment refused nothing (it saw nothing
/// running) and went on to its other checks; it now waits alike, then
/// refuses, naming the unit the `up -d` started, which serves on.
#[test]
fn remove_waits_for_an_up_detach_with_no_record_yet_and_refuses_its_unit() {
    remove_during_an_up_detach_with_no_record_yet(false);
}

/// `remove` (`--force`: `force`) of a worktree while its `up -d` holds
/// the worktree's lock with no record written yet.
fn remove_during_an_up_detach_with_no_record_yet(force: bool) {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-race");
    let _down = DownIn(&t, &wt);
    // Its port reserved now: `up -d` then reads the registry only.
    let env = run(&mut t.wtenv_in(&wt, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    let web = t
        .allocations()
        .into_iter()
        .find(|(_, s, w)| s == "web" && w.ends_with("feature-race"))
        .map(|(p, _, _)| p)
        .unwrap();
    let patient = |dir: &Path, args: &[&str]| {
        let mut command = t.wtenv_in(dir, args);
        command.env("WTENV_LOCK_TIMEOUT", "120s");
        command
    };
    let lock = worktree_lock(&t, &t.repo.join(".git/worktrees/feature-race"));
    lock.lock().unwrap();
    let up = Spawned::of(&t, "up", patient(&wt, &["up", "-d", "--manager", "wtenv"]));
    let waits = "wtenv: waiting for another wtenv in this worktree\n";
    let said = wait_for(Duration::from_secs(30), || up.stderr().contains(waits));
    assert!(said, "{}", up.stderr());
    let registry = std::fs::File::open(t.state_dir().join("registry.lock")).unwrap();
    registry.lock().unwrap();
    lock.unlock().unwrap();
    // The `up -d` holds the worktree's lock (it wrote its name there),
    // and waits for the registry's.
    let holds = wait_for(Duration::from_secs(30), || {
        lock_text(&lock).contains("wtenv up --detach")
    });
    assert!(holds, "{}", up.stderr());
    assert!(
        records(&t).is_empty(),
        "a record already: the test proves nothing"
    );
    let wt_path = std::fs::canonicalize(&wt).unwrap();
    let repo = std::fs::canonicalize(&t.repo).unwrap();
    let unit = wtenv::background::Naming::at(&repo.join(".git"), &wt_path)
        .expect("git knows the worktree")
        .unit("web");
    let path = wt.to_str().unwrap();
    let (args, command): (&[&str], _) = if force {
        (&["remove", "--force", path], "wtenv remove --force")
    } else {
        (&["remove", path], "wtenv remove")
    };
    let remove = Spawned::of(&t, "remove", patient(&t.repo, args));
    let waiting = format!(
        "wtenv: waiting for 'wtenv up --detach' (pid {}) in worktree {}\n",
        up.child.id(),
        wt_path.display()
    );
    let said = wait_for(Duration::from_secs(30), || {
        remove.stderr().contains(&waiting)
    });
    assert!(said, "{command}: {}", remove.stderr());
    registry.unlock().unwrap();
    let up = up.finish();
    assert_eq!(up.code, Some(0), "{up}");
    let remove = remove.finish();
    assert_eq!(remove.stderr.matches("waiting for").count(), 1, "{remove}");
    if force {
        assert_eq!(remove.code, Some(0), "{remove}\n{up}");
        assert!(
            remove
                .stderr
                .contains(&format!("wtenv: stopped web ({unit})\n")),
            "{remove}"
        );
        assert!(!wt.exists() && free(web), "{remove}");
        assert!(records(&t).is_empty(), "{remove}");
    } else {
        assert_eq!(remove.code, Some(1), "{remove}\n{up}");
        assert!(
            remove.stderr.contains(&format!(
                "has services running in the background:\n  web (wtenv, {unit})\n"
            )),
            "{remove}"
        );
        assert!(wt.is_dir() && serves(web), "{remove}");
    }
}

/// An `up -d` that waited for a `remove --force` of its worktree got the
/// lock once the `remove` had stopped its unit, before git removed the
/// worktree, and started units in a worktree being removed. The `remove`
/// now holds the lock until it is done; the `up -d` then finds the
/// worktree gone, fails as in a deleted directory (exit 1), naming the
/// worktree, and starts nothing. Held by ordering: the unit's service
/// ignores SIGTERM (noting it got one) and exits once the test says so;
/// the test then holds the probe lock, which `remove` wants after its
/// stop, before git removes the worktree, and sees who holds the
/// worktree's lock meanwhile.
#[test]
fn up_detach_that_waited_for_a_remove_finds_the_worktree_gone() {
    up_that_waited_for_a_remove_finds_the_worktree_gone(true);
}

/// The foreground `up` waits alike (its look at what runs in the
/// background) and went on in the removed worktree; it now fails alike.
#[test]
fn up_that_waited_for_a_remove_finds_the_worktree_gone_too() {
    up_that_waited_for_a_remove_finds_the_worktree_gone(false);
}

/// An `up` (`-d`: `detach`) of a worktree while a `remove --force` of it
/// stops its unit.
fn up_that_waited_for_a_remove_finds_the_worktree_gone(detach: bool) {
    let t = TestEnv::new();
    std::fs::write(
        t.repo.join("slow_stop.py"),
        "import http.server, os, signal, threading, time\n\
         def die():\n    while not os.path.exists('die'): time.sleep(0.05)\n    os._exit(0)\n\
         def term(*a):\n    open('termed', 'w').close()\n    threading.Thread(target=die).start()\n\
         signal.signal(signal.SIGTERM, term)\n\
         http.server.HTTPServer(('127.0.0.1', int(os.environ['WEB_PORT'])), \
         http.server.SimpleHTTPRequestHandler).serve_forever(0.05)\n",
    )
    .unwrap();
    t.write_config("[services.web]\nrun = \"exec python3 slow_stop.py\"\n");
    t.git(&["add", "slow_stop.py", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "services"]);
    let wt = t.add_worktree("feature-gone");
    let _down = DownIn(&t, &wt);
    let wt_path = std::fs::canonicalize(&wt).unwrap();
    let up_d = ["up", "-d", "--manager", "wtenv", "--grace", "60s"];
    let up = run(&mut t.wtenv_in(&wt, &up_d));
    assert_eq!(up.code, Some(0), "{up}");
    let web = t
        .allocations()
        .into_iter()
        .find(|(_, s, w)| s == "web" && w.ends_with("feature-gone"))
        .map(|(p, _, _)| p)
        .unwrap();
    let patient = |dir: &Path, args: &[&str]| {
        let mut command = t.wtenv_in(dir, args);
        command.env("WTENV_LOCK_TIMEOUT", "120s");
        command
    };
    let mut command = patient(&t.repo, &["remove", "--force", wt.to_str().unwrap()]);
    // Says when it waits for the probe lock.
    command.env("WTENV_LOG", "wtenv=debug");
    let remove = Spawned::of(&t, "remove", command);
    // Its unit got SIGTERM: the `remove` holds the lock, stopping it.
    assert!(
        wait_for(Duration::from_secs(30), || wt.join("termed").exists()),
        "{}",
        remove.stderr()
    );
    let again_args: &[&str] = if detach { &up_d } else { &["up"] };
    let again = Spawned::of(&t, "again", patient(&wt, again_args));
    let waiting = format!(
        "wtenv: waiting for 'wtenv remove --force' (pid {}) in this worktree\n",
        remove.child.id()
    );
    let said = wait_for(Duration::from_secs(30), || {
        again.stderr().contains(&waiting)
    });
    assert!(said, "{}", again.stderr());
    let probe = std::fs::File::open(t.state_dir().join("probe.lock")).unwrap();
    probe.lock().unwrap();
    touch(&wt.join("die"));
    // Stopped, and waiting for its turn to probe the worktree's ports.
    let stopped = wait_for(Duration::from_secs(30), || {
        let err = remove.stderr();
        err.split_once("wtenv: stopped web")
            .is_some_and(|(_, after)| after.contains("probe.lock"))
    });
    assert!(stopped, "{}", remove.stderr());
    let lock = worktree_lock(&t, &t.repo.join(".git/worktrees/feature-gone"));
    assert!(
        lock_text(&lock).contains("wtenv remove --force"),
        "the remove let go of the worktree's lock before git removed it: {:?}",
        lock_text(&lock)
    );
    probe.unlock().unwrap();
    let remove = remove.finish();
    assert_eq!(remove.code, Some(0), "{remove}");
    let again = again.finish();
    assert_eq!(again.code, Some(1), "{again}");
    assert_eq!(
        again.stderr,
        format!(
            "{waiting}error: the current directory no longer exists: worktree {} was removed while this waited; nothing was started\n\
             hint: cd to a directory that exists\n",
            wt_path.display()
        ),
        "{again}"
    );
    assert!(!wt.exists() && free(web), "{again}");
    assert!(records(&t).is_empty(), "{again}");
    let left = t.allocations();
    assert!(
        !left.iter().any(|(_, _, w)| w.ends_with("feature-gone")),
        "{left:?}"
    );
}

/// What the holder of a worktree's lock wrote in it.
fn lock_text(lock: &std::fs::File) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 4096];
    let n = lock.read_at(&mut buf, 0).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Runs `wtenv down` in the worktree `.1`, while it is there, when
/// dropped: nothing a failed test started is left running.
struct DownIn<'a>(&'a TestEnv, &'a Path);

impl Drop for DownIn<'_> {
    fn drop(&mut self) {
        if self.1.is_dir() {
            let _ = self
                .0
                .wtenv_in(self.1, &["down", "--timeout", "30s"])
                .output();
        }
    }
}
