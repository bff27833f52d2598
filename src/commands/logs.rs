//! `wtenv logs [SERVICE] [-f] [-n N]`: the output of the worktree's
//! background services, each line prefixed with its service's name, as
//! `up` prints it.

use std::io::Write;

use crate::background::{StateDir, logfile};
use crate::config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing what the services write.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each service.
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(
        short = 'n',
        long = "lines",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub lines: Option<usize>,
    /// The service (default: every service of this worktree).
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    if let Some(name) = &args.service {
        config::check_service_name(name)?;
    }
    let scope = ctx.scope()?;
    let names: Vec<String> = args.service.iter().cloned().collect();
    if let Some(name) = &args.service {
        scope.require_service(name)?;
    }
    // Read only: nothing is created when nothing ever ran in the
    // background.
    let logs = match StateDir::existing(ctx)? {
        Some(dir) => dir.logs_of(&scope, &names),
        None => Vec::new(),
    };
    if logs.is_empty() {
        return Err(Error::not_found(match &args.service {
            Some(name) => format!("service {name} of this worktree has no log"),
            None => "no service of this worktree has a log".into(),
        })
        .with_hint("'wtenv up --detach' runs services in the background and logs their output"));
    }
    let width = logs.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let prefixed: Vec<(std::path::PathBuf, String)> = logs
        .iter()
        .map(|(service, path)| {
            let index = scope.config.prefix_index(service);
            let prefix = output::service_prefix(service, width, index, ctx.color);
            (path.clone(), prefix)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for (path, prefix) in &prefixed {
        for line in logfile::lines(path, args.lines) {
            let written = out
                .write_all(prefix.as_bytes())
                .and_then(|()| out.write_all(&line));
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(Outcome::SUCCESS);
                }
                Err(e) => return Err(output::write_error(e)),
                Ok(()) => {}
            }
        }
    }
    output::written(out.flush())?;
    drop(out);
    if args.follow {
        logfile::follow(&prefixed)?;
    }
    Ok(Outcome::SUCCESS)
}
