//! A cloned repository runs no code on `cd` (README "Trust"): its
//! config's refused names run nothing before or after `wtenv trust`, and
//! its `[env]` applies only once trusted, in the real bash, zsh and fish
//! prompt hooks (interactive; fish under tmux), direnv's `use wtenv`, a real
//! `nix develop`, `run` and `create`.

use std::path::{Path, PathBuf};

use crate::direnv::{allow, exec_env, with_direnv};
use crate::nix::{nix_develop, write_test_flake};
use crate::shell::{SHELLS, Sh, hook_file, in_tmux, interactive, pwned_under, q, read_env, var};
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

/// The hook's bookkeeping (`__WTENV_DIFF`, `__WTENV_SAVED`) set by some
/// other program: the prompt hook restores or unsets no name a config may
/// not set, only the others it lists.
#[test]
fn the_hook_restores_no_refused_name_its_bookkeeping_lists() {
    let t = TestEnv::new();
    for format in ["bash", "zsh", "fish"] {
        let out = run(t
            .wtenv(&["env", "--hook", "--format", format])
            .current_dir(t.root())
            .env("__WTENV_DIFF", "PATH:LD_PRELOAD:WTENV_STATE_DIR:OTHER")
            .env(
                "__WTENV_SAVED",
                r#"{"PATH":"/evil","LD_PRELOAD":"/evil.so","WTENV_STATE_DIR":"/evil-state","OTHER":"kept"}"#,
            ));
        assert_eq!(out.code, Some(0), "{format}: {out}");
        for refused in ["PATH", "LD_PRELOAD", "WTENV_STATE_DIR", "/evil"] {
            assert!(!out.stdout.contains(refused), "{format}: {out}");
        }
        assert!(
            out.stdout.contains("OTHER") && out.stdout.contains("kept"),
            "{format}: {out}"
        );
    }
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

/// One worktree per hostile name, each with its own `wtenv.toml`; an
/// interactive shell with the prompt hook enters each, runs `wtenv trust`
/// (refused: exit 1), starts a bash (which would read `BASH_ENV`), and
/// dumps its environment. Nothing ran, nothing was trusted, nothing of the
/// config was exported.
#[test]
fn refused_names_run_nothing_in_the_prompt_hooks_before_or_after_trust() {
    let t = TestEnv::new();
    let payloads = hostile(&t);
    let mut worktrees = Vec::new();
    for (i, (name, value)) in payloads.iter().enumerate() {
        let wt = t.add_worktree(&format!("h{i}"));
        std::fs::write(
            wt.join("wtenv.toml"),
            format!(
                "[purposes]\nfeature = \"{}\"\n{}",
                t.ports.range(),
                env_entry(name, value)
            ),
        )
        .unwrap();
        worktrees.push(wt);
    }
    let path = std::env::var("PATH").unwrap();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let mut lines = format!("source {}\n", q(&hook));
        let mut dumps = Vec::new();
        for (i, wt) in worktrees.iter().enumerate() {
            let dump = t.root().join(format!("{}-{i}.env", sh.name()));
            lines.push_str(&format!(
                "cd {}\nwtenv trust\nbash -c :\nenv -0 > {}\n",
                q(wt),
                q(&dump)
            ));
            dumps.push(dump);
        }
        let out = match sh {
            Sh::Fish => in_tmux(&t, sh, &t.root(), &lines, dumps.last().unwrap()),
            _ => interactive(&t, sh, &t.root(), &lines),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        for ((name, value), dump) in payloads.iter().zip(&dumps) {
            let env = read_env(dump);
            assert_ne!(
                var(&env, name),
                Some(value.as_str()),
                "{} {name}: {stderr}",
                sh.name()
            );
            assert_eq!(
                var(&env, "PATH"),
                Some(path.as_str()),
                "{} {name}",
                sh.name()
            );
            assert_eq!(
                var(&env, "PORT"),
                None,
                "{} {name}: a refused config exports nothing",
                sh.name()
            );
            if sh != Sh::Fish {
                assert!(
                    stderr.contains(&format!("env.{name}: ")),
                    "{} {name}: {stderr}",
                    sh.name()
                );
            }
        }
        if sh != Sh::Fish {
            assert!(stderr.contains("is refused"), "{stderr}");
        }
        assert_nothing_ran(&t, sh.name());
    }
    assert_eq!(trusted_count(&t), 0, "a refused config was trusted");
}

/// A new terminal (tmux) opened inside a hostile clone, the hook installed
/// as its first line: at the prompts that follow, in bash, zsh and fish,
/// nothing of the repository runs, before or after `wtenv trust`.
#[test]
fn a_terminal_opened_in_a_hostile_clone_runs_nothing_at_its_prompts() {
    let t = TestEnv::new();
    let payloads = hostile(&t);
    // PROMPT_COMMAND and PS1 are what a prompt would run; PATH would
    // hijack every command typed.
    for (name, value) in payloads
        .iter()
        .filter(|(n, _)| ["PROMPT_COMMAND", "PS1", "PATH"].contains(n))
    {
        t.write_config(&env_entry(name, value));
        for sh in SHELLS {
            let hook = hook_file(&t, sh.name());
            let dump = t.root().join(format!("{}-tmux.env", sh.name()));
            let _ = std::fs::remove_file(&dump);
            let lines = format!(
                "source {}\n\nwtenv trust\n\nenv -0 > {}\n",
                q(&hook),
                q(&dump)
            );
            let screen = in_tmux(&t, sh, &t.repo, &lines, &dump);
            let screen = String::from_utf8_lossy(&screen.stdout);
            let env = read_env(&dump);
            assert_ne!(
                var(&env, name),
                Some(value.as_str()),
                "{} {name}: {screen}",
                sh.name()
            );
            assert!(
                screen.contains("is refused"),
                "{} {name}: {screen}",
                sh.name()
            );
            assert_nothing_ran(&t, &format!("{} {name}", sh.name()));
        }
    }
    assert_eq!(trusted_count(&t), 0);
}

/// The hooks run non-interactively too (`bash -c`, `zsh -c`, `fish -c`
/// with the hook sourced and a `cd`): the same refusals, the same gate.
#[test]
fn non_interactive_shells_with_the_hook_apply_only_what_trust_allows() {
    let t = TestEnv::new();
    let (text, pwned) = gated_config(&t);
    commit_config(&t, &text);
    let hostile_wt = t.add_worktree("hostile");
    std::fs::write(
        hostile_wt.join("wtenv.toml"),
        format!(
            "[purposes]\nfeature = \"{}\"\n{}",
            t.ports.range(),
            env_entry("BASH_ENV", &hostile(&t)[3].1)
        ),
    )
    .unwrap();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let [a, b, c] = ["untrusted", "trusted", "hostile"]
            .map(|n| t.root().join(format!("{}-{n}.env", sh.name())));
        let after_cd = if sh == Sh::Bash { "__wtenv_hook\n" } else { "" };
        let script = format!(
            "source {hook}\ncd {repo}\n{after_cd}env -0 > {a}\nnode -e 0\nwtenv trust\ncd ..\ncd {repo}\n{after_cd}env -0 > {b}\n\
             cd {hostile}\n{after_cd}bash -c :\nenv -0 > {c}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            hostile = q(&hostile_wt),
            a = q(&a),
            b = q(&b),
            c = q(&c),
        );
        let out = sh.run(&t, &t.root(), &script);
        let name = sh.name();
        let [a, b, c] = [a, b, c].map(|f| read_env(&f));
        assert!(var(&a, "PORT").is_some(), "{name}: {out}");
        assert_eq!(var(&a, "NODE_OPTIONS"), None, "{name}: {out}");
        assert!(
            !pwned.exists(),
            "{name}: node ran the repository's code before trust"
        );
        assert!(var(&b, "API_URL").is_some(), "{name}: {out}");
        assert_eq!(var(&c, "BASH_ENV"), None, "{name}: {out}");
        assert!(out.stderr.contains("env.BASH_ENV: "), "{name}: {out}");
        assert_nothing_ran(&t, name);
        assert_eq!(run(&mut t.wtenv(&["untrust"])).code, Some(0));
    }
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

/// In each shell: the first prompt exports the ports but not `[env]`
/// (node runs clean) and says so in one line, not again on a `cd` inside
/// the worktree; after `wtenv trust` the next prompt applies it; after an
/// edit of the config, re-entering leaves it out again and says why.
#[test]
fn env_applies_in_the_prompt_hooks_only_while_the_config_is_trusted() {
    for sh in SHELLS {
        let t = TestEnv::new();
        let (text, pwned) = gated_config(&t);
        commit_config(&t, &text);
        let hook = hook_file(&t, sh.name());
        let files: Vec<PathBuf> = ["before", "trusted", "changed"]
            .iter()
            .map(|n| t.root().join(format!("{n}.env")))
            .collect();
        let lines = format!(
            "source {hook}\nenv -0 > {before}\nnode -e 0\nmkdir -p sub\ncd sub\ncd ..\n\
             wtenv trust\nenv -0 > {trusted}\n\
             echo '# edited' >> wtenv.toml\ncd ..\ncd {repo}\nenv -0 > {changed}\n",
            hook = q(&hook),
            before = q(&files[0]),
            trusted = q(&files[1]),
            changed = q(&files[2]),
            repo = q(&t.repo),
        );
        let out = match sh {
            Sh::Fish => in_tmux(&t, sh, &t.repo, &lines, &files[2]),
            _ => interactive(&t, sh, &t.repo, &lines),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let [before, trusted, changed] = [0, 1, 2].map(|i| read_env(&files[i]));
        let port = t.ports.start.to_string();
        let url = format!("http://localhost:{port}");
        let name = sh.name();
        assert_eq!(
            var(&before, "PORT"),
            Some(port.as_str()),
            "{name}: {stderr}"
        );
        assert_eq!(var(&before, "NODE_OPTIONS"), None, "{name}: {stderr}");
        assert_eq!(var(&before, "API_URL"), None, "{name}");
        assert!(
            !pwned.exists(),
            "{name}: node ran the repository's code before trust"
        );
        assert_eq!(
            var(&trusted, "API_URL"),
            Some(url.as_str()),
            "{name}: {stderr}"
        );
        assert!(var(&trusted, "NODE_OPTIONS").is_some(), "{name}");
        assert_eq!(
            var(&changed, "PORT"),
            Some(port.as_str()),
            "{name}: {stderr}"
        );
        assert_eq!(
            var(&changed, "API_URL"),
            None,
            "{name}: an edited config applied"
        );
        assert_eq!(var(&changed, "NODE_OPTIONS"), None, "{name}");
        if sh != Sh::Fish {
            let warnings: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("not applied"))
                .collect();
            assert_eq!(warnings.len(), 2, "{name}: one line per load: {stderr}");
            assert!(
                warnings[0].contains(
                    "(NODE_OPTIONS, API_URL): it is not trusted; review it, then run 'wtenv trust'"
                ),
                "{stderr}"
            );
            assert!(
                warnings[1].contains("it changed since it was trusted"),
                "{stderr}"
            );
        }
    }
}

/// Leaving an untrusted worktree unsets the line the hook remembers it
/// said (`__WTENV_WARNED`), so coming back says it again, in each shell.
#[test]
fn leaving_and_coming_back_says_the_trust_line_again() {
    for sh in SHELLS {
        let t = TestEnv::new();
        let (text, _) = gated_config(&t);
        commit_config(&t, &text);
        let hook = hook_file(&t, sh.name());
        let left = t.root().join("left.env");
        let back = t.root().join("back.env");
        let lines = format!(
            "source {hook}\ncd ..\n{h}\nenv -0 > {left}\ncd {repo}\n{h}\nenv -0 > {back}\n",
            hook = q(&hook),
            h = sh.after_cd(),
            left = q(&left),
            back = q(&back),
            repo = q(&t.repo),
        );
        let out = match sh {
            Sh::Fish => in_tmux(&t, sh, &t.repo, &lines, &back),
            _ => interactive(&t, sh, &t.repo, &lines),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = sh.name();
        assert_eq!(
            var(&read_env(&left), "__WTENV_WARNED"),
            None,
            "{name}: {stderr}"
        );
        assert_eq!(var(&read_env(&left), "PORT"), None, "{name}: {stderr}");
        assert!(
            var(&read_env(&back), "__WTENV_WARNED").is_some(),
            "{name}: {stderr}"
        );
        if sh != Sh::Fish {
            let said = stderr.lines().filter(|l| l.contains("not applied")).count();
            assert_eq!(
                said, 2,
                "{name}: said on entering, and again on coming back: {stderr}"
            );
        }
    }
}

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
            out.stderr.contains(&format!("env.{name}: ")),
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
            out.stderr.contains(&format!("env.{name}: ")),
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

/// The trust list is kept like the registry: 0600, never written through
/// a link, and one wtenv cannot read trusts nothing (with a warning) while
/// the ports are still exported.
#[test]
fn the_trust_list_is_hardened_like_the_registry() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let list = t.state_dir().join("trust.json");
    let mode = std::fs::metadata(&list).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("export PORT="), "{out}");
    assert!(!out.stdout.contains("API_URL"), "{out}");
    assert!(out.stderr.contains("writable by group or others"), "{out}");
    // What to do is the list's own way out: `wtenv trust` refuses it.
    assert!(!out.stderr.contains("then run 'wtenv trust'"), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "remove it to trust nothing: rm '{}'",
            list.display()
        )),
        "{out}"
    );
    let before = std::fs::read(&list).unwrap();
    let out = run(&mut t.wtenv(&["untrust"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(std::fs::read(&list).unwrap(), before, "rewritten");

    let victim = t.root().join("victim");
    std::fs::write(&victim, "mine\n").unwrap();
    std::fs::remove_file(&list).unwrap();
    std::os::unix::fs::symlink(&victim, &list).unwrap();
    let out = run(&mut t.wtenv(&["trust"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("symbolic link"), "{out}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine\n");

    let bare = TestEnv::bare();
    let out = run(&mut bare.wtenv(&["trust"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("no wtenv.toml or wtenv.json here to trust"),
        "{out}"
    );
}

/// A service variable not named like a port waits for trust: a one-port
/// range picks the number, and `GIT_CONFIG_GLOBAL=<port>` would make git
/// read the repository's own file of that name (its `core.fsmonitor` runs a
/// command at the next `git status`, as a git-aware prompt does). In each
/// shell's hook: `PORT` is exported, `GIT_CONFIG_GLOBAL` is not, git runs
/// clean, one line names what was left out; after `wtenv trust` it applies.
#[test]
fn a_service_variable_not_named_like_a_port_waits_for_trust() {
    for sh in SHELLS {
        let t = TestEnv::new();
        let port = t.ports.port(0);
        let text = format!(
            "[purposes]\nfeature = \"{port}-{port}\"\n[services.x]\nenv = [\"PORT\", \"GIT_CONFIG_GLOBAL\"]\n"
        );
        commit_config(&t, &text);
        let pwned = t.root().join("PWNED-git");
        std::fs::write(
            t.repo.join(port.to_string()),
            format!(
                "[core]\n\tfsmonitor = \"touch {}; false\"\n",
                pwned.display()
            ),
        )
        .unwrap();
        let hook = hook_file(&t, sh.name());
        let [before, after] = ["before", "after"].map(|n| t.root().join(format!("{n}.env")));
        let after_cd = if sh == Sh::Bash { "__wtenv_hook\n" } else { "" };
        let script = format!(
            "source {hook}\ncd {repo}\n{after_cd}git status >/dev/null 2>&1\nenv -0 > {before}\n\
             wtenv trust\ncd ..\ncd {repo}\n{after_cd}env -0 > {after}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            before = q(&before),
            after = q(&after),
        );
        let out = sh.run(&t, &t.root(), &script);
        let name = sh.name();
        let [before, after] = [before, after].map(|f| read_env(&f));
        let port_text = port.to_string();
        assert_eq!(
            var(&before, "PORT"),
            Some(port_text.as_str()),
            "{name}: {out}"
        );
        assert_eq!(var(&before, "GIT_CONFIG_GLOBAL"), None, "{name}: {out}");
        assert!(!pwned.exists(), "{name}: git ran the repository's command");
        assert!(
            out.stderr.contains(&format!(
                "service variables of {}/wtenv.toml not applied (GIT_CONFIG_GLOBAL): it is not trusted",
                t.repo.display()
            )),
            "{name}: {out}"
        );
        assert_eq!(
            var(&after, "GIT_CONFIG_GLOBAL"),
            Some(port_text.as_str()),
            "{name}: trusted, it applies: {out}"
        );
    }
}

/// A directory whose `.git` file names a repository, beside a copy of that
/// repository's trusted config, is not one of its worktrees: the config's
/// `[env]` (whose `{worktree}` would name the copy's files) does not apply
/// there, and the line says why. The repository's own worktrees, main and
/// linked, keep the trust.
#[test]
fn a_copy_whose_git_file_names_a_trusted_repository_does_not_borrow_its_trust() {
    let t = TestEnv::new();
    let text = format!(
        "[purposes]\nfeature = \"{}\"\n[env]\nNODE_OPTIONS = \"--require {{worktree}}/setup.js\"\n",
        t.ports.range()
    );
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let linked = t.add_worktree("linked");
    let copy = t.root().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("wtenv.toml"), &text).unwrap();
    std::fs::write(
        copy.join(".git"),
        format!("gitdir: {}\n", t.repo.join(".git").display()),
    )
    .unwrap();
    for (dir, applies) in [(&t.repo, true), (&linked, true), (&copy, false)] {
        let out = run(&mut t.wtenv_in(dir, &["env"]));
        assert_eq!(out.code, Some(0), "{out}");
        let exported = format!("export NODE_OPTIONS='--require {}/setup.js'", dir.display());
        assert_eq!(
            out.stdout.contains(&exported),
            applies,
            "{}: {out}",
            dir.display()
        );
        let told = out.stderr.contains(&format!(
            "this directory's .git names {}, but that repository does not list it as a worktree",
            t.repo.join(".git").display()
        ));
        assert_eq!(told, !applies, "{}: {out}", dir.display());
    }
}

/// A submodule's checkout is its module repository's own worktree (git
/// records it as `core.worktree`): trusted there, its `[env]` applies.
#[test]
fn a_submodule_keeps_the_trust_of_its_own_repository() {
    let t = TestEnv::new();
    let module = t.root().join("module");
    t.init_repo(&module);
    std::fs::write(
        module.join("wtenv.toml"),
        format!(
            "[purposes]\nfeature = \"{}\"\n[env]\nAPI_URL = \"http://localhost:{{port.app}}\"\n",
            t.ports.range()
        ),
    )
    .unwrap();
    t.git_in(&module, &["add", "wtenv.toml"]);
    t.git_in(&module, &["commit", "-q", "-m", "module"]);
    t.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        module.to_str().unwrap(),
        "sub",
    ]);
    let sub = t.repo.join("sub");
    assert!(sub.join(".git").is_file(), "a submodule's .git is a file");
    let before = run(&mut t.wtenv_in(&sub, &["env"]));
    assert!(!before.stdout.contains("API_URL"), "{before}");
    assert_eq!(run(&mut t.wtenv_in(&sub, &["trust"])).code, Some(0));
    let after = run(&mut t.wtenv_in(&sub, &["env"]));
    assert!(
        after.stdout.contains("export API_URL='http://localhost:"),
        "{after}"
    );
    assert!(!after.stderr.contains("not applied"), "{after}");
}

/// A relative `XDG_STATE_HOME` (which a repository could once export, and
/// which would name a directory in every worktree entered) is ignored, as
/// the XDG spec says: wtenv keeps its state under `HOME`, and writes
/// nothing into the worktree.
#[test]
fn a_relative_xdg_state_home_is_ignored() {
    let t = TestEnv::new();
    let out = run(t.wtenv(&["env"]).env("XDG_STATE_HOME", "4242"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        !t.repo.join("4242").exists(),
        "state written into the worktree"
    );
    assert!(
        t.root()
            .join("home/.local/state/wtenv/registry.json")
            .exists(),
        "the state went to HOME/.local/state/wtenv"
    );
}

/// `WTENV_STATE_DIR` is wtenv's own, so a relative one is refused rather
/// than ignored: it named a registry, and a trust list, inside every
/// directory entered (one a repository could ship), and gave each
/// directory ports of its own.
#[test]
fn a_relative_wtenv_state_dir_is_refused() {
    let t = TestEnv::new();
    for args in [&["env"][..], &["ports"], &["trust", "--list"]] {
        let out = run(t.wtenv(args).env("WTENV_STATE_DIR", "state"));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .starts_with("error: WTENV_STATE_DIR=state is not an absolute path\nhint: "),
            "{args:?}: {out}"
        );
        assert!(!out.stdout.contains("PORT"), "{out}");
        assert!(
            !t.repo.join("state").exists(),
            "{args:?}: state in the worktree"
        );
    }
}
