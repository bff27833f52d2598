//! What wtenv says while it waits for its children to stop (README
//! "Supervision"): once, a second after the first signal it received,
//! that it waits up to the grace and that a second Ctrl-C kills now (on a
//! terminal only, and not under `-q`: a log or a script has no one to
//! press it); and whenever it SIGKILLs processes of the command unasked,
//! what it killed (always: a process killed unasked leaves a trace), how
//! many and the first: when the grace after a signal it received ends,
//! and in a sweep ([`Kills`]).

use std::time::{Duration, Instant};

use crate::process::{self, ProcessId};
use crate::{alloc, report};

/// How long after the first signal the children may take to stop before
/// wtenv says it waits.
const AFTER: Duration = Duration::from_secs(1);

/// The waiting line, due once.
#[derive(Debug, Default)]
pub(super) struct Notice {
    at: Option<Instant>,
}

impl Notice {
    /// The first signal wtenv received came at `now`: the waiting line is
    /// due [`AFTER`] it, when stderr is a terminal and `-q` was not given.
    pub fn first_signal(&mut self, now: Instant) {
        use std::io::IsTerminal;
        if !report::quiet() && std::io::stderr().is_terminal() {
            self.at = Some(now + AFTER);
        }
    }

    /// When the waiting line is due, if it still is.
    pub fn deadline(&self) -> Option<Instant> {
        self.at
    }

    /// Whether the waiting line is due at `now`: `true` once.
    pub fn due(&mut self, now: Instant) -> bool {
        let due = self.at.is_some_and(|at| now >= at);
        if due {
            self.at = None;
        }
        due
    }
}

/// `wtenv: waiting up to 10s for npm to stop; Ctrl-C again to kill it
/// now`: `names` are what still runs (a command, `service web`). While
/// the command has the terminal (`lent`), a Ctrl-C there reaches its
/// group, not wtenv, and the signal that started the wait came from
/// elsewhere: the line says to send wtenv the Ctrl-C itself instead
/// (`kill -INT 4242 to kill it now`: a second SIGINT kills at once).
pub(super) fn waiting(names: &[String], grace: Duration, lent: bool) {
    let them = if names.len() == 1 { "it" } else { "them" };
    let again = if lent {
        format!("kill -INT {}", std::process::id())
    } else {
        "Ctrl-C again".to_owned()
    };
    report::status(&format!(
        "waiting up to {} for {} to stop; {again} to kill {them} now",
        crate::duration::said(grace),
        who(names)
    ));
}

/// Why a sweep SIGKILLs processes of the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// They did not stop within the grace after their SIGTERM.
    Grace(Duration),
    /// Asked to end, they were stopped again by a signal instead (vim,
    /// by SIGTTOU).
    StoppedAgain,
}

/// The SIGKILLs one sweep said (a group's leftovers, with its restart's
/// stop, or the tree's strays once every leader exited): each process it
/// kills is named once, in the line of the SIGKILL that first reached it.
#[derive(Debug, Default)]
pub(super) struct Kills {
    named: Vec<u32>,
}

impl Kills {
    /// Says, right before they get SIGKILL, that the live ones of `pids`
    /// this sweep has not named yet are killed: `wtenv: npm did not stop
    /// within 10s: killed 2 processes, pid 4243 (python3 server.py) and 1
    /// more`, kept by `-q`. Nothing is said when none is left to name (a
    /// zombie: it is dead already). Returns the line said, as a log keeps
    /// it ([`report::status_text`]), for a caller that writes it
    /// somewhere else too.
    pub fn say(&mut self, names: &[String], why: Why, pids: &[u32]) -> Option<String> {
        let new: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| !self.named.contains(p) && ProcessId::of(*p).is_some())
            .collect();
        if new.is_empty() {
            return None;
        }
        self.named.extend(&new);
        let first = alloc::describe_pids(&new[..1]);
        let line = kill_line(names, why, new.len(), &first);
        report::status_kept(&line);
        Some(report::status_text(&line))
    }
}

/// `npm did not stop within 10s: killed 2 processes, pid 4243 (python3
/// server.py) and 1 more`: `n` processes killed, the first named
/// `first`. Every kill line, in one place.
fn kill_line(names: &[String], why: Why, n: usize, first: &str) -> String {
    let why = match why {
        // Rounded: a grace may be computed (`down`'s SIGKILL of an
        // orphan after half of what is left of its timeout).
        Why::Grace(grace) => format!("did not stop within {}", crate::duration::said(grace)),
        Why::StoppedAgain => "was stopped again instead of ending".to_owned(),
    };
    let s = if n == 1 { "" } else { "es" };
    let mut line = format!("{} {why}: killed {n} process{s}, {first}", who(names));
    if n > 1 {
        line.push_str(&format!(" and {} more", n - 1));
    }
    line
}

/// `npm`, `service web`, `services web, api`: the names the supervisor
/// was given, each escaped, services named together.
fn who(names: &[String]) -> String {
    let services: Option<Vec<&str>> = names.iter().map(|n| n.strip_prefix("service ")).collect();
    match services {
        Some(services) if services.len() > 1 => {
            format!("services {}", process::printable(&services.join(", ")))
        }
        _ => process::printable(&names.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_is_said_as_it_is_services_are_named_together() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(who(&names(&["npm"])), "npm");
        assert_eq!(who(&names(&["service web"])), "service web");
        assert_eq!(
            who(&names(&["service web", "service api"])),
            "services web, api"
        );
        assert_eq!(who(&names(&["sh\u{1b}[2J"])), "sh\\u{1b}[2J");
    }

    #[test]
    fn a_kill_line_names_how_many_were_killed_and_the_first() {
        let npm = ["npm".to_owned()];
        let grace = Why::Grace(Duration::from_secs(10));
        assert_eq!(
            kill_line(&npm, grace, 1, "pid 7 (sleep 600)"),
            "npm did not stop within 10s: killed 1 process, pid 7 (sleep 600)"
        );
        let computed = Why::Grace(Duration::from_nanos(1_125_188_982));
        assert_eq!(
            kill_line(&npm, computed, 1, "pid 7 (sleep 600)"),
            "npm did not stop within 1s 100ms: killed 1 process, pid 7 (sleep 600)"
        );
        assert_eq!(
            kill_line(&npm, Why::StoppedAgain, 3, "pid 7 (vim)"),
            "npm was stopped again instead of ending: killed 3 processes, pid 7 (vim) and 2 more"
        );
    }

    #[test]
    fn the_waiting_line_is_due_once() {
        let mut n = Notice::default();
        let t0 = Instant::now();
        assert!(!n.due(t0 + AFTER), "no signal, nothing due");
        n.at = Some(t0 + AFTER);
        assert_eq!(n.deadline(), Some(t0 + AFTER));
        assert!(!n.due(t0));
        assert!(n.due(t0 + AFTER));
        assert!(!n.due(t0 + AFTER * 2));
        assert_eq!(n.deadline(), None);
    }
}
