//! The command line: global flags, one file per verb, one `match`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;

pub mod allocate;
pub mod completions;
pub mod conflicts;
pub mod create;
pub mod down;
pub mod enter;
pub mod env;
pub mod export;
pub mod hook;
pub mod list;
pub mod listen_exec;
pub mod logs;
pub mod ports;
pub mod release;
pub mod reload;
pub mod remove;
pub mod run;
pub mod status;
pub mod trust;
pub mod untrust;
pub mod up;
pub mod validate;
pub mod watch;

/// The heading the global options are shown under in every `--help`,
/// after a command's own.
const GLOBAL: &str = "Global options";

/// Per-worktree TCP ports: allocated, proven free, exported, released.
#[derive(Debug, Parser)]
#[command(name = "wtenv", version, about, max_term_width = 100)]
pub struct Cli {
    /// Use this registry file instead of $WTENV_STATE_DIR/registry.json.
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub registry: Option<PathBuf>,
    /// Use this config file instead of the worktree's wtenv.toml or wtenv.json.
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (-v info, -vv debug); see also WTENV_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Colour on stderr: auto (a terminal, no NO_COLOR, a TERM that is not dumb), always, never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", help_heading = GLOBAL)]
    pub color: clap::ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a worktree on a new branch (with --ports, its ports); all or nothing.
    Create(create::Args),
    /// Create-or-enter a worktree: prints its path (the shell function cds there).
    Enter(enter::Args),
    /// Remove a worktree and release its ports.
    Remove(remove::Args),
    /// The repository's worktrees, their ports and live state.
    List(list::Args),
    /// Print the worktree's variables, allocating missing ports (sticky).
    Env(env::Args),
    /// Print the shell integration: bash, zsh, fish, direnv or nix.
    Hook(hook::Args),
    /// Load this worktree's variables into the shell again (a command of the shell integration's function).
    Reload(reload::Args),
    /// Allocate one service's port for this worktree; prints the port.
    Allocate(allocate::Args),
    /// Release this worktree's allocations (or one service's); none while a
    /// live process holds one.
    Release(release::Args),
    /// The registry's allocations with their live state.
    Ports(ports::Args),
    /// Ports taken outside the registry: free in it but occupied, or reserved but held by another process.
    Conflicts(conflicts::Args),
    /// Check the registry; --fix repairs what can be repaired.
    Validate(validate::Args),
    /// Run a command with the worktree's ports, held while it runs.
    Run(run::Args),
    /// Start the services' `run` commands under supervision (-d: in the background).
    Up(up::Args),
    /// Stop the services running in the background.
    Down(down::Args),
    /// The output of the services running in the background.
    Logs(logs::Args),
    /// The services running in the background: manager, unit, state, pid, port.
    Status(status::Args),
    /// Unit files (systemd) or plists (launchd) for the services, ports reserved.
    Export(export::Args),
    /// Let this repository's config, as it is now, set its [env] variables.
    // `[env]` is the config's table, in clap's help: not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    Trust(trust::Args),
    /// Stop trusting this repository's config: its [env] no longer applies.
    #[allow(rustdoc::broken_intra_doc_links)]
    Untrust(untrust::Args),
    /// Shell completions.
    Completions(completions::Args),
    /// Internal: place the sockets wtenv passed at fd 3.. and exec CMD.
    #[command(name = "__listen-exec", hide = true)]
    ListenExec(listen_exec::Args),
    /// Internal: wait for an `env --hold` holder to end, then release its holds.
    #[command(name = "__watch", hide = true)]
    Watch(watch::Args),
}

impl Command {
    /// `--json`, for the commands that have it: their answer is a JSON
    /// document, and the reporter drops the talk that repeats it.
    pub fn json(&self) -> bool {
        match self {
            Command::Create(a) => a.json,
            Command::List(a) => a.json,
            Command::Ports(a) => a.json,
            Command::Conflicts(a) => a.json,
            Command::Validate(a) => a.json,
            Command::Status(a) => a.json,
            _ => false,
        }
    }
}

impl Cli {
    /// The command line of this process.
    pub fn from_env() -> std::result::Result<Cli, clap::Error> {
        let args: Vec<OsString> = std::env::args_os().collect();
        match parse_hot(&args) {
            Some(cli) => Ok(cli),
            None => Cli::try_parse_colored(args),
        }
    }

