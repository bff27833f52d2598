//! `wtenv hook bash|zsh|fish|direnv|nix` and the shell functions, in the
//! real shells with strict flags.

use std::path::{Path, PathBuf};
use std::process::Command;

use wtenv::commands::hook::{self, Target};

use crate::support::{Run, TestEnv, run};

const TARGETS: [(&str, Target); 5] = [
    ("bash", Target::Bash),
    ("zsh", Target::Zsh),
    ("fish", Target::Fish),
    ("direnv", Target::Direnv),
    ("nix", Target::Nix),
];

/// A real shell, run non-interactively with its strictest useful flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sh {
    Bash,
    Zsh,
    Fish,
}

pub const SHELLS: [Sh; 3] = [Sh::Bash, Sh::Zsh, Sh::Fish];

impl Sh {
    pub fn name(self) -> &'static str {
        match self {
            Sh::Bash => "bash",
            Sh::Zsh => "zsh",
            Sh::Fish => "fish",
        }
    }

    /// `script` in this shell, in `dir`, in the test's isolated environment.
    pub fn run(self, t: &TestEnv, dir: &Path, script: &str) -> Run {
        run(&mut self.command(t, dir, script))
    }

    /// The command [`Sh::run`] runs, to add to.
    pub fn command(self, t: &TestEnv, dir: &Path, script: &str) -> Command {
        let mut cmd = Command::new(self.name());
        t.apply_env(&mut cmd);
        match self {
            Sh::Bash => cmd.args(["--noprofile", "--norc", "-euo", "pipefail", "-c", script]),
            Sh::Zsh => cmd.args(["--no-rcs", "-c", &format!("set -eu -o pipefail\n{script}")]),
            Sh::Fish => cmd.args(["--no-config", "-c", script]),
        };
        cmd.current_dir(dir);
        cmd
    }

    /// What makes the prompt hook run after a `cd`: bash needs its prompt
    /// (PROMPT_COMMAND, shown interactively in `bash_prompt_command_...`);
    /// zsh's chpwd and fish's PWD event fire on `cd` itself.
    pub fn after_cd(self) -> &'static str {
        match self {
            Sh::Bash => "__wtenv_hook",
            Sh::Zsh | Sh::Fish => "",
        }
    }
}

/// `wtenv hook <shell>` written to a file in the test's directory.
pub fn hook_file(t: &TestEnv, target: &str) -> PathBuf {
    let out = run(&mut t.wtenv(&["hook", target]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.is_empty(), "{out}");
    let path = t.root().join(format!("hook.{target}"));
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// Single-quoted for bash, zsh and fish alike (test paths have no quotes).
pub fn q(path: &Path) -> String {
    let s = path.to_str().unwrap();
    assert!(
        !s.contains(['\'', '\\']),
        "test path needs no escaping: {s}"
    );
    format!("'{s}'")
}

/// The exported environment a script dumped with `env -0 > FILE`.
pub fn read_env(path: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .split('\0')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub fn var<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A file named PWNED anywhere under `dir`: code ran that should not have.
pub fn pwned_under(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "PWNED") {
            return Some(path);
        }
        if entry.file_type().is_ok_and(|f| f.is_dir())
            && let Some(p) = pwned_under(&path)
        {
            return Some(p);
        }
    }
    None
}

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

#[test]
fn prompt_hook_does_nothing_when_the_directory_did_not_change() {
    let t = TestEnv::new();
    for sh in SHELLS {
        let hook = hook_file(&t, sh.name());
        let sub = t.repo.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        // Once inside, the registry is made unreadable: a hook that ran
        // wtenv again would print an error. Without a cd it must not;
        // after a cd into a subdirectory it does (so the probe is real).
        let script = format!(
            "source {hook}\ncd {repo}\n{h}\nprintf garbage > {reg}\n__wtenv_hook\n__wtenv_hook\necho quiet >&2\ncd {sub}\n{h}\nenv -0 > {env}\n",
            hook = q(&hook),
            repo = q(&t.repo),
            sub = q(&sub),
            h = sh.after_cd(),
            reg = q(&t.registry_path()),
            env = q(&t.root().join("after.env")),
        );
        std::fs::remove_dir_all(t.state_dir()).ok();
        let out = sh.run(&t, &t.root(), &script);
        assert_eq!(out.code, Some(0), "{}: {out}", sh.name());
        let (before_cd, after_cd) = out.stderr.split_once("quiet\n").unwrap();
        assert_eq!(
            before_cd,
            "",
            "{}: the hook ran without a cd: {out}",
            sh.name()
        );
        assert!(after_cd.contains("registry"), "{}: {out}", sh.name());
        // The failure left nothing half-set: everything exported is gone.
        let env = read_env(&t.root().join("after.env"));
        assert_eq!(var(&env, "PORT"), None, "{}", sh.name());
        assert_eq!(var(&env, "WTENV_WORKTREE"), None, "{}", sh.name());
        assert_eq!(var(&env, "__WTENV_DIFF"), None, "{}", sh.name());
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

/// An interactive shell fed lines on a pipe: its prompt hooks fire
/// before each line, as at a terminal.
pub fn interactive(t: &TestEnv, sh: Sh, dir: &Path, lines: &str) -> std::process::Output {
    let mut cmd = Command::new(sh.name());
    t.apply_env(&mut cmd);
    let flags: &[&str] = match sh {
        Sh::Bash => &["--noprofile", "--norc", "-i"],
        Sh::Zsh => &["--no-rcs", "-i"],
        Sh::Fish => &["--no-config", "-i"],
    };
    let mut child = cmd
        .args(flags)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{lines}exit\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `lines` typed into an interactive shell in a tmux terminal, one by one;
/// done once `last_file` holds a whole `env -0` dump.
pub fn in_tmux(
    t: &TestEnv,
    sh: Sh,
    dir: &Path,
    lines: &str,
    last_file: &Path,
) -> std::process::Output {
    // A server of its own per call: a test that calls this again right
    // after `kill-server` must not meet the dying one on the same socket.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let socket = t.root().join(format!("tmux-{call}.sock"));
    let mut env = Command::new("true");
    t.apply_env(&mut env);
    let vars: Vec<String> = env
        .get_envs()
        .map(|(k, v)| format!("'{}={}'", k.to_str().unwrap(), v.unwrap().to_str().unwrap()))
        .collect();
    let launcher = t.root().join(format!("{}-launch.sh", sh.name()));
    let flags = match sh {
        Sh::Bash => "--noprofile --norc -i",
        Sh::Zsh => "--no-rcs -i",
        Sh::Fish => "--no-config -i",
    };
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nexec env -i TERM=xterm-256color {} {} {flags}\n",
            vars.join(" "),
            sh.name()
        ),
    )
    .unwrap();
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "200",
        "-y",
        "50",
        "-c",
        dir.to_str().unwrap(),
        &format!("sh {}", q(&launcher)),
    ]);
    assert!(started.status.success(), "{started:?}");
    for line in lines.lines() {
        let sent = tmux(&["send-keys", "-t", "0", "-l", line]);
        assert!(sent.status.success(), "{sent:?}");
        tmux(&["send-keys", "-t", "0", "Enter"]);
    }
    // `env -0` output is complete when it ends with a NUL.
    let done = crate::support::wait_for(std::time::Duration::from_secs(30), || {
        std::fs::read(last_file).is_ok_and(|b| b.ends_with(b"\0"))
    });
    let screen = tmux(&["capture-pane", "-p", "-t", "0"]);
    tmux(&["kill-server"]);
    assert!(done, "{}", String::from_utf8_lossy(&screen.stdout));
    screen
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
