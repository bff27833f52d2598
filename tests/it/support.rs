//! The sandbox every integration test runs in: its own HOME, XDG
//! dirs, registry, git repository and port block.
//!
//! Port blocks: nextest runs each test in its own process, so an in-process
//! counter cannot hand out disjoint ranges. A test instead takes a block by
//! `flock`ing `/tmp/wtenv-test-ports/block-N` (released when the test ends,
//! even if it crashes) and checks that every port of it is free.

#![allow(dead_code)]

mod reclone;
mod shell_status;
mod sleeper;
mod submodule;
mod tmpfs;
mod watchers;

pub use sleeper::{HeldRun, Sleeper, held_run, holds_of};
pub use tmpfs::Tmpfs;
pub use watchers::{kill_watcher_of, watchers_of, watchers_seen};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Ports handed to tests: below Linux's default ephemeral range (32768).
const BLOCK_BASE: u16 = 20000;
pub const BLOCK_SIZE: u16 = 20;
const BLOCKS: u16 = 600;

/// An exclusive, contiguous range of ports (one or more adjacent blocks of
/// `BLOCK_SIZE`), every one free when taken.
pub struct PortBlock {
    pub start: u16,
    len: u16,
    _locks: Vec<File>,
}

impl PortBlock {
    pub fn take() -> PortBlock {
        PortBlock::take_many(1)
    }

    /// `n` adjacent blocks as one range of `n * BLOCK_SIZE` ports, for tests
    /// that need more than one block (many worktrees, many allocations).
    /// Same scheme: each block's file is `flock`ed, every port checked.
    pub fn take_many(n: u16) -> PortBlock {
        assert!((1..=BLOCKS).contains(&n));
        let dir = Path::new("/tmp/wtenv-test-ports");
        std::fs::create_dir_all(dir).unwrap();
        let slots = BLOCKS - n + 1;
        // Start at a pid-derived block so parallel tests rarely contend.
        let first = (std::process::id() as u16) % slots;
        'candidate: for i in 0..slots {
            let base = (first + i) % slots;
            let mut locks = Vec::new();
            for b in base..base + n {
                let file = File::create(dir.join(format!("block-{b}"))).unwrap();
                if file.try_lock().is_err() {
                    continue 'candidate;
                }
                locks.push(file);
            }
            let start = BLOCK_BASE + base * BLOCK_SIZE;
            let len = n * BLOCK_SIZE;
            if (start..start + len).all(port_is_free) {
                return PortBlock {
                    start,
                    len,
                    _locks: locks,
                };
            }
        }
        panic!("no {n} free adjacent port blocks under /tmp/wtenv-test-ports");
    }

    pub fn len(&self) -> u16 {
        self.len
    }

    pub fn end(&self) -> u16 {
        self.start + self.len - 1
    }

    pub fn range(&self) -> String {
        format!("{}-{}", self.start, self.end())
    }

    pub fn port(&self, i: u16) -> u16 {
        assert!(i < self.len);
        self.start + i
    }
}

/// Free for any listener a test starts: a plain bind, WITHOUT SO_REUSEADDR
/// (std's `TcpListener::bind` sets it), so a TIME_WAIT left by an earlier
/// test (e.g. the TIME_WAIT probe test) makes the block unusable for now,
/// since a python listener without SO_REUSEADDR could not bind there.
fn port_is_free(port: u16) -> bool {
    use socket2::{Domain, Socket, Type};
    let bind = |addr: std::net::SocketAddr| {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        if addr.is_ipv6() {
            s.set_only_v6(false).unwrap();
        }
        s.bind(&addr.into()).and_then(|()| s.listen(1)).is_ok()
    };
    bind(([127, 0, 0, 1], port).into()) && bind((std::net::Ipv6Addr::UNSPECIFIED, port).into())
}

/// One test's world.
pub struct TestEnv {
    pub tmp: TempDir,
    pub ports: PortBlock,
    /// The main worktree of a fresh repository with one commit.
    pub repo: PathBuf,
}

