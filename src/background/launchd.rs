//! The launchd back end (macOS): one agent per service in the user's GUI
//! domain (`gui/$UID`), its plist under the state directory,
//! `launchctl bootstrap` / `bootout`. The agent runs
//! `wtenv run --service S` like the other back ends; launchd writes its
//! output to `StandardOutPath`/`StandardErrorPath` (one file, the one
//! `wtenv logs` reads; launchd does not rotate it).
//!
//! The plist is a pure function ([`plist`]), tested on every platform; only
//! the `launchctl` calls are macOS-only.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

#[cfg(not(target_os = "macos"))]
use super::Record;
use super::{Launch, Live};
use crate::error::{Error, Result};

/// What one agent's plist says.
#[derive(Debug, Clone)]
pub struct Agent<'a> {
    pub label: &'a str,
    pub argv: &'a [OsString],
    pub root: &'a Path,
    pub env: &'a [(String, OsString)],
    pub log: &'a Path,
    /// Started at load (`up --detach`) or only on demand.
    pub run_at_load: bool,
    /// Time launchd gives the agent between SIGTERM and SIGKILL.
    pub exit_timeout: Duration,
}

/// `text` (the plist's `what`) as a `<string>`: `&`, `<` and `>` escaped,
/// and a carriage return written `&#13;` (an XML reader turns a raw one
/// into a newline). Refused when it holds what the plist cannot carry
/// ([`check_text`]).
fn string(out: &mut String, what: &str, text: &OsStr) -> Result<()> {
    let text = check_text(what, text)?;
    out.push_str("<string>");
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out.push_str("</string>");
    Ok(())
}

/// `text` (the plist's `what`) as the plist's UTF-8, or why the plist
/// cannot carry it: bytes that are not UTF-8 (the file is UTF-8 text), or a
/// character XML 1.0 cannot carry at all, even escaped (a control
/// character other than tab, newline and carriage return, U+FFFE,
/// U+FFFF): launchd would not load the file.
fn check_text<'a>(what: &str, text: &'a OsStr) -> Result<&'a str> {
    let refuse = |why: String| {
        Error::invalid(format!(
            "cannot write a launchd plist: its {what} {} {why}",
            crate::process::printable(&text.to_string_lossy()),
        ))
        .with_hint(super::launch::RENAME_HINT)
    };
    let Some(text) = text.to_str() else {
        return Err(refuse("is not UTF-8, which a plist cannot carry".into()));
    };
    let illegal = |c: char| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    };
    match text.chars().find(|&c| illegal(c)) {
        None => Ok(text),
        Some(c) => Err(refuse(format!(
            "holds {}, which XML cannot carry",
            c.escape_default()
        ))),
    }
}

fn key(out: &mut String, indent: &str, name: &str) {
    out.push_str(indent);
    out.push_str("<key>");
    out.push_str(name);
    out.push_str("</key>\n");
}

/// The agent's property list (XML, the format `plutil` and launchd read);
/// refused when a value holds what it cannot carry ([`check_text`]). It
/// names no port: `export` and `up --detach` make it before they reserve
/// any, so a refusal leaves the registry as it was.
pub fn plist(agent: &Agent) -> Result<String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n",
    );
    key(&mut out, "  ", "Label");
    out.push_str("  ");
    string(&mut out, "Label", agent.label.as_ref())?;
    out.push('\n');
    key(&mut out, "  ", "ProgramArguments");
    out.push_str("  <array>\n");
    for arg in agent.argv {
        out.push_str("    ");
        string(&mut out, "ProgramArguments", arg)?;
        out.push('\n');
    }
    out.push_str("  </array>\n");
    key(&mut out, "  ", "WorkingDirectory");
    out.push_str("  ");
    string(&mut out, "WorkingDirectory", agent.root.as_os_str())?;
    out.push('\n');
    key(&mut out, "  ", "EnvironmentVariables");
    out.push_str("  <dict>\n");
    for (k, v) in agent.env {
        key(&mut out, "    ", k);
        out.push_str("    ");
        string(&mut out, &format!("variable {k}"), v)
            .map_err(|e| e.with_hint(super::unset_hint(k)))?;
        out.push('\n');
    }
    out.push_str("  </dict>\n");
    for name in ["StandardOutPath", "StandardErrorPath"] {
        key(&mut out, "  ", name);
        out.push_str("  ");
        string(&mut out, name, agent.log.as_os_str())?;
        out.push('\n');
    }
    key(&mut out, "  ", "RunAtLoad");
    out.push_str(if agent.run_at_load {
        "  <true/>\n"
    } else {
        "  <false/>\n"
    });
    key(&mut out, "  ", "KeepAlive");
    out.push_str("  <false/>\n");
    key(&mut out, "  ", "ProcessType");
    out.push_str("  ");
    string(&mut out, "ProcessType", "Interactive".as_ref())?;
    out.push('\n');
    key(&mut out, "  ", "ExitTimeOut");
    out.push_str(&format!(
        "  <integer>{}</integer>\n",
        agent.exit_timeout.as_secs().max(1)
    ));
    out.push_str("</dict>\n</plist>\n");
    Ok(out)
}

/// The agent of `launch`, started at load.
pub fn agent_of(launch: &Launch) -> Agent<'_> {
    Agent {
        label: &launch.unit,
        argv: &launch.argv,
        root: &launch.root,
        env: &launch.env,
        log: &launch.log,
        run_at_load: true,
        exit_timeout: launch.grace + Duration::from_secs(5),
    }
}

/// `launchctl print gui/$(id -u)/'LABEL'`, a command for a hint: the
/// label quoted ([`crate::shell::quote_in_message`]) so that the text
/// pasted into bash, zsh or fish names it whole (a label is a unit name,
/// with systemd's escapes: `-` is `\x2d`, whose backslash an unquoted
/// word loses).
pub fn print_command(label: &str) -> String {
    format!(
        "launchctl print gui/$(id -u)/{}",
        crate::shell::quote_in_message(label)
    )
}

