//! bash's prompt hook among the other PROMPT_COMMAND elements: installed
//! last and once, it leaves the command's `$?` and PIPESTATUS to the
//! elements before it, gives `$?` back to one after it, and never ends
//! a `set -e` shell.

use super::{Sh, hook_file, interactive, q};
use crate::support::TestEnv;

/// At a `set -e` prompt, a list that fails without failing the shell
/// (`[ -f /nonexistent ] && echo yes`, `! true`) left `$?` non-zero, the
/// hook handed it back from PROMPT_COMMAND, and bash's errexit ended the
/// interactive shell there.
#[test]
fn a_set_e_bash_lives_on_after_a_list_that_failed() {
    let t = TestEnv::new();
    let hook = hook_file(&t, "bash");
    let lines = format!(
        "source {}\nset -e\n[ -f /nonexistent ] && echo yes\n! true\necho still alive\ncd ..\necho \"PORT=${{PORT-}}\"\n",
        q(&hook)
    );
    let out = interactive(&t, Sh::Bash, &t.repo, &lines);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "still alive\nPORT=\n", "{stderr}");
}

/// An element installed before the hook, and one that prepends itself
/// after it was installed (as direnv and starship do), see the command's
/// own `$?` and PIPESTATUS, at a prompt where the hook loads too (the
/// `cd`); one appended after the hook sees `$?`; PS1's `$?` is the
/// command's (bash restores it after PROMPT_COMMAND). The string and
/// array forms.
#[test]
fn prompt_command_elements_see_the_commands_status_and_pipestatus() {
    let t = TestEnv::new();
    let hook = hook_file(&t, "bash");
    // What each element saw, then its own status given back, as a
    // well-behaved element does (direnv's does).
    let record = |file: &str, name: &str| {
        format!(
            "{name}() {{ local s=$? p=\"${{PIPESTATUS[*]}}\"; echo \"{name} $s $p\" >> {file}; return $s; }}\n"
        )
    };
    let cases = [
        (
            "string, before",
            "PROMPT_COMMAND=__before",
            "PROMPT_COMMAND+=';__after'",
            &["__before 4 3 4", "__after 4 4"][..],
        ),
        (
            "array, before",
            "PROMPT_COMMAND=(__before)",
            "PROMPT_COMMAND+=(__after)",
            // bash gives each element of the array the command's status.
            &["__before 4 3 4", "__after 4 3 4"],
        ),
        (
            "string, prepended later",
            "",
            "PROMPT_COMMAND=\"__later;$PROMPT_COMMAND\"",
            &["__later 4 3 4"],
        ),
        (
            "array, prepended later",
            "PROMPT_COMMAND=()",
            "PROMPT_COMMAND=(__later \"${PROMPT_COMMAND[@]}\")",
            &["__later 4 3 4"],
        ),
    ];
    for (i, (case, before, after, want)) in cases.into_iter().enumerate() {
        let file = q(&t.root().join(format!("status-{i}")));
        let lines = format!(
            "{}{}{}{before}\nsource {hook}\n{after}\nPS1='[ps1 $?]'\n: > {file}; cd ..; (exit 3) | (exit 4)\n",
            record(&file, "__before"),
            record(&file, "__later"),
            record(&file, "__after"),
            hook = q(&hook),
        );
        let out = interactive(&t, Sh::Bash, &t.repo, &lines);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `exit` (the helper's last line) exits with the pipeline's status.
        assert_eq!(out.status.code(), Some(4), "{case}: {stderr}");
        let seen = std::fs::read_to_string(t.root().join(format!("status-{i}"))).unwrap();
        assert_eq!(seen.lines().collect::<Vec<_>>(), want, "{case}: {stderr}");
        assert!(stderr.contains("[ps1 4]"), "{case}: {stderr}");
    }
}

/// Sourcing the hook again (a re-sourced .bashrc) adds it nowhere, and it
/// goes last: after each element of an array (one holding `;` itself),
/// after a string's commands (its trailing `;` or blanks kept out of the
/// way of a syntax error).
#[test]
fn the_bash_hook_is_installed_last_and_once() {
    let t = TestEnv::new();
    let hook = hook_file(&t, "bash");
    for (before, after) in [
        (
            "unset PROMPT_COMMAND",
            r#"declare -- PROMPT_COMMAND="__wtenv_hook""#,
        ),
        (
            "PROMPT_COMMAND='history -a;'",
            r#"declare -- PROMPT_COMMAND="history -a;__wtenv_hook""#,
        ),
        (
            "PROMPT_COMMAND=$'a; b \\n'",
            r#"declare -- PROMPT_COMMAND="a; b;__wtenv_hook""#,
        ),
        (
            "PROMPT_COMMAND=(a 'b; c')",
            r#"declare -a PROMPT_COMMAND=([0]="a" [1]="b; c" [2]="__wtenv_hook")"#,
        ),
        (
            "PROMPT_COMMAND=('_direnv_hook;__wtenv_hook' x)",
            r#"declare -a PROMPT_COMMAND=([0]="_direnv_hook;__wtenv_hook" [1]="x")"#,
        ),
    ] {
        let script = format!(
            "{before}\nsource {hook}\nsource {hook}\ndeclare -p PROMPT_COMMAND\nfor e in \"${{PROMPT_COMMAND[@]}}\"; do bash -nc \"$e\" || echo \"syntax: $e\"; done\n",
            hook = q(&hook)
        );
        let out = Sh::Bash.run(&t, &t.root(), &script);
        assert_eq!(out.stdout, format!("{after}\n"), "{before}: {out}");
    }
}
