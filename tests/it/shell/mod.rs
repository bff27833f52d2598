//! `wtenv hook bash|zsh|fish|direnv|nix` and the shell functions, in the
//! real shells with strict flags.
//!
//! A module per concept: `scripts` (the hook and completion scripts as
//! text: the files they come from, linted, parsed, printed without
//! state), `prompt_hook` (what the prompt hook exports, restores and
//! unsets as the shell moves), `bash_prompt` (bash's hook among the
//! other PROMPT_COMMAND elements), `beside_direnv` (the hook and
//! direnv's in one shell) and `enter` (the `wtenv` function's `cd`).
//! This file holds the shells and the helpers several of them share, which
//! other areas' tests use too (`Sh`, `SHELLS`, `hook_file`, `q`,
//! `read_env`, `var`, `pwned_under`, `interactive`, `in_tmux`,
//! `in_tmux_as`).

mod bash_prompt;
mod beside_direnv;
mod enter;
mod prompt_hook;
mod scripts;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, TestEnv, run};

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

/// A file named PWNED (or `PWNED-` and what ran: `PWNED-path`) anywhere
/// under `dir`: code ran that should not have.
pub fn pwned_under(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "PWNED" || n.starts_with("PWNED-"))
        {
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
    let flags = match sh {
        Sh::Bash => "--noprofile --norc -i",
        Sh::Zsh => "--no-rcs -i",
        Sh::Fish => "--no-config -i",
    };
    in_tmux_as(t, sh, flags, dir, lines, last_file)
}

/// [`in_tmux`], the shell started with `flags` (`-i` alone: a fish that
/// reads its own `share/config.fish`, where interactive fish's event
/// handlers are; the user's config is the test's, empty).
pub fn in_tmux_as(
    t: &TestEnv,
    sh: Sh,
    flags: &str,
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
