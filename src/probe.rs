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
//! Holder lookup is advisory: /proc on Linux, `lsof` elsewhere. An empty
//! answer means "holder unknown", which callers must say as such, once a
//! second probe found the port still busy (its holder may have exited
//! since the first): [`crate::alloc::lookup_busy`]. On Linux the lookup
//! also tells when no socket listens on the port at all
//! ([`Holders::unlistened`]): then no process is hidden, the port is
//! held by a socket bound without listening or by a TIME_WAIT, and the
//! same tables tell whether a connection of it is in TIME_WAIT
//! ([`Holders::time_wait`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
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

/// A process that listens on a port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    pub cwd: Option<PathBuf>,
    /// When the holder is a service manager ([`manager::Manager`]), the
    /// unit it listens for, as [`lookup`] found it ([`manager::name_units`]).
    /// `--json` gives it as `"unit"`, absent for any other holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Holder {
    /// The process `pid` as a holder: its command line and directory, as
    /// far as the system tells.
    pub fn of(pid: u32) -> Holder {
        Holder {
            pid,
            command: crate::process::command(pid).unwrap_or_else(|| "?".into()),
            cwd: crate::process::cwd(pid),
            unit: None,
        }
    }

    /// `pid 123 (python3 -m http.server 5000) in /some/dir`; a service
    /// manager with the unit it listens for ([`manager::described`]).
    pub fn describe(&self) -> String {
        let mut s = format!(
            "pid {} ({})",
            self.pid,
            crate::process::printable(&self.command)
        );
        if let Some(cwd) = &self.cwd {
            let cwd = crate::process::printable_path(cwd);
            s.push_str(&format!(" in {cwd}"));
        }
        s.push_str(&manager::described(self));
        s
    }
}

/// Who holds a busy port, as the holder lookup ([`lookup`]) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// The processes listening on it. None: holder unknown, or nothing
    /// listens there at all ([`Holders::unlistened`]).
    pub processes: Vec<Holder>,
    /// Whether a listening socket of the port was seen: on Linux, in
    /// `/proc/net/tcp` and `tcp6`, which list every listening socket of
    /// the network namespace, whoever's. `Some(false)`: none was
    /// ([`Holders::unlistened`]); `Some(true)`: one was, its process
    /// named or not; `None` where the lookup cannot tell and names no
    /// process (`lsof` shows only what the user may see; a table that
    /// could not be read). `--json` gives it as `"listening"`, beside the
    /// processes ([`listening_json`]).
    pub listening: Option<bool>,
    /// A connection of the port in TIME_WAIT was seen (on Linux, in
    /// `/proc/net/tcp` and `tcp6`; never elsewhere). A socket bound
    /// without listening is not in those tables: a port no socket listens
    /// on without a TIME_WAIT is held by such a socket.
    pub time_wait: bool,
}

/// What a message says of a busy port whose lookup found a listening
/// socket, but not the process behind it (another user's, another PID
/// namespace's).
pub const HOLDER_UNKNOWN: &str = "holder unknown";

/// What a message says of a busy port on which nothing listens
/// ([`Holders::unlistened`]).
pub const NOT_LISTENING: &str = "no listening process (a socket bound without listening, or a TIME_WAIT: it clears within a minute)";

impl Holders {
    /// No listening socket of the port was seen ([`Holders::listening`]):
    /// what keeps the port busy is then a socket bound without
    /// listening, or a TIME_WAIT left by a socket without SO_REUSEADDR
    /// (see [`probe`]), not a hidden process.
    pub fn unlistened(&self) -> bool {
        self.listening == Some(false)
    }

    /// What a message says of a port no process is named for: holder
    /// unknown, or that nothing listens there.
    pub fn unnamed(&self) -> &'static str {
        if self.unlistened() {
            NOT_LISTENING
        } else {
            HOLDER_UNKNOWN
        }
    }
}

