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
pub mod enter;
pub mod env;
pub mod hook;
pub mod list;
pub mod ports;
pub mod release;
pub mod remove;
pub mod run;
pub mod up;
pub mod validate;

/// Per-worktree TCP ports: allocated, proven free, exported, released.
#[derive(Debug, Parser)]
#[command(name = "wtenv", version, about, max_term_width = 100)]
pub struct Cli {
    /// Use this registry file instead of $WTENV_STATE_DIR/registry.json.
    #[arg(long, global = true, value_name = "PATH")]
    pub registry: Option<PathBuf>,
    /// Use this config file instead of the worktree's wtenv.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (-v info, -vv debug); see also WTENV_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour on stderr: auto (a terminal and no NO_COLOR), always, never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
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
    /// Allocate one service's port for this worktree; prints the port.
    Allocate(allocate::Args),
    /// Release this worktree's allocations (or one service's).
    Release(release::Args),
    /// The registry's allocations with their live state.
    Ports(ports::Args),
    /// Ports free in the registry but occupied on the system.
    Conflicts(conflicts::Args),
    /// Check the registry; --fix repairs what can be repaired.
    Validate(validate::Args),
    /// Run a command with the worktree's ports, held while it runs.
    Run(run::Args),
    /// Start the services' `run` commands under supervision.
    Up(up::Args),
    /// Shell completions.
    Completions(completions::Args),
}

impl Cli {
    /// The command line of this process.
    pub fn from_env() -> std::result::Result<Cli, clap::Error> {
        let args: Vec<OsString> = std::env::args_os().collect();
        match parse_hot(&args) {
            Some(cli) => Ok(cli),
            None => Cli::try_parse_from(args),
        }
    }
}

/// The `wtenv env` command lines the integrations run on every `cd` and
/// prompt (`env`, `--format F`, `--hook`, `--direnv`, `--hold PID`,
/// `--skip-occupied`, `-q`), parsed without clap: building clap's command
/// tree was about a tenth of `env`'s time. Anything else (another command,
/// a global flag before `env`, `--format=F`, a repeated or conflicting
/// flag, help, a bad value) is `None` and goes to clap, which parses it or
/// says what is wrong. A test holds this equal to clap wherever it answers.
fn parse_hot(args: &[OsString]) -> Option<Cli> {
    let mut words = args.get(1..)?.iter().map(|a| a.to_str());
    if words.next()?? != "env" {
        return None;
    }
    let mut env = env::Args {
        format: crate::shell::Format::Bash,
        hold: None,
        skip_occupied: false,
        hook: false,
        direnv: false,
    };
    let (mut format, mut quiet) = (false, false);
    while let Some(word) = words.next() {
        let seen = match word? {
            "--format" => {
                let value = words.next()??;
                env.format = clap::ValueEnum::from_str(value, false).ok()?;
                std::mem::replace(&mut format, true)
            }
            "--hold" => env.hold.replace(words.next()??.parse().ok()?).is_some(),
            "--hook" => std::mem::replace(&mut env.hook, true),
            "--direnv" => std::mem::replace(&mut env.direnv, true),
            "--skip-occupied" => std::mem::replace(&mut env.skip_occupied, true),
            "-q" | "--quiet" => std::mem::replace(&mut quiet, true),
            _ => return None,
        };
        if seen {
            return None;
        }
    }
    if env.hook && (env.hold.is_some() || env.direnv) {
        return None;
    }
    Some(Cli {
        registry: None,
        config: None,
        verbose: 0,
        quiet,
        color: clap::ColorChoice::Auto,
        command: Command::Env(env),
    })
}

pub fn dispatch(command: Command, ctx: &Ctx) -> Result<Outcome> {
    match command {
        Command::Create(args) => create::run(args, ctx),
        Command::Enter(args) => enter::run(args, ctx),
        Command::Remove(args) => remove::run(args, ctx),
        Command::List(args) => list::run(args, ctx),
        Command::Env(args) => env::run(args, ctx),
        Command::Hook(args) => hook::run(args, ctx),
        Command::Allocate(args) => allocate::run(args, ctx),
        Command::Release(args) => release::run(args, ctx),
        Command::Ports(args) => ports::run(args, ctx),
        Command::Conflicts(args) => conflicts::run(args, ctx),
        Command::Validate(args) => validate::run(args, ctx),
        Command::Run(args) => run::run(args, ctx),
        Command::Up(args) => up::run(args, ctx),
        Command::Completions(args) => completions::run(args, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("wtenv")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// Every arrangement of the words the hot path knows (and some it must
    /// refuse): where it answers, clap answers the same.
    #[test]
    fn the_hot_path_parses_as_clap_does() {
        let pieces: &[&[&str]] = &[
            &["--format", "bash"],
            &["--format", "fish"],
            &["--format", "json"],
            &["--format", "powershell"],
            &["--format"],
            &["--format=zsh"],
            &["--hook"],
            &["--direnv"],
            &["--hold", "42"],
            &["--hold", "-1"],
            &["--hold", "x"],
            &["--skip-occupied"],
            &["-q"],
            &["--quiet"],
            &["-v"],
            &["--registry", "/r"],
            &["--help"],
        ];
        let mut answered = 0;
        let n = pieces.len();
        for a in 0..n {
            for b in 0..n {
                for c in 0..n {
                    let mut words = vec!["env"];
                    for i in [a, b, c] {
                        words.extend_from_slice(pieces[i]);
                    }
                    let args = argv(&words);
                    if let Some(hot) = parse_hot(&args) {
                        answered += 1;
                        let clap = Cli::try_parse_from(&args)
                            .unwrap_or_else(|e| panic!("{words:?}: clap refuses: {e}"));
                        assert_eq!(format!("{hot:?}"), format!("{clap:?}"), "{words:?}");
                    }
                }
            }
        }
        assert!(answered > 100, "{answered}");
    }

    /// The command lines of shell-hooks/ take the hot path.
    #[test]
    fn the_integrations_take_the_hot_path() {
        for words in [
            &["env"][..],
            &["env", "--format", "bash", "--hook"],
            &["env", "--format", "zsh", "--hook"],
            &["env", "--format", "fish", "--hook"],
            &["env", "--format", "bash", "--direnv"],
            &["env", "--format", "bash", "--hold", "4242"],
        ] {
            assert!(parse_hot(&argv(words)).is_some(), "{words:?}");
        }
        assert!(parse_hot(&argv(&["-q", "env"])).is_none());
        assert!(parse_hot(&argv(&["ports"])).is_none());
    }
}
