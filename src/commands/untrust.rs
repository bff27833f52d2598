//! `wtenv untrust`: forget every trusted config of this repository; its
//! `[env]` stops applying until `wtenv trust`. See [`crate::trust`].

use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
use crate::process::printable_path;
use crate::report;
use crate::trust;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, ctx: &Ctx) -> Result<Outcome> {
    let worktree = ctx.require_worktree_here()?;
    let removed = trust::untrust(&ctx.registry, &worktree.common_dir)?;
    report::note(&match removed {
        0 => format!(
            "repository {} was not trusted",
            printable_path(&worktree.common_dir)
        ),
        n => format!(
            "untrusted repository {} ({n} config version{})",
            printable_path(&worktree.common_dir),
            if n == 1 { "" } else { "s" }
        ),
    });
    Ok(Outcome::SUCCESS)
}
