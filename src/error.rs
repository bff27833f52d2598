//! The one error type of wtenv, and its mapping to exit codes.
//!
//! Every failure carries a kind that says what went wrong, what failed, on
//! what, and (via [`Error::hint`]) what to do next; its data, not text, is
//! rendered by [`crate::report`]. The exit code is decided in one place:
//! [`Error::exit_code`].

use std::path::PathBuf;

use crate::exit;
use crate::probe::Holders;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry file exists but cannot be trusted. Never overwritten.
    /// Also a file wtenv keeps beside it (`what`: "trust list") that
    /// cannot be used, itself (damaged, a link, its mode) or its state
    /// directory or lock file: the same refusal, of the file the command
    /// uses, exit 2 whatever is wrong.
    #[error(
        "{what} {} cannot be used: {reason}",
        crate::process::printable_path(path)
    )]
    RegistryUnusable {
        /// `registry`, or what the file beside it is.
        what: &'static str,
        path: PathBuf,
        reason: String,
        hint: String,
    },

    /// Another wtenv held the registry lock for longer than we wait.
    #[error(
        "could not lock registry {}: busy for {}",
        crate::process::printable_path(path),
        humantime::format_duration(*waited)
    )]
    RegistryBusy {
        path: PathBuf,
        waited: std::time::Duration,
    },

    /// Another lock of the state directory (the probe lock, the trust
    /// list's) held past the wait.
    #[error(
        "could not lock {}: busy for {}",
        crate::process::printable_path(path),
        humantime::format_duration(*waited)
    )]
    LockBusy {
        path: PathBuf,
        waited: std::time::Duration,
    },

    /// The fail-fast port conflict (docs/ARCHITECTURE.md, allocation rule
    /// 3): data, rendered word for word by [`crate::report::conflict_text`].
    #[error("{}", crate::report::conflict_text(.0))]
    Conflict(Box<crate::report::PortConflict>),

    /// Reserved ports of `worktree` held by processes of another one: each
    /// port with its service and holders.
    #[error(
        "ports reserved for worktree {} are held by processes outside it:\n{}",
        crate::process::printable_path(worktree),
        crate::report::foreign_lines(ports)
    )]
    ForeignHolder {
        worktree: PathBuf,
        ports: Vec<(u16, String, Holders)>,
    },

    /// A port wtenv binds for a service (socket hand-off) is taken.
    #[error(
        "could not bind port {port} ({addr}) for service {service}: it is in use: {}",
        crate::alloc::describe_found(holders)
    )]
    PortInUse {
        port: u16,
        addr: std::net::SocketAddr,
        service: String,
        holders: Holders,
    },

    /// No free port left in any of a purpose's ranges (said as `range
    /// 5000-5099`, `ranges 5400-5499, 15400-15499`); `config_file` is the
    /// config that gives them, which the hint says to widen them in
    /// (`None`: the built-in defaults, and the hint says to create one:
    /// [`widen_where`]).
    /// `need`: the ports the worktree needs from them, those it has there
    /// and those it lacks; when the ranges hold fewer, that is the cause,
    /// and the message says so. `occupied`: the ports free in the
    /// registry that `skip_occupied` skipped as occupied on the system,
    /// with their holders, named one a line (at most
    /// [`SKIPPED_NAMED`]), and the hint says to stop them.
    #[error("no free port left in {purpose} {}{}{}", ranges.label(), too_small(ranges, *need), Skipped(occupied))]
    RangeExhausted {
        purpose: String,
        ranges: crate::config::Ranges,
        need: usize,
        config_file: Option<String>,
        occupied: Vec<(u16, crate::probe::Holders)>,
    },

    /// `at`: where a syntax or type error is (`wtenv.toml:3:10: ...`);
    /// `key` is empty for a syntax error. `hint`: what to do, when "fix
    /// the file" is not enough (a limit, and why it is there).
    #[error("invalid config {}{}: {}{reason}", crate::process::printable_path(path), Place(.at), KeyPrefix(.key))]
    Config {
        path: PathBuf,
        at: Option<Box<Location>>,
        key: String,
        reason: String,
        hint: Option<String>,
    },

    #[error("git {args} failed: {stderr}")]
    Git { args: String, stderr: String },

    /// Bad input: a value given on the command line, in the environment
    /// or by the config that wtenv refuses (an identifier, a duration, a
    /// path that is not UTF-8, a flag this platform cannot honour).
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
    },

    /// What the command names does not exist: a worktree, a service, a
    /// purpose, a process, a config, a log, the directory it needs.
    #[error("{message}")]
    NotFound {
        message: String,
        hint: Option<String>,
    },

    /// A precondition the user can fix: the path or branch exists, the
    /// worktree is in use or is the main one, a file there is not one wtenv
    /// may use, another wtenv holds the repository.
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },

    /// A step outside wtenv's own rules failed: a service manager, a
    /// service that did not get ready, a write that could not be made.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
        hint: Option<String>,
    },

    /// The command was interrupted by a signal and cleaned up; die of it.
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
}

