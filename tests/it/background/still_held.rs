//! A port still held once its service stopped: a daemon that double-forked
//! out of its unit's reach keeps it. What stops the services (`down`,
//! `remove --force`, a failed `up -d`'s cleanup) probes their ports once
//! after the stop and names what still holds one; `down` then exits 1.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::{DownOnDrop, free, naming, ports, signal};
use crate::supervise::{PATIENCE, alive};
use crate::support::{TestEnv, run, wait_for};

/// A service whose main process double-forks a daemon (fork, setsid,
/// fork) that listens on `$WEB_PORT` and writes its pid to `daemon.pid`
/// in the worktree, its stdio on `/dev/null`, as daemons do. The main
/// process then waits for ever; with `exit` as its argument it exits 3
/// once the daemon listens (a service that dies leaving it).
const DAEMON: &str = "\
import http.server, os, sys, time
port = int(os.environ['WEB_PORT'])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        server = http.server.HTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open('daemon.pid.tmp', 'w') as f:
            f.write(str(os.getpid()))
        os.rename('daemon.pid.tmp', 'daemon.pid')
        server.serve_forever(0.05)
    os._exit(0)
os.wait()
while not os.path.exists('daemon.pid'):
    time.sleep(0.05)
if sys.argv[1:] == ['exit']:
    sys.exit(3)
while True:
    time.sleep(1)
";

/// The daemon of [`DAEMON`] in `dir`, killed when dropped (before the
/// test's `down`: nothing is left listening), by the pid it wrote (kept
/// once read: `remove` deletes the file with the worktree).
struct Daemon {
    pidfile: PathBuf,
    pid: Cell<Option<u32>>,
}

impl Daemon {
    /// Writes the daemon's script into `dir`, and the config of the
    /// service `web` that runs it (`extra`: its arguments and keys).
    fn in_dir(t: &TestEnv, dir: &Path, extra: &str) -> Daemon {
        std::fs::write(dir.join("daemon.py"), DAEMON).unwrap();
        t.write_config(&format!(
            "[services.web]\nrun = \"exec python3 daemon.py{extra}"
        ));
        Daemon::at(dir.join("daemon.pid"))
    }

    fn at(pidfile: PathBuf) -> Daemon {
        Daemon {
            pidfile,
            pid: Cell::new(None),
        }
    }

