//! Names wtenv did not choose: a repository path that is not UTF-8 or
//! holds control characters, a stored identifier `create` would refuse, a
//! stored purpose the config does not define.

use super::LIMIT;
use crate::shell::{Sh, pwned_under};
use crate::support::{TestEnv, run, run_bounded};

/// `env`, `allocate` and `create` panicked (exit 101) in a repository
/// whose path is not UTF-8: now exit 1 naming the path, nothing recorded.
#[test]
fn a_repository_path_that_is_not_utf8_is_refused_never_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestEnv::new();
    let name = std::ffi::OsStr::from_bytes(b"repo-\xff");
    let bad = t.root().join(name);
    std::fs::rename(&t.repo, &bad).unwrap();
    for args in [
        &["env"][..],
        &["env", "--hook"],
        &["env", "--format", "json"],
        &["allocate", "--service", "app"],
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--ports",
        ],
        &["enter", "y"],
        &["run", "--", "true"],
    ] {
        let out = run_bounded(&mut t.wtenv_in(&bad, args), LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(out.stderr.contains("not valid UTF-8"), "{args:?}: {out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
    assert!(!t.registry_path().exists(), "something was recorded");
    // A UTF-8 repository asked to create a worktree at a non-UTF-8 path.
    let t = TestEnv::new();
    let target = t.root().join(name);
    let mut cmd = t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "x",
        "--ports",
    ]);
    cmd.arg("--path").arg(&target);
    let out = run_bounded(&mut cmd, LIMIT);
    assert_eq!(out.code, Some(1), "{out}");
    // Named with its first such byte, as a repository's path is.
    assert!(
        out.stderr.contains(&format!(
            "the path is not valid UTF-8 (byte \\xff after {}/repo-)",
            t.root().display()
        )),
        "{out}"
    );
    assert!(!target.exists());
    assert!(t.allocations().is_empty());
}

/// A linked worktree whose path is not UTF-8: its `.git` file was read
/// lossily (U+FFFD), so every command said its git dir "is not there" and
/// hinted to remove `.git`. Now it is found, and refused as a repository
/// at such a path is, naming the byte; `list --json` in the main worktree
/// gives its path as `null`, never a lossy copy naming another directory.
#[test]
fn a_linked_worktree_path_that_is_not_utf8_is_found_and_refused_naming_the_byte() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestEnv::new();
    let wt = t.root().join(std::ffi::OsStr::from_bytes(b"wt-\xffname"));
    let out = std::process::Command::new("git")
        .current_dir(&t.repo)
        .args(["worktree", "add", "-q", "-b", "bad"])
        .arg(&wt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for args in [
        &["env"][..],
        &["env", "--hook"],
        &["allocate", "--service", "app"],
    ] {
        let out = run_bounded(&mut t.wtenv_in(&wt, args), LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .contains("its path is not valid UTF-8 (byte \\xff after "),
            "{args:?}: {out}"
        );
        assert!(!out.stderr.contains("not there"), "{args:?}: {out}");
    }
    assert!(!t.registry_path().exists(), "something was recorded");
    let out = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let listed = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["branch"] == "bad")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(listed["path"], serde_json::Value::Null, "{out}");
    assert_eq!(listed["identifier"], serde_json::Value::Null, "{out}");
    assert!(!out.stdout.contains('\u{fffd}'), "{out}");
}

/// A stored identifier `create` would refuse (a NUL in it made fish's
/// `source` fail, so nothing was applied) is dropped with one warning
/// naming the file; the directory name stands in, as for a worktree made
/// by hand, and every shell applies the output.
#[test]
fn an_invalid_stored_identifier_falls_back_to_the_directory_name_with_a_warning() {
    let t = TestEnv::new();
    let record = t.repo.join(".git/wtenv.json");
    std::fs::write(&record, r#"{"identifier":"id\u0000$(touch PWNED)"}"#).unwrap();
    let out = run(&mut t.wtenv(&["env", "--format", "fish"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "warning: {}: invalid identifier \"id\\0$(touch PWNED)\"; using the directory name\n",
            record.display()
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains("set -gx WTENV_IDENTIFIER 'repo'\n"),
        "{out}"
    );
    let file = t.root().join("out.fish");
    std::fs::write(&file, &out.stdout).unwrap();
    let sourced = Sh::Fish.run(
        &t,
        &t.repo,
        &format!("source '{}'\nprintf %s $WTENV_IDENTIFIER", file.display()),
    );
    assert_eq!(
        (sourced.code, sourced.stdout.as_str()),
        (Some(0), "repo"),
        "{sourced}"
    );
    assert_eq!(pwned_under(&t.root()), None);

    // `-q` drops the warning; `list` names the worktree by its directory.
    let out = run(&mut t.wtenv(&["-q", "env"]));
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out}");
    let out = run(&mut t.wtenv(&["list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["worktrees"][0]["identifier"], "repo", "{out}");
}

/// A stored purpose the config does not define is named in the error and
/// its hint with control characters escaped: the repository wrote it, and
/// the message is printed on every `cd` under the shell hook.
#[test]
fn an_undefined_stored_purpose_is_shown_escaped() {
    let t = TestEnv::new();
    let record = t.repo.join(".git/wtenv.json");
    std::fs::write(&record, r#"{"purpose":"x\u001b]0;T\u0007\ny"}"#).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("error: worktree ")
            && lines[0].ends_with(
                r#" has purpose "x\u{1b}]0;T\u{7}\ny", which the config does not define"#
            ),
        "{out}"
    );
    assert_eq!(
        lines[1], r#"hint: add x\u{1b}]0;T\u{7}\ny = "START-END" under [purposes] in wtenv.toml"#,
        "{out}"
    );
    assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
}

/// A directory named with an escape sequence and a newline is shown
/// escaped in the errors and warnings that name it, as a config's own
/// text is: a repository cloned under such a name would otherwise drive
/// the terminal, or forge a line, on every `cd` under the shell hook.
#[test]
fn a_path_with_control_characters_is_shown_escaped_in_messages() {
    let t = TestEnv::new();
    let dir = t.root().join("a\x1b]0;T\x07\nb");
    t.init_repo(&dir);
    let shown = format!("{}/a\\u{{1b}}]0;T\\u{{7}}\\nb", t.root().display());
    let config = dir.join("wtenv.toml");
    let range = std::fs::read_to_string(&config).unwrap();
    let check = |args: &[&str], code: i32, stderr: String| {
        let out = run(&mut t.wtenv_in(&dir, args));
        assert_eq!((out.code, &out.stderr), (Some(code), &stderr), "{out}");
        assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
    };

    // A release with nothing to release: a warning, and an error for a
    // service.
    check(
        &["release"],
        0,
        format!("warning: worktree {shown} has no allocations\n"),
    );
    check(
        &["release", "--service", "web"],
        1,
        format!(
            "error: worktree {shown} has no allocation for service \"web\"\n\
             hint: it has no allocations; 'wtenv ports --all' lists the registry's\n"
        ),
    );
    // A key of the config wtenv does not know: a warning; a config that
    // does not parse: an error.
    std::fs::write(&config, format!("{range}[allocation]\nbogus = 1\n")).unwrap();
    check(
        &["env", "--format", "json"],
        0,
        format!("warning: {shown}/wtenv.toml: unknown key \"allocation.bogus\" (ignored)\n"),
    );
    std::fs::write(&config, "[purposes\n").unwrap();
    let out = run(&mut t.wtenv_in(&dir, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with(&format!("error: invalid config {shown}/wtenv.toml:1:")),
        "{out}"
    );
    assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
}
