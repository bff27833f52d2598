//! Hints that give a command to paste (README, "Messages"): pasted into
//! the real bash, each does what it says, even under a directory whose
//! name holds a single quote (or for a branch holding one, or `$(...)`);
//! and a name with control characters reaches the terminal escaped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell::{SHELLS, Sh};
use crate::support::{Run, TestEnv, run};

/// The name of the directory the state is kept under: a hint that wraps a
/// path in plain single quotes gives a command that breaks on it, and one
/// that leaves the backslash inside them names another path in fish.
const QUOTED: &str = r"it\'s \\here";

/// `wtenv ARGS` in the main worktree, its state (registry, locks, trust
/// list) kept in `state`.
fn wtenv(t: &TestEnv, state: &Path, args: &[&str]) -> Command {
    let mut cmd = t.wtenv(args);
    cmd.env("WTENV_STATE_DIR", state);
    cmd
}

/// The state directory under [`QUOTED`], made by a first `env` (0700, with
/// a registry).
fn quoted_state(t: &TestEnv) -> PathBuf {
    let state = t.root().join(QUOTED).join("state");
    let out = run(&mut wtenv(t, &state, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    state
}

/// The command in `out`'s hint: the text between `before` and `after` on
/// its `hint:` line (the whole line when both are empty).
fn hinted(out: &Run, before: &str, after: &str) -> String {
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint: {out}"));
    let start = line
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in the hint: {out}"))
        + before.len();
    let rest = &line[start..];
    let end = match after {
        "" => rest.len(),
        _ => rest
            .rfind(after)
            .unwrap_or_else(|| panic!("no {after:?} in the hint: {out}")),
    };
    rest[..end].to_owned()
}

/// `command` pasted into the real bash (strict flags): it succeeds.
fn paste(t: &TestEnv, command: &str) {
    paste_into(Sh::Bash, t, command);
}

/// `command` pasted into the real `shell`: it succeeds.
fn paste_into(shell: Sh, t: &TestEnv, command: &str) {
    let out = shell.run(t, &t.root(), command);
    assert_eq!(
        out.code,
        Some(0),
        "pasted into {}: {command:?}: {out}",
        shell.name()
    );
}

/// `env` with `state`: exit 2, the registry unusable for `reason`.
fn refused(t: &TestEnv, state: &Path, reason: &str) -> Run {
    let out = run(&mut wtenv(t, state, &["env"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains(reason), "{out}");
    out
}

fn env_succeeds(t: &TestEnv, state: &Path) {
    let out = run(&mut wtenv(t, state, &["env"]));
    assert_eq!(out.code, Some(0), "after the hint's command: {out}");
    assert!(out.stdout.contains("export PORT="), "{out}");
}

#[test]
fn chmod_hints_for_the_registry_and_its_directory_work_when_pasted() {
    let t = TestEnv::new();
    let state = quoted_state(&t);
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));

    // The same text in each shell the hooks serve.
    for shell in SHELLS {
        mode(&state, 0o770).unwrap();
        let out = refused(&t, &state, "is writable by group or others (mode 770)");
        let command = hinted(&out, "", "");
        assert!(command.starts_with("chmod 700 "), "{out}");
        paste_into(shell, &t, &command);
        env_succeeds(&t, &state);
    }

    mode(&state.join("registry.json"), 0o620).unwrap();
    let out = refused(&t, &state, "is writable by group or others (mode 620)");
    let command = hinted(&out, "", "");
    assert!(command.starts_with("chmod 600 "), "{out}");
    paste(&t, &command);
    env_succeeds(&t, &state);
}

#[test]
fn the_hint_to_move_an_unreadable_registry_aside_works_when_pasted() {
    let t = TestEnv::new();
    let state = quoted_state(&t);
    let registry = state.join("registry.json");
    std::fs::write(&registry, "not a registry\n").unwrap();
    let out = refused(&t, &state, "cannot be used");
    paste(&t, &hinted(&out, "start afresh: ", ""));
    assert_eq!(
        std::fs::read_to_string(state.join("registry.json.bak")).unwrap(),
        "not a registry\n"
    );
    env_succeeds(&t, &state);
}

#[test]
fn the_hint_to_remove_a_planted_lock_file_works_when_pasted() {
    let t = TestEnv::new();
    let state = quoted_state(&t);
    let lock = state.join("registry.lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(t.root().join("elsewhere"), &lock).unwrap();
    let out = refused(&t, &state, "registry.lock");
    paste(&t, &hinted(&out, "remove it (", "), wtenv makes a new one"));
    env_succeeds(&t, &state);
}

#[test]
fn the_hint_to_remove_an_unusable_trust_list_works_when_pasted() {
    let t = TestEnv::new();
    let state = quoted_state(&t);
    let list = state.join("trust.json");
    std::os::unix::fs::symlink(t.root().join("elsewhere"), &list).unwrap();
    let out = run(&mut wtenv(&t, &state, &["trust"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("symbolic link"), "{out}");
    paste(&t, &hinted(&out, "trust nothing: ", ""));
    let out = run(&mut wtenv(&t, &state, &["trust"]));
    assert_eq!(out.code, Some(0), "after the hint's command: {out}");
}

/// The hint after `export systemd`, pasted with `systemctl` a function
/// that logs its arguments: it names each file written, whole.
#[test]
fn the_hint_after_export_names_the_unit_files_when_pasted() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nenv = [\"PORT\"]\nrun = \"sleep 60\"\n");
    let dir = t.root().join(QUOTED).join("units");
    let out = run(&mut t.wtenv(&["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    let written: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(written.len(), 2, "{out}");

    let log = t.root().join("systemctl.log");
    let stub = format!(
        "systemctl() {{ printf '%s\\n' \"$@\" >>'{}'; }}\n",
        log.display()
    );
    paste(&t, &format!("{stub}{}", hinted(&out, "", "")));
    let target = Path::new(written[0]).file_name().unwrap().to_str().unwrap();
    let mut expected = vec!["--user", "link"];
    expected.extend(&written);
    expected.extend(["--user", "enable", "--now", target]);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().collect::<Vec<_>>(), expected, "{out}");
}

/// A state directory named with an escape sequence and a newline: the
/// hint's path is quoted and its control characters escaped, never sent
/// raw, and then the backslashes, the quoting's `\'` included (README,
/// "Messages").
#[test]
fn a_hint_path_with_control_characters_is_quoted_and_escaped() {
    let t = TestEnv::new();
    let state = t.root().join("it's\x1b]0;T\x07\nhere").join("state");
    let out = run(&mut wtenv(&t, &state, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    std::fs::set_permissions(&state, PermissionsExt::from_mode(0o777)).unwrap();
    let out = refused(&t, &state, "(mode 777)");
    assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
    let shown = format!(
        r"hint: chmod 700 '{}/it'\\''s\u{{1b}}]0;T\u{{7}}\nhere/state'",
        t.root().display()
    );
    assert_eq!(out.stderr.lines().last(), Some(shown.as_str()), "{out}");
}

/// A branch name the repository's config makes ([worktrees] branch) may
/// hold a quote or `$(...)`, which git accepts: the hint to delete it,
/// pasted, deletes it and runs nothing.
#[test]
fn the_hint_to_delete_a_taken_branch_works_when_pasted_and_runs_nothing() {
    let t = TestEnv::new();
    for template in ["it's/{identifier}", "x$(touch$IFS\"PWNED\")/{identifier}"] {
        t.write_config(&format!(
            "[worktrees]\nbranch = {}\n",
            serde_json::to_string(template).unwrap()
        ));
        let branch = template.replace("{identifier}", "taken");
        t.git(&["branch", &branch]);
        let out = run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "taken"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains("already exists"), "{out}");
        let out = Sh::Bash.run(&t, &t.repo, &hinted(&out, "delete the branch: ", ""));
        assert_eq!(out.code, Some(0), "{template}: {out}");
        assert_eq!(t.git(&["branch", "--list", &branch]), "", "{template}");
        assert_eq!(crate::shell::pwned_under(&t.root()), None, "{template}");
    }
}

/// A config its owner cannot read (mode 200) was "could not read config:
/// Permission denied (os error 13)" with no hint. The hint's command,
/// pasted, lets the next `env` read it.
#[test]
fn the_hint_for_a_config_its_owner_cannot_read_works_when_pasted() {
    let t = TestEnv::new();
    let config = t.repo.join("wtenv.toml");
    t.give_to_nobody();
    std::fs::set_permissions(&config, PermissionsExt::from_mode(0o200)).unwrap();
    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: could not read config {}: Permission denied",
            config.display()
        )),
        "{out}"
    );
    let command = hinted(&out, "", "");
    assert!(command.starts_with("chmod u+r "), "{out}");
    paste(&t, &command);
    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(0), "after the hint's command: {out}");

    // Another user's: the hint names the owner, and the command that
    // owner would paste.
    std::os::unix::fs::chown(&config, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&config, PermissionsExt::from_mode(0o600)).unwrap();
    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("hint: it belongs to uid 0, "), "{out}");
    paste(&t, &hinted(&out, "(", ")"));
    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(0), "after the hint's command: {out}");
}
