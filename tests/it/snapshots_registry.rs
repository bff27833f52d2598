//! Snapshots of the registry commands and what surrounds them: `env` in
//! each format, `ports`, `list`, `allocate`, `release`, `conflicts`,
//! `validate`, `trust`, `untrust`, `hook`, `completions`, and `-q`.

use rstest::rstest;
use serde_json::json;

use crate::snapshots::{check, one_port_for_two_services, snap, two_services};
use crate::support::{HttpServer, TestEnv, run};

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
/// lines, its size class, and which subcommands it does not offer. Every
/// subcommand `--help` shows (the CLI's own list, `help` included) must be
/// offered as each shell's script spells a subcommand: a name found
/// anywhere in the text proves nothing (`env` is in every `wtenv`).
#[rstest]
#[case::bash("bash")]
#[case::zsh("zsh")]
#[case::fish("fish")]
#[case::elvish("elvish")]
#[case::powershell("powershell")]
fn completions_name_every_command(#[case] shell: &str) {
    use clap::CommandFactory;
    let t = TestEnv::new();
    let mut out = run(&mut t.wtenv(&["completions", shell]));
    let cli = wtenv::Cli::command();
    let commands: Vec<&str> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name())
        .chain(["help"])
        .collect();
    assert!(commands.len() > 20, "{commands:?}");
    let offered = |c: &str| {
        let entry = match shell {
            "bash" => format!("wtenv,{c})"),
            "zsh" => format!("\n'{c}:"),
            "fish" => format!(" -a \"{c}\" "),
            "elvish" => format!("cand {c} '"),
            _ => format!("[CompletionResult]::new('{c}', '{c}', "),
        };
        out.stdout.contains(&entry)
    };
    let missing: Vec<&str> = commands.iter().copied().filter(|c| !offered(c)).collect();
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

/// `-q` keeps errors (without their hint, except a conflict's message,
/// kept whole) and drops warnings, notes, hints after success and status
/// lines (README, "Messages").
#[test]
fn quiet_keeps_errors_and_drops_everything_else() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nenv = [\"PORT\"]\nrun = \"echo web on $PORT\"\n[env]\nA = \"x\"\n",
    );
    snap(
        &t,
        "quiet_env_drops_the_untrusted_env_warning",
        &mut t.wtenv(&["-q", "env"]),
    );
    snap(
        &t,
        "quiet_up_drops_the_status_lines",
        &mut t.wtenv(&["-q", "up"]),
    );
    let units = t.root().join("units");
    snap(
        &t,
        "quiet_export_drops_the_hint_after_success",
        &mut t.wtenv(&["-q", "export", "systemd", units.to_str().unwrap()]),
    );
    snap(
        &t,
        "quiet_release_drops_the_notes",
        &mut t.wtenv(&["-q", "release"]),
    );
    snap(
        &t,
        "quiet_remove_keeps_the_error_without_its_hint",
        &mut t.wtenv(&["-q", "remove", "nosuch"]),
    );
    let _squatter = HttpServer::start(&t.repo, t.ports.port(0));
    snap(
        &t,
        "quiet_env_keeps_the_conflict_message_whole",
        &mut t.wtenv(&["-q", "env"]),
    );
}
