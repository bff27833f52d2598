//! `wtenv.toml` / `wtenv.json` through the real binary: a bad config is
//! exit 1 naming the file and the key, and nothing is allocated; an
//! unknown table is an error with a suggestion. An unknown key inside a
//! known table is a warning: `unknown_keys.rs`.
//!
//! A module per concept; this file holds the two refusal checks several
//! of them share (`assert_refused`, `assert_refused_at`).

mod formats;
mod hints;
mod limits;
mod ranges;
mod schema;
mod syntax;
mod variables;

use crate::support::{TestEnv, run};

/// `env` with `config` as wtenv.toml: exit 1, file and key named, the
/// reason given, no registry entry made.
fn assert_refused(config: &str, key: &str, reason: &str) {
    let t = TestEnv::new();
    std::fs::write(t.repo.join("wtenv.toml"), config).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{config:?}: {out}");
    assert!(out.stdout.is_empty(), "{out}");
    let file = t.repo.join("wtenv.toml");
    assert!(
        out.stderr
            .contains(&format!("invalid config {}: {key}: ", file.display())),
        "{config:?}: key {key} not named: {out}"
    );
    assert!(
        out.stderr.contains(reason),
        "{config:?}: no {reason:?}: {out}"
    );
    assert!(t.allocations().is_empty());
}

/// `env` with `config` as the repository's `name` (wtenv.toml or
/// wtenv.json): exit 1, `FILE:LINE:COL: KEY: ` then the reason, the hint
/// quoting the line, no registry entry made.
fn assert_refused_at(name: &str, config: impl AsRef<[u8]>, place: &str, reason: &str, hint: &str) {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    let file = t.repo.join(name);
    std::fs::write(&file, &config).unwrap();
    let config = String::from_utf8_lossy(config.as_ref());
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{config:?}: {out}");
    assert!(out.stdout.is_empty(), "{out}");
    let want = format!("error: invalid config {}:{place}{reason}\n", file.display());
    assert!(
        out.stderr.starts_with(&want),
        "{config:?}: want {want:?}: {out}"
    );
    assert!(
        out.stderr
            .contains(&format!("hint: {hint}, then run the command again\n")),
        "{config:?}: no hint {hint:?}: {out}"
    );
    assert!(t.allocations().is_empty());
}
