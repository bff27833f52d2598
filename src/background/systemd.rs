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

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Launch, Live, Record};
use crate::error::{Error, Result};

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
            b if b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.') => {
                out.push(b as char)
            }
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
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

/// The unit's state, pid, restarts and uptime from `systemctl show`.
pub fn query(unit: &str) -> Live {
    let out = systemctl(&[
        "show",
        "--property=LoadState,ActiveState,MainPID,NRestarts,ActiveEnterTimestampMonotonic",
        "--",
        unit,
    ])
    .stderr(Stdio::null())
    .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            return Live {
                state: "unknown (no systemd user manager)".into(),
                pid: None,
                restarts: None,
                uptime: None,
            };
        }
    };
    parse_show(&text, uptime_now())
}

/// `systemctl show` output, at `now` (time since boot).
fn parse_show(text: &str, now: Option<Duration>) -> Live {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
    };
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
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// Time systemd gives `run` to stop before it kills the whole cgroup.
fn stop_timeout(grace: Duration) -> Duration {
    grace + Duration::from_secs(5)
}

/// Starts `launch` as a transient unit; returns its main pid.
pub fn start(launch: &Launch) -> Result<Option<u32>> {
    let mut args: Vec<OsString> = vec![
        "--user".into(),
        "--quiet".into(),
        "--collect".into(),
        format!("--unit={}", launch.unit).into(),
        format!("--slice={}.slice", launch.group).into(),
        format!("--description=wtenv: service {}", launch.service).into(),
        "--property=KillMode=mixed".into(),
        format!(
            "--property=TimeoutStopSec={}ms",
            stop_timeout(launch.grace).as_millis()
        )
        .into(),
    ];
    let mut dir = OsString::from("--working-directory=");
    dir.push(&launch.root);
    args.push(dir);
    for (k, v) in &launch.env {
        let mut arg = OsString::from(format!("--setenv={k}="));
        arg.push(v);
        args.push(arg);
    }
    args.push("--".into());
    args.extend(launch.argv.iter().cloned());
    let out = Command::new("systemd-run")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("could not run systemd-run", e))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "systemd-run could not start {}: {}",
            launch.unit,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint("see 'systemctl --user status' and the unit's journal"));
    }
    Ok(query(&launch.unit).pid)
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
        .with_hint("see 'systemctl --user status' for the units"));
    }
    Ok(())
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

/// Free text on one unit-file line (`Description=`): escaped, no
/// specifier.
fn describe(text: &str) -> String {
    text.escape_debug().to_string().replace('%', "%%")
}

/// What one exported `.service` says.
#[derive(Debug, Clone)]
pub struct ServiceUnit<'a> {
    pub service: &'a str,
    /// The worktree's `.target` (with suffix).
    pub target: &'a str,
    /// The units it starts after (its `depends_on`, with suffix).
    pub after: Vec<String>,
    pub root: &'a std::path::Path,
    pub env: &'a [(String, OsString)],
    pub argv: &'a [OsString],
    pub grace: Duration,
}

/// The text of an exported `.service`: part of the worktree's target,
/// started after its dependencies, stopped like the transient units.
pub fn service_file(unit: &ServiceUnit) -> String {
    let lossy = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
    let mut out = format!(
        "[Unit]\nDescription=wtenv: service {} of {}\nPartOf={}\n",
        describe(unit.service),
        describe(&unit.root.display().to_string()),
        unit.target
    );
    if !unit.after.is_empty() {
        let after = unit.after.join(" ");
        out.push_str(&format!("Wants={after}\nAfter={after}\n"));
    }
    out.push_str("\n[Service]\nType=simple\n");
    out.push_str(&format!(
        "WorkingDirectory={}\n",
        lossy(unit.root.as_os_str()).replace('%', "%%")
    ));
    for (k, v) in unit.env {
        out.push_str(&format!(
            "Environment={}\n",
            quote(&format!("{k}={}", lossy(v)), false)
        ));
    }
    let exec: Vec<String> = unit.argv.iter().map(|a| quote(&lossy(a), true)).collect();
    out.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    out.push_str(&format!(
        "KillMode=mixed\nTimeoutStopSec={}ms\n\n[Install]\nWantedBy={}\n",
        stop_timeout(unit.grace).as_millis(),
        unit.target
    ));
    out
}

/// The text of an exported `.target`: starts the worktree's services
/// (`Wants=`), and is started at login once enabled.
pub fn target_file(root: &std::path::Path, services: &[String]) -> String {
    format!(
        "[Unit]\nDescription=wtenv: services of worktree {}\nWants={}\n\n[Install]\nWantedBy=default.target\n",
        describe(&root.display().to_string()),
        services.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_safe_characters_and_hex_escapes_the_rest() {
        assert_eq!(escape("web"), "web");
        assert_eq!(escape("my-repo"), r"my\x2drepo");
        assert_eq!(escape("a/b"), "a-b");
        assert_eq!(escape(".hidden.x"), r"\x2ehidden.x");
        assert_eq!(escape("a b"), r"a\x20b");
        assert_eq!(escape("é"), r"\xc3\xa9");
        assert_eq!(escape("x:y_z"), "x:y_z");
        assert_eq!(escape(r"\"), r"\x5c");
    }

    #[test]
    fn unit_file_values_are_quoted_so_nothing_expands() {
        assert_eq!(quote("a b", true), r#""a b""#);
        assert_eq!(
            quote(r#"say "hi" \ $HOME 100%"#, true),
            r#""say \"hi\" \\ $$HOME 100%%""#
        );
        assert_eq!(quote("K=$V", false), r#""K=$V""#);
        assert_eq!(quote("two\nlines", false), r#""two\nlines""#);
    }

    #[test]
    fn show_output_gives_state_pid_restarts_and_uptime() {
        let text = "LoadState=loaded\nActiveState=active\nMainPID=42\nNRestarts=2\nActiveEnterTimestampMonotonic=5000000\n";
        let live = parse_show(text, Some(Duration::from_secs(65)));
        assert_eq!(live.state, "active");
        assert_eq!(live.pid, Some(42));
        assert_eq!(live.restarts, Some(2));
        assert_eq!(live.uptime, Some(Duration::from_secs(60)));
        let gone = parse_show(
            "LoadState=not-found\nActiveState=inactive\nMainPID=0\n",
            None,
        );
        assert_eq!((gone.state.as_str(), gone.pid), ("inactive", None));
        assert!(!gone.running());
    }
}
