//! The prompt hook as the shell moves: silent outside a worktree, the
//! ports on entry (at the first prompt of an interactive shell), exactly
//! those unset and what was there before restored on leaving, nothing
//! when the directory did not change, nothing half-set after a failure.

use super::{SHELLS, Sh, hook_file, in_tmux, interactive, q, read_env, var};
use crate::support::{TestEnv, run};

#[test]
fn hooks_eval_silently_in_strict_shells_outside_a_worktree() {
    let t = TestEnv::new();
    let outside = t.root().join("home");
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let script = format!(
            "source {}\n__wtenv_hook\ncd {}\n{}\ncd {}\n__wtenv_hook\n",
            q(&hook),
            q(&t.root()),
            sh.after_cd(),
            q(&outside),
        );
        let out = sh.run(&t, &outside, &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(out.stdout, "", "{}: {out}", sh.name());
        assert_eq!(out.stderr, "", "{}: {out}", sh.name());
    }
    // The direnv and nix snippets are bash too.
    for target in ["direnv", "nix"] {
        let hook = hook_file(&t, target);
        let out = Sh::Bash.run(&t, &outside, &format!("source {}\n", q(&hook)));
        assert_eq!(out.code, Some(0), "{target}: {out}");
        assert_eq!(out.stdout, "", "{target}: {out}");
    }
}

#[test]
fn prompt_hook_exports_on_entry_and_unsets_exactly_those_on_leaving() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"PORT\", \"WEB_PORT\"]\n[env]\nWEB_URL = \"http://localhost:{port.web}\"\n");
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let outside = t.root().join("home");
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let (a, b, c) = (
            t.root().join(format!("{}-in.env", sh.name())),
            t.root().join(format!("{}-sub.env", sh.name())),
            t.root().join(format!("{}-out.env", sh.name())),
        );
        let sub = t.repo.join("src");
        std::fs::create_dir_all(&sub).unwrap();
        let script = format!(
            "source {hook}\ncd {repo}\n{h}\nenv -0 > {a}\ncd {sub}\n{h}\nenv -0 > {b}\ncd {out}\n{h}\nenv -0 > {c}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            sub = q(&sub),
            out = q(&outside),
            h = sh.after_cd(),
            a = q(&a),
            b = q(&b),
            c = q(&c),
        );
        let out = sh.run(&t, &outside, &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(out.stderr, "", "{}: {out}", sh.name());
        let port = t.ports.start.to_string();
        let inside = read_env(&a);
        assert_eq!(var(&inside, "PORT"), Some(port.as_str()), "{}", sh.name());
        assert_eq!(var(&inside, "WEB_PORT"), Some(port.as_str()));
        assert_eq!(
            var(&inside, "WEB_URL"),
            Some(format!("http://localhost:{port}").as_str())
        );
        assert_eq!(var(&inside, "WTENV_WORKTREE"), t.repo.to_str());
        let no_pwd = |env: Vec<(String, String)>| -> Vec<(String, String)> {
            env.into_iter()
                .filter(|(k, _)| !["PWD", "OLDPWD"].contains(&k.as_str()))
                .collect()
        };
        assert_eq!(
            no_pwd(read_env(&b)),
            no_pwd(inside.clone()),
            "{}: a subdirectory keeps them",
            sh.name()
        );
        let left = read_env(&c);
        for name in [
            "PORT",
            "WEB_PORT",
            "WEB_URL",
            "WTENV_WORKTREE",
            "WTENV_PORTS",
            "__WTENV_DIFF",
            "__WTENV_LOADED",
        ] {
            assert_eq!(var(&left, name), None, "{}: {name} left behind", sh.name());
        }
        // Exactly those: everything else is as it was (HOME, PATH, ...).
        let before: Vec<_> = inside
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("WTENV_")
                    && ![
                        "PORT",
                        "WEB_PORT",
                        "WEB_URL",
                        "__WTENV_DIFF",
                        "__WTENV_LOADED",
                        "PWD",
                        "OLDPWD",
                    ]
                    .contains(&k.as_str())
            })
            .cloned()
            .collect();
        let after: Vec<_> = left
            .iter()
            .filter(|(k, _)| !["PWD", "OLDPWD"].contains(&k.as_str()))
            .cloned()
            .collect();
        // zsh execs the script's last command, one level down.
        let shlvl = |v: Vec<(String, String)>| -> Vec<(String, String)> {
            v.into_iter().filter(|(k, _)| k != "SHLVL").collect()
        };
        let (mut before, mut after) = (shlvl(before), shlvl(after));
        before.sort();
        after.sort();
        assert_eq!(before, after, "{}", sh.name());
    }
}