/// Puts `"listening"` (`listening`: [`Holders::listening`]) in the JSON
/// object `item` right after its key `after`, the port's processes;
/// `null` where wtenv could not tell, so that every object has the same
/// keys (README, the JSON of `conflicts`, `ports` and `list`).
pub fn listening_json(item: &mut serde_json::Value, after: &str, listening: Option<bool>) {
    if let Some(map) = item.as_object_mut() {
        let at = map
            .keys()
            .position(|k| k == after)
            .map_or(map.len(), |i| i + 1);
        map.shift_insert(at, "listening".into(), listening.into());
    }
}

/// Who holds each port of `ports`, from one look at the system: every
/// port of `ports` is in the answer (with no process when none is found).
pub fn lookup(ports: &BTreeSet<u16>) -> BTreeMap<u16, Holders> {
    if ports.is_empty() {
        return BTreeMap::new();
    }
    let mut found = imp::lookup(ports);
    manager::name_units(&mut found);
    found
}

/// The listening processes of each port in `ports` that the system tells
/// about ([`lookup`]'s processes). A port missing from the answer: holder
/// unknown (another user's process, or no permission to look), or
/// nothing listening.
pub fn holders(ports: &BTreeSet<u16>) -> BTreeMap<u16, Vec<Holder>> {
    lookup(ports)
        .into_iter()
        .filter(|(_, h)| !h.processes.is_empty())
        .map(|(port, h)| (port, h.processes))
        .collect()
}

/// The ports where one of `pids` listens: cheaper than [`all_holders`]
/// when the processes are few (only their descriptors are read).
pub fn listening_ports_of(pids: &BTreeSet<u32>) -> BTreeSet<u16> {
    if pids.is_empty() {
        return BTreeSet::new();
    }
    imp::listening_ports_of(pids)
}

