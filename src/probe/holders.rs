//! Who holds a busy port, for the messages that name it: the holder
//! lookup (docs/ARCHITECTURE.md, "Probe"). What counts as busy is
//! [`super::probe`]'s alone.
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
use std::path::PathBuf;

use super::manager;

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
    /// (see [`super::probe`]), not a hidden process.
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
            .args(LSOF_LISTENERS)
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

/// `lsof`'s options that list every TCP listener (macOS's holder lookup),
/// for [`parse_lsof_listeners`].
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(super) const LSOF_LISTENERS: [&str; 4] = ["-nP", "-iTCP", "-sTCP:LISTEN", "-Fpn"];

/// `(pid, port)` of each listening socket in `lsof -nP -iTCP -sTCP:LISTEN
/// -Fpn` output: a `p<pid>` line starts a process, each `n<addr>:<port>`
/// line (`n*:5000`, `n127.0.0.1:5000`, `n[::1]:5000`) is one of its
/// sockets; other lines (`f<fd>`) are skipped.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(super) fn parse_lsof_listeners(text: &str) -> Vec<(u32, u16)> {
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