/// Leaving a worktree restores what the user had before entering it, as
/// direnv does: a `PORT` exported before is back with its value (also
/// after passing through another worktree); one unset before is unset.
#[test]
fn prompt_hook_restores_on_leaving_the_values_set_before_entering() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let outside = t.root().join("home");
    let mine = "user's value $x \\ ✓";
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let file = |n: &str| t.root().join(format!("{}-restore-{n}.env", sh.name()));
        let set = match sh {
            Sh::Fish => format!("set -gx PORT {}", wtenv::shell::quote_fish(mine)),
            _ => format!("export PORT={}", wtenv::shell::quote_posix(mine)),
        };
        let script = format!(
            "{set}\nsource {hook}\ncd {repo}\n{h}\nenv -0 > {a}\ncd {other}\n{h}\nenv -0 > {b}\ncd {out}\n{h}\nenv -0 > {c}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            other = q(&other),
            out = q(&outside),
            h = sh.after_cd(),
            a = q(&file("a")),
            b = q(&file("b")),
            c = q(&file("c")),
        );
        let out = sh.run(&t, &outside, &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(out.stderr, "", "{}: {out}", sh.name());
        let (a, b, c) = (
            read_env(&file("a")),
            read_env(&file("b")),
            read_env(&file("c")),
        );
        assert_eq!(
            var(&a, "PORT"),
            Some(t.ports.port(0).to_string().as_str()),
            "{}",
            sh.name()
        );
        assert_eq!(
            var(&b, "PORT"),
            Some(t.ports.port(1).to_string().as_str()),
            "{}",
            sh.name()
        );
        assert_eq!(var(&c, "PORT"), Some(mine), "{}: not restored", sh.name());
        for name in ["WTENV_WORKTREE", "__WTENV_DIFF", "__WTENV_SAVED"] {
            assert_eq!(var(&c, name), None, "{}: {name} left behind", sh.name());
        }
    }
}

/// Without a `cd` the hook starts no wtenv; after a `cd` inside the same
/// worktree, wtenv reads no registry (nothing it depends on changed);
/// `wtenv reload` does, and its failure leaves nothing half-set.
#[test]
fn prompt_hook_does_nothing_when_the_directory_did_not_change() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let sub = t.repo.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        // Once inside, the registry is made unreadable: a hook that read
        // it again would print an error. Without a cd, or after a cd
        // into a subdirectory, it must not; `wtenv reload` does (so the
        // probe is real).
        let script = format!(
            "source {hook}\ncd {repo}\n{h}\nprintf garbage > {reg}\n__wtenv_hook\n__wtenv_hook\ncd {sub}\n{h}\nenv -0 > {kept}\necho quiet >&2\nwtenv reload || echo reload failed {st}\nenv -0 > {env}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            sub = q(&sub),
            h = sh.after_cd(),
            reg = q(&t.registry_path()),
            kept = q(&t.root().join("kept.env")),
            st = if sh == Sh::Fish { "$status" } else { "$?" },
            env = q(&t.root().join("after.env")),
        );
        std::fs::remove_dir_all(t.state_dir()).ok();
        let out = sh.run(&t, &t.root(), &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(out.stdout, "reload failed 2\n", "{}: {out}", sh.name());
        let (before_reload, after_reload) = out.stderr.split_once("quiet\n").unwrap();
        assert_eq!(
            before_reload,
            "",
            "{}: the hook read the registry: {out}",
            sh.name()
        );
        assert!(after_reload.contains("registry"), "{}: {out}", sh.name());
        let kept = read_env(&t.root().join("kept.env"));
        assert_eq!(var(&kept, "PORT"), Some(t.ports.start.to_string().as_str()));
        // The failure left nothing half-set: everything exported is gone.
        let env = read_env(&t.root().join("after.env"));
        assert_eq!(var(&env, "PORT"), None, "{}", sh.name());
        assert_eq!(var(&env, "WTENV_WORKTREE"), None, "{}", sh.name());
        assert_eq!(var(&env, "__WTENV_DIFF"), None, "{}", sh.name());
        assert_eq!(var(&env, "__WTENV_LOADED"), None, "{}", sh.name());
    }
}

