//! The layering the code relies on (docs/ARCHITECTURE.md, "Map"): commands
//! are leaves. A verb's file parses its args, calls into the library and
//! renders; what two verbs share lives below them. So no file of
//! `src/commands/` imports another verb, and nothing outside `src/commands/`
//! (but `lib.rs`, which dispatches) imports `crate::commands` at all.

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

/// Every `crate::commands...` path a file names, with the line.
fn command_paths(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter_map(|(i, l)| {
            let at = l.find("crate::commands")?;
            Some((i + 1, l[at..].trim_end().to_owned()))
        })
        .collect()
}

#[test]
fn commands_are_leaves_and_nothing_below_them_imports_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
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
