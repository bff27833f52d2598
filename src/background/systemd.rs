//! The systemd back end: a transient user unit per service
//! (`systemd-run --user`), in one slice per worktree, and the unit files of
//! `export systemd`.
//!
//! Every call goes through `systemctl --user` / `systemd-run --user` with
//! argument vectors. The units run `wtenv run --service S --log FILE`:
//! the journal gets the output as usual, and the file under the state
//! directory is what `wtenv logs` reads (a journal may not run, e.g. in a
//! container). `KillMode=mixed`: `stop` sends SIGTERM to wtenv's `run`
//! alone, which stops its service's process group within its grace and
//! releases the ports; whatever is left after `TimeoutStopSec` (the grace
//! and a margin) gets SIGKILL from systemd, the whole cgroup.

use std::ffi::{OsStr, OsString};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Launch, Live, Record};
use crate::error::{Error, Result};
use crate::shell::quote_in_message;

pub mod show;

/// systemd's escaping of a string into one unit-name component, as
/// `systemd-escape STRING` does: `/` becomes `-`; ASCII letters, digits,
/// `:`, `_` and `.` (but not a leading `.`) stay; every other byte is
/// `\xNN` (lowercase hex).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if kept(b) => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The string [`escape`] made `escaped` of (`systemd-escape --unescape`):
/// `-` is `/`, `\xNN` the byte NN; `None` when it is not text
/// [`escape`] writes.
pub fn unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'-' => bytes.push(b'/'),
            b'\\' => {
                let hex = tail.strip_prefix(b"x")?.get(..2)?;
                bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                rest = &tail[3..];
                continue;
            }
            b if kept(b) => bytes.push(b),
            _ => return None,
        }
        rest = tail;
    }
    String::from_utf8(bytes).ok()
}

/// Whether [`escape`] keeps `b` as it is (but a leading `.`).
pub(super) fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.')
}

/// `systemctl --user status 'UNIT'...`, a command for a hint: each name
/// quoted ([`quote_in_message`]) so that the text pasted into bash, zsh
/// or fish names the unit whole. A name holds systemd's escapes (`-` is
/// `\x2d`), whose backslash an unquoted word loses (`x2d`).
pub fn status_command<S: AsRef<str>>(units: &[S]) -> String {
    let mut command = String::from("systemctl --user status");
    for unit in units {
        command.push(' ');
        command.push_str(&quote_in_message(unit.as_ref()));
    }
    command
}

/// `journalctl --user -u 'UNIT'`, quoted as [`status_command`] quotes it.
pub fn journal_command(unit: &str) -> String {
    format!("journalctl --user -u {}", quote_in_message(unit))
}

fn systemctl(args: &[&str]) -> Command {
    let mut cmd = Command::new("systemctl");
    cmd.arg("--user").args(args).stdin(Stdio::null());
    cmd
}

/// Whether a systemd user manager answers `systemctl --user`.
pub fn available() -> bool {
    cfg!(target_os = "linux")
        && systemctl(&["show", "--property=Version", "--value"])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
}

