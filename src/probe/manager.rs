//! A port's listener that is the service manager itself (systemd's user
//! or system manager; launchd on macOS): it holds the socket for one of
//! its units (a `.socket` unit, such as one `export systemd` wrote), and
//! that unit is what to stop. Killing the manager would take down every
//! service it runs. The one rule for describing such a holder and for
//! the words of a hint that stops it (README, "Exporting units").

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use super::{Holder, Holders};

/// A service manager that can hold a listening socket for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// `systemd --user`, reached with `systemctl --user`.
    SystemdUser,
    /// The system's `systemd` (pid 1), reached with `systemctl`.
    SystemdSystem,
    /// macOS's launchd.
    Launchd,
}

impl Manager {
    /// The manager `holder` is, by its program's name; `None` for any
    /// other process.
    pub fn of(holder: &Holder) -> Option<Manager> {
        let mut words = holder.command.split(' ');
        let program = std::path::Path::new(words.next().unwrap_or_default()).file_name()?;
        if cfg!(target_os = "macos") {
            return (program == "launchd").then_some(Manager::Launchd);
        }
        // The system's manager is pid 1, `systemd` or `/sbin/init` (its
        // link). Another pid 1 (a container's: `node`, `tini`, a shell)
        // is a process like any other: killing it is the way.
        if holder.pid == 1 && program == "init" {
            return Some(Manager::SystemdSystem);
        }
        if program != "systemd" {
            return None;
        }
        if words.any(|w| w == "--user") {
            Some(Manager::SystemdUser)
        } else {
            Some(Manager::SystemdSystem)
        }
    }

    /// The command that controls its units.
    fn control(self) -> &'static str {
        match self {
            Manager::SystemdUser => "systemctl --user",
            Manager::SystemdSystem => "systemctl",
            Manager::Launchd => "launchctl",
        }
    }
}

/// Names, in `found` (a lookup's answer), the unit each service manager
/// holds its listening socket for ([`Holder::unit`]): one
/// `systemctl list-sockets` per manager, only when a manager listens.
pub fn name_units(found: &mut BTreeMap<u16, Holders>) {
    let mut tables: BTreeMap<&'static str, BTreeMap<u16, String>> = BTreeMap::new();
    for (port, holders) in found.iter_mut() {
        for holder in &mut holders.processes {
            let Some(manager) = Manager::of(holder) else {
                continue;
            };
            if manager == Manager::Launchd {
                continue; // its jobs' sockets are not looked up
            }
            let table = tables
                .entry(manager.control())
                .or_insert_with(|| stream_sockets(manager));
            holder.unit = table.get(port).cloned();
        }
    }
}

/// The stream sockets systemd's manager `manager` listens on: port → its
/// `.socket` unit (`systemctl list-sockets --show-types`), of the active
/// units only: an inactive one keeps its `Listen` addresses, listens on
/// none, and may name the port another unit listens on. What
/// [`crate::background::systemd::socket_unit_holds`] decides by, as the
/// messages' words.
fn stream_sockets(manager: Manager) -> BTreeMap<u16, String> {
    let mut cmd = Command::new("systemctl");
    if manager == Manager::SystemdUser {
        cmd.arg("--user");
    }
    let out = cmd
        .args([
            "list-sockets",
            "--state=active",
            "--full",
            "--plain",
            "--no-legend",
            "--show-types",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => parse_sockets(&String::from_utf8_lossy(&o.stdout)),
        _ => BTreeMap::new(),
    }
}

/// `LISTEN TYPE UNIT ACTIVATES` lines: each `Stream` listener's port and
/// unit (`[::]:5000 Stream wtenv-...-web.socket wtenv-...-web.service`).
fn parse_sockets(text: &str) -> BTreeMap<u16, String> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (listen, kind, unit) = (f.first()?, f.get(1)?, f.get(2)?);
            let port = listen.rsplit_once(':')?.1.parse().ok()?;
            (*kind == "Stream" && unit.ends_with(".socket")).then(|| (port, (*unit).to_owned()))
        })
        .collect()
}

/// What a description adds to a listener that is a service manager:
/// `: the service manager, listening for 'UNIT'`; empty for any other.
pub fn described(holder: &Holder) -> String {
    match (Manager::of(holder), &holder.unit) {
        (None, _) => String::new(),
        (Some(_), Some(unit)) => format!(
            ": the service manager, listening for {}",
            crate::shell::quote_in_message(unit)
        ),
        (Some(_), None) => ": the service manager, listening for one of its units".into(),
    }
}

