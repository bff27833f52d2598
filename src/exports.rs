//! The variables a worktree exports (README, "Environment"): each service's
//! names, the `WTENV_*` provenance variables, then the `[env]` templates;
//! the templates, and a service's names that are not a port's, of a
//! trusted config only.
//!
//! `WTENV_WORKTREE` is always computed from the worktree found on disk; an
//! inherited value is never read, so one naming another worktree is simply
//! replaced.

use crate::alloc::Ports;
use crate::config::{Piece, is_port_name};
use crate::context::Scope;

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

/// `web=5000,api=5001`, in the config's declaration order.
pub fn ports_summary(ports: &Ports) -> String {
    ports
        .iter()
        .map(|(s, p)| format!("{s}={p}"))
        .collect::<Vec<_>>()
        .join(",")
}
