//! Services in the background: `up --detach`, `down`, `logs`, `status`,
//! under a real systemd user manager (its own, in a private mount
//! namespace and a cgroup of its own, torn down after each test) and under
//! the detached wtenv supervisor; launchd plists parsed by python's
//! plistlib.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::supervise::{PATIENCE, alive};
use crate::support::{Run, TestEnv, run, snapshot, wait_for};
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
    wtenv::background::Naming::of_worktree(&repo.join(".git"), &repo)
}

/// `service`'s systemd unit in the test's main worktree.
fn unit(t: &TestEnv, service: &str) -> String {
    format!("{}.service", naming(t).unit(service))
}

#[test]
fn up_detach_under_systemd_serves_until_down_releases_everything() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    let api_unit = unit(&t, "api");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "--detach"]));
    assert_eq!(up.code, Some(0), "{up}");
    // One line per service: unit, pid, port; both answer on return.
    for (unit, port) in [(web_unit.as_str(), web), (api_unit.as_str(), api)] {
        let line = up.stdout.lines().find(|l| l.contains(unit)).unwrap();
        assert!(line.contains(&format!("port {port}")), "{up}");
        assert!(line.contains("pid "), "{up}");
        assert!(serves(port), "port {port} does not serve after up returned");
        let active = m.systemctl(&t, &["is-active", unit]);
        assert_eq!(active.stdout.trim(), "active", "{active}");
    }
    // The process that ran `up` is gone; the services keep serving.
    std::thread::sleep(Duration::from_secs(1));
    assert!(serves(web) && serves(api));
    let web_server = listeners(web);
    assert!(!web_server.is_empty());
    // The holds name the units.
    assert_eq!(holders(&t, "web")[0]["unit"]["name"], web_unit.as_str());
    assert_eq!(holders(&t, "web")[0]["unit"]["manager"], "systemd");

    let status = run(&mut m.wtenv(&t, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    for (unit, port) in [(web_unit.as_str(), web), (api_unit.as_str(), api)] {
        let line = status.stdout.lines().find(|l| l.contains(unit)).unwrap();
        for word in ["systemd", "active", &port.to_string(), "healthy"] {
            assert!(line.contains(word), "{word} missing: {status}");
        }
    }
    let json = run(&mut m.wtenv(&t, &["status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["services"].as_array().unwrap().len(), 2, "{json}");

    // `list` names the unit that holds each port.
    let list = run(&mut m.wtenv(&t, &["list"]));
    assert!(
        list.stdout.contains(&format!("(systemd unit {web_unit})")),
        "{list}"
    );

    let logs = run(&mut m.wtenv(&t, &["logs", "web"]));
    assert_eq!(logs.code, Some(0), "{logs}");
    assert!(logs.stdout.contains("web | web says hello\n"), "{logs}");
    assert!(!logs.stdout.contains("api says"), "{logs}");

    let down = run(&mut m.wtenv(&t, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web) && free(api), "ports still busy after down");
    assert!(holders(&t, "web").is_empty() && holders(&t, "api").is_empty());
    for pid in web_server {
        assert!(!alive(pid), "server {pid} survived down");
    }
    let units = m.systemctl(
        &t,
        &[
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "wtenv-*.service",
        ],
    );
    assert!(units.stdout.trim().is_empty(), "units left: {units}");
    let status = run(&mut m.wtenv(&t, &["status", "--json"]));
    assert!(status.stdout.contains("\"services\": []"), "{status}");
}

#[test]
fn a_unit_stopped_from_outside_releases_its_ports() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "-d"]));
    assert_eq!(up.code, Some(0), "{up}");
    let stop = m.systemctl(&t, &["stop", &web_unit]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || holders(&t, "web").is_empty() && free(web)));
    // The other one is untouched.
    assert!(serves(api) && !holders(&t, "api").is_empty());
    let status = run(&mut m.wtenv(&t, &["status"]));
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains(&web_unit))
        .unwrap();
    assert!(line.contains("inactive"), "{status}");
    assert_eq!(run(&mut m.wtenv(&t, &["down"])).code, Some(0));
    assert!(free(api));
}

