//! Snapshots of every command's whole output (exit status, stdout, stderr)
//! through the real binary, in the test sandbox: what a user sees is
//! reviewed as a whole, not as fragments. This file holds the filters that
//! make a snapshot the same on every machine and in parallel runs, the
//! helpers the snapshot tests share, and a check that every snapshot file
//! belongs to a test; `snapshots_registry.rs` (`env`, `ports`, `list`,
//! `allocate`, `release`, `conflicts`, `validate`, `trust`, `untrust`,
//! `hook`, `completions`, `-q`), `snapshots_worktrees.rs`,
//! `snapshots_services.rs` and `snapshots_errors.rs` hold the tests.
//!
//! Snapshots live in `tests/it/snapshots/NAME.snap`. A changed output
//! fails the test; on purpose, `INSTA_UPDATE=always cargo test --test it
//! snapshots` (or `cargo nextest run snapshots`) rewrites them (review the
//! diff). Under `CI=true` a missing snapshot fails instead of being
//! written.

use std::process::Command;

use crate::support::{Run, TestEnv, run};

/// `s` as a regular expression matching it literally.
fn literal(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The filters of everything machine-dependent in `t`'s outputs, in the
/// order they apply: the binary's path, the sandbox's directory, pids,
/// process start times, timestamps, hashes, durations, then the test's
/// port block (`[PORT+i]` is the block's i-th port, whatever block the
/// test got).
pub fn settings(t: &TestEnv) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s.add_filter(&literal(env!("CARGO_BIN_EXE_wtenv")), "[WTENV]");
    s.add_filter(&literal(&t.root().display().to_string()), "[TMP]");
    // Where python lives differs between machines (pyenv, /usr/bin).
    s.add_filter(r#"[^\s("]*/bin/python3(\.\d+)?\b"#, "python3");
    s.add_filter(
        r#"Environment="PATH=[^"]*""#,
        r#"Environment="PATH=[PATH]""#,
    );
    s.add_filter(r"\bpid \d+", "pid [PID]");
    s.add_filter(r"\bkill \d+", "kill [PID]");
    s.add_filter(r#""pid": \d+"#, r#""pid": [PID]"#);
    s.add_filter(r#""start_time": \d+"#, r#""start_time": [START]"#);
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]");
    // Unit names carry a hash of the worktree's git dir's path.
    s.add_filter(r"\b(wtenv-[\w.-]*?_)[0-9a-f]{8}-", "${1}[PATH-HASH]-");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    s.add_filter(r"\b[0-9a-f]{40}\b", "[GIT-HASH]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[SHA256-PREFIX]");
    for i in 0..t.ports.len() {
        s.add_filter(&format!(r"\b{}\b", t.ports.port(i)), format!("[PORT+{i}]"));
    }
    // Tables pad their columns to the widest cell, a pid's width varies:
    // two spaces between columns, whatever the padding (indentation kept).
    s.add_filter(r"(\S) {2,}", "$1  ");
    s
}

/// Snapshots `out` as `name`, filtered by [`settings`].
pub fn check(t: &TestEnv, name: &str, out: &Run) {
    check_with(t, name, out, &[]);
}

/// [`check`] with `extra` filters (pattern, replacement) applied after
/// the usual ones.
pub fn check_with(t: &TestEnv, name: &str, out: &Run, extra: &[(&str, &str)]) {
    check_text(t, name, &out.to_string(), extra);
}

/// Snapshots `text` (e.g. a file wtenv wrote) as `name`, filtered by
/// [`settings`] and then `extra`.
pub fn check_text(t: &TestEnv, name: &str, text: &str, extra: &[(&str, &str)]) {
    let mut s = settings(t);
    for (pattern, replacement) in extra {
        s.add_filter(pattern, *replacement);
    }
    s.bind(|| insta::assert_snapshot!(name, text));
}

/// Runs `cmd`, snapshots its output as `name`, and returns it.
pub fn snap(t: &TestEnv, name: &str, cmd: &mut Command) -> Run {
    let out = run(cmd);
    check(t, name, &out);
    out
}

/// `web` and `api` with a range of one port: the second allocation finds
/// the range full.
pub fn one_port_for_two_services(t: &TestEnv) {
    let p = t.ports.port(0);
    let config = format!("[purposes]\nfeature = \"{p}-{p}\"\n[services.web]\n[services.api]\n");
    std::fs::write(t.repo.join("wtenv.toml"), config).unwrap();
}

/// Two services: `web` (exported as `PORT` too) and `api`.
pub fn two_services(t: &TestEnv) {
    t.write_config("[services.web]\nenv = [\"PORT\"]\n[services.api]\n");
}

/// `name` matches `pattern`, a snapshot name as the tests write it, where
/// a `{...}` placeholder stands for any non-empty text.
fn matches_name(pattern: &str, name: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        parts.push(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    parts.push(rest);
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return name == first;
    }
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut middle = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(at) if at > 0 => middle = &middle[at + part.len()..],
            _ => return false,
        }
    }
    !middle.is_empty()
}

/// The contents of the string literals (plain and raw) in Rust `source`.
fn string_literals(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find('"') {
        let before = &rest[..at];
        if before.ends_with('\'') {
            // The character literal '"'.
            rest = &rest[at + 1..];
            continue;
        }
        let hashes = before.len() - before.trim_end_matches('#').len();
        let raw = before.trim_end_matches('#').ends_with('r');
        let body = &rest[at + 1..];
        let end = if raw {
            let close = format!("\"{}", "#".repeat(hashes));
            body.find(&close).map(|e| (e, e + close.len()))
        } else {
            let mut escaped = false;
            body.char_indices()
                .find(|&(_, c)| {
                    let end = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map(|(e, _)| (e, e + 1))
        };
        let Some((end, next)) = end else { break };
        out.push(&body[..end]);
        rest = &body[next..];
    }
    out
}

/// Every committed snapshot is written by some test: a snapshot left
/// behind by a renamed or removed test would otherwise never fail. (A name
/// is matched against the string literals of the snapshot tests, with
/// `{...}` standing for what `format!` fills in.)
#[test]
fn every_snapshot_file_belongs_to_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it");
    let sources: String = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("snapshots") && name.ends_with(".rs")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // Names only: snake case with placeholders (not "{}", which is any).
    let names: Vec<&str> = string_literals(&sources)
        .into_iter()
        .filter(|l| {
            l.contains('_')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_{}".contains(c))
        })
        .collect();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(format!("{dir}/snapshots")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".snap") else {
            orphans.push(name);
            continue;
        };
        if !names.iter().any(|l| matches_name(l, stem)) {
            orphans.push(name);
        }
    }
    orphans.sort();
    assert!(
        orphans.is_empty(),
        "files in tests/it/snapshots/ no test writes (remove them): {orphans:?}"
    );
}