/// How to stop the listeners `holders`: the pids to stop (`kill`), and
/// the words for each service manager among them, which is never killed:
/// `own` gives, for a unit of the worktree's own (the `.socket` units
/// `export systemd` wrote for it), the unit to stop instead (its target,
/// which stops sockets and services alike); another unit is stopped
/// itself; a unit not found is named as the manager's.
pub fn stopping<'a>(
    holders: impl IntoIterator<Item = &'a Holder>,
    own: &dyn Fn(&str) -> Option<String>,
) -> (Vec<u32>, Vec<String>) {
    let (mut pids, mut words) = (Vec::new(), Vec::new());
    for holder in holders {
        let Some(manager) = Manager::of(holder) else {
            if !pids.contains(&holder.pid) {
                pids.push(holder.pid);
            }
            continue;
        };
        let control = manager.control();
        let said = match (&holder.unit, manager) {
            (Some(unit), _) => match own(unit) {
                Some(target) => format!(
                    "the worktree's exported units listen there: stop them with {control} stop {}",
                    crate::shell::quote_in_message(&target)
                ),
                None => format!(
                    "the service manager listens there for {0}: stop it with {control} stop {0}",
                    crate::shell::quote_in_message(unit)
                ),
            },
            (None, Manager::Launchd) => format!(
                "launchd (pid {}) listens there for one of its jobs: unload that job ({control} bootout), not launchd",
                holder.pid
            ),
            (None, _) => format!(
                "the service manager (pid {}) listens there for one of its units: stop that unit ({control} list-sockets names it), not the manager",
                holder.pid
            ),
        };
        if !words.contains(&said) {
            words.push(said);
        }
    }
    (pids, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn holder(pid: u32, command: &str, unit: Option<&str>) -> Holder {
        Holder {
            pid,
            command: command.into(),
            cwd: None,
            unit: unit.map(Into::into),
        }
    }

    /// Captured from the user manager the integration tests start, an
    /// exported socket unit started: `list-sockets --state=active --full
    /// --plain --no-legend --show-types` (columns padded).
    const LIST_SOCKETS: &str = "\
/tmp/wtenv-testKM9scQ/run/bus                       Stream dbus.socket                            dbus.service
/tmp/wtenv-testKM9scQ/run/gnupg/S.gpg-agent.ssh     Stream gpg-agent-ssh.socket                   gpg-agent.service
/tmp/wtenv-testKM9scQ/run/pk-debconf-socket         Stream pk-debconf-helper.socket               pk-debconf-helper.service
127.0.0.1:31360                                     Stream wtenv-repo_f10b355d-sockwt-sock.socket wtenv-repo_f10b355d-sockwt-sock.service
";

    #[test]
    fn real_list_sockets_output_names_the_exported_unit_of_its_port() {
        assert_eq!(
            parse_sockets(LIST_SOCKETS),
            BTreeMap::from([(31360, "wtenv-repo_f10b355d-sockwt-sock.socket".to_owned())])
        );
    }

    #[test]
    fn list_sockets_lines_give_each_stream_port_its_unit() {
        let text = "[::]:5000 Stream wtenv-a_1-b-web.socket wtenv-a_1-b-web.service\n\
                    127.0.0.1:5001 Stream api.socket api.service\n\
                    [::]:5002 Datagram dns.socket dns.service\n\
                    /run/user/1/bus Stream dbus.socket dbus.service\n";
        let got = parse_sockets(text);
        assert_eq!(
            got,
            BTreeMap::from([
                (5000, "wtenv-a_1-b-web.socket".to_owned()),
                (5001, "api.socket".to_owned())
            ])
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_manager_is_stopped_by_its_unit_and_never_killed() {
        let own = |u: &str| (u == "wtenv-a-web.socket").then(|| "wtenv-a.target".to_owned());
        let user = "/lib/systemd/systemd --user";
        let (pids, words) = stopping(
            &[
                holder(42, user, Some("wtenv-a-web.socket")),
                holder(42, user, Some("other.socket")),
                holder(1, "/sbin/init splash", None),
                holder(43, "/lib/systemd/systemd --system", None),
            ],
            &own,
        );
        assert!(pids.is_empty(), "{pids:?}");
        assert_eq!(
            words,
            [
                "the worktree's exported units listen there: stop them with systemctl --user stop 'wtenv-a.target'",
                "the service manager listens there for 'other.socket': stop it with systemctl --user stop 'other.socket'",
                "the service manager (pid 1) listens there for one of its units: stop that unit (systemctl list-sockets names it), not the manager",
                "the service manager (pid 43) listens there for one of its units: stop that unit (systemctl list-sockets names it), not the manager",
            ]
        );
        let (pids, words) = stopping(&[holder(42, "python3 -m http.server", None)], &own);
        assert_eq!((pids, words.len()), (vec![42], 0));
        // A container's pid 1 is its program, no manager: killed as any.
        let (pids, words) = stopping(&[holder(1, "node server.js", None)], &own);
        assert_eq!((pids, words.len()), (vec![1], 0));
    }
}
