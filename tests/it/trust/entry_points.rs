//! The same gate at wtenv's other entry points: direnv's `use wtenv`, a
//! real `nix develop`, `run`, and `create`, which carries trust to the
//! worktree it makes.

use std::path::{Path, PathBuf};

use super::{assert_nothing_ran, commit_config, env_entry, gated_config, hostile, trusted_count};
use crate::direnv::{allow, exec_env, with_direnv};
use crate::nix::{nix_develop, write_test_flake};
use crate::shell::{q, read_env, var};
use crate::support::{TestEnv, run};

/// direnv: `use wtenv` loads the ports, not `[env]`, until `wtenv trust`
/// (which direnv notices by itself); an edited config needs trust again,
/// not only `direnv allow`. Refused names make the config an error: the
/// `.envrc` still runs, nothing of the repository's runs.
#[test]
fn direnv_use_wtenv_goes_through_the_same_gate() {
    let t = TestEnv::new();
    let (text, pwned) = gated_config(&t);
    commit_config(&t, &text);
    with_direnv(&t);
    allow(&t, &t.repo);
    let port = t.ports.start.to_string();
    let (env, out) = exec_env(&t, &t.repo);
    assert_eq!(var(&env, "PORT"), Some(port.as_str()), "{out}");
    assert_eq!(var(&env, "NODE_OPTIONS"), None, "{out}");
    assert!(
        out.stderr.contains("not applied (NODE_OPTIONS, API_URL)"),
        "{out}"
    );
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let (env, out) = exec_env(&t, &t.repo);
    assert!(var(&env, "NODE_OPTIONS").is_some(), "{out}");
    assert_eq!(
        var(&env, "API_URL"),
        Some(format!("http://localhost:{port}").as_str()),
        "{out}"
    );
    std::fs::write(t.repo.join("wtenv.toml"), format!("{text}# edited\n")).unwrap();
    allow(&t, &t.repo);
    let (env, out) = exec_env(&t, &t.repo);
    assert_eq!(var(&env, "PORT"), Some(port.as_str()), "{out}");
    assert_eq!(var(&env, "NODE_OPTIONS"), None, "{out}");
    assert!(
        out.stderr.contains("it changed since it was trusted"),
        "{out}"
    );
    std::fs::remove_file(&pwned).ok();

    for (name, value) in hostile(&t) {
        std::fs::write(
            t.repo.join("wtenv.toml"),
            format!(
                "[purposes]\nfeature = \"{}\"\n{}",
                t.ports.range(),
                env_entry(name, &value)
            ),
        )
        .unwrap();
        let (env, out) = exec_env(&t, &t.repo);
        assert!(out.stdout.contains("shell works"), "{name}: {out}");
        assert_ne!(var(&env, name), Some(value.as_str()), "{name}: {out}");
        assert_eq!(var(&env, "PORT"), None, "{name}: {out}");
        assert!(
            out.stderr
                .contains(&format!("{}: ", wtenv::config::key_path(["env", name]))),
            "{name}: {out}"
        );
        assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(1), "{name}");
        let (env, _) = exec_env(&t, &t.repo);
        assert_ne!(var(&env, name), Some(value.as_str()), "{name}");
    }
    assert_nothing_ran(&t, "direnv");
}

/// The nix hook in a real `nix develop`: the same gate.
#[test]
fn nix_develop_goes_through_the_same_gate() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let (text, pwned) = gated_config(&t);
    commit_config(&t, &text);
    let dump = t.root().join("develop.env");
    let develop = |t: &TestEnv| {
        let mut cmd = nix_develop(t);
        cmd.arg(format!("env -0 > {}; node -e 0", q(&dump)))
            .current_dir(&t.repo);
        let out = run(&mut cmd);
        (read_env(&dump), out)
    };
    let (env, out) = develop(&t);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        var(&env, "PORT"),
        Some(t.ports.start.to_string().as_str()),
        "{out}"
    );
    assert_eq!(var(&env, "NODE_OPTIONS"), None, "{out}");
    assert!(
        out.stderr.contains("not applied (NODE_OPTIONS, API_URL)"),
        "{out}"
    );
    assert!(
        !pwned.exists(),
        "node ran the repository's code before trust"
    );
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let (env, out) = develop(&t);
    assert!(var(&env, "API_URL").is_some(), "{out}");

    for (name, value) in hostile(&t) {
        if name == "PATH" {
            continue; // nix develop sets PATH itself
        }
        commit_config(
            &t,
            &format!(
                "[purposes]\nfeature = \"{}\"\n{}",
                t.ports.range(),
                env_entry(name, &value)
            ),
        );
        let _ = std::fs::remove_file(&dump);
        let (env, out) = develop(&t);
        assert_eq!(out.code, Some(0), "{name}: the shell still runs: {out}");
        assert_ne!(var(&env, name), Some(value.as_str()), "{name}: {out}");
        assert!(
            out.stderr
                .contains(&format!("{}: ", wtenv::config::key_path(["env", name]))),
            "{name}: {out}"
        );
    }
    std::fs::remove_file(&pwned).ok();
    assert_nothing_ran(&t, "nix develop");
}