impl TestEnv {
    /// A repository whose `wtenv.toml` gives `feature` this test's block.
    pub fn new() -> TestEnv {
        TestEnv::with_ports(PortBlock::take())
    }

    /// Like [`new`](Self::new), with a range of its own choosing (e.g.
    /// `PortBlock::take_many(4)`).
    pub fn with_ports(ports: PortBlock) -> TestEnv {
        let env = TestEnv::bare_with(ports);
        env.write_config("");
        env.git(&["add", "wtenv.toml"]);
        env.git(&["commit", "-q", "-m", "config"]);
        env
    }

    /// A repository with no `wtenv.toml` (the defaults apply).
    pub fn bare() -> TestEnv {
        TestEnv::bare_with(PortBlock::take())
    }

    fn bare_with(ports: PortBlock) -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("wtenv-test")
            .tempdir()
            .unwrap();
        let tmp_path = tmp.path().canonicalize().unwrap();
        for d in ["home", "config", "data", "cache", "state"] {
            std::fs::create_dir_all(tmp_path.join(d)).unwrap();
        }
        let repo = tmp_path.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let env = TestEnv { tmp, ports, repo };
        env.git(&["init", "-q", "-b", "main"]);
        env.git(&["commit", "-q", "--allow-empty", "-m", "init"]);
        env
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().canonicalize().unwrap()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state/wtenv")
    }

    pub fn registry_path(&self) -> PathBuf {
        self.state_dir().join("registry.json")
    }

    /// A repository of its own at `dir` (made here), its `wtenv.toml`
    /// giving this test's `feature` range (written, not committed).
    pub fn init_repo(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        self.git_in(dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join("wtenv.toml"), self.range_config()).unwrap();
    }

    /// The `[purposes]` table of this test's `feature` range.
    fn range_config(&self) -> String {
        format!("[purposes]\nfeature = \"{}\"\n", self.ports.range())
    }

    /// Writes `wtenv.toml` with this test's `feature` range, then `extra`.
    pub fn write_config(&self, extra: &str) {
        let text = format!("{}{extra}", self.range_config());
        std::fs::write(self.repo.join("wtenv.toml"), text).unwrap();
    }

    /// The isolated environment (HOME and the XDG directories of its own).
    pub fn apply_env(&self, cmd: &mut Command) {
        let root = self.root();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_CACHE_HOME", root.join("cache"))
            .env("XDG_STATE_HOME", root.join("state"))
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // No detached `git maintenance run --auto` after a commit: it
            // would work inside a worktree a test is about to remove.
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "maintenance.auto")
            .env("GIT_CONFIG_VALUE_0", "false")
            .env("DIRENV_LOG_FORMAT", "")
            .env("LANG", "C.UTF-8");
    }

    /// `wtenv ARGS` in `dir`.
    pub fn wtenv_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wtenv"));
        self.apply_env(&mut cmd);
        cmd.current_dir(dir).args(args);
        cmd
    }

    /// `wtenv ARGS` in the main worktree.
    pub fn wtenv(&self, args: &[&str]) -> Command {
        self.wtenv_in(&self.repo, args)
    }

    /// `wtenv ARGS` in the main worktree as the unprivileged user nobody
    /// (`setpriv`, from util-linux): the kernel's permission checks then
    /// apply, which root passes. What it touches must be nobody's: see
    /// [`give_to_nobody`](Self::give_to_nobody).
    pub fn wtenv_as_nobody(&self, args: &[&str]) -> Command {
        self.wtenv_as_nobody_in(&self.repo, args)
    }

    /// [`wtenv_as_nobody`](Self::wtenv_as_nobody) in `dir`. Root enters
    /// it before giving up its rights, so nobody can be in a directory
    /// it may not search (as after `sudo -u`, or a `chmod` above a shell).
    pub fn wtenv_as_nobody_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        self.apply_env(&mut cmd);
        cmd.current_dir(dir)
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_wtenv"))
            .args(args);
        cmd
    }

    /// [`wtenv_as_nobody`](Self::wtenv_as_nobody) under `umask` (e.g.
    /// `"277"`, which takes the owner's own bits from every mode).
    pub fn wtenv_as_nobody_under_umask(&self, umask: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        self.apply_env(&mut cmd);
        cmd.current_dir(&self.repo)
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .args(["sh", "-c", &format!("umask {umask} && exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_wtenv"))
            .args(args);
        cmd
    }

    /// Gives the test's whole tree (repository, HOME, state) to nobody.
    pub fn give_to_nobody(&self) {
        let out = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(self.root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        self.apply_env(&mut cmd);
        let out = cmd.current_dir(dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A linked worktree `<tmp>/<name>` on a new branch.
    pub fn add_worktree(&self, name: &str) -> PathBuf {
        let path = self.root().join(name);
        self.git(&["worktree", "add", "-q", "-b", name, path.to_str().unwrap()]);
        path
    }

    /// The registry as JSON (panics if it does not parse).
    pub fn registry(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.registry_path()).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// `(port, service, worktree)` of every allocation.
    pub fn allocations(&self) -> Vec<(u16, String, PathBuf)> {
        if !self.registry_path().exists() {
            return vec![];
        }
        self.registry()["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["port"].as_u64().unwrap() as u16,
                    a["service"].as_str().unwrap().to_owned(),
                    PathBuf::from(a["worktree"].as_str().unwrap()),
                )
            })
            .collect()
    }
}

/// A live process standing for a `nix develop` shell (`sleep 600`, killed
/// by the caller), whose `env --hold` in `t`'s main worktree allocated the
/// worktree's ports: the process and its pid.
pub fn held_env(t: &TestEnv) -> (std::process::Child, String) {
    let holder = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = holder.id().to_string();
    let out = run(&mut t.wtenv(&["env", "--hold", &pid]));
    assert_eq!(out.code, Some(0), "{out}");
    (holder, pid)
}

/// stdout, stderr and status of a finished command, for assertions and
/// snapshots (jj's `CommandOutput`).
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    /// The signal it died of, when it did.
    pub signal: Option<i32>,
}

