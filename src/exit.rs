//! The one exit-code table of wtenv (README, "Exit codes").
//!
//! Every command returns an [`Outcome`]; only `main` turns it into a process
//! exit, after every `Drop` (port release lives there) has run.

/// Success.
pub const SUCCESS: u8 = 0;
/// Failure: port conflict, bad input, git error; `validate`: errors remain.
pub const FAILURE: u8 = 1;
/// The registry, or a file wtenv keeps beside it (the trust list), cannot
/// be used (corrupt, locked past the wait, unsafe permissions);
/// `validate`: critical errors that need a person.
pub const REGISTRY: u8 = 2;
/// `run`: the command was found but could not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// `run`: the command was not found.
pub const NOT_FOUND: u8 = 127;
/// Base of "killed by signal N" (128 + N), used when re-raising is impossible.
pub const SIGNAL_BASE: u8 = 128;
/// A panic: a bug of wtenv's (the code Rust's runtime gives one).
pub const PANIC: u8 = 101;

/// How the process should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit with this code.
    Code(u8),
    /// Die of this signal (re-raised with the default action, so the parent
    /// shell sees a signal death, e.g. 130 for SIGINT).
    Signal(i32),
}

impl Outcome {
    pub const SUCCESS: Outcome = Outcome::Code(SUCCESS);

    /// Ends the process as described. Call only from `main`, after cleanup.
    /// `process::exit` flushes stdout first, as a return from `main` does.
    pub fn exit(self) -> ! {
        let code = match self {
            Outcome::Code(c) => c,
            Outcome::Signal(sig) => {
                reraise(sig);
                // Still alive (signal blocked or ignored by our parent's
                // disposition): report it the shell's way.
                SIGNAL_BASE.saturating_add(sig as u8)
            }
        };
        #[allow(clippy::disallowed_methods)] // The one exit: every `Drop` has run.
        std::process::exit(i32::from(code))
    }
}

#[cfg(unix)]
fn reraise(sig: i32) {
    // Restores SIG_DFL (our signal handler replaced it), unblocks and raises:
    // the process dies of `sig`, as the parent shell expects.
    let _ = signal_hook::low_level::emulate_default_handler(sig);
}
