//! `wtenv.toml` / `wtenv.json`: the per-repository configuration.
//!
//! Both formats are parsed into one JSON value tree and walked by one
//! function, so they accept exactly the same schema and report errors the
//! same way: the file, the key (dotted path) and the reason. Unknown keys
//! inside a known table are warnings, so an older wtenv can read a newer
//! config; an unknown top-level table is an error with a suggestion (a
//! misspelt `[purpose]` must not silently fall back to the built-in ranges).
//!
//! A config comes from a repository someone else may have written: it is
//! read without blocking, only from a regular file, at most [`MAX_BYTES`],
//! and variable names that control the shell, the loader or wtenv itself
//! are refused ([`refused_name`]) whether or not the config is trusted.
//!
//! Without a file, the built-in defaults apply: the purposes below, and one
//! service `app` exported as `PORT`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::health::{self, Check, Health, Restart};

pub const TOML_NAME: &str = "wtenv.toml";
pub const JSON_NAME: &str = "wtenv.json";

/// A config larger than this is an error (a link to `/dev/zero` must not
/// be read without end).
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The top-level tables a config may have.
const TABLES: &[&str] = &["worktrees", "allocation", "purposes", "services", "env"];

/// Ports below this need privileges; refused in config (allocation rule 6).
pub const MIN_PORT: u16 = 1024;

/// Built-in purposes, used when the config has no `[purposes]` table.
pub const DEFAULT_PURPOSES: &[(&str, PortRange)] = &[
    (
        "feature",
        PortRange {
            start: 5000,
            end: 5099,
        },
    ),
    (
        "bugfix",
        PortRange {
            start: 5100,
            end: 5199,
        },
    ),
    (
        "hotfix",
        PortRange {
            start: 5200,
            end: 5299,
        },
    ),
    (
        "experiment",
        PortRange {
            start: 5300,
            end: 5399,
        },
    ),
];

/// An inclusive port range, `start <= end`, both `>= MIN_PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// Parses `"5000-5099"`; the error says what is wrong with it.
    pub fn parse(text: &str) -> std::result::Result<PortRange, String> {
        let bad = || format!("expected \"START-END\" (e.g. \"5000-5099\"), got {text:?}");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let start: u16 = a.trim().parse().map_err(|_| bad())?;
        let end: u16 = b.trim().parse().map_err(|_| bad())?;
        if start > end {
            return Err(format!("range {text:?} is reversed: {start} > {end}"));
        }
        if start < MIN_PORT {
            return Err(format!(
                "range {text:?} starts below {MIN_PORT}; privileged ports are refused"
            ));
        }
        Ok(PortRange { start, end })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A purpose's ranges, tried in order (the first, then the overflow
/// ranges): never empty, pairwise disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ranges(Vec<PortRange>);

impl Ranges {
    /// `None` when `ranges` is empty.
    pub fn new(ranges: Vec<PortRange>) -> Option<Ranges> {
        (!ranges.is_empty()).then_some(Ranges(ranges))
    }

    pub fn one(range: PortRange) -> Ranges {
        Ranges(vec![range])
    }

    pub fn iter(&self) -> impl Iterator<Item = PortRange> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(port))
    }

    /// `range 5000-5099` or `ranges 5400-5499, 15400-15499`: for messages.
    pub fn label(&self) -> String {
        let word = if self.0.len() == 1 { "range" } else { "ranges" };
        format!("{word} {self}")
    }
}

/// `5400-5499, 15400-15499`.
impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The variables that carry this service's port, in order.
    pub env: Vec<String>,
    /// The command `wtenv up` starts (its words, or `sh -c` when it has
    /// shell syntax: [`crate::supervise::command_words`]).
    pub run: Option<String>,
    pub ready_timeout: Duration,
    /// How `up` knows it is ready and alive; `None`: not configured, the
    /// default check (its port accepts) is advisory ([`Service::health`]).
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
    pub bind: Option<std::net::IpAddr>,
}

impl Service {
    /// The check `up` runs: the configured one, else the default.
    pub fn health(&self) -> Health {
        self.health.clone().unwrap_or_default()
    }

