//! Zero-race hand-off: wtenv binds a service's port itself and passes the
//! listening socket to the service, with systemd's socket-activation
//! protocol, so no other process can take the port between the proof that
//! it is free and the server's own bind (README "Sockets instead of port
//! numbers").
//!
//! Contract:
//! - [`Listener::bind`] binds and listens on the service's address
//!   (dual-stack `[::]` unless `bind` is configured), with SO_REUSEADDR as
//!   the probe has it (TIME_WAIT is free) and never SO_REUSEPORT. That bind
//!   is the proof the port is free: EADDRINUSE is a conflict naming the
//!   holder.
//! - Every socket wtenv opens is close-on-exec (socket2 and std open them
//!   with SOCK_CLOEXEC), so no child inherits a listener except through
//!   [`handoff`].
//! - [`handoff`] starts the command as `wtenv __listen-exec -- CMD...`. The
//!   listeners, and the stdin the command should have, travel to that child
//!   over a socketpair on its stdin as one SCM_RIGHTS message, sent before
//!   the spawn: no descriptor of this (multi-threaded) process is ever made
//!   inheritable, so a child spawned at the same moment by another thread
//!   inherits nothing. The child ([`exec`]) is single-threaded: it puts the
//!   stdin at fd 0 and the listeners at fd 3, 4, ... (the only descriptors
//!   without close-on-exec), sets `LISTEN_PID` to its own pid and execs the
//!   command, which keeps that pid. So `LISTEN_PID` names the server
//!   without `pre_exec` or any unsafe code, and the child is the leader of
//!   the process group the supervisor made.
//! - An exec that fails in that child is said by the caller, in the words
//!   of any command it could not start: the child sends the errno back
//!   over the pair, whose copy it keeps close-on-exec ([`ExecReport`]).
//! - Sockets a service manager passed to `run` (an exported `.socket`
//!   unit) are taken over instead of bound ([`inherited`]) and handed on
//!   the same way.
//! - The caller keeps its [`Listener`]s while the service runs (and across
//!   its restarts), and drops them once the children are gone, before the
//!   ports are released: the port is never free while wtenv holds it.

use std::ffi::OsString;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::alloc::Ports;
use crate::config::{Config, Service};
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::probe;

pub mod inherited;

/// The hidden subcommand that places the sockets and execs the command.
pub const EXEC_COMMAND: &str = "__listen-exec";

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
pub const FIRST_FD: i32 = 3;

/// At most this many sockets are handed to one command.
pub const MAX_SOCKETS: usize = 64;

/// The listen backlog: the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// One service's listening socket, bound by wtenv.
#[derive(Debug)]
pub struct Listener {
    pub service: String,
    pub addr: SocketAddr,
    socket: Socket,
}

impl Listener {
    /// Binds and listens on `ip`:`port` for `service`. A port in use is a
    /// conflict naming its holder (exit 1).
    pub fn bind(service: &str, ip: IpAddr, port: u16) -> Result<Listener> {
        let addr = SocketAddr::new(ip, port);
        let what = || format!("could not bind port {port} ({addr}) for service {service}");
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| Error::io(what(), e))?;
        let bound = (|| {
            if ip.is_ipv6() && ip.is_unspecified() {
                // Dual-stack: one socket for IPv6 and IPv4-mapped clients.
                socket.set_only_v6(false)?;
            }
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)
        })();
        match bound {
            Ok(()) => Ok(Listener {
                service: service.to_owned(),
                addr: match socket.local_addr().ok().and_then(|a| a.as_socket()) {
                    Some(bound) => bound,
                    None => addr,
                },
                socket,
            }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let holders = probe::lookup(&[port].into())
                    .remove(&port)
                    .unwrap_or_default();
                Err(Error::PortInUse {
                    port,
                    addr,
                    service: service.to_owned(),
                    holders,
                })
            }
            Err(e) => Err(Error::io(what(), e)),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The services whose sockets `run` hands over: with `--sockets`, those
/// named by `--service` (default: every service); without it, those named
/// by `--service` that have `socket = true`. `root`: the worktree, which
/// the error for a name the config does not declare names its file for.
pub fn run_services<'a>(
    config: &'a Config,
    root: &std::path::Path,
    sockets: bool,
    named: &[String],
) -> Result<Vec<&'a Service>> {
    let chosen: Vec<&Service> = if named.is_empty() {
        config.services.iter().collect()
    } else {
        named
            .iter()
            .map(|n| config.require_service(n, root))
            .collect::<Result<_>>()?
    };
    Ok(chosen
        .into_iter()
        .filter(|s| sockets || (s.socket && !named.is_empty()))
        .collect())
}

