//! The command line: global flags, one file per verb, one `match`.

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
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
