//! `wtenv completions SHELL`: clap's completion script on stdout.

use clap::CommandFactory;

use crate::commands::Cli;
use crate::error::Result;
use crate::exit::Outcome;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<Outcome> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "wtenv", &mut buf);
    output::stdout(&String::from_utf8_lossy(&buf))?;
    Ok(Outcome::SUCCESS)
}
