//! `use wtenv` under the real direnv.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::shell::{pwned_under, read_env, var};
use crate::support::{PyListener, Run, TestEnv, run};

/// Installs `use_wtenv` in direnv's lib dir and commits an `.envrc` that
/// says `use wtenv`, so every worktree made afterwards has it.
pub fn with_direnv(t: &TestEnv) {
    let lib = t.root().join("config/direnv/lib");
    std::fs::create_dir_all(&lib).unwrap();
    let hook = run(&mut t.wtenv(&["hook", "direnv"]));
    assert_eq!(hook.code, Some(0), "{hook}");
    std::fs::write(lib.join("wtenv.sh"), hook.stdout).unwrap();
    std::fs::write(t.repo.join(".envrc"), "use wtenv\n").unwrap();
    t.git(&["add", ".envrc"]);
    t.git(&["commit", "-q", "-m", "envrc"]);
}

pub fn direnv(t: &TestEnv, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("direnv");
    t.apply_env(&mut cmd);
    cmd.args(args).current_dir(dir);
    run(&mut cmd)
}

pub fn allow(t: &TestEnv, dir: &Path) {
    let out = direnv(t, dir, &["allow", dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out}");
}

/// `direnv exec DIR env -0` → the environment of a command run there.
pub fn exec_env(t: &TestEnv, dir: &Path) -> (Vec<(String, String)>, Run) {
    let file = t.root().join("exec.env");
    let _ = std::fs::remove_file(&file);
    let out = direnv(
        t,
        dir,
        &[
            "exec",
            dir.to_str().unwrap(),
            "sh",
            "-c",
            "echo shell works; env -0 > \"$1\"",
            "sh",
            file.to_str().unwrap(),
        ],
    );
    (read_env(&file), out)
}

#[test]
fn direnv_use_wtenv_exports_the_same_ports_on_reentry_and_differs_per_worktree() {
    let t = TestEnv::new();
    with_direnv(&t);
    let other = t.add_worktree("other");
    allow(&t, &t.repo);
    allow(&t, &other);
    let (first, out) = exec_env(&t, &t.repo);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    let port = var(&first, "PORT").map(str::to_owned);
    assert_eq!(port, Some(t.ports.start.to_string()), "{out}");
    assert_eq!(var(&first, "WTENV_WORKTREE"), t.repo.to_str());
    let (again, _) = exec_env(&t, &t.repo);
    assert_eq!(
        var(&again, "PORT"),
        port.as_deref(),
        "re-entry moved the port"
    );
    let (theirs, out) = exec_env(&t, &other);
    assert_eq!(
        var(&theirs, "PORT"),
        Some((t.ports.start + 1).to_string().as_str()),
        "{out}"
    );
    assert_eq!(var(&theirs, "WTENV_WORKTREE"), other.to_str());
    assert_eq!(t.allocations().len(), 2);
}

#[test]
fn direnv_conflict_shows_the_fail_fast_message_and_the_shell_still_works() {
    let t = TestEnv::new();
    with_direnv(&t);
    allow(&t, &t.repo);
    let _busy = PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.start, "");
    let (env, out) = exec_env(&t, &t.repo);
    assert!(
        out.stderr.contains(&format!(
            "Port conflict detected in feature range {}.",
            t.ports.range()
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("Ports free in registry but occupied on system:"),
        "{out}"
    );
    assert_eq!(out.stdout, "shell works\n", "{out}");
    // Nothing of wtenv's is half-set.
    for name in ["PORT", "WTENV_WORKTREE", "WTENV_PORTS", "WTENV_PURPOSE"] {
        assert_eq!(var(&env, name), None, "{name}: {out}");
    }
    assert!(t.allocations().is_empty());
}

#[test]
fn direnv_corrupt_registry_is_reported_and_nothing_is_set() {
    let t = TestEnv::new();
    with_direnv(&t);
    allow(&t, &t.repo);
    std::fs::create_dir_all(t.state_dir()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(t.registry_path(), "{ not json").unwrap();
    let (env, out) = exec_env(&t, &t.repo);
    assert!(out.stderr.contains("cannot be used"), "{out}");
    assert_eq!(out.stdout, "shell works\n", "{out}");
    assert_eq!(var(&env, "PORT"), None, "{out}");
    assert_eq!(
        std::fs::read_to_string(t.registry_path()).unwrap(),
        "{ not json"
    );
}

/// Lines piped into an interactive bash after `eval "$(direnv hook
/// bash)"`: PROMPT_COMMAND fires before each line, as at a terminal.
fn interactive_bash(t: &TestEnv, lines: &str) -> std::process::Output {
    let mut cmd = Command::new("bash");
    t.apply_env(&mut cmd);
    let mut child = cmd
        .args(["--noprofile", "--norc", "-i"])
        .current_dir(t.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let script = format!("eval \"$(direnv hook bash)\"\n{lines}exit\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn interactive_bash_with_direnv_hook_gets_the_ports_on_cd_and_loses_them_on_leaving() {
    let t = TestEnv::new();
    with_direnv(&t);
    allow(&t, &t.repo);
    let (inside, outside) = (t.root().join("in.env"), t.root().join("out.env"));
    let out = interactive_bash(
        &t,
        &format!(
            "cd '{}'\nenv -0 > '{}'\ncd ..\nenv -0 > '{}'\n",
            t.repo.display(),
            inside.display(),
            outside.display()
        ),
    );
    assert!(out.status.success(), "{out:?}");
    let inside = read_env(&inside);
    assert_eq!(
        var(&inside, "PORT"),
        Some(t.ports.start.to_string().as_str()),
        "{out:?}"
    );
    assert_eq!(var(&inside, "WTENV_WORKTREE"), t.repo.to_str());
    let outside = read_env(&outside);
    for name in ["PORT", "WTENV_WORKTREE", "WTENV_PORTS", "WTENV_IDENTIFIER"] {
        assert_eq!(var(&outside, name), None, "{name} left behind: {out:?}");
    }
}

/// direnv reloads when the config or the worktree's stamp changes, not
/// when another worktree's allocation changes the shared registry.
/// direnv reloads when the config changes, and when a second config is
/// made beside it (an error), never when another worktree's allocation
/// changes the registry.
#[test]
fn direnv_watches_the_config_and_the_stamp_not_the_registry() {
    let t = TestEnv::new();
    with_direnv(&t);
    let other = t.add_worktree("other");
    allow(&t, &t.repo);
    // `direnv export json` prints `{...}` when it (re)loads, nothing when
    // the loaded environment is still current.
    let script = format!(
        "cd '{repo}'\neval \"$(direnv export bash)\"\necho \"loaded=$PORT\"\n\
         (cd '{other}' && wtenv_bin env >/dev/null)\n\
         echo \"registry: [$(direnv export json)]\"\n\
         sleep 1.1; touch wtenv.toml\n\
         echo \"config: [$(direnv export json | head -c 1)]\"\n\
         eval \"$(direnv export bash)\"\n\
         sleep 1.1; echo '{{}}' > wtenv.json\n\
         echo \"beside: [$(direnv export json 2>/dev/null | head -c 1)]\"\n",
        repo = t.repo.display(),
        other = other.display(),
    );
    let mut cmd = Command::new("bash");
    t.apply_env(&mut cmd);
    let out = run(cmd
        .args(["--noprofile", "--norc", "-euo", "pipefail", "-c"])
        .arg(script.replace("wtenv_bin", env!("CARGO_BIN_EXE_wtenv")))
        .current_dir(t.root()));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("loaded={}\n", t.ports.start)),
        "{out}"
    );
    assert!(out.stdout.contains("registry: []\n"), "{out}");
    assert!(out.stdout.contains("config: [{]\n"), "{out}");
    // A second config beside the first is an error: its creation reloads.
    assert!(out.stdout.contains("beside: [{]\n"), "{out}");
    assert_eq!(t.allocations().len(), 2);
    assert_eq!(pwned_under(&t.root()), None);
}

/// The lib file records the binary's path when written; after an upgrade
/// or a Nix garbage collection that path may be gone: `use wtenv` then
/// uses the `wtenv` on PATH instead of failing.
#[test]
fn direnv_lib_falls_back_to_wtenv_on_path_when_the_recorded_binary_is_gone() {
    let t = TestEnv::new();
    with_direnv(&t);
    let lib = t.root().join("config/direnv/lib/wtenv.sh");
    let gone = t.root().join("gone/wtenv");
    std::fs::write(
        &lib,
        wtenv::commands::hook::render(wtenv::commands::hook::Target::Direnv, &gone),
    )
    .unwrap();
    let bin = t.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wtenv"), bin.join("wtenv")).unwrap();
    allow(&t, &t.repo);
    let file = t.root().join("fallback.env");
    let mut cmd = Command::new("direnv");
    t.apply_env(&mut cmd);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
        .args([
            "exec",
            t.repo.to_str().unwrap(),
            "sh",
            "-c",
            "env -0 > \"$1\"",
            "sh",
        ])
        .arg(&file)
        .current_dir(&t.repo);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    let env = read_env(&file);
    assert_eq!(
        var(&env, "PORT"),
        Some(t.ports.start.to_string().as_str()),
        "{out}"
    );
}

/// `use wtenv` extends direnv's watch list itself instead of running
/// `direnv watch` (a process per load): the list it writes must be the one
/// the real `direnv watch` writes for the same files, from the same start.
#[test]
fn wtenv_extends_the_watch_list_exactly_as_direnv_watch_does() {
    let t = TestEnv::new();
    let direnv_json = |dir: &Path, args: &[&str], watches: Option<&str>| -> String {
        let mut cmd = Command::new("direnv");
        t.apply_env(&mut cmd);
        if let Some(w) = watches {
            cmd.env("DIRENV_WATCHES", w);
        }
        let out = run(cmd.args(args).current_dir(dir));
        assert_eq!(out.code, Some(0), "{out}");
        out.stdout
    };
    let watches_of = |json: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["DIRENV_WATCHES"].as_str().unwrap().to_owned()
    };
    // The start: what direnv itself recorded for an .envrc.
    let envrc = t.repo.join(".envrc");
    std::fs::write(&envrc, "use wtenv\n").unwrap();
    let start = watches_of(&direnv_json(
        &t.repo,
        &["watch", "json", envrc.to_str().unwrap()],
        None,
    ));

    // Without a list to extend, wtenv falls back to direnv's `watch_file`;
    // that line names the files it watches.
    let out = run(&mut t.wtenv(&["env", "--direnv"]));
    assert_eq!(out.code, Some(0), "{out}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("watch_file "))
        .unwrap_or_else(|| panic!("no watch_file line: {out}"));
    let files: Vec<&str> = line["watch_file ".len()..]
        .split(' ')
        .map(|f| f.trim_matches('\''))
        .collect();
    // Both names of the config (another beside it is an error), then
    // the stamp.
    assert_eq!(files.len(), 3, "{line}");
    assert!(files[0].ends_with("/wtenv.toml"), "{line}");
    assert!(files[1].ends_with("/wtenv.json"), "{line}");

    let mut cmd = t.wtenv(&["env", "--direnv"]);
    let out = run(cmd.env("DIRENV_WATCHES", &start));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stdout.contains("watch_file"), "{out}");
    let ours = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("export DIRENV_WATCHES='"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no DIRENV_WATCHES export: {out}"));

    let mut args = vec!["watch", "json"];
    args.extend(&files);
    let theirs = watches_of(&direnv_json(&t.repo, &args, Some(&start)));
    // Compared decoded (by direnv itself): zlib streams may differ in
    // bytes, and direnv <= 2.32 writes the keys capitalized (its decoder
    // ignores case).
    let dump = |w: &str| -> serde_json::Value {
        let text = direnv_json(&t.repo, &["show_dump", w], None);
        let text = ["Path", "Modtime", "Exists"].iter().fold(text, |s, k| {
            s.replace(&format!("\"{k}\""), &format!("\"{}\"", k.to_lowercase()))
        });
        serde_json::from_str(&text).unwrap()
    };
    let ours = dump(ours);
    assert_eq!(ours, dump(&theirs));
    assert_eq!(ours.as_array().map(Vec::len), Some(4), "{ours}");
}

/// `use wtenv` in an `.envrc` below the worktree's root (`front/`) whose
/// load fails on the root's invalid config watches that config, where
/// wtenv looks for it, not `front/wtenv.toml`: fixing it reloads.
#[test]
fn a_failed_load_below_the_root_reloads_once_the_root_config_is_fixed() {
    let t = TestEnv::new();
    with_direnv(&t);
    let front = t.repo.join("front");
    std::fs::create_dir_all(&front).unwrap();
    std::fs::write(front.join(".envrc"), "use wtenv\n").unwrap();
    allow(&t, &front);
    std::fs::write(t.repo.join("wtenv.toml"), "[purposes\n").unwrap();
    // What `use wtenv` evals on failure: the watch of the root's config,
    // nothing else.
    let out = run(&mut t.wtenv_in(&front, &["env", "--direnv"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stdout,
        format!(
            "watch_file '{root}/wtenv.toml' '{root}/wtenv.json'\n",
            root = t.repo.display()
        ),
        "{out}"
    );
    let mut bash = Command::new("bash");
    t.apply_env(&mut bash);
    fails_then_reloads_once_fixed(&t, &front, bash);
}

/// Enters `dir` under direnv (`bash` runs it, in the test's environment)
/// while the worktree's `wtenv.toml` is invalid, then writes a valid one:
/// the load fails (nothing exported, the error names the config), the
/// next prompt does not load again while nothing changed, and once the
/// config is fixed it reloads and exports the port.
pub fn fails_then_reloads_once_fixed(t: &TestEnv, dir: &Path, mut bash: Command) {
    std::fs::write(t.repo.join("wtenv.toml"), "[purposes\n").unwrap();
    let valid = format!("[purposes]\nfeature = \"{}\"\n", t.ports.range());
    let script = format!(
        "cd '{dir}'\neval \"$(direnv export bash)\"\necho \"failed=${{PORT-}}\"\n\
         echo \"again: [$(direnv export json)]\"\n\
         sleep 1.1; printf '%s' '{valid}' > '{config}'\n\
         echo \"fixed: [$(direnv export json | head -c 1)]\"\n\
         eval \"$(direnv export bash)\"\necho \"loaded=$PORT\"\n",
        dir = dir.display(),
        config = t.repo.join("wtenv.toml").display(),
    );
    let out = run(bash
        .args(["--noprofile", "--norc", "-euo", "pipefail", "-c", &script])
        .current_dir(t.root()));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("failed=\n"), "{out}");
    assert!(out.stderr.contains("wtenv.toml"), "{out}");
    assert!(out.stdout.contains("again: []\n"), "{out}");
    assert!(out.stdout.contains("fixed: [{]\n"), "{out}");
    assert!(
        out.stdout.contains(&format!("loaded={}\n", t.ports.start)),
        "{out}"
    );
}
