//! `export systemd|launchd [DIR]`: unit files (or plists) for people who
//! manage the worktree's services with their own service manager, like
//! `foreman export`. The ports are reserved (sticky), so the files run the
//! services on the ports `wtenv env` exports, but only once every file is
//! made and DIR made and seen to take them: a refusal leaves the registry
//! (and the state directory) as it was. A failure after that (a full disk
//! writing a file) keeps the reservation, as `env` keeps one. Each unit runs
//! `wtenv run --service S --unit ...` like `up --detach`'s, so wtenv holds
//! and releases the port while it runs and the sweep asks the manager.

use std::path::{Path, PathBuf};

use super::{Manager, Naming, Options, UnitRef, launchd, passed_env, run_argv, systemd};
use crate::config::Service;
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::process::printable_path;

/// The formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A `.target` for the worktree, a `.service` per service and a
    /// `.socket` per `socket = true` service.
    Systemd,
    /// A launchd agent plist per service.
    Launchd,
}

/// Where the files go by default: where the manager looks for the user's
/// own units (`$XDG_CONFIG_HOME/systemd/user`, `~/Library/LaunchAgents`).
pub fn default_dir(format: Format) -> Result<PathBuf> {
    match format {
        Format::Systemd => crate::settings::systemd_user_dir(),
        Format::Launchd => crate::settings::launch_agents_dir(),
    }
    .ok_or_else(|| {
        // A relative HOME or XDG_CONFIG_HOME is ignored (settings).
        Error::not_found("HOME is not set to an absolute path")
            .with_hint("pass the directory: export FORMAT DIR")
    })
}

/// The hint of a DIR that cannot take the files.
const ELSEWHERE: &str = "pass a directory you can write to: wtenv export FORMAT DIR";

/// One file of the export, as made before the ports are reserved.
enum File<'a> {
    Text(String),
    /// A `socket = true` service's `.socket`, which names its port: made
    /// once that is reserved ([`systemd::socket_file`] cannot fail), in
    /// the worktree whose path was checked already.
    Socket(&'a Service, systemd::UnitPath),
}

