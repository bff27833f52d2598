//! Text to [`RawConfig`]: TOML or JSON through serde, with the unknown keys
//! collected on the way (`serde_ignored`) and every syntax or type error
//! placed at its line and column, with the key it is under where there is
//! one (`serde_path_to_error`): `wtenv.toml:3:10: services.web.socket: ...`.

use std::path::Path;

use super::raw::{self, RawConfig};
use crate::error::{Error, Location, Result};

/// The file as read, and the key path of every key serde did not know, in
/// file order: the warnings and the unknown-table error come from them.
pub(super) fn decode(path: &Path, text: &str) -> Result<(RawConfig, Vec<Vec<String>>)> {
    let mut ignored = Vec::new();
    let raw = if path.extension().is_some_and(|e| e == "json") {
        // A byte order mark, which editors on Windows write, is read past
        // as TOML's parser does (RFC 8259 lets a parser ignore it): else
        // the error pointed at 1:1, a character no editor shows.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut de = serde_json::Deserializer::from_str(text);
        let raw =
            typed(&mut de, &mut ignored).map_err(|(key, e)| json_error(path, text, &key, &e))?;
        de.end().map_err(|e| json_error(path, text, "", &e))?;
        // A known key given twice is serde's error, and a table's entry
        // twice [`raw`]'s; an unknown one is only seen here, once per time
        // (a set: a file may hold 60,000 of them).
        let mut seen = std::collections::HashSet::with_capacity(ignored.len());
        if let Some(key) = ignored.iter().find(|key| !seen.insert(*key)) {
            let key = super::warnings::shown(&key.join("."));
            return Err(Error::config(path, key, "it is given twice"));
        }
        raw
    } else {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, None, &e))?;
        typed(de, &mut ignored).map_err(|(key, e)| toml_error(path, text, Some(&key), &e))?
    };
    Ok((raw, ignored))
}

/// [`RawConfig`] from `de`; an error comes with the dotted key it is
/// under (empty at the top level).
fn typed<'de, D: serde::Deserializer<'de>>(
    de: D,
    ignored: &mut Vec<Vec<String>>,
) -> std::result::Result<RawConfig, (String, D::Error)> {
    let mut note = |p: serde_ignored::Path| ignored.push(segments(&p));
    let mut track = serde_path_to_error::Track::new();
    let de = serde_ignored::Deserializer::new(de, &mut note);
    let raw = raw::table(serde_path_to_error::Deserializer::new(de, &mut track));
    raw.map(|raw| raw.expect("a table or an error"))
        .map_err(|e| {
            let key = track.path().to_string();
            let key = if key == "." { String::new() } else { key };
            (key, e)
        })
}

/// An ignored key's path as its keys, outermost first (`Some` and newtype
/// steps are serde's, not the file's).
fn segments(path: &serde_ignored::Path) -> Vec<String> {
    use serde_ignored::Path as P;
    let mut out = match path {
        P::Root => return Vec::new(),
        P::Seq { parent, .. }
        | P::Map { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        P::Seq { index, .. } => out.push(index.to_string()),
        P::Map { key, .. } => out.push(key.clone()),
        _ => {}
    }
    out
}

/// A syntax error (no `key`) or a type error under `key`.
fn toml_error(path: &Path, text: &str, key: Option<&str>, e: &toml::de::Error) -> Error {
    let at = e.span().map(|span| Location::at(text, span.start));
    let message = e.message().trim_end();
    let syntax = key.is_none().then_some("TOML");
    describe(path, at, key.unwrap_or(""), message, syntax)
}

fn json_error(path: &Path, text: &str, key: &str, e: &serde_json::Error) -> Error {
    let at = (e.line() > 0).then(|| Location::at_line(text, e.line(), e.column()));
    let full = e.to_string();
    let message = full
        .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&full);
    let syntax = !matches!(e.classify(), serde_json::error::Category::Data);
    describe(
        path,
        at,
        if syntax { "" } else { key },
        message,
        syntax.then_some("JSON"),
    )
}

/// The error for a syntax error (`format` named) or a type error: serde's
/// "invalid type: X, expected Y" said the way the other checks say it,
/// "expected Y, got X".
fn describe(
    path: &Path,
    at: Option<Location>,
    key: &str,
    message: &str,
    format: Option<&str>,
) -> Error {
    let reason = match format {
        Some(format) => format!("not valid {format}: {message}"),
        None => ["invalid type: ", "invalid value: "]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.rsplit_once(", expected "))
            .map(|(got, expected)| format!("expected {expected}, got {got}"))
            .unwrap_or_else(|| message.to_owned()),
    };
    Error::config_at(path, at, key, reason)
}
