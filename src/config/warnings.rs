//! Keys the schema does not know. Inside a known table they are warnings,
//! so an older wtenv can read a newer config, each with the key of its
//! table it likely stands for, since a misspelt key silently loses its
//! setting; at the top level they are an error with a suggestion, since a
//! misspelt `[purpose]` must not silently fall back to the built-in
//! ranges. Both suggestions are made by [`suggest`], from the keys
//! [`keys_at`] gives.

use std::path::Path;

use super::Syntax;
use super::raw::keys_at;
use crate::error::{Error, Result};
use crate::process::printable_path;

/// The most unknown keys named one by one; the rest are counted in one
/// line. The warnings are said on every `cd` under the shell hook, and a
/// config of 60,000 unknown keys fits in its 1 MiB.
pub(super) const MAX_NAMED: usize = 10;

/// The longest unknown key shown whole, in characters.
const MAX_KEY_CHARS: usize = 80;

/// The warnings for `ignored` (key paths, file order): the first
/// [`MAX_NAMED`], each with its suggestion, then how many more; or the
/// error for the first unknown table among them.
pub(super) fn unknown_keys(path: &Path, ignored: &[Vec<String>]) -> Result<Vec<String>> {
    if let Some(table) = ignored.iter().find(|keys| keys.len() == 1) {
        return Err(unknown_table(path, &table[0], super::syntax_of(Some(path))));
    }
    let file = printable_path(path);
    let mut warnings: Vec<String> = ignored
        .iter()
        .take(MAX_NAMED)
        .map(|keys| format!("{file}: {}", unknown_key(keys)))
        .collect();
    match ignored.len().saturating_sub(MAX_NAMED) {
        0 => {}
        1 => warnings.push(format!("{file}: and 1 more unknown key (ignored)")),
        more => warnings.push(format!("{file}: and {more} more unknown keys (ignored)")),
    }
    Ok(warnings)
}

/// An unknown key (its dotted path) as a message shows it: cut after
/// [`MAX_KEY_CHARS`], since one may be as long as the file and a config's
/// messages are said on every `cd`.
pub fn shown(key: &str) -> String {
    match key.char_indices().nth(MAX_KEY_CHARS) {
        Some((cut, _)) => format!("{}...", &key[..cut]),
        None => key.to_owned(),
    }
}

/// An unknown key in a table (its path, outermost first), and the known
/// key of that table it likely stands for:
/// `unknown key "services.web.restrat" (ignored); did you mean "services.web.restart"?`.
/// None is suggested in a table of names the file chooses ([`keys_at`]).
fn unknown_key(keys: &[String]) -> String {
    let warning = format!("unknown key {:?} (ignored)", shown(&keys.join(".")));
    let Some((key, table)) = keys.split_last() else {
        return warning;
    };
    let table: Vec<&str> = table.iter().map(String::as_str).collect();
    match keys_at(&table).and_then(|known| suggest(key, known)) {
        Some(known) => {
            let meant = [&table[..], &[known]].concat().join(".");
            format!("{warning}; did you mean {:?}?", shown(&meant))
        }
        None => warning,
    }
}

/// An unknown top-level key: an error, with the table it likely means,
/// written as the file writes one (`[purposes]`, `"purposes"`).
fn unknown_table(path: &Path, key: &str, syntax: Syntax) -> Error {
    let key = shown(key);
    let tables = keys_at(&[]).unwrap_or_default();
    let unknown = format!(
        "unknown {} {}",
        syntax.top_level_kind(),
        syntax.top_level(&key)
    );
    let reason = match suggest(&key, tables) {
        Some(table) => format!("{unknown}; did you mean {}?", syntax.top_level(table)),
        None => {
            let known: Vec<String> = tables.iter().map(|t| syntax.top_level(t)).collect();
            format!("{unknown}; known: {}", known.join(", "))
        }
    };
    Error::config(path, &key, reason)
}

/// The candidate `word` most likely stands for (the closest; of two as
/// close, the first in the alphabet), case aside: one edit or two away
/// (`purpose`, `purpsoes`; a swap of neighbours is one), but no more than
/// one for every two letters of the candidate (`ev` stands for `env`,
/// `url` not for `run`), or one that starts with it, from three letters
/// on (`depends` for `depends_on`). The README's "Configuration" says this
/// rule. A word much longer than every candidate stands for none (and
/// costs no edit table).
fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    if word.len() > 32 {
        return None;
    }
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| (*d <= 2 && 2 * d <= c.len()) || (word.len() >= 3 && c.starts_with(&word)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_key_is_shown_cut() {
        let key = "k".repeat(900_000);
        assert_eq!(shown(&key), format!("{}...", "k".repeat(MAX_KEY_CHARS)));
        assert_eq!(shown("services.web.x"), "services.web.x");
        let e = unknown_table(Path::new("/r/wtenv.toml"), &key, Syntax::Toml).to_string();
        assert!(e.len() < 400, "{} bytes", e.len());
    }

    /// The known keys are the structs' own fields, read from serde: a
    /// field added to a struct is known at once.
    #[test]
    fn the_known_keys_of_each_table_are_its_structs_fields() {
        let tables = ["worktrees", "allocation", "purposes", "services", "env"];
        assert_eq!(keys_at(&[]), Some(&tables[..]));
        assert_eq!(
            keys_at(&["worktrees"]),
            Some(&["root", "branch", "default_purpose", "direnv_allow"][..])
        );
        assert_eq!(keys_at(&["allocation"]), Some(&["skip_occupied"][..]));
        let service = keys_at(&["services", "web"]).unwrap();
        assert!(service.contains(&"restart") && service.contains(&"health"));
        let health = keys_at(&["services", "web", "health"]).unwrap();
        assert!(health.contains(&"interval") && health.contains(&"retries"));
        // Names the file chooses: no fixed keys.
        for free in [&["purposes"][..], &["services"], &["env"], &["env", "X"]] {
            assert_eq!(keys_at(free), None, "{free:?}");
        }
    }

    #[test]
    fn a_misspelt_table_is_suggested_and_a_stranger_is_not() {
        let tables = keys_at(&[]).unwrap();
        assert_eq!(suggest("purpose", tables), Some("purposes"));
        assert_eq!(suggest("purpsoes", tables), Some("purposes"));
        assert_eq!(suggest("servces", tables), Some("services"));
        assert_eq!(suggest("colour", tables), None);
    }

    /// Short keys (`run`, `env`, `tcp`, `cmd`) are close to many short
    /// words: no more than one edit in two letters.
    #[test]
    fn a_short_key_is_suggested_for_one_edit_only() {
        let service = keys_at(&["services", "web"]).unwrap();
        assert_eq!(suggest("rn", service), Some("run"));
        assert_eq!(suggest("Run", service), Some("run"));
        assert_eq!(suggest("url", service), None);
        let health = keys_at(&["services", "web", "health"]).unwrap();
        assert_eq!(suggest("tls", health), None);
        assert_eq!(suggest("tpc", health), Some("tcp"));
    }
}
