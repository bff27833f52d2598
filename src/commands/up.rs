//! `wtenv up`: placeholder
use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
#[derive(Debug, clap::Args)]
pub struct Args {
    pub services: Vec<String>,
}
pub fn run(_args: Args, _ctx: &Ctx) -> Result<Outcome> {
    Ok(Outcome::SUCCESS)
}
