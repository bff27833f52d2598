//! The nix hook's EXIT trap beside one the shellHook sets: one set
//! before the hook still runs, after the release; one set after it
//! replaces the hook's, and the watcher releases instead.

use std::time::Duration;

use super::bash_with_hook as bash;
use crate::support::{TestEnv, wait_for};

/// A shellHook's own cleanup, set before the hook, runs when the shell
/// exits: after the release (the ports show nothing held by then), with
/// the shell's exit status, its text as written (a `'` in it included).
/// Hooked twice, the shell still releases once and runs it once.
#[test]
fn the_nix_hook_chains_onto_an_exit_trap_set_before_it() {
    let t = TestEnv::new();
    let out = bash(
        &t,
        "trap 'echo \"user-cleanup-ran $? it'\\''s\"; {wtenv} ports' EXIT\n\
         {hook}\n\
         {wtenv} ports\n\
         exit 3",
    );
    assert_eq!(out.code, Some(3), "{out}");
    let (during, after) = out
        .stdout
        .split_once("user-cleanup-ran 3 it's\n")
        .unwrap_or_else(|| panic!("the user's trap did not run: {out}"));
    assert!(during.contains("held by pid"), "{out}");
    assert!(
        !after.contains("held"),
        "released after the user's trap: {out}"
    );
    assert!(t.allocations().is_empty(), "{out}");

    let out = bash(
        &t,
        "trap 'echo user-cleanup-ran' EXIT\n{hook}\n{hook}\ntrap -p EXIT",
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.matches("__wtenv_release").count(), 1, "{out}");
    assert_eq!(out.stdout.matches("user-cleanup-ran").count(), 2, "{out}");
}

/// A trap set after the hook's replaces it (bash keeps one per signal):
/// the shell's watcher releases its holds once it has exited.
#[test]
fn a_trap_set_after_the_nix_hook_replaces_it_and_the_watcher_releases() {
    let t = TestEnv::new();
    let out = bash(&t, "{hook}\ntrap 'echo later' EXIT\n{wtenv} ports");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("held by pid"), "{out}");
    assert!(out.stdout.ends_with("later\n"), "{out}");
    assert!(
        wait_for(Duration::from_secs(30), || t.allocations().is_empty()),
        "{}",
        t.registry()
    );
}
