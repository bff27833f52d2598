//! wtenv: every git worktree gets its own TCP ports, proven free, exported
//! to the shell that enters it, held while its services run and released
//! when they stop.
//!
//! Data flows one way: command → config → registry (locked) → decide →
//! write → render. Map of concepts:
//! - [`config`]: `wtenv.toml` / `wtenv.json`
//! - [`registry`]: the locked, atomically written record of allocations
//! - [`probe`]: is a port free on the system, and who holds it
//! - [`process`]: process identity (pid + start time), ancestry
//! - [`alloc`]: the allocation rules (sticky, lowest free, fail fast, sweep)
//! - [`ports`]: a worktree's ports as one service (ensure, reserve, hold,
//!   release) shared by the commands that need them
//! - [`worktree`]: which worktree we are in, without running git
//! - [`worktrees`]: the repository's worktrees and the lookup by identifier
//! - [`git`]: the one module that runs git (create, enter, remove, list)
//! - [`create`]: making a worktree, all or nothing (`create`, `enter`)
//! - [`exports`] and [`shell`]: the variables, and their quoting per shell
//! - [`direnv`]: direnv's watch list, extended without a `direnv watch` process
//! - [`sockets`]: listening sockets bound by wtenv and handed to services
//!   (systemd's socket-activation protocol)
//! - [`supervise`]: children in their own process group, signals forwarded,
//!   escalated and swept (`run`, `up`)
//! - [`health`]: `up`'s health checks, start order and restart decisions
//! - [`background`]: services as units of a service manager (systemd,
//!   launchd, or a detached wtenv): `up --detach`, `down`, `logs`, `status`
//! - [`validate`]: the registry check, findings as data
//! - [`versions`]: a file of wtenv's this one cannot read (a newer
//!   wtenv's): refused, never clobbered
//! - [`trust`]: whether a config's `[env]` applies (`wtenv trust`)
//! - [`files`]: opening files someone else may have planted (state
//!   directory, config, directive file): no link followed into a write, no
//!   blocking open, no unbounded read
//! - [`report`]: every message to the user (errors, hints, warnings,
//!   notes, status lines), honouring `-q` and `--json`
//! - [`settings`]: every environment variable wtenv reads, each read once
//! - [`hash`]: the stable hash unit names, lock files and the stamp's mark
//!   are derived from paths with
//! - [`duration`]: durations as the user types them (`--grace`,
//!   `WTENV_LOCK_TIMEOUT`)
//! - [`context`](mod@context), [`error`], [`exit`], [`output`]: what every command shares
//! - [`commands`]: one file per verb; verbs never import each other
//!
//! The whole map, the data flow of `env` and `run`, and the invariants with
//! their reasons: `docs/ARCHITECTURE.md`.

// The binary's entry may not be able to do without (src/main.rs); the
// logic can.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod background;
pub mod commands;
pub mod config;
pub mod context;
pub mod create;
pub mod direnv;
pub mod duration;
pub mod error;
pub mod exit;
pub mod exports;
pub mod files;
pub mod git;
pub mod hash;
pub mod health;
pub mod output;
pub mod ports;
pub mod probe;
pub mod process;
pub mod registry;
pub mod report;
pub mod settings;
pub mod shell;
pub mod sockets;
pub mod supervise;
pub mod trust;
pub mod validate;
pub mod versions;
pub mod worktree;
pub mod worktrees;

use std::io::IsTerminal;

pub use commands::Cli;
use error::Error;
use exit::Outcome;

/// The program: parses the command line, runs the command and ends the
/// process with its outcome, once every `Drop` has run (port release lives
/// there). A panic ends it with 101, as under Rust's own start-up.
pub fn main() -> ! {
    let outcome = std::panic::catch_unwind(|| match Cli::from_env() {
        Ok(cli) => run(cli),
        Err(err) => usage_error(err),
    });
    outcome.unwrap_or(Outcome::Code(exit::PANIC)).exit()
}

/// Runs a parsed command line; errors are printed here, once.
pub fn run(cli: Cli) -> Outcome {
    report::init(cli.quiet, cli.command.json());
    if let Err(err) = init_tracing(
        cli.verbose,
        cli.quiet,
        color_enabled(cli.color, std::io::stderr().is_terminal()),
    ) {
        report::error(&err);
        return err.exit_code();
    }
    let Cli {
        registry,
        config,
        verbose,
        color,
        command,
        ..
    } = cli;
    match commands::dispatch(command, || context(registry, config, color, verbose)) {
        Ok(outcome) => outcome,
        Err(err) => {
            report::error(&err);
            err.exit_code()
        }
    }
}

/// A command line clap refused: usage errors exit 1 (bad input),
/// `--help` and `--version` exit 0 once printed (1 when stdout could not
/// take them, as for any other output).
pub fn usage_error(err: clap::Error) -> Outcome {
    let printed = err.print();
    if err.use_stderr() {
        return Outcome::Code(exit::FAILURE);
    }
    match output::written(printed) {
        Ok(()) => Outcome::SUCCESS,
        Err(err) => {
            report::error(&err);
            err.exit_code()
        }
    }
}