#[test]
fn a_unit_whose_main_process_is_killed_is_swept_once_inactive() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, _) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let main = m.main_pid(&t, &web_unit);
    signal(main, Signal::SIGKILL);
    // The dead run cannot release; the manager stops the rest of the unit.
    assert!(wait_for(PATIENCE, || {
        m.systemctl(&t, &["is-active", &web_unit]).stdout.trim() != "active"
    }));
    assert!(wait_for(PATIENCE, || free(web)));
    assert_eq!(holders(&t, "web").len(), 1, "the hold stays until a sweep");
    // The next allocating command sweeps it: pid gone, unit inactive.
    let env = run(&mut m.wtenv(&t, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(holders(&t, "web").is_empty(), "{}", t.registry());
}

#[test]
fn up_detach_fails_with_the_reason_and_stops_what_it_started() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
[services.api]
run = "echo api cannot start >&2; exit 3"
"#,
    );
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let up = run(&mut m.wtenv(&t, &["up", "-d"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("service api did not get ready"), "{up}");
    assert!(up.stderr.contains("api cannot start"), "{up}");
    assert!(wait_for(PATIENCE, || free(web) && free(api)));
    let active = m.systemctl(&t, &["is-active", &web_unit]);
    assert_ne!(active.stdout.trim(), "active", "{active}");
    assert!(holders(&t, "web").is_empty());
}

/// The port `up -d` printed for `unit`.
fn printed_port(up: &Run, unit: &str) -> u16 {
    let line = up.stdout.lines().find(|l| l.contains(unit)).unwrap();
    line.rsplit("port ").next().unwrap().trim().parse().unwrap()
}

/// Two repositories with the same directory name and worktree name
/// (`<tmp>/repo` and `<tmp>/b/repo`) run side by side under one user
/// manager: each gets units of its own, and `status` and `down` in one
/// never reach the other's.
#[test]
fn same_named_repositories_get_distinct_units_under_systemd() {
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    let other = t.root().join("b").join("repo");
    std::fs::create_dir_all(&other).unwrap();
    t.git_in(&other, &["init", "-q", "-b", "main"]);
    std::fs::copy(t.repo.join("wtenv.toml"), other.join("wtenv.toml")).unwrap();
    let m = UserManager::start(&t);
    let a = unit(&t, "web");
    let b = format!(
        "{}.service",
        wtenv::background::Naming::of_worktree(&other.join(".git"), &other).unit("web")
    );
    assert_ne!(a, b);
    let up_a = run(&mut m.wtenv(&t, &["up", "-d"]));
    assert_eq!(up_a.code, Some(0), "{up_a}");
    let up_b = run(&mut m.wtenv_in(&t, &other, &["up", "-d"]));
    assert_eq!(up_b.code, Some(0), "{up_b}");
    let (port_a, port_b) = (printed_port(&up_a, &a), printed_port(&up_b, &b));
    assert_ne!(port_a, port_b);
    for (unit, port) in [(&a, port_a), (&b, port_b)] {
        let active = m.systemctl(&t, &["is-active", unit]);
        assert_eq!(active.stdout.trim(), "active", "{unit}: {active}");
        assert!(serves(port), "{unit} does not serve on {port}");
    }
    let status = run(&mut m.wtenv_in(&t, &other, &["status"]));
    assert!(
        status.stdout.contains(&b) && !status.stdout.contains(&a),
        "{status}"
    );
    let down = run(&mut m.wtenv(&t, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(port_a));
    assert_eq!(m.systemctl(&t, &["is-active", &b]).stdout.trim(), "active");
    assert!(serves(port_b), "down in one repository stopped the other's");
    let down = run(&mut m.wtenv_in(&t, &other, &["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(port_b));
}

/// The detached wtenv supervisor, where no user manager answers (the
/// test's environment has no XDG_RUNTIME_DIR).
#[test]
fn the_wtenv_back_end_serves_detached_until_down_releases_everything() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    let (web, api) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "--detach"]));
    assert_eq!(up.code, Some(0), "{up}");
    assert!(serves(web) && serves(api), "{up}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(serves(web) && serves(api));
    let status = run(&mut t.wtenv(&["status"]));
    let line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap();
    for word in ["wtenv", "running", &web.to_string(), "healthy"] {
        assert!(line.contains(word), "{word} missing: {status}");
    }
    // Its own session: no terminal, no shell's job control reaches it.
    let supervisor: u32 = holders(&t, "web")[0]["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(supervisor as i32)))
            .unwrap()
            .as_raw() as u32,
        supervisor
    );
    let logs = run(&mut t.wtenv(&["logs"]));
    assert!(logs.stdout.contains("web | web says hello\n"), "{logs}");
    assert!(logs.stdout.contains("api | api says hello\n"), "{logs}");
    let servers: Vec<u32> = listeners(web).into_iter().chain(listeners(api)).collect();
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web) && free(api));
    assert!(holders(&t, "web").is_empty() && holders(&t, "api").is_empty());
    for pid in servers.into_iter().chain([supervisor]) {
        assert!(!alive(pid), "{pid} survived down");
    }
}

/// `status` runs a `cmd` health check with the environment `up` gave it:
/// a trusted config's `[env]` and service variables not named like a port
/// included (one trust gate for both).
#[test]
fn status_checks_health_with_the_trusted_variables_up_used() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
env = ["WEB_PORT", "WEB_LISTEN"]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { cmd = "test \"$GREETING:$WEB_LISTEN\" = \"hi:$WEB_PORT\"" }
[env]
GREETING = "hi"
"#,
    );
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let up = run(&mut t.wtenv(&["up", "--detach"]));
    assert_eq!(up.code, Some(0), "{up}");
    let status = run(&mut t.wtenv(&["status"]));
    let line = status.stdout.lines().find(|l| l.starts_with("web"));
    assert!(
        line.is_some_and(|l| l.contains("healthy") && !l.contains("unhealthy")),
        "{status}"
    );
}