    /// Clap's parse, its own output (help, usage errors, `--version`)
    /// coloured as `--color` asks: clap reads the flag only once it has
    /// parsed, too late for the messages it writes while parsing, so the
    /// choice is taken from the words first ([`color_in`]).
    fn try_parse_colored(args: Vec<OsString>) -> std::result::Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command().color(color_in(&args));
        let mut matches = command.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
    }
}

/// The colour `--color WHEN` or `--color=WHEN` asks for among `args`
/// (the last one given, before any `--`), for clap's own output; `auto`,
/// clap's own choice, when there is none or its value is not one clap
/// takes (clap then says so).
fn color_in(args: &[OsString]) -> clap::ColorChoice {
    let mut choice = clap::ColorChoice::Auto;
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        let value = match word {
            Some("--") => break,
            Some("--color") => words.next().flatten(),
            Some(word) => word.strip_prefix("--color="),
            None => None,
        };
        match value {
            Some("always") => choice = clap::ColorChoice::Always,
            Some("never") => choice = clap::ColorChoice::Never,
            Some("auto") => choice = clap::ColorChoice::Auto,
            _ => {}
        }
    }
    choice
}

/// The command lines run most, parsed without clap: `env` as the
/// integrations run it on every `cd` and prompt (`--format F`, `--hook`,
/// `--direnv`, `--hold PID`, `--skip-occupied`), `create` and `remove`
/// with their flags, and `run [--grace D] [--sockets] [--service S]...
/// [--skip-occupied] -- CMD...` (around every dev server start), each with `-q` (before or
/// after the command). Clap's parser was a tenth of `env`'s time, a tenth
/// of what `create` + `remove` add to git's and a third of the
/// instructions `run -- true` executes. Anything else (another command, another global
/// flag, `--flag=value`, a repeated or conflicting flag, a value that looks
/// like a flag, help, a bad value, a word that is not UTF-8) is `None` and
/// goes to clap, which parses it or says what is wrong. A test holds this
/// equal to clap wherever it answers.
fn parse_hot(args: &[OsString]) -> Option<Cli> {
    let mut words = Words(args.get(1..)?.iter());
    let mut quiet = false;
    let mut first = words.next()??;
    if matches!(first, "-q" | "--quiet") {
        quiet = true;
        first = words.next()??;
    }
    let command = match first {
        "env" => {
            let mut env = env::Args {
                format: crate::shell::Format::Bash,
                hold: None,
                skip_occupied: false,
                hook: false,
                direnv: false,
            };
            let mut format = None;
            words.each(&mut quiet, |word, words| match word {
                "--format" => set(
                    &mut format,
                    clap::ValueEnum::from_str(words.value()?, false).ok()?,
                ),
                "--hold" => set(&mut env.hold, words.value()?.parse().ok()?),
                "--hook" => flag(&mut env.hook),
                "--direnv" => flag(&mut env.direnv),
                "--skip-occupied" => flag(&mut env.skip_occupied),
                _ => None,
            })?;
            if env.hook && (env.hold.is_some() || env.direnv) {
                return None;
            }
            env.format = format.unwrap_or(env.format);
            Command::Env(env)
        }
        "create" => {
            let (mut purpose, mut identifier) = (None, None);
            let mut create = create::Args {
                purpose: String::new(),
                identifier: String::new(),
                branch: None,
                ports: false,
                skip_occupied: false,
                path: None,
                json: false,
            };
            words.each(&mut quiet, |word, words| match word {
                "--purpose" => set(&mut purpose, words.value()?),
                "--identifier" => set(&mut identifier, words.value()?),
                "--branch" => set(&mut create.branch, words.value()?.to_owned()),
                // Clap's path parser refuses an empty one.
                "--path" => set(
                    &mut create.path,
                    words.value().filter(|v| !v.is_empty())?.into(),
                ),
                "--ports" => flag(&mut create.ports),
                "--skip-occupied" => flag(&mut create.skip_occupied),
                "--json" => flag(&mut create.json),
                _ => None,
            })?;
            if create.skip_occupied && !create.ports {
                return None;
            }
            create.purpose = purpose?.to_owned();
            create.identifier = identifier?.to_owned();
            Command::Create(create)
        }
        "remove" => {
            let mut target = None;
            let (mut force, mut delete_branch) = (false, false);
            words.each(&mut quiet, |word, _| match word {
                "--force" => flag(&mut force),
                "--delete-branch" => flag(&mut delete_branch),
                w if w.starts_with('-') => None,
                w => set(&mut target, w.to_owned()),
            })?;
            Command::Remove(remove::Args {
                target: target?,
                force,
                delete_branch,
            })
        }
        "run" => {
            let mut run = run::Args {
                grace: crate::supervise::DEFAULT_GRACE,
                sockets: false,
                services: Vec::new(),
                skip_occupied: false,
                unit: None,
                log: None,
                log_limit: crate::background::logfile::DEFAULT_LIMIT,
                setsid: false,
                await_start: false,
                command: Vec::new(),
            };
            let mut grace = None;
            words.each(&mut quiet, |word, words| match word {
                "--grace" => set(&mut grace, crate::duration::parse(words.value()?)?),
                "--sockets" => flag(&mut run.sockets),
                "--skip-occupied" => flag(&mut run.skip_occupied),
                "--service" => {
                    run.services.push(words.value()?.to_owned());
                    Some(())
                }
                // Everything after `--` is the command, as it is.
                "--" => {
                    run.command = words.0.by_ref().cloned().collect();
                    Some(())
                }
                _ => None,
            })?;
            if run.command.is_empty() {
                return None;
            }
            run.grace = grace.unwrap_or(run.grace);
            Command::Run(run)
        }
        _ => return None,
    };
    Some(Cli {
        registry: None,
        config: None,
        verbose: 0,
        quiet,
        color: clap::ColorChoice::Auto,
        command,
    })
}

