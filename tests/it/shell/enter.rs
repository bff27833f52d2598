//! The `wtenv` shell function: it `cd`s into the path the directive file
//! names (read, never evaluated), keeps a failing command's exit code, and
//! with the real `wtenv enter` lands in the new worktree with its port.

use std::path::PathBuf;
use std::process::Command;

use wtenv::commands::hook::{self, Target};

use super::{SHELLS, Sh, hook_file, pwned_under, q};
use crate::support::{TestEnv, run};

/// A stand-in for the binary: writes `$STUB_TARGET` to `$WTENV_CD_FILE`,
/// prints shell code on stdout that must never run, exits `$STUB_EXIT`.
/// As `env` (the prompt hook, which zsh and fish run on `cd`) it prints
/// nothing.
fn stub_binary(t: &TestEnv) -> PathBuf {
    let dir = t.root().join("stub bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wtenv's stub");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$1\" = env ] && exit 0\n[ -n \"$WTENV_CD_FILE\" ] && printf '%s' \"$STUB_TARGET\" > \"$WTENV_CD_FILE\"\necho 'touch PWNED'\nexit \"${STUB_EXIT:-0}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn wtenv_function_cds_into_the_path_from_the_directive_file() {
    let t = TestEnv::new();
    let stub = stub_binary(&t);
    // Quotes, $(), a newline and a trailing newline: read, never eval'd.
    let target = t.root().join("it's $(touch PWNED)\nhere\n");
    std::fs::create_dir_all(&target).unwrap();
    for (sh, tgt) in [
        (Sh::Bash, Target::Bash),
        (Sh::Zsh, Target::Zsh),
        (Sh::Fish, Target::Fish),
    ] {
        let hook = t.root().join(format!("stub-hook.{}", sh.name()));
        std::fs::write(&hook, hook::render(tgt, &stub)).unwrap();
        let pwd_file = t.root().join(format!("{}.pwd", sh.name()));
        let status = match sh {
            Sh::Fish => "$status",
            _ => "$?",
        };
        let script = format!(
            "source {hook}\nwtenv enter x\nprintf '%s' \"$PWD\" > {pwd}\ncd {root}\nSTUB_EXIT=3 wtenv enter x; echo \"rc={status}\"\npwd\n",
            hook = q(&hook),
            pwd = q(&pwd_file),
            root = q(&t.root()),
        );
        let mut cmd = Command::new(sh.name());
        let out = {
            t.apply_env(&mut cmd);
            let flags: &[&str] = match sh {
                Sh::Bash => &["--noprofile", "--norc", "-uo", "pipefail", "-c"],
                Sh::Zsh => &["--no-rcs", "-uc"],
                Sh::Fish => &["--no-config", "-c"],
            };
            cmd.args(flags)
                .arg(&script)
                .env("STUB_TARGET", &target)
                .current_dir(t.root());
            run(&mut cmd)
        };
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        assert_eq!(
            std::fs::read(&pwd_file).unwrap(),
            target.to_str().unwrap().as_bytes(),
            "{}: {out}",
            sh.name()
        );
        // A failing command keeps its exit code and does not cd.
        assert!(out.stdout.contains("rc=3\n"), "{}: {out}", sh.name());
        assert!(
            out.stdout.ends_with(&format!("{}\n", t.root().display())),
            "{}: {out}",
            sh.name()
        );
        assert_eq!(pwned_under(&t.root()), None, "{}", sh.name());
    }
}

/// The real `wtenv enter` through each shell's `wtenv` function: the shell
/// ends up in the new worktree, and the prompt hook exports its port.
#[test]
fn wtenv_enter_changes_the_directory_of_each_shell_and_exports_its_port() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let out_file = t.root().join(format!("{}.out", sh.name()));
        let script = format!(
            "source {hook}\nwtenv enter {name}-x\n{after}\nprintf '%s\\n%s\\n' \"$PWD\" \"$PORT\" > {out}\n",
            hook = q(&hook),
            name = sh.name(),
            after = sh.after_cd(),
            out = q(&out_file),
        );
        let out = sh.run(&t, &t.repo, &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        let written = std::fs::read_to_string(&out_file).unwrap();
        let mut lines = written.lines();
        let pwd = PathBuf::from(lines.next().unwrap());
        assert!(
            pwd.ends_with(format!("feature-{}-x", sh.name())) && pwd.join(".git").is_file(),
            "{}: the shell is not in the new worktree: {written}",
            sh.name()
        );
        let port: u16 = lines
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{}: no PORT: {written}", sh.name()));
        assert!(
            t.allocations().contains(&(port, "app".into(), pwd.clone())),
            "{}: PORT {port} is not the worktree's allocation",
            sh.name()
        );
    }
}

