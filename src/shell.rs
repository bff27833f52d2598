//! Rendering variables for shells and tools, and the only quoting in wtenv
//! (the paths in the commands that messages suggest use it too).
//!
//! Every value goes through one quoting function per format; no value,
//! whatever it holds (quotes, newlines, `$()`, backticks, backslashes), can
//! run code when the output is `eval`ed. Values are never `format!`ed raw.

use crate::error::{Error, Result};

/// An output format of `wtenv env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Bash,
    Zsh,
    Fish,
    /// One flat object of variable to string (the shape of `direnv export
    /// json`); `null` unsets.
    Json,
    /// `NAME=value` lines for `.env` readers (python-dotenv, node's
    /// `dotenv`), each value quoted as it needs (single quotes, none, or
    /// double quotes) so both read it back exactly.
    Dotenv,
}

/// A variable as the prompt hook leaves it: set to a value, or unset
/// (`None`).
pub type Change = (String, Option<String>);

/// Renders `set`, in order. Only a dotenv value can be refused
/// ([`quote_dotenv`]).
pub fn render(format: Format, set: &[(String, String)]) -> Result<String> {
    let changes = set.iter().map(|(n, v)| (n.as_str(), Some(v.as_str())));
    render_changes(format, changes, false)
}

/// Renders the prompt hook's `changes`, in order. In zsh each line stands
/// in a `{ ...; } always { TRY_BLOCK_ERROR=0; }` block: zsh stops a whole
/// `eval` at a line it cannot run (an `unset` or `export` of a name the
/// user made read-only, an `export` of an array), and the block contains
/// that error, said on stderr, to its own line, so the others still run.
/// bash and fish go on by themselves.
pub fn render_hook(format: Format, changes: &[Change]) -> Result<String> {
    let changes = changes.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
    render_changes(format, changes, format == Format::Zsh)
}

