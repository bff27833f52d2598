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