/// What `launchctl print gui/UID/LABEL` says of a loaded job: the first
/// `state = `, `pid = ` and `runs = ` lines (launches: its restarts are
/// one less). The job's own lines come before the nested blocks that have
/// a `state` of their own (its coalitions'), and its environments' lines
/// read `NAME => value`.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn parse_print(text: &str) -> Live {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().strip_prefix('='))
            .map(|v| v.trim().to_owned())
    };
    Live {
        state: field("state").unwrap_or_else(|| "unknown".into()),
        pid: field("pid").and_then(|p| p.parse().ok()),
        restarts: field("runs")
            .and_then(|r| r.parse::<u32>().ok())
            .map(|r| r.saturating_sub(1)),
        uptime: None,
    }
}

#[cfg(target_os = "macos")]
pub use imp::{is_active, query, start, stop};

#[cfg(target_os = "macos")]
mod imp {
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::super::{Launch, Live, Record};
    use super::{agent_of, plist};
    use crate::error::{Error, Result};

    fn domain() -> String {
        format!("gui/{}", nix::unistd::getuid())
    }

    fn launchctl(args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new("launchctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    pub fn start(launch: &Launch, dir: &Path) -> Result<Option<u32>> {
        let name = format!("{}.plist", launch.unit);
        super::super::write_file(dir, &name, plist(&agent_of(launch))?.as_bytes())?;
        let path = dir.join(name);
        let out = launchctl(&["bootstrap", &domain(), &path.to_string_lossy()])
            .map_err(|e| Error::io("could not run launchctl", e))?;
        if !out.status.success() {
            return Err(Error::failed(format!(
                "launchctl bootstrap {} failed: {}",
                launch.unit,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .with_hint(format!(
                "see what launchd says of it: {}",
                super::print_command(&launch.unit)
            )));
        }
        Ok(query(&launch.unit).pid)
    }

    pub fn query(label: &str) -> Live {
        let target = format!("{}/{label}", domain());
        match launchctl(&["print", &target]) {
            Ok(o) if o.status.success() => super::parse_print(&String::from_utf8_lossy(&o.stdout)),
            _ => Live {
                state: "inactive".into(),
                pid: None,
                restarts: None,
                uptime: None,
            },
        }
    }

    pub fn is_active(label: &str) -> bool {
        query(label).running()
    }

    pub fn stop(records: &[&Record], dir: &Path) -> Result<()> {
        for r in records {
            let _ = launchctl(&["bootout", &format!("{}/{}", domain(), r.unit)]);
            let _ = std::fs::remove_file(dir.join(format!("{}.plist", r.unit)));
        }
        Ok(())
    }
}

#[cfg(not(target_os = "macos"))]
pub fn start(_launch: &Launch, _dir: &Path) -> Result<Option<u32>> {
    Err(Error::invalid("launchd exists only on macOS"))
}

#[cfg(not(target_os = "macos"))]
pub fn query(_label: &str) -> Live {
    Live {
        state: "unknown (no launchd)".into(),
        pid: None,
        restarts: None,
        uptime: None,
    }
}

#[cfg(not(target_os = "macos"))]
pub fn is_active(_label: &str) -> bool {
    false
}

#[cfg(not(target_os = "macos"))]
pub fn stop(_records: &[&Record], _dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `launchctl print gui/501/LABEL` of a running agent, in the shape
    /// launchd writes it (tab-indented `key = value` lines, nested blocks
    /// for the arguments, the environments and the coalitions, which have
    /// a `state` of their own).
    const RUNNING: &str = "\
gui/501/wtenv-repo_1f2e3d4c-wt-web = {
\tactive count = 1
\tpath = /Users/me/.local/state/wtenv/units/wtenv-repo_1f2e3d4c-wt-web.plist
\ttype = LaunchAgent
\tstate = running

\tprogram = /usr/local/bin/wtenv
\targuments = {
\t\t/usr/local/bin/wtenv
\t\trun
\t\t--service
\t\tweb
\t}

\tworking directory = /Users/me/wt
\tstdout path = /Users/me/.local/state/wtenv/logs/web.log
\tstderr path = /Users/me/.local/state/wtenv/logs/web.log
\tenvironment = {
\t\tPATH => /usr/bin:/bin
\t\tXPC_SERVICE_NAME => wtenv-repo_1f2e3d4c-wt-web
\t}

\tdomain = gui/501 [100009]
\tasid = 100009
\tminimum runtime = 10
\texit timeout = 15
\truns = 1
\tpid = 4242
\timmediate reason = speculative
\tforks = 2
\texecs = 1
\tlast exit code = (never exited)

\tresource coalition = {
\t\tID = 1234
\t\ttype = resource
\t\tstate = active
\t}

\tspawn type = interactive (4)
\tproperties = runatload | inferred program
}
";

    #[test]
    fn a_running_agent_gives_its_own_state_pid_and_runs() {
        let live = parse_print(RUNNING);
        assert_eq!(
            live,
            Live {
                state: "running".into(),
                pid: Some(4242),
                restarts: Some(0),
                uptime: None,
            }
        );
        assert!(live.running());
    }

    #[test]
    fn an_agent_that_exited_is_not_running_and_has_no_pid() {
        let text = "gui/501/x = {\n\tactive count = 0\n\tstate = not running\n\
                    \truns = 3\n\tlast exit code = 1\n}\n";
        let live = parse_print(text);
        assert_eq!((live.pid, live.restarts), (None, Some(2)));
        assert_eq!(live.state, "not running");
        assert!(!live.running());
    }
}
