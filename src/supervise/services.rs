//! `up`'s services as they run: each output line prefixed with its
//! service's name, and the readiness watch (the port accepts a connection
//! and its listener belongs to the service's process tree, else a warning
//! names where the service really listens).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Pgid;
use crate::alloc;
use crate::background::Naming;
use crate::config::Service;
use crate::error::{Error, Result};
use crate::output::OpenPipes;
use crate::probe::{self, Holder};
use crate::process;
use crate::report;

/// How a service or command ended, as `up` and `up --detach` say it:
/// `exit code 3`, `killed by SIGTERM`. An exit code of 128 + N for a
/// signal N is how a shell reports a command that signal killed (the
/// `sh -c` of a `run` line, a `wtenv run` that could not die of it), and
/// says so, the code kept: `killed by SIGTERM, exit code 143`.
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let name = |n: i32| {
        nix::sys::signal::Signal::try_from(n)
            .ok()
            .map(|s| s.as_str())
    };
    match (status.code(), status.signal()) {
        (Some(c), _) => match c.checked_sub(128).filter(|&n| n > 0).and_then(name) {
            Some(sig) => format!("killed by {sig}, exit code {c}"),
            None => format!("exit code {c}"),
        },
        (None, Some(s)) => match name(s) {
            Some(sig) => format!("killed by {sig}"),
            None => format!("killed by signal {s}"),
        },
        _ => "unknown status".into(),
    }
}

/// `service web ended (exit code 3)`: how `up` says a service ended, and
/// how the `wtenv run` of a background service notes in its log how its
/// command ended (`named` is `service web` there too).
pub fn ended(named: &str, status: std::process::ExitStatus) -> String {
    format!("{named} ended ({})", describe(status))
}

/// What [`ended`] said of `named` in `line`: `exit code 3` of
/// `service web ended (exit code 3)`.
pub fn ended_how<'a>(line: &'a str, named: &str) -> Option<&'a str> {
    line.strip_prefix(named)?
        .strip_prefix(" ended (")?
        .strip_suffix(')')
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

/// The supervising wtenv, as [`stranger`] knows it.
struct Supervisor {
    pid: u32,
    /// Its executable (Linux): a fork of it runs it until it execs, and
    /// so does the `__listen-exec` it execs.
    exe: Option<std::path::PathBuf>,
}

impl Supervisor {
    fn current() -> Supervisor {
        let pid = std::process::id();
        Supervisor { pid, exe: exe(pid) }
    }
}

/// The executable `pid` runs, where /proc tells (Linux, a process of ours).
fn exe(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Whether `pid`, found holding the port of the service whose group is
/// `pgid`, is a stranger to it, the one thing the ownership check speaks
/// of. Not strangers: the service's own processes ([`of_service`]); a
/// process gone since the holders were read (a shell's subshell); and a
/// child of wtenv that runs wtenv's own executable: another service being
/// started, between its fork and its exec, holds a copy of each of
/// wtenv's descriptors, every service's socket included, until the exec
/// closes them (its command line may read empty in the exec itself).
/// Once exec'd, such a child (`__listen-exec`) holds only its own
/// service's sockets.
fn stranger(pid: u32, pgid: Pgid, wtenv: &Supervisor) -> bool {
    if pid == wtenv.pid || of_service(pid, pgid) {
        return false;
    }
    let Some(parent) = process::parent(pid) else {
        return false; // gone
    };
    let wtenv_s = parent == wtenv.pid && wtenv.exe.is_some() && exe(pid) == wtenv.exe;
    // Gone while it was looked at: its pid may say nothing more.
    !wtenv_s && process::ProcessId::of(pid).is_some()
}

/// The service's processes: its group, and the descendants of its leader
/// that made groups of their own. One look at the processes per call
/// ([`process::table`]: it runs at every readiness tick).
fn tree_of(pgid: u32) -> BTreeSet<u32> {
    let mut children: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    let mut tree = BTreeSet::new();
    for row in process::table() {
        if row.pgid == pgid {
            tree.insert(row.pid);
        }
        children.entry(row.parent).or_default().push(row.pid);
    }
    let mut todo: Vec<u32> = tree.iter().copied().collect();
    todo.push(pgid);
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if tree.insert(child) {
                todo.push(child);
            }
        }
    }
    tree
}

