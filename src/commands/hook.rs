//! `wtenv hook bash|zsh|fish|direnv|nix`: the integration code.
//!
//! The scripts are the files of `shell-hooks/`, embedded at build time (one
//! source: the repository's files are what the binary prints). The only
//! change made to them is [`render`]: `__WTENV_EXE__` becomes the absolute
//! path of the running binary, quoted for the target shell, so the hooks
//! call this very binary whatever `PATH` says later.

use std::path::Path;

use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::{output, shell};

/// The placeholder replaced by the quoted path of the binary.
pub const EXE_PLACEHOLDER: &str = "__WTENV_EXE__";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A `wtenv` function and a prompt hook, for ~/.bashrc.
    Bash,
    /// A `wtenv` function and a prompt hook, for ~/.zshrc.
    Zsh,
    /// A `wtenv` function and a prompt hook, for config.fish.
    Fish,
    /// `use_wtenv` for direnv's stdlib (`use wtenv` in .envrc).
    Direnv,
    /// A shellHook snippet for `nix develop`.
    Nix,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    pub target: Target,
}

impl Target {
    /// The embedded file, as it is in `shell-hooks/`.
    pub fn source(self) -> &'static str {
        match self {
            Target::Bash => include_str!("../../shell-hooks/wtenv.bash"),
            Target::Zsh => include_str!("../../shell-hooks/wtenv.zsh"),
            Target::Fish => include_str!("../../shell-hooks/wtenv.fish"),
            Target::Direnv => include_str!("../../shell-hooks/direnv.sh"),
            Target::Nix => include_str!("../../shell-hooks/nix.sh"),
        }
    }

    /// The file's name in `shell-hooks/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Target::Bash => "wtenv.bash",
            Target::Zsh => "wtenv.zsh",
            Target::Fish => "wtenv.fish",
            Target::Direnv => "direnv.sh",
            Target::Nix => "nix.sh",
        }
    }
}

/// The hook for `target`, calling the binary at `exe`.
pub fn render(target: Target, exe: &Path) -> String {
    let exe = exe.to_string_lossy();
    let quoted = match target {
        Target::Fish => shell::quote_fish(&exe),
        _ => shell::quote_posix(&exe),
    };
    target.source().replace(EXE_PLACEHOLDER, &quoted)
}

pub fn run(args: Args) -> Result<Outcome> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("could not find the path of the running wtenv", e))?;
    output::stdout(&render(args.target, &exe))?;
    Ok(Outcome::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_quotes_the_path_for_each_shell() {
        let exe = Path::new("/opt/it's/wtenv");
        assert!(
            render(Target::Bash, exe).contains(r"'/opt/it'\''s/wtenv' env --format bash --hook")
        );
        assert!(render(Target::Fish, exe).contains(r"'/opt/it\'s/wtenv' env --format fish --hook"));
        for t in [
            Target::Bash,
            Target::Zsh,
            Target::Fish,
            Target::Direnv,
            Target::Nix,
        ] {
            assert!(!render(t, exe).contains(EXE_PLACEHOLDER), "{t:?}");
        }
    }
}
