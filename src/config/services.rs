//! Services: the ports a worktree gets (in declaration order), the
//! variables that carry them, and what `up` does with each one (its
//! command, socket, health check, dependencies, restart policy).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use indexmap::IndexMap;

use super::raw::{RawDuration, RawHealth, RawService};
use super::{Checker, MAX_SERVICE_VARS, MAX_SERVICES};
use crate::error::Result;
use crate::health::{self, Check, Health, Restart};

pub(super) const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The variables that carry this service's port, in order.
    pub env: Vec<String>,
    /// The command `wtenv up` starts (its words, or `sh -c` when it has
    /// shell syntax: [`crate::supervise::command_words`]), in the
    /// worktree's root, a relative program path included
    /// ([`crate::supervise::in_dir`]).
    pub run: Option<String>,
    pub ready_timeout: Duration,
    /// How `up` knows it is ready and alive; `None`: not configured, the
    /// default check, if any, is advisory ([`Service::health`]).
    pub health: Option<Health>,
    /// Services that must be ready before `up` starts this one.
    pub depends_on: Vec<String>,
    /// Whether `up` starts it again when it ends or turns unhealthy.
    pub restart: Restart,
    /// `socket = true`: wtenv binds the port itself and hands the
    /// listening socket to the service (see [`crate::sockets`]).
    pub socket: bool,
    /// `bind = "127.0.0.1"`: the address of that socket; `None` is
    /// dual-stack `[::]`.
    pub bind: Option<IpAddr>,
}

impl Service {
    /// A service with nothing configured but its name: its port exported
    /// as `<NAME>_PORT`.
    pub(super) fn named(name: &str) -> Service {
        Service {
            name: name.to_owned(),
            env: vec![default_env_name(name)],
            run: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            health: None,
            depends_on: Vec::new(),
            restart: Restart::No,
            socket: false,
            bind: None,
        }
    }

    /// The one answer to what check a service has, which the foreground
    /// `up`, `up --detach`'s readiness and `status` all ask: the
    /// configured one, else its default ([`Service::default_health`]);
    /// `None`: it has none.
    pub fn health(&self) -> Option<Health> {
        self.health.clone().or_else(|| self.default_health())
    }

    /// The check a service without a `health` key has: its port accepts
    /// (tcp). `None` for a `socket = true` service, which is ready once
    /// started (connections queue in wtenv's socket until the server
    /// accepts them) and never checked after: a connection to its port
    /// tests wtenv's socket, not the server, and is one the server then
    /// accepts, empty.
    pub fn default_health(&self) -> Option<Health> {
        (!self.socket).then(Health::default)
    }

    /// The address wtenv binds for this service's socket: `bind`, else
    /// `[::]` (dual-stack: IPv6 and IPv4-mapped).
    pub fn bind_addr(&self) -> IpAddr {
        self.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    }

    /// The address its port listens on as wtenv bound it, when wtenv binds
    /// it (`socket = true`): where its checks connect
    /// ([`crate::health::check::addresses`]).
    pub fn bound(&self) -> Option<IpAddr> {
        self.socket.then(|| self.bind_addr())
    }
}

/// `web` → `WEB_PORT`, `my-api` → `MY_API_PORT`.
pub fn default_env_name(service: &str) -> String {
    let mut name: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.push_str("_PORT");
    name
}