/// One line per change (for JSON one object, `null` unsets; dotenv has
/// no unset), each line in zsh's error-containing block when `contained`.
fn render_changes<'a>(
    format: Format,
    changes: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    contained: bool,
) -> Result<String> {
    let (open, close) = if contained {
        ("{ ", "; } always { TRY_BLOCK_ERROR=0; }")
    } else {
        ("", "")
    };
    if format == Format::Json {
        let mut map = serde_json::Map::new();
        for (name, value) in changes {
            let value = value.map_or(serde_json::Value::Null, |v| v.into());
            map.insert(name.to_owned(), value);
        }
        let mut out = serde_json::to_string(&map).expect("strings serialize");
        out.push('\n');
        return Ok(out);
    }
    let mut out = String::new();
    for (name, value) in changes {
        let line = match (format, value) {
            (Format::Fish, None) => format!("set -e {name}"),
            (Format::Fish, Some(v)) => format!("set -gx {name} {}", quote_fish(v)),
            (Format::Dotenv, None) => continue,
            (Format::Dotenv, Some(v)) => format!("{name}={}", dotenv_value(name, v)?),
            // bash and zsh (JSON is rendered above).
            (_, None) => format!("{open}unset {name}{close}"),
            (_, Some(v)) => format!("{open}export {name}={}{close}", quote_posix(v)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Whether [`render`] would refuse `set`: a command checks so before it
/// writes anything ([`crate::ports::verify`]). Only dotenv refuses.
pub fn check(format: Format, set: &[(String, String)]) -> Result<()> {
    if format == Format::Dotenv {
        for (name, value) in set {
            dotenv_value(name, value)?;
        }
    }
    Ok(())
}

/// `value` quoted for a `.env` line, or the error naming `name`.
fn dotenv_value(name: &str, value: &str) -> Result<String> {
    quote_dotenv(value).map_err(|why| {
        Error::invalid(format!(
            "cannot write {name} as a .env line: its value {why}"
        ))
        .with_hint(
            "no quoting reads it back exactly in both python-dotenv and node's dotenv and runs nothing when a shell sources it; use --format json, or change the value",
        )
    })
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

/// A character a shell takes as itself in an unquoted word: no quoting,
/// expansion, globbing or word splitting touches it.
pub fn plain_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:,=+%@^".contains(c)
}

/// An argument vector as one line a shell reads back into the same words:
/// plain words bare (`npm run dev`), the others in single quotes
/// (`sh -c 'sleep 1; echo done'`). For records and messages a user reads;
/// an empty word is `''`.
pub fn join_words<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = words
        .into_iter()
        .map(|w| {
            let w = w.as_ref();
            if !w.is_empty() && w.chars().all(plain_word_char) {
                w.to_owned()
            } else {
                quote_posix(w)
            }
        })
        .collect();
    quoted.join(" ")
}

/// `word` (a path, a file name, a branch) as it stands in a message's
/// command for the user to paste (`hint: chmod 700 '/tmp/it'\''s/state'`):
/// quoted by [`quote_portable`], so the same text pasted into bash, zsh or
/// fish names the same word, and a `'` in a directory's name cannot end the
/// argument early or add another.
///
/// Then, as all text in messages, it goes through
/// [`printable`](crate::process::printable), which changes it only when it
/// holds a character to escape: a directory named with an escape sequence
/// or a newline must not drive the terminal or forge a line. Such a word
/// is for reading, not for pasting: its `\n` would name another path than
/// its newline does, and the quoting's own backslashes are shown doubled
/// (the README, "Messages", says so). Quoting comes first: the escapes are
/// backslashes, which quoting would write again.
pub fn quote_in_message(word: impl AsRef<std::ffi::OsStr>) -> String {
    crate::process::printable(&quote_portable(&word.as_ref().to_string_lossy()))
}

/// `value` quoted alike for bash, zsh and fish: in single quotes, with
/// each `'` and `\` written outside them as `\'` and `\\`. Inside single
/// quotes fish reads `\\` and `\'` as escapes and bash and zsh do not;
/// outside, all three read them alike. A value with neither is `'value'`,
/// and one with only `'` is what [`quote_posix`] writes.
pub fn quote_portable(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push_str("'\\");
            out.push(c);
            out.push('\'');
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// fish single quotes: only `\\` and `\'` are escapes inside. Each
/// character outside ASCII is written between quoted runs as its UTF-8
/// bytes, `\xHH` each, which fish reads as that byte in every locale.
/// Inside quotes it would be read in the user's locale, and in GBK or
/// Shift-JIS a character's last byte may be `\`: `丁` is E4 B8 81, and
/// GBK reads 81 with the next byte, so `'丁\'...'` (a quote escaped after
/// it) would end the string and run the rest.
pub fn quote_fish(value: &str) -> String {
    use std::fmt::Write as _;
    if value.is_empty() {
        return "''".to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    let mut quoted = false;
    for c in value.chars() {
        if c.is_ascii() != quoted {
            out.push('\'');
            quoted = !quoted;
        }
        if quoted {
            if c == '\\' || c == '\'' {
                out.push('\\');
            }
            out.push(c);
        } else {
            for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                write!(out, "\\x{byte:02x}").expect("writing to a String");
            }
        }
    }
    if quoted {
        out.push('\'');
    }
    out
}

/// A dotenv line's value, read back byte-exact by python-dotenv (with
/// interpolation on and off) and by node's `dotenv`, and running nothing
/// when the file is sourced by a shell. What each reader decodes (see the
/// README, "`env --format dotenv`"):
/// - single quotes: python turns `\\` and `\'` into `\` and `'`; node
///   keeps everything, but reads a carriage return as a newline;
/// - double quotes: both turn `\n` and `\r` into newline and carriage
///   return; python also decodes `\\ \' \" \a \b \f \t \v`, node
///   does not; a shell runs `$(...)` and backticks in them;
/// - python expands `${NAME}` in every value when interpolating, and has no
///   escape for it.
///
/// So: single quotes when the value has no `'`, no `\\`, no carriage
/// return and no trailing `\` (which both would read as an escaped quote);
/// else unquoted when every character is inert ([`inert_unquoted`]) and it
/// does not end in an escaped newline ([`joins_next_line`]); else
/// double quotes when it has no `"`, nothing a shell runs there
/// ([`runs_in_double_quotes`]), and no backslash that either reader would
/// decode (newlines and carriage returns are written `\n`, `\r`); else no
/// line can carry it.
pub fn quote_dotenv(value: &str) -> Result<String, String> {
    if expands_in_python_dotenv(value) {
        return Err("holds ${...}, which python-dotenv expands when it interpolates".into());
    }
    let Some(unquotable) = single_quote_blocker(value) else {
        return Ok(format!("'{value}'"));
    };
    if !value.is_empty() && value.chars().all(inert_unquoted) && !joins_next_line(value) {
        return Ok(value.to_owned());
    }
    // Why neither quoting carries it: first why not single quotes.
    let neither = |why_not_double: &str| {
        format!("holds {unquotable} (no single-quoted line carries it) and {why_not_double}")
    };
    if value.contains('"') {
        return Err(neither("a double quote (nor a double-quoted one)"));
    }
    if runs_in_double_quotes(value) {
        return Err(neither(
            "a backtick, $(, $[, ${ or $NAME[, which a shell runs in double quotes",
        ));
    }
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => match chars.peek() {
                None
                | Some('\\' | '\'' | '"' | 'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\n' | '\r') =>
                {
                    return Err(neither(
                        "a backslash that dotenv readers decode differently in double quotes",
                    ));
                }
                Some(_) => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// What keeps `value` out of single quotes in a dotenv line (see
/// [`quote_dotenv`]), or `None` when nothing does.
fn single_quote_blocker(value: &str) -> Option<&'static str> {
    if value.contains('\'') {
        Some("a single quote")
    } else if value.contains('\r') {
        Some("a carriage return")
    } else if value.contains("\\\\") {
        Some("two backslashes in a row")
    } else if value.ends_with('\\') {
        Some("a trailing backslash")
    } else {
        None
    }
}

/// Whether a shell that sources the unquoted line `NAME=value` would join
/// the next line to it: the value ends in an odd number of backslashes,
/// the last of which escapes the newline (`A=x\` then `B='y'` gave A
/// `xB=y` and B nothing).
fn joins_next_line(value: &str) -> bool {
    value.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// A character that every reader and a shell take as itself in an unquoted
/// value (backslashes included: the readers decode none there, a shell
/// drops them but runs nothing). Not white space: node's dotenv trims an
/// unquoted value with JavaScript's `trim`, which also strips U+FEFF (a
/// byte order mark), a character Unicode (and so `char::is_whitespace`)
/// does not count as white space.
fn inert_unquoted(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "_-./:@%+,=\\^".contains(c)
        || (!c.is_ascii() && !c.is_whitespace() && c != '\u{feff}' && !c.is_control())
}

/// Whether bash or zsh, reading `value` between double quotes, could run
/// code: backticks and `$(...)` run commands; `$[...]`, and `${...}` and
/// zsh's `$NAME[...]` (offsets, subscripts, `${!NAME}`, `${NAME@P}`)
/// evaluate arithmetic or another variable's value, and that value, say
/// `a[$(cmd)]` in the environment, runs `cmd`. A plain `$NAME` only
/// substitutes.
fn runs_in_double_quotes(value: &str) -> bool {
    value.contains('`')
        || value.match_indices('$').any(|(i, _)| {
            let rest = &value[i + 1..];
            // zsh names may be non-ASCII; `$#`, `$?` and the like count too.
            let after_name =
                rest.trim_start_matches(|c: char| c.is_alphanumeric() || "_#?!$@*-".contains(c));
            rest.starts_with(['(', '[', '{']) || after_name.starts_with('[')
        })
}

/// Whether python-dotenv's interpolation (`${NAME}`, `${NAME:-default}`)
/// finds a variable in `value`.
fn expands_in_python_dotenv(value: &str) -> bool {
    value.match_indices("${").any(|(i, _)| {
        let rest = &value[i + 2..];
        let name_end = rest.find(['}', ':']).unwrap_or(rest.len());
        let after = &rest[name_end..];
        after.starts_with('}') || (after.starts_with(":-") && after.contains('}'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_words_quote_only_what_a_shell_would_change() {
        assert_eq!(join_words(["npm", "run", "dev"]), "npm run dev");
        assert_eq!(
            join_words(["sh", "-c", "sleep 1; echo it's done", ""]),
            r"sh -c 'sleep 1; echo it'\''s done' ''"
        );
    }

    #[test]
    fn posix_quoting_escapes_single_quotes() {
        assert_eq!(quote_posix("it's $(x)"), r"'it'\''s $(x)'");
    }

    #[test]
    fn a_word_in_a_message_is_quoted_then_escaped() {
        // Nothing to escape: pasteable as it stands.
        assert_eq!(quote_in_message("/tmp/it's/state"), r"'/tmp/it'\''s/state'");
        assert_eq!(quote_in_message(r"/tmp/a\b"), r"'/tmp/a'\\'b'");
        // Escaped, then its backslashes too, the quoting's included: the
        // shown text reads back as the quoted word.
        assert_eq!(
            quote_in_message(std::path::Path::new("/w/it's\x1b[2J\nx")),
            r"'/w/it'\\''s\u{1b}[2J\nx'"
        );
    }

    #[test]
    fn portable_quoting_writes_quote_and_backslash_outside_the_quotes() {
        assert_eq!(quote_portable("it's $(x)"), quote_posix("it's $(x)"));
        assert_eq!(quote_portable(r"a\b'c"), r"'a'\\'b'\''c'");
        assert_eq!(quote_portable(""), "''");
    }

    #[test]
    fn fish_quoting_escapes_backslash_and_quote() {
        assert_eq!(quote_fish(r"a\b'c"), r"'a\\b\'c'");
        assert_eq!(quote_fish(""), "''");
        assert_eq!(quote_fish("x丁'y"), r"'x'\xe4\xb8\x81'\'y'");
        assert_eq!(quote_fish("é"), r"\xc3\xa9");
    }

    #[test]
    fn json_is_flat_with_null_for_unset() {
        let out = render_hook(
            Format::Json,
            &[("OLD".into(), None), ("PORT".into(), Some("5000".into()))],
        )
        .unwrap();
        assert_eq!(out, "{\"OLD\":null,\"PORT\":\"5000\"}\n");
    }

    #[test]
    fn the_hooks_zsh_lines_each_contain_their_own_error() {
        let changes = [("A".into(), None), ("B".into(), Some("it's".into()))];
        assert_eq!(
            render_hook(Format::Zsh, &changes).unwrap(),
            "{ unset A; } always { TRY_BLOCK_ERROR=0; }\n{ export B='it'\\''s'; } always { TRY_BLOCK_ERROR=0; }\n"
        );
        assert_eq!(
            render_hook(Format::Bash, &changes).unwrap(),
            "unset A\nexport B='it'\\''s'\n"
        );
        assert_eq!(
            render(Format::Zsh, &[("B".into(), "x".into())]).unwrap(),
            "export B='x'\n"
        );
    }

    #[test]
    fn dotenv_prefers_single_quotes_then_double_then_refuses() {
        assert_eq!(
            quote_dotenv("a $HOME `x` \\ \n#").unwrap(),
            "'a $HOME `x` \\ \n#'"
        );
        assert_eq!(quote_dotenv("it's $HOME\n").unwrap(), "\"it's $HOME\\n\"");
        assert_eq!(quote_dotenv("C:\\\\a\\b").unwrap(), "C:\\\\a\\b");
        assert!(quote_dotenv("a\\\\b c").is_err());
        // Unquoted, an odd run of backslashes at the end escapes the
        // newline in a shell; an even one is backslashes.
        assert_eq!(
            quote_dotenv("x\\").unwrap_err(),
            "holds a trailing backslash (no single-quoted line carries it) and a backslash that dotenv readers decode differently in double quotes"
        );
        assert!(quote_dotenv("\\").is_err());
        assert!(quote_dotenv("x\\\\\\").is_err());
        assert_eq!(quote_dotenv("x\\\\").unwrap(), "x\\\\");
        assert!(quote_dotenv("it's `x`").is_err());
        assert!(quote_dotenv("it's $(x)").is_err());
        assert!(quote_dotenv("${HOME}").is_err());
        // Each refusal says what it is about this value.
        assert_eq!(
            quote_dotenv("C:\\Program Files\\").unwrap_err(),
            "holds a trailing backslash (no single-quoted line carries it) and a backslash that dotenv readers decode differently in double quotes"
        );
        assert_eq!(
            quote_dotenv("it's \"x\"").unwrap_err(),
            "holds a single quote (no single-quoted line carries it) and a double quote (nor a double-quoted one)"
        );
        assert_eq!(
            quote_dotenv("a\\\\b `x`").unwrap_err(),
            "holds two backslashes in a row (no single-quoted line carries it) and a backtick, $(, $[, ${ or $NAME[, which a shell runs in double quotes"
        );
        assert!(quote_dotenv("${A:-b}").is_err());
        assert!(quote_dotenv("${A:b} $ {x} ${").is_ok());
        // In double quotes a shell would evaluate these (see
        // `runs_in_double_quotes`); a plain `$NAME` or a lone `$` is inert.
        for hostile in [
            "it's ${A:B}",
            "it's ${!A}",
            "it's ${A@P}",
            "it's ${A[B]}",
            "it's $A[B]",
            "it's $é[B]",
            "it's $#[B]",
            "it's $[1]",
        ] {
            assert!(quote_dotenv(hostile).is_err(), "{hostile}");
        }
        assert_eq!(
            quote_dotenv("it's $A $ [B] $ {B} $").unwrap(),
            "\"it's $A $ [B] $ {B} $\""
        );
    }
}