/// `status` runs the `cmd` check the service started with, not the
/// config's as it is now: a branch checked out since (another's config)
/// would have `status` run its code. A service started with no `cmd`
/// check gets its port checked.
#[test]
fn status_runs_only_the_health_command_the_service_started_with() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let config = |cmd: &str| {
        format!(
            "[services.web]\nrun = \"exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1\"\nhealth = {{ cmd = {} }}\n",
            serde_json::to_string(cmd).unwrap()
        )
    };
    t.write_config(&config("test -n \"$WEB_PORT\""));
    let up = run(&mut t.wtenv(&["up", "--detach", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let pwned = t.root().join("PWNED");
    t.write_config(&config(&format!("touch '{}'; false", pwned.display())));
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(crate::shell::pwned_under(&t.root()), None, "{status}");
    let line = status.stdout.lines().find(|l| l.starts_with("web"));
    assert!(
        line.is_some_and(|l| l.contains("healthy") && !l.contains("unhealthy")),
        "{status}"
    );
}

#[test]
fn the_wtenv_back_end_releases_when_its_supervisor_is_stopped_from_outside() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    let (web, api) = ports(&t);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let supervisor = |s: &str| holders(&t, s)[0]["pid"].as_u64().unwrap() as i32;
    // SIGTERM: it stops its service and releases, as in the foreground.
    let web_server = listeners(web);
    signal(supervisor("web"), Signal::SIGTERM);
    assert!(wait_for(PATIENCE, || holders(&t, "web").is_empty() && free(web)));
    assert!(web_server.iter().all(|&p| !alive(p)));
    // SIGKILL: nobody releases. Its server outlives it (no manager above
    // it): `status` says so, and `down` stops it, proven of its group, and
    // then the hold goes.
    let api_supervisor = supervisor("api");
    let api_server = listeners(api);
    assert!(!api_server.is_empty());
    signal(api_supervisor, Signal::SIGKILL);
    assert!(wait_for(PATIENCE, || !alive(api_supervisor as u32)));
    // (No request here: an orphan's next log line goes to a dead pipe.)
    assert!(api_server.iter().all(|&p| alive(p)), "the orphan lives on");
    // The sweep keeps a dead holder's hold while its orphans live.
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(holders(&t, "api").len(), 1, "{}", t.registry());
    let status = run(&mut t.wtenv(&["status"]));
    let line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("api"))
        .unwrap();
    assert!(line.contains("orphaned"), "{status}");
    let web_line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap();
    assert!(web_line.contains("inactive"), "{status}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(api), "down stopped the orphan");
    assert!(api_server.iter().all(|&p| !alive(p)));
    assert!(holders(&t, "api").is_empty(), "{}", t.registry());
}

#[test]
fn the_wtenv_back_end_keeps_each_log_under_its_size_limit() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // 3,000 lines of 100 bytes (300 KB) before it serves.
    t.write_config(
        r#"
[services.web]
run = "python3 -c 'import sys; [print(\"%04d \" % i + \"x\" * 94) for i in range(3000)]'; exec python3 -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    let up = run(&mut t.wtenv(&["up", "-d", "--log-limit", "64K"]));
    assert_eq!(up.code, Some(0), "{up}");
    let dir = t.state_dir().join("background");
    let name = naming(&t).unit("web");
    let log = dir.join(format!("{name}.log"));
    let previous = dir.join(format!("{name}.log.1"));
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(size(&log) <= 64 * 1024, "{}", size(&log));
    assert!(size(&previous) > 0 && size(&previous) <= 64 * 1024);
    let last = run(&mut t.wtenv(&["logs", "web", "-n", "1"]));
    assert!(last.stdout.starts_with("web | 2999 xxx"), "{last}");
    let all = run(&mut t.wtenv(&["logs", "web"]));
    assert!(all.stdout.lines().count() < 3000 && all.stdout.lines().count() > 600);
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
}

/// Under a umask of 0277 a service's log was made 0400: the next
/// `up --detach` could not open it, and the service "ended (exit code
/// 1)" at once. Each log keeps its owner's `rw`.
#[test]
fn the_wtenv_back_end_starts_again_under_a_umask_that_takes_the_owners_bits() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    t.give_to_nobody();
    let wtenv = |args: &[&str]| run(&mut t.wtenv_as_nobody_under_umask("277", args));
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Run);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            (self.0)(&["down", "--timeout", "30s"]);
        }
    }
    let _down = Down(&wtenv);
    for _ in 0..2 {
        let up = wtenv(&["up", "-d", "--manager", "wtenv"]);
        assert_eq!(up.code, Some(0), "{up}");
        assert!(serves(t.ports.port(0)), "{up}");
        let down = wtenv(&["down"]);
        assert_eq!(down.code, Some(0), "{down}");
    }
    let log = t
        .state_dir()
        .join(format!("background/{}.log", naming(&t).unit("web")));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// `export` into a directory it makes, under a umask of 0277: the
