//! `up`'s services as they run: each output line prefixed with its
//! service's name, and the readiness watch (the port accepts a connection
//! and its listener belongs to the service's process tree, else a warning
//! names where the service really listens).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::Pgid;
use crate::alloc;
use crate::error::{Error, Result};
use crate::output::OpenPipes;
use crate::probe::{self, Holder};
use crate::process;
use crate::report;

pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

/// `web | ` (coloured when asked).
#[derive(Clone)]
pub struct Prefix(String);

impl Prefix {
    /// Service `index`'s prefix, its name padded to `width`.
    pub fn new(name: &str, width: usize, index: usize, colour: bool) -> Prefix {
        Prefix(crate::output::service_prefix(name, width, index, colour))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Copies `reader` line by line to our stdout (or stderr), prefixed;
/// counted in `open` until it reaches EOF.
pub fn pump(reader: impl Read + Send + 'static, prefix: Prefix, to_stderr: bool, open: &OpenPipes) {
    crate::output::pump_lines("wtenv-pump", reader, open, move |line| {
        let mut buf = prefix.0.clone().into_bytes();
        buf.extend_from_slice(line);
        // A closed stdout (EPIPE) must not stop the service.
        let written = if to_stderr {
            std::io::stderr().lock().write_all(&buf)
        } else {
            std::io::stdout().lock().write_all(&buf)
        };
        if let Err(e) = written {
            output_lost(&e);
        }
    });
}

/// Says once that the services' output could not be written (a full disk,
/// `/dev/full`): it is lost, and nothing else would say so. The services
/// run on (stopping a dev server for its log is worse); a reader gone
/// (EPIPE) is no news, as for any output.
fn output_lost(e: &std::io::Error) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    if e.kind() != std::io::ErrorKind::BrokenPipe && !SAID.swap(true, Ordering::Relaxed) {
        crate::report::warn_hinted(
            &format!("could not write the services' output: {e}; it is lost, the services run on"),
            "make room where the output goes, or send it elsewhere",
        );
    }
}

/// Whether `pid` belongs to the service whose group is `pgid` (its group,
/// or a descendant of its leader that made its own group).
fn of_service(pid: u32, pgid: Pgid) -> bool {
    process::pgid(pid) == Some(pgid.as_raw()) || process::descends_from(pid, pgid.as_raw())
}

/// The service's processes: its group, and the descendants of its leader
/// that made groups of their own. One /proc pass per call (it runs at
/// every readiness tick).
fn tree_of(pgid: Pgid) -> BTreeSet<u32> {
    let mut children: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    let mut tree = BTreeSet::new();
    for pid in process::all_pids() {
        if process::pgid(pid) == Some(pgid.as_raw()) {
            tree.insert(pid);
        }
        if let Some(parent) = process::parent(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut todo: Vec<u32> = tree.iter().copied().collect();
    todo.push(pgid.as_raw());
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if tree.insert(child) {
                todo.push(child);
            }
        }
    }
    tree
}

/// Ports (other than `own`) where the service's processes listen.
fn elsewhere(pgid: Pgid, own: u16) -> Vec<u16> {
    let tree = tree_of(pgid);
    let mut ports = probe::listening_ports_of(&tree);
    ports.remove(&own);
    ports.into_iter().collect()
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How often readiness is checked.
const TICK: Duration = Duration::from_millis(100);

/// What can go wrong on the way to readiness, reported on stderr from its
/// own thread (the ready line itself is `up`'s, from the health tracker).
///
/// Watched until its port accepts a connection and every listener on it
/// belongs to the service. A port answered by someone else is reported at once.
/// At every tick until ready, the service's process tree is also looked
/// for listeners on other ports: a dev server that ignores `$PORT` or
/// moved to the next port is named as soon as it listens there (once),
/// not at the timeout; the watch then goes on, and a service that comes
/// to its own port later is still announced ready.
pub fn watch_ready(name: String, port: u16, pgid: Pgid, timeout: Duration) {
    let _ = std::thread::Builder::new()
        .name("wtenv-ready".into())
        .spawn(move || {
            let start = Instant::now();
            let mut taken = false;
            let mut moved = false;
            loop {
                if probe::accepts(port) {
                    let holders = probe::holders(&[port].into());
                    // wtenv's own copy of a handed-off socket is no stranger.
                    let found: Vec<Holder> = holders
                        .get(&port)
                        .into_iter()
                        .flatten()
                        .filter(|h| h.pid != std::process::id())
                        .cloned()
                        .collect();
                    if !found.is_empty() && found.iter().all(|h| of_service(h.pid, pgid)) {
                        // Ready is said once, by `up`'s health tracker.
                        return;
                    }
                    if !taken {
                        taken = true;
                        report::warn(&format!(
                            "port {port} of service {name} accepts connections, but not from the service: {}",
                            alloc::describe_holders(&found)
                        ));
                    }
                }
                if !moved {
                    let other = elsewhere(pgid, port);
                    if !other.is_empty() {
                        moved = true;
                        report::warn_hinted(
                            &format!(
                                "service {name} listens on port {} instead of its port {port}",
                                list(&other)
                            ),
                            "make it listen on the port in its variable (e.g. $PORT)",
                        );
                    }
                }
                if process::group_members(pgid.as_raw()).is_empty() {
                    return; // the service ended; the supervisor reports it
                }
                if start.elapsed() >= timeout {
                    if !moved {
                        let after = humantime::format_duration(timeout);
                        report::warn(&format!(
                            "service {name} is not listening on its port {port} after {after}"
                        ));
                    }
                    return;
                }
                std::thread::sleep(TICK);
            }
        });
}

/// The variables `up` adds for its services (the way honcho does), unless
/// set already (`set`: the name is in wtenv's environment or the
/// worktree's variables): `PYTHONUNBUFFERED=1`, so a Python service's
/// lines come through the pipe as they are printed; and when `up`'s own
/// stdout is coloured, `FORCE_COLOR=1` and `CLICOLOR_FORCE=1`, so services
/// that see a pipe keep their colours.
pub fn child_env(colour: bool, set: impl Fn(&str) -> bool) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("PYTHONUNBUFFERED", "1")];
    if colour {
        out.extend([("FORCE_COLOR", "1"), ("CLICOLOR_FORCE", "1")]);
    }
    out.retain(|(name, _)| !set(name));
    out
}

