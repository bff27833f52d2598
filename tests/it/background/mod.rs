//! Services in the background: `up --detach`, `down`, `logs`, `status`,
//! under a real systemd user manager (its own, in a private mount
//! namespace and a cgroup of its own, torn down after each test) and under
//! the detached wtenv supervisor; launchd plists parsed by python's
//! plistlib.
//!
//! A module per concept; this file holds what they share: the user
//! manager, `DownOnDrop`, the services and the checks of their ports.

mod export;
mod export_refused;
mod exported;
mod health;
mod moved;
mod orphans;
mod planted;
mod races;
mod races_gone;
mod release_elsewhere;
mod remove;
mod shell_hold;
mod still_held;
mod systemd;
mod unreadable;
mod up_failures;
mod wtenv_back_end;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::support::{Run, TestEnv, run, wait_for};
use wtenv::probe::{self, PortState};

/// A systemd user manager of the test's own: `systemd --user` in a private
/// mount namespace (with a tmpfs on /run/systemd, so systemctl sees a
/// systemd system) and a cgroup of its own (so parallel managers never
/// share a unit's cgroup), reached through its own `XDG_RUNTIME_DIR`.
/// Dropping it stops the manager and kills whatever is left in its cgroup.
pub struct UserManager {
    child: Child,
    pub runtime: PathBuf,
    cgroup: String,
}

/// The cgroup hierarchies a process must be moved into: the named systemd
/// one and the unified one on a hybrid host, the root on a unified host.
fn hierarchies() -> Vec<PathBuf> {
    let hybrid: Vec<PathBuf> = ["systemd", "unified"]
        .iter()
        .map(|h| Path::new("/sys/fs/cgroup").join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if hybrid.is_empty() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        hybrid
    }
}

impl UserManager {
    pub fn start(t: &TestEnv) -> UserManager {
        let runtime = t.root().join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cgroup = format!(
            "wtenv-test-{}-{}",
            std::process::id(),
            t.root().file_name().unwrap().to_string_lossy()
        );
        let mut script =
            String::from("mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system\n");
        for h in hierarchies() {
            let dir = h.join(&cgroup);
            script.push_str(&format!(
                "mkdir -p '{0}' && echo $$ > '{0}/cgroup.procs'\n",
                dir.display()
            ));
        }
        script.push_str("exec /lib/systemd/systemd --user\n");
        let log = std::fs::File::create(t.root().join("systemd.log")).unwrap();
        let mut cmd = Command::new("unshare");
        t.apply_env(&mut cmd);
        let child = cmd
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let manager = UserManager {
            child,
            runtime,
            cgroup,
        };
        let up = wait_for(Duration::from_secs(60), || {
            manager
                .systemctl(t, &["show", "--property=Version", "--value"])
                .code
                == Some(0)
        });
        assert!(
            up,
            "systemd --user did not answer: {}",
            std::fs::read_to_string(t.root().join("systemd.log")).unwrap_or_default()
        );
        manager
    }

    pub fn systemctl(&self, t: &TestEnv, args: &[&str]) -> Run {
        let mut cmd = Command::new("systemctl");
        t.apply_env(&mut cmd);
        run(cmd
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .arg("--user")
            .args(args))
    }

    /// `wtenv ARGS` in the main worktree, reaching this manager.
    pub fn wtenv(&self, t: &TestEnv, args: &[&str]) -> Command {
        let mut cmd = t.wtenv(args);
        cmd.env("XDG_RUNTIME_DIR", &self.runtime);
        cmd
    }

    /// `systemd-analyze verify --user` passes on `files`, silently, and
    /// `systemctl --user link` loads them.
    pub fn verify_and_link(&self, t: &TestEnv, files: &[&str]) {
        let mut verify = Command::new("systemd-analyze");
        t.apply_env(&mut verify);
        let verified = run(verify
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .args(["verify", "--user"])
            .args(files));
        assert_eq!(verified.code, Some(0), "{verified}");
        assert!(verified.stderr.trim().is_empty(), "{verified}");
        let mut link = vec!["link"];
        link.extend(files);
        let linked = self.systemctl(t, &link);
        assert_eq!(linked.code, Some(0), "{linked}");
    }

    /// `wtenv ARGS` in `dir`, reaching this manager.
    pub fn wtenv_in(&self, t: &TestEnv, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = t.wtenv_in(dir, args);
        cmd.env("XDG_RUNTIME_DIR", &self.runtime);
        cmd
    }

    pub fn main_pid(&self, t: &TestEnv, unit: &str) -> u32 {
        let out = self.systemctl(t, &["show", "--property=MainPID", "--value", unit]);
        out.stdout.trim().parse().unwrap()
    }

