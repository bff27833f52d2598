//! The variables a worktree exports (README, "Environment"): each service's
//! names, the `WTENV_*` provenance variables, then the `[env]` templates;
//! the templates, and a service's names that are not a port's, of a
//! trusted config only.
//!
//! `WTENV_WORKTREE` is always computed from the worktree found on disk; an
//! inherited value is never read, so one naming another worktree is simply
//! replaced.
//!
//! What a worktree exports is bounded ([`check_size`], [`MAX_BYTES`]):
//! the shell passes it to every command it starts, and the kernel refuses
//! to start any once one string of the environment is over 128 KiB.

use std::path::Path;

use crate::alloc::Ports;
use crate::config::{Config, Piece, is_port_name, shown_key};
use crate::context::Scope;
use crate::error::{Error, Result};

/// The provenance variables every worktree exports, in this order: the
/// only `WTENV_*` names wtenv sets in a shell.
pub const PROVENANCE: [&str; 4] = [
    "WTENV_WORKTREE",
    "WTENV_PURPOSE",
    "WTENV_IDENTIFIER",
    "WTENV_PORTS",
];

/// Ordered `(name, value)` pairs; values are raw, quoting is `shell`'s job.
/// What needs trust ([`crate::config::Config::untrusted_names`]: the
/// `[env]` templates, a service variable not named like a port) only when
/// `trusted` (see [`crate::trust`]).
pub fn variables(scope: &Scope, ports: &Ports, trusted: bool) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for service in &scope.config.services {
        if let Some(port) = ports.get(&service.name) {
            for name in &service.env {
                if trusted || is_port_name(name) {
                    vars.push((name.clone(), port.to_string()));
                }
            }
        }
    }
    let provenance = [
        scope.worktree.root.to_string_lossy().into_owned(),
        scope.purpose.clone(),
        scope.identifier.clone(),
        ports_summary(ports),
    ];
    vars.extend(PROVENANCE.map(String::from).into_iter().zip(provenance));
    let templates = if trusted { &scope.config.env[..] } else { &[] };
    for (name, template) in templates {
        let value: String = template
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Port(s) => ports.get(s).map(u16::to_string).unwrap_or_default(),
                Piece::Worktree => scope.worktree.root.to_string_lossy().into_owned(),
                Piece::Purpose => scope.purpose.clone(),
                Piece::Identifier => scope.identifier.clone(),
            })
            .collect();
        vars.push((name.clone(), value));
    }
    vars
}

/// The names [`variables`] gives for `scope` once every service has its
/// port: what a load of the worktree exports, its ports aside.
pub fn names(scope: &Scope, trusted: bool) -> Vec<String> {
    let ports: Ports = scope
        .config
        .services
        .iter()
        .map(|s| (s.name.clone(), 0))
        .collect();
    let vars = variables(scope, &ports, trusted);
    vars.into_iter().map(|(name, _)| name).collect()
}

/// `web=5000,api=5001`, in the config's declaration order.
pub fn ports_summary(ports: &Ports) -> String {
    ports
        .iter()
        .map(|(s, p)| format!("{s}={p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The most a worktree may export, in bytes: every variable [`variables`]
/// gives, trusted or not, counted as the kernel stores it (`NAME=value`
/// and a NUL). Linux refuses to start a program when one string of its
/// environment is over 128 KiB (`MAX_ARG_STRLEN`, E2BIG): a shell that
/// exported more could run no command at all, not even the hook that
/// would unset it. Half of that leaves room for the hook's own records
/// (`__WTENV_DIFF` lists the names again) and the user's environment.
pub const MAX_BYTES: usize = 64 * 1024;

/// Refuses `config` when what it exports in the worktree at `root`, with
/// `purpose` and `identifier`, could be over [`MAX_BYTES`]: checked before
/// anything is allocated, so a port counts as five digits. The error names
/// the key that takes the most.
pub fn check_size(config: &Config, root: &Path, purpose: &str, identifier: &str) -> Result<()> {
    let Some(source) = &config.source else {
        // The built-in defaults: one service, no templates.
        return Ok(());
    };
    const PORT: usize = 5;
    // `NAME=value` and the NUL.
    let var = |name: &str, value: usize| name.len().saturating_add(value).saturating_add(2);
    let root = root.as_os_str().len();
    // What no key of the config sets, so never the one named.
    let mut total = var("WTENV_WORKTREE", root)
        + var("WTENV_PURPOSE", purpose.len())
        + var("WTENV_IDENTIFIER", identifier.len());
    // The key that takes the most: named, and its name made, only if
    // the config is refused (this runs on every `cd`).
    enum Key<'c> {
        ServiceEnv(&'c str),
        Services,
        Env(&'c str),
    }
    let mut largest: (usize, Key<'_>) = (0, Key::Services);
    let mut count = |key, bytes: usize| {
        total = total.saturating_add(bytes);
        if bytes > largest.0 {
            largest = (bytes, key);
        }
    };
    let mut ports_summary = 0usize;
    for service in &config.services {
        let bytes = service.env.iter().map(|n| var(n, PORT)).sum();
        count(Key::ServiceEnv(&service.name), bytes);
        // `name=port` and a comma.
        ports_summary += service.name.len() + PORT + 2;
    }
    count(Key::Services, var("WTENV_PORTS", ports_summary));
    for (name, template) in &config.env {
        let value = template.pieces.iter().fold(0usize, |n, p| {
            n.saturating_add(match p {
                Piece::Text(t) => t.len(),
                Piece::Port(_) => PORT,
                Piece::Worktree => root,
                Piece::Purpose => purpose.len(),
                Piece::Identifier => identifier.len(),
            })
        });
        count(Key::Env(name), var(name, value));
    }
    if total <= MAX_BYTES {
        return Ok(());
    }
    let (bytes, key) = largest;
    // A name may be as long as the file: shown cut, on every `cd`.
    let key = shown_key(&match key {
        Key::ServiceEnv(name) => format!("services.{name}.env"),
        Key::Services => "services".to_owned(),
        Key::Env(name) => format!("env.{name}"),
    });
    Err(Error::config(
        source,
        key,
        format!(
            "the variables it exports would take {total} bytes, more than {} KiB; this key takes {bytes}",
            MAX_BYTES / 1024
        ),
    )
    .with_hint(
        "a shell passes them to every command it starts, and too large an environment makes every command fail (\"Argument list too long\"); shorten or remove some",
    ))
}
