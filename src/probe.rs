//! "Free on the system": the port probe, and who holds a busy port.
//!
//! A port is occupied when any of these says so (docs/ARCHITECTURE.md, "Probe"):
//! - bind + listen on `[::]` (IPV6_V6ONLY off), `127.0.0.1`, `0.0.0.0` and
//!   `::1` fails with EADDRINUSE or EACCES. SO_REUSEADDR is on, so a
//!   TIME_WAIT left by a socket that had it on too (the connections of a
//!   listener that set it, as servers do) is not "busy"; one left by a
//!   socket without it is, as it is to every bind of the port (a server's
//!   with SO_REUSEADDR included) until it clears, within a minute.
//!   SO_REUSEPORT is never set, so a listener that set it cannot share
//!   with us and still shows as busy.
//!   On Linux, a bind + listen on `[::]` that succeeds answers for the other
//!   three, which are then not made: the kernel's bind-conflict check
//!   matches an IPv6 any-address socket without IPV6_V6ONLY against every
//!   IPv4 and IPv6 address, so whatever conflicts with a bind on
//!   `127.0.0.1`, `0.0.0.0` or `::1` conflicts with it too (a test holds
//!   this against sockets of every kind). That saves three sockets a port,
//!   a tenth of `env`. They are made when IPv6 is absent, and on macOS,
//!   whose rules differ.
//! - a connect to `127.0.0.1` or `::1` succeeds: the backstop for BSD
//!   semantics, where a SO_REUSEADDR bind can succeed beside a wildcard
//!   listener. A connect that reached its own socket (possible for a port
//!   in the ephemeral range) found no server and does not count.
//!
//! EAFNOSUPPORT / EADDRNOTAVAIL (and unreachable, for connect) mean the
//! address family is absent (a host without IPv6), not busy. Any other error
//! is returned: "could not tell" is never reported as "free".
//!
//! Who holds a busy port (the holder lookup: `/proc`, `lsof`) is in
//! `probe/holders.rs`, re-exported here.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// The answer of [`probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Free,
    Occupied,
}

const BIND_ADDRS: [IpAddr; 4] = [
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

const CONNECT_ADDRS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// A loopback connect is answered at once (SYN-ACK or RST); only a listener
/// whose backlog is full leaves it hanging, and that listener is busy.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// Whether `port` is free on every address family this host has.
pub fn probe(port: u16) -> io::Result<PortState> {
    for addr in BIND_ADDRS {
        match bind_state(SocketAddr::new(addr, port))? {
            Bind::Busy => {
                tracing::debug!(port, %addr, "bind says occupied");
                return Ok(PortState::Occupied);
            }
            Bind::Free if answers_for_all_binds(addr) => break,
            Bind::Free | Bind::FamilyAbsent => {}
        }
    }
    for addr in CONNECT_ADDRS {
        if connect_state(SocketAddr::new(addr, port))? == PortState::Occupied {
            tracing::debug!(port, %addr, "connect says occupied");
            return Ok(PortState::Occupied);
        }
    }
    Ok(PortState::Free)
}

fn family_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::EAFNOSUPPORT | libc_errno::EADDRNOTAVAIL)
    )
}

fn busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrInUse || matches!(e.raw_os_error(), Some(libc_errno::EACCES))
}

/// Whether a bind + listen on `addr` that succeeded says the same of the
/// other addresses of [`BIND_ADDRS`]: on Linux, the dual-stack `[::]` (see
/// the module's docs).
fn answers_for_all_binds(addr: IpAddr) -> bool {
    cfg!(target_os = "linux") && addr == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

/// What one bind + listen said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bind {
    Free,
    Busy,
    /// No such address family (or address) on this host: not busy.
    FamilyAbsent,
}

fn bind_state(addr: SocketAddr) -> io::Result<Bind> {
    let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) if family_absent(&e) => return Ok(Bind::FamilyAbsent),
        Err(e) => return Err(e),
    };
    if addr.is_ipv6() {
        // Dual-stack on `[::]`: an IPv4-only listener on the port makes this
        // bind fail too. Explicit, because the default is a sysctl.
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    let result = socket.bind(&addr.into()).and_then(|()| socket.listen(1));
    match result {
        Ok(()) => Ok(Bind::Free),
        Err(e) if busy(&e) => Ok(Bind::Busy),
        Err(e) if family_absent(&e) => Ok(Bind::FamilyAbsent),
        Err(e) => Err(io::Error::new(e.kind(), format!("probing {addr}: {e}"))),
    }
}

fn connect_state(addr: SocketAddr) -> io::Result<PortState> {
    match connect(addr) {
        Ok(stream) => Ok(connected(&stream)),
        Err(e) => connect_failed(&e)
            .ok_or_else(|| io::Error::new(e.kind(), format!("probing {addr}: {e}"))),
    }
}

/// A connect to `addr` that gives up after [`CONNECT_TIMEOUT`] with
/// `TimedOut`. On Linux, a blocking connect on a socket whose send timeout
/// (SO_SNDTIMEO) is [`CONNECT_TIMEOUT`]: four system calls (socket,
/// setsockopt, connect, close) where std's `connect_timeout` makes seven
/// (the socket made non-blocking and blocking again, a poll, a read of
/// SO_ERROR). A loopback connect is answered within the call; only a
/// listener with a full queue leaves it waiting, until the send timeout
/// expires ([`expired`]). A connect with a timeout is never restarted after
/// a signal handler ran (signal(7)), whatever SA_RESTART says: one
/// interrupted (`run`'s handlers) is made again the portable way. macOS
/// does not honour SO_SNDTIMEO on a connect: there, std's `connect_timeout`.
#[cfg(target_os = "linux")]
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(socket.into()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            drop(socket);
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        }
        Err(e) => Err(expired(e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
}

/// A blocking connect whose send timeout expired fails with EINPROGRESS on
/// Linux (socket(7)): that is a timeout, as std's `connect_timeout` says
/// it, and [`connect_failed`] takes it for a listener with a full queue.
/// Any other error is left as it is (EAGAIN included: for TCP it is no
/// timeout, but a lack of local resources).
#[cfg(target_os = "linux")]
fn expired(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc_errno::EINPROGRESS) {
        io::Error::new(io::ErrorKind::TimedOut, "connect timed out")
    } else {
        e
    }
}

