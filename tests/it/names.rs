//! The names wtenv makes from what it is given (a worktree's branch and
//! directories, from the identifier, `[worktrees] branch` and `root`, and
//! `--path`) hold no character a message would show escaped: through the
//! real binary and real git.

use std::path::PathBuf;

use crate::support::{Run, TestEnv, run, snapshot};

/// Everything a refused `create` or `enter` must leave as it was: every
/// file under the test's root but the state directory (its lock may be
/// made by any command), git's branches and its worktree list.
fn before_and_after(t: &TestEnv) -> (Vec<(PathBuf, Vec<u8>)>, String, String) {
    let state = t.root().join("state");
    let mut files = snapshot(&t.root());
    files.retain(|(p, _)| !p.starts_with(&state));
    (
        files,
        t.git(&["branch", "--list"]),
        t.git(&["worktree", "list", "--porcelain"]),
    )
}

/// `wtenv ARGS` is refused (exit 1, "bad input" in the README's table)
/// with nothing made, its message naming `shown` (the character,
/// escaped) and holding no raw character a terminal would hide: an
/// error and its hint, a line each.
fn refused(t: &TestEnv, args: &[&str], shown: &str) -> Run {
    let before = before_and_after(t);
    let out = run(&mut t.wtenv(args));
    assert_eq!(out.code, Some(1), "{args:?}: {out}");
    assert!(out.stderr.contains(shown), "{args:?}: {out}");
    assert!(!out.stderr.contains(['\u{202e}', '\u{200b}']), "{out}");
    // One line each: a raw newline would forge one.
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("error: ") && lines[1].starts_with("hint: "),
        "{args:?}: {out}"
    );
    assert_eq!(before_and_after(t), before, "{args:?}: something changed");
    out
}

/// U+202E (right-to-left override: the branch would read backwards) and
/// U+200B (zero width: it would read like its neighbour) in a name
/// `create` or `enter` would make. The identifier's own rule (ASCII
/// letters, digits and `._-`) refused them already; a `[worktrees]
/// branch` holding one made that branch, and a `--path` or `[worktrees]
/// root` holding one (or a newline) made that directory, shown escaped in
/// every message after.
#[test]
fn names_holding_hidden_characters_are_refused_before_anything_is_made() {
    let t = TestEnv::new();
    for (c, shown) in [('\u{202e}', r"\u{202e}"), ('\u{200b}', r"\u{200b}")] {
        let id = format!("a{c}b");
        let out = refused(
            &t,
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                &id,
                "--ports",
            ],
            shown,
        );
        assert!(out.stderr.contains("invalid identifier"), "{out}");
        refused(&t, &["enter", &id], shown);

        t.write_config(&format!(
            "[worktrees]\nbranch = \"{{purpose}}/{c}{{identifier}}\"\n"
        ));
        let out = refused(
            &t,
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "ok",
                "--ports",
            ],
            shown,
        );
        assert!(
            out.stderr
                .contains(&format!("makes \"feature/{shown}ok\", which holds {shown}")),
            "{out}"
        );
        assert!(
            out.stderr
                .contains(&format!("hint: remove {shown} from [worktrees] branch")),
            "{out}"
        );
        refused(&t, &["enter", "ok"], shown);

        t.write_config(&format!("[worktrees]\nroot = \"../{c}{{repo}}\"\n"));
        // A root of the config's own applies once trusted.
        assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
        let out = refused(
            &t,
            &["create", "--purpose", "feature", "--identifier", "ok"],
            shown,
        );
        assert!(
            out.stderr.contains(&format!(
                "the directories it would make, {shown}repo/feature-ok, hold {shown}"
            )),
            "{out}"
        );
        assert!(out.stderr.contains("[worktrees] root in "), "{out}");
        t.write_config("");
    }
    for (name, shown) in [("p\u{202e}q/new", r"\u{202e}"), ("p\nq", r"\n")] {
        let path = t.root().join(name);
        let out = refused(
            &t,
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "ok",
                "--path",
                path.to_str().unwrap(),
            ],
            shown,
        );
        assert!(
            out.stderr
                .contains("hint: choose a --path whose new directories hold no "),
            "{out}"
        );
    }

    // A directory that exists already is not wtenv's to name: a new one
    // inside it is made.
    let existing = t.root().join("p\u{202e}q");
    std::fs::create_dir(&existing).unwrap();
    let path = existing.join("new");
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "ok",
        "--path",
        path.to_str().unwrap(),
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        t.git(&["branch", "--list", "feature/ok"])
            .contains("feature/ok")
    );
}

/// A purpose or a service whose name starts with `-` is refused by the
/// config check and by the commands that take one, naming the key and
/// why: `create --purpose -p-1` and `allocate --service -web` read it as
/// an option, so only `--purpose=-p-1` could pass it, and `create` then
/// said `worktrees.branch: makes "-p-1/a"` of a file that sets no such
/// key.
#[test]
fn names_starting_with_a_dash_are_refused_naming_the_key_and_why() {
    let t = TestEnv::new();
    let why = "may not start with '-': a command line would take it for an option";
    for (config, key) in [
        (
            "\"-p-1\" = \"1100-1109\"\n[worktrees]\ndefault_purpose = \"-p-1\"\n",
            "purposes.-p-1: a purpose name",
        ),
        ("[services.\"-web\"]\n", "services.-web: a service name"),
    ] {
        t.write_config(config);
        let before = before_and_after(&t);
        for args in [
            &["env"][..],
            &["create", "--purpose=-p-1", "--identifier", "a"],
        ] {
            let out = run(&mut t.wtenv(args));
            assert_eq!(out.code, Some(1), "{args:?}: {out}");
            assert!(
                out.stderr.contains(&format!("{key} {why}")),
                "{args:?}: {out}"
            );
            assert!(!out.stderr.contains("worktrees.branch"), "{args:?}: {out}");
        }
        assert_eq!(before_and_after(&t), before, "something changed");
    }
    t.write_config("");
    let out = run(&mut t.wtenv(&["allocate", "--service=-web"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "invalid service name \"-web\": a service name {why} (only --service=-web could pass it)"
        )),
        "{out}"
    );
    assert!(!t.registry_path().exists(), "something was recorded");
}