    /// Every process still in the manager's cgroup tree.
    fn leftovers(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for h in hierarchies() {
            let mut stack = vec![h.join(&self.cgroup)];
            while let Some(dir) = stack.pop() {
                if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    pids.extend(text.lines().filter_map(|l| l.parse::<u32>().ok()));
                }
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    stack.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|f| f.is_dir()))
                            .map(|e| e.path()),
                    );
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        use nix::sys::signal::kill;
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let pid = self.child.id();
        let exited = wait_for(Duration::from_secs(20), || {
            !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        });
        if !exited {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        for pid in self.leftovers() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = wait_for(Duration::from_secs(10), || self.leftovers().is_empty());
        // Remove the cgroup tree, deepest first.
        for h in hierarchies() {
            let mut dirs = Vec::new();
            let mut stack = vec![h.join(&self.cgroup)];
            while let Some(dir) = stack.pop() {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    stack.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|f| f.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                dirs.push(dir);
            }
            for dir in dirs.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Runs `wtenv down` when dropped: a detached service of a test that
/// failed half-way is stopped, not left running on the machine.
pub struct DownOnDrop<'a>(pub &'a TestEnv);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.wtenv(&["down", "--timeout", "30s"]).output();
    }
}

/// Two plain HTTP servers that say who they are first.
fn two_http_services(t: &TestEnv) {
    t.write_config(
        r#"
[services.web]
run = "echo web says hello; exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
[services.api]
run = "echo api says hello; exec python3 -u -m http.server $API_PORT --bind 127.0.0.1"
"#,
    );
}

/// `half`, started with `up -d --manager wtenv` (`extra`: more of its
/// config): a python3 http.server in the background of a shell that
/// sleeps on, so that its unit runs on once the server is killed
/// ([`kill_listeners`]). Its port, served.
fn half_service(t: &TestEnv, extra: &str) -> u16 {
    t.write_config(&format!(
        "[services.half]\nrun = \"python3 -m http.server $HALF_PORT --bind 127.0.0.1 & exec sleep 1000\"\n{extra}"
    ));
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = t.ports.port(0);
    assert!(serves(port), "{up}");
    port
}

/// SIGKILLs what listens on `port`, and waits until it is free.
fn kill_listeners(port: u16) {
    for pid in listeners(port) {
        signal(pid, Signal::SIGKILL);
    }
    assert!(
        wait_for(crate::supervise::PATIENCE, || free(port)),
        "{port} still busy"
    );
}

/// (web, api): the block's first two ports, in declaration order.
fn ports(t: &TestEnv) -> (u16, u16) {
    (t.ports.port(0), t.ports.port(1))
}

/// An HTTP GET answered with 200.
fn serves(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200")
}

fn free(port: u16) -> bool {
    probe::probe(port).unwrap() == PortState::Free
}

/// The registry's holders of `service`'s allocation.
fn holders(t: &TestEnv, service: &str) -> Vec<serde_json::Value> {
    t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["service"] == service)
        .flat_map(|a| a["holders"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The cells of `service`'s row in `status`'s table: SERVICE MANAGER UNIT
/// STATE PID PORT HEALTH UPTIME RESTARTS. Checked cell by cell, a word is
/// whole: `active` is in `inactive`, `healthy` in `unhealthy`, and `wtenv`
/// in every unit's name.
pub fn status_cells(status: &Run, service: &str) -> Vec<String> {
    status
        .stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == service))
        .unwrap_or_else(|| panic!("no row for {service}: {status}"))
}

/// The pids of the processes listening on `port`, from /proc.
fn listeners(port: u16) -> Vec<u32> {
    probe::holders(&[port].into())
        .remove(&port)
        .unwrap_or_default()
        .iter()
        .map(|h| h.pid)
        .collect()
}

fn signal(pid: impl TryInto<i32, Error: std::fmt::Debug>, sig: Signal) {
    nix::sys::signal::kill(Pid::from_raw(pid.try_into().unwrap()), sig).unwrap();
}

/// The unit names of the test's main worktree, as wtenv makes them.
fn naming(t: &TestEnv) -> wtenv::background::Naming {
    let repo = std::fs::canonicalize(&t.repo).unwrap();
    wtenv::background::Naming::at(&repo.join(".git"), &repo).expect("git knows the worktree")
}

/// `service`'s systemd unit in the test's main worktree.
fn unit(t: &TestEnv, service: &str) -> String {
    format!("{}.service", naming(t).unit(service))
}

/// The port `up -d` printed for `unit`.
fn printed_port(up: &Run, unit: &str) -> u16 {
    let line = up.stdout.lines().find(|l| l.contains(unit)).unwrap();
    line.rsplit("port ").next().unwrap().trim().parse().unwrap()
}

/// A plist as python's plistlib reads it, as JSON.
fn parse_plist(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],'rb'))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The test's PATH with a directory whose name is not UTF-8 after it.
fn path_not_utf8() -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut path = std::env::var_os("PATH").unwrap().as_bytes().to_vec();
    path.extend(b":/opt/a\xffb");
    OsString::from_vec(path)
}