/// Binds each of `services` on its port in `ports` (every one or none:
/// the first failure drops the ones already bound).
pub fn bind_services(services: &[&Service], ports: &Ports) -> Result<Vec<Listener>> {
    services
        .iter()
        .map(|s| {
            let port = ports.get(&s.name).copied().ok_or_else(|| {
                Error::not_found(format!("service {} has no port allocated", s.name))
            })?;
            Listener::bind(&s.name, s.bind_addr(), port)
        })
        .collect()
}

/// `LISTEN_FDNAMES`: the services' names, `:`-separated, in fd order.
pub fn fd_names(listeners: &[&Listener]) -> String {
    listeners
        .iter()
        .map(|l| l.service.as_str())
        .collect::<Vec<_>>()
        .join(":")
}

/// What the handed-off command gets on fd 0.
pub enum Stdin {
    /// wtenv's own stdin (`run`: the terminal, a pipe).
    Inherit,
    /// `/dev/null` (`up`).
    Null,
}

/// The expression that runs `argv` with `listeners` at fd 3 onwards (see
/// the module doc), and what its child will say of its exec. The caller
/// adds the environment, directory and output and spawns it in its own
/// group ([`crate::supervise::Supervisor::spawn`], which reads the
/// [`ExecReport`]); `LISTEN_FDS` and `LISTEN_FDNAMES` are set here,
/// `LISTEN_PID` by the child itself.
pub fn handoff(
    argv: &[OsString],
    listeners: &[&Listener],
    stdin: Stdin,
) -> Result<(duct::Expression, ExecReport)> {
    if listeners.is_empty() || listeners.len() > MAX_SOCKETS {
        return Err(Error::invalid(format!(
            "can hand 1 to {MAX_SOCKETS} sockets to a command, not {}",
            listeners.len()
        )));
    }
    let exe =
        std::env::current_exe().map_err(|e| Error::io("could not find the wtenv executable", e))?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| Error::io("could not create a socketpair", e))?;
    let null = match stdin {
        Stdin::Null => Some(
            std::fs::File::open("/dev/null")
                .map_err(|e| Error::io("could not open /dev/null", e))?,
        ),
        Stdin::Inherit => None,
    };
    let ours_in = io::stdin();
    let stdin_fd = match &null {
        Some(file) => file.as_fd(),
        None => ours_in.as_fd(),
    };
    let mut fds = vec![stdin_fd];
    fds.extend(listeners.iter().map(|l| l.as_fd()));
    send_fds(&ours, &fds).map_err(|e| Error::io("could not pass the sockets", e))?;
    let mut args: Vec<OsString> = vec![EXEC_COMMAND.into(), "--".into()];
    args.extend(argv.iter().cloned());
    let expr = duct::cmd(exe, args)
        .stdin_file(OwnedFd::from(theirs))
        .env("LISTEN_FDS", listeners.len().to_string())
        .env("LISTEN_FDNAMES", fd_names(listeners))
        .env_remove("LISTEN_PID");
    Ok((expr, ExecReport(ours)))
}

/// The parent's end of a hand-off's socketpair, kept past the spawn: an
/// exec of the command that fails in `__listen-exec` is said back through
/// it (the errno, 4 bytes), so the command is named in the words of any
/// command that could not be started, by the one who started it
/// ([`crate::supervise::SpawnError`]), not in the service's output.
#[derive(Debug)]
pub struct ExecReport(UnixStream);

