//! The layering the code relies on (docs/ARCHITECTURE.md, "Map"): commands
//! are leaves. A verb's file parses its args, calls into the library and
//! renders; what two verbs share lives below them. So no file of
//! `src/commands/` imports another verb, and nothing outside `src/commands/`
//! (but `lib.rs`, which dispatches) imports `crate::commands` at all. And
//! no file but `src/report.rs` prints to stderr with `eprintln!`, and none
//! but `src/settings.rs` reads an environment variable.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every file of `src/`, with its path relative to `src/`.
fn src_files() -> Vec<(String, PathBuf)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    rust_files(&src)
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap().to_string_lossy();
            (rel.into_owned(), file)
        })
        .collect()
}

/// What `find` finds on each line of `file` outside comments, with the
/// line number.
fn code_lines(file: &Path, find: impl Fn(&str) -> Option<String>) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter_map(|(i, l)| Some((i + 1, find(l)?)))
        .collect()
}

/// Every `crate::commands...` path a file names, with the line.
fn command_paths(file: &Path) -> Vec<(usize, String)> {
    code_lines(file, |l| {
        let at = l.find("crate::commands")?;
        Some(l[at..].trim_end().to_owned())
    })
}

#[test]
fn commands_are_leaves_and_nothing_below_them_imports_them() {
    let mut offences = Vec::new();
    for (rel, file) in src_files() {
        for (line, path) in command_paths(&file) {
            let allowed = match rel.as_str() {
                // The dispatcher, and the binary's entry.
                "lib.rs" | "main.rs" | "commands/mod.rs" => true,
                // A verb may name the command line itself (completions
                // renders it), never another verb.
                r if r.starts_with("commands/") => {
                    path.starts_with("crate::commands::Cli")
                        || path.starts_with("crate::commands::{Cli}")
                }
                _ => false,
            };
            if !allowed {
                offences.push(format!("src/{rel}:{line}: {path}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "commands must stay leaves; move what is shared below them:\n{}",
        offences.join("\n")
    );
}

/// The check itself sees an import when there is one (it would otherwise
/// pass on any tree).
#[test]
fn the_layering_check_finds_an_import_of_another_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("enter.rs");
    std::fs::write(
        &file,
        "// crate::commands::create in a comment does not count\nuse crate::commands::create;\n",
    )
    .unwrap();
    assert_eq!(
        command_paths(&file),
        vec![(2, "crate::commands::create;".to_owned())]
    );
}

/// Every `eprintln!` / `eprint!` a file holds outside comments, with the
/// line.
fn stray_prints(file: &Path) -> Vec<(usize, String)> {
    code_lines(file, |l| {
        (l.contains("eprintln!") || l.contains("eprint!")).then(|| l.trim().to_owned())
    })
}

/// One error channel (docs/ARCHITECTURE.md, "Messages"): every message
/// to the user goes through `src/report.rs`, which honours `-q` and
/// `--json`; a stray print would ignore both.
#[test]
fn messages_to_the_user_go_through_the_reporter_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == "report.rs" {
            continue;
        }
        for (line, text) in stray_prints(&file) {
            offences.push(format!("src/{rel}:{line}: {text}"));
        }
    }
    assert!(
        offences.is_empty(),
        "say it through crate::report (error, warn, note, hint, status):\n{}",
        offences.join("\n")
    );
}

/// The check sees a stray print when there is one.
#[test]
fn the_reporter_check_finds_a_stray_print() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("up.rs");
    std::fs::write(
        &file,
        "// eprintln!(\"in a comment\") does not count\nfn f() {\n    eprint!(\"x\");\n    eprintln!(\"y\");\n}\n",
    )
    .unwrap();
    assert_eq!(
        stray_prints(&file),
        vec![
            (3, "eprint!(\"x\");".to_owned()),
            (4, "eprintln!(\"y\");".to_owned())
        ]
    );
}

/// Every read of an environment variable a file holds outside comments.
fn env_reads(file: &Path) -> Vec<(usize, String)> {
    code_lines(file, |l| {
        ["env::var(", "env::var_os(", "env::vars("]
            .iter()
            .any(|r| l.contains(r))
            .then(|| l.trim().to_owned())
    })
}

/// Settings are read in one place (README, "Environment variables"): a
/// variable read anywhere else would be missing from the documented list,
/// and read again on every call.
#[test]
fn environment_variables_are_read_in_the_settings_module_only() {
    let mut offences = Vec::new();
    for (rel, file) in src_files().into_iter().filter(|(r, _)| r != "settings.rs") {
        for (line, text) in env_reads(&file) {
            offences.push(format!("src/{rel}:{line}: {text}"));
        }
    }
    assert!(
        offences.is_empty(),
        "read it through crate::settings (and list it in the README):\n{}",
        offences.join("\n")
    );
}

/// The check sees a read when there is one.
#[test]
fn the_settings_check_finds_a_stray_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.rs");
    std::fs::write(
        &file,
        "// std::env::var(\"A\") in a comment\nlet a = std::env::var_os(\"HOME\");\n",
    )
    .unwrap();
    assert_eq!(
        env_reads(&file),
        vec![(2, "let a = std::env::var_os(\"HOME\");".to_owned())]
    );
}
