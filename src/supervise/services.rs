//! `up`'s services as they run: each output line prefixed with its
//! service's name, and the readiness watch (the port accepts a connection
//! and its listener belongs to the service's process tree, else a warning
//! names where the service really listens).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::Pgid;
use crate::alloc;
use crate::probe::{self, Holder};
use crate::process;

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

/// Copies `reader` line by line to our stdout (or stderr), prefixed.
pub fn pump(
    reader: impl Read + Send + 'static,
    prefix: Prefix,
    to_stderr: bool,
    done: std::sync::mpsc::Sender<()>,
) {
    crate::output::pump_lines("wtenv-pump", reader, done, move |line| {
        let mut buf = prefix.0.clone().into_bytes();
        buf.extend_from_slice(line);
        // A closed stdout (EPIPE) must not stop the service.
        let _ = if to_stderr {
            std::io::stderr().lock().write_all(&buf)
        } else {
            std::io::stdout().lock().write_all(&buf)
        };
    });
}

/// Whether `pid` belongs to the service whose group is `pgid` (its group,
/// or a descendant of its leader that made its own group).
fn of_service(pid: u32, pgid: Pgid) -> bool {
    process::pgid(pid) == Some(pgid.as_raw()) || process::descends_from(pid, pgid.as_raw())
}

/// Ports (other than `own`) where the service's processes listen.
fn elsewhere(pgid: Pgid, own: u16) -> Vec<u16> {
    probe::all_holders()
        .into_iter()
        .filter(|(port, holders)| *port != own && holders.iter().any(|h| of_service(h.pid, pgid)))
        .map(|(port, _)| port)
        .collect()
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Readiness of one service, reported on stderr from its own thread.
///
/// Ready: its port accepts a connection and every listener on it belongs
/// to the service. A port answered by someone else is reported at once,
/// and the watch goes on until the service is found listening elsewhere
/// (a dev server that moved to the next port) or the timeout. Other ports
/// of the service alone are not suspicious (HMR, debugger): they are named
/// only once its own port failed.
pub fn watch_ready(name: String, port: u16, pgid: Pgid, timeout: Duration, quiet: bool) {
    let _ = std::thread::Builder::new()
        .name("wtenv-ready".into())
        .spawn(move || {
            let start = Instant::now();
            let mut taken = false;
            loop {
                if probe::accepts(port) {
                    let holders = probe::holders(&[port].into());
                    let found: Vec<Holder> = holders.get(&port).cloned().unwrap_or_default();
                    if !found.is_empty() && found.iter().all(|h| of_service(h.pid, pgid)) {
                        if !quiet {
                            eprintln!("wtenv: service {name} ready on port {port}");
                        }
                        return;
                    }
                    if !taken {
                        taken = true;
                        eprintln!(
                            "warning: port {port} of service {name} accepts connections, but not from the service: {}",
                            alloc::describe_holders(&found)
                        );
                    }
                }
                if taken {
                    let other = elsewhere(pgid, port);
                    if !other.is_empty() {
                        eprintln!(
                            "warning: service {name} listens on port {} instead of its port {port}",
                            list(&other)
                        );
                        return;
                    }
                }
                if crate::process::group_members(pgid.as_raw()).is_empty() {
                    return; // the service ended; the supervisor reports it
                }
                if start.elapsed() >= timeout {
                    let after = humantime::format_duration(timeout);
                    let other = elsewhere(pgid, port);
                    if other.is_empty() {
                        eprintln!(
                            "warning: service {name} is not listening on its port {port} after {after}"
                        );
                    } else {
                        eprintln!(
                            "warning: service {name} is not listening on its port {port} after {after}: it listens on port {} instead\nhint: make it listen on the port in its variable (e.g. $PORT)",
                            list(&other)
                        );
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
}