#[test]
fn prompt_hook_switching_worktrees_replaces_the_ports_and_a_failure_unsets_them() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let third = t.add_worktree("third");
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let script = format!(
            "source {hook}\ncd {repo}\n{h}\nenv -0 > {a}\ncd {other}\n{h}\nenv -0 > {b}\nprintf garbage > {reg}\ncd {third}\n{h}\nenv -0 > {c}\necho still alive\n",
            hook = q(&hook),
            repo = q(&t.repo),
            other = q(&other),
            third = q(&third),
            h = sh.after_cd(),
            reg = q(&t.registry_path()),
            a = q(&t.root().join("a.env")),
            b = q(&t.root().join("b.env")),
            c = q(&t.root().join("c.env")),
        );
        std::fs::remove_dir_all(t.state_dir()).ok();
        let out = sh.run(&t, &t.root(), &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(out.stdout, "still alive\n", "{}: {out}", sh.name());
        assert!(out.stderr.contains("registry"), "{}: {out}", sh.name());
        let (a, b, c) = (
            read_env(&t.root().join("a.env")),
            read_env(&t.root().join("b.env")),
            read_env(&t.root().join("c.env")),
        );
        assert_eq!(var(&a, "PORT"), Some(t.ports.start.to_string().as_str()));
        assert_eq!(
            var(&b, "PORT"),
            Some((t.ports.start + 1).to_string().as_str())
        );
        assert_eq!(var(&b, "WTENV_WORKTREE"), other.to_str());
        assert_eq!(
            var(&c, "PORT"),
            None,
            "{}: half-set after a failure",
            sh.name()
        );
        assert_eq!(var(&c, "WTENV_WORKTREE"), None, "{}", sh.name());
    }
}

/// The directory deleted under the shell (a worktree's subdirectory that
/// `git checkout` or another terminal removed): the hook's `wtenv` could
/// not read the current directory, failed before its own error handling,
/// and printed nothing, so the shell kept the ports. It now gives back
/// what it exported, as on any failure, and says why.
#[test]
fn prompt_hook_in_a_directory_deleted_under_the_shell_unsets_what_it_exported() {
    let t = TestEnv::new();
    let dir = t.repo.join("gone");
    for sh in SHELLS {
        std::fs::create_dir(&dir).unwrap();
        let hook = hook_file(&t, sh.name());
        let unset = match sh {
            Sh::Fish => "set -e __WTENV_PWD",
            Sh::Bash | Sh::Zsh => "unset __WTENV_PWD",
        };
        let script = format!(
            "source {hook}\ncd {dir}\n{h}\nenv -0 > {a}\nrmdir {dir}\n{unset}\n__wtenv_hook\nenv -0 > {b}\necho still alive\n",
            hook = q(&hook),
            dir = q(&dir),
            h = sh.after_cd(),
            a = q(&t.root().join("a.env")),
            b = q(&t.root().join("b.env")),
        );
        let out = sh.run(&t, &t.root(), &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(out.stdout, "still alive\n", "{}: {out}", sh.name());
        assert!(
            out.stderr.contains(
                "error: the current directory no longer exists: it was deleted\nhint: cd to a directory that exists\n"
            ),
            "{}: {out}",
            sh.name()
        );
        let (a, b) = (
            read_env(&t.root().join("a.env")),
            read_env(&t.root().join("b.env")),
        );
        assert_eq!(var(&a, "PORT"), Some(t.ports.start.to_string().as_str()));
        for name in ["PORT", "WTENV_WORKTREE", "__WTENV_DIFF"] {
            assert_eq!(var(&b, name), None, "{}: {name} kept", sh.name());
        }
    }
}

/// A shell started inside a worktree gets the ports at its first prompt
/// (no `cd` needed: bash's PROMPT_COMMAND, zsh's precmd, fish's
/// fish_prompt event), and loses them on `cd` out.
#[test]
fn interactive_shells_get_the_ports_at_the_first_prompt_and_lose_them_on_cd() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let (inside, outside) = (
            t.root().join(format!("{}-i-in.env", sh.name())),
            t.root().join(format!("{}-i-out.env", sh.name())),
        );
        // The hook is sourced on the first line; its first prompt follows.
        let lines = format!(
            "source {}\nenv -0 > {}\ncd ..\nenv -0 > {}\n",
            q(&hook),
            q(&inside),
            q(&outside)
        );
        let out = match sh {
            // fish runs no prompt events when it reads from a pipe: it
            // gets a real terminal.
            Sh::Fish => in_tmux(&t, sh, &t.repo, &lines, &outside),
            _ => interactive(&t, sh, &t.repo, &lines),
        };
        assert!(out.status.success(), "{}: {out:?}", sh.name());
        let inside = read_env(&inside);
        assert_eq!(
            var(&inside, "PORT"),
            Some(t.ports.start.to_string().as_str()),
            "{}: {out:?}",
            sh.name()
        );
        let outside = read_env(&outside);
        assert_eq!(var(&outside, "PORT"), None, "{}: {out:?}", sh.name());
        assert_eq!(var(&outside, "__WTENV_DIFF"), None, "{}", sh.name());
    }
}

