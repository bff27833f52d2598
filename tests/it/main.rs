//! One integration test binary, a module per area.

mod support;

mod background;
mod config;
mod devserver;
pub mod direnv;
mod display;
mod docs;
mod dotenv;
mod exit_codes;
mod fuzz;
mod health;
mod hints;
mod hostile;
mod layering;
mod lifecycle;
mod names;
mod nix;
mod probe;
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
mod supervise;
mod trust;
mod unusable_state;
mod up;
mod validate;
mod worktrees;

/// Every file in tests/it/ is a module here: a forgotten file would be
/// tests that never run.
#[test]
fn every_test_file_is_a_module() {
    let main = include_str!("main.rs");
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(module) = name.strip_suffix(".rs").filter(|m| *m != "main") {
            assert!(
                main.contains(&format!("mod {module};")),
                "tests/it/{name} is not declared in main.rs"
            );
        }
    }
}
