//! Hints that say where in the config to look name the config in use
//! (`wtenv.toml`, `wtenv.json` or `--config`'s) and write the key in its
//! syntax: an undefined purpose, services and branches, a port
//! conflict, a full range; a `--config` that names no file says to
//! pass one.

use std::path::Path;

use crate::support::{HttpServer, TestEnv, run};

/// A worktree whose purpose the config does not define: the hint names
/// the config file in use, JSON, TOML to create, or `--config`'s, and
/// doing what it says in the JSON file makes `env` succeed.
#[test]
fn the_hint_for_an_undefined_purpose_names_the_config_file_in_use() {
    let t = TestEnv::bare();
    let json = t.repo.join("wtenv.json");
    // Each purpose its own half of the test's block: ranges are disjoint.
    let purposes = |names: &[&str]| {
        let ranges: Vec<String> = (0..)
            .zip(names)
            .map(|(i, n)| {
                format!(
                    r#""{n}": "{}-{}""#,
                    t.ports.port(10 * i),
                    t.ports.port(10 * i + 9)
                )
            })
            .collect();
        format!(r#"{{"purposes": {{{}}}}}"#, ranges.join(", "))
    };
    std::fs::write(&json, purposes(&["feature"])).unwrap();
    std::fs::write(t.repo.join(".git/wtenv.json"), r#"{"purpose":"staging"}"#).unwrap();
    let hint = |args: &[&str]| {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr
                .contains(r#"has purpose "staging", which the config does not define"#),
            "{out}"
        );
        out.stderr.lines().last().unwrap().to_owned()
    };

    assert_eq!(
        hint(&["env"]),
        r#"hint: add "staging": "START-END" to "purposes": {...} in wtenv.json"#
    );
    let elsewhere = t.root().join("shared.json");
    std::fs::copy(&json, &elsewhere).unwrap();
    assert_eq!(
        hint(&["--config", elsewhere.to_str().unwrap(), "env"]),
        format!(
            r#"hint: add "staging": "START-END" to "purposes": {{...}} in {}"#,
            elsewhere.display()
        )
    );
    std::fs::write(&json, purposes(&["feature", "staging"])).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");

    std::fs::remove_file(&json).unwrap();
    assert_eq!(
        hint(&["env"]),
        r#"hint: add staging = "START-END" under [purposes] in wtenv.toml"#
    );
}

/// The hint of each refusal that tells where in the config to look, for
/// the config `t.repo` has, or the one of `--config` when `config` is
/// given: `(command, hint line)`.
fn hints_naming_the_config(t: &TestEnv, config: Option<&Path>) -> Vec<(&'static str, String)> {
    let units = t.root().join("units");
    let commands: [(&str, Vec<&str>); 8] = [
        ("up", vec!["up"]),
        ("up web", vec!["up", "web"]),
        ("up nosuch", vec!["up", "nosuch"]),
        ("export", vec!["export", "systemd", units.to_str().unwrap()]),
        ("run", vec!["run", "--service", "nosuch", "--", "true"]),
        ("down", vec!["down", "nosuch"]),
        ("logs", vec!["logs", "nosuch"]),
        (
            "create",
            vec!["create", "--purpose", "feature", "--identifier", "x"],
        ),
    ];
    commands
        .into_iter()
        .map(|(name, args)| {
            let mut cmd = match config {
                Some(path) => t.wtenv(&[&["--config", path.to_str().unwrap()], &args[..]].concat()),
                None => t.wtenv(&args),
            };
            let out = run(cmd.stdin(std::process::Stdio::null()));
            assert_eq!(out.code, Some(1), "{name}: {out}");
            let hint = out.stderr.lines().last().unwrap().to_owned();
            (name, hint)
        })
        .collect()
}

/// A `wtenv.json` config: the hints that say where to add or look for a
/// key name `wtenv.json` and write the key in JSON, not TOML (which
/// would make the user write a second, conflicting `wtenv.toml`). A
/// service the config does not declare gets one hint in every command
/// (`up`, `run`, `down`, `logs`): the configured ones, and where.
#[test]
fn hints_about_services_and_branches_name_a_json_config_in_json() {
    let t = TestEnv::bare();
    let config = serde_json::json!({
        "purposes": {"feature": t.ports.range()},
        "services": {"web": {"env": ["PORT"]}},
        // `..` makes no valid branch name.
        "worktrees": {"branch": "{purpose}..{identifier}"},
    });
    std::fs::write(t.repo.join("wtenv.json"), config.to_string()).unwrap();

    let services =
        r#"configured services: web (the "services": {"NAME": {...}} entries of wtenv.json)"#;
    let expected = [
        (
            "up",
            r#"add "run": "..." to "services": {"NAME": {...}} in wtenv.json"#,
        ),
        (
            "up web",
            r#"add "run": "..." to "services": {"web": {...}} in wtenv.json"#,
        ),
        ("up nosuch", services),
        (
            "export",
            r#"add "run": "..." to "services": {"NAME": {...}} in wtenv.json"#,
        ),
        ("run", services),
        ("down", services),
        ("logs", services),
        (
            "create",
            r#"check "worktrees": {"branch": ...} in wtenv.json, or choose another identifier"#,
        ),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(name, hint)| (name, format!("hint: {hint}")))
        .collect();
    assert_eq!(hints_naming_the_config(&t, None), expected);
}

/// A port conflict under a `wtenv.json` config: the hint to skip occupied
/// ports sets the key in `wtenv.json`, in JSON; under `wtenv.toml`, in
/// TOML.
#[test]
fn the_conflict_hint_sets_skip_occupied_in_the_config_in_use() {
    for (file, setting) in [
        ("wtenv.json", r#""allocation": {"skip_occupied": true}"#),
        ("wtenv.toml", "[allocation] skip_occupied = true"),
    ] {
        let t = TestEnv::bare();
        let range = t.ports.range();
        let text = if file.ends_with(".json") {
            serde_json::json!({"purposes": {"feature": range}, "services": {"web": {}}}).to_string()
        } else {
            format!("[purposes]\nfeature = \"{range}\"\n[services.web]\n")
        };
        std::fs::write(t.repo.join(file), text).unwrap();
        let _squatter = HttpServer::start(&t.repo, t.ports.port(0));
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(
            out.stderr.lines().last(),
            Some(
                format!(
                    "hint: to take the next free port instead, pass --skip-occupied or set {setting} in {file}"
                )
                .as_str()
            ),
            "{out}"
        );
    }
}

/// The same hints for a `wtenv.toml` config: TOML, as they always were;
/// and for a `--config` file, which they name by its path.
#[test]
fn hints_about_services_and_branches_name_a_toml_config_in_toml() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nenv = [\"PORT\"]\n\n[worktrees]\nbranch = \"{purpose}..{identifier}\"\n",
    );

    let services = "configured services: web (the [services.NAME] tables of wtenv.toml)";
    let expected = [
        (
            "up",
            r#"add run = "..." under [services.NAME] in wtenv.toml"#,
        ),
        (
            "up web",
            r#"add run = "..." under [services.web] in wtenv.toml"#,
        ),
        ("up nosuch", services),
        (
            "export",
            r#"add run = "..." under [services.NAME] in wtenv.toml"#,
        ),
        ("run", services),
        ("down", services),
        ("logs", services),
        (
            "create",
            "check [worktrees] branch in wtenv.toml, or choose another identifier",
        ),
    ];
    let expected = |file: &str| -> Vec<_> {
        expected
            .into_iter()
            .map(|(name, hint)| (name, format!("hint: {}", hint.replace("wtenv.toml", file))))
            .collect()
    };
    assert_eq!(hints_naming_the_config(&t, None), expected("wtenv.toml"));

    let elsewhere = t.root().join("shared.toml");
    std::fs::copy(t.repo.join("wtenv.toml"), &elsewhere).unwrap();
    assert_eq!(
        hints_naming_the_config(&t, Some(&elsewhere)),
        expected(elsewhere.to_str().unwrap())
    );
}

/// A range too small for the services: the hint says to widen it in the
/// config that gives it, `wtenv.json` here (`wtenv.toml` is the snapshot
/// `allocate_in_a_full_range_fails_with_what_to_do`; a range full of other
/// worktrees' ports, whose hint names `validate --fix` too, is
/// `ranges::a_json_config_with_every_range_full_names_every_range`).
#[test]
fn the_hint_for_a_full_range_names_a_json_config() {
    let t = TestEnv::bare();
    let one = t.ports.port(0);
    let config = serde_json::json!({
        "purposes": {"feature": format!("{one}-{one}")},
        "services": {"web": {"env": ["PORT"]}, "api": {"env": ["API_PORT"]}},
    });
    std::fs::write(t.repo.join("wtenv.json"), config.to_string()).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr.lines().last().unwrap(),
        "hint: widen the range to at least 2 ports (or add an overflow range) in wtenv.json",
        "{out}"
    );
}

/// `create`'s refusal of a branch or a directory that `"worktrees"` makes
/// with a character no message shows points at that key in JSON, in a
/// wtenv.json: `[worktrees] branch` is no key of that file.
#[test]
fn create_s_hints_about_worktrees_write_json_in_a_json_config() {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    let range = t.ports.range();
    for (worktrees, hint) in [
        (
            r#""branch": "{purpose}/\u202e{identifier}""#,
            r#"hint: remove \u{202e} from "worktrees": {"branch": ...}: wtenv makes no branch"#,
        ),
        (
            r#""root": "../\u202e{repo}""#,
            r#"hint: the name comes from "worktrees": {"root": ...} in "#,
        ),
    ] {
        let config =
            format!(r#"{{"purposes": {{"feature": "{range}"}}, "worktrees": {{{worktrees}}}}}"#);
        std::fs::write(t.repo.join("wtenv.json"), config).unwrap();
        // A root of the config's own applies once trusted.
        assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
        let out = run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "ok"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains(hint), "{worktrees}: {out}");
        assert_eq!(t.git(&["branch", "--list", "feature/*"]), "");
    }
}

/// `--config /dev/null`, a directory or a FIFO got "fix the file": there
/// is no file to fix, but another path to pass, as `--registry` says of
/// a device. Nothing is read from a FIFO (the command does not hang).
#[test]
fn a_config_flag_naming_what_is_not_a_file_asks_for_a_regular_file() {
    let t = TestEnv::new();
    let fifo = t.root().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for (path, kind) in [
        (Path::new("/dev/null"), "a character device"),
        (&t.root(), "a directory"),
        (&fifo, "a FIFO"),
    ] {
        let out = run(&mut t.wtenv(&["--config", path.to_str().unwrap(), "env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: invalid config {}: it is {kind}, not a regular file\n\
                 hint: --config names the config file: pass the path of a regular file\n",
                path.display()
            )
        );
    }
}