/// A variable the shell cannot set (one the user made read-only in bash,
/// an array in zsh) in a trusted `[env]`: the export fails, said on
/// stderr, but the shell (errexit) lives on, the hook's bookkeeping is set
/// (it comes first), and leaving gives the user's `PORT` back and unsets
/// what the worktree exported.
#[test]
fn a_variable_the_shell_cannot_set_leaves_nothing_half_set() {
    let t = TestEnv::new();
    t.write_config("[env]\nAPI_URL = \"http://localhost:{port.app}\"\n");
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let outside = t.root().join("home");
    for (sh, declare) in [
        (Sh::Bash, "readonly API_URL=mine"),
        (Sh::Zsh, "typeset -a API_URL"),
    ] {
        let hook = hook_file(&t, sh.name());
        let file = |n: &str| t.root().join(format!("{}-cannot-{n}.env", sh.name()));
        let script = format!(
            "export PORT=mine\n{declare}\nsource {hook}\ncd {repo}\n{h}\nenv -0 > {a}\ncd {out}\n{h}\nenv -0 > {b}\necho still alive\n",
            hook = q(&hook),
            repo = q(&t.repo),
            out = q(&outside),
            h = sh.after_cd(),
            a = q(&file("in")),
            b = q(&file("out")),
        );
        let out = sh.run(&t, &outside, &script);
        let name = sh.name();
        assert_eq!(out.code, Some(0), "{name}: {out}");
        assert_eq!(out.stdout, "still alive\n", "{name}: {out}");
        assert!(out.stderr.contains("API_URL"), "{name}: {out}");
        let (inside, left) = (read_env(&file("in")), read_env(&file("out")));
        assert!(
            var(&inside, "__WTENV_DIFF").is_some_and(|d| d.split(':').any(|n| n == "PORT")),
            "{name}: {out}"
        );
        assert_eq!(var(&left, "PORT"), Some("mine"), "{name}: {out}");
        for gone in ["WTENV_WORKTREE", "__WTENV_DIFF", "__WTENV_SAVED"] {
            assert_eq!(var(&left, gone), None, "{name}: {gone} left behind: {out}");
        }
    }
}

