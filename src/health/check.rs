//! The I/O of a health check: a TCP connect, a minimal HTTP/1.1 GET over
//! std's `TcpStream` (no TLS: dev servers on loopback), and a command run
//! in its own process group and killed as a group at its timeout.
//!
//! Each returns a [`Probe`]: `Ok` healthy, `Err` the words a user sees
//! after `unhealthy:` (`GET /healthz -> 503`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Check, Failed, Health, OUTPUT_BYTES, OUTPUT_LINES, Probe};

/// Runs `health`'s check once against `port`, at the addresses `bound`
/// gives ([`addresses`]). `vars` and `dir`: the environment and directory
/// of a `cmd` check.
pub fn probe(
    health: &Health,
    port: Option<u16>,
    bound: Option<IpAddr>,
    vars: &[(String, String)],
    dir: &Path,
) -> Probe {
    let deadline = Instant::now() + health.timeout;
    match (&health.check, port) {
        (Check::Tcp, Some(port)) => tcp(&addresses(bound, port), health.timeout),
        (Check::Http { path }, Some(port)) => http(&addresses(bound, port), path, deadline),
        (Check::Cmd { command }, _) => cmd(command, vars, dir, health.timeout),
        (_, None) => Err("no port allocated".into()),
    }
}

/// Where every check of a service's port connects (the tcp and http
/// checks, `up`'s watch of its listener), in order: the address its
/// socket is bound to when that is a specific one (`bound`: a `socket =
/// true` service's `bind`, as wtenv binds it, [`crate::config::Service::bound`]),
/// since a listener there answers nowhere else; else, for a wildcard or
/// no address known, 127.0.0.1 then ::1 (a server on `localhost` may
/// listen on either).
pub fn addresses(bound: Option<IpAddr>, port: u16) -> Vec<SocketAddr> {
    match bound.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => vec![
            ([127, 0, 0, 1], port).into(),
            (Ipv6Addr::LOCALHOST, port).into(),
        ],
    }
}

/// The port accepts a connection at one of `addrs` (all of one port).
pub fn tcp(addrs: &[SocketAddr], timeout: Duration) -> Probe {
    let port = addrs.first().map_or(0, SocketAddr::port);
    let mut last = String::new();
    for &addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = connect_error(&e),
        }
    }
    Err(format!("connect to port {port}: {last}").into())
}

fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// `GET path` at the first of `addrs` that takes the connection (all of
/// one port; 127.0.0.1, else ::1 when it refuses, unless the service's
/// socket is bound to one address: [`addresses`]); 2xx and 3xx are healthy.
pub fn http(addrs: &[SocketAddr], path: &str, deadline: Instant) -> Probe {
    let what = format!("GET {path}");
    let mut last = String::new();
    for &addr in addrs {
        let port = addr.port();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{what}: timed out").into());
        }
        let stream = match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => s,
            Err(e) => {
                last = connect_error(&e);
                continue;
            }
        };
        return match exchange(stream, port, path, deadline) {
            Ok(code) if (200..400).contains(&code) => Ok(()),
            Ok(code) => Err(format!("{what} -> {code}").into()),
            Err(why) => Err(format!("{what}: {why}").into()),
        };
    }
    Err(format!("{what}: {last}").into())
}

/// Sends the request and reads the status line.
fn exchange(
    mut stream: TcpStream,
    port: u16,
    path: &str,
    deadline: Instant,
) -> Result<u16, String> {
    let timed_out = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_owned(),
        _ => e.to_string(),
    };
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(left())).map_err(timed_out)?;
    stream
        .write_all(request(port, path).as_bytes())
        .map_err(timed_out)?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    // The status line is all we need; a server may send it in pieces.
    while !head.contains(&b'\n') && head.len() < 4096 {
        if Instant::now() >= deadline {
            return Err("timed out".to_owned());
        }
        stream.set_read_timeout(Some(left())).map_err(timed_out)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(timed_out(e)),
        }
    }
    status_code(&head)
}

/// The request: HTTP/1.1 needs `Host`; `Connection: close` so the server
/// does not keep the socket for us.
pub fn request(port: u16, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: wtenv\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
}

