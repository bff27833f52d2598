//! The gate in the bash, zsh and fish prompt hooks, interactive or not:
//! the ports at once, `[env]` (and a service variable not named like a
//! port) only once trusted and while unchanged, one line that says so.

use std::path::PathBuf;

use super::{assert_nothing_ran, commit_config, env_entry, gated_config, hostile};
use crate::shell::{SHELLS, Sh, hook_file, in_tmux, interactive, q, read_env, var};
use crate::support::{TestEnv, run};

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
