//! The hook and completion scripts as text: `wtenv hook` prints the
//! shell-hooks/ file byte for byte, shellcheck, shfmt, `zsh -n` and fish
//! accept them, the completions parse in each shell, and neither needs a
//! state directory.

use std::path::Path;
use std::process::Command;

use wtenv::commands::hook::{self, Target};

use super::{SHELLS, Sh, q};
use crate::support::{TestEnv, run};

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
        let file = t.root().join(format!("completion.{}", sh.name()));
        std::fs::write(&file, &out.stdout).unwrap();
    }
    // What Tab offers after each word list, one candidate a line (bash's
    // function fails under -e when nothing matches: `compgen` in `$(...)`).
    let bash = |words: &str| {
        let script = format!(
            "source {}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
             _wtenv wtenv \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" || true\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            q(&t.root().join("completion.bash"))
        );
        let out = Sh::Bash.run(&t, &t.repo, &script);
        assert_eq!(out.code, Some(0), "{out}");
        out.stdout
    };
    let fish = |line: &str| {
        let script = format!(
            "source {}\ncomplete -C '{line}'",
            q(&t.root().join("completion.fish"))
        );
        let out = Sh::Fish.run(&t, &t.repo, &script);
        assert_eq!(out.code, Some(0), "{out}");
        // `candidate<TAB>description`: the candidate.
        out.stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_owned() + "\n")
            .collect::<String>()
    };
    let has = |list: &str, word: &str| list.lines().any(|l| l == word);
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