/// `systemctl --user is-active UNIT`: a manager that cannot be reached
/// has no active unit.
pub fn is_active(unit: &str) -> bool {
    systemctl(&["is-active", "--quiet", "--", unit])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What [`query`] asks `systemctl show` of a unit.
const LIVE: &[&str] = &[
    "LoadState",
    "ActiveState",
    "MainPID",
    "NRestarts",
    "ActiveEnterTimestampMonotonic",
];

/// The unit's state, pid, restarts and uptime from `systemctl show`.
pub fn query(unit: &str) -> Live {
    query_all(&[unit]).of(unit)
}

/// What [`query`] asks, asked of all of `units` in one `systemctl show`
/// (none when `units` is empty): each unit's [`Live`] from the same
/// answer ([`Lives::of`]).
pub fn query_all<S: AsRef<str>>(units: &[S]) -> Lives {
    Lives {
        shown: show::ask(units, LIVE),
        now: uptime_now(),
    }
}

/// What one `systemctl show` said of some units ([`query_all`]).
pub struct Lives {
    /// `None`: no user manager answered.
    shown: Option<show::Shown>,
    /// Time since boot when asked.
    now: Option<Duration>,
}

impl Lives {
    /// What `text`, `systemctl show`'s output for `units`, says, at `now`.
    #[cfg(test)]
    pub(super) fn parsed(text: &str, units: &[&str], now: Option<Duration>) -> Lives {
        Lives {
            shown: Some(show::parse(text, units)),
            now,
        }
    }

    /// `unit`'s state, pid, restarts and uptime, as [`query`] says them.
    pub fn of(&self, unit: &str) -> Live {
        match &self.shown {
            Some(shown) => live(shown, unit, self.now),
            None => Live {
                state: "unknown (no systemd user manager)".into(),
                pid: None,
                restarts: None,
                uptime: None,
            },
        }
    }
}

/// What `systemctl show` said of `unit` ([`LIVE`]), at `now` (time since
/// boot).
fn live(shown: &show::Shown, unit: &str, now: Option<Duration>) -> Live {
    let get = |key: &str| shown.get(unit, key);
    let state = if get("LoadState") == "not-found" {
        "inactive".to_owned()
    } else {
        get("ActiveState").to_owned()
    };
    let pid = get("MainPID").parse().ok().filter(|&p| p != 0);
    let since = get("ActiveEnterTimestampMonotonic")
        .parse::<u64>()
        .ok()
        .filter(|&us| us != 0)
        .map(Duration::from_micros);
    let running = matches!(state.as_str(), "active" | "reloading");
    Live {
        pid: if running { pid } else { None },
        restarts: get("NRestarts").parse().ok(),
        uptime: match (running, since, now) {
            (true, Some(since), Some(now)) => Some(now.saturating_sub(since)),
            _ => None,
        },
        state,
    }
}

/// Time since boot (`/proc/uptime`), the clock of systemd's monotonic
/// timestamps.
fn uptime_now() -> Option<Duration> {
    let text = crate::files::read_proc("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// Time systemd gives `run` to stop before it kills the whole cgroup.
fn stop_timeout(grace: Duration) -> Duration {
    grace + Duration::from_secs(5)
}

/// `systemd-run`'s arguments for `launch`, or why systemd cannot be given
/// them: it all goes over systemd's bus, which carries only UTF-8
/// ([`text`], [`variable`]). Made before anything is reserved, so a
/// refusal leaves the registry as it was.
pub fn run_args(launch: &Launch) -> Result<Vec<String>> {
    let mut args: Vec<String> = vec![
        "--user".into(),
        "--quiet".into(),
        "--collect".into(),
        format!("--unit={}", launch.unit),
        format!("--slice={}.slice", launch.group),
        format!("--description=wtenv: service {}", launch.service),
        "--property=KillMode=mixed".into(),
        format!(
            "--property=TimeoutStopSec={}ms",
            stop_timeout(launch.grace).as_millis()
        ),
    ];
    let root = text("worktree path", launch.root.as_os_str())?;
    args.push(format!("--working-directory={root}"));
    for (k, v) in &launch.env {
        args.push(format!("--setenv={k}={}", variable(k, v)?));
    }
    args.push("--".into());
    for arg in &launch.argv {
        args.push(text("command-line argument", arg)?.to_owned());
    }
    Ok(args)
}

/// Starts `launch` as a transient unit; returns its main pid.
pub fn start(launch: &Launch) -> Result<Option<u32>> {
    let out = Command::new("systemd-run")
        .args(run_args(launch)?)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("could not run systemd-run", e))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "systemd-run could not start {}: {}",
            launch.unit,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint(format!(
            "see what systemd says of it: {}; {}",
            status_command(&[&launch.unit]),
            journal_command(&launch.unit)
        )));
    }
    Ok(query(&launch.unit).pid)
}

/// What the user manager has of the units one `up -d` may start, asked
/// once for all of them, when the first is checked
/// ([`Exported::refuse`]): one `systemctl show` per command, however many
/// services, and checks.
pub struct Exported {
    units: Vec<String>,
    shown: std::cell::OnceCell<Option<show::Shown>>,
}

