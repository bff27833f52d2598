//! How a config's messages write its keys, tables and types: in the
//! syntax of the file they are about, TOML's or JSON's.

use std::path::Path;

use super::raw;

/// How a message or a hint writes a place in a config file, and names the
/// type of a value, so that the user of a `wtenv.json` is not told to
/// write TOML into it, nor of serde's maps and sequences. Every wording
/// that differs between the formats is here; a message says the rest the
/// same way for both, and a hint names the file with
/// [`Config::file_named_for`](super::Config::file_named_for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Toml,
    Json,
}

impl Syntax {
    /// Adding `key` with `value` (already written in the format) to the
    /// table at `table` (`["services", "web"]`):
    /// `add run = "..." under [services.web]`,
    /// `add "run": "..." to "services": {"web": {...}}`.
    pub fn add(self, key: &str, value: &str, table: &[&str]) -> String {
        match self {
            Syntax::Toml => format!("add {key} = {value} under {}", self.table(table)),
            Syntax::Json => format!("add \"{key}\": {value} to {}", self.table(table)),
        }
    }

    /// The tables at `table`, as a list of things the file declares:
    /// `[services.NAME] tables`, `"services": {"NAME": {...}} entries`.
    pub fn tables(self, table: &[&str]) -> String {
        match self {
            Syntax::Toml => format!("{} tables", self.table(table)),
            Syntax::Json => format!("{} entries", self.table(table)),
        }
    }

    /// The key `key` of the table at `table`: `[worktrees] branch`,
    /// `"worktrees": {"branch": ...}`.
    pub fn key(self, table: &[&str], key: &str) -> String {
        match self {
            Syntax::Toml => format!("{} {key}", self.table(table)),
            Syntax::Json => nest(table, &format!("{{\"{key}\": ...}}")),
        }
    }

    /// Setting `key` of the table at `table` to `value` (already written
    /// in the format): `[allocation] skip_occupied = true`,
    /// `"allocation": {"skip_occupied": true}`.
    pub fn setting(self, table: &[&str], key: &str, value: &str) -> String {
        match self {
            Syntax::Toml => format!("{} {key} = {value}", self.table(table)),
            Syntax::Json => nest(table, &format!("{{\"{key}\": {value}}}")),
        }
    }

    /// The format's name: `TOML`, `JSON`.
    pub fn name(self) -> &'static str {
        match self {
            Syntax::Toml => "TOML",
            Syntax::Json => "JSON",
        }
    }

    /// `[services.web]`, `"services": {"web": {...}}`.
    pub fn table(self, table: &[&str]) -> String {
        match self {
            Syntax::Toml => format!("[{}]", table.join(".")),
            Syntax::Json => nest(table, "{...}"),
        }
    }

    /// `key` set to `value` (already written in the format), where the
    /// table is said around it: `tcp = false`, `"tcp": false`.
    pub fn pair(self, key: &str, value: &str) -> String {
        match self {
            Syntax::Toml => format!("{key} = {value}"),
            Syntax::Json => format!("\"{key}\": {value}"),
        }
    }

    /// A key of the top level: `[purposes]`, `"purposes"`.
    pub fn top_level(self, key: &str) -> String {
        match self {
            Syntax::Toml => format!("[{key}]"),
            Syntax::Json => format!("\"{key}\""),
        }
    }

    /// What the file calls a key of the top level: `table`, `top-level
    /// key` (a JSON one need not hold an object).
    pub fn top_level_kind(self) -> &'static str {
        match self {
            Syntax::Toml => "table",
            Syntax::Json => "top-level key",
        }
    }

    /// A type as serde's messages name it (`sequence`, `map`, `integer
    /// `1``, `floating point `1.5``, and [`raw`]'s `a table`), the value
    /// after it kept, in the words of the format: `array`, `table` or
    /// `object`, `integer` and `float` or `number`. Any other text is
    /// returned as it is (`a string`, `boolean `true``, `null`).
    pub(crate) fn type_words(self, serde: &str) -> String {
        const WORDS: &[(&str, &str, &str)] = &[
            (raw::TABLE, raw::TABLE, "an object"),
            ("sequence", "array", "array"),
            ("map", "table", "object"),
            ("integer", "integer", "number"),
            ("floating point", "float", "number"),
        ];
        for &(word, toml, json) in WORDS {
            let rest = match serde.strip_prefix(word) {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest,
                _ => continue,
            };
            let word = match self {
                Syntax::Toml => toml,
                Syntax::Json => json,
            };
            return format!("{word}{rest}");
        }
        serde.to_owned()
    }
}

/// `inner` as the value at `path` in JSON: `"a": {"b": inner}`.
fn nest(path: &[&str], inner: &str) -> String {
    let Some((last, outer)) = path.split_last() else {
        return inner.to_owned();
    };
    let mut out = format!("\"{last}\": {inner}");
    for name in outer.iter().rev() {
        out = format!("\"{name}\": {{{out}}}");
    }
    out
}

/// A key's path as messages write it, outermost first, in both formats:
/// `services.web.socket`. A name that is not a bare key (letters, digits,
/// `_`, `-`) is quoted, so that `[services."web.ui"]` is
/// `services."web.ui"`, not `services.web.ui`, which reads as key `ui`
/// of service `web`.
pub fn key_path<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for key in keys {
        push_key(&mut out, key.as_ref());
    }
    out
}

/// `key` added to the path `out` as [`key_path`] writes it.
pub fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        out.push_str(key);
    } else {
        out.push_str(&format!("{key:?}"));
    }
}

/// [`Config::syntax`](super::Config::syntax), from the config's `source` alone.
pub fn syntax_of(source: Option<&Path>) -> Syntax {
    match source {
        Some(path) if path.extension().is_some_and(|e| e == "json") => Syntax::Json,
        _ => Syntax::Toml,
    }
}
