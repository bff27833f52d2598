use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let outcome = match wtenv::Cli::try_parse() {
        Ok(cli) => wtenv::run(cli),
        Err(err) => wtenv::usage_error(err),
    };
    outcome.exit()
}
