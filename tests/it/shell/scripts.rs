//! The hook and completion scripts as text: `wtenv hook` prints the
//! shell-hooks/ file byte for byte, shellcheck, shfmt, `zsh -n` and fish
//! accept them, the completions parse in each shell, and neither needs a
//! state directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wtenv::commands::hook::{self, Target};

use super::{SHELLS, Sh, q};
use crate::support::{TestEnv, Tmux, run, wait_for};

const TARGETS: [(&str, Target); 5] = [
    ("bash", Target::Bash),
    ("zsh", Target::Zsh),
    ("fish", Target::Fish),
    ("direnv", Target::Direnv),
    ("nix", Target::Nix),
];

#[test]
fn hook_output_is_the_shell_hooks_file_byte_for_byte() {
    let t = TestEnv::new();
    let exe = Path::new(env!("CARGO_BIN_EXE_wtenv"))
        .canonicalize()
        .unwrap();
    for (name, target) in TARGETS {
        let out = run(&mut t.wtenv(&["hook", name]));
        assert_eq!(out.code, Some(0), "{out}");
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("shell-hooks")
            .join(target.file_name());
        let on_disk = std::fs::read_to_string(&file).unwrap();
        let quoted = match target {
            Target::Fish => wtenv::shell::quote_fish(exe.to_str().unwrap()),
            _ => wtenv::shell::quote_posix(exe.to_str().unwrap()),
        };
        assert_eq!(
            out.stdout,
            on_disk.replace(hook::EXE_PLACEHOLDER, &quoted),
            "wtenv hook {name} differs from {}",
            file.display()
        );
        assert!(
            out.stdout.contains(&quoted),
            "{name}: binary path not filled in"
        );
    }
}

#[test]
fn shellcheck_and_shfmt_pass_on_the_bash_hooks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shell-hooks");
    // zsh and fish are not shellcheck's languages: `zsh -n` and
    // `fish --no-execute` check their syntax instead.
    let out = run(Command::new("shellcheck")
        .args([
            "--shell=bash",
            "--severity=style",
            "wtenv.bash",
            "direnv.sh",
            "nix.sh",
        ])
        .current_dir(&dir));
    assert_eq!(out.code, Some(0), "{out}");
    // Formatting: shfmt's diff is empty. It knows no zsh/fish.
    let out = run(Command::new("shfmt")
        .args(["-d", "-i", "2", "wtenv.bash", "direnv.sh", "nix.sh"])
        .current_dir(&dir));
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""), "{out}");
    let out = run(Command::new("zsh")
        .args(["-n", "wtenv.zsh"])
        .current_dir(&dir));
    assert_eq!(out.code, Some(0), "{out}");
    let out = run(Command::new("fish")
        .args(["--no-config", "--no-execute", "wtenv.fish"])
        .current_dir(&dir));
    assert_eq!(out.code, Some(0), "{out}");
}

/// `wtenv completions SHELL` prints a script the shell itself accepts.
#[test]
fn completions_parse_in_bash_zsh_and_fish() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let out = run(&mut t.wtenv(&["completions", sh.name()]));
        assert_eq!(out.code, Some(0), "{out}");
        assert!(
            out.stdout.contains("wtenv") && out.stdout.contains("validate"),
            "{out}"
        );
        let file = t.root().join(format!("completion.{}", sh.name()));
        std::fs::write(&file, &out.stdout).unwrap();
        let check = match sh {
            Sh::Bash => run(Command::new("bash").arg("-n").arg(&file)),
            Sh::Zsh => run(Command::new("zsh").arg("-n").arg(&file)),
            Sh::Fish => run(Command::new("fish").arg("--no-execute").arg(&file)),
        };
        assert_eq!(check.code, Some(0), "{}: {check}", sh.name());
    }
    // bash: loading it registers the completion function for wtenv.
    let out = Sh::Bash.run(
        &t,
        &t.repo,
        &format!(
            "source {}\ncomplete -p wtenv",
            q(&t.root().join("completion.bash"))
        ),
    );
    assert!(out.stdout.contains("wtenv"), "{out}");
}

/// `hook` and `completions` read no state: they print their text where no
/// registry can be found (no HOME, XDG_STATE_HOME nor WTENV_STATE_DIR, as
/// in a build sandbox), byte for byte what they print elsewhere.
#[test]
fn hook_and_completions_work_without_home() {
    let t = TestEnv::new();
    for args in [
        &["hook", "bash"][..],
        &["hook", "direnv"],
        &["completions", "bash"],
    ] {
        let with_home = run(&mut t.wtenv(args));
        let mut cmd = t.wtenv(args);
        cmd.env_remove("HOME").env_remove("XDG_STATE_HOME");
        let without = run(&mut cmd);
        assert_eq!(
            without.code,
            Some(0),
            "wtenv {args:?} without HOME: {without}"
        );
        assert_eq!(without.stderr, "", "{without}");
        assert!(!without.stdout.is_empty());
        assert_eq!(without.stdout, with_home.stdout, "wtenv {args:?}");
    }
    // A command that needs the registry still says why it cannot find it.
    let mut cmd = t.wtenv(&["ports"]);
    cmd.env_remove("HOME").env_remove("XDG_STATE_HOME");
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("cannot find the registry"), "{out}");
}