/// Refuses to start services whose ports something already listens on,
/// even a process of this worktree (a server left running by an earlier
/// `run` or `up`): the service would only fail with "address in use".
pub fn refuse_busy(ports: &[(&str, u16)]) -> Result<()> {
    let busy: BTreeSet<u16> = ports
        .iter()
        .map(|&(_, p)| p)
        .filter(|&p| probe::probe(p).is_ok_and(|s| s == probe::PortState::Occupied))
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    let holders = probe::holders(&busy);
    let mut lines = Vec::new();
    let mut pids = Vec::new();
    for &(service, port) in ports.iter().filter(|(_, p)| busy.contains(p)) {
        let found = holders.get(&port).map(Vec::as_slice).unwrap_or_default();
        pids.extend(found.iter().map(|h| h.pid.to_string()));
        lines.push(format!(
            "  port {port} ({service}): {}",
            alloc::describe_holders(found)
        ));
    }
    let hint = if pids.is_empty() {
        "stop what listens there, then run wtenv up again".to_owned()
    } else {
        format!(
            "stop it (e.g. kill {}), then run wtenv up again",
            pids.join(" ")
        )
    };
    Err(Error::refused(format!(
        "ports of the services to start are already in use:\n{}",
        lines.join("\n")
    ))
    .with_hint(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_is_unbuffered_and_colour_forced_only_when_ours_is_on() {
        let none = |_: &str| false;
        assert_eq!(child_env(false, none), vec![("PYTHONUNBUFFERED", "1")]);
        assert_eq!(
            child_env(true, none),
            vec![
                ("PYTHONUNBUFFERED", "1"),
                ("FORCE_COLOR", "1"),
                ("CLICOLOR_FORCE", "1")
            ]
        );
        // What the user set wins.
        let user = |n: &str| n == "FORCE_COLOR" || n == "PYTHONUNBUFFERED";
        assert_eq!(child_env(true, user), vec![("CLICOLOR_FORCE", "1")]);
    }
}