/// directory was made 0500 and the units could not be written into it.
#[test]
fn export_makes_a_directory_it_can_write_into_whatever_the_umask() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    t.give_to_nobody();
    let dir = t.root().join("units/user");
    for _ in 0..2 {
        let out = run(&mut t
            .wtenv_as_nobody_under_umask("277", &["export", "systemd", dir.to_str().unwrap()]));
        assert_eq!(out.code, Some(0), "{out}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(snapshot(&dir).len(), 2, "{:?}", snapshot(&dir));
}

#[test]
fn remove_refuses_while_a_detached_service_runs_and_force_stops_it() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    two_http_services(&t);
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-bg");
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port: u16 = up
        .stdout
        .split("port ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let refused = run(&mut t.wtenv(&["remove", wt.to_str().unwrap()]));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("in the background"), "{refused}");
    assert!(serves(port));
    let forced = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(forced.code, Some(0), "{forced}");
    assert!(free(port) && !wt.exists());
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
}

/// Git refuses a locked worktree even with --force: `remove --force`
/// stopped its background services first and then failed. The lock is
/// said before anything is stopped now.
#[test]
fn remove_force_of_a_locked_worktree_stops_nothing() {
    let t = TestEnv::new();
    two_http_services(&t);
    t.git(&["commit", "-q", "-am", "services"]);
    let wt = t.add_worktree("feature-locked");
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let port = printed_port(&up, "web");
    t.git(&["worktree", "lock", wt.to_str().unwrap()]);
    let registry = std::fs::read(t.registry_path()).unwrap();
    let refused = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("is locked; nothing was removed"),
        "{refused}"
    );
    assert!(serves(port) && wt.is_dir(), "{refused}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
    t.git(&["worktree", "unlock", wt.to_str().unwrap()]);
    let forced = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(forced.code, Some(0), "{forced}");
    assert!(free(port) && !wt.exists());
}

/// Every string escapes as `systemd-escape` does.
#[test]
fn unit_name_escaping_matches_systemd_escape() {
    for text in [
        "web",
        "my-repo",
        "feature/login",
        ".hidden",
        "a.b",
        "sp ace",
        "quo\"te'",
        "$(touch x)",
        "ünï",
        "back\\slash",
        "x:y_z",
        "-lead",
        "tab\there",
        &"long".repeat(60),
    ] {
        let out = Command::new("systemd-escape")
            .arg("--")
            .arg(text)
            .output()
            .unwrap();
        assert!(out.status.success(), "{text:?}");
        let theirs = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            wtenv::background::systemd::escape(text),
            theirs.trim_end_matches('\n'),
            "{text:?}"
        );
    }
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

/// The launchd agent's plist, parsed by python's plistlib, carries the
/// program, directory and environment exactly, whatever they hold.
#[test]
fn launchd_plists_parse_with_the_right_program_directory_and_environment() {
    let argv: Vec<OsString> = [
        "/opt/wtenv",
        "run",
        "--service",
        "web",
        "--",
        "sh",
        "-c",
        "echo <a> & \"b\" 'c' $(d) ü",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let env = vec![
        ("PATH".to_owned(), OsString::from("/usr/bin:/bin")),
        ("HOME".to_owned(), OsString::from("/Users/a b")),
    ];
    let agent = wtenv::background::launchd::Agent {
        label: r"wtenv-my\x2drepo-wt-web",
        argv: &argv,
        root: Path::new("/Users/a b/repo & co"),
        env: &env,
        log: Path::new("/state/background/wtenv-r-w-web.log"),
        run_at_load: true,
        exit_timeout: Duration::from_secs(15),
    };
    let text = wtenv::background::launchd::plist(&agent).unwrap();
    let t = TestEnv::bare();
    let path = t.root().join("agent.plist");
    std::fs::write(&path, &text).unwrap();
    let doc = parse_plist(&path);
    assert_eq!(doc["Label"], r"wtenv-my\x2drepo-wt-web");
    let args: Vec<&str> = doc["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        argv.iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(doc["WorkingDirectory"], "/Users/a b/repo & co");
    assert_eq!(doc["EnvironmentVariables"]["HOME"], "/Users/a b");
    assert_eq!(doc["EnvironmentVariables"]["PATH"], "/usr/bin:/bin");
    assert_eq!(
        doc["StandardOutPath"],
        "/state/background/wtenv-r-w-web.log"
    );
    assert_eq!(doc["StandardErrorPath"], doc["StandardOutPath"]);
    assert_eq!(doc["RunAtLoad"], true);
    assert_eq!(doc["ExitTimeOut"], 15);
}

#[test]
fn up_detach_starts_dependencies_first_and_waits_for_their_health() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
depends_on = ["api"]
[services.api]
run = "exec python3 -u -m http.server $API_PORT --bind 127.0.0.1"
health = { http = "/wtenv.toml" }
"#,
    );
    let (web, api) = ports(&t);
    // Only web is named: api, which it depends on, starts too, first.
    let up = run(&mut t.wtenv(&["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let lines: Vec<&str> = up.stdout.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("api") && lines[1].starts_with("web"),
        "{up}"
    );
    assert!(serves(web) && serves(api));
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
    assert!(free(web) && free(api));
}

#[test]
fn up_detach_fails_with_the_failing_health_check_and_releases() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { http = "/no-such-page" }
ready_timeout = "3s"
"#,
    );
    let web = t.ports.port(0);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr
            .contains("service web did not get ready: GET /no-such-page -> 404"),
        "{up}"
    );
    assert!(wait_for(PATIENCE, || free(web)));
    assert!(holders(&t, "web").is_empty());
    let status = run(&mut t.wtenv(&["status", "--json"]));
    assert!(status.stdout.contains("\"services\": []"), "{status}");
}

/// `up -d` reserved the worktree's ports before it found a state
/// directory it cannot use: it checks the directory first now. A service
/// that never gets ready stops what `up -d` started and leaves no hold;
/// the ports stay reserved, as `env` reserves them (a shell may have
/// exported them meanwhile: a reservation has no owner to give it back).
#[test]
fn a_failed_up_detach_reserves_nothing_before_its_checks_and_holds_nothing_after() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1\"\n[services.api]\nrun = \"echo no >&2; exit 3\"\n",
    );
    std::fs::create_dir_all(t.state_dir()).unwrap();
    std::fs::set_permissions(
        t.state_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let background = t.state_dir().join("background");
    std::fs::write(&background, "").unwrap();
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("background is not a directory"), "{up}");
    assert!(t.allocations().is_empty(), "{up}");
    std::fs::remove_file(&background).unwrap();

    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("service api did not get ready"), "{up}");
    let (web, api) = ports(&t);
    let env = run(&mut t.wtenv(&["env"]));
    assert!(
        env.stdout.contains(&format!("export WEB_PORT='{web}'")),
        "{env}"
    );
    assert!(
        env.stdout.contains(&format!("export API_PORT='{api}'")),
        "{env}"
    );
    for service in ["web", "api"] {
        assert!(
            holders(&t, service).is_empty(),
            "{service} held after up -d failed"
        );
    }
    assert!(free(web), "the web service up -d started still listens");
}

