//! The prompt hook beside direnv's `use flake` of a flake whose devShell
//! runs `wtenv hook nix` (real direnv, its config isolated, real `nix
//! print-dev-env` of the no-input test flake): direnv exports the ports,
//! and the prompt hook stands aside, as beside `use wtenv`.

use crate::shell::{Sh, hook_file, interactive, q, read_env, var};
use crate::support::TestEnv;

const BESIDE: &str = "direnv's 'use flake' (this worktree's .envrc, its flake.nix running wtenv's hook) loads its variables: the prompt hook leaves them to direnv";

/// Both hooks exported the ports: direnv (through the flake's shellHook)
/// and the prompt hook, which saved direnv's value as the user's and, on
/// leaving, after direnv gave the user's `PORT` back, "restored" the
/// worktree's, which stayed exported outside it. Now the prompt hook
/// exports none of the worktree's variables (its bookkeeping lists only
/// its fingerprint), so leaving gives `PORT` back once, by direnv: the
/// user's value, or unset when there was none. bash with the hooks
/// installed in both orders, and with the prompt hook running first.
#[test]
fn the_prompt_hook_leaves_a_use_flake_worktree_running_wtenvs_hook_to_direnv() {
    let t = TestEnv::new();
    super::write_test_flake(&t);
    std::fs::write(t.repo.join(".envrc"), "use flake\n").unwrap();
    let nix_config = super::nix_cmd(&t, "true")
        .get_envs()
        .find(|(k, _)| *k == "NIX_CONFIG")
        .and_then(|(_, v)| v)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut allow = super::nix_cmd(&t, "direnv");
    allow.args(["allow", "."]).current_dir(&t.repo);
    assert_eq!(crate::support::run(&mut allow).code, Some(0));
    let sub = t.repo.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let outside = t.root().join("home");
    let hook = hook_file(&t, "bash");
    let port = t.ports.start.to_string();
    let orders = [
        (
            "direnv's first",
            "eval \"$(direnv hook bash)\"\nsource HOOK",
        ),
        ("wtenv's first", "source HOOK\neval \"$(direnv hook bash)\""),
        (
            "wtenv's hook run first",
            "source HOOK\neval \"$(direnv hook bash)\"\nPROMPT_COMMAND='__wtenv_hook;_direnv_hook'",
        ),
    ];
    for (i, (case, install)) in orders.into_iter().enumerate() {
        for mine in [Some("mine"), None] {
            let file = |n: &str| t.root().join(format!("flake-{i}-{mine:?}-{n}.env"));
            let lines = format!(
                "export NIX_CONFIG={config}\n{set}\n{install}\ncd {repo}\nenv -0 > {a}\n\
                 cd {sub}\nenv -0 > {b}\ncd {out}\nenv -0 > {c}\n",
                config = q(std::path::Path::new(&nix_config)),
                set = mine.map_or("unset PORT".into(), |v| format!("export PORT={v}")),
                install = install.replace("HOOK", &q(&hook)),
                repo = q(&t.repo),
                sub = q(&sub),
                out = q(&outside),
                a = q(&file("in")),
                b = q(&file("sub")),
                c = q(&file("out")),
            );
            let out = interactive(&t, Sh::Bash, &outside, &lines);
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{case}: {said}");
            for place in ["in", "sub"] {
                let inside = read_env(&file(place));
                assert_eq!(
                    var(&inside, "PORT"),
                    Some(port.as_str()),
                    "{case}, {place}: {said}"
                );
                assert_eq!(
                    var(&inside, "WTENV_WORKTREE"),
                    t.repo.to_str(),
                    "{case}, {place}"
                );
                // The hook exported nothing of the worktree's: it has
                // nothing to give back on leaving.
                assert_eq!(
                    var(&inside, "__WTENV_DIFF"),
                    Some("__WTENV_LOADED"),
                    "{case}, {place}: {said}"
                );
            }
            let left = read_env(&file("out"));
            assert_eq!(var(&left, "PORT"), mine, "{case}: {said}");
            for gone in [
                "WTENV_WORKTREE",
                "WTENV_PORTS",
                "__WTENV_DIFF",
                "__WTENV_SAVED",
            ] {
                assert_eq!(var(&left, gone), None, "{case}: {gone} left: {said}");
            }
            assert_eq!(said.matches(BESIDE).count(), 1, "{case}: {said}");
        }
    }
    // Reserved once, by direnv's loads: the hook allocated nothing more.
    assert_eq!(t.allocations().len(), 1);
}