    /// Its pid, once it wrote it.
    fn pid(&self) -> u32 {
        if let Some(pid) = self.pid.get() {
            return pid;
        }
        assert!(wait_for(PATIENCE, || self.pidfile.exists()));
        let pid = std::fs::read_to_string(&self.pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.pid.set(Some(pid));
        pid
    }

    /// `pid N (COMMAND) in DIR`, as the holder lookup names it.
    fn described(&self) -> String {
        let pid = self.pid();
        let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let command = String::from_utf8(command).unwrap();
        let command = command.trim_end_matches('\0').replace('\0', " ");
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        format!("pid {pid} ({command}) in {}", cwd.display())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self
            .pid
            .get()
            .or_else(|| {
                std::fs::read_to_string(&self.pidfile)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .filter(|&p| alive(p))
        {
            signal(pid, Signal::SIGKILL);
            wait_for(PATIENCE, || !alive(pid));
        }
    }
}

/// `down` said `stopped web` and exited 0 while the service's daemon
/// (double-forked out of its group and session) still listened on its
/// port. It now names the daemon, as `up` names a busy port's holder,
/// says how to stop it, and exits 1; the unit is stopped and its record
/// removed all the same.
#[test]
fn down_names_a_daemon_that_still_holds_the_port_and_exits_1() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let daemon = Daemon::in_dir(&t, &t.repo, "\"\n");
    let (web, _) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let pid = daemon.pid();
    let described = daemon.described();
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(1), "{down}");
    let unit = naming(&t).unit("web");
    assert_eq!(
        down.stderr,
        format!(
            "wtenv: stopped web ({unit})\n\
             error: ports of the stopped services are still held:\n  \
             port {web} (web): {described}\n\
             hint: stop it (e.g. kill {pid})\n"
        ),
        "{down}"
    );
    assert!(alive(pid) && !free(web), "{down}");
    // Stopped and forgotten all the same: nothing runs in the background.
    let again = run(&mut t.wtenv(&["down"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(
        again.stderr, "wtenv: nothing of this worktree runs in the background\n",
        "{again}"
    );
}

/// A service that stops with its unit: `down` says it stopped it, no
/// more, and exits 0.
#[test]
fn down_of_a_service_that_let_go_of_its_port_says_no_more() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let (web, _) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    let unit = naming(&t).unit("web");
    assert_eq!(down.stderr, format!("wtenv: stopped web ({unit})\n"));
    assert!(free(web), "{down}");
}

/// `remove --force` stops the units, names what still holds a port of
/// theirs once, as it names what it leaves running (what holds it keeps
/// running, as `--force` leaves the worktree's other processes; it was
/// said twice, a still-held warning first), and removes the worktree.
#[test]
fn remove_force_warns_of_a_daemon_that_still_holds_the_port() {
    let t = TestEnv::new();
    let daemon = Daemon::in_dir(&t, &t.repo, "\"\n");
    t.git(&["add", "daemon.py", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "daemon"]);
    let wt = t.add_worktree("feature-daemon");
    drop(daemon);
    let daemon = Daemon::at(wt.join("daemon.pid"));
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let web: u16 = up
        .stdout
        .rsplit("port ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = daemon.pid();
    let described = daemon.described();
    let unit = wtenv::background::Naming::at(
        &std::fs::canonicalize(t.repo.join(".git")).unwrap(),
        &std::fs::canonicalize(&wt).unwrap(),
    )
    .expect("git knows the worktree")
    .unit("web");
    let remove = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(remove.code, Some(0), "{remove}");
    assert!(
        remove
            .stderr
            .contains(&format!("wtenv: stopped web ({unit})\n"))
            && remove.stderr.contains(&format!(
                "warning: left running: port {web} (web): listening: {described}\n"
            )),
        "{remove}"
    );
    assert_eq!(
        remove.stderr.matches(&format!("pid {pid} ")).count(),
        1,
        "{remove}"
    );
    assert!(!remove.stderr.contains("still held"), "{remove}");
    assert!(!wt.exists() && alive(pid), "{remove}");
}

/// A failed `up -d` (its service exited, leaving its daemon) stops what it
/// started and says what still holds the port, before its error.
#[test]
fn a_failed_up_detach_warns_of_a_daemon_left_on_the_port() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // Never ready: it fails once its main process exits.
    let daemon = Daemon::in_dir(&t, &t.repo, " exit\"\nhealth = { cmd = \"false\" }\n");
    let (web, _) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    let pid = daemon.pid();
    let described = daemon.described();
    let warning = format!(
        "warning: ports of the stopped services are still held:\n  \
         port {web} (web): {described}\n\
         hint: stop it (e.g. kill {pid})\n\
         error: service web did not get ready: "
    );
    assert!(up.stderr.contains(&warning), "{up}");
    assert!(alive(pid), "{up}");
}

/// `down web` while another service of the worktree, still running in the
/// background, listens on web's port: its hint said `kill` of the pid, as
/// of a stranger's, where `up` says `wtenv down` of a unit's process.
/// Said now with `wtenv down`, the units `down` left running given.
#[test]
fn down_of_one_says_wtenv_down_of_a_port_another_unit_still_holds() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // web listens on no port; api, ready once web is, listens on web's.
    t.write_config(
        "[services.web]\nrun = \"exec sleep 600\"\nhealth = { cmd = \"true\" }\n\
         [services.api]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n\
         health = { cmd = \"true\" }\ndepends_on = [\"web\"]\n",
    );
    let (web, _) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    assert!(wait_for(PATIENCE, || super::serves(web)), "{up}");
    let down = run(&mut t.wtenv(&["down", "web"]));
    assert_eq!(down.code, Some(1), "{down}");
    assert!(
        down.stderr.contains(&format!(
            "error: ports of the stopped services are still held:\n  port {web} (web): pid "
        )) && down.stderr.contains(
            "hint: a service of this worktree runs in the background there: stop it with 'wtenv down' ('wtenv status' shows them)\n"
        ) && !down.stderr.contains("kill "),
        "{down}"
    );
}
