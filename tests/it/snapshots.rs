//! Snapshots of every command's whole output (exit status, stdout, stderr)
//! through the real binary, in the test sandbox: what a user sees is
//! reviewed as a whole, not as fragments. This file holds the filters that
//! make a snapshot the same on every machine and in parallel runs, and the
//! registry commands (`env`, `ports`, `list`, `allocate`, `release`,
//! `conflicts`, `validate`, `trust`, `untrust`, `hook`, `completions`);
//! `snapshots_worktrees.rs`, `snapshots_services.rs` and
//! `snapshots_errors.rs` hold the rest.
//!
//! Snapshots live in `tests/it/snapshots/NAME.snap`. A changed output
//! fails the test; on purpose, `INSTA_UPDATE=always cargo nextest run
//! snapshots` rewrites them (review the diff). Under `CI=true` a missing
//! snapshot fails instead of being written.

use std::process::Command;

use rstest::rstest;
use serde_json::json;

use crate::support::{HttpServer, Run, TestEnv, run};

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
    s.add_filter(r#""pid": \d+"#, r#""pid": [PID]"#);
    s.add_filter(r#""start_time": \d+"#, r#""start_time": [START]"#);
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]");
    // Unit names carry a hash of the repository's path.
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

#[rstest]
#[case::bash("bash")]
#[case::zsh("zsh")]
#[case::fish("fish")]
#[case::json("json")]
#[case::dotenv("dotenv")]
fn env_prints_the_worktrees_ports_in_each_format(#[case] format: &str) {
    let t = TestEnv::new();
    two_services(&t);
    snap(
        &t,
        &format!("env_prints_the_worktrees_ports_as_{format}"),
        &mut t.wtenv(&["env", "--format", format]),
    );
}

#[test]
fn env_of_an_untrusted_config_leaves_its_env_out_with_a_warning() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[env]\nAPI_URL = \"http://localhost:{port.web}\"\n");
    snap(
        &t,
        "env_of_an_untrusted_config_leaves_its_env_out_with_a_warning",
        &mut t.wtenv(&["env"]),
    );
    snap(
        &t,
        "trust_records_the_configs_hash",
        &mut t.wtenv(&["trust"]),
    );
    snap(
        &t,
        "env_of_a_trusted_config_exports_its_env",
        &mut t.wtenv(&["env"]),
    );
    snap(
        &t,
        "trust_list_shows_every_trusted_config",
        &mut t.wtenv(&["trust", "--list"]),
    );
    snap(
        &t,
        "untrust_forgets_the_repositorys_configs",
        &mut t.wtenv(&["untrust"]),
    );
    snap(
        &t,
        "trust_list_of_nothing_trusted",
        &mut t.wtenv(&["trust", "--list"]),
    );
}

#[test]
fn env_on_an_occupied_port_fails_with_the_conflict_message() {
    let t = TestEnv::new();
    two_services(&t);
    let _squatter = HttpServer::start(&t.repo, t.ports.port(0));
    snap(
        &t,
        "env_on_an_occupied_port_fails_with_the_conflict_message",
        &mut t.wtenv(&["env"]),
    );
    snap(
        &t,
        "conflicts_names_the_occupied_port_and_its_holder",
        &mut t.wtenv(&["conflicts"]),
    );
    snap(
        &t,
        "env_skip_occupied_takes_the_next_free_port",
        &mut t.wtenv(&["env", "--skip-occupied"]),
    );
}

#[test]
fn ports_and_list_show_allocations_and_their_state() {
    let t = TestEnv::new();
    two_services(&t);
    snap(&t, "ports_with_an_empty_registry", &mut t.wtenv(&["ports"]));
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let _server = HttpServer::start(&t.repo, t.ports.port(1));
    snap(
        &t,
        "ports_shows_each_allocation_idle_or_listening",
        &mut t.wtenv(&["ports"]),
    );
    snap(
        &t,
        "ports_json_shows_each_allocation_with_its_listeners",
        &mut t.wtenv(&["ports", "--json"]),
    );
    let wt = t.add_worktree("by-hand");
    snap(
        &t,
        "list_shows_every_worktree_with_its_ports_and_state",
        &mut t.wtenv(&["list"]),
    );
    snap(
        &t,
        "list_json_shows_every_worktree_with_its_ports_and_state",
        &mut t.wtenv(&["list", "--json"]),
    );
    drop(wt);
}