/// `wtenv completions SHELL` for bash and fish, written where
/// [`bash_offers`] and [`fish_offers`] source them.
fn write_completions(t: &TestEnv) {
    for sh in [Sh::Bash, Sh::Fish] {
        let out = run(&mut t.wtenv(&["completions", sh.name()]));
        assert_eq!(out.code, Some(0), "{out}");
        let file = t.root().join(format!("completion.{}", sh.name()));
        std::fs::write(&file, &out.stdout).unwrap();
    }
}

/// What bash's completion offers after `words` (a bash array's words, the
/// last the one completed: `wtenv ''`), one candidate a line (its
/// function fails under -e when nothing matches: `compgen` in `$(...)`).
fn bash_offers(t: &TestEnv, words: &str) -> String {
    let script = format!(
        "source {}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
         _wtenv wtenv \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" || true\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        q(&t.root().join("completion.bash"))
    );
    let out = Sh::Bash.run(t, &t.repo, &script);
    assert_eq!(out.code, Some(0), "{out}");
    out.stdout
}

/// What fish offers when Tab is pressed at the end of `line`, one
/// candidate a line (without its description).
fn fish_offers(t: &TestEnv, line: &str) -> String {
    let script = format!(
        "source {}\ncomplete -C '{line}'",
        q(&t.root().join("completion.fish"))
    );
    let out = Sh::Fish.run(t, &t.repo, &script);
    assert_eq!(out.code, Some(0), "{out}");
    // `candidate<TAB>description`: the candidate.
    out.stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned() + "\n")
        .collect()
}

fn has(list: &str, word: &str) -> bool {
    list.lines().any(|l| l == word)
}

/// The completions offer what `--help` shows and nothing it hides: bash
/// and fish asked as they are when Tab is pressed (zsh's are checked as
/// text by the unit tests of `commands::completions`).
#[test]
fn completions_offer_no_hidden_subcommand_or_flag() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let out = run(&mut t.wtenv(&["completions", sh.name()]));
        assert_eq!(out.code, Some(0), "{out}");
        assert!(!out.stdout.contains("__listen-exec"), "{}", sh.name());
        assert!(!out.stdout.contains("Internal:"), "{}", sh.name());
    }
    write_completions(&t);
    let bash = |words: &str| bash_offers(&t, words);
    let fish = |line: &str| fish_offers(&t, line);
    for (sh, subcommands, underscore, run_flags) in [
        (
            "bash",
            bash("wtenv ''"),
            bash("wtenv _"),
            bash("wtenv run --"),
        ),
        (
            "fish",
            fish("wtenv "),
            fish("wtenv _"),
            fish("wtenv run --"),
        ),
    ] {
        for word in ["create", "enter", "env", "run", "up", "completions"] {
            assert!(has(&subcommands, word), "{sh}: {word} in\n{subcommands}");
        }
        assert!(!has(&subcommands, "__listen-exec"), "{sh}:\n{subcommands}");
        assert!(
            underscore.trim().is_empty(),
            "{sh}: `wtenv _` offers\n{underscore}"
        );
        for flag in ["--grace", "--sockets", "--service", "--skip-occupied"] {
            assert!(has(&run_flags, flag), "{sh}: {flag} in\n{run_flags}");
        }
        for flag in ["--unit", "--log", "--log-limit", "--setsid"] {
            assert!(!has(&run_flags, flag), "{sh}: {flag} in\n{run_flags}");
        }
    }
}