/// zsh stops a whole `eval` at a line it cannot run: a name the worktree
/// exports that the user made read-only (its `unset` on leaving, its
/// `export` on entering) or an array stopped every line after it, so
/// leaving kept the worktree's ports exported, lost the user's `PORT`,
/// and every later `cd` said the error again. Each line now runs; the
/// error is still said, once each way, and never again after leaving.
#[test]
fn zsh_runs_every_line_of_the_hook_after_one_it_cannot_run() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"WEB_PORT\", \"PORT\"]\n");
    let outside = t.root().join("home");
    let hook = hook_file(&t, "zsh");
    for (case, declare, said) in [
        (
            "read-only",
            "readonly WEB_PORT=5",
            "read-only variable: WEB_PORT",
        ),
        (
            "array",
            "typeset -a WEB_PORT",
            "WEB_PORT: inconsistent type",
        ),
    ] {
        let file = |n: &str| t.root().join(format!("zsh-{case}-{n}.env"));
        let script = format!(
            "export PORT=1\n{declare}\nsource {hook}\ncd {repo}\nenv -0 > {a}\ncd {out}\nenv -0 > {b}\necho left >&2\ncd {root}\ncd {out}\necho still alive\n",
            hook = q(&hook),
            repo = q(&t.repo),
            out = q(&outside),
            root = q(&t.root()),
            a = q(&file("in")),
            b = q(&file("out")),
        );
        let out = Sh::Zsh.run(&t, &outside, &script);
        assert_eq!(out.code, Some(0), "{case}: {out}");
        assert_eq!(out.stdout, "still alive\n", "{case}: {out}");
        let (inside, left) = (read_env(&file("in")), read_env(&file("out")));
        let port = t.ports.start.to_string();
        // The lines after WEB_PORT's ran.
        assert_eq!(var(&inside, "PORT"), Some(port.as_str()), "{case}: {out}");
        assert_eq!(
            var(&inside, "WTENV_WORKTREE"),
            t.repo.to_str(),
            "{case}: {out}"
        );
        assert_eq!(var(&left, "PORT"), Some("1"), "{case}: {out}");
        for gone in [
            "WTENV_WORKTREE",
            "WTENV_PORTS",
            "__WTENV_DIFF",
            "__WTENV_SAVED",
        ] {
            assert_eq!(var(&left, gone), None, "{case}: {gone} left behind: {out}");
        }
        let (before_leaving, after) = out.stderr.split_once("left\n").unwrap();
        assert!(before_leaving.contains(said), "{case}: {out}");
        assert_eq!(after, "", "{case}: said again after leaving: {out}");
    }
    let out = Sh::Zsh.run(
        &t,
        &outside,
        &format!(
            "readonly WEB_PORT=5\nsource {}\ncd {}\ncd ..\n",
            q(&hook),
            q(&t.repo)
        ),
    );
    // Said once entering, once leaving.
    assert_eq!(
        out.stderr.matches("read-only variable: WEB_PORT").count(),
        2,
        "{out}"
    );
}

/// A `cd` inside the same worktree keeps a value the user set by hand, as
/// direnv does; an edit of the config (a file the load depended on)
/// reloads at the next `cd`, and `wtenv reload` reloads at once.
#[test]
fn a_cd_inside_the_worktree_keeps_a_hand_set_value_until_the_config_changes() {
    let t = TestEnv::new();
    let config = t.repo.join("wtenv.toml");
    assert!(config.is_file(), "the test repository has a wtenv.toml");
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let sub = t.repo.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        let file = |n: &str| t.root().join(format!("{}-hand-{n}.env", sh.name()));
        let export = |v: &str| match sh {
            Sh::Fish => format!("set -gx PORT {v}"),
            _ => format!("export PORT={v}"),
        };
        let script = format!(
            "source {hook}\ncd {repo}\n{h}\n{mine}\ncd {sub}\n{h}\nenv -0 > {a}\nprintf '\\n' >> {config}\ncd {repo}\n{h}\nenv -0 > {b}\n{mine}\nwtenv reload\nenv -0 > {c}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            sub = q(&sub),
            config = q(&config),
            mine = export("9999"),
            h = sh.after_cd(),
            a = q(&file("a")),
            b = q(&file("b")),
            c = q(&file("c")),
        );
        let out = sh.run(&t, &t.root(), &script);
        let name = sh.name();
        assert_eq!(out.code, Some(0), "{name}: {out}");
        assert_eq!(out.stderr, "", "{name}: {out}");
        let port = t.ports.start.to_string();
        assert_eq!(
            var(&read_env(&file("a")), "PORT"),
            Some("9999"),
            "{name}: overwritten by a cd"
        );
        assert_eq!(
            var(&read_env(&file("b")), "PORT"),
            Some(port.as_str()),
            "{name}: the edit did not reload"
        );
        assert_eq!(
            var(&read_env(&file("c")), "PORT"),
            Some(port.as_str()),
            "{name}: reload did not"
        );
    }
}

