//! A cloned repository runs no code on `cd` (README "Trust"): its
//! config's refused names run nothing before or after `wtenv trust`, and
//! its `[env]` applies only once trusted, in the real bash, zsh and fish
//! prompt hooks (interactive; fish under tmux), direnv's `use wtenv`, a real
//! `nix develop`, `run` and `create`.
//!
//! A module per concept: `refused` (names a config may not set),
//! `prompt_hooks` (the gate in the shells' hooks), `entry_points` (the same
//! gate in direnv, `nix develop`, `run` and `create`), `repository` (whose
//! trust a directory has) and `list` (the trust list and where it lives).
//! This file holds the helpers several of them share: the hostile
//! payloads and the configs they are written into.

mod entry_points;
mod list;
mod prompt_hooks;
mod refused;
mod repository;

use std::path::PathBuf;

use crate::shell::pwned_under;
use crate::support::{TestEnv, run};

/// The payloads a hostile repository would use, each leaving a file named
/// PWNED under the test's root if it ever runs. Returns `(name, value)`.
fn hostile(t: &TestEnv) -> Vec<(&'static str, String)> {
    let root = t.root();
    let evil_bin = root.join("evil-bin");
    std::fs::create_dir_all(&evil_bin).unwrap();
    let script = format!("#!/bin/sh\ntouch '{}/PWNED-path'\n", root.display());
    for tool in ["env", "cat", "touch", "rm", "mktemp", "ls", "true", "node"] {
        let path = evil_bin.join(tool);
        std::fs::write(&path, &script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bash_env = root.join("evil-bash-env.sh");
    std::fs::write(
        &bash_env,
        format!("touch '{}/PWNED-bash-env'\n", root.display()),
    )
    .unwrap();
    vec![
        (
            "PROMPT_COMMAND",
            format!("touch '{}/PWNED-prompt'", root.display()),
        ),
        ("PATH", format!("{}:/usr/bin:/bin", evil_bin.display())),
        ("LD_PRELOAD", root.join("evil.so").display().to_string()),
        ("BASH_ENV", bash_env.display().to_string()),
        (
            "WTENV_STATE_DIR",
            root.join("evil-state").display().to_string(),
        ),
        (
            "BASH_FUNC_cd%%",
            format!("() {{ touch '{}/PWNED-func'; }}", root.display()),
        ),
        ("PS1", format!("$(touch '{}/PWNED-ps1')", root.display())),
        // The prompt hook's own bookkeeping: what it exported, and what it
        // restores when it leaves.
        ("__WTENV_DIFF", "PATH".into()),
        (
            "__WTENV_SAVED",
            serde_json::json!({ "PATH": evil_bin }).to_string(),
        ),
    ]
}

/// TOML for `[env] NAME = value` (a basic string, escaped by serde).
fn env_entry(name: &str, value: &str) -> String {
    format!(
        "[env]\n{} = {}\n",
        serde_json::to_string(name).unwrap(),
        serde_json::to_string(value).unwrap()
    )
}

fn assert_nothing_ran(t: &TestEnv, context: &str) {
    assert_eq!(pwned_under(&t.root()), None, "{context}: hostile code ran");
    assert!(
        !t.root().join("evil-state").exists(),
        "{context}: WTENV_STATE_DIR was exported"
    );
}

fn trusted_count(t: &TestEnv) -> usize {
    let out = run(&mut t.wtenv(&["trust", "--list"]));
    assert_eq!(out.code, Some(0), "{out}");
    out.stdout.lines().skip(1).count()
}

/// `[env]` with a name trust gates (NODE_OPTIONS, which makes node load a
/// file that leaves PWNED-node) and a plain derived variable.
fn gated_config(t: &TestEnv) -> (String, PathBuf) {
    let evil = t.root().join("evil.js");
    std::fs::write(
        &evil,
        format!(
            "require('fs').writeFileSync('{}/PWNED-node', 'x')\n",
            t.root().display()
        ),
    )
    .unwrap();
    let text = format!(
        "[purposes]\nfeature = \"{}\"\n[env]\nNODE_OPTIONS = \"--require {}\"\nAPI_URL = \"http://localhost:{{port.app}}\"\n",
        t.ports.range(),
        evil.display()
    );
    (text, t.root().join("PWNED-node"))
}

fn commit_config(t: &TestEnv, text: &str) {
    std::fs::write(t.repo.join("wtenv.toml"), text).unwrap();
    t.git(&["commit", "-q", "-am", "env"]);
}
