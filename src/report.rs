//! The one way wtenv talks to the user: every error, hint, warning, note
//! and status line goes through here, to stderr (stdout is data only, see
//! [`crate::output`]).
//!
//! The mode is set once, at start-up ([`init`]), and read by every message:
//! the supervisor's threads, `up`'s readiness watches and the detached
//! supervisor of `up --detach` talk without a command context. It is two
//! atomics: `wtenv env`'s hot path pays one store.
//!
//! The rules (README, "Messages"):
//! - `-q`: errors only. Warnings, notes, hints of notes and status lines
//!   are dropped; an error keeps its `error:` line and loses its hint,
//!   except where the hint is part of a documented message (a port
//!   conflict) or says what was left behind ([`urgent`]).
//! - `--json` (the commands that have it): the JSON document is the
//!   answer, so notes and hints that repeat it are dropped; warnings and
//!   errors stay.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{PortRange, Ranges, Syntax};
use crate::error::Error;
use crate::probe::Holders;

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Sets the mode for the rest of the process: `-q`, and `--json` of the
/// command that runs.
pub fn init(quiet: bool, json: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

/// `-q` was given: errors only.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Notes and their hints are said: neither `-q` nor `--json`.
fn talk() -> bool {
    !quiet() && !JSON.load(Ordering::Relaxed)
}

/// Writes wtenv's own message `text` to stderr: [`emit_raw`] of
/// [`said`]`(text)`.
fn emit(text: &str) {
    emit_raw(&said(text));
}

/// Writes `text` to stderr in one write (lines of concurrent threads do
/// not interleave); a closed stderr is ignored (there is no one to tell).
fn emit_raw(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `text` with each of its lines [`printable`](crate::process::printable).
/// Each message escapes the names it quotes where it quotes them; this is
/// the net under those sites, for text that reaches a message unescaped
/// (a git error's stderr, a name a new message forgets to escape): no
/// message of wtenv can drive the terminal. Escaped text has nothing left
/// to escape, so it passes as it is, backslashes included.
fn said(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c != '\n' && crate::process::needs_escape(c))
    {
        return Cow::Borrowed(text);
    }
    let lines: Vec<String> = text.split('\n').map(crate::process::printable).collect();
    Cow::Owned(lines.join("\n"))
}

/// The error a command ended with: [`render`]ed.
pub fn error(err: &Error) {
    emit(&render(err, quiet()));
}

/// `err` as the user reads it: `error: what failed` then `hint: what
/// next` (dropped when `quiet`, unless part of the message). A port
/// conflict is its documented text, kept word for word from the scripts
/// wtenv replaces (docs/ARCHITECTURE.md, allocation rule 3).
pub fn render(err: &Error, quiet: bool) -> String {
    let mut out = String::new();
    match err {
        Error::Interrupted(_) => return out,
        Error::Conflict(c) => {
            out.push_str(&conflict_text(c));
            out.push('\n');
        }
        _ => {
            let _ = writeln!(out, "error: {err}");
            if let Some(hint) = err.hint()
                && (!quiet || err.hint_is_part_of_message())
            {
                let _ = writeln!(out, "hint: {hint}");
            }
        }
    }
    out
}

/// An error that does not end the command (a service that could not be
/// spawned, within a supervisor that goes on to stop the others): `error:`
/// always, its hint unless `-q`.
pub fn problem(message: &str, hint: Option<&str>) {
    emit(&problem_text(message, hint));
}

/// What [`problem`] writes: `error: ...` and its hint unless `-q` (for a
/// log that keeps it too).
pub fn problem_text(message: &str, hint: Option<&str>) -> String {
    let mut out = format!("error: {message}\n");
    if let Some(hint) = hint.filter(|_| !quiet()) {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// Something was left behind for the user to mend (a rollback step that
/// failed, ports a guard could not release): error and hint even with `-q`.
pub fn urgent(message: &str, hint: &str) {
    emit(&format!("error: {message}\nhint: {hint}\n"));
}

/// A non-fatal problem: `warning: ...`, then its hint if any. Dropped by `-q`.
pub fn warn(message: &str) {
    if !quiet() {
        emit(&format!("warning: {message}\n"));
    }
}

/// [`warn`] with a hint.
pub fn warn_hinted(message: &str, hint: &str) {
    if !quiet() {
        emit(&format!("warning: {message}\nhint: {hint}\n"));
    }
}

/// What a command did (`removed worktree ...`, `released port ...`).
/// Dropped by `-q` and `--json`.
pub fn note(message: &str) {
    if talk() {
        emit(&format!("{message}\n"));
    }
}

/// What to do next after a command that succeeded (`hint: ...`).
/// Dropped by `-q` and `--json`.
pub fn hint(message: &str) {
    if talk() {
        emit(&format!("hint: {message}\n"));
    }
}

/// A status line of the supervisor (`wtenv: service web ready on port
/// 5000`): prefixed `wtenv: ` so it stands apart from the services' own
/// lines. Dropped by `-q`.
pub fn status(message: &str) {
    if !quiet() {
        emit(&status_text(message));
    }
}

/// A status line `-q` keeps: what wtenv did to the user's processes
/// unasked, each SIGKILL it sent, at the grace's end or by a sweep
/// (`wtenv: npm did not stop within 10s: killed 1 process, pid 4242
/// (npm start)`; the words are `supervise::notice`'s). Written to the
/// log set by [`keep_in`] too.
pub fn status_kept(message: &str) {
    let text = status_text(message);
    emit(&text);
    if let Some(log) = KEPT_IN.get() {
        log(&text);
    }
}

/// Writes a [`status_kept`] line somewhere besides stderr.
pub type KeptIn = Box<dyn Fn(&str) + Send + Sync>;

/// Where [`status_kept`] lines go besides stderr, once set.
static KEPT_IN: OnceLock<KeptIn> = OnceLock::new();

/// Sets, for the rest of the process, where [`status_kept`] lines go
/// besides stderr: the supervisor of a background service (`run --log`),
/// whose stderr is the journal or nothing, writes what it killed into
/// the service's log, which `logs` shows. Set once; later calls are
/// ignored.
pub fn keep_in(log: KeptIn) {
    let _ = KEPT_IN.set(log);
}

/// A wait for a lock another wtenv holds, said once it has lasted a
/// second ([`status`]): a silent wait looks like a hang, and one a prompt
/// hook makes holds up the prompt.
pub struct SlowWait {
    start: std::time::Instant,
    said: bool,
}

impl SlowWait {
    /// A wait that starts now.
    pub fn start() -> SlowWait {
        SlowWait {
            start: std::time::Instant::now(),
            said: false,
        }
    }

    /// How long it has waited.
    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }

    /// Says `what` (`waiting for ...`) once the wait has lasted a second.
    pub fn tick(&mut self, what: impl FnOnce() -> String) {
        if !self.said && self.start.elapsed() >= std::time::Duration::from_secs(1) {
            status(&what());
            self.said = true;
        }
    }
}

/// What [`status`] writes, for a log that keeps it too: `wtenv: ...`.
pub fn status_text(message: &str) -> String {
    format!("{STATUS}{message}\n")
}

/// What [`status_text`] said in `line`, if it is such a line.
pub fn status_said(line: &str) -> Option<&str> {
    line.strip_prefix(STATUS)
}

/// How a status line starts.
const STATUS: &str = "wtenv: ";

/// A status line after a service's own prefix (`web | starting`, the
/// prefix in the service's colour: written as it is, the text [`said`]).
/// Dropped by `-q`.
pub fn line(prefix: &str, text: &str) {
    if !quiet() {
        emit_raw(&format!("{prefix}{}\n", said(text)));
    }
}

/// The hint that ends every conflict message: the opt-in that skips
/// occupied ports instead of failing, set in the config file in use, in
/// its syntax; with none (the built-in defaults), in the file to create
/// ([`crate::error::create_config`]).
fn conflict_hint(config_file: Option<&str>, syntax: Syntax) -> String {
    let setting = syntax.setting(&["allocation"], "skip_occupied", "true");
    let there = match config_file {
        Some(file) => format!(" in {file}"),
        None => format!(": {}", crate::error::create_config("that table")),
    };
    format!("to take the next free port instead, pass --skip-occupied or set {setting}{there}")
}

/// Ports free in the registry but occupied on the system (allocation
/// rule 3): the data of [`Error::Conflict`].
#[derive(Debug, Clone)]
pub struct PortConflict {
    pub purpose: String,
    /// The range where the conflicts are.
    pub range: PortRange,
    /// Every range of the purpose, in order.
    pub ranges: Ranges,
    /// Each occupied port with who holds it, as far as the system tells.
    pub ports: Vec<(u16, Holders)>,
    /// The config file that sets `[allocation]`, as the hint names it
    /// ([`crate::config::file_named`]; `None`: there is none, and the
    /// hint says which to create), and its syntax.
    pub config_file: Option<String>,
    pub syntax: Syntax,
}

/// The conflict message: the scripts' words, then one holder line per
/// port, then, for a purpose with overflow ranges, every range and the rule
/// that moves on; last the hint to skip occupied ports. No newline at the
/// end.
pub fn conflict_text(c: &PortConflict) -> String {
    let ports: Vec<String> = c.ports.iter().map(|(p, _)| p.to_string()).collect();
    let mut msg = format!(
        "Port conflict detected in {purpose} range {range}.\n\
         Ports free in registry but occupied on system: {}.\n\
         Run 'wtenv validate --verify-ports' to detect and clean stale allocations.",
        ports.join(", "),
        purpose = c.purpose,
        range = c.range,
    );
    msg.push_str(&port_lines(&c.ports));
    if c.ranges.len() > 1 {
        let _ = write!(
            msg,
            "\n{purpose} {ranges}, tried in order: the next only when one is full, \
             or with --skip-occupied when its free ports are all occupied.",
            purpose = c.purpose,
            ranges = c.ranges.label()
        );
    }
    let _ = write!(
        msg,
        "\nhint: {}",
        conflict_hint(c.config_file.as_deref(), c.syntax)
    );
    msg
}

/// `\n  port 5000: pid ...` for each occupied port, naming its holders:
/// the conflict message's lines, and those of the ports a full range
/// skipped as occupied ([`Error::RangeExhausted`]).
pub fn port_lines(ports: &[(u16, Holders)]) -> String {
    let mut lines = String::new();
    for (port, holders) in ports {
        let _ = write!(
            lines,
            "\n  port {port}: {}",
            crate::alloc::describe_found(holders)
        );
    }
    lines
}

/// One line per port of [`Error::ForeignHolder`]: `  port 5000 (web): pid ...`.
pub fn foreign_lines(ports: &[(u16, String, Holders)]) -> String {
    ports
        .iter()
        .map(|(port, service, holders)| {
            format!(
                "  port {port} ({}): {}",
                crate::process::printable(service),
                crate::alloc::describe_found(holders)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ranges;

    #[test]
    fn a_message_cannot_drive_the_terminal_whatever_reached_it() {
        let text = render(
            &Error::invalid("branch feature/\u{202e}gnp.exe in /w/a\x1b[2J")
                .with_hint("run 'wtenv list'\r"),
            false,
        );
        assert_eq!(
            said(&text),
            "error: branch feature/\\u{202e}gnp.exe in /w/a\\u{1b}[2J\nhint: run 'wtenv list'\\r\n"
        );
    }

    #[test]
    fn a_message_already_escaped_is_said_as_it_is() {
        for text in [
            "error: worktree /w/a\\u{1b}[2J has no allocations\nhint: x\n",
            "removed C:\\dir\\new\n",
            "",
        ] {
            assert!(matches!(said(text), Cow::Borrowed(t) if t == text));
        }
    }

    /// Who holds a port: the process `pid`.
    fn holder(pid: u32) -> Holders {
        Holders {
            processes: vec![crate::probe::Holder {
                pid,
                command: "python3 -m http.server".into(),
                cwd: Some("/w/other".into()),
                unit: None,
            }],
            ..Holders::default()
        }
    }

    /// A port no socket listens on, with a connection in TIME_WAIT or not.
    fn unlistened(time_wait: bool) -> Holders {
        Holders {
            processes: vec![],
            listening: Some(false),
            time_wait,
        }
    }

    #[test]
    fn a_conflict_renders_its_documented_text_whole_even_when_quiet() {
        let range = PortRange {
            start: 5000,
            end: 5009,
        };
        let err = Error::Conflict(Box::new(PortConflict {
            purpose: "feature".into(),
            range,
            ranges: Ranges::one(range),
            ports: vec![
                (5001, holder(7)),
                (5002, Holders::default()),
                (5003, unlistened(false)),
            ],
            config_file: Some("wtenv.toml".into()),
            syntax: Syntax::Toml,
        }));
        let text = "Port conflict detected in feature range 5000-5009.\n\
             Ports free in registry but occupied on system: 5001, 5002, 5003.\n\
             Run 'wtenv validate --verify-ports' to detect and clean stale allocations.\n  \
             port 5001: pid 7 (python3 -m http.server) in /w/other\n  \
             port 5002: holder unknown\n  \
             port 5003: no listening process (a socket bound without listening, or a TIME_WAIT: it clears within a minute)\n\
             hint: to take the next free port instead, pass --skip-occupied or set [allocation] skip_occupied = true in wtenv.toml\n";
        assert_eq!(render(&err, false), text);
        assert_eq!(render(&err, true), text);
        assert_eq!(format!("{err}\n"), text);

        // A JSON config: the hint names it, and the setting in JSON.
        let Error::Conflict(mut conflict) = err else {
            unreachable!()
        };
        conflict.config_file = Some("wtenv.json".into());
        conflict.syntax = Syntax::Json;
        assert!(
            conflict_text(&conflict).ends_with(
                "\nhint: to take the next free port instead, pass --skip-occupied or set \"allocation\": {\"skip_occupied\": true} in wtenv.json"
            ),
            "{}",
            conflict_text(&conflict)
        );

        // No config (the built-in defaults): the hint says which file to
        // create, with the table, in TOML.
        conflict.config_file = None;
        conflict.syntax = Syntax::Toml;
        assert!(
            conflict_text(&conflict).ends_with(
                "\nhint: to take the next free port instead, pass --skip-occupied or set [allocation] skip_occupied = true: \
                 there is no config, so create wtenv.toml with that table"
            ),
            "{}",
            conflict_text(&conflict)
        );
    }

    #[test]
    fn a_foreign_holder_renders_as_error_and_hint_even_when_quiet() {
        let err = Error::ForeignHolder {
            worktree: "/w/mine".into(),
            ports: vec![(5000, "web".into(), holder(7))],
        };
        let text = "error: ports reserved for worktree /w/mine are held by processes outside it:\n  \
             port 5000 (web): pid 7 (python3 -m http.server) in /w/other\n\
             hint: stop those processes; the reservation stays with this worktree\n";
        assert_eq!(render(&err, false), text);
        assert_eq!(render(&err, true), text);
    }

    /// A port no socket listens on holds no process to stop: the hint
    /// says what to do instead. On Linux the lookup saw whether a
    /// connection of the port is in TIME_WAIT, and the hint says which
    /// to do; elsewhere wtenv cannot tell, and says both, nothing of
    /// `/proc`.
    #[test]
    fn a_foreign_holder_with_no_process_listening_hints_what_to_do_instead() {
        let hint = |ports: Vec<(u16, &str, Holders)>| {
            Error::ForeignHolder {
                worktree: "/w/mine".into(),
                ports: ports
                    .into_iter()
                    .map(|(p, s, h)| (p, s.to_owned(), h))
                    .collect(),
            }
            .hint()
            .unwrap()
        };
        let stays = "the reservation stays with this worktree";
        if cfg!(target_os = "linux") {
            assert_eq!(
                hint(vec![(5000, "web", unlistened(false))]),
                format!(
                    "no connection of port 5000 is in TIME_WAIT: stop the program that bound it without listening; {stays}"
                )
            );
            assert_eq!(
                hint(vec![(5000, "web", unlistened(true))]),
                format!(
                    "a connection of port 5000 is in TIME_WAIT: wait for it to clear (within a minute); should it stay busy, stop the program that bound it without listening; {stays}"
                )
            );
            assert_eq!(
                hint(vec![
                    (5000, "web", holder(7)),
                    (5001, "api", unlistened(true)),
                    (5002, "db", unlistened(true)),
                    (5003, "mq", unlistened(false)),
                ]),
                format!(
                    "stop those processes; connections of ports 5001, 5002 are in TIME_WAIT: wait for them to clear (within a minute); should they stay busy, stop the programs that bound them without listening; no connection of port 5003 is in TIME_WAIT: stop the program that bound it without listening; {stays}"
                )
            );
        } else {
            assert_eq!(
                hint(vec![(5000, "web", unlistened(false))]),
                format!(
                    "wait a minute if port 5000 is in TIME_WAIT; should it stay busy, stop the program that bound it without listening; {stays}"
                )
            );
        }
        // A socket hand-off's bind says the same of its port.
        let in_use = Error::PortInUse {
            port: 5000,
            addr: "127.0.0.1:5000".parse().unwrap(),
            service: "web".into(),
            holders: unlistened(false),
        };
        assert_eq!(
            in_use.hint(),
            crate::error::unlistened_hint(&[(5000, &unlistened(false))])
        );
        // A process, named or not, is still to be stopped.
        for holders in [holder(7), Holders::default()] {
            assert_eq!(
                hint(vec![(5000, "web", holders)]),
                format!("stop those processes; {stays}")
            );
        }
    }

    #[test]
    fn a_taken_socket_names_its_holder() {
        let err = Error::PortInUse {
            port: 5000,
            addr: "127.0.0.1:5000".parse().unwrap(),
            service: "web".into(),
            holders: holder(7),
        };
        assert_eq!(
            render(&err, true),
            "error: could not bind port 5000 (127.0.0.1:5000) for service web: it is in use: pid 7 (python3 -m http.server) in /w/other\n\
             hint: stop that process, or run 'wtenv validate --verify-ports' to find stale allocations\n"
        );
    }

    #[test]
    fn an_error_drops_its_hint_when_quiet_and_an_interruption_says_nothing() {
        let err = Error::RangeExhausted {
            purpose: "feature".into(),
            ranges: Ranges::one(PortRange {
                start: 5000,
                end: 5009,
            }),
            need: 1,
            config_file: Some("wtenv.toml".into()),
            occupied: Vec::new(),
        };
        let quiet = render(&err, true);
        assert_eq!(
            quiet,
            "error: no free port left in feature range 5000-5009\n"
        );
        assert!(render(&err, false).starts_with(&quiet));
        assert!(render(&err, false)[quiet.len()..].starts_with("hint: "));
        assert_eq!(render(&Error::Interrupted(2), false), "");
    }
}