    /// The address wtenv binds for this service's socket: `bind`, else
    /// `[::]` (dual-stack: IPv6 and IPv4-mapped).
    pub fn bind_addr(&self) -> std::net::IpAddr {
        self.bind
            .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
    }
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreesConfig {
    /// Where `create` puts worktrees; `{repo}` is the main worktree's name.
    /// Relative to the main worktree.
    pub root: String,
    /// The branch `create` makes: `{purpose}` and `{identifier}`.
    pub branch: String,
    pub default_purpose: String,
    /// `create` runs `direnv allow` on the new worktree when the source
    /// worktree's `.envrc` is allowed.
    pub direnv_allow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this came from; `None` for the built-in defaults.
    pub source: Option<PathBuf>,
    pub worktrees: WorktreesConfig,
    /// Sorted by name (deterministic allocation order and output).
    pub purposes: BTreeMap<String, Ranges>,
    /// In the order the file declares them: the first declared gets the
    /// range's first free port; exports and tables follow this order.
    pub services: Vec<Service>,
    pub env: Vec<(String, Template)>,
    /// Opt-in: skip ports that are occupied on the system instead of failing.
    pub skip_occupied: bool,
    /// Non-fatal findings (unknown keys), each naming the key.
    pub warnings: Vec<String>,
    /// The text of `source` ([`Config::discover_unless_same`]).
    text: String,
}

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            worktrees: WorktreesConfig {
                root: "../{repo}.worktrees".into(),
                branch: "{purpose}/{identifier}".into(),
                default_purpose: "feature".into(),
                direnv_allow: false,
            },
            purposes: DEFAULT_PURPOSES
                .iter()
                .map(|(n, r)| (n.to_string(), Ranges::one(*r)))
                .collect(),
            services: vec![Service {
                name: "app".into(),
                env: vec!["PORT".into()],
                run: None,
                ready_timeout: DEFAULT_READY_TIMEOUT,
                health: None,
                depends_on: Vec::new(),
                restart: Restart::No,
                socket: false,
                bind: None,
            }],
            env: Vec::new(),
            skip_occupied: false,
            warnings: Vec::new(),
            text: String::new(),
        }
    }
}

impl Config {
    /// The config of the worktree at `root`: `wtenv.toml`, else `wtenv.json`,
    /// else the defaults. Both files present is an error (which one wins
    /// would be a guess).
    pub fn discover(root: &Path) -> Result<Config> {
        match find(root)? {
            Some((path, text)) => Config::parse(&path, &text),
            None => Ok(Config::default()),
        }
    }