/// The words of a command line, for [`parse_hot`].
struct Words<'a>(std::slice::Iter<'a, OsString>);

impl<'a> Words<'a> {
    /// The next word: `Some(None)` for one that is not UTF-8.
    fn next(&mut self) -> Option<Option<&'a str>> {
        self.0.next().map(|w| w.to_str())
    }

    /// An option's value; one that looks like a flag is clap's to refuse.
    fn value(&mut self) -> Option<&'a str> {
        self.next()?.filter(|v| !v.starts_with('-'))
    }

    /// Walks the rest of the words: `-q`/`--quiet` (global) sets `quiet`;
    /// every other word goes to `take`, with the words for its value.
    /// `None` as soon as a word is refused: clap's turn.
    fn each(
        &mut self,
        quiet: &mut bool,
        mut take: impl FnMut(&'a str, &mut Self) -> Option<()>,
    ) -> Option<()> {
        while let Some(word) = self.next() {
            match word? {
                "-q" | "--quiet" => flag(quiet)?,
                word => take(word, self)?,
            }
        }
        Some(())
    }
}

/// Sets a flag; `None` when it was already set (clap refuses a repeat).
fn flag(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// Sets an option's value; `None` when it was already set.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

/// Runs a command. The context is built only for the commands that use
/// it: `hook` and `completions` print text and touch no state, so they
/// work where no registry can be found (no HOME, e.g. a build sandbox).
/// `env` builds it itself: under the prompt hook, a context that cannot
/// be built is a failure like any other (see `env`).
pub fn dispatch(command: Command, ctx: impl FnOnce() -> Result<Ctx>) -> Result<Outcome> {
    match command {
        Command::Hook(args) => hook::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Reload(args) => reload::run(args),
        Command::Create(args) => create::run(args, &ctx()?),
        Command::Enter(args) => enter::run(args, &ctx()?),
        Command::Remove(args) => remove::run(args, &ctx()?),
        Command::List(args) => list::run(args, &ctx()?),
        Command::Env(args) => env::run(args, ctx),
        Command::Allocate(args) => allocate::run(args, &ctx()?),
        Command::Release(args) => release::run(args, &ctx()?),
        Command::Ports(args) => ports::run(args, &ctx()?),
        Command::Conflicts(args) => conflicts::run(args, &ctx()?),
        Command::Validate(args) => validate::run(args, &ctx()?),
        Command::Run(args) => run::run(args, &ctx()?),
        Command::Up(args) => up::run(args, &ctx()?),
        Command::Down(args) => down::run(args, &ctx()?),
        Command::Logs(args) => logs::run(args, &ctx()?),
        Command::Status(args) => status::run(args, &ctx()?),
        Command::Export(args) => export::run(args, &ctx()?),
        Command::Trust(args) => trust::run(args, &ctx()?),
        Command::Untrust(args) => untrust::run(args, &ctx()?),
        Command::ListenExec(args) => listen_exec::run(args),
        Command::Watch(args) => watch::run(args, &ctx()?),
    }
}

#[cfg(test)]
mod tests;
