//! One integration test binary, a module per area.

mod support;

mod background;
mod config;
mod descriptors;
mod devserver;
pub mod direnv;
mod display;
mod docs;
mod dotenv;
mod escaped_messages;
mod exit_codes;
mod fuzz;
mod health;
mod hints;
mod holders;
mod hostile;
mod layering;
mod lifecycle;
mod names;
mod nix;
mod probe;
mod prunable;
mod quoting;
mod ranges;
mod registry;
mod report;
mod service_dir;
mod shell;
mod snapshots;
mod snapshots_errors;
mod snapshots_registry;
mod snapshots_services;
mod snapshots_worktrees;
mod sockets;
mod status_files;
mod supervise;
mod trust;
mod unknown_keys;
mod unusable_state;
mod up;
mod up_sockets;
mod validate;
mod validate_prunable;
mod worktrees;

/// Every file in tests/it/ is a module here, and every file in a
/// module's directory (tests/it/NAME/) a module of NAME: a forgotten file
/// would be tests that never run.
#[test]
fn every_test_file_is_a_module() {
    use std::path::Path;
    /// The files of `dir` are declared in `declaring` (`main.rs`, a
    /// `mod.rs`, or the directory's sibling `NAME.rs`), and so, below it,
    /// are those of each directory that holds Rust files.
    fn check(dir: &Path, declaring: &Path) {
        let text = std::fs::read_to_string(declaring).unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let module = if path.is_dir() {
                let holds_rust = std::fs::read_dir(&path)
                    .unwrap()
                    .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "rs"));
                if !holds_rust {
                    continue;
                }
                let own = path.join("mod.rs");
                let sibling = dir.join(format!("{name}.rs"));
                check(&path, if own.exists() { &own } else { &sibling });
                name
            } else if path == declaring || name == "mod.rs" {
                continue;
            } else if let Some(module) = name.strip_suffix(".rs") {
                module.to_owned()
            } else {
                continue;
            };
            // A line of its own, not commented out: `// mod x;` holds the
            // text and declares nothing.
            let declared = text
                .lines()
                .map(str::trim)
                .any(|l| l.strip_prefix("pub ").unwrap_or(l) == format!("mod {module};"));
            assert!(
                declared,
                "{} is not declared in {}",
                path.display(),
                declaring.display()
            );
        }
    }
    let it = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it"));
    check(it, &it.join("main.rs"));
}
