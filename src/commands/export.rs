//! `wtenv export systemd|launchd [DIR]`: unit files or plists for the
//! worktree's services, with their ports reserved.

use std::path::PathBuf;
use std::time::Duration;

use crate::background::export::{self, Format};
use crate::background::{Manager, Options, logfile};
use crate::context::Ctx;
use crate::error::Result;
use crate::exit::Outcome;
use crate::output;
use crate::report;
use crate::shell::quote_in_message;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// systemd: a .target, a .service per service, a .socket per socket = true service; launchd: a plist per service.
    #[arg(value_enum)]
    pub format: Format,
    /// Where to write them (default: ~/.config/systemd/user, ~/Library/LaunchAgents).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL for each service.
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "DUR", allow_hyphen_values = true, value_parser = crate::duration::parse_arg, default_value = "10s")]
    pub grace: Duration,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let scope = ctx.scope()?;
    let dir = match args.dir {
        Some(d) => ctx.absolute(&d)?,
        None => export::default_dir(args.format)?,
    };
    let options = Options {
        manager: match args.format {
            Format::Systemd => Manager::Systemd,
            Format::Launchd => Manager::Launchd,
        },
        grace: args.grace,
        log_limit: logfile::DEFAULT_LIMIT,
        skip_occupied: args.skip_occupied,
    };
    let written = export::export(ctx, &scope, args.format, &dir, &options)?;
    let mut text = String::new();
    for path in &written {
        text.push_str(&path.display().to_string());
        text.push('\n');
    }
    output::stdout(&text)?;
    let quoted: Vec<String> = written.iter().map(quote_in_message).collect();
    let first = quote_in_message(written[0].file_name().unwrap_or_default());
    match args.format {
        Format::Systemd => report::hint(&format!(
            "systemctl --user link {}; systemctl --user enable --now {first}",
            quoted.join(" ")
        )),
        Format::Launchd => report::hint(&format!(
            "launchctl bootstrap gui/$(id -u) {}",
            quoted.join(" ")
        )),
    }
    Ok(Outcome::SUCCESS)
}