#[test]
fn exported_systemd_units_verify_load_and_serve_on_the_reserved_ports() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    let api_unit = unit(&t, "api");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv(&t, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let files: Vec<&str> = export.stdout.lines().collect();
    assert_eq!(files.len(), 3, "{export}");
    let target = format!("{}.target", naming(&t).group());
    assert!(files[0].ends_with(&format!("/{target}")), "{export}");
    assert!(export.stderr.contains("systemctl --user link"), "{export}");
    // Reserved before anything runs: `env` exports these same ports.
    let ports: Vec<(u16, String)> = t
        .allocations()
        .into_iter()
        .map(|(p, s, _)| (p, s))
        .collect();
    assert_eq!(ports, vec![(web, "web".into()), (api, "api".into())]);

    m.verify_and_link(&t, &files);
    let start = m.systemctl(&t, &["start", &target]);
    assert_eq!(start.code, Some(0), "{start}");
    assert!(wait_for(PATIENCE, || serves(web) && serves(api)));
    // Their output reaches the log `wtenv logs` reads, as under `up -d`.
    let web_logs = || run(&mut m.wtenv(&t, &["logs", "web"]));
    assert!(
        wait_for(PATIENCE, || web_logs()
            .stdout
            .contains("web | web says hello\n")),
        "{}",
        web_logs()
    );
    assert!(!web_logs().stdout.contains("api says"));
    // Held by the units' `run`s, which the registry names.
    assert_eq!(holders(&t, "web")[0]["unit"]["name"], web_unit.as_str());
    assert_eq!(holders(&t, "api")[0]["unit"]["name"], api_unit.as_str());
    let stop = m.systemctl(&t, &["stop", &target]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || {
        holders(&t, "web").is_empty() && holders(&t, "api").is_empty() && free(web) && free(api)
    }));
}

/// `export systemd` for `socket = true` services, under the real user
/// manager: systemd listens on the reserved ports (web dual-stack, api on
/// its `bind`), `env` takes that listener as the worktree's own, the first
/// connection starts the service with the socket at fd 3 and `LISTEN_PID`
/// its own pid, and stopping the target frees the ports.
#[test]
fn exported_socket_units_start_the_service_on_the_first_connection_with_the_socket() {
    use crate::sockets::{APP, NODE, get_patiently};
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.web]
socket = true
run = "node server.js"
[services.api]
socket = true
bind = "127.0.0.1"
run = "uvicorn --fd 3 --log-level warning app:asgi"
"#,
    );
    std::fs::write(t.repo.join("app.py"), APP).unwrap();
    std::fs::write(t.repo.join("server.js"), NODE).unwrap();
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv(&t, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let n = naming(&t);
    let target = format!("{}.target", n.group());
    let socket = |s: &str| format!("{}.socket", n.unit(s));
    let service = |s: &str| format!("{}.service", n.unit(s));
    let files: Vec<&str> = export.stdout.lines().collect();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            target.clone(),
            socket("web"),
            service("web"),
            socket("api"),
            service("api")
        ]
    );
    let read = |name: String| std::fs::read_to_string(dir.join(name)).unwrap();
    let web_socket = read(socket("web"));
    assert!(
        web_socket.contains(&format!(
            "ListenStream=[::]:{web}\nBindIPv6Only=both\nFileDescriptorName=web\n"
        )),
        "{web_socket}"
    );
    let api_socket = read(socket("api"));
    assert!(
        api_socket.contains(&format!(
            "ListenStream=127.0.0.1:{api}\nFileDescriptorName=api\n"
        )),
        "{api_socket}"
    );

    m.verify_and_link(&t, &files);
    let start = m.systemctl(&t, &["start", &target]);
    assert_eq!(start.code, Some(0), "{start}");
    // systemd listens; no service runs until a connection comes.
    assert!(wait_for(PATIENCE, || !free(web) && !free(api)));
    for s in ["web", "api"] {
        let state = m.systemctl(&t, &["is-active", &service(s)]);
        assert_eq!(state.stdout.trim(), "inactive", "{s}: {state}");
    }
    // The manager's listener is the worktree's own, not a foreign holder.
    let env = run(&mut m.wtenv(&t, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    for (s, port) in [("web", web), ("api", api)] {
        let logs = || {
            m.systemctl(&t, &["status", "--no-pager", &service(s)])
                .to_string()
        };
        let answer = get_patiently(port, &logs);
        let pid = answer["pid"].as_u64().unwrap();
        assert_eq!(
            answer["listen_pid"].as_str(),
            Some(pid.to_string().as_str()),
            "{s}: LISTEN_PID is not the server's pid: {answer}"
        );
        assert_eq!(answer["listen_fds"], "1", "{answer}");
        assert_eq!(answer["listen_fdnames"], s, "{answer}");
        assert_eq!(answer["web_port"], web.to_string(), "{answer}");
        let state = m.systemctl(&t, &["is-active", &service(s)]);
        assert_eq!(state.stdout.trim(), "active", "{s}: {state}");
        // Held by the unit's `run`, which binds nothing: the server's
        // socket is systemd's.
        assert_eq!(holders(&t, s)[0]["unit"]["name"], service(s).as_str());
        assert!(listeners(port).contains(&(pid as u32)), "{s}");
    }
    // Dual-stack: web answers IPv6 clients too.
    assert!(TcpStream::connect(("::1", web)).is_ok());

    let stop = m.systemctl(&t, &["stop", &target]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || {
        holders(&t, "web").is_empty() && holders(&t, "api").is_empty() && free(web) && free(api)
    }));
}