/// `run` and `create`: the same gate; a worktree `create` makes from a
/// trusted one (same config) is trusted, and stops being so when its own
/// config changes; `untrust` undoes it everywhere.
#[test]
fn create_carries_trust_and_run_uses_the_gate() {
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    let dump = |t: &TestEnv, dir: &Path| {
        let out = run(&mut t.wtenv_in(dir, &["run", "--", "sh", "-c", "echo \"url=${API_URL-}\""]));
        assert_eq!(out.code, Some(0), "{out}");
        out
    };
    let out = dump(&t, &t.repo);
    assert!(out.stdout.contains("url=\n"), "{out}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.contains("not applied"))
            .count(),
        1,
        "{out}"
    );
    let out = run(&mut t.wtenv(&["trust"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("trusted "), "{out}");
    let out = dump(&t, &t.repo);
    assert!(out.stdout.contains("url=http://localhost:"), "{out}");
    assert!(!out.stderr.contains("not applied"), "{out}");

    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "x",
        "--ports",
        "--json",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    let made: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let new = PathBuf::from(made["path"].as_str().unwrap());
    let env = run(&mut t.wtenv_in(&new, &["env", "--format", "json"]));
    let vars: serde_json::Value = serde_json::from_str(&env.stdout).unwrap();
    let port = made["ports"]["app"].as_u64().unwrap();
    assert_eq!(vars["API_URL"], format!("http://localhost:{port}"), "{env}");
    std::fs::write(new.join("wtenv.toml"), format!("{text}# mine\n")).unwrap();
    let env = run(&mut t.wtenv_in(&new, &["env", "--format", "json"]));
    let vars: serde_json::Value = serde_json::from_str(&env.stdout).unwrap();
    assert_eq!(vars.get("API_URL"), None, "{env}");

    assert_eq!(trusted_count(&t), 1);
    let out = run(&mut t.wtenv(&["untrust"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("untrusted repository"), "{out}");
    assert_eq!(trusted_count(&t), 0);
    let out = dump(&t, &t.repo);
    assert!(out.stdout.contains("url=\n"), "{out}");
}

/// `[worktrees] root` chooses where `create` and `enter` write a checkout
/// of the repository's files: a repository someone else wrote could name
/// a directory another program loads code from. Untrusted, it is refused
/// before anything is made (no directory, no branch, no port), saying
/// the way out; `--path` needs no trust; trusted, the root applies.
#[test]
fn a_worktree_root_of_the_configs_own_applies_only_once_trusted() {
    let t = TestEnv::new();
    let autostart = t.root().join("home/.config/autostart");
    t.write_config(&format!(
        "[worktrees]\nroot = {:?}\n",
        autostart.display().to_string()
    ));
    let before = crate::support::snapshot(&t.root());
    let registry = std::fs::read(t.state_dir().join("registry.json")).ok();
    for args in [
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--ports",
        ][..],
        &["enter", "x"][..],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: [worktrees] root {:?} of {} is not applied: it is not trusted; review it, then run 'wtenv trust'\n\
                 hint: a config chooses where 'create' writes a checkout only once trusted (README, \"Trust\"); or pass --path DIR\n",
                autostart.display().to_string(),
                t.repo.join("wtenv.toml").display()
            ),
            "{args:?}"
        );
        assert_eq!(crate::support::snapshot(&t.root()), before, "{args:?}");
        assert_eq!(
            std::fs::read(t.state_dir().join("registry.json")).ok(),
            registry,
            "{args:?}"
        );
        assert_eq!(t.git(&["branch", "--list", "feature/*"]), "", "{args:?}");
    }

    let chosen = t.root().join("chosen");
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "y",
        "--path",
        chosen.to_str().unwrap(),
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(chosen.join(".git").is_file(), "{out}");

    let out = run(&mut t.wtenv(&["trust"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.ends_with(&format!(
            " ([worktrees] root: {:?})\n",
            autostart.display().to_string()
        )),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "z"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(autostart.join("feature-z/.git").is_file(), "{out}");
}