/// The binary's own `wtenv reload` cannot change its shell's variables:
/// it exits 1 and says how to define the function that can, or how to
/// load them once, in one line. Followed in bash (the binary on PATH as
/// `wtenv`, as the hint assumes), the function's `wtenv reload` exports
/// the worktree's port; in fish, the one-time load it names does.
#[test]
fn the_binarys_reload_says_how_to_define_the_function_that_reloads() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["reload"]));
    assert_eq!(out.code, Some(1), "{out}");
    let define = r#"eval "$(wtenv hook bash)""#;
    assert!(out.stderr.contains(define), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    let fish_once = "wtenv env --format fish | source";
    let hint = out.stderr.lines().find(|l| l.starts_with("hint:")).unwrap();
    assert!(hint.contains(r#"eval "$(wtenv env)""#), "{out}");
    assert!(hint.contains(fish_once), "{out}");

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wtenv"));
    let mut bash = Command::new("bash");
    t.apply_env(&mut bash);
    let path = std::env::join_paths(
        std::iter::once(bin.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    bash.env("PATH", &path).current_dir(&t.repo).args([
        "--norc",
        "-c",
        &format!("{define} && wtenv reload && echo \"PORT=$PORT\""),
    ]);
    let out = run(&mut bash);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("PORT={}", t.ports.start)),
        "{out}"
    );

    let mut fish = Command::new("fish");
    t.apply_env(&mut fish);
    fish.env("PATH", &path).current_dir(&t.repo).args([
        "--no-config",
        "-c",
        &format!("{fish_once}; and echo \"PORT=$PORT\""),
    ]);
    let out = run(&mut fish);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("PORT={}\n", t.ports.start), "{out}");
}

/// QA finding: Ctrl-C of `wtenv run` through the function, or closing
/// the terminal while it ran, left the function's `wtenv-cd.*` file in
/// `$TMPDIR` (every shell leaves a function whose command dies of
/// SIGINT, so its `rm` never ran), and zsh said `$?` 1 instead of 130.
/// Only `enter` makes that file now, and every other command is the
/// function's last: in the real bash, zsh and fish under tmux, nothing is
/// left and the status is 130, then nothing after the terminal closes.
#[test]
fn ctrl_c_or_a_closed_terminal_leaves_no_file_of_the_function() {
    let t = TestEnv::new();
    let tmpdir = t.root().join("tmpdir");
    std::fs::create_dir_all(&tmpdir).unwrap();
    // The function's files (fish keeps a directory of its own there).
    let leftovers = || {
        let names = std::fs::read_dir(&tmpdir).unwrap();
        let names = names.map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names
            .filter(|n| n.starts_with("wtenv-cd."))
            .collect::<Vec<_>>()
    };
    for sh in SHELLS {
        let marker = format!("wtenv-qa-{}", sh.name());
        let argv: &[&str] = match sh {
            Sh::Bash => &["bash", "--norc", "--noprofile", "-i"],
            Sh::Zsh => &["zsh", "--no-rcs", "-i"],
            Sh::Fish => &["fish", "--no-config", "-i"],
        };
        let tmpdir_var = format!("TMPDIR={}", tmpdir.display());
        let mut command = vec!["env", &tmpdir_var];
        command.extend_from_slice(argv);
        let running = || {
            wtenv::process::all_pids().into_iter().any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.starts_with(b"sh\0") && String::from_utf8_lossy(&c).contains(&marker)
                })
            })
        };
        for close in [false, true] {
            let tmux = crate::support::Tmux::start(&t, &t.repo, &command);
            let hook = match sh {
                Sh::Fish => format!(
                    "{} hook fish | source",
                    q(std::path::Path::new(env!("CARGO_BIN_EXE_wtenv")))
                ),
                _ => format!(
                    "eval \"$({} hook {})\"",
                    q(std::path::Path::new(env!("CARGO_BIN_EXE_wtenv"))),
                    sh.name()
                ),
            };
            tmux.line(&t, &hook);
            tmux.line(&t, &format!("wtenv run -- sh -c 'sleep 100; : {marker}'"));
            assert!(
                crate::support::wait_for(std::time::Duration::from_secs(30), running),
                "{}: {}",
                sh.name(),
                tmux.pane(&t)
            );
            if close {
                drop(tmux);
            } else {
                tmux.keys(&t, &["C-c"]);
                let status = match sh {
                    Sh::Fish => "echo rc=$status",
                    _ => "echo rc=$?",
                };
                tmux.line(&t, status);
                assert!(
                    crate::support::wait_for(std::time::Duration::from_secs(30), || tmux
                        .pane(&t)
                        .contains("rc=130")),
                    "{}: {}",
                    sh.name(),
                    tmux.pane(&t)
                );
            }
            assert!(
                crate::support::wait_for(std::time::Duration::from_secs(30), || !running()),
                "{}: still running",
                sh.name()
            );
            assert_eq!(
                leftovers(),
                Vec::<String>::new(),
                "{} (closed: {close})",
                sh.name()
            );
        }
    }
}