impl Exported {
    /// For the units `units` (each service's `.service` unit).
    pub fn of(units: Vec<String>) -> Exported {
        Exported {
            units,
            shown: std::cell::OnceCell::new(),
        }
    }

    /// Refuses `launch` when the manager has a unit file of its name:
    /// the `.service` `export systemd` wrote for the service, linked or
    /// exported into a directory the manager loads. `systemd-run` cannot
    /// make a transient unit of that name ("was already loaded or has a
    /// fragment file"), and the exported units are the other way to run
    /// the same services (README, "Exporting units"). Asked before
    /// anything is reserved: the refusal leaves the registry as it was.
    /// A manager that does not answer refuses nothing here.
    pub fn refuse(&self, launch: &Launch) -> Result<()> {
        // Every launch is of one of `units`: those are what was asked.
        debug_assert!(self.units.contains(&launch.unit), "{}", launch.unit);
        match self.shown.get_or_init(|| show::ask(&self.units, FRAGMENT)) {
            Some(shown) => refuse_exported(launch, shown),
            None => Ok(()),
        }
    }
}

/// What [`exported_fragment`] asks `systemctl show` of a unit.
pub const FRAGMENT: &[&str] = &["Transient", "FragmentPath"];

/// The unit file the user manager has for `unit`, by what `systemctl
/// show` said of it ([`FRAGMENT`]), when it is not a transient unit's:
/// the one `export systemd` wrote for the service, linked or exported
/// into a directory the manager loads. `None` when the manager has none.
/// A transient unit's fragment (`/run/.../transient/`) is an earlier
/// `up -d`'s, which `systemd-run` says of itself.
pub fn exported_fragment(shown: &show::Shown, unit: &str) -> Option<String> {
    let fragment = shown.get(unit, "FragmentPath");
    if fragment.is_empty() || shown.get(unit, "Transient") == "yes" {
        return None;
    }
    Some(fragment.to_owned())
}

/// [`Exported::refuse`], by what `systemctl show` said of the unit.
fn refuse_exported(launch: &Launch, shown: &show::Shown) -> Result<()> {
    let Some(fragment) = exported_fragment(shown, &launch.unit) else {
        return Ok(());
    };
    let target = format!("{}.target", launch.group);
    // Every file of the worktree's starts with its target's name: the
    // `*` outside the quotes, so that the shell expands it.
    let files = std::path::Path::new(&fragment).with_file_name(&launch.group);
    Err(Error::refused(format!(
        "service {} is exported: the systemd user manager has the unit {} ({}), so 'up --detach' cannot start it as a unit of its own",
        crate::process::printable(&launch.service),
        quote_in_message(&launch.unit),
        crate::process::printable(&fragment)
    ))
    .with_hint(format!(
        "run the exported units instead (systemctl --user start {}), or, to use 'up --detach', remove the exported files and links of this worktree (systemctl --user disable {}; rm {}*) and run systemctl --user daemon-reload",
        quote_in_message(&target),
        quote_in_message(&target),
        quote_in_message(&files),
    )))
}

/// Stops the units (one `systemctl stop` for all: they go down together)
/// and forgets failed ones. A unit that is already gone is not an error.
pub fn stop(records: &[&Record]) -> Result<()> {
    let units: Vec<&str> = records.iter().map(|r| r.unit.as_str()).collect();
    let mut args = vec!["stop", "--"];
    args.extend(&units);
    let out = systemctl(&args)
        .output()
        .map_err(|e| Error::io("could not run systemctl", e))?;
    let mut args = vec!["reset-failed", "--"];
    args.extend(&units);
    let _ = systemctl(&args).stderr(Stdio::null()).status();
    if !out.status.success() && units.iter().any(|u| is_active(u)) {
        return Err(Error::failed(format!(
            "systemctl --user stop failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint(format!(
            "see what systemd says of them: {}",
            status_command(&units)
        )));
    }
    Ok(())
}