/// Ports (other than `own`) where the processes of the service whose
/// group is `pgid` listen: `up`'s readiness watch, and `up --detach`'s
/// reason for a unit that does not listen on its port.
pub fn elsewhere(pgid: u32, own: u16) -> Vec<u16> {
    let tree = tree_of(pgid);
    let mut ports = probe::listening_ports_of(&tree);
    ports.remove(&own);
    ports.into_iter().collect()
}

/// ` (it listens on port 5001)`, what a report of a service not listening
/// on its own port adds when it listens on others (`moved`); empty when
/// it does not.
pub fn listening_instead(moved: &[u16]) -> String {
    if moved.is_empty() {
        String::new()
    } else {
        format!(" (it listens on port {})", list(moved))
    }
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
/// moved to the next port is named as soon as it listens there (once);
/// the watch then goes on, and a service that comes to its own port later
/// is still announced ready. One not ready at `timeout` is reported then,
/// silent or listening elsewhere (that port named again).
pub fn watch_ready(service: &Service, port: u16, pgid: Pgid) {
    let (name, timeout) = (service.name.clone(), service.ready_timeout);
    let at = crate::health::check::addresses(service.bound(), port);
    let service_socket = service.socket;
    // The hint names the service's own variable (`$PORT` may be unset).
    let variable = service.env.first().cloned().unwrap_or_default();
    let _ = std::thread::Builder::new()
        .name("wtenv-ready".into())
        .spawn(move || {
            let wtenv = Supervisor::current();
            let start = Instant::now();
            let mut taken = false;
            // Where it listens instead, once seen: said at once, and again
            // at the timeout, which it is not ready at either.
            let mut moved: Vec<u16> = Vec::new();
            loop {
                // Ended first: what it leaves listening is no news of it
                // (a socket service's port answers from wtenv's own copy).
                if process::group_members(pgid.as_raw()).is_empty() {
                    return; // the service ended; the supervisor reports it
                }
                // A socket service's port accepts by wtenv's own socket:
                // a connection would test that, and be one the server
                // then accepts, empty. Who holds it is what tells.
                if service_socket || probe::accepts(&at) {
                    // Looked up as `up`'s refusal and `up -d`'s readiness
                    // look: a port free again by now (its listener just
                    // closed) has no holder to name; the next tick looks.
                    let mut busy = alloc::busy_holders([port], &mut alloc::RealSystem::default());
                    if let Some(mut holders) = busy.remove(&port) {
                        let unnamed = holders.processes.is_empty();
                        // wtenv's own copy of a handed-off socket is no stranger.
                        holders.processes.retain(|h| h.pid != wtenv.pid);
                        let found = std::mem::take(&mut holders.processes);
                        let (strangers, ours): (Vec<Holder>, Vec<Holder>) = found
                            .into_iter()
                            .partition(|h| stranger(h.pid, pgid, &wtenv));
                        if strangers.is_empty() && ours.iter().any(|h| of_service(h.pid, pgid)) {
                            // Ready is said once, by `up`'s health tracker.
                            return;
                        }
                        // No holder named at all is someone wtenv cannot
                        // see (another user's), or no listener; holders
                        // that are no strangers but not the service yet
                        // (a fork of wtenv, or wtenv's kept socket alone:
                        // the service ended since it was looked at, or
                        // closed its copy) are waited for.
                        if !taken && (!strangers.is_empty() || unnamed) {
                            taken = true;
                            holders.processes = strangers;
                            report::warn(&format!(
                                "port {port} of service {name} accepts connections, but not from the service: {}",
                                alloc::describe_found(&holders)
                            ));
                        }
                    }
                }
                if moved.is_empty() {
                    moved = elsewhere(pgid.as_raw(), port);
                    if !moved.is_empty() {
                        report::warn_hinted(
                            &format!(
                                "service {name} listens on port {} instead of its port {port}",
                                list(&moved)
                            ),
                            &format!("make it listen on the port in its variable ${variable}"),
                        );
                    }
                }
                if start.elapsed() >= timeout {
                    // Not ready, whether silent or listening elsewhere: its
                    // own port does not answer for it.
                    let after = humantime::format_duration(timeout);
                    let instead = listening_instead(&moved);
                    report::warn(&format!(
                        "service {name} is not listening on its port {port} after {after}{instead}"
                    ));
                    return;
                }
                std::thread::sleep(TICK);
            }
        });
}

/// How often a service's processes are looked at for a stop (see
/// [`watch_stops`]).
const STOP_TICK: Duration = Duration::from_millis(500);

/// Says once that the service `name` (its group `pgid`) is stopped, when
/// its leader or a process below it is in state `T` while wtenv did not
/// stop it (`ours` unset): it read from the terminal, or set it, which
/// services never get (SIGTTIN/SIGTTOU), and would wait silently forever.
/// Looks every [`STOP_TICK`] until the run ends (`running` unset). Linux
/// only: the tree is read from /proc.
pub fn watch_stops(name: &str, pgid: Pgid, running: Arc<AtomicBool>, ours: Arc<AtomicBool>) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let name = name.to_owned();
    let set = |flag: &AtomicBool| flag.load(Ordering::SeqCst);
    let _ = std::thread::Builder::new()
        .name("wtenv-stops".into())
        .spawn(move || {
            while set(&running) {
                std::thread::sleep(STOP_TICK);
                // `ours` again after the look: a stop of wtenv's own may
                // have begun meanwhile.
                if set(&running) && !set(&ours) && stopped_below(pgid) && !set(&ours) {
                    report::warn(&format!(
                        "service {name} is stopped: it read from the terminal, which services \
                         do not get; give it its input another way (stdin of a file, an \
                         option, an environment variable)"
                    ));
                    return;
                }
            }
        });
}

