//! Text to [`RawConfig`]: TOML or JSON through serde, with the unknown keys
//! collected on the way (`serde_ignored`) and every syntax or type error
//! placed at its line and column, with the key it is under where there is
//! one (`serde_path_to_error`): `wtenv.toml:3:10: services.web.socket: ...`.

use std::path::Path;

use super::Syntax;
use super::raw::{self, RawConfig};
use crate::error::{Error, Location, Result};

/// The file as read, and the key path of every key serde did not know, in
/// file order: the warnings and the unknown-table error come from them.
pub(super) fn decode(path: &Path, text: &str) -> Result<(RawConfig, Vec<Vec<String>>)> {
    let mut ignored = Vec::new();
    let raw = if super::syntax_of(Some(path)) == Syntax::Json {
        // A byte order mark, which editors on Windows write, is read past
        // as TOML's parser does (RFC 8259 lets a parser ignore it): else
        // the error pointed at 1:1, a character no editor shows.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut de = serde_json::Deserializer::from_str(text);
        // A key given twice, known or not, is [`raw`]'s error, placed.
        let raw =
            typed(&mut de, &mut ignored).map_err(|(key, e)| json_error(path, text, &key, &e))?;
        de.end().map_err(|e| json_error(path, text, "", &e))?;
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
    let raw = raw::struct_table(serde_path_to_error::Deserializer::new(de, &mut track));
    raw.map_err(|e| {
        use serde_path_to_error::Segment;
        // As serde_path_to_error writes it (`purposes.feature[0]`), with
        // a name that is not a bare key quoted.
        let mut key = String::new();
        for segment in track.path().iter() {
            match segment {
                Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                Segment::Map { key: name } | Segment::Enum { variant: name } => {
                    super::syntax::push_key(&mut key, name);
                }
                Segment::Unknown => {
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push('?');
                }
            }
        }
        // A key may be as long as the file: shown cut, as an unknown one.
        let key = super::warnings::shown(&key);
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
    let syntax = key.is_none();
    describe(path, at, key.unwrap_or(""), message, Syntax::Toml, syntax)
}

fn json_error(path: &Path, text: &str, key: &str, e: &serde_json::Error) -> Error {
    let at = (e.line() > 0).then(|| Location::at_line(text, e.line(), e.column()));
    let full = e.to_string();
    let message = full
        .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&full);
    let syntax = !matches!(e.classify(), serde_json::error::Category::Data);
    let key = if syntax { "" } else { key };
    describe(path, at, key, message, Syntax::Json, syntax)
}

/// The error for a syntax error (`syntax`) or a type error: serde's
/// "invalid type: X, expected Y" said the way the other checks say it,
/// "expected Y, got X", with the types named in the format's words
/// ([`Syntax::type_words`]: a JSON array is no sequence).
fn describe(
    path: &Path,
    at: Option<Location>,
    key: &str,
    message: &str,
    format: Syntax,
    syntax: bool,
) -> Error {
    let reason = match format {
        _ if syntax => format!("not valid {}: {message}", format.name()),
        _ => ["invalid type: ", "invalid value: "]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.rsplit_once(", expected "))
            .map(|(got, expected)| {
                let (got, expected) = (format.type_words(got), format.type_words(expected));
                format!("expected {expected}, got {got}")
            })
            .unwrap_or_else(|| message.to_owned()),
    };
    Error::config_at(path, at, key, reason)
}
