use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = match wtenv::Cli::from_env() {
        Ok(cli) => wtenv::run(cli),
        Err(err) => wtenv::usage_error(err),
    };
    outcome.exit()
}
