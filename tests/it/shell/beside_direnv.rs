//! The prompt hook and direnv's hook in the same shell (real direnv, its
//! config isolated as in `crate::direnv`): in a worktree whose `.envrc`
//! says `use wtenv`, the prompt hook stands aside, so that leaving gives
//! back what the user had; in one whose `.envrc` does not, it loads as
//! ever.

use super::{Sh, hook_file, in_tmux, interactive, q, read_env, var};
use crate::direnv::{allow, with_direnv};
use crate::support::TestEnv;

const BESIDE: &str = "direnv's 'use wtenv' (this worktree's .envrc) loads its variables: the prompt hook leaves them to direnv";

/// Both hooks exported the ports, and the prompt hook saved direnv's
/// values as the user's: leaving, direnv gave back the user's `PORT` and
/// the hook then "restored" the worktree's, which stayed exported
/// outside it. Now the hook exports none of the worktree's variables
/// there (its bookkeeping lists only its fingerprint), says so once on
/// entering (not again on a `cd` inside), and leaving gives the user's
/// `PORT` back. bash with the hooks installed in both orders, and with
/// the prompt hook running first; zsh in both orders; fish at a real
/// prompt (direnv's fish hook runs on its prompt event).
#[test]
fn the_prompt_hook_leaves_a_use_wtenv_worktree_to_direnv() {
    let t = TestEnv::new();
    with_direnv(&t);
    allow(&t, &t.repo);
    let sub = t.repo.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let outside = t.root().join("home");
    let cases = [
        (
            Sh::Bash,
            "direnv's first",
            "eval \"$(direnv hook bash)\"\nsource HOOK",
        ),
        (
            Sh::Bash,
            "wtenv's first",
            "source HOOK\neval \"$(direnv hook bash)\"",
        ),
        (
            Sh::Bash,
            "wtenv's hook run first",
            "source HOOK\neval \"$(direnv hook bash)\"\nPROMPT_COMMAND='__wtenv_hook;_direnv_hook'",
        ),
        (
            Sh::Zsh,
            "direnv's first",
            "eval \"$(direnv hook zsh)\"\nsource HOOK",
        ),
        (
            Sh::Zsh,
            "wtenv's first",
            "source HOOK\neval \"$(direnv hook zsh)\"",
        ),
        (
            Sh::Fish,
            "wtenv's first",
            "source HOOK; direnv hook fish | source",
        ),
    ];
    let port = t.ports.start.to_string();
    for (i, (sh, case, install)) in cases.into_iter().enumerate() {
        let name = sh.name();
        let hook = hook_file(&t, name);
        let file = |n: &str| t.root().join(format!("beside-{i}-{n}.env"));
        let mine = match sh {
            Sh::Fish => "set -gx PORT mine",
            _ => "export PORT=mine",
        };
        let lines = format!(
            "{mine}\n{install}\ncd {repo}\nenv -0 > {a}\ncd {sub}\ncd {out}\nenv -0 > {b}\n",
            install = install.replace("HOOK", &q(&hook)),
            repo = q(&t.repo),
            sub = q(&sub),
            out = q(&outside),
            a = q(&file("in")),
            b = q(&file("out")),
        );
        let said = match sh {
            // fish runs no prompt events on a pipe: a terminal, whose
            // screen shows what was said.
            Sh::Fish => {
                String::from_utf8_lossy(&in_tmux(&t, sh, &outside, &lines, &file("out")).stdout)
                    .into_owned()
            }
            _ => {
                let out = interactive(&t, sh, &outside, &lines);
                assert!(out.status.success(), "{name}, {case}: {out:?}");
                String::from_utf8_lossy(&out.stderr).into_owned()
            }
        };
        let (inside, left) = (read_env(&file("in")), read_env(&file("out")));
        // direnv's `use wtenv` exported them; the hook none.
        assert_eq!(
            var(&inside, "PORT"),
            Some(port.as_str()),
            "{name}, {case}: {said}"
        );
        assert_eq!(
            var(&inside, "WTENV_WORKTREE"),
            t.repo.to_str(),
            "{name}, {case}"
        );
        assert_eq!(
            var(&inside, "__WTENV_DIFF"),
            Some("__WTENV_LOADED"),
            "{name}, {case}: {said}"
        );
        assert_eq!(var(&left, "PORT"), Some("mine"), "{name}, {case}: {said}");
        for gone in [
            "WTENV_WORKTREE",
            "WTENV_PORTS",
            "__WTENV_DIFF",
            "__WTENV_SAVED",
        ] {
            assert_eq!(
                var(&left, gone),
                None,
                "{name}, {case}: {gone} left: {said}"
            );
        }
        assert_eq!(said.matches(BESIDE).count(), 1, "{name}, {case}: {said}");
    }
}