/// A place in a text file: 1-based line and column (in characters), and
/// the line's text, cut short and with control characters escaped, for a
/// hint that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub text: String,
}

/// `:LINE:COL` after a file name, or nothing.
pub(crate) struct Place<'a>(pub(crate) &'a Option<Box<Location>>);

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(at) => write!(f, ":{}:{}", at.line, at.column),
            None => Ok(()),
        }
    }
}

/// `KEY: `, or nothing for a syntax error (no key).
pub(crate) struct KeyPrefix<'a>(pub(crate) &'a str);

impl std::fmt::Display for KeyPrefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            "" => Ok(()),
            key => write!(f, "{key}: "),
        }
    }
}

/// How many of the ports a full range skipped as occupied its message
/// names, a line each: it is said on every `cd` under the shell hook, and
/// a range of thousands must not print thousands of lines.
pub const SKIPPED_NAMED: usize = 10;

/// `; occupied on the system, so skipped:` and a line per port (as the
/// conflict message's: [`crate::report::port_lines`]), after a full
/// range's message; nothing when none was skipped.
struct Skipped<'a>(&'a [(u16, crate::probe::Holders)]);

impl std::fmt::Display for Skipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let named = &self.0[..self.0.len().min(SKIPPED_NAMED)];
        write!(
            f,
            "; occupied on the system, so skipped:{}",
            crate::report::port_lines(named)
        )?;
        match self.0.len() - named.len() {
            0 => Ok(()),
            more => write!(f, "\n  and {more} more"),
        }
    }
}

/// `: this worktree's services need 3 ports; the ranges hold 2` after a
/// full range's message, when holding too few is why; else nothing.
fn too_small(ranges: &crate::config::Ranges, need: usize) -> String {
    let size = ranges.size();
    if need <= size {
        return String::new();
    }
    let them = match ranges.len() {
        1 => "the range holds",
        _ => "the ranges hold",
    };
    format!(": this worktree's services need {need} ports; {them} {size}")
}

