//! Names a config may not set (PATH, LD_PRELOAD, BASH_ENV, PROMPT_COMMAND,
//! PS1, wtenv's own): in the prompt hooks, interactive or in a terminal
//! opened inside the clone, they run nothing, before or after `wtenv
//! trust`, which refuses them; the hook's bookkeeping restores none.

use super::{assert_nothing_ran, env_entry, hostile, trusted_count};
use crate::shell::{SHELLS, Sh, hook_file, in_tmux, in_tmux_as, interactive, q, read_env, var};
use crate::support::{TestEnv, run};

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
                    stderr.contains(&format!("{}: ", wtenv::config::key_path(["env", name]))),
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

/// The zsh and fish names for what the refused bash names do, in the shell
/// each one acts in, at a real terminal: fish's `fish_user_paths` (put
/// before `PATH`: the repository's `ls` would run), zsh's `PROMPT` (`PS1`
/// under `prompt_subst`: its `$(...)` would run at every prompt) and zsh's
/// `UID` (a root shell would become `nobody`). Refused, before and after
/// `wtenv trust`.
#[test]
fn zsh_and_fish_equivalents_of_refused_names_run_nothing() {
    let t = TestEnv::new();
    hostile(&t);
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    let uid = String::from_utf8(uid.stdout).unwrap();
    let cases = [
        (
            Sh::Fish,
            "fish_user_paths",
            t.root().join("evil-bin").display().to_string(),
        ),
        (
            Sh::Zsh,
            "PROMPT",
            format!("$(touch '{}/PWNED-prompt')% ", t.root().display()),
        ),
        (Sh::Zsh, "UID", "65534".to_owned()),
    ];
    for (sh, name, value) in cases {
        t.write_config(&env_entry(name, &value));
        let hook = hook_file(&t, sh.name());
        let dump = t.root().join(format!("{name}.env"));
        let id = t.root().join(format!("{name}.id"));
        let setopt = if sh == Sh::Zsh {
            "setopt prompt_subst\n"
        } else {
            ""
        };
        let lines = format!(
            "{setopt}source {hook}\n\nwtenv trust\n\nls >/dev/null\nid -u > {id}\n/usr/bin/env -0 > {dump}\n",
            hook = q(&hook),
            id = q(&id),
            dump = q(&dump),
        );
        let screen = in_tmux(&t, sh, &t.repo, &lines, &dump);
        let screen = String::from_utf8_lossy(&screen.stdout);
        let env = read_env(&dump);
        assert_ne!(var(&env, name), Some(value.as_str()), "{name}: {screen}");
        assert!(screen.contains("is refused"), "{name}: {screen}");
        assert_eq!(
            std::fs::read_to_string(&id).unwrap(),
            uid,
            "{name}: {screen}"
        );
        assert_nothing_ran(&t, name);
    }
    assert_eq!(trusted_count(&t), 0);
}

/// Interactive fish runs the function `fish_key_bindings` names whenever
/// the variable changes (its own handler, defined by `share/config.fish`,
/// so this fish reads it): a repository naming one of the user's
/// functions would run it on `cd`. Refused, before and after `wtenv
/// trust`: the function never runs.
#[test]
fn fish_key_bindings_naming_a_function_runs_nothing() {
    let t = TestEnv::new();
    t.write_config(&env_entry("fish_key_bindings", "pwned_keys"));
    // First start of a fish with this config: no background generation
    // of completions from the man pages.
    std::fs::create_dir_all(t.root().join("data/fish/generated_completions")).unwrap();
    let hook = hook_file(&t, "fish");
    let dump = t.root().join("fish_key_bindings.env");
    let lines = format!(
        "function pwned_keys; touch {pwned}; end\nsource {hook}\n\nwtenv trust\n\n/usr/bin/env -0 > {dump}\n",
        pwned = q(&t.root().join("PWNED-keys")),
        hook = q(&hook),
        dump = q(&dump),
    );
    let screen = in_tmux_as(&t, Sh::Fish, "-i", &t.repo, &lines, &dump);
    let screen = String::from_utf8_lossy(&screen.stdout);
    assert_nothing_ran(&t, &screen);
    assert!(screen.contains("fish_key_bindings is refused"), "{screen}");
    let env = read_env(&dump);
    assert_ne!(
        var(&env, "fish_key_bindings"),
        Some("pwned_keys"),
        "{screen}"
    );
    assert_eq!(trusted_count(&t), 0);
}

/// The names bash evaluates as arithmetic when they are set (`RANDOM`,
/// `SRANDOM`, `OPTIND`, `HISTCMD`; `MAILCHECK` at an interactive
/// prompt), where a subscript's `$(...)` runs: `a[$(touch PWNED)]` would
/// run on `cd`. Each is written into a config that `wtenv trust` is asked
/// to trust; bash and zsh enter it with the prompt hook (interactive, a
/// prompt after each line), fish with `fish -c`, its hook on `cd` and
/// `wtenv reload`.
/// Nothing runs, in any shell, and each refusal names the variable and
/// says why.
#[test]
fn names_bash_evaluates_as_arithmetic_run_nothing_in_any_shell() {
    let t = TestEnv::new();
    let names = ["RANDOM", "SRANDOM", "OPTIND", "HISTCMD", "MAILCHECK"];
    let mut worktrees = Vec::new();
    for name in names {
        let wt = t.add_worktree(&format!("arith-{name}"));
        let payload = format!("a[$(touch '{}/PWNED-{name}')]", t.root().display());
        std::fs::write(
            wt.join("wtenv.toml"),
            format!(
                "[purposes]\nfeature = \"{}\"\n{}",
                t.ports.range(),
                env_entry(name, &payload)
            ),
        )
        .unwrap();
        worktrees.push(wt);
    }
    for sh in SHELLS {
        let mut lines = format!("source {}\n", q(&hook_file(&t, sh.name())));
        for wt in &worktrees {
            // `wtenv reload` loads at once: fish, run with `-c`, shows no
            // prompt to reload at after `trust`.
            lines.push_str(&format!("cd {}\nwtenv trust\nwtenv reload\n:\n:\n", q(wt)));
        }
        let stderr = match sh {
            Sh::Fish => sh.run(&t, &t.root(), &lines).stderr,
            _ => {
                String::from_utf8_lossy(&interactive(&t, sh, &t.root(), &lines).stderr).into_owned()
            }
        };
        assert_nothing_ran(&t, &format!("{}: {stderr}", sh.name()));
        for name in names {
            assert!(
                stderr.contains(&format!(
                    "env.{name}: {name} is refused: bash evaluates it as arithmetic"
                )),
                "{} {name}: {stderr}",
                sh.name()
            );
        }
    }
    assert_eq!(trusted_count(&t), 0, "a refused config was trusted");
}