/// After a failed load, the fix alone reloads nothing at the next prompt
/// (no error repeated at every prompt either); the hint names `wtenv
/// reload`, which loads. At a real prompt (fish in tmux: it runs no
/// prompt events on a pipe).
#[test]
fn after_a_failed_load_the_hint_names_wtenv_reload_which_loads() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        std::fs::remove_dir_all(t.state_dir()).ok();
        std::fs::create_dir_all(t.registry_path().parent().unwrap()).unwrap();
        std::fs::write(t.registry_path(), "garbage").unwrap();
        let file = |n: &str| t.root().join(format!("{}-retry-{n}.env", sh.name()));
        // The first prompt fails (the registry is garbage); the fix; two
        // prompts with no reload; then `wtenv reload`.
        let lines = format!(
            "source {hook}\nenv -0 > {a}\nrm {reg}\ntrue\nenv -0 > {b}\nwtenv reload\nenv -0 > {c}\n",
            hook = q(&hook),
            reg = q(&t.registry_path()),
            a = q(&file("a")),
            b = q(&file("b")),
            c = q(&file("c")),
        );
        let out = match sh {
            Sh::Fish => in_tmux(&t, sh, &t.repo, &lines, &file("c")),
            _ => interactive(&t, sh, &t.repo, &lines),
        };
        let name = sh.name();
        let said = String::from_utf8_lossy(if sh == Sh::Fish {
            &out.stdout
        } else {
            &out.stderr
        });
        let hint = "hint: once that is fixed, 'wtenv reload' (or the next cd) loads this directory's variables";
        assert_eq!(said.matches(hint).count(), 1, "{name}: {said}");
        assert_eq!(
            said.matches("error:").count(),
            1,
            "{name}: said again: {said}"
        );
        assert_eq!(var(&read_env(&file("a")), "PORT"), None, "{name}: {said}");
        assert_eq!(var(&read_env(&file("b")), "PORT"), None, "{name}: {said}");
        assert_eq!(
            var(&read_env(&file("c")), "PORT"),
            Some(t.ports.start.to_string().as_str()),
            "{name}: {said}"
        );
    }
}

/// Ctrl-C while the hook's `wtenv` waited for the registry lock (held by
/// another wtenv) killed it before it printed anything: the hook had
/// already marked the directory done, so the shell stayed in worktree b
/// with a's ports and a's `WTENV_WORKTREE`, and no prompt tried again.
/// The wait is now said after a second, the directory is marked only
/// once `wtenv` returned, and the next prompt loads b.
#[test]
fn ctrl_c_while_the_hook_waits_for_a_lock_leaves_no_other_worktrees_ports() {
    use crate::support::{Tmux, wait_for};
    use std::time::Duration;
    let t = TestEnv::new();
    t.write_config("[services.web]\n");
    t.git(&["commit", "-q", "-am", "web"]);
    let (a, b) = (t.add_worktree("a"), t.add_worktree("b"));
    let port_of = |wt: &std::path::Path| {
        t.allocations()
            .into_iter()
            .find(|(_, _, w)| w == wt)
            .map(|(port, _, _)| port)
    };
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let command: &[&str] = match sh {
            Sh::Bash => &["bash", "--norc", "--noprofile", "-i"],
            Sh::Zsh => &["zsh", "--no-rcs", "-i"],
            Sh::Fish => &["fish", "--no-config", "-i"],
        };
        let tmux = Tmux::start(&t, &t.root(), command);
        tmux.line(&t, &format!("source {}", q(&hook)));
        tmux.line(&t, &format!("cd {}", q(&a)));
        let dump = |name: &str| {
            let file = t.root().join(format!("{}-{name}.env", sh.name()));
            tmux.line(&t, &format!("env -0 > {}", q(&file)));
            assert!(
                wait_for(Duration::from_secs(30), || std::fs::read(&file)
                    .is_ok_and(|d| d.ends_with(b"\0"))),
                "{}: {}",
                sh.name(),
                tmux.pane(&t)
            );
            read_env(&file)
        };
        assert_eq!(
            var(&dump("a"), "WTENV_WORKTREE"),
            a.to_str(),
            "{}: {}",
            sh.name(),
            tmux.pane(&t)
        );
        let lock = std::fs::File::open(t.state_dir().join("registry.lock")).unwrap();
        lock.lock().unwrap();
        tmux.line(&t, &format!("cd {}", q(&b)));
        assert!(
            wait_for(Duration::from_secs(30), || tmux
                .pane(&t)
                .contains("wtenv: waiting for the lock ")),
            "{}: the wait was not said: {}",
            sh.name(),
            tmux.pane(&t)
        );
        tmux.keys(&t, &["C-c"]);
        std::thread::sleep(Duration::from_millis(500));
        drop(lock);
        let env = dump("b");
        let screen = tmux.pane(&t);
        assert_eq!(
            var(&env, "WTENV_WORKTREE"),
            b.to_str(),
            "{}: {screen}",
            sh.name()
        );
        assert_eq!(
            var(&env, "WEB_PORT").map(str::to_owned),
            port_of(&b).map(|p| p.to_string()),
            "{}: {screen}",
            sh.name()
        );
        assert!(run(&mut t.wtenv(&["release", "--worktree", b.to_str().unwrap()])).code == Some(0));
    }
}
