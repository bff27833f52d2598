//! Rendering variables for shells and tools, and the only quoting in wtenv.
//!
//! Every value goes through one quoting function per format; no value,
//! whatever it holds (quotes, newlines, `$()`, backticks, backslashes), can
//! run code when the output is `eval`ed. Values are never `format!`ed raw.

use std::fmt::Write;

/// An output format of `wtenv env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Bash,
    Zsh,
    Fish,
    /// One flat object of variable to string (the shape of `direnv export
    /// json`); `null` unsets.
    Json,
    /// `NAME='value'` lines for `.env` readers.
    Dotenv,
}

/// Renders `set` (in order) and then `unset`.
pub fn render(format: Format, set: &[(String, String)], unset: &[String]) -> String {
    let mut out = String::new();
    match format {
        Format::Bash | Format::Zsh => {
            for name in unset {
                writeln!(out, "unset {name}").unwrap();
            }
            for (name, value) in set {
                writeln!(out, "export {name}={}", quote_posix(value)).unwrap();
            }
        }
        Format::Fish => {
            for name in unset {
                writeln!(out, "set -e {name}").unwrap();
            }
            for (name, value) in set {
                writeln!(out, "set -gx {name} {}", quote_fish(value)).unwrap();
            }
        }
        Format::Dotenv => {
            for (name, value) in set {
                writeln!(out, "{name}={}", quote_dotenv(value)).unwrap();
            }
        }
        Format::Json => {
            let mut map = serde_json::Map::new();
            for name in unset {
                map.insert(name.clone(), serde_json::Value::Null);
            }
            for (name, value) in set {
                map.insert(name.clone(), serde_json::Value::String(value.clone()));
            }
            out = serde_json::to_string(&map).expect("strings serialize");
            out.push('\n');
        }
    }
    out
}

/// Single quotes: nothing inside is special to bash or zsh; a `'` closes,
/// is written escaped, and reopens.
pub fn quote_posix(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// fish single quotes: only `\\` and `\'` are escapes inside.
pub fn quote_fish(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Single quotes when they suffice (literal in every dotenv reader and in
/// sh); else double quotes with `\\ \" \$ \`` escaped and newlines as `\n`,
/// which dotenv readers decode and which a shell cannot execute.
pub fn quote_dotenv(value: &str) -> String {
    if !value.contains(['\'', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_quoting_escapes_single_quotes() {
        assert_eq!(quote_posix("it's $(x)"), r"'it'\''s $(x)'");
    }

    #[test]
    fn fish_quoting_escapes_backslash_and_quote() {
        assert_eq!(quote_fish(r"a\b'c"), r"'a\\b\'c'");
    }

    #[test]
    fn json_is_flat_with_null_for_unset() {
        let out = render(
            Format::Json,
            &[("PORT".into(), "5000".into())],
            &["OLD".into()],
        );
        assert_eq!(out, "{\"OLD\":null,\"PORT\":\"5000\"}\n");
    }
}