/// Whether `holder` is the systemd user manager listening on `a`'s port
/// through the `.socket` unit `export systemd` wrote for `a`'s service
/// (active, a stream of it on that port): the port is the worktree's,
/// held by the manager between (and before) the service's runs. The
/// lookup that found the holder named the unit it listens for
/// ([`crate::probe::manager::name_units`]: one `systemctl list-sockets`
/// per lookup, of active units only): nothing is asked here.
pub fn socket_unit_holds(a: &crate::registry::Allocation, holder: &crate::probe::Holder) -> bool {
    use crate::probe::manager::Manager;
    if Manager::of(holder) != Some(Manager::SystemdUser) {
        return false;
    }
    let Some(naming) = super::Naming::at(&a.repository, &a.worktree) else {
        return false;
    };
    let unit = naming.unit(&a.service);
    holder.unit.as_deref() == Some(format!("{unit}.socket").as_str())
}

/// `value` (the unit's `what`) as text, or why systemd cannot carry it:
/// its bus, which `systemd-run` speaks, carries only UTF-8 strings, and a
/// unit file is UTF-8 text (an assignment that is not is ignored; an
/// argument could be escaped byte by byte, but one rule serves both).
fn text<'a>(what: &str, value: &'a OsStr) -> Result<&'a str> {
    value.to_str().ok_or_else(|| {
        Error::invalid(format!(
            "systemd cannot carry the {what} {}: it is not UTF-8",
            crate::process::printable(&value.to_string_lossy())
        ))
        .with_hint(super::launch::RENAME_HINT)
    })
}

/// A passed variable's value as text ([`text`]): systemd takes a
/// variable's value only as UTF-8, even escaped (its `env_value_is_valid`:
/// a unit file's assignment is ignored, `systemd-run` refuses it).
fn variable<'a>(name: &str, value: &'a OsStr) -> Result<&'a str> {
    text(&format!("variable {name}"), value).map_err(|e| e.with_hint(super::unset_hint(name)))
}

/// A value in a unit file's double quotes: C-style escapes for `\`, `"`
/// and control characters, `%%` for a literal `%` (specifiers), and, in a
/// command line (`exec`), `$$` for a literal `$` (no variable expansion).
pub fn quote(value: &str, exec: bool) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            '$' if exec => out.push_str("$$"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A worktree's path as a unit file writes it, `WorkingDirectory=` and
/// `Description=` alike: both are read verbatim, but for `%` specifiers
/// ([`unit_path`]).
#[derive(Debug, Clone)]
pub struct UnitPath(String);

/// The worktree at `root`'s path as a unit file writes it, or why no unit
/// file can say it. systemd reads `WorkingDirectory=` (systemd.exec(5)) and
/// `Description=` (systemd.unit(5)) verbatim (no quotes, no C escapes),
/// save for `%` specifiers (written `%%`), the whitespace it strips at
/// both ends, and the unit-file syntax (systemd.syntax(7)): a newline
/// ends the line, so a path holding one would add a line of its own to
/// the unit; a line ending in a backslash joins the next. A path with a
/// control character, or ending in a backslash or in whitespace, is
/// refused: there is no way to write it; so is one that is not UTF-8
/// ([`text`]).
pub fn unit_path(root: &std::path::Path) -> Result<UnitPath> {
    let path = text("worktree path", root.as_os_str())?;
    let reason = if path.chars().any(char::is_control) {
        Some("holds a control character (a newline would end the unit's line)")
    } else if path.ends_with('\\') {
        Some("ends with a backslash (it would join the unit's next line)")
    } else if path.ends_with(char::is_whitespace) {
        Some("ends with whitespace (systemd strips it, naming another directory)")
    } else {
        None
    };
    match reason {
        None => Ok(UnitPath(no_specifiers(path))),
        Some(reason) => Err(Error::invalid(format!(
            "cannot write a systemd unit for {}: its path {reason}",
            crate::process::printable_path(root)
        ))
        .with_hint(
            "WorkingDirectory= has no escape for it; rename the directory, or start the services with 'wtenv up'",
        )),
    }
}

/// Text systemd reads verbatim but for its specifiers: `%` written `%%`.
fn no_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// What one exported `.service` says.
#[derive(Debug, Clone)]
pub struct ServiceUnit<'a> {
    pub service: &'a str,
    /// The worktree's `.target` (with suffix).
    pub target: &'a str,
    /// The units it starts after (its `depends_on`, with suffix).
    pub after: Vec<String>,
    pub root: &'a UnitPath,
    pub env: &'a [(String, OsString)],
    pub argv: &'a [OsString],
    pub grace: Duration,
    /// The `.socket` unit (with suffix) that starts it on the first
    /// connection and passes it the listening socket, if any.
    pub socket: Option<&'a str>,
}

