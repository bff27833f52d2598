//! `wtenv up [SERVICE...]`: the services' `run` commands of `wtenv.toml`,
//! each supervised like `wtenv run` in its own process group.
//!
//! Every service sees every service's port variables (the worktree's full
//! set). Each output line is prefixed with its service's name (coloured on
//! a terminal). A service is ready when its port accepts a connection; the
//! listener must belong to that service's process tree, else a warning
//! names where the service really listens. One service ending stops the
//! others; Ctrl-C stops all; the exit status is the one of the service that
//! ended first, and the ports' holds are released on every path.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::alloc::{self, HoldMode};
use crate::commands::env::ensure_verified;
use crate::commands::run::{ReleaseGuard, hold, record_pgid};
use crate::config::Service;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::probe::{self, Holder};
use crate::process;
use crate::supervise::{self, Pgid, Supervisor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between SIGTERM (or the forwarded signal) and SIGKILL.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, default_value = "10s")]
    pub grace: Duration,
    /// The services to start (default: every service with a `run` command).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

/// ANSI colours given to services in turn.
const COLOURS: [u8; 6] = [36, 33, 35, 32, 34, 31];

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let mut supervisor = Supervisor::new(args.grace)
        .map_err(|e| Error::io("could not set up signal handling", e))?;
    let scope = ctx.scope()?;
    let selected = select(&scope.config.services, &args.services)?;
    let mut line = String::from("wtenv up");
    for s in &args.services {
        line.push(' ');
        line.push_str(s);
    }
    let _release = ReleaseGuard::new(&ctx.registry);
    let vars = ensure_verified(ctx, &scope, &HoldMode::HoldAll(hold(&line)), false)?;
    let ports: BTreeMap<String, u16> = ctx
        .registry
        .read()?
        .allocations
        .iter()
        .filter(|a| a.belongs_to(&scope.worktree.common_dir, &scope.worktree.root))
        .map(|a| (a.service.clone(), a.port))
        .collect();
    if let Some(sig) = supervisor.pending_signal() {
        return Err(Error::Interrupted(sig));
    }
    let width = selected.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let (pumped, pumps_done) = std::sync::mpsc::channel::<()>();
    let mut pumps = 0;
    let mut started: BTreeMap<String, Pgid> = BTreeMap::new();
    let mut names = Vec::new();
    for (i, service) in selected.iter().enumerate() {
        let command = service.run.as_deref().unwrap_or_default();
        let prefix = Prefix::new(
            &service.name,
            width,
            ctx.color.then_some(COLOURS[i % COLOURS.len()]),
        );
        let (out_r, out_w) =
            std::io::pipe().map_err(|e| Error::io("could not create a pipe", e))?;
        let (err_r, err_w) =
            std::io::pipe().map_err(|e| Error::io("could not create a pipe", e))?;
        let mut expr = duct::cmd("sh", ["-c", command])
            .dir(&scope.worktree.root)
            .stdin_null()
            .stdout_file(out_w)
            .stderr_file(err_w);
        for (name, value) in &vars {
            expr = expr.env(name, value);
        }
        let spawned = supervisor.spawn(&expr, &format!("service {}", service.name), false);
        // Our copies of the write ends go with the expression, so the pumps
        // see EOF once the service's processes close theirs.
        drop(expr);
        let pgid = match spawned {
            Ok(pgid) => pgid,
            Err(e) => {
                eprintln!("error: {}", e.message());
                supervisor.stop();
                let _ = supervisor.wait(true, || {});
                return Ok(e.outcome());
            }
        };
        pump(out_r, prefix.clone(), false, pumped.clone());
        pump(err_r, prefix, true, pumped.clone());
        pumps += 2;
        started.insert(service.name.clone(), pgid);
        names.push(service.name.clone());
        match ports.get(&service.name) {
            Some(&port) => watch_ready(
                service.name.clone(),
                port,
                pgid,
                service.ready_timeout,
                ctx.quiet,
            ),
            None => tracing::warn!(service = %service.name, "no port allocated"),
        }
    }
    let report = supervisor.wait(true, || {
        record_pgid(&ctx.registry, |a| started.get(&a.service).copied())
    });
    // Every group is gone, so the pipes are at EOF: let the pumps print
    // the last lines (bounded: a daemon that left the group may hold one).
    let deadline = Instant::now() + Duration::from_millis(500);
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(Instant::now());
        if pumps_done.recv_timeout(left).is_err() {
            break;
        }
    }
    if let Some(i) = report.first
        && let Some(status) = report.exits[i]
        && !ctx.quiet
    {
        let others = if names.len() > 1 {
            "; stopped the others"
        } else {
            ""
        };
        eprintln!(
            "wtenv: service {} ended ({}){others}",
            names[i],
            describe(status)
        );
    }
    Ok(supervise::up_outcome(&report))
}

/// The services to start: those named, else every one with a `run`.
fn select<'a>(services: &'a [Service], names: &[String]) -> Result<Vec<&'a Service>> {
    if names.is_empty() {
        let all: Vec<&Service> = services.iter().filter(|s| s.run.is_some()).collect();
        if all.is_empty() {
            return Err(Error::hinted(
                "no service has a run command",
                "add run = \"...\" under [services.NAME] in wtenv.toml",
            ));
        }
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            let s = services.iter().find(|s| &s.name == n).ok_or_else(|| {
                Error::hinted(
                    format!("unknown service {n:?}"),
                    format!(
                        "configured services: {}",
                        services
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            if s.run.is_none() {
                return Err(Error::hinted(
                    format!("service {n} has no run command"),
                    format!("add run = \"...\" under [services.{n}] in wtenv.toml"),
                ));
            }
            Ok(s)
        })
        .collect()
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

/// `web | ` (coloured when asked).
#[derive(Clone)]
struct Prefix(String);

impl Prefix {
    fn new(name: &str, width: usize, colour: Option<u8>) -> Prefix {
        Prefix(match colour {
            Some(c) => format!("\x1b[{c}m{name:<width$}\x1b[0m | "),
            None => format!("{name:<width$} | "),
        })
    }
}

/// Copies `reader` line by line to our stdout (or stderr), prefixed.
/// Bytes, not strings: a service's output need not be UTF-8.
fn pump(
    reader: impl Read + Send + 'static,
    prefix: Prefix,
    to_stderr: bool,
    done: std::sync::mpsc::Sender<()>,
) {
    let _ = std::thread::Builder::new()
        .name("wtenv-pump".into())
        .spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                let mut buf = prefix.0.clone().into_bytes();
                buf.extend_from_slice(&line);
                // A closed stdout (EPIPE) must not stop the service.
                let _ = if to_stderr {
                    std::io::stderr().lock().write_all(&buf)
                } else {
                    std::io::stdout().lock().write_all(&buf)
                };
            }
            let _ = done.send(());
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

fn accepts(port: u16) -> bool {
    let addrs: [SocketAddr; 2] = [
        ([127, 0, 0, 1], port).into(),
        ("::1".parse::<std::net::Ipv6Addr>().unwrap(), port).into(),
    ];
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok())
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
fn watch_ready(name: String, port: u16, pgid: Pgid, timeout: Duration, quiet: bool) {
    let _ = std::thread::Builder::new()
        .name("wtenv-ready".into())
        .spawn(move || {
            let start = Instant::now();
            let mut taken = false;
            loop {
                if accepts(port) {
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
