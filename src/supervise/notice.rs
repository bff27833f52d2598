//! What wtenv says while it waits for its children to stop (README
//! "Supervision"): once, a second after the first signal it received,
//! that it waits up to the grace and that a second Ctrl-C kills now (on a
//! terminal only, and not under `-q`: a log or a script has no one to
//! press it); and when the grace ends in SIGKILL, what it killed (always:
//! a process killed unasked leaves a trace).

use std::time::{Duration, Instant};

use crate::process;
use crate::report;

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
/// now`: `names` are what still runs (a command, `service web`).
pub(super) fn waiting(names: &[String], grace: Duration) {
    let them = if names.len() == 1 { "it" } else { "them" };
    report::status(&format!(
        "waiting up to {} for {} to stop; Ctrl-C again to kill {them} now",
        humantime::format_duration(grace),
        who(names)
    ));
}

/// `wtenv: npm did not stop within 10s: killed`, kept by `-q`.
pub(super) fn killed(names: &[String], grace: Duration) {
    report::status_kept(&format!(
        "{} did not stop within {}: killed",
        who(names),
        humantime::format_duration(grace)
    ));
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