/// Every listening port the system tells about, with its processes
/// (`wtenv up` looks for the port a service really listens on).
pub fn all_holders() -> BTreeMap<u16, Vec<Holder>> {
    imp::all_holders()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::collections::HashMap;

    /// What /proc/net/tcp{,6} say of the ports `wanted` accepts; their
    /// TIME_WAITs only when `waits` (a busy server has thousands).
    struct Tables {
        /// LISTEN sockets: inode → port.
        listen: HashMap<u64, u16>,
        /// Ports with a connection in TIME_WAIT.
        time_wait: BTreeSet<u16>,
        /// Both tables were read (a host without IPv6 has no `tcp6`, and
        /// no IPv6 socket either).
        read: bool,
    }

    fn tables(wanted: impl Fn(u16) -> bool, waits: bool) -> Tables {
        let mut out = Tables {
            listen: HashMap::new(),
            time_wait: BTreeSet::new(),
            read: true,
        };
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = match crate::files::read_proc(table) {
                Ok(text) => text,
                Err(e) => {
                    // No `tcp6` is no IPv6: no socket of it to miss.
                    if !(table.ends_with('6') && e.kind() == std::io::ErrorKind::NotFound) {
                        out.read = false;
                    }
                    continue;
                }
            };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
                // st: 0A = TCP_LISTEN, 06 = TCP_TIME_WAIT.
                let waiting = waits && f.get(3) == Some(&"06");
                if f.len() < 10 || !(f[3] == "0A" || waiting) {
                    continue;
                }
                let Some(port) = f[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    .filter(|&p| wanted(p))
                else {
                    continue;
                };
                if waiting {
                    out.time_wait.insert(port);
                } else if let Ok(inode) = f[9].parse::<u64>() {
                    out.listen.insert(inode, port);
                }
            }
        }
        out
    }

    /// LISTEN sockets of the ports `wanted` accepts: inode → port.
    fn listen_inodes(wanted: impl Fn(u16) -> bool) -> HashMap<u64, u16> {
        tables(wanted, false).listen
    }

    /// A port with no LISTEN socket in tables that were both read is
    /// [`Holders::unlistened`]: told from what the lookup reads anyway,
    /// as is [`Holders::time_wait`].
    pub fn lookup(ports: &BTreeSet<u16>) -> BTreeMap<u16, Holders> {
        let Tables {
            listen,
            time_wait,
            read,
        } = tables(|p| ports.contains(&p), true);
        let listening: BTreeSet<u16> = listen.values().copied().collect();
        let mut found = holders_of(listen);
        ports
            .iter()
            .map(|&port| {
                let processes = found.remove(&port).unwrap_or_default();
                let holders = Holders {
                    listening: (read || !processes.is_empty()).then(|| listening.contains(&port)),
                    processes,
                    time_wait: time_wait.contains(&port),
                };
                (port, holders)
            })
            .collect()
    }

    pub fn all_holders() -> BTreeMap<u16, Vec<Holder>> {
        holders_of(listen_inodes(|_| true))
    }

    pub fn listening_ports_of(pids: &BTreeSet<u32>) -> BTreeSet<u16> {
        let inodes = listen_inodes(|_| true);
        let mut out = BTreeSet::new();
        if inodes.is_empty() {
            return out;
        }
        for pid in pids {
            out.extend(socket_inodes(*pid).filter_map(|i| inodes.get(&i).copied()));
        }
        out
    }

    /// The inodes of the sockets `pid` has open.
    fn socket_inodes(pid: u32) -> impl Iterator<Item = u64> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| {
                let target = std::fs::read_link(fd.path()).ok()?;
                target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
    }

    fn holders_of(inodes: HashMap<u64, u16>) -> BTreeMap<u16, Vec<Holder>> {
        let mut out: BTreeMap<u16, Vec<Holder>> = BTreeMap::new();
        if inodes.is_empty() {
            return out;
        }
        for pid in crate::process::all_pids() {
            let mut seen = BTreeSet::new();
            for inode in socket_inodes(pid) {
                if let Some(&port) = inodes.get(&inode)
                    && seen.insert(port)
                {
                    out.entry(port).or_default().push(Holder::of(pid));
                }
            }
        }
        out
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    //! No /proc: one `lsof` call lists every TCP listener. Not tested here
    //! (Linux-only CI); its parser, [`super::parse_lsof_listeners`], is.
    use super::*;

    pub fn all_holders() -> BTreeMap<u16, Vec<Holder>> {
        let Ok(o) = std::process::Command::new("lsof")
            .args(["-nP", "-iTCP", "-sTCP:LISTEN", "-Fpn"])
            .output()
        else {
            return BTreeMap::new();
        };
        let mut out: BTreeMap<u16, Vec<Holder>> = BTreeMap::new();
        for (pid, port) in parse_lsof_listeners(&String::from_utf8_lossy(&o.stdout)) {
            let list = out.entry(port).or_default();
            if !list.iter().any(|h| h.pid == pid) {
                list.push(Holder::of(pid));
            }
        }
        out
    }

    /// `lsof` shows only the processes the user may see: a port none
    /// of them listens on may still have a listener, so it is never
    /// [`Holders::unlistened`] here, and whether one listens is known
    /// only where a process is named.
    pub fn lookup(ports: &BTreeSet<u16>) -> BTreeMap<u16, Holders> {
        let mut all = all_holders();
        ports
            .iter()
            .map(|&port| {
                let processes = all.remove(&port).unwrap_or_default();
                let holders = Holders {
                    listening: (!processes.is_empty()).then_some(true),
                    processes,
                    time_wait: false,
                };
                (port, holders)
            })
            .collect()
    }

    pub fn listening_ports_of(pids: &BTreeSet<u32>) -> BTreeSet<u16> {
        all_holders()
            .into_iter()
            .filter(|(_, holders)| holders.iter().any(|h| pids.contains(&h.pid)))
            .map(|(port, _)| port)
            .collect()
    }
}

/// `(pid, port)` of each listening socket in `lsof -nP -iTCP -sTCP:LISTEN
/// -Fpn` output: a `p<pid>` line starts a process, each `n<addr>:<port>`
/// line (`n*:5000`, `n127.0.0.1:5000`, `n[::1]:5000`) is one of its
/// sockets; other lines (`f<fd>`) are skipped.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn parse_lsof_listeners(text: &str) -> Vec<(u32, u16)> {
    let mut out = Vec::new();
    let mut pid = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix('p') {
            pid = p.parse().ok();
        } else if let (Some(name), Some(pid)) = (line.strip_prefix('n'), pid)
            && let Some(port) = name.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
        {
            out.push((pid, port));
        }
    }
    out
}

pub mod manager;
#[cfg(test)]
mod tests;