/// The text of an exported `.service`: part of the worktree's target,
/// started after its dependencies, stopped like the transient units.
/// Refused for a value systemd cannot carry ([`text`], [`variable`]). It
/// names no port: `export` makes it before it reserves any, so a refusal
/// leaves the registry as it was.
pub fn service_file(unit: &ServiceUnit) -> Result<String> {
    let mut out = format!(
        "[Unit]\nDescription=wtenv: service {} of {}\nPartOf={}\n",
        no_specifiers(unit.service),
        unit.root.0,
        unit.target
    );
    if !unit.after.is_empty() {
        let after = unit.after.join(" ");
        out.push_str(&format!("Wants={after}\nAfter={after}\n"));
    }
    if let Some(socket) = unit.socket {
        out.push_str(&format!("Requires={socket}\nAfter={socket}\n"));
    }
    out.push_str("\n[Service]\nType=simple\n");
    out.push_str(&format!("WorkingDirectory={}\n", unit.root.0));
    for (k, v) in unit.env {
        out.push_str(&format!(
            "Environment={}\n",
            quote(&format!("{k}={}", variable(k, v)?), false)
        ));
    }
    let exec = unit
        .argv
        .iter()
        .map(|a| Ok(quote(text("command-line argument", a)?, true)))
        .collect::<Result<Vec<String>>>()?;
    out.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    out.push_str(&format!(
        "KillMode=mixed\nTimeoutStopSec={}ms\n",
        stop_timeout(unit.grace).as_millis(),
    ));
    // A socket-activated service is started by its socket, not installed.
    if unit.socket.is_none() {
        out.push_str(&format!("\n[Install]\nWantedBy={}\n", unit.target));
    }
    Ok(out)
}

/// What one exported `.socket` says.
#[derive(Debug, Clone)]
pub struct SocketUnit<'a> {
    pub service: &'a str,
    /// The worktree's `.target` (with suffix).
    pub target: &'a str,
    /// The `.service` it starts (with suffix).
    pub unit: &'a str,
    pub root: &'a UnitPath,
    /// The service's address (`bind`, else `[::]`) and reserved port.
    pub addr: std::net::SocketAddr,
}

/// The text of an exported `.socket`: systemd listens on the reserved
/// port (dual-stack on `[::]`, as `run --sockets` binds it) and starts the
/// service on the first connection, passing the socket named after the
/// service (`LISTEN_FDNAMES`), which its `wtenv run` hands on.
pub fn socket_file(unit: &SocketUnit) -> String {
    let mut out = format!(
        "[Unit]\nDescription=wtenv: socket of service {} of {}\nPartOf={}\n\n[Socket]\nListenStream={}\n",
        no_specifiers(unit.service),
        unit.root.0,
        unit.target,
        unit.addr
    );
    if let std::net::IpAddr::V6(ip) = unit.addr.ip() {
        let only = if ip.is_unspecified() {
            "both"
        } else {
            "ipv6-only"
        };
        out.push_str(&format!("BindIPv6Only={only}\n"));
    }
    out.push_str(&format!(
        "FileDescriptorName={}\nService={}\n\n[Install]\nWantedBy={}\n",
        unit.service, unit.unit, unit.target
    ));
    out
}

/// The text of an exported `.target`: starts the worktree's services
/// (`Wants=`), and is started at login once enabled.
pub fn target_file(root: &UnitPath, services: &[String]) -> String {
    format!(
        "[Unit]\nDescription=wtenv: services of worktree {}\nWants={}\n\n[Install]\nWantedBy=default.target\n",
        root.0,
        services.join(" ")
    )
}

#[cfg(test)]
mod tests;
