//! `wtenv reload`: a command of the shell integration's `wtenv` function
//! (`wtenv hook bash|zsh|fish`), which loads the worktree's variables
//! into the shell it runs in. The binary cannot change its shell's
//! variables, so reaching it means the function is not defined: it says
//! how to define it, or what to run instead.

use crate::error::{Error, Result};
use crate::exit::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<Outcome> {
    Err(Error::invalid(
        "'wtenv reload' loads the worktree's variables into this shell, which only the shell integration's wtenv function can do, and it is not defined here",
    )
    .with_hint(
        "define it: eval \"$(wtenv hook bash)\" (zsh: wtenv hook zsh; fish: wtenv hook fish | source), in your shell's rc file; or load them once: eval \"$(wtenv env)\" (fish: wtenv env --format fish | source)",
    ))
}