/// With direnv's hook installed, a worktree whose `.envrc` does not say
/// `use wtenv` gets its ports from the prompt hook as ever, and says
/// nothing of direnv.
#[test]
fn beside_direnv_a_worktree_without_use_wtenv_is_the_prompt_hooks() {
    let t = TestEnv::new();
    std::fs::write(t.repo.join(".envrc"), "export FROM_DIRENV=yes\n").unwrap();
    allow(&t, &t.repo);
    let outside = t.root().join("home");
    for sh in [Sh::Bash, Sh::Zsh] {
        let name = sh.name();
        let hook = hook_file(&t, name);
        let file = |n: &str| t.root().join(format!("{name}-own-{n}.env"));
        let lines = format!(
            "export PORT=mine\nsource {hook}\neval \"$(direnv hook {name})\"\ncd {repo}\nenv -0 > {a}\ncd {out}\nenv -0 > {b}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            out = q(&outside),
            a = q(&file("in")),
            b = q(&file("out")),
        );
        let out = interactive(&t, sh, &outside, &lines);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {said}");
        let (inside, left) = (read_env(&file("in")), read_env(&file("out")));
        assert_eq!(var(&inside, "FROM_DIRENV"), Some("yes"), "{name}: {said}");
        assert_eq!(
            var(&inside, "PORT"),
            Some(t.ports.start.to_string().as_str()),
            "{name}: {said}"
        );
        assert!(
            var(&inside, "__WTENV_DIFF").is_some_and(|d| d.split(':').any(|n| n == "PORT")),
            "{name}: {said}"
        );
        assert_eq!(var(&left, "PORT"), Some("mine"), "{name}: {said}");
        assert_eq!(var(&left, "FROM_DIRENV"), None, "{name}: {said}");
        assert!(!said.contains("direnv's"), "{name}: {said}");
    }
}

/// Straight from a worktree V whose ports the prompt hook exports into a
/// worktree W whose `.envrc` says `use wtenv`, with direnv's hook running
/// first (bash's and zsh's order, however installed: direnv puts its hook
/// first): direnv loads W over V's values and records them as the ones to
/// give back. The hook gave the user's back over direnv's load (W showed
/// `PORT=mine` and no `WTENV_WORKTREE`), and on leaving W direnv gave V's
/// back, which stayed exported outside. Now W has its own, V its own again
/// after W, and V -> W -> V -> outside, or V -> W -> outside, leaves
/// exactly the user's values (`PORT=mine`, or none).
#[test]
fn straight_from_a_hooks_worktree_into_direnvs_and_back_each_has_its_own() {
    let t = TestEnv::new();
    with_direnv(&t);
    let w = t.add_worktree("w");
    // V's `.envrc` gone: V is the prompt hook's.
    std::fs::remove_file(t.repo.join(".envrc")).unwrap();
    allow(&t, &w);
    let v = &t.repo;
    let outside = t.root().join("home");
    let cases = [
        (Sh::Bash, "eval \"$(direnv hook bash)\"\nsource HOOK"),
        (Sh::Bash, "source HOOK\neval \"$(direnv hook bash)\""),
        (Sh::Zsh, "eval \"$(direnv hook zsh)\"\nsource HOOK"),
        (Sh::Zsh, "source HOOK\neval \"$(direnv hook zsh)\""),
    ];
    for (i, (sh, install)) in cases.into_iter().enumerate() {
        for mine in [Some("mine"), None] {
            let name = sh.name();
            let hook = hook_file(&t, name);
            let file = |n: &str| t.root().join(format!("straight-{i}-{mine:?}-{n}.env"));
            let lines = format!(
                "{set}\n{install}\ncd {v}\nenv -0 > {v1}\ncd {w}\nenv -0 > {w1}\n\
                 cd {v}\nenv -0 > {v2}\ncd {out}\nenv -0 > {o1}\n\
                 cd {v}\ncd {w}\ncd {out}\nenv -0 > {o2}\n",
                set = mine.map_or("unset PORT".into(), |m| format!("export PORT={m}")),
                install = install.replace("HOOK", &q(&hook)),
                v = q(v),
                w = q(&w),
                out = q(&outside),
                v1 = q(&file("v1")),
                w1 = q(&file("w")),
                v2 = q(&file("v2")),
                o1 = q(&file("out1")),
                o2 = q(&file("out2")),
            );
            let out = interactive(&t, sh, &outside, &lines);
            let said = String::from_utf8_lossy(&out.stderr);
            let case = format!("{name}, {install:?}, PORT {mine:?}");
            assert!(out.status.success(), "{case}: {said}");
            let port_of = |root: &std::path::Path| {
                let ports: Vec<u16> = t
                    .allocations()
                    .into_iter()
                    .filter(|(_, _, wt)| wt == root)
                    .map(|(p, _, _)| p)
                    .collect();
                assert_eq!(ports.len(), 1, "{case}: {ports:?}");
                ports[0].to_string()
            };
            for (place, root) in [("v1", v), ("w", &w), ("v2", v)] {
                let env = read_env(&file(place));
                let port = port_of(root);
                assert_eq!(
                    var(&env, "PORT"),
                    Some(port.as_str()),
                    "{case}, {place}: {said}"
                );
                assert_eq!(
                    var(&env, "WTENV_WORKTREE"),
                    root.to_str(),
                    "{case}, {place}"
                );
                assert_eq!(
                    var(&env, "WTENV_PURPOSE"),
                    Some("feature"),
                    "{case}, {place}"
                );
            }
            for place in ["out1", "out2"] {
                let left = read_env(&file(place));
                assert_eq!(var(&left, "PORT"), mine, "{case}, {place}: {said}");
                for gone in [
                    "WTENV_WORKTREE",
                    "WTENV_PURPOSE",
                    "WTENV_PORTS",
                    "__WTENV_DIFF",
                    "__WTENV_SAVED",
                ] {
                    assert_eq!(var(&left, gone), None, "{case}, {place}: {gone}: {said}");
                }
            }
        }
    }
}