/// Makes the files and `dir`, reserves the ports and writes the files
/// into `dir`; returns their paths, the worktree's target (systemd) first.
pub fn export(
    ctx: &Ctx,
    scope: &Scope,
    format: Format,
    dir: &Path,
    options: &Options,
) -> Result<Vec<PathBuf>> {
    let services: Vec<_> = scope
        .config
        .services
        .iter()
        .filter(|s| s.run.is_some())
        .collect();
    if services.is_empty() {
        return Err(
            Error::not_found("no service has a run command").with_hint(scope.add_run_hint("NAME"))
        );
    }
    // Made once nothing can refuse the export any more (below): a refusal
    // leaves the state directory as it was.
    let state = super::StateDir::planned(ctx)?;
    let naming = Naming::of(scope);
    let env = passed_env();
    // Every file is made before any port is reserved and before the first
    // is written: what a unit or a plist cannot carry (the worktree's path,
    // a passed variable, a path on the command line) is refused with the
    // registry as it was and no half set behind. Only a `.socket` names a
    // port.
    let mut files: Vec<(String, File)> = Vec::new();
    match format {
        Format::Systemd => {
            // Refused for a worktree whose path no unit can name.
            let root = systemd::unit_path(&scope.worktree.root)?;
            let target = format!("{}.target", naming.group());
            // A `socket = true` service is started by its `.socket`: that
            // is what the target and its dependents want.
            let socket = |name: &str| scope.config.service(name).is_some_and(|s| s.socket);
            let entry = |name: &str| match socket(name) {
                true => format!("{}.socket", naming.unit(name)),
                false => format!("{}.service", naming.unit(name)),
            };
            let wanted: Vec<String> = services.iter().map(|s| entry(&s.name)).collect();
            let text = systemd::target_file(&root, &wanted);
            files.push((target.clone(), File::Text(text)));
            for service in &services {
                let unit = format!("{}.service", naming.unit(&service.name));
                let socket = service
                    .socket
                    .then(|| format!("{}.socket", naming.unit(&service.name)));
                if let Some(name) = &socket {
                    files.push((name.clone(), File::Socket(service, root.clone())));
                }
                let unit_ref = UnitRef {
                    manager: Manager::Systemd,
                    name: unit.clone(),
                };
                // The log `wtenv logs` reads, as for `up --detach`'s units.
                let log = state.log_path(&unit);
                let argv = run_argv(ctx, service, &unit_ref, Some(&log), options)?;
                let after = service.depends_on.iter().map(|d| entry(d)).collect();
                let text = systemd::service_file(&systemd::ServiceUnit {
                    service: &service.name,
                    target: &target,
                    after,
                    root: &root,
                    env: &env,
                    argv: &argv,
                    grace: options.grace,
                    socket: socket.as_deref(),
                })?;
                files.push((unit, File::Text(text)));
            }
        }
        Format::Launchd => {
            for service in services {
                let label = naming.unit(&service.name);
                let unit_ref = UnitRef {
                    manager: Manager::Launchd,
                    name: label.clone(),
                };
                let argv = run_argv(ctx, service, &unit_ref, None, options)?;
                let log = state.log_path(&label);
                let text = launchd::plist(&launchd::Agent {
                    label: &label,
                    argv: &argv,
                    root: &scope.worktree.root,
                    env: &env,
                    log: &log,
                    run_at_load: true,
                    exit_timeout: options.grace + std::time::Duration::from_secs(5),
                })?;
                files.push((format!("{label}.plist"), File::Text(text)));
            }
        }
    }
    // DIR too is made, and seen to take files, before anything is
    // reserved: a DIR that cannot hold them is refused with the registry
    // as it was.
    let made = crate::files::create_user_dir_all(dir).map_err(|e| {
        Error::io(format!("could not create {}", printable_path(dir)), e).with_hint(ELSEWHERE)
    })?;
    let texts = reserve_and_finish(ctx, scope, &naming, files, options, dir).inspect_err(|_| {
        // The directories made for DIR go again, so a refusal leaves
        // DIR's place as it was; a reservation made stays, as `env`
        // keeps one.
        crate::files::remove_made_dirs(&made);
    })?;
    let mut written = Vec::new();
    for (name, text) in texts {
        super::write_file(dir, &name, text.as_bytes()).map_err(|e| e.with_hint(ELSEWHERE))?;
        written.push(dir.join(name));
    }
    Ok(written)
}

/// Checks that `dir` takes files, reserves the ports, makes the files
/// that name one and the state directory the units log into: what is
/// left to do is writing the files.
fn reserve_and_finish(
    ctx: &Ctx,
    scope: &Scope,
    naming: &Naming,
    files: Vec<(String, File)>,
    options: &Options,
    dir: &Path,
) -> Result<Vec<(String, String)>> {
    crate::files::check_writable_dir(dir).map_err(|(what, e)| {
        Error::io(format!("could not {what} {}", printable_path(dir)), e).with_hint(ELSEWHERE)
    })?;
    let ports = crate::ports::reserve(ctx, scope, options.skip_occupied)?;
    let mut texts = Vec::with_capacity(files.len());
    for (name, file) in files {
        let text = match file {
            File::Text(text) => text,
            File::Socket(service, root) => {
                // `reserve` gives every service of the config its port.
                let port = ports.get(&service.name).copied().ok_or_else(|| {
                    Error::failed(format!("no port was reserved for service {}", service.name))
                        .with_hint("run the command again")
                })?;
                systemd::socket_file(&systemd::SocketUnit {
                    service: &service.name,
                    target: &format!("{}.target", naming.group()),
                    unit: &format!("{}.service", naming.unit(&service.name)),
                    root: &root,
                    addr: std::net::SocketAddr::new(service.bind_addr(), port),
                })
            }
        };
        texts.push((name, text));
    }
    // The logs' directory: the state directory exists now (the
    // reservation is in it).
    super::StateDir::of(ctx)?;
    Ok(texts)
}