impl Checker<'_> {
    /// The `[services]` table, in declaration order; dependencies name
    /// services and form no cycle.
    pub(super) fn services(&self, raw: IndexMap<String, RawService>) -> Result<Vec<Service>> {
        if raw.len() > MAX_SERVICES {
            return Err(self
                .err(
                    "services",
                    format!(
                        "{} services are declared; at most {MAX_SERVICES} are allowed",
                        raw.len()
                    ),
                )
                .with_hint(format!(
                    "each service reserves a port of its purpose's range as soon as a shell enters the worktree; declare at most {MAX_SERVICES}"
                )));
        }
        let mut services = Vec::new();
        for (name, raw) in raw {
            self.check_name("services", &name, "a service name")?;
            let key = format!("services.{name}");
            let mut service = Service::named(&name);
            if let Some(env) = raw.env {
                if env.is_empty() {
                    return Err(self.err(
                        &format!("{key}.env"),
                        "at least one variable name is needed",
                    ));
                }
                if env.len() > MAX_SERVICE_VARS {
                    return Err(self
                        .err(
                            &format!("{key}.env"),
                            format!(
                                "{} variable names are given; at most {MAX_SERVICE_VARS} are allowed",
                                env.len()
                            ),
                        )
                        .with_hint(
                            "each name is exported to every command run in the worktree; keep the ones your programs read",
                        ));
                }
                service.env = env;
            }
            service.run = raw.run;
            if let Some(timeout) = raw.ready_timeout {
                service.ready_timeout = timeout;
            }
            // Where a tcp check on a socket service was asked for, if one was.
            let mut tcp_at = None;
            if let Some(h) = raw.health {
                let at = format!("{key}.health");
                tcp_at = Some(match h.tcp {
                    Some(_) => format!("{at}.tcp"),
                    None => at.clone(),
                });
                service.health = Some(self.health(h, &at)?);
            }
            service.depends_on = raw.depends_on.unwrap_or_default();
            if let Some(text) = raw.restart {
                service.restart = Restart::parse(&text).ok_or_else(|| {
                    self.err(
                        &format!("{key}.restart"),
                        format!(
                            "{text:?} is not a restart policy: \"no\", \"on-failure\" or \"always\""
                        ),
                    )
                })?;
            }
            service.socket = raw.socket.unwrap_or(false);
            if service.socket
                && let Some(at) = tcp_at
                && service
                    .health
                    .as_ref()
                    .is_some_and(|h| h.check == Check::Tcp)
            {
                return Err(self.socket_tcp(&at));
            }
            if let Some(text) = raw.bind {
                service.bind = Some(text.parse().map_err(|_| {
                    self.err(
                        &format!("{key}.bind"),
                        format!("{text:?} is not an IP address like \"127.0.0.1\" or \"::\""),
                    )
                })?);
            }
            services.push(service);
        }
        if services.is_empty() {
            return Err(self.err(
                "services",
                format!(
                    "at least one service is needed (or leave {} out for the default `app` on PORT)",
                    self.syntax().table(&["services"])
                ),
            ));
        }
        let graph: Vec<(&str, &[String])> = services
            .iter()
            .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
            .collect();
        if let Err(e) = health::find_cycle(&graph) {
            let first = match &e {
                health::OrderError::Unknown { service, .. } => service,
                health::OrderError::Cycle(ring) => &ring[0],
            };
            return Err(self.err(&format!("services.{first}.depends_on"), e.to_string()));
        }
        Ok(services)
    }

    /// A tcp check (named, or the default of a `health` table that names
    /// none) on a `socket = true` service: it would connect to wtenv's
    /// own socket, which accepts whether the server answers or not, and
    /// each connection is one the server then accepts, empty.
    fn socket_tcp(&self, key: &str) -> crate::error::Error {
        let syntax = self.syntax();
        self.err(
            key,
            format!(
                "a tcp check (the default) of a service with {} would test wtenv's own socket, which accepts connections whether the server answers or not, not the server; use {} or {}",
                syntax.pair("socket", "true"),
                syntax.pair("http", "\"/path\""),
                syntax.pair("cmd", "\"...\"")
            ),
        )
    }

    /// `health = { http = "/healthz" | cmd = "..." | tcp = true, interval,
    /// timeout, retries, start_period }`: one check at most (`tcp =
    /// false` beside `http` or `cmd` is no second one).
    fn health(&self, raw: RawHealth, key: &str) -> Result<Health> {
        let mut health = Health::default();
        let mut checks = Vec::new();
        if let Some(p) = raw.http {
            if let Some(why) = not_a_request_path(&p) {
                return Err(self.err(
                    &format!("{key}.http"),
                    format!("{p:?} is not a request path: {why}"),
                ));
            }
            checks.push("http");
            health.check = Check::Http { path: p };
        }
        if let Some(c) = raw.cmd {
            if c.trim().is_empty() {
                return Err(self.err(&format!("{key}.cmd"), "the command is empty"));
            }
            checks.push("cmd");
            health.check = Check::Cmd { command: c };
        }
        // `tcp = false` says "not tcp": beside `http` or `cmd`, that one
        // is the check; alone it names none.
        if let Some(tcp) = raw.tcp {
            if !tcp && checks.is_empty() {
                let syntax = self.syntax();
                return Err(self.err(
                    &format!("{key}.tcp"),
                    format!(
                        "{} names no check; use {} or {}",
                        syntax.pair("tcp", "false"),
                        syntax.pair("http", "\"/path\""),
                        syntax.pair("cmd", "\"...\"")
                    ),
                ));
            }
            if tcp {
                checks.push("tcp");
                health.check = Check::Tcp;
            }
        }
        if checks.len() > 1 {
            return Err(self.err(
                key,
                format!(
                    "one check only: {} are given together",
                    checks.join(" and ")
                ),
            ));
        }
        if let Some(interval) = raw.interval {
            health.interval = interval;
        }
        if let Some(timeout) = raw.timeout {
            health.timeout = timeout;
        }
        if let Some(start_period) = raw.start_period {
            health.start_period = start_period;
        }
        if let Some(retries) = raw.retries {
            health.retries = retries;
        }
        Ok(health)
    }
}

/// A duration as the file writes it, read as the command line's are
/// ([`crate::duration`]), or why it is refused, in the words `--grace`
/// and `WTENV_LOCK_TIMEOUT` use; the reader ([`super::raw`]) places the
/// refusal in the file. `positive`: a deadline or a period
/// (`ready_timeout`, `interval`, `timeout`), which at 0s would fail at
/// once or spin.
pub(super) fn duration(raw: RawDuration, positive: bool) -> std::result::Result<Duration, String> {
    use crate::duration::{from_secs, read};
    let (read, shown) = match raw {
        RawDuration::Text(text) => (read(&text), format!("{text:?}")),
        RawDuration::Seconds(secs, shown) => (from_secs(secs), shown),
    };
    let duration = read.map_err(|refusal| refusal.of(&shown))?;
    if positive && duration.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(duration)
}

/// Why `path` cannot be sent as the target of `health.http`'s request,
/// or `None` when it can: it is written on the request line as it is, so
/// it starts with `/` and holds only printable ASCII without spaces (a
/// space ends the target; anything else is percent-encoded by a client),
/// and no `#`: a fragment stays with the client, which never sends it.
fn not_a_request_path(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') || !path.chars().all(|c| c.is_ascii_graphic()) {
        Some("a request path starts with '/' and holds only printable ASCII without spaces")
    } else if path.contains('#') {
        Some("it holds a fragment ('#'), which clients never send")
    } else {
        None
    }
}
