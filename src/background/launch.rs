//! What a unit runs: `wtenv run --service S --unit M:NAME ... -- CMD`, and
//! the environment it gets from the command that starts it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Manager, UnitRef};
use crate::config::Service;
use crate::context::Ctx;
use crate::error::{Error, Result};

/// What starting one service in the background takes.
#[derive(Debug, Clone)]
pub struct Launch {
    pub service: String,
    /// The unit name, without suffix.
    pub unit: String,
    /// The worktree's slice, without suffix.
    pub group: String,
    pub root: PathBuf,
    pub ports: Vec<u16>,
    pub log: PathBuf,
    /// `wtenv ... run --service S --unit M:NAME ... -- CMD` (CMD's words,
    /// or `sh -c CMD`: [`crate::supervise::command_words`]).
    pub argv: Vec<OsString>,
    /// The environment the unit gets (a manager does not pass ours).
    pub env: Vec<(String, OsString)>,
    pub grace: Duration,
}

/// Variables a unit inherits from the command that starts it: what finds
/// programs, the user's directories, wtenv's own settings. A service
/// manager starts units with its own environment, not the caller's.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "WTENV_STATE_DIR",
    "WTENV_LOCK_TIMEOUT",
    "WTENV_LOG",
    "NO_COLOR",
];

/// How `up --detach` runs the services.
#[derive(Debug, Clone)]
pub struct Options {
    pub manager: Manager,
    pub grace: Duration,
    pub log_limit: u64,
    /// `--skip-occupied`: the ports are reserved skipping occupied ones.
    pub skip_occupied: bool,
}

/// The `wtenv run` command line a unit runs for `service`.
pub fn run_argv(
    ctx: &Ctx,
    service: &Service,
    unit: &UnitRef,
    log: Option<&Path>,
    options: &Options,
) -> Result<Vec<OsString>> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("could not find wtenv's own executable", e))?;
    let mut argv: Vec<OsString> = vec![exe.into(), "--registry".into()];
    argv.push(ctx.absolute(ctx.registry.path())?.into());
    if let Some(config) = &ctx.config_path {
        argv.push("--config".into());
        argv.push(ctx.absolute(config)?.into());
    }
    argv.push("run".into());
    if options.manager == Manager::Wtenv {
        // Its own session: the terminal that ran `up` can close. It
        // starts nothing before `up -d` has recorded it
        // ([`super::detached::Child::go`]).
        argv.push("--setsid".into());
        argv.push("--await-start".into());
    }
    for arg in [
        "--grace",
        &humantime::format_duration(options.grace).to_string(),
        "--service",
        &service.name,
        "--unit",
        &unit.to_arg(),
    ] {
        argv.push(arg.into());
    }
    if let Some(log) = log {
        argv.push("--log".into());
        argv.push(log.into());
        argv.push("--log-limit".into());
        argv.push(options.log_limit.to_string().into());
    }
    // As in the foreground: a line without shell syntax is exec'd, so a
    // handed-off socket's LISTEN_PID names the server.
    argv.push("--".into());
    argv.extend(crate::supervise::command_words(
        service.run.as_deref().unwrap_or_default(),
    ));
    Ok(argv)
}

pub fn passed_env() -> Vec<(String, OsString)> {
    PASSED_ENV
        .iter()
        .filter_map(|k| crate::settings::passed(k).map(|v| (k.to_string(), v)))
        .collect()
}

/// The hint of a value a unit's manager cannot carry (a plist's XML,
/// systemd's UTF-8): a path, an argument.
pub const RENAME_HINT: &str = "rename what holds it, or start the services with 'wtenv up'";

/// The hint of a passed variable whose value a unit's manager cannot
/// carry (a plist's XML, systemd's UTF-8).
pub fn unset_hint(name: &str) -> String {
    format!("change or unset {name} where you run wtenv, or start the services with 'wtenv up'")
}