pub fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd.output().unwrap();
    Run::of(out.status, out.stdout, out.stderr)
}

impl Run {
    pub fn of(status: std::process::ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => writeln!(f, "exit: {code}")?,
            (None, Some(sig)) => writeln!(f, "killed by signal {sig}")?,
            (None, None) => writeln!(f, "exit: unknown")?,
        }
        write!(f, "--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// The worktree at `path` in `doc`, the parsed output of `list --json`
/// (`json`, shown when it is not listed).
pub fn listed_worktree(doc: &serde_json::Value, path: &Path, json: &Run) -> serde_json::Value {
    doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == path.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} not listed: {json}", path.display()))
        .clone()
}

/// The stamp wtenv writes for the worktree at `root` (resolved when it
/// exists, as the registry records worktrees) with `ports`.
pub fn stamp_line(root: &Path, ports: &[(&str, u16)]) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    wtenv::worktree::stamp_line(&root, ports.iter().copied())
}

/// A listener that is a real other process (python3), with exact socket
/// options, in `cwd`. Killed on drop.
pub struct PyListener {
    pub child: std::process::Child,
}

impl PyListener {
    /// `family` "4" or "6"; `addr` e.g. "127.0.0.1" or "::"; `opts` Python
    /// statements run on the socket `s` before bind (e.g. setting V6ONLY).
    pub fn start(cwd: &Path, family: &str, addr: &str, port: u16, opts: &str) -> PyListener {
        let af = if family == "6" {
            "socket.AF_INET6"
        } else {
            "socket.AF_INET"
        };
        let script = format!(
            "import socket,sys,time\ns=socket.socket({af},socket.SOCK_STREAM)\n{opts}\ns.bind(('{addr}',{port}))\ns.listen(8)\nprint('ready',flush=True)\ntime.sleep(600)\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .current_dir(cwd)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "listener on {addr}:{port} did not start"
        );
        PyListener { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PyListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until true or `timeout` (generous: for presence only).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

impl TestEnv {
    /// The repository's identity as the registry records it.
    pub fn common_dir(&self) -> PathBuf {
        self.repo.join(".git")
    }

    /// One registry record, in the schema of `src/registry.rs`.
    pub fn record(
        &self,
        port: u16,
        service: &str,
        purpose: &str,
        worktree: &Path,
        reserved: bool,
        holders: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({
            "port": port,
            "service": service,
            "purpose": purpose,
            "repository": self.common_dir(),
            "worktree": worktree,
            "created": "2026-01-01T00:00:00Z",
            "reserved": reserved,
            "holders": holders,
        })
    }

    /// Writes a registry with `allocations` directly (dir 0700, file 0600),
    /// as a wtenv of this version would have.
    pub fn write_registry(&self, allocations: Vec<serde_json::Value>) {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let doc = serde_json::json!({"version": 1, "allocations": allocations});
        let path = self.registry_path();
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// `pid`'s start time as wtenv records it (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// [`run`], failing the test (not hanging it) when the command is still
/// running after `limit`: for inputs that used to block forever (a FIFO).
/// The limit is generous; it bounds a hang, it does not time the command.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Run {
    use std::io::Read;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Run::of(status, stdout, stderr)
}

/// Every file under `dir` (recursively, links not followed) with its bytes
/// (a link: its target's path): a before/after picture proving that
/// nothing there was written, created or removed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(path.clone());
                out.push((path, b"<dir>".to_vec()));
            } else if ty.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((path, target.into_os_string().into_encoded_bytes()));
            } else if ty.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            } else {
                out.push((path, b"<special>".to_vec()));
            }
        }
    }
    out.sort();
    out
}