#[test]
fn exported_launchd_plists_carry_the_program_directory_and_environment() {
    let t = TestEnv::new();
    two_http_services(&t);
    let dir = t.root().join("agents");
    let export = run(&mut t.wtenv(&["export", "launchd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let label = naming(&t).unit("web");
    let web = dir.join(format!("{label}.plist"));
    let doc = parse_plist(&web);
    assert_eq!(doc["Label"], label.as_str());
    let args: Vec<&str> = doc["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(args[0], env!("CARGO_BIN_EXE_wtenv"));
    let expected = [
        "--service",
        "web",
        "--unit",
        &format!("launchd:{label}"),
        "--",
        "sh",
        "-c",
        "echo web says hello; exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1",
    ];
    assert_eq!(
        &args[args.len() - expected.len()..],
        &expected[..],
        "{args:?}"
    );
    assert_eq!(doc["WorkingDirectory"], t.repo.to_str().unwrap());
    let home = t.root().join("home");
    assert_eq!(doc["EnvironmentVariables"]["HOME"], home.to_str().unwrap());
    assert_eq!(
        doc["EnvironmentVariables"]["PATH"],
        std::env::var("PATH").unwrap()
    );
    assert!(!t.allocations().is_empty(), "ports reserved by export");
}

/// A repository cloned under a name holding a newline wrote a
/// `WorkingDirectory=` line that split in two (the rest a line of the
/// unit's own); a name ending in a backslash joined the next line, one
/// ending in a space named another directory once systemd stripped it.
/// `WorkingDirectory=` has no escape for them: `export systemd` refuses,
/// exit 1 naming the path, before anything is reserved or written.
#[test]
fn export_systemd_refuses_a_worktree_path_no_unit_can_name() {
    let t = TestEnv::new();
    for name in [
        "a\nExecStartPre=/bin/sh -c 'touch PWNED'",
        "ends-in\\",
        "ends in a space ",
    ] {
        let repo = repo_with_a_service(&t, name);
        let dir = t.root().join("units");
        let out = run(&mut t.wtenv_in(&repo, &["export", "systemd", dir.to_str().unwrap()]));
        refused_untouched(
            &t,
            &repo,
            &dir,
            &out,
            "error: cannot write a systemd unit for ",
        );
    }
}

/// Into a directory its user can write and search but not read (mode
/// 300), the first unit file was renamed in, then the directory could not
/// be opened to sync it: exit 1 with a file written. The directory is now
/// opened (`files::check_writable_dir`) before any port is reserved: the
/// export fails with nothing written there and nothing reserved.
#[test]
fn export_into_a_directory_it_cannot_read_writes_nothing_there() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    let dir = t.root().join("units");
    std::fs::create_dir(&dir).unwrap();
    t.give_to_nobody();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o300)).unwrap();
    let out = run(&mut t.wtenv_as_nobody(&["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with(&format!("error: could not open {}: ", dir.display()))
            && out.stderr.contains("\nhint: "),
        "{out}"
    );
    assert_eq!(snapshot(&dir), vec![], "{out}");
    assert!(t.allocations().is_empty(), "ports reserved: {out}");
}

/// A DIR that cannot be made (under a regular file) was found so only
/// after the worktree's ports were reserved: the export failed on its
/// input with the registry changed. DIR is made first now: refused (exit
/// 1, naming it) with nothing reserved or made.
#[test]
fn export_into_a_directory_under_a_regular_file_changes_nothing() {
    let t = TestEnv::new();
    let fresh = a_fresh_worktree_with_a_service(&t);
    let file = t.root().join("file");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("units");
    let export = t.wtenv_in(&fresh, &["export", "systemd", dir.to_str().unwrap()]);
    let error = format!("error: could not create {}: ", dir.display());
    refused_with_nothing_changed(&t, export, &error);
}

/// A DIR its user cannot write into, or make (its parent not writable),
/// failed as the first file was written, after the ports were reserved.
/// Seen before anything is reserved now; nothing made on the way.
#[test]
fn export_into_a_directory_it_cannot_write_changes_nothing() {
    let t = TestEnv::new();
    let fresh = a_fresh_worktree_with_a_service(&t);
    let locked = t.root().join("locked");
    std::fs::create_dir(&locked).unwrap();
    t.give_to_nobody();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    for (dir, error) in [
        (locked.clone(), "could not write into"),
        (locked.join("units/user"), "could not create"),
    ] {
        let mut export = t.wtenv_as_nobody(&["export", "launchd", dir.to_str().unwrap()]);
        export.current_dir(&fresh);
        let error = format!("error: {error} {}: Permission denied", dir.display());
        refused_with_nothing_changed(&t, export, &error);
    }
}

/// DIR is made before the ports are reserved: when the reservation is
/// refused (no free port left for the second service), what was made for
/// DIR goes again.
#[test]
fn export_refused_its_ports_removes_the_directories_it_made() {
    let t = TestEnv::new();
    let p = t.ports.port(0);
    let config = format!(
        "[purposes]\nfeature = \"{p}-{p}\"\n[services.web]\nrun = \"true\"\n[services.api]\nrun = \"true\"\n"
    );
    std::fs::write(t.repo.join("wtenv.toml"), config).unwrap();
    let dir = t.root().join("new/units");
    let out = run(&mut t.wtenv(&["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with("error: no free port left"), "{out}");
    assert!(!t.root().join("new").exists(), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// A worktree `fresh` of `t`'s repository, with a service to export and
/// no port reserved, beside the main worktree's (so the registry exists).
fn a_fresh_worktree_with_a_service(t: &TestEnv) -> PathBuf {
    t.write_config("[services.web]\nrun = \"true\"\n");
    t.git(&["commit", "-q", "-am", "a service"]);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    t.add_worktree("fresh")
}

/// `export` is refused with `error` and a hint, with the test's tree (the
/// registry, the state directory, where DIR would be) as it was.
fn refused_with_nothing_changed(t: &TestEnv, mut export: Command, error: &str) {
    let before = snapshot(&t.root());
    let out = run(&mut export);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(snapshot(&t.root()) == before, "something changed: {out}");
    assert!(
        out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
        "{out}"
    );
}

/// A relative `HOME` (and no `XDG_CONFIG_HOME`) names no place for the
/// units: ignored, as the XDG spec says, so `export` asks for the
/// directory; the error said "HOME is not set" of a HOME that was.
#[test]
fn export_without_an_absolute_home_asks_for_the_directory_and_writes_nothing() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    let mut cmd = t.wtenv(&["export", "systemd"]);
    cmd.env("HOME", "home").env_remove("XDG_CONFIG_HOME");
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        "error: HOME is not set to an absolute path\nhint: pass the directory: export FORMAT DIR\n"
    );
    assert!(!t.repo.join("home").exists(), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// A state directory whose path is not UTF-8: `up -d` under the wtenv back
/// end started the service, then panicked writing its record (JSON text
/// naming its log there), so the service ran where `down` could not find
/// it. Refused before anything is reserved or started.
#[test]
fn up_detach_refuses_a_state_directory_it_cannot_name_before_starting_anything() {
    use std::os::unix::ffi::OsStringExt;
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let mut state = t.root().into_os_string().into_vec();
    state.extend(b"/state-\xff");
    let state = PathBuf::from(OsString::from_vec(state));
    let out = run(t
        .wtenv(&["up", "-d", "--manager", "wtenv"])
        .env("WTENV_STATE_DIR", &state));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("the state directory's path ")
            && out.stderr.contains("/background is not UTF-8\nhint: "),
        "{out}"
    );
    assert!(free(t.ports.port(0)), "{out}");
    assert!(
        !state.join("registry.json").exists(),
        "ports reserved: {out}"
    );
    // Nothing made for it in the state directory either.
    assert!(!state.join("background").exists(), "{out}");
}

/// A record that cannot be written once its service started (here a
/// directory planted under its name, as a full disk would fail it): the
/// service ran on where `down`, which finds services by their records,
/// could not see it. It is stopped with the error, its ports released.
#[test]
fn up_detach_stops_a_service_whose_record_it_cannot_write() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        "[services.web]\nrun = \"exec python3 -m http.server $WEB_PORT --bind 127.0.0.1\"\n",
    );
    let record = t
        .state_dir()
        .join(format!("background/{}.json", naming(&t).unit("web")));
    std::fs::create_dir_all(record.join("planted")).unwrap();
    let out = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with("error: could not "), "{out}");
    // Stopped before `up` returned: no process names its unit.
    let unit = naming(&t).unit("web");
    let left: Vec<u32> = wtenv::process::all_pids()
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(&unit)
        })
        .collect();
    assert!(left.is_empty(), "{left:?} run on: {out}");
    assert!(free(t.ports.port(0)), "{out}");
    assert!(holders(&t, "web").is_empty(), "{}", t.registry());
}

/// A repository at `root/name` whose config has a service to export.
fn repo_with_a_service(t: &TestEnv, name: &str) -> PathBuf {
    let repo = t.root().join(name);
    t.init_repo(&repo);
    let config = repo.join("wtenv.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[services.web]\nrun = \"true\"\n");
    std::fs::write(&config, text).unwrap();
    repo
}

/// `out` is an export of `repo` into `dir` refused with `error` and a
/// hint: nothing written, no port reserved.
fn refused_untouched(t: &TestEnv, repo: &Path, dir: &Path, out: &Run, error: &str) {
    assert_eq!(out.code, Some(1), "{}: {out}", repo.display());
    assert!(
        out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
        "{}: {out}",
        repo.display()
    );
    assert!(!dir.exists(), "{}: files written", repo.display());
    assert!(
        !t.allocations().iter().any(|(_, _, w)| w == repo),
        "{}: ports reserved",
        repo.display()
    );
}

/// A plist's strings are XML text: a carriage return there reads back as
/// a newline (another directory) unless written `&#13;`, and a control
/// character such as `\x01` cannot be written at all (launchd would not
/// load the file): the one is kept, the other refused before anything is
/// reserved or written.
#[test]
fn export_launchd_keeps_a_carriage_return_and_refuses_what_xml_cannot_carry() {
    let t = TestEnv::new();
    for (name, code) in [("a\rb", 0), ("a\u{1}b", 1)] {
        let repo = repo_with_a_service(&t, name);
        let dir = t.root().join(format!("agents-{code}"));
        let out = run(&mut t.wtenv_in(&repo, &["export", "launchd", dir.to_str().unwrap()]));
        if code == 0 {
            assert_eq!(out.code, Some(0), "{name:?}: {out}");
            let plist = PathBuf::from(out.stdout.trim_end());
            assert_eq!(
                parse_plist(&plist)["WorkingDirectory"],
                repo.to_str().unwrap()
            );
        } else {
            let error = "error: cannot write a launchd plist: its WorkingDirectory ";
            refused_untouched(&t, &repo, &dir, &out, error);
        }
    }
}

/// A passed variable a plist cannot carry (a control character, which
/// XML cannot hold even escaped) is refused before the worktree's ports are
/// reserved: the refusal once came after the reservation, which stayed.
#[test]
fn export_launchd_refuses_a_variable_xml_cannot_carry_with_the_registry_as_it_was() {
    let path = format!("{}:/opt/a\u{1}b", std::env::var("PATH").unwrap());
    let error = "error: cannot write a launchd plist: its variable PATH ";
    refused_in_a_fresh_worktree("launchd", "PATH", path.into(), error);
}

/// systemd takes a variable's value only as UTF-8 (it ignores the
/// assignment in a unit file, and `systemd-run` refuses it): such a
/// passed variable is refused before the ports are reserved, where it was
/// written as another value.
#[test]
fn export_systemd_refuses_a_variable_that_is_not_utf8_with_the_registry_as_it_was() {
    let error = "error: systemd cannot carry the variable PATH ";
    refused_in_a_fresh_worktree("systemd", "PATH", path_not_utf8(), error);
}

/// The test's PATH with a directory whose name is not UTF-8 after it.
fn path_not_utf8() -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut path = std::env::var_os("PATH").unwrap().as_bytes().to_vec();
    path.extend(b":/opt/a\xffb");
    OsString::from_vec(path)
}

/// `export FORMAT DIR` in a fresh worktree, with `name=value` in its
/// environment, is refused with `error` and a hint, and leaves the
/// registry, the state directory and DIR as they were: first with no
/// registry (and no DIR) yet, then with another worktree's ports in it
/// (and DIR empty).
fn refused_in_a_fresh_worktree(format: &str, name: &str, value: OsString, error: &str) {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    t.git(&["commit", "-q", "-am", "a service"]);
    let fresh = t.add_worktree("fresh");
    let dir = t.root().join("units");
    for before in ["absent", "present"] {
        if before == "present" {
            assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
            std::fs::create_dir(&dir).unwrap();
        }
        let registry = std::fs::read(t.registry_path()).ok();
        assert_eq!(registry.is_some(), before == "present");
        let state = snapshot(&t.root().join("state"));
        let mut export = t.wtenv_in(&fresh, &["export", format, dir.to_str().unwrap()]);
        let out = run(export.env(name, &value));
        assert_eq!(out.code, Some(1), "{before}: {out}");
        let after = std::fs::read(t.registry_path()).ok();
        assert!(after == registry, "{before}: the registry changed: {out}");
        // Not even an empty `background/` (or state) directory is made.
        let made = snapshot(&t.root().join("state"));
        assert!(
            made == state,
            "{before}: the state directory changed: {out}"
        );
        assert!(
            out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
            "{before}: {out}"
        );
        let written = std::fs::read_dir(&dir).map_or(0, Iterator::count);
        assert_eq!(
            (dir.exists(), written),
            (before == "present", 0),
            "{before}"
        );
    }
}

/// `up --detach` under systemd with a passed variable systemd cannot take
/// is refused before anything is reserved, started or made in the state
/// directory.
#[test]
fn up_detach_under_systemd_refuses_a_variable_that_is_not_utf8_with_the_registry_as_it_was() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config("[services.web]\nrun = \"sleep 60\"\n");
    let m = UserManager::start(&t);
    let state = snapshot(&t.root().join("state"));
    let mut up = m.wtenv(&t, &["up", "-d", "--manager", "systemd"]);
    let out = run(up.env("PATH", path_not_utf8()));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!t.registry_path().exists(), "ports reserved: {out}");
    // Not even an empty `background/` (or state) directory is made.
    assert!(
        snapshot(&t.root().join("state")) == state,
        "the state directory changed: {out}"
    );
    let error = "error: systemd cannot carry the variable PATH ";
    assert!(
        out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
        "{out}"
    );
    let state = m.systemctl(&t, &["is-active", &unit(&t, "web")]);
    assert_ne!(state.stdout.trim(), "active", "{state}");
}

#[test]
fn logs_follow_prints_new_lines_as_the_service_writes_them() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "(i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done) & exec python3 -m http.server $WEB_PORT --bind 127.0.0.1"
"#,
    );
    let up = run(&mut t.wtenv(&["up", "-d"]));
    assert_eq!(up.code, Some(0), "{up}");
    let out = t.root().join("follow.out");
    let mut follow = t
        .wtenv(&["logs", "web", "-f", "-n", "1"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    // Lines written after `logs -f` started arrive, prefixed, in order.
    let ticks = || -> Vec<u32> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("web | tick ")?.parse().ok())
            .collect()
    };
    assert!(wait_for(PATIENCE, || ticks().len() >= 5), "{:?}", ticks());
    let seen = ticks();
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
}