/// Whether the leader of `pgid` or a process below it is stopped by a
/// signal.
fn stopped_below(pgid: Pgid) -> bool {
    let mut todo = vec![pgid.as_raw()];
    let mut looked = 0;
    while let Some(pid) = todo.pop() {
        if process::is_signal_stopped(pid) {
            return true;
        }
        looked += 1;
        if looked > 10_000 {
            break;
        }
        todo.extend(super::reap::children_of(pid).unwrap_or_default());
    }
    false
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
/// `up` and `up --detach` alike, before they start anything, and `run
/// --sockets` before it binds: the ports of `services` in `ports`
/// (`command`: what the hint says to run again).
/// `units`: the main pids of the worktree's background units; a port one
/// of them (or a process under one) listens on is stopped with `wtenv
/// down`, not `kill`. `naming`: the worktree's unit names, by which a
/// `.socket` unit `export systemd` wrote for it is told from others.
pub fn refuse_busy(
    services: &[&Service],
    ports: &alloc::Ports,
    units: &[u32],
    naming: &Naming,
    command: &str,
) -> Result<()> {
    let ports: Vec<(&str, u16)> = services
        .iter()
        .filter_map(|s| Some((s.name.as_str(), *ports.get(&s.name)?)))
        .collect();
    let mut holders = alloc::busy_holders(
        ports.iter().map(|&(_, p)| p),
        &mut alloc::RealSystem::default(),
    );
    // Named as `conflicts` and the conflict message name them.
    let busy: Vec<(u16, String, probe::Holders)> = ports
        .iter()
        .filter_map(|&(service, port)| Some((port, service.to_owned(), holders.remove(&port)?)))
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    let hint = format!(
        "{}, then run {command} again",
        busy_hint(&busy, units, Some(naming))
    );
    Err(Error::refused(format!(
        "ports of the services to start are already in use:\n{}",
        report::foreign_lines(&busy)
    ))
    .with_hint(hint))
}

/// What to do about the busy ports of `busy` (port, service, who holds
/// it): a unit of `units` (main pids of the worktree's background units)
/// or a process under one is stopped with `wtenv down`; a named process
/// with `kill`, but a service manager by the unit it listens for
/// ([`probe::manager::stopping`]: the worktree's exported target, with
/// its `naming`, for a `.socket` unit of the port's service); a port no
/// socket listens on as [`unlistened_hint`] says. `up`'s refusal and what
/// `down` says of a port still held after its stop alike.
///
/// [`unlistened_hint`]: crate::error::unlistened_hint
pub fn busy_hint(
    busy: &[(u16, String, probe::Holders)],
    units: &[u32],
    naming: Option<&Naming>,
) -> String {
    let own = |unit: &str| exported_target(naming?, unit, busy.iter().map(|(_, s, _)| s));
    let (pids, managers) =
        probe::manager::stopping(busy.iter().flat_map(|(_, _, h)| &h.processes), &own);
    let of_units = busy.iter().flat_map(|(_, _, h)| &h.processes).any(|h| {
        units
            .iter()
            .any(|&u| h.pid == u || crate::process::descends_from(h.pid, u))
    });
    let mut what = Vec::new();
    if of_units {
        what.push(
            "a service of this worktree runs in the background there: stop it with 'wtenv down' ('wtenv status' shows them)"
                .to_owned(),
        );
    } else if !pids.is_empty() {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        what.push(format!("stop it (e.g. kill {})", pids.join(" ")));
    } else if managers.is_empty() && busy.iter().any(|(_, _, h)| !h.unlistened()) {
        what.push("stop what listens there".to_owned());
    }
    what.extend(managers);
    let ports: Vec<(u16, &probe::Holders)> = busy.iter().map(|(p, _, h)| (*p, h)).collect();
    what.extend(crate::error::unlistened_hint(&ports));
    what.join("; ")
}

/// The target `export systemd` wrote for the worktree of `naming`, when
/// `unit` is the `.socket` unit it wrote for one of `services`: stopping
/// the target stops its sockets and services (README, "Exporting units").
pub fn exported_target<S: AsRef<str>>(
    naming: &Naming,
    unit: &str,
    mut services: impl Iterator<Item = S>,
) -> Option<String> {
    services
        .any(|s| unit == format!("{}.socket", naming.unit(s.as_ref())))
        .then(|| format!("{}.target", naming.group()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SIGKILLs the processes it names, and kills and reaps its children,
    /// when dropped (a failed assertion leaks nothing).
    #[cfg(target_os = "linux")]
    struct Kill(Vec<u32>, Vec<std::process::Child>);

    #[cfg(target_os = "linux")]
    impl Drop for Kill {
        fn drop(&mut self) {
            for &pid in &self.0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            for child in &mut self.1 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// The rule of the ownership check, with real processes: the service's
    /// own (its leader, a job it put in a group of its own), a process gone,
    /// and a fork of wtenv not exec'd yet are no strangers; an unrelated
    /// process is one, even running wtenv's executable when wtenv is not
    /// its parent.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_holder_is_a_stranger_only_outside_the_service_and_wtenv() {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let mut service = Command::new("bash")
            .args(["-c", "set -m; sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let other = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let (leader, other_pid) = (service.id(), other.id());
        let stdout = service.stdout.take().unwrap();
        let mut kill = Kill(Vec::new(), vec![service, other]);
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let job: u32 = line.trim().parse().unwrap();
        kill.0.push(job);
        let pgid = Pgid(leader);
        let wtenv = Supervisor::current();

        assert!(!stranger(leader, pgid, &wtenv), "the leader");
        assert_ne!(process::pgid(job), Some(pgid.as_raw()), "the setup");
        assert!(!stranger(job, pgid, &wtenv), "a job below the leader");
        assert!(!stranger(wtenv.pid, pgid, &wtenv), "wtenv itself");
        assert!(stranger(other_pid, pgid, &wtenv), "an unrelated process");
        // `other` is our child: running our executable, it is a fork of
        // ours that has not exec'd.
        let forked = Supervisor {
            pid: wtenv.pid,
            exe: exe(other_pid),
        };
        assert!(!stranger(other_pid, pgid, &forked), "a fork of wtenv");
        let not_parent = Supervisor {
            pid: leader,
            exe: exe(other_pid),
        };
        assert!(stranger(other_pid, pgid, &not_parent), "not wtenv's child");
        let mut gone = Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        assert!(!stranger(gone.id(), pgid, &wtenv), "gone");
    }

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

    #[test]
    fn an_end_by_a_signal_names_it_as_the_shell_s_exit_code_does() {
        use std::os::unix::process::ExitStatusExt;
        let end = |raw| describe(std::process::ExitStatus::from_raw(raw));
        assert_eq!(end(3 << 8), "exit code 3");
        assert_eq!(end(128 << 8), "exit code 128");
        assert_eq!(end(15), "killed by SIGTERM");
        assert_eq!(end(143 << 8), "killed by SIGTERM, exit code 143");
        assert_eq!(end(130 << 8), "killed by SIGINT, exit code 130");
        assert_eq!(end(255 << 8), "exit code 255");
        let said = ended("service web", std::process::ExitStatus::from_raw(143 << 8));
        assert_eq!(said, "service web ended (killed by SIGTERM, exit code 143)");
        assert_eq!(
            ended_how(&said, "service web"),
            Some("killed by SIGTERM, exit code 143")
        );
        assert_eq!(ended_how(&said, "service api"), None);
        assert_eq!(ended_how("service web ended", "service web"), None);
    }
}