impl ExecReport {
    /// Why the command could not be exec'd, or `None` once it was: the
    /// child's copy of the pair is close-on-exec, so its exec ends the
    /// stream. Read once the caller's own copy of the child's end is
    /// closed (the expression dropped), else this waits for `patience`.
    /// Past `patience` (a child slow to start) the report is dropped, and
    /// a child that then fails finds no reader and says the error itself.
    pub fn failure(self, patience: std::time::Duration) -> Option<io::Error> {
        use std::io::Read;
        self.0.set_read_timeout(Some(patience)).ok()?;
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < errno.len() {
            match (&self.0).read(&mut errno[got..]) {
                Ok(0) => return None,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
    }
}

/// One message carrying `fds` (queued in the pair until the child reads it).
fn send_fds(socket: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS + 1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(b"w")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// The fds sent by [`send_fds`], close-on-exec.
fn receive_fds(socket: BorrowedFd<'_>) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS + 1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // Linux marks them close-on-exec as they arrive; macOS has no such
    // flag, so each is marked below, before this process spawns anything.
    #[cfg(target_os = "linux")]
    let flags = RecvFlags::CMSG_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = RecvFlags::empty();
    let got = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        flags,
    )?;
    if got.bytes != 1 {
        return Err(io::Error::other("no sockets were passed"));
    }
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    #[cfg(not(target_os = "linux"))]
    for fd in &fds {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    }
    Ok(fds)
}

/// `wtenv __listen-exec -- CMD ARGS...`, in the child [`handoff`] spawned:
/// places the received descriptors and execs CMD. Returns only on failure
/// (127 not found, 126 not executable, 1 otherwise).
pub fn exec(argv: &[OsString]) -> Outcome {
    match place_and_exec(argv) {
        Ok(outcome) => outcome,
        Err(e) => {
            crate::report::error(&e);
            Outcome::Code(crate::exit::FAILURE)
        }
    }
}

fn place_and_exec(argv: &[OsString]) -> Result<Outcome> {
    let count: usize = crate::settings::listen_fds()
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_SOCKETS).contains(n))
        .ok_or_else(|| Error::invalid(format!("{EXEC_COMMAND} is run by wtenv itself")))?;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::invalid("no command to run"))?;
    let failed = |e: io::Error| Error::io("could not receive the sockets from wtenv", e);
    let mut fds = receive_fds(io::stdin().as_fd())
        .map_err(failed)?
        .into_iter();
    if fds.len() != count + 1 {
        return Err(failed(io::Error::other(format!(
            "expected {} descriptors, got {}",
            count + 1,
            fds.len()
        ))));
    }
    // The pair stays open, close-on-exec and above the sockets' places,
    // for an exec that fails to say why ([`ExecReport`]).
    let report = rustix::io::fcntl_dupfd_cloexec(io::stdin(), FIRST_FD + count as i32)
        .map_err(|e| failed(e.into()))?;
    let stdin = fds.next().expect("counted above");
    rustix::stdio::dup2_stdin(&stdin).map_err(|e| failed(e.into()))?;
    drop(stdin);
    let _placed = place(fds.collect()).map_err(failed)?;
    let pid = std::process::id().to_string();
    let err = std::process::Command::new(program)
        .args(args)
        .env("LISTEN_PID", pid)
        .exec();
    let spawn = crate::supervise::SpawnError {
        program: program.to_string_lossy().into_owned(),
        command: program.to_owned(),
        source: err,
        dir: None,
    };
    // Said by wtenv, which started this process, as for any command that
    // could not be started; only with no one reading is it said here.
    let errno = spawn.source.raw_os_error().map(i32::to_ne_bytes);
    if errno.is_some_and(|errno| rustix::io::write(&report, &errno) == Ok(errno.len())) {
        return Ok(spawn.outcome());
    }
    crate::report::problem(&spawn.message(), Some(&spawn.hint()));
    Ok(spawn.outcome())
}

/// Moves `sockets` to fd 3, 4, ... without close-on-exec; returns them
/// (kept open until the exec). First every socket is copied above the
/// target range, so placing one never closes another; then each copy is
/// duplicated to the lowest free fd from its target, which must be the
/// target itself.
fn place(sockets: Vec<OwnedFd>) -> io::Result<Vec<OwnedFd>> {
    let above = FIRST_FD + sockets.len() as i32;
    let high: Vec<OwnedFd> = sockets
        .iter()
        .map(|s| rustix::io::fcntl_dupfd_cloexec(s, above))
        .collect::<rustix::io::Result<_>>()?;
    drop(sockets);
    let mut placed = Vec::new();
    for (i, fd) in high.iter().enumerate() {
        let target = FIRST_FD + i as i32;
        let copy = rustix::io::fcntl_dupfd_cloexec(fd, target)?;
        use std::os::fd::AsRawFd;
        if copy.as_raw_fd() != target {
            return Err(io::Error::other(format!(
                "descriptor {target} is in use in wtenv"
            )));
        }
        rustix::io::fcntl_setfd(&copy, rustix::io::FdFlags::empty())?;
        placed.push(copy);
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_a_conflict_naming_the_holder() {
        let first = Listener::bind("web", "::".parse().unwrap(), 0).unwrap();
        let port = first.port();
        // Dual-stack: an IPv4 bind of the same port is refused too.
        let err = Listener::bind("api", "127.0.0.1".parse().unwrap(), port).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("could not bind port {port} (127.0.0.1:{port}) for service api: it is in use: pid {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(err.exit_code(), Outcome::Code(crate::exit::FAILURE));
    }

    #[test]
    fn fds_sent_over_a_pair_arrive_and_land_at_fd_3_onwards() {
        let a = Listener::bind("a", "127.0.0.1".parse().unwrap(), 0).unwrap();
        let b = Listener::bind("b", "127.0.0.1".parse().unwrap(), 0).unwrap();
        let (tx, rx) = UnixStream::pair().unwrap();
        send_fds(&tx, &[io::stdin().as_fd(), a.as_fd(), b.as_fd()]).unwrap();
        let got = receive_fds(rx.as_fd()).unwrap();
        assert_eq!(got.len(), 3);
        let port_of = |fd: &OwnedFd| {
            let s = Socket::from(fd.try_clone().unwrap());
            s.local_addr().unwrap().as_socket().unwrap().port()
        };
        assert_eq!((port_of(&got[1]), port_of(&got[2])), (a.port(), b.port()));
        assert_eq!(fd_names(&[&a, &b]), "a:b");
    }
}