/// A tmux server of our own (its own socket), killed on drop: a real
/// terminal for interactive shells.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Session `w` running an interactive bash in the test's repository,
    /// once it shows its prompt (keys typed earlier could reach bash
    /// before its line editor is set up).
    pub fn start_bash(t: &TestEnv) -> Tmux {
        let tmux = Tmux::start(t, &t.repo, &["bash", "--norc", "--noprofile", "-i"]);
        assert!(
            wait_for(Duration::from_secs(30), || !tmux.pane(t).trim().is_empty()),
            "bash showed no prompt"
        );
        tmux
    }

    /// Session `w` running `command` in `dir`, in the test's environment.
    pub fn start(t: &TestEnv, dir: &Path, command: &[&str]) -> Tmux {
        // A socket per session: a server just killed may still hold the last.
        static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux {
            socket: t.root().join(format!("tmux-{n}.sock")),
        };
        let status = tmux
            .cmd(t)
            .args([
                "new-session",
                "-d",
                "-s",
                "w",
                "-x",
                "200",
                "-y",
                "50",
                "-c",
            ])
            .arg(dir)
            .args(command)
            .status()
            .unwrap();
        assert!(status.success());
        tmux
    }

    pub fn cmd(&self, t: &TestEnv) -> Command {
        let mut c = Command::new("tmux");
        t.apply_env(&mut c);
        c.env("TERM", "xterm").arg("-S").arg(&self.socket);
        c
    }

    pub fn pane(&self, t: &TestEnv) -> String {
        let out = self
            .cmd(t)
            .args(["capture-pane", "-p", "-J", "-S", "-2000", "-t", "w"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, t: &TestEnv, keys: &[&str]) {
        let status = self
            .cmd(t)
            .args(["send-keys", "-t", "w"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Types `line` (literally) and Enter.
    pub fn line(&self, t: &TestEnv, line: &str) {
        let status = self
            .cmd(t)
            .args(["send-keys", "-t", "w", "-l", line])
            .status()
            .unwrap();
        assert!(status.success());
        self.keys(t, &["Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// A real `python3 -m http.server PORT` (the holder the tests of the scripts
/// wtenv replaces used), killed on drop.
pub struct HttpServer(std::process::Child);

impl HttpServer {
    pub fn start(cwd: &Path, port: u16) -> HttpServer {
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(cwd)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_for(Duration::from_secs(60), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "http.server did not listen on {port}"
        );
        HttpServer(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.kill();
    }
}