/// A positional argument with fixed choices (found in clap's definition:
/// `hook TARGET`, `export FORMAT`, `completions SHELL`) has its values
/// offered by fish, as bash offers them, options or not before it, and at
/// its position only: `export FORMAT DIR` completes files after FORMAT.
/// (clap_complete's fish script completed files for all of them.)
#[test]
fn fish_offers_the_values_of_positionals_with_fixed_choices_as_bash_does() {
    use clap::CommandFactory;
    let t = TestEnv::new();
    write_completions(&t);
    let mut cli = wtenv::Cli::command();
    cli.build();
    let mut found = Vec::new();
    for sub in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
        let mut positionals: Vec<_> = sub.get_positionals().collect();
        positionals.sort_by_key(|a| a.get_index());
        // The words of the positionals before the one completed.
        let mut before = String::new();
        for arg in positionals {
            let mut values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect();
            values.sort();
            if !values.is_empty() {
                let name = sub.get_name();
                found.push(name);
                for line in [
                    format!("wtenv {name} {before}"),
                    format!("wtenv -v {name} --color never {before}"),
                ] {
                    let fish = fish_offers(&t, &line);
                    assert_eq!(fish.lines().collect::<Vec<_>>(), values, "fish: {line}");
                    let bash = bash_offers(&t, &format!("{line}''"));
                    for value in &values {
                        assert!(has(&bash, value), "bash: {line}: {value} in\n{bash}");
                    }
                }
            }
            before.push_str(values.first().map_or("x", String::as_str));
            before.push(' ');
        }
    }
    assert_eq!(found, ["hook", "export", "completions"]);
    assert_eq!(
        fish_offers(&t, "wtenv hook ").lines().collect::<Vec<_>>(),
        ["bash", "direnv", "fish", "nix", "zsh"]
    );
    let dir = fish_offers(&t, "wtenv export systemd ");
    assert!(has(&dir, "wtenv.toml"), "export's DIR: files in\n{dir}");
    assert!(!has(&dir, "launchd"), "export's DIR:\n{dir}");
}

/// fish offers `--color`'s values after it before the command (`wtenv
/// --color `), and the commands after `help`: it offered files for both
/// (the generated parse of the words before the command failed on the
/// option waiting for its value; `help` counted as a command already
/// seen in its own lines).
#[test]
fn fish_offers_color_values_before_the_command_and_commands_after_help() {
    let t = TestEnv::new();
    write_completions(&t);
    let offers = |line: &str| fish_offers(&t, line);
    for line in [
        "wtenv --color ",
        "wtenv -v --config x --color ",
        "wtenv list --color ",
    ] {
        assert_eq!(
            offers(line).lines().collect::<Vec<_>>(),
            ["always", "auto", "never"],
            "{line}"
        );
    }
    for line in ["wtenv help ", "wtenv -q help "] {
        let commands = offers(line);
        for word in ["create", "env", "list", "up", "completions"] {
            assert!(has(&commands, word), "{line}: {word} in\n{commands}");
        }
        assert!(
            !has(&commands, "wtenv.toml"),
            "{line}: files in\n{commands}"
        );
    }
    // A finished option still leads to the commands; one with no fixed
    // values (--registry) still completes files.
    assert!(has(&offers("wtenv --color never "), "create"));
    assert!(has(&offers("wtenv --registry "), "wtenv.toml"));
}

/// After `help COMMAND` nothing is offered (wtenv's commands have no
/// subcommands of their own): fish and bash offered file names there
/// (fish where no line says `-f`; bash by `complete -o default`, whose
/// fallback only a real line editor shows, so bash is asked in tmux,
/// against `export`'s DIR, which completes files still).
#[test]
fn nothing_is_offered_after_help_and_a_command() {
    let t = TestEnv::new();
    write_completions(&t);
    for line in ["wtenv help list ", "wtenv -q help up ", "wtenv help list w"] {
        assert_eq!(fish_offers(&t, line), "", "{line}");
    }
    assert!(has(&fish_offers(&t, "wtenv help li"), "list"));
    let tmux = Tmux::start_bash(&t);
    let source = format!("PS1='> '; source {}", q(&t.root().join("completion.bash")));
    tmux.line(&t, &source);
    // Keys are taken in order: the word typed after Tab shows once its
    // completion is done. `export`'s DIR first: a file is offered.
    let completed = |line: &str, end: &str| {
        tmux.keys(&t, &["-l", line]);
        tmux.keys(&t, &["Tab"]);
        tmux.keys(&t, &["-l", end]);
        let pane = || tmux.pane(&t);
        assert!(
            wait_for(Duration::from_secs(30), || pane().contains(end)),
            "{}",
            pane()
        );
        let pane = pane();
        let line = pane.lines().find(|l| l.contains(end)).unwrap();
        tmux.keys(&t, &["C-c"]);
        // The next line is typed once bash shows its prompt again: keys
        // sent while it still handles the Ctrl-C may be dropped (CI saw
        // `>  END2`, the line typed before it lost).
        assert!(
            wait_for(Duration::from_secs(30), || tmux
                .pane(&t)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_end() == ">")),
            "{}",
            tmux.pane(&t)
        );
        line.trim_end().to_owned()
    };
    let files = completed("wtenv export systemd wtenv.", " END1");
    // (Typed ahead, a line may show after the prompt's echo.)
    assert!(
        files.ends_with("> wtenv export systemd wtenv.toml  END1"),
        "{files}"
    );
    let after_help = completed("wtenv help list wtenv.", " END2");
    assert!(
        after_help.ends_with("> wtenv help list wtenv. END2"),
        "{after_help}"
    );
}