/// Where a full range's hint says to widen it: ` in wtenv.toml`, the
/// config that gives the ranges (as [`crate::config::file_named`] names
/// it); with none (the built-in defaults), the file to create and the
/// line to start from, since a `[purposes]` table replaces every
/// built-in purpose: `: there is no config, so create wtenv.toml with a
/// [purposes] table, from the built-in line feature = "5000-5099" (...)`.
fn widen_where(config_file: Option<&str>, purpose: &str, ranges: &crate::config::Ranges) -> String {
    let Some(file) = config_file else {
        let value = match ranges.len() {
            1 => format!("\"{ranges}\""),
            _ => format!(
                "[{}]",
                ranges
                    .iter()
                    .map(|r| format!("\"{r}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return format!(
            ": {}, from the built-in line {purpose} = {value} (the table replaces every built-in purpose)",
            create_config("a [purposes] table")
        );
    };
    format!(" in {file}")
}

/// What a hint says where a setting it names has no config to go in
/// (the built-in defaults are in use): the file to create, `with` in it:
/// `there is no config, so create wtenv.toml with a [purposes] table`.
/// Said by a full range's hint ([`widen_where`]) and the conflict
/// message's ([`crate::report::conflict_text`]).
pub fn create_config(with: &str) -> String {
    format!(
        "there is no config, so create {} with {with}",
        crate::config::TOML_NAME
    )
}

impl Location {
    /// The line shown is cut to this many characters.
    const SHOWN: usize = 60;

    /// The place of byte `offset` of `text`.
    pub fn at(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[start..offset].chars().count() + 1;
        let shown = text[start..end].trim();
        let cut: String = shown.chars().take(Self::SHOWN).collect();
        // The hint is printed on every `cd` under the shell hook: a raw
        // escape sequence in the file would drive the terminal.
        let mut text = crate::process::printable(&cut);
        if shown.chars().count() > Self::SHOWN {
            text.push_str("...");
        }
        Location { line, column, text }
    }

    /// The place of 1-based `line` and byte `column` (column 0: the
    /// line's start), as JSON parsers count.
    pub fn at_line(text: &str, line: usize, column: usize) -> Location {
        let start: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        Location::at(text, start + column.saturating_sub(1))
    }
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid {
            message: message.into(),
            hint: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound {
            message: message.into(),
            hint: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Error::Refused {
            message: message.into(),
            hint: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// The error with what to do next, for the kinds that carry their hint
    /// ([`Error::Invalid`], [`Error::NotFound`], [`Error::Refused`],
    /// [`Error::Failed`], [`Error::Io`], [`Error::Config`]); the others
    /// know their own.
    pub fn with_hint(mut self, text: impl Into<String>) -> Self {
        if let Error::Invalid { hint, .. }
        | Error::NotFound { hint, .. }
        | Error::Refused { hint, .. }
        | Error::Failed { hint, .. }
        | Error::Io { hint, .. }
        | Error::Config { hint, .. } = &mut self
        {
            *hint = Some(text.into());
        }
        self
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
            hint: None,
        }
    }

    pub fn config(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::config_at(path, None, key, reason)
    }

    /// [`Error::config`] at a place in the file. Control characters in
    /// `key` and `reason` (a JSON key may hold `\u001b`) are escaped, as in
    /// [`Location`].
    pub fn config_at(
        path: impl Into<PathBuf>,
        at: Option<Location>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            at: at.map(Box::new),
            key: crate::process::printable(&key.into()),
            reason: crate::process::printable(&reason.into()),
            hint: None,
        }
    }

    /// A probe failure. The probe lock's own errors travel inside the
    /// `io::Error` (the `System` trait speaks io); they come back out here
    /// with their kind, so "registry busy" still exits 2.
    pub fn probe(e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::io("could not probe ports", e)
    }

    /// What the user can do about it, printed as `hint: ...`.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::RegistryUnusable { hint, .. } => Some(hint.clone()),
            Error::RegistryBusy { .. } => Some(lock_busy_hint(
                "another wtenv",
                crate::registry::LOCK_NAME,
                WAIT_LONGER,
            )),
            Error::LockBusy { path, .. } => Some(
                if path.file_name() == Some(crate::registry::PROBE_LOCK_NAME.as_ref()) {
                    lock_busy_hint(
                        "another wtenv probing ports with this registry",
                        crate::registry::PROBE_LOCK_NAME,
                        WAIT_LONGER,
                    )
                } else {
                    lock_busy_hint("another wtenv", "it", WAIT_LONGER)
                },
            ),
            Error::RangeExhausted {
                purpose,
                ranges,
                need,
                config_file,
                occupied,
            } => {
                let there = widen_where(config_file.as_deref(), purpose, ranges);
                Some(if *need > ranges.size() {
                    let (them, together) = match ranges.len() {
                        1 => ("the range", ""),
                        _ => ("the ranges", " together"),
                    };
                    format!(
                        "widen {them} to at least {need} ports{together} (or add an overflow range){there}"
                    )
                } else if !occupied.is_empty() {
                    let ports: Vec<(u16, &Holders)> =
                        occupied.iter().map(|(p, h)| (*p, h)).collect();
                    format!(
                        "{}, or widen the range (or add an overflow range){there}",
                        stop_hint(&ports, "stop what holds those ports")
                    )
                } else {
                    format!(
                        "run 'wtenv validate --verify-ports --fix' to release stale allocations, or widen the range (or add an overflow range){there}"
                    )
                })
            }
            Error::Config {
                hint: Some(hint), ..
            } => Some(hint.clone()),
            Error::Config { at: Some(at), .. } if !at.text.is_empty() => Some(format!(
                "fix line {} (`{}`), then run the command again",
                at.line, at.text
            )),
            Error::Config { .. } => Some("fix the file, then run the command again".into()),
            Error::ForeignHolder { ports, .. } => {
                let ports: Vec<(u16, &Holders)> = ports.iter().map(|(p, _, h)| (*p, h)).collect();
                let mut what: Vec<String> = Vec::new();
                let (pids, managers) = crate::probe::manager::stopping(
                    ports.iter().flat_map(|(_, h)| &h.processes),
                    &|_| None,
                );
                let unnamed = ports
                    .iter()
                    .any(|(_, h)| h.processes.is_empty() && !h.unlistened());
                if !pids.is_empty() || unnamed {
                    what.push("stop those processes".into());
                }
                what.extend(managers);
                what.extend(unlistened_hint(&ports));
                what.push("the reservation stays with this worktree".into());
                Some(what.join("; "))
            }
            Error::PortInUse { port, holders, .. } => {
                let (pids, managers) =
                    crate::probe::manager::stopping(&holders.processes, &|_| None);
                Some(if pids.is_empty() && !managers.is_empty() {
                    managers.join("; ")
                } else {
                    stop_hint(
                        &[(*port, holders)],
                        "stop that process, or run 'wtenv validate --verify-ports' to find stale allocations",
                    )
                })
            }
            Error::Invalid { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Refused { hint, .. }
            | Error::Failed { hint, .. } => hint.clone(),
            Error::Io { hint, source, .. } => hint
                .clone()
                .or_else(|| too_many_files_hint(source).map(Into::into)),
            _ => None,
        }
    }

    /// The hint belongs to the documented message: printed even with `-q`.
    pub fn hint_is_part_of_message(&self) -> bool {
        matches!(self, Error::ForeignHolder { .. } | Error::PortInUse { .. })
    }

    /// The one mapping from error kind to exit code (README, "Exit codes").
    pub fn exit_code(&self) -> exit::Outcome {
        match self {
            Error::RegistryUnusable { .. }
            | Error::RegistryBusy { .. }
            | Error::LockBusy { .. } => exit::Outcome::Code(exit::REGISTRY),
            Error::Interrupted(sig) => exit::Outcome::Signal(*sig),
            Error::Conflict(_)
            | Error::ForeignHolder { .. }
            | Error::PortInUse { .. }
            | Error::RangeExhausted { .. }
            | Error::Config { .. }
            | Error::Git { .. }
            | Error::Invalid { .. }
            | Error::NotFound { .. }
            | Error::Refused { .. }
            | Error::Failed { .. }
            | Error::Io { .. } => exit::Outcome::Code(exit::FAILURE),
        }
    }
}

/// What to do about the busy ports of `ports`: where no socket listens
/// on any of them, [`unlistened_hint`]'s words, since there is no process
/// to stop; where one is held by a process (or by a holder wtenv cannot
/// see), `processes`, the words for stopping it.
fn stop_hint(ports: &[(u16, &Holders)], processes: &str) -> String {
    ports
        .iter()
        .all(|(_, h)| h.unlistened())
        .then(|| unlistened_hint(ports))
        .flatten()
        .unwrap_or_else(|| processes.to_owned())
}

/// What to do about the ports of `ports` no socket listens on
/// ([`Holders::unlistened`]); `None` when there is none. On Linux the
/// lookup saw whether a connection of each is in TIME_WAIT
/// ([`Holders::time_wait`]; a socket bound without listening is not in
/// `/proc/net/tcp`): the hint says which to do, wait for it to clear or
/// stop the program that bound the port, naming the ports of each.
/// Elsewhere wtenv cannot tell, and says both.
pub fn unlistened_hint(ports: &[(u16, &Holders)]) -> Option<String> {
    let unlistened: Vec<&(u16, &Holders)> = ports.iter().filter(|(_, h)| h.unlistened()).collect();
    if unlistened.is_empty() {
        return None;
    }
    // `port 5000` and its words, or `ports 5000, 5001` and theirs.
    let named = |ports: Vec<u16>| {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let one = ports.len() == 1;
        Ports {
            ports: format!("port{} {}", if one { "" } else { "s" }, list.join(", ")),
            a_connection: if one { "a connection" } else { "connections" },
            is: if one { "is" } else { "are" },
            it: if one { "it" } else { "they" },
            them: if one { "it" } else { "them" },
            programs: if one {
                "the program that bound it"
            } else {
                "the programs that bound them"
            },
        }
    };
    let of = |waits: &dyn Fn(&Holders) -> bool| -> Vec<u16> {
        unlistened
            .iter()
            .filter(|(_, h)| waits(h))
            .map(|(p, _)| *p)
            .collect()
    };
    if !cfg!(target_os = "linux") {
        let Ports {
            ports,
            is,
            it,
            programs,
            ..
        } = named(of(&|_| true));
        return Some(format!(
            "wait a minute if {ports} {is} in TIME_WAIT; should {it} stay busy, stop {programs} without listening"
        ));
    }
    let mut what = Vec::new();
    let (waiting, bound) = (of(&|h| h.time_wait), of(&|h| !h.time_wait));
    if !waiting.is_empty() {
        let Ports {
            ports,
            a_connection,
            is,
            it,
            them,
            programs,
        } = named(waiting);
        what.push(format!(
            "{a_connection} of {ports} {is} in TIME_WAIT: wait for {them} to clear (within a minute); should {it} stay busy, stop {programs} without listening"
        ));
    }
    if !bound.is_empty() {
        let Ports {
            ports, programs, ..
        } = named(bound);
        what.push(format!(
            "no connection of {ports} is in TIME_WAIT: stop {programs} without listening"
        ));
    }
    Some(what.join("; "))
}

/// Ports named in a hint, with the words that agree with how many.
struct Ports {
    ports: String,
    a_connection: &'static str,
    is: &'static str,
    it: &'static str,
    them: &'static str,
    programs: &'static str,
}

/// What to do when wtenv ran out of descriptors (EMFILE: its own limit,
/// ENFILE: the system's): the one hint for it, whatever failed (a spawn,
/// a pipe for a service's output, an open in the state directory, a
/// probe's socket); `None` for any other error. An [`Error::Io`] without
/// a hint of its own gets it.
pub fn too_many_files_hint(e: &std::io::Error) -> Option<&'static str> {
    use nix::libc;
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)).then_some(
        "too many files are open: raise the limit (ulimit -n) or close some, then run it again",
    )
}

/// What to do about a state-directory lock held past `WTENV_LOCK_TIMEOUT`.
const WAIT_LONGER: &str = "retry, or set WTENV_LOCK_TIMEOUT to wait longer";

/// The hint for a lock held past the wait. Whoever holds an `flock` may
/// be any process (`flock(1)`, a script): said as what it `usually` is,
/// not as what it must be, naming the `lock` it holds, then what to do.
pub fn lock_busy_hint(usually: &str, lock: &str, then: &str) -> String {
    format!("another process (usually {usually}) holds {lock}; {then}")
}

#[cfg(test)]
mod tests;