/// The status code of a response that begins `HTTP/1.x NNN ...`.
pub fn status_code(head: &[u8]) -> Result<u16, String> {
    if head.is_empty() {
        return Err("connection closed without an answer".to_owned());
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") && code.len() == 3 => code
            .parse()
            .map_err(|_| format!("not an HTTP answer: {:?}", line.trim_end())),
        _ => Err(format!("not an HTTP answer: {:?}", line.trim_end())),
    }
}

/// `sh -c command` with `vars`, from `dir`, in its own process group;
/// exit 0 is healthy. At `timeout` the whole group gets SIGKILL, so a
/// check that hangs (or left a child behind) never outlives its turn.
/// What it prints (stdout and stderr, one pipe) is read as it comes, the
/// end kept ([`Tail`]) for a failure to show.
pub fn cmd(command: &str, vars: &[(String, String)], dir: &Path, timeout: Duration) -> Probe {
    let (mut out, into) =
        std::io::pipe().map_err(|e| format!("cmd {command:?}: could not create a pipe: {e}"))?;
    // Read between two looks at the child, never waiting: a process the
    // check left outside its group may keep the pipe open.
    rustix::io::ioctl_fionbio(&out, true)
        .map_err(|e| format!("cmd {command:?}: could not set up its output: {e}"))?;
    let into_err = into
        .try_clone()
        .map_err(|e| format!("cmd {command:?}: could not create a pipe: {e}"))?;
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(into)
        .stderr(into_err)
        .process_group(0);
    let spawned = crate::supervise::reap::spawn_unreaped(&mut c);
    // Our copies of the write end go with the command.
    drop(c);
    let mut child = spawned.map_err(|e| match std::fs::metadata(dir) {
        // The spawn's chdir failed, not sh: say the directory.
        Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => format!(
            "cmd {command:?}: its directory {} is gone",
            crate::process::printable_path(dir)
        ),
        _ => format!("cmd {command:?}: could not run sh: {e}"),
    })?;
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let mut tail = Tail::default();
    let status = loop {
        tail.read(&mut out);
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                crate::supervise::reap::forget_unreaped(pid);
                return Err(format!("cmd {command:?}: {e}").into());
            }
        }
    };
    // What the check left behind in its group goes with it, now.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.wait();
            crate::supervise::reap::forget_unreaped(pid);
            tail.read(&mut out);
            return Err(Failed {
                timed_out: true,
                ..tail.failed(format!(
                    "cmd {command:?}: timed out after {} (killed)",
                    humantime::format_duration(timeout)
                ))
            });
        }
    };
    crate::supervise::reap::forget_unreaped(pid);
    if status.success() {
        return Ok(());
    }
    tail.read(&mut out);
    use std::os::unix::process::ExitStatusExt;
    Err(tail.failed(match (status.code(), status.signal()) {
        (Some(code), _) => format!("cmd {command:?} -> exit {code}"),
        _ => format!(
            "cmd {command:?} -> {}",
            crate::supervise::services::describe(status)
        ),
    }))
}

/// The end of what a `cmd` check printed: its last [`OUTPUT_BYTES`] (a
/// little more is held while reading), of which a failure shows the last
/// [`OUTPUT_LINES`] lines, escaped.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    /// Bytes were dropped from the front.
    cut: bool,
}

impl Tail {
    /// Takes what `from` has now (a non-blocking pipe), keeping the end.
    fn read(&mut self, from: &mut impl Read) {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            self.push(&buf[..n]);
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        if self.bytes.len() > 2 * OUTPUT_BYTES {
            let drop = self.bytes.len() - OUTPUT_BYTES;
            self.bytes.drain(..drop);
            self.cut = true;
        }
    }

