//! `wtenv trust [--list]`: let this repository's config (as it is now) set
//! its `[env]` variables; `--list` shows what is trusted. See
//! [`crate::trust`].

use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
use crate::process::printable_path;
use crate::report;
use crate::worktree::Ownership;
use crate::{output, trust};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List every trusted config (repository, content hash, file, when).
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    if args.list {
        let list = trust::load(&ctx.registry)?;
        let rows: Vec<Vec<String>> = list
            .trusted
            .iter()
            .map(|e| {
                vec![
                    e.repository.display().to_string(),
                    e.sha256[..e.sha256.len().min(12)].to_owned(),
                    e.config.display().to_string(),
                    e.trusted.clone(),
                ]
            })
            .collect();
        let text = output::table(&["REPOSITORY", "SHA256", "CONFIG", "TRUSTED"], &rows);
        output::stdout(&text)?;
        return Ok(Outcome::SUCCESS);
    }
    let scope = ctx.scope()?;
    let source = scope.config.source.clone().unwrap_or_default();
    let added = trust::trust(&ctx.registry, &scope.worktree.common_dir, &scope.config)?;
    // Every name the trust allows, service variables included, and the
    // worktrees' root: what the user reviews is all of it.
    let mut allows: Vec<String> = scope
        .config
        .gated()
        .map(|(what, names)| format!("{what}: {}", names.join(", ")))
        .into_iter()
        .collect();
    let root = &scope.config.worktrees.root;
    if root != crate::config::DEFAULT_ROOT {
        let key = scope.config.syntax().key(&["worktrees"], "root");
        allows.push(format!("{key}: {root:?}"));
    }
    let message = format!(
        "{} {} for repository {}{}",
        if added { "trusted" } else { "already trusted:" },
        printable_path(&source),
        printable_path(&scope.worktree.common_dir),
        match allows.is_empty() {
            true => String::new(),
            false => format!(" ({})", allows.join("; ")),
        }
    );
    // Recorded all the same: it applies as soon as the repository records
    // this worktree, which `env` would otherwise say only later.
    match scope.worktree.ownership() {
        Ownership::Unrecorded { root } => report::warn(&format!(
            "{message}; it applies here once core.worktree is set: {}",
            trust::unrecorded(&scope.worktree.common_dir, &root)
        )),
        _ => report::note(&message),
    }
    Ok(Outcome::SUCCESS)
}
