//! `wtenv __listen-exec -- CMD ARGS...` (hidden): the first step of a
//! socket hand-off, run by wtenv itself as the child of `run --sockets` or
//! `up`. It puts the sockets wtenv passed at fd 3 onwards, sets
//! `LISTEN_PID` to its own pid and execs CMD (see `crate::sockets`).

use std::ffi::OsString;

use crate::error::Result;
use crate::exit::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

pub fn run(args: Args) -> Result<Outcome> {
    Ok(crate::sockets::exec(&args.command))
}