/// What a connect that failed with `e` says of the port, `None` when it
/// says nothing (an error of the probe). Refused: nobody listens. Timed
/// out: a listener whose queue is full drops the SYN. Reset or aborted: a
/// listener answered the SYN, then dropped the connection (its queue
/// overflowed, or it was closing): something is there. A reset made
/// `env` fail with "could not probe ports" beside a listener that never
/// accepts, once the connects of earlier commands had filled its queue.
fn connect_failed(e: &io::Error) -> Option<PortState> {
    use io::ErrorKind::*;
    match e.kind() {
        TimedOut | ConnectionReset | ConnectionAborted => Some(PortState::Occupied),
        ConnectionRefused | NetworkUnreachable | HostUnreachable => Some(PortState::Free),
        _ if family_absent(e) => Some(PortState::Free),
        _ => None,
    }
}

/// What a connect that succeeded says. When the port is in the ephemeral
/// range, the kernel may pick that very port as the connect's source, and a
/// TCP connect to its own address succeeds (simultaneous open) with nobody
/// listening: that is no server, so the port is free as far as this check
/// goes (the binds decide the rest).
fn connected(stream: &TcpStream) -> PortState {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) if local == peer => PortState::Free,
        _ => PortState::Occupied,
    }
}

/// Errno values, named. socket2 re-exports no constants and these are the
/// same numbers on Linux; macOS differs, hence the cfg.
mod libc_errno {
    #[cfg(target_os = "linux")]
    pub const EAFNOSUPPORT: i32 = 97;
    #[cfg(target_os = "linux")]
    pub const EADDRNOTAVAIL: i32 = 99;
    #[cfg(not(target_os = "linux"))]
    pub const EAFNOSUPPORT: i32 = 47;
    #[cfg(not(target_os = "linux"))]
    pub const EADDRNOTAVAIL: i32 = 49;
    pub const EACCES: i32 = 13;
    /// A blocking connect whose send timeout expired ([`super::expired`]).
    #[cfg(target_os = "linux")]
    pub const EINPROGRESS: i32 = 115;
}

/// Whether a server accepts a connection at one of `addrs` (a service's,
/// from [`crate::health::check::addresses`]): what "ready" means for a
/// service.
pub fn accepts(addrs: &[SocketAddr]) -> bool {
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok())
}

/// The OS ephemeral (outgoing connection) port range, if known. Ports in it
/// may be taken at any moment by a client socket.
pub fn ephemeral_range() -> Option<crate::config::PortRange> {
    #[cfg(target_os = "linux")]
    {
        // Read once per process: every range of the config is checked
        // against it, and a wtenv process lives for one command.
        static RANGE: std::sync::OnceLock<Option<crate::config::PortRange>> =
            std::sync::OnceLock::new();
        *RANGE.get_or_init(|| {
            let text = crate::files::read_proc("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
            let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            let (start, end) = (it.next()??, it.next()??);
            Some(crate::config::PortRange { start, end })
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        // IANA's range, the macOS default (sysctl net.inet.ip.portrange).
        Some(crate::config::PortRange {
            start: 49152,
            end: 65535,
        })
    }
}

/// The warning, and its hint, when ranges of `purposes` overlap this
/// machine's ephemeral range (allocation rule 6): see [`overlap_warning`].
pub fn ephemeral_overlap(
    purposes: &BTreeMap<String, crate::config::Ranges>,
) -> Option<(String, String)> {
    overlap_warning(purposes, ephemeral_range()?)
}

/// One warning for every range of `purposes` that overlaps `eph`, naming
/// the first three: it is given on every `cd` under the shell hook, and a
/// config of thousands of ranges must not print thousands of lines.
fn overlap_warning(
    purposes: &BTreeMap<String, crate::config::Ranges>,
    eph: crate::config::PortRange,
) -> Option<(String, String)> {
    const NAMED: usize = 3;
    let overlapping: Vec<_> = purposes
        .iter()
        .flat_map(|(purpose, ranges)| ranges.iter().map(move |r| (purpose, r)))
        .filter(|(_, r)| r.overlaps(&eph))
        .collect();
    match overlapping[..] {
        [] => return None,
        [(purpose, range)] => {
            return Some((
                format!(
                    "purposes.{purpose}: port range {range} overlaps the OS ephemeral range {eph}: outgoing connections may take its ports at any time"
                ),
                format!("move it out of {eph}"),
            ));
        }
        _ => {}
    }
    let count = overlapping.len();
    let mut named = overlapping
        .iter()
        .take(NAMED)
        .map(|(p, r)| format!("purposes.{p} {r}"))
        .collect::<Vec<_>>()
        .join(", ");
    if count > NAMED {
        named.push_str(&format!(" and {} more", count - NAMED));
    }
    Some((
        format!(
            "{count} port ranges overlap the OS ephemeral range {eph} ({named}): outgoing connections may take their ports at any time"
        ),
        format!("move them out of {eph}"),
    ))
}

mod holders;
pub mod manager;
pub use holders::{
    HOLDER_UNKNOWN, Holder, Holders, NOT_LISTENING, all_holders, holders, listening_json,
    listening_ports_of, lookup,
};
#[cfg(test)]
mod tests;