#[test]
fn allocate_prints_the_port_and_release_names_what_it_freed() {
    let t = TestEnv::new();
    two_services(&t);
    snap(
        &t,
        "allocate_prints_the_services_port",
        &mut t.wtenv(&["allocate", "--service", "web"]),
    );
    snap(
        &t,
        "allocate_of_an_undeclared_service_is_ad_hoc",
        &mut t.wtenv(&["allocate", "--service", "extra"]),
    );
    snap(
        &t,
        "allocate_again_gives_the_same_port",
        &mut t.wtenv(&["allocate", "--service", "web"]),
    );
    snap(
        &t,
        "release_of_one_service_names_its_port",
        &mut t.wtenv(&["release", "--service", "extra"]),
    );
    snap(
        &t,
        "release_of_a_service_without_a_port_says_so",
        &mut t.wtenv(&["release", "--service", "extra"]),
    );
    snap(
        &t,
        "release_names_every_port_it_frees",
        &mut t.wtenv(&["release"]),
    );
}

#[test]
fn allocate_in_a_full_range_fails_with_what_to_do() {
    let t = TestEnv::new();
    one_port_for_two_services(&t);
    assert_eq!(
        run(&mut t.wtenv(&["allocate", "--service", "web"])).code,
        Some(0)
    );
    snap(
        &t,
        "allocate_in_a_full_range_fails_with_what_to_do",
        &mut t.wtenv(&["allocate", "--service", "api"]),
    );
}

#[test]
fn conflicts_with_none_says_so() {
    let t = TestEnv::new();
    two_services(&t);
    snap(
        &t,
        "conflicts_with_none_says_so",
        &mut t.wtenv(&["conflicts"]),
    );
    snap(
        &t,
        "conflicts_json_with_none",
        &mut t.wtenv(&["conflicts", "--json"]),
    );
}

#[test]
fn validate_reports_findings_fixes_them_and_exits_by_severity() {
    let t = TestEnv::new();
    two_services(&t);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    snap(
        &t,
        "validate_of_a_sound_registry_is_valid",
        &mut t.wtenv(&["validate"]),
    );
    snap(
        &t,
        "validate_verify_ports_warns_of_ports_nothing_listens_on",
        &mut t.wtenv(&["validate", "--verify-ports"]),
    );
    let gone = t.root().join("gone");
    t.write_registry(vec![
        t.record(t.ports.port(0), "web", "feature", &t.repo, true, json!([])),
        t.record(t.ports.port(5), "web", "feature", &gone, true, json!([])),
    ]);
    snap(
        &t,
        "validate_finds_a_gone_worktree_and_exits_1",
        &mut t.wtenv(&["validate"]),
    );
    snap(
        &t,
        "validate_fix_releases_a_gone_worktrees_port",
        &mut t.wtenv(&["validate", "--fix"]),
    );
    snap(
        &t,
        "validate_json_after_the_fix_is_valid",
        &mut t.wtenv(&["validate", "--json"]),
    );
    t.write_registry(vec![
        t.record(t.ports.port(0), "web", "feature", &t.repo, true, json!([])),
        t.record(t.ports.port(0), "api", "feature", &t.repo, true, json!([])),
    ]);
    snap(
        &t,
        "validate_of_a_port_recorded_twice_is_critical_and_exits_2",
        &mut t.wtenv(&["validate", "--fix"]),
    );
}

#[rstest]
#[case::bash("bash")]
#[case::zsh("zsh")]
#[case::fish("fish")]
#[case::direnv("direnv")]
#[case::nix("nix")]
fn hook_prints_the_integration(#[case] shell: &str) {
    let t = TestEnv::new();
    snap(
        &t,
        &format!("hook_prints_the_{shell}_integration"),
        &mut t.wtenv(&["hook", shell]),
    );
}

/// A completion script is too long to review as a snapshot: its first
/// lines, its size class, and which subcommands it names.
#[rstest]
#[case::bash("bash")]
#[case::zsh("zsh")]
#[case::fish("fish")]
#[case::elvish("elvish")]
#[case::powershell("powershell")]
fn completions_name_every_command(#[case] shell: &str) {
    let t = TestEnv::new();
    let mut out = run(&mut t.wtenv(&["completions", shell]));
    let commands = [
        "create",
        "enter",
        "remove",
        "list",
        "env",
        "hook",
        "allocate",
        "release",
        "ports",
        "conflicts",
        "validate",
        "run",
        "up",
        "down",
        "logs",
        "status",
        "export",
        "trust",
        "untrust",
        "completions",
    ];
    let missing: Vec<&str> = commands
        .iter()
        .copied()
        .filter(|c| !out.stdout.contains(c))
        .collect();
    let head: Vec<&str> = out.stdout.lines().take(3).collect();
    out.stdout = format!(
        "{}\n[... {} lines in all; commands not named: {missing:?}]\n",
        head.join("\n"),
        if out.stdout.lines().count() > 100 {
            "over 100"
        } else {
            "at most 100"
        }
    );
    check(&t, &format!("completions_for_{shell}"), &out);
}