    /// [`Config::discover`] for a worktree whose file is likely `known`'s
    /// (the worktrees of a repository check out the same one): `None` when
    /// `root`'s file has the same name and text as the one `known` was
    /// parsed from (or neither has one), so the caller reuses `known`
    /// instead of parsing and warning twice.
    pub fn discover_unless_same(root: &Path, known: &Config) -> Result<Option<Config>> {
        let found = find(root)?;
        let same = match (&found, &known.source) {
            (Some((path, text)), Some(source)) => {
                path.file_name() == source.file_name() && *text == known.text
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            return Ok(None);
        }
        match found {
            Some((path, text)) => Config::parse(&path, &text).map(Some),
            None => Ok(Some(Config::default())),
        }
    }

    /// Loads an explicit `--config PATH`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = read_optional(path)?.ok_or_else(|| {
            Error::io(
                format!("could not read config {}", path.display()),
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
        Config::parse(path, &text)
    }

    /// The exact text this config was parsed from (empty for the
    /// defaults): what trust is recorded for.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses config text; the format follows the file name (`.json` is
    /// JSON, anything else TOML).
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let value: Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(text)
                .map_err(|e| Error::config(path, "(file)", format!("not valid JSON: {e}")))?
        } else {
            let table: toml::Table = toml::from_str(text).map_err(|e| {
                let at = e
                    .span()
                    .map(|span| {
                        let before = &text[..span.start.min(text.len())];
                        let line = before.matches('\n').count() + 1;
                        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                        format!(" at line {line}, column {column}")
                    })
                    .unwrap_or_default();
                Error::config(
                    path,
                    "(file)",
                    format!("not valid TOML{at}: {}", e.message().trim_end()),
                )
            })?;
            serde_json::to_value(table).map_err(|e| Error::config(path, "(file)", e.to_string()))?
        };
        let config = Parser { path }.config(&value)?;
        Ok(Config {
            text: text.to_owned(),
            ..config
        })
    }

    pub fn purpose_ranges(&self, purpose: &str) -> Option<&Ranges> {
        self.purposes.get(purpose)
    }

    /// `feature, bugfix, ...`: for messages that list what is configured.
    pub fn purpose_names(&self) -> String {
        self.purposes.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The ranges of a purpose given on the command line.
    pub fn require_purpose(&self, purpose: &str) -> Result<Ranges> {
        self.purpose_ranges(purpose).cloned().ok_or_else(|| {
            Error::hinted(
                format!("unknown purpose {purpose:?}"),
                format!("configured purposes: {}", self.purpose_names()),
            )
        })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// A service named on the command line.
    pub fn require_service(&self, name: &str) -> Result<&Service> {
        self.service_index(name).map(|i| &self.services[i])
    }

    /// The place in [`Config::services`] of a service named on the command
    /// line.
    pub fn service_index(&self, name: &str) -> Result<usize> {
        self.services
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                Error::hinted(
                    format!("unknown service {name:?}"),
                    format!(
                        "configured services: {}",
                        self.services
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// The services with `socket = true` and the address each one's socket
    /// is bound to: what `up` hands over, and what a unit exporter writes
    /// `.socket` units for.
    pub fn socket_services(&self) -> Vec<(&Service, std::net::IpAddr)> {
        self.services
            .iter()
            .filter(|s| s.socket)
            .map(|s| (s, s.bind_addr()))
            .collect()
    }
}

/// The config file of the worktree at `root` and its text, if it has one.
fn find(root: &Path) -> Result<Option<(PathBuf, String)>> {
    let toml_path = root.join(TOML_NAME);
    let json_path = root.join(JSON_NAME);
    match (read_optional(&toml_path)?, read_optional(&json_path)?) {
        (Some(_), Some(_)) => Err(Error::config(
            &toml_path,
            "(file)",
            format!(
                "both {TOML_NAME} and {JSON_NAME} exist in {}; keep one",
                root.display()
            ),
        )),
        (Some(text), None) => Ok(Some((toml_path, text))),
        (None, Some(text)) => Ok(Some((json_path, text))),
        (None, None) => Ok(None),
    }
}

/// The file's text: through a link (a config may be one, e.g. into the
/// Nix store), but only a regular file, opened without blocking (a FIFO,
/// `/dev/stdin`) and read up to [`MAX_BYTES`] (`/dev/zero`).
fn read_optional(path: &Path) -> Result<Option<String>> {
    use crate::files::{self, OpenError};
    match files::read_regular(path, MAX_BYTES) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::config(path, "(file)", "it is not valid UTF-8")),
        Err(OpenError::Refused(r)) => Err(Error::config(path, "(file)", r.to_string())),
        Err(OpenError::Io(e)) => Err(Error::io(
            format!("could not read config {}", path.display()),
            e,
        )),
    }
}

/// Whether `name` can be exported as an environment variable by every shell.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Names no config may export, trusted or not: each one runs code or
/// changes what runs (the shell, the dynamic loader) the moment a shell
/// enters the worktree, or steers wtenv itself. Exact names here, prefixes
/// in [`REFUSED_PREFIXES`]; the README lists both ("Trust").
pub const REFUSED_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "SHELL",
    "IFS",
    "ENV",
    "BASH_ENV",
    "PROMPT_COMMAND",
    "PS0",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    "ZDOTDIR",
];

/// Prefixes of refused names: bash's exported functions, the loaders of
/// Linux and macOS, and wtenv's own variables.
pub const REFUSED_PREFIXES: &[&str] = &["BASH_FUNC_", "LD_", "DYLD_", "WTENV_"];

/// Why `name` may not be exported by a config, if it may not.
pub fn refused_name(name: &str) -> Option<String> {
    if !is_env_name(name) {
        return Some(format!(
            "{name:?} is not a valid environment variable name (letters, digits, '_', not starting with a digit)"
        ));
    }
    if REFUSED_NAMES.contains(&name) {
        return Some(format!(
            "{name} is refused: it controls the shell, so a repository setting it would run code on `cd`"
        ));
    }
    REFUSED_PREFIXES
        .iter()
        .find(|p| name.starts_with(*p))
        .map(|p| match *p {
            "WTENV_" => format!("{name} is refused: WTENV_* variables belong to wtenv itself"),
            _ => format!(
                "{name} is refused: {p}* variables control the shell or the dynamic loader, so a repository setting one would run code on `cd`"
            ),
        })
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

struct Parser<'a> {
    path: &'a Path,
}

impl Parser<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::config(self.path, key, reason)
    }

    fn table<'v>(&self, v: &'v Value, key: &str) -> Result<&'v serde_json::Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.err(key, format!("expected a table, got {}", kind(v))))
    }

    fn string<'v>(&self, v: &'v Value, key: &str) -> Result<&'v str> {
        v.as_str()
            .ok_or_else(|| self.err(key, format!("expected a string, got {}", kind(v))))
    }

    fn bool(&self, v: &Value, key: &str) -> Result<bool> {
        v.as_bool()
            .ok_or_else(|| self.err(key, format!("expected true or false, got {}", kind(v))))
    }

    fn config(&self, root: &Value) -> Result<Config> {
        let mut config = Config {
            source: Some(self.path.to_path_buf()),
            ..Config::default()
        };
        let mut env_block = None;
        for (key, value) in self.table(root, "(top level)")? {
            match key.as_str() {
                "worktrees" => self.worktrees(value, &mut config)?,
                "allocation" => {
                    for (k, v) in self.table(value, "allocation")? {
                        let path = format!("allocation.{k}");
                        match k.as_str() {
                            "skip_occupied" => config.skip_occupied = self.bool(v, &path)?,
                            _ => config.warnings.push(unknown(self.path, &path)),
                        }
                    }
                }
                "purposes" => config.purposes = self.purposes(value)?,
                "services" => config.services = self.services(value, &mut config.warnings)?,
                "env" => env_block = Some(value),
                _ => return Err(self.unknown_table(key)),
            }
        }
        if !config
            .purposes
            .contains_key(&config.worktrees.default_purpose)
        {
            return Err(self.err(
                "worktrees.default_purpose",
                format!(
                    "purpose {:?} is not defined in [purposes] (defined: {})",
                    config.worktrees.default_purpose,
                    config.purpose_names()
                ),
            ));
        }
        self.check_env_names(&config.services)?;
        if let Some(block) = env_block {
            config.env = self.env_templates(block, &config.services)?;
        }
        Ok(config)
    }

    /// An unknown top-level key: an error, with the table it likely means.
    fn unknown_table(&self, key: &str) -> Error {
        let known = TABLES.iter().map(|t| format!("[{t}]")).collect::<Vec<_>>();
        let reason = match suggest(key, TABLES) {
            Some(table) => format!("unknown table [{key}]; did you mean [{table}]?"),
            None => format!("unknown table [{key}]; known: {}", known.join(", ")),
        };
        self.err(key, reason)
    }

    fn worktrees(&self, value: &Value, config: &mut Config) -> Result<()> {
        for (k, v) in self.table(value, "worktrees")? {
            let path = format!("worktrees.{k}");
            let wt = &mut config.worktrees;
            match k.as_str() {
                "root" => wt.root = self.string(v, &path)?.to_owned(),
                "branch" => wt.branch = self.string(v, &path)?.to_owned(),
                "default_purpose" => wt.default_purpose = self.string(v, &path)?.to_owned(),
                "direnv_allow" => wt.direnv_allow = self.bool(v, &path)?,
                _ => config.warnings.push(unknown(self.path, &path)),
            }
        }
        Ok(())
    }

    /// `name = "LO-HI"` or `name = ["LO-HI", ...]` (overflow ranges, in
    /// the order they are tried). Every range of every purpose is disjoint
    /// from every other.
    fn purposes(&self, value: &Value) -> Result<BTreeMap<String, Ranges>> {
        let mut purposes: BTreeMap<String, Ranges> = BTreeMap::new();
        for (name, v) in self.table(value, "purposes")? {
            let key = format!("purposes.{name}");
            if !is_identifier(name) {
                return Err(self.err(&key, "a purpose name is letters, digits, '_' or '-'"));
            }
            let texts: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let mut ranges: Vec<PortRange> = Vec::new();
            for text in texts {
                let range =
                    PortRange::parse(self.string(text, &key)?).map_err(|r| self.err(&key, r))?;
                let mut others = purposes
                    .iter()
                    .flat_map(|(n, rs)| rs.iter().map(move |r| (format!("purposes.{n}"), r)))
                    .chain(ranges.iter().map(|r| (key.clone(), *r)));
                if let Some((other, r)) = others.find(|(_, r)| range.overlaps(r)) {
                    return Err(self.err(
                        &key,
                        format!("range {range} overlaps {other} ({r}); ranges must be disjoint"),
                    ));
                }
                ranges.push(range);
            }
            let ranges = Ranges::new(ranges).ok_or_else(|| {
                self.err(
                    &key,
                    "expected a range \"START-END\" or a list of them, got an empty list",
                )
            })?;
            purposes.insert(name.clone(), ranges);
        }
        if purposes.is_empty() {
            return Err(self.err("purposes", "at least one purpose is needed"));
        }
        Ok(purposes)
    }

    fn services(&self, value: &Value, warnings: &mut Vec<String>) -> Result<Vec<Service>> {
        let mut services = Vec::new();
        for (name, v) in self.table(value, "services")? {
            let key = format!("services.{name}");
            if !is_identifier(name) {
                return Err(self.err(&key, "a service name is letters, digits, '_' or '-'"));
            }
            let mut service = Service {
                name: name.clone(),
                env: vec![default_env_name(name)],
                run: None,
                ready_timeout: DEFAULT_READY_TIMEOUT,
                health: None,
                depends_on: Vec::new(),
                restart: Restart::No,
                socket: false,
                bind: None,
            };
            for (k, v) in self.table(v, &key)? {
                let path = format!("{key}.{k}");
                match k.as_str() {
                    "env" => {
                        service.env = match v {
                            Value::String(s) => vec![s.clone()],
                            Value::Array(items) => items
                                .iter()
                                .map(|i| self.string(i, &path).map(str::to_owned))
                                .collect::<Result<_>>()?,
                            other => {
                                return Err(self.err(
                                    &path,
                                    format!(
                                        "expected a string or a list of strings, got {}",
                                        kind(other)
                                    ),
                                ));
                            }
                        };
                        if service.env.is_empty() {
                            return Err(self.err(&path, "at least one variable name is needed"));
                        }
                    }
                    "run" => service.run = Some(self.string(v, &path)?.to_owned()),
                    "ready_timeout" => service.ready_timeout = self.duration(v, &path)?,
                    "health" => service.health = Some(self.health(v, &path, warnings)?),
                    "depends_on" => {
                        let Value::Array(items) = v else {
                            return Err(self.err(
                                &path,
                                format!("expected a list of service names, got {}", kind(v)),
                            ));
                        };
                        service.depends_on = items
                            .iter()
                            .map(|i| self.string(i, &path).map(str::to_owned))
                            .collect::<Result<_>>()?;
                    }
                    "restart" => {
                        let text = self.string(v, &path)?;
                        service.restart = Restart::parse(text).ok_or_else(|| {
                            self.err(
                                &path,
                                format!(
                                    "{text:?} is not a restart policy: \"no\", \"on-failure\" or \"always\""
                                ),
                            )
                        })?;
                    }
                    "socket" => service.socket = self.bool(v, &path)?,
                    "bind" => {
                        let text = self.string(v, &path)?;
                        service.bind = Some(text.parse().map_err(|_| {
                            self.err(
                                &path,
                                format!(
                                    "{text:?} is not an IP address like \"127.0.0.1\" or \"::\""
                                ),
                            )
                        })?);
                    }
                    _ => warnings.push(unknown(self.path, &path)),
                }
            }
            services.push(service);
        }
        if services.is_empty() {
            return Err(self.err("services", "at least one service is needed (or leave [services] out for the default `app` on PORT)"));
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

    fn duration(&self, v: &Value, key: &str) -> Result<Duration> {
        let text = self.string(v, key)?;
        humantime::parse_duration(text)
            .map_err(|e| self.err(key, format!("{text:?} is not a duration like \"30s\": {e}")))
    }

    /// `health = { http = "/healthz" | cmd = "..." | tcp = true, interval,
    /// timeout, retries, start_period }`: exactly one check.
    fn health(&self, value: &Value, key: &str, warnings: &mut Vec<String>) -> Result<Health> {
        let mut health = Health::default();
        let mut checks = Vec::new();
        for (k, v) in self.table(value, key)? {
            let path = format!("{key}.{k}");
            match k.as_str() {
                "http" => {
                    let p = self.string(v, &path)?;
                    if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(self.err(
                            &path,
                            format!(
                                "{p:?} is not a request path: it starts with '/' and has no spaces"
                            ),
                        ));
                    }
                    checks.push(k.as_str());
                    health.check = Check::Http { path: p.to_owned() };
                }
                "cmd" => {
                    let c = self.string(v, &path)?;
                    if c.trim().is_empty() {
                        return Err(self.err(&path, "the command is empty"));
                    }
                    checks.push(k.as_str());
                    health.check = Check::Cmd {
                        command: c.to_owned(),
                    };
                }
                "tcp" => {
                    if !self.bool(v, &path)? {
                        return Err(self.err(
                            &path,
                            "tcp = false names no check; use http = \"/path\" or cmd = \"...\"",
                        ));
                    }
                    checks.push(k.as_str());
                    health.check = Check::Tcp;
                }
                "interval" | "timeout" => {
                    let d = self.duration(v, &path)?;
                    if d.is_zero() {
                        return Err(self.err(&path, "must be longer than 0s"));
                    }
                    if k == "interval" {
                        health.interval = d;
                    } else {
                        health.timeout = d;
                    }
                }
                "start_period" => health.start_period = self.duration(v, &path)?,
                "retries" => {
                    health.retries =
                        v.as_u64()
                            .filter(|n| (1..=1000).contains(n))
                            .ok_or_else(|| {
                                self.err(
                                    &path,
                                    format!("expected a whole number from 1 to 1000, got {v}"),
                                )
                            })? as u32;
                }
                _ => warnings.push(unknown(self.path, &path)),
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
        Ok(health)
    }

    fn check_env_names(&self, services: &[Service]) -> Result<()> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for s in services {
            for var in &s.env {
                let key = format!("services.{}.env", s.name);
                if let Some(reason) = refused_name(var) {
                    return Err(self.err(&key, reason));
                }
                if let Some(other) = seen.insert(var, &s.name) {
                    return Err(self.err(&key, format!("{var} is also exported by services.{other}; each variable names one port")));
                }
            }
        }
        Ok(())
    }

    fn env_templates(
        &self,
        value: &Value,
        services: &[Service],
    ) -> Result<Vec<(String, Template)>> {
        let service_vars: BTreeSet<&str> = services
            .iter()
            .flat_map(|s| s.env.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for (name, v) in self.table(value, "env")? {
            let key = format!("env.{name}");
            if let Some(reason) = refused_name(name) {
                return Err(self.err(&key, reason));
            }
            if service_vars.contains(name.as_str()) {
                return Err(self.err(&key, format!("{name} is already set by a service")));
            }
            let text = self.string(v, &key)?;
            if text.contains('\0') {
                return Err(self.err(
                    &key,
                    "the value holds a NUL byte, which no environment can carry",
                ));
            }
            let template = Template::parse(text).map_err(|r| self.err(&key, r))?;
            for piece in &template.pieces {
                if let Piece::Port(s) = piece
                    && !services.iter().any(|svc| &svc.name == s)
                {
                    return Err(
                        self.err(&key, format!("{{port.{s}}} names no service in [services]"))
                    );
                }
            }
            out.push((name.clone(), template));
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

/// The candidate `word` most likely stands for: one edit or two away
/// (`purpose`, `purpsoes`), or one that starts with it.
fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= 2 || (word.len() >= 3 && c.starts_with(&word)))
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance, with a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn unknown(path: &Path, key: &str) -> String {
    format!("{}: unknown key {key:?} (ignored)", path.display())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("wtenv.toml"), text)
    }

    #[test]
    fn defaults_have_feature_range_and_app_service() {
        let c = Config::default();
        assert_eq!(
            c.purpose_ranges("feature"),
            Some(&Ranges::one(PortRange {
                start: 5000,
                end: 5099
            }))
        );
        assert_eq!(c.services[0].env, vec!["PORT".to_string()]);
    }

    #[test]
    fn range_errors_name_the_problem() {
        assert!(
            PortRange::parse("5099-5000")
                .unwrap_err()
                .contains("reversed")
        );
        assert!(
            PortRange::parse("80-90")
                .unwrap_err()
                .contains("below 1024")
        );
        assert!(PortRange::parse("abc").unwrap_err().contains("START-END"));
        assert!(PortRange::parse("5000-70000").is_err());
    }

    #[test]
    fn overlapping_purposes_are_refused() {
        let e = parse(
            "[purposes]\na = \"5000-5100\"\nb = \"5100-5200\"\n[worktrees]\ndefault_purpose=\"a\"",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("purposes.b: range 5100-5200 overlaps purposes.a"),
            "{e}"
        );
    }

    #[test]
    fn a_purpose_lists_overflow_ranges_in_order_in_toml_and_json() {
        let toml =
            parse("[purposes]\nfeature = \"5000-5001\"\nreview = [\"5400-5499\", \"15400-15499\"]")
                .unwrap();
        let json = Config::parse(
            Path::new("wtenv.json"),
            r#"{"purposes":{"feature":"5000-5001","review":["5400-5499","15400-15499"]}}"#,
        )
        .unwrap();
        for c in [&toml, &json] {
            let review = c.purpose_ranges("review").unwrap();
            assert_eq!(review.to_string(), "5400-5499, 15400-15499");
            assert_eq!(review.label(), "ranges 5400-5499, 15400-15499");
            assert!(review.contains(15400) && !review.contains(5500));
            assert_eq!(c.purposes["feature"].label(), "range 5000-5001");
        }
    }

    #[test]
    fn overflow_ranges_must_be_disjoint_and_not_empty() {
        let e = parse("[purposes]\nfeature = [\"5000-5099\", \"5050-5150\"]").unwrap_err();
        assert!(
            e.to_string().contains(
                "purposes.feature: range 5050-5150 overlaps purposes.feature (5000-5099)"
            ),
            "{e}"
        );
        let e =
            parse("[purposes]\nfeature = \"5000-5099\"\nreview = [\"6000-6009\", \"5090-5100\"]")
                .unwrap_err();
        assert!(e.to_string().contains("overlaps purposes.feature"), "{e}");
        let e = parse("[purposes]\nfeature = []").unwrap_err();
        assert!(e.to_string().contains("empty list"), "{e}");
        let e = parse("[purposes]\nfeature = [\"5000-5099\", 7]").unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }

    #[test]
    fn socket_services_bind_dual_stack_unless_an_address_is_given() {
        let c = parse(
            "[services.api]\nsocket = true\n[services.db]\n[services.web]\nsocket = true\nbind = \"127.0.0.1\"",
        )
        .unwrap();
        let found: Vec<(&str, String)> = c
            .socket_services()
            .into_iter()
            .map(|(s, ip)| (s.name.as_str(), ip.to_string()))
            .collect();
        assert_eq!(
            found,
            vec![("api", "::".to_owned()), ("web", "127.0.0.1".to_owned())]
        );
        let e = parse("[services.web]\nbind = \"localhost\"").unwrap_err();
        assert!(e.to_string().contains("services.web.bind"), "{e}");
        let e = parse("[services.web]\nsocket = \"yes\"").unwrap_err();
        assert!(e.to_string().contains("expected true or false"), "{e}");
    }

    #[test]
    fn unknown_keys_in_known_tables_warn_with_their_path() {
        let c = parse("[allocation]\ncolour = 1\n[services.web]\nenvv = \"X\"").unwrap();
        assert_eq!(c.warnings.len(), 2);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("\"services.web.envv\""))
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("\"allocation.colour\""))
        );
    }

    #[test]
    fn an_unknown_table_is_an_error_with_a_suggestion() {
        let e = parse("[purpose]\nfeature = \"6000-6009\"").unwrap_err();
        assert!(e.to_string().contains("did you mean [purposes]?"), "{e}");
        let e = parse("[servces.web]").unwrap_err();
        assert!(e.to_string().contains("did you mean [services]?"), "{e}");
        let e = parse("colour = 1").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown table [colour]; known: [worktrees]"),
            "{e}"
        );
    }

    #[test]
    fn refused_names_are_refused_everywhere_with_the_key() {
        for name in [
            "PATH",
            "PROMPT_COMMAND",
            "PS1",
            "BASH_ENV",
            "BASH_FUNC_x%%",
            "LD_PRELOAD",
            "DYLD_INSERT_LIBRARIES",
            "WTENV_STATE_DIR",
            "WTENV_WORKTREE",
            "IFS",
            "ZDOTDIR",
            "1X",
            "A-B",
            "",
        ] {
            let e = parse(&format!("[env]\n{name:?} = \"x\"")).unwrap_err();
            assert!(e.to_string().contains(&format!("env.{name}")), "{e}");
            let e = parse(&format!("[services.web]\nenv = [{name:?}]")).unwrap_err();
            assert!(e.to_string().contains("services.web.env"), "{e}");
        }
        // Trust gates these; they are not refused.
        parse("[env]\nNODE_OPTIONS = \"--inspect\"\nPATHS = \"x\"\nLDX = \"y\"").unwrap();
        let e = parse("[env]\nX = \"a\\u0000b\"").unwrap_err();
        assert!(
            e.to_string().contains("env.X: the value holds a NUL byte"),
            "{e}"
        );
    }

    #[test]
    fn toml_errors_name_line_and_column() {
        let e = parse("[purposes]\nfeature = \"6000-6009\"\nbugfix = = 1\n").unwrap_err();
        assert!(e.to_string().contains("at line 3, column 10"), "{e}");
    }

    #[test]
    fn env_names_are_validated_and_unique() {
        let e = parse("[services.web]\nenv = \"1BAD\"").unwrap_err();
        assert!(e.to_string().contains("services.web.env"), "{e}");
        let e = parse("[services.a]\nenv = \"P\"\n[services.b]\nenv = [\"P\"]").unwrap_err();
        assert!(e.to_string().contains("also exported by services.a"), "{e}");
    }

    #[test]
    fn templates_parse_and_check_services() {
        let c =
            parse("[services.api]\n[env]\nURL = \"http://localhost:{port.api}/{{x}}\"").unwrap();
        assert_eq!(
            c.env[0].1.pieces,
            vec![
                Piece::Text("http://localhost:".into()),
                Piece::Port("api".into()),
                Piece::Text("/{x}".into())
            ]
        );
        let e = parse("[services.api]\n[env]\nURL = \"{port.web}\"").unwrap_err();
        assert!(e.to_string().contains("names no service"), "{e}");
    }

    #[test]
    fn a_worktree_with_the_same_file_reuses_the_known_config() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let known = Config::discover(&a).unwrap();
        assert_eq!(Config::discover_unless_same(&b, &known).unwrap(), None);

        let text = "[purposes]\nfeature = \"6000-6009\"\n";
        std::fs::write(a.join(TOML_NAME), text).unwrap();
        let known = Config::discover(&a).unwrap();
        let fresh = Config::discover_unless_same(&b, &known).unwrap();
        assert_eq!(fresh, Some(Config::default()), "b has no file");
        std::fs::write(b.join(TOML_NAME), text).unwrap();
        assert_eq!(Config::discover_unless_same(&b, &known).unwrap(), None);
        std::fs::write(b.join(TOML_NAME), text.replace("6009", "6019")).unwrap();
        let other = Config::discover_unless_same(&b, &known).unwrap().unwrap();
        assert_eq!(other.purposes["feature"].to_string(), "6000-6019");
        std::fs::remove_file(b.join(TOML_NAME)).unwrap();
        std::fs::write(b.join(JSON_NAME), r#"{"purposes":{"feature":"6000-6009"}}"#).unwrap();
        let json = Config::discover_unless_same(&b, &known).unwrap().unwrap();
        assert_eq!(json.source, Some(b.join(JSON_NAME)));
    }

    #[test]
    fn health_depends_on_and_restart_parse() {
        let c = parse(
            "[services.api]\nhealth = { http = \"/healthz\", interval = \"500ms\", timeout = \"2s\", retries = 2, start_period = \"5s\" }\ndepends_on = [\"db\"]\nrestart = \"on-failure\"\n[services.db]\nhealth = { cmd = \"pg_isready\" }\n",
        )
        .unwrap();
        let api = c.service("api").unwrap();
        assert_eq!(
            api.health(),
            Health {
                check: Check::Http {
                    path: "/healthz".into()
                },
                interval: Duration::from_millis(500),
                timeout: Duration::from_secs(2),
                retries: 2,
                start_period: Duration::from_secs(5),
            }
        );
        assert_eq!(api.depends_on, vec!["db"]);
        assert_eq!(api.restart, Restart::OnFailure);
        let db = c.service("db").unwrap();
        assert_eq!(
            db.health().check,
            Check::Cmd {
                command: "pg_isready".into()
            }
        );
        assert_eq!(db.restart, Restart::No);
    }

    #[test]
    fn bad_health_names_the_service_and_key() {
        let cases = [
            (
                "health = { http = \"healthz\" }",
                "services.web.health.http: \"healthz\" is not a request path",
            ),
            ("health = { http = \"/a b\" }", "services.web.health.http"),
            (
                "health = { http = \"/\", cmd = \"true\" }",
                "services.web.health: one check only: http and cmd",
            ),
            (
                "health = { tcp = false }",
                "services.web.health.tcp: tcp = false names no check",
            ),
            (
                "health = { cmd = \" \" }",
                "services.web.health.cmd: the command is empty",
            ),
            (
                "health = { interval = \"0s\" }",
                "services.web.health.interval: must be longer than 0s",
            ),
            (
                "health = { timeout = \"soon\" }",
                "services.web.health.timeout: \"soon\" is not a duration",
            ),
            (
                "health = { retries = 0 }",
                "services.web.health.retries: expected a whole number",
            ),
            (
                "health = \"/healthz\"",
                "services.web.health: expected a table",
            ),
            (
                "restart = \"sometimes\"",
                "services.web.restart: \"sometimes\" is not a restart policy",
            ),
            (
                "depends_on = \"db\"",
                "services.web.depends_on: expected a list of service names",
            ),
        ];
        for (line, want) in cases {
            let e = parse(&format!("[services.web]\n{line}\n")).unwrap_err();
            assert!(e.to_string().contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn dependency_cycles_and_unknown_names_are_config_errors() {
        let e = parse("[services.web]\ndepends_on = [\"api\"]\n").unwrap_err();
        assert!(
            e.to_string().contains(
                "services.web.depends_on: service web depends on \"api\", which is not a service"
            ),
            "{e}"
        );
        let e = parse("[services.a]\ndepends_on = [\"b\"]\n[services.b]\ndepends_on = [\"a\"]\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("services.a.depends_on: dependency cycle: a -> b -> a"),
            "{e}"
        );
    }

    #[test]
    fn json_and_toml_share_the_schema() {
        let c = Config::parse(
            Path::new("wtenv.json"),
            r#"{"purposes":{"feature":"6000-6009"},"services":{"web":{"env":["PORT","WEB_PORT"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.purpose_ranges("feature"),
            Some(&Ranges::one(PortRange {
                start: 6000,
                end: 6009
            }))
        );
        assert_eq!(c.services[0].env, vec!["PORT", "WEB_PORT"]);
    }
}
