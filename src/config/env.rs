//! The variables a config exports: a service's port variables and the
//! `[env]` templates, checked against the names no config may export
//! ([`refused_name`]).

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;

use super::Checker;
use super::refused::refused_name;
use super::services::Service;
use crate::error::Result;

/// One piece of an `[env]` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Port(String),
    Worktree,
    Purpose,
    Identifier,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

/// Whether `name` can be exported as an environment variable by every shell.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether a service's variable `name` is exported before the config is
/// trusted: a name ending in `PORT` (`PORT`, `WEB_PORT`, the default
/// `<SERVICE>_PORT`). A port number is data, but not under any name: a
/// one-port range lets a repository pick the number, and
/// `GIT_CONFIG_GLOBAL=4242` or `fish_function_path=4242` then make the
/// user's tools read the repository's own file or directory `4242`, which
/// runs its code. Any other name waits for trust, like `[env]`.
pub fn is_port_name(name: &str) -> bool {
    name.ends_with("PORT")
}

impl Checker<'_> {
    /// Every service's variables: allowed names, each exported by one
    /// service only.
    pub(super) fn check_env_names(&self, services: &[Service]) -> Result<()> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for s in services {
            for var in &s.env {
                let key = format!("services.{}.env", s.name);
                if let Some(reason) = refused_name(var) {
                    return Err(self.with_default_env_hint(self.err(&key, reason), s));
                }
                if let Some(other) = seen.insert(var, &s.name) {
                    let err = self.err(&key, format!("{var} is also exported by services.{other}; each variable names one port"));
                    return Err(self.with_default_env_hint(err, s));
                }
            }
        }
        Ok(())
    }

    /// `err` about `service`'s variable, with a hint when that variable is
    /// the one made from its name (`1web` gives `1WEB_PORT`, `ld` gives
    /// `LD_PORT`): the key named, `services.1web.env`, is not in the file,
    /// and "fix the file" left the user looking for it.
    fn with_default_env_hint(
        &self,
        err: crate::error::Error,
        service: &Service,
    ) -> crate::error::Error {
        if service.env != [super::services::default_env_name(&service.name)] {
            return err;
        }
        let set = self
            .syntax()
            .setting(&["services", &service.name], "env", "[\"NAME\"]");
        // The file by its name: the error names its whole path.
        let file = super::file_named(Some(self.path), self.path.parent().unwrap_or(self.path));
        err.with_hint(format!(
            "{} is made from the service's name: rename the service, or name its variable: set {set} in {file}",
            service.env[0]
        ))
    }

    /// The `[env]` table: allowed names not set by a service, values an
    /// environment can carry, templates naming configured services.
    pub(super) fn env_templates(
        &self,
        raw: IndexMap<String, String>,
        services: &[Service],
    ) -> Result<Vec<(String, Template)>> {
        let service_vars: BTreeSet<&str> = services
            .iter()
            .flat_map(|s| s.env.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for (name, text) in raw {
            let key = super::syntax::key_path(["env", name.as_str()]);
            if let Some(reason) = refused_name(&name) {
                return Err(self.err(&key, reason));
            }
            if service_vars.contains(name.as_str()) {
                return Err(self.err(&key, format!("{name} is already set by a service")));
            }
            if text.contains('\0') {
                return Err(self.err(
                    &key,
                    "the value holds a NUL byte, which no environment can carry",
                ));
            }
            let template = Template::parse(&text).map_err(|r| self.err(&key, r))?;
            for piece in &template.pieces {
                if let Piece::Port(s) = piece
                    && !services.iter().any(|svc| &svc.name == s)
                {
                    let services = self.syntax().table(&["services"]);
                    return Err(
                        self.err(&key, format!("{{port.{s}}} names no service in {services}"))
                    );
                }
            }
            out.push((name, template));
        }
        Ok(out)
    }
}

impl Template {
    /// `{port.NAME}`, `{worktree}`, `{purpose}`, `{identifier}`; `{{` and `}}`
    /// are literal braces.
    pub fn parse(text: &str) -> std::result::Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!(
                    "unmatched '}}' in {text:?} (write '}}}}' for a brace)"
                ));
            }
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {text:?}"))?;
            let name = &tail[1..end];
            let piece = match name {
                "worktree" => Piece::Worktree,
                "purpose" => Piece::Purpose,
                "identifier" => Piece::Identifier,
                _ => match name.strip_prefix("port.") {
                    Some(svc) if !svc.is_empty() => Piece::Port(svc.to_owned()),
                    _ => {
                        return Err(format!(
                            "unknown placeholder {{{name}}}; known: {{port.SERVICE}}, {{worktree}}, {{purpose}}, {{identifier}}"
                        ));
                    }
                },
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }
}