/// The context of the commands that use the registry or the worktree.
fn context(
    registry: Option<std::path::PathBuf>,
    config_path: Option<std::path::PathBuf>,
    color: clap::ColorChoice,
    verbose: u8,
) -> error::Result<context::Ctx> {
    let relative = registry.as_ref().is_some_and(|p| p.is_relative());
    let (registry_path, base) = match registry {
        Some(p) => (registry::Registry::given_path(p)?, None),
        None => registry::Registry::default_path()?,
    };
    // getcwd fails with ENOENT once the directory is deleted under the
    // shell (`git worktree remove` from another terminal): said by the
    // commands that need it (`Ctx::cwd`), not by those that do not.
    let ctx = context::Ctx {
        registry: registry::Registry::from_env(registry_path)?.made_below(base),
        config_path,
        current_dir: std::env::current_dir(),
        color: color_enabled(color, std::io::stderr().is_terminal()),
        color_choice: color,
        verbose,
        warned: Default::default(),
    };
    // A relative `--registry` is relative to the current directory: every
    // command needs it then, and says so as each command that needs it
    // does (it said "could not open lock file ./registry.lock").
    if relative {
        ctx.cwd()?;
    }
    Ok(ctx)
}

/// Colour on one stream: `--color`, else the stream is a terminal that
/// shows colour (`TERM` set, not `dumb`) and no `NO_COLOR`. Decided per
/// stream: `wtenv up > log` on a terminal writes no escape codes into the
/// file, yet its messages on stderr keep theirs.
pub(crate) fn color_enabled(choice: clap::ColorChoice, terminal: bool) -> bool {
    match choice {
        clap::ColorChoice::Always => true,
        clap::ColorChoice::Never => false,
        clap::ColorChoice::Auto => {
            terminal && !settings::no_color() && settings::term_shows_color()
        }
    }
}

/// Diagnostics on stderr, filtered by `WTENV_LOG` (else by -v/-q), coloured
/// only when stderr is (see [`color_enabled`]): escape codes in a pipe or a
/// log file (direnv's output) are noise.
fn init_tracing(verbose: u8, quiet: bool, color: bool) -> error::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, _) => tracing::Level::DEBUG,
    };
    let printer = move || {
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(color)
                .without_time()
                .with_target(false),
        )
    };
    // `WTENV_LOG` is an EnvFilter; without it, wtenv's own events at
    // `level`, printed by a subscriber made at the first one.
    // (Set once per process: a second call, in tests, keeps the first.)
    match log_filter()? {
        Some(filter) => drop(printer().with(filter).try_init()),
        None => drop(tracing::subscriber::set_global_default(Deferred {
            level,
            make: Box::new(move || tracing::Dispatch::new(printer())),
            made: std::sync::OnceLock::new(),
        })),
    }
    Ok(())
}

/// The subscriber of a run without `WTENV_LOG`: it filters by target and
/// level itself, and makes the one that prints (tracing-subscriber's span
/// registry and formatter) only for the first event it lets through. Most
/// runs print none (every `env` of every `cd`), and making it took about
/// a tenth of `env`'s page faults. wtenv makes no spans: a span is given
/// a placeholder id and dropped.
struct Deferred {
    level: tracing::Level,
    make: Box<dyn Fn() -> tracing::Dispatch + Send + Sync>,
    made: std::sync::OnceLock<tracing::Dispatch>,
}

impl tracing::Subscriber for Deferred {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.enabled(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.level.into())
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        let target = meta.target();
        *meta.level() <= self.level && (target == "wtenv" || target.starts_with("wtenv::"))
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        self.made.get_or_init(&self.make).event(event);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// `WTENV_LOG`, when set: an error naming it when it does not parse, or
/// when a bare word in it is not a level (`WTENV_LOG=verbose` would
/// otherwise silently filter for a target named "verbose").
fn log_filter() -> error::Result<Option<tracing_subscriber::EnvFilter>> {
    const VAR: &str = settings::LOG;
    let value = match settings::log().map(|v| v.to_str().ok_or(v)) {
        None => return Ok(None),
        Some(Ok(v)) => v,
        Some(Err(v)) => {
            return Err(Error::invalid(format!("{VAR}={v:?} is not valid UTF-8"))
                .with_hint("set it to a level (debug, info) or directives (wtenv=debug)"));
        }
    };
    let bad = |why: String| {
        Error::invalid(format!("{VAR}={value:?} is not a log filter: {why}")).with_hint(
            "set it to a level (error, warn, info, debug, trace, off) or directives (wtenv=debug)",
        )
    };
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if !word.contains(['=', '[', ':'])
            && word != "wtenv"
            && word
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            return Err(bad(format!("{word:?} is not a level")));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}