    /// `what`, with the lines kept.
    fn failed(&self, what: String) -> Failed {
        let mut bytes = self.bytes.as_slice();
        let mut cut = self.cut;
        if bytes.len() > OUTPUT_BYTES {
            bytes = &bytes[bytes.len() - OUTPUT_BYTES..];
            cut = true;
        }
        let text = String::from_utf8_lossy(bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        // A first line cut in its middle is not shown as if whole.
        if cut && lines.len() > 1 {
            lines.remove(0);
        }
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if lines.len() > OUTPUT_LINES {
            lines.drain(..lines.len() - OUTPUT_LINES);
            cut = true;
        }
        Failed {
            what,
            output: lines.iter().map(|l| crate::process::printable(l)).collect(),
            cut,
            timed_out: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_and_garbage_is_named() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\nX: y"),
            Ok(503)
        );
        assert_eq!(status_code(b"HTTP/1.1 302"), Ok(302), "in pieces");
        assert!(status_code(b"").unwrap_err().contains("without an answer"));
        assert!(
            status_code(b"SSH-2.0-OpenSSH\r\n")
                .unwrap_err()
                .contains("not an HTTP answer")
        );
        assert!(status_code(b"HTTP/1.1 abc\r\n").is_err());
    }

    /// A check whose directory is gone says so, not that `sh` could not
    /// be run (the spawn's chdir is what fails).
    #[test]
    fn a_cmd_check_in_a_gone_directory_says_the_directory() {
        let gone = tempfile::tempdir().unwrap().path().to_path_buf();
        let said = cmd("true", &[], &gone, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            said.unhealthy(),
            format!(
                "unhealthy: cmd \"true\": its directory {} is gone",
                gone.display()
            )
        );
        let here = cmd("true", &[], Path::new("/"), Duration::from_secs(5));
        assert!(here.is_ok(), "{here:?}");
    }

    #[test]
    fn a_specific_bound_address_is_the_one_checked_else_loopback() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let addrs = |bound, port| -> Vec<String> {
            addresses(bound, port)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let loopback = ["127.0.0.1:5000", "[::1]:5000"];
        assert_eq!(addrs(None, 5000), loopback);
        assert_eq!(addrs(ip("::"), 5000), loopback);
        assert_eq!(addrs(ip("0.0.0.0"), 5000), loopback);
        assert_eq!(addrs(ip("127.0.0.2"), 5000), ["127.0.0.2:5000"]);
        assert_eq!(addrs(ip("192.168.1.7"), 5000), ["192.168.1.7:5000"]);
        assert_eq!(addrs(ip("::1"), 5000), ["[::1]:5000"]);
    }

    #[test]
    fn a_checks_output_keeps_its_last_lines_escaped_and_says_when_cut() {
        let failed = |chunks: &[&[u8]]| {
            let mut tail = Tail::default();
            for chunk in chunks {
                tail.push(chunk);
            }
            tail.failed("cmd \"x\" -> exit 2".into())
        };
        let f = failed(&[b"some output\n", b"err\x1b[31m\n\n"]);
        assert_eq!(f.output, ["some output", "err\\u{1b}[31m"]);
        assert!(!f.cut);
        assert_eq!(
            f.detailed(),
            "cmd \"x\" -> exit 2\n  its output:\n    some output\n    err\\u{1b}[31m"
        );
        assert_eq!(f.to_string(), "cmd \"x\" -> exit 2", "one line");
        // Seven lines: the last five.
        let f = failed(&[b"1\n2\n3\n4\n5\n6\n7"]);
        assert_eq!((f.output.join(","), f.cut), ("3,4,5,6,7".into(), true));
        assert!(f.detailed().contains("\n  the end of its output:\n    3\n"));
        // Much more: the last KiB, its first (partial) line left out.
        let long = format!("{}\nlast\n", "y".repeat(100_000));
        let f = failed(&[long.as_bytes()]);
        assert_eq!(f.output, ["last"]);
        let line = "z".repeat(3000);
        let f = failed(&[line.as_bytes()]);
        assert_eq!(f.output, ["z".repeat(OUTPUT_BYTES)]);
        assert!(f.cut);
        assert_eq!(failed(&[]).detailed(), "cmd \"x\" -> exit 2", "no output");
    }

    #[test]
    fn the_request_is_http_1_1_with_host_and_close() {
        let r = request(5000, "/healthz");
        assert!(r.starts_with("GET /healthz HTTP/1.1\r\nHost: localhost:5000\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }
}
