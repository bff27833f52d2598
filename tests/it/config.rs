//! `wtenv.toml` / `wtenv.json` through the real binary: a bad config is
//! exit 1 naming the file and the key, and nothing is allocated; an
//! unknown table is an error with a suggestion. An unknown key inside a
//! known table is a warning: `unknown_keys.rs`.

use std::path::Path;

use crate::support::{HttpServer, PortBlock, TestEnv, run};

/// `env` with `config` as wtenv.toml: exit 1, file and key named, the
/// reason given, no registry entry made.
fn assert_refused(config: &str, key: &str, reason: &str) {
    let t = TestEnv::new();
    std::fs::write(t.repo.join("wtenv.toml"), config).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{config:?}: {out}");
    assert!(out.stdout.is_empty(), "{out}");
    let file = t.repo.join("wtenv.toml");
    assert!(
        out.stderr
            .contains(&format!("invalid config {}: {key}: ", file.display())),
        "{config:?}: key {key} not named: {out}"
    );
    assert!(
        out.stderr.contains(reason),
        "{config:?}: no {reason:?}: {out}"
    );
    assert!(t.allocations().is_empty());
}

#[test]
fn bad_range_syntax_is_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"5000..5099\"\n",
        "purposes.feature",
        "START-END",
    );
    assert_refused(
        "[purposes]\nfeature = \"5000-70000\"\n",
        "purposes.feature",
        "range \"5000-70000\": 70000 is not a port; ports go up to 65535",
    );
    assert_refused_at(
        "wtenv.toml",
        "[purposes]\nfeature = 5000\n",
        "2:11: purposes.feature: ",
        "expected a string \"START-END\" or a list of them, got integer `5000`",
        "fix line 2 (`feature = 5000`)",
    );
}

#[test]
fn a_duration_that_is_a_negative_or_huge_number_is_exit_1_naming_the_key() {
    assert_refused(
        "[services.web]\nready_timeout = -30\n",
        "services.web.ready_timeout",
        "-30 is not a duration: expected seconds (30) or a duration (30s, 500ms, 1m), at most a year",
    );
    assert_refused(
        "[services.web]\nhealth = { interval = 1e12 }\n",
        "services.web.health.interval",
        "1000000000000.0 is longer than a year",
    );
}

#[test]
fn a_reversed_range_is_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"5099-5000\"\n",
        "purposes.feature",
        "reversed",
    );
}

#[test]
fn ports_below_1024_are_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"80-1100\"\n",
        "purposes.feature",
        "below 1024",
    );
}

#[test]
fn overlapping_purposes_are_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"5000-5099\"\nbugfix = \"5090-5199\"\n",
        "purposes.bugfix",
        "overlaps purposes.feature",
    );
}

#[test]
fn an_invalid_env_var_name_is_exit_1_naming_the_key() {
    assert_refused(
        "[services.web]\nenv = [\"PORT\", \"WEB-PORT\"]\n",
        "services.web.env",
        "not a valid environment variable name",
    );
    assert_refused(
        "[services.web]\n[env]\n\"API URL\" = \"http://localhost:{port.web}\"\n",
        "env.API URL",
        "not a valid environment variable name",
    );
}

#[test]
fn duplicate_env_names_across_services_are_exit_1_naming_the_key() {
    assert_refused(
        "[services.api]\nenv = \"PORT\"\n[services.web]\nenv = [\"WEB_PORT\", \"PORT\"]\n",
        "services.web.env",
        "PORT is also exported by services.api",
    );
}

/// A service whose name makes no variable a shell can export (`1web`
/// gives `1WEB_PORT`, `ld` gives `LD_PORT`): the error names
/// `services.1web.env`, a key the file does not have, and the hint was
/// "fix the file". It says where the name comes from and what to set,
/// in the syntax of the file in use.
#[test]
fn a_variable_made_from_a_service_name_says_so_in_the_hint() {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    for (file, text, hint) in [
        (
            "wtenv.toml",
            "[services.1web]\n",
            "hint: 1WEB_PORT is made from the service's name: rename the service, or name its variable: set [services.1web] env = [\"NAME\"] in wtenv.toml\n",
        ),
        (
            "wtenv.json",
            r#"{"services": {"ld": {}}}"#,
            "hint: LD_PORT is made from the service's name: rename the service, or name its variable: set \"services\": {\"ld\": {\"env\": [\"NAME\"]}} in wtenv.json\n",
        ),
    ] {
        let path = t.repo.join(file);
        std::fs::write(&path, text).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr
                .contains(&format!("invalid config {}: services.", path.display())),
            "{out}"
        );
        assert!(out.stderr.contains(hint), "{file}: want {hint:?}: {out}");
        std::fs::remove_file(&path).unwrap();
    }
    assert!(t.allocations().is_empty());
}

/// A misspelt table used to be a warning, and `[purpose]` then silently
/// fell back to the built-in 5000-5099 range.
#[test]
fn an_unknown_table_is_exit_1_with_a_suggestion_and_allocates_nothing() {
    assert_refused(
        "[purpose]\nfeature = \"21000-21009\"\n",
        "purpose",
        "unknown table [purpose]; did you mean [purposes]?",
    );
    assert_refused(
        "colour = true\n",
        "colour",
        "unknown table [colour]; known: [worktrees], [allocation], [purposes], [services], [env]",
    );
}

/// `env` with `config` as the repository's `name` (wtenv.toml or
/// wtenv.json): exit 1, `FILE:LINE:COL: KEY: ` then the reason, the hint
/// quoting the line, no registry entry made.
fn assert_refused_at(name: &str, config: impl AsRef<[u8]>, place: &str, reason: &str, hint: &str) {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    let file = t.repo.join(name);
    std::fs::write(&file, &config).unwrap();
    let config = String::from_utf8_lossy(config.as_ref());
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{config:?}: {out}");
    assert!(out.stdout.is_empty(), "{out}");
    let want = format!("error: invalid config {}:{place}{reason}\n", file.display());
    assert!(
        out.stderr.starts_with(&want),
        "{config:?}: want {want:?}: {out}"
    );
    assert!(
        out.stderr
            .contains(&format!("hint: {hint}, then run the command again\n")),
        "{config:?}: no hint {hint:?}: {out}"
    );
    assert!(t.allocations().is_empty());
}

#[test]
fn a_toml_syntax_error_names_file_line_and_column() {
    assert_refused_at(
        "wtenv.toml",
        "[purposes]\nfeature = \"21000-21009\"\nbugfix = = 2\n",
        "3:10: ",
        "not valid TOML: extra `=`, expected nothing",
        "fix line 3 (`bugfix = = 2`)",
    );
}

#[test]
fn a_json_syntax_error_names_file_line_and_column() {
    assert_refused_at(
        "wtenv.json",
        "{\n  \"purposes\": {\"feature\": \"21000-21009\",}\n}\n",
        "2:41: ",
        "not valid JSON: trailing comma",
        "fix line 2 (`\"purposes\": {\"feature\": \"21000-21009\",}`)",
    );
}

/// A value of the wrong type: where it is, the key it is under, what was
/// expected and what was found.
#[test]
fn a_type_error_names_file_line_column_and_key_in_toml_and_json() {
    assert_refused_at(
        "wtenv.toml",
        "[services.web]\nenv = \"WEB_PORT\"\nsocket = \"yes\"\n",
        "3:10: services.web.socket: ",
        "expected a boolean, got string \"yes\"",
        "fix line 3 (`socket = \"yes\"`)",
    );
    assert_refused_at(
        "wtenv.json",
        "{\"services\": {\n  \"web\": {\"health\": {\"retries\": 0}}}}\n",
        "2:33: services.web.health.retries: ",
        "expected a whole number from 1 to 1000, got integer `0`",
        "fix line 2 (`\"web\": {\"health\": {\"retries\": 0}}}}`)",
    );
}

/// The error and its hint are printed on every `cd` under the shell hook:
/// an escape sequence in the file (raw, or a JSON `\u001b` in a key) is
/// shown escaped, never sent to the terminal.
#[test]
fn a_config_error_shows_control_characters_escaped() {
    assert_refused_at(
        "wtenv.toml",
        "[purposes]\nbad = \x1b]0;T\x07\n",
        "2:8: ",
        "not valid TOML: unexpected key or value, expected newline, `#`",
        r"fix line 2 (`bad = \u{1b}]0;T\u{7}`)",
    );
    assert_refused_at(
        "wtenv.json",
        r#"{"purposes": {"\u001b]0;T\u0007": 5}}"#,
        r"1:35: purposes.\u{1b}]0;T\u{7}: ",
        "expected a string \"START-END\" or a list of them, got integer `5`",
        r#"fix line 1 (`{"purposes": {"\u001b]0;T\u0007": 5}}`)"#,
    );
}

/// A byte that is not UTF-8 is found by its line, as a syntax error is:
/// in a long file, "it is not valid UTF-8" left the user to search.
#[test]
fn a_config_that_is_not_utf8_names_the_line_and_the_byte() {
    for name in ["wtenv.toml", "wtenv.json"] {
        assert_refused_at(
            name,
            b"# ok\n# caf\xe9 ou th\xe9\n",
            "2:6: ",
            "not valid UTF-8 (byte 0xe9)",
            "fix line 2 (`# caf\u{fffd} ou th\u{fffd}`)",
        );
    }
}

/// Names that run code on `cd` (or steer wtenv) are refused in every
/// config, trusted or not, in `[env]` and in a service's `env`.
#[test]
fn refused_variable_names_are_exit_1_naming_the_key() {
    for name in [
        "PATH",
        "PROMPT_COMMAND",
        "BASH_ENV",
        "LD_PRELOAD",
        "WTENV_STATE_DIR",
        "BASH_FUNC_ls",
        "PS1",
    ] {
        assert_refused(
            &format!("[services.web]\n[env]\n{name:?} = \"x\"\n"),
            &format!("env.{name}"),
            "is refused",
        );
        assert_refused(
            &format!("[services.web]\nenv = [\"WEB_PORT\", {name:?}]\n"),
            "services.web.env",
            "is refused",
        );
    }
    assert_refused("[env]\nX = \"a\\u0000b\"\n", "env.X", "NUL byte");
}

#[test]
fn a_json_config_has_the_same_schema_and_errors() {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    let json = t.repo.join("wtenv.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"purposes": {{"feature": "{}"}}, "services": {{"web": {{"env": ["PORT", "WEB_PORT"]}}}}}}"#,
            t.ports.range()
        ),
    )
    .unwrap();
    let out = run(&mut t.wtenv(&["env", "--format", "json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(vars["WEB_PORT"], t.ports.start.to_string());
    std::fs::write(&json, r#"{"purposes": {"feature": "6000-5000"}}"#).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "invalid config {}: purposes.feature: ",
            json.display()
        )),
        "{out}"
    );
}

/// Both files in one worktree: the hint said "fix the file", which one
/// fix cannot do; it says to remove one of them, and nothing is reserved.
#[test]
fn a_toml_and_a_json_config_side_by_side_say_to_keep_one() {
    let t = TestEnv::new();
    std::fs::write(t.repo.join("wtenv.json"), "{}").unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: invalid config {}: (file): both wtenv.toml and wtenv.json exist in {}\n\
             hint: keep one: remove wtenv.toml or wtenv.json (both take the same settings)\n",
            t.repo.join("wtenv.toml").display(),
            t.repo.display()
        )
    );
    assert!(t.allocations().is_empty());
}

/// A UTF-8 byte order mark (as editors on Windows write it) was read
/// past in wtenv.toml and refused in wtenv.json with "expected value" at
/// 1:1, a character no editor shows. Both read it alike.
#[test]
fn a_byte_order_mark_is_read_past_in_toml_and_json() {
    let t = TestEnv::new();
    let range = t.ports.range();
    for (file, text) in [
        (
            "wtenv.toml",
            format!("\u{feff}[purposes]\nfeature = \"{range}\"\n"),
        ),
        (
            "wtenv.json",
            format!("\u{feff}{{\"purposes\": {{\"feature\": \"{range}\"}}}}"),
        ),
    ] {
        std::fs::remove_file(t.repo.join("wtenv.toml")).ok();
        std::fs::remove_file(t.repo.join("wtenv.json")).ok();
        std::fs::write(t.repo.join(file), text).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(0), "{file}: {out}");
        assert!(
            out.stdout.contains(&format!("PORT='{}'", t.ports.start)),
            "{file}: {out}"
        );
    }
}

#[test]
fn no_config_means_the_built_in_defaults() {
    let t = TestEnv::bare();
    let out = run(&mut t.wtenv(&["env", "--format", "json"]));
    // The default feature range 5000-5099 is not this test's: the port may
    // be anything in it, or a conflict if the machine uses all of it.
    if out.code == Some(0) {
        let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let port: u16 = vars["PORT"].as_str().unwrap().parse().unwrap();
        assert!((5000..=5099).contains(&port), "{out}");
        assert_eq!(vars["WTENV_PURPOSE"], "feature");
    } else {
        assert!(out.stderr.contains("feature range 5000-5099"), "{out}");
    }
}

#[test]
fn a_range_overlapping_the_ephemeral_range_is_a_warning() {
    let t = TestEnv::new();
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let start: u16 = eph.split_whitespace().next().unwrap().parse().unwrap();
    // A second purpose inside the ephemeral range; `feature` (the test's
    // block, below it) is the one allocated from.
    t.write_config(&format!(
        "ephemeral = \"{}-{}\"\n",
        start + 100,
        start + 109
    ));
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.starts_with("warning: ")
            && out.stderr.contains("purposes.ephemeral")
            && out.stderr.contains("overlaps the OS ephemeral range"),
        "{out}"
    );
    // `create` reads the source's config and the new checkout's: one
    // warning, not one per file.
    t.git(&["add", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "config"]);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "w",
        "--ports",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr
            .matches("overlaps the OS ephemeral range")
            .count(),
        1,
        "{out}"
    );
    // Ranges below the ephemeral range give no warning at all.
    t.write_config("");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.stderr, "", "{out}");
}

/// Every `cd` under the shell hook gives the config's warnings: a config
/// of many ranges in the ephemeral range gives one, with a count.
#[test]
fn many_ranges_in_the_ephemeral_range_are_one_warning() {
    let t = TestEnv::new();
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let start: u16 = eph.split_whitespace().next().unwrap().parse().unwrap();
    let purposes: String = (0..50)
        .map(|i| format!("e{i:02} = \"{0}-{0}\"\n", start + i))
        .collect();
    t.write_config(&purposes);
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("warning: ")
            && lines[0].contains(&format!(
                ": 50 port ranges overlap the OS ephemeral range {}-",
                start
            ))
            && lines[0].contains(&format!(
                "(purposes.e00 {0}-{0}, purposes.e01 {1}-{1}, purposes.e02 {2}-{2} and 47 more)",
                start,
                start + 1,
                start + 2
            )),
        "{out}"
    );
    assert!(lines[1].starts_with("hint: move them out of "), "{out}");
}

/// Services keep the order the file declares them in, TOML and JSON alike:
/// the first declared gets the range's first port, and the exports, the
/// `[env]` templates and `WTENV_PORTS` follow that order.
#[test]
fn services_get_ports_in_declaration_order_in_toml_and_json() {
    for json in [false, true] {
        let t = TestEnv::new();
        let (first, second) = (t.ports.port(0), t.ports.port(1));
        if json {
            std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
            let config = format!(
                r#"{{"purposes": {{"feature": "{}"}},
                   "services": {{"web": {{"env": "PORT"}}, "api": {{}}}},
                   "env": {{"Z_URL": "{{port.web}}", "A_URL": "{{port.api}}"}}}}"#,
                t.ports.range()
            );
            std::fs::write(t.repo.join("wtenv.json"), config).unwrap();
        } else {
            t.write_config(
                "[services.web]\nenv = \"PORT\"\n[services.api]\n[env]\nZ_URL = \"{port.web}\"\nA_URL = \"{port.api}\"\n",
            );
        }
        // [env] applies once trusted (README "Trust").
        assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(0), "{out}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], format!("export PORT='{first}'"), "{out}");
        assert_eq!(lines[1], format!("export API_PORT='{second}'"), "{out}");
        assert!(
            out.stdout
                .contains(&format!("export WTENV_PORTS='web={first},api={second}'")),
            "{out}"
        );
        let z = out.stdout.find("Z_URL").unwrap();
        assert!(z < out.stdout.find("A_URL").unwrap(), "{out}");
        let list = run(&mut t.wtenv(&["list"]));
        let web = list.stdout.find(" web ").unwrap();
        assert!(web < list.stdout.find(" api ").unwrap(), "{list}");
    }
}

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
        "hint: add staging to [purposes] in wtenv.json"
    );
    let elsewhere = t.root().join("shared.json");
    std::fs::copy(&json, &elsewhere).unwrap();
    assert_eq!(
        hint(&["--config", elsewhere.to_str().unwrap(), "env"]),
        format!("hint: add staging to [purposes] in {}", elsewhere.display())
    );
    std::fs::write(&json, purposes(&["feature", "staging"])).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");

    std::fs::remove_file(&json).unwrap();
    assert_eq!(
        hint(&["env"]),
        "hint: add staging to [purposes] in wtenv.toml"
    );
}

/// The hint of each refusal that tells where in the config to look, for
/// the config `t.repo` has, or the one of `--config` when `config` is
/// given: `(command, hint line)`.
fn hints_naming_the_config(t: &TestEnv, config: Option<&Path>) -> Vec<(&'static str, String)> {
    let units = t.root().join("units");
    let commands: [(&str, Vec<&str>); 7] = [
        ("up", vec!["up"]),
        ("up web", vec!["up", "web"]),
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
/// would make the user write a second, conflicting `wtenv.toml`).
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

    let services = r#"the services are the "services": {"NAME": {...}} entries of wtenv.json"#;
    let expected = [
        (
            "up",
            r#"add "run": "..." to "services": {"NAME": {...}} in wtenv.json"#,
        ),
        (
            "up web",
            r#"add "run": "..." to "services": {"web": {...}} in wtenv.json"#,
        ),
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

    let services = "the services are the [services.NAME] tables of wtenv.toml";
    let expected = [
        (
            "up",
            r#"add run = "..." under [services.NAME] in wtenv.toml"#,
        ),
        (
            "up web",
            r#"add run = "..." under [services.web] in wtenv.toml"#,
        ),
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

/// A range with no free port left: the hint says to widen it in the
/// config that gives it, `wtenv.json` here (`wtenv.toml` is the snapshot
/// `allocate_in_a_full_range_fails_with_what_to_do`).
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
        "hint: run 'wtenv validate --verify-ports --fix' to release stale allocations, \
         or widen the range (or add an overflow range) in wtenv.json",
        "{out}"
    );
}

/// What a config may ask for is bounded (README, "Configuration"): the
/// services (64), a service's or a purpose's name (64 characters), a
/// service's variables (16), and all it exports (64 KiB, with
/// `{worktree}` counted at its length). Over a limit, TOML and JSON alike
/// are exit 1 naming the file and the key, with a hint, and the registry
/// is not touched; a config at every limit works.
#[test]
fn a_config_over_a_limit_is_refused_in_toml_and_json_and_one_at_it_works() {
    use serde_json::{Map, Value, json};
    let t = TestEnv::with_ports(PortBlock::take_many(4));
    let range = t.ports.range();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let registry = std::fs::read(t.registry_path()).unwrap();
    let config = |services: Map<String, Value>, env: Value| json!({"purposes": {"feature": range}, "services": services, "env": env});
    let named = |names: Vec<String>| -> Map<String, Value> {
        names.into_iter().map(|n| (n, json!({}))).collect()
    };
    let web = || named(vec!["web".into()]);
    let long = "a".repeat(65);
    let cases = [
        (
            config(named((0..65).map(|i| format!("s{i}")).collect()), json!({})),
            "services".to_owned(),
            "65 services are declared; at most 64 are allowed",
            "each service reserves a port",
        ),
        (
            config(named(vec![long.clone()]), json!({})),
            format!("services.{}...", &long[..64]),
            "a service name is 65 characters long; at most 64 are allowed",
            "use a shorter name",
        ),
        (
            json!({"purposes": {"feature": range, long.clone(): "1024-1024"}}),
            format!("purposes.{}...", &long[..64]),
            "a purpose name is 65 characters long; at most 64 are allowed",
            "use a shorter name",
        ),
        (
            config(
                [(
                    "web".to_owned(),
                    json!({"env": (0..17).map(|i| format!("P{i}_PORT")).collect::<Vec<_>>()}),
                )]
                .into_iter()
                .collect(),
                json!({}),
            ),
            "services.web.env".to_owned(),
            "17 variable names are given; at most 16 are allowed",
            "each name is exported",
        ),
        (
            config(web(), json!({"SMALL": "x", "BIG": "x".repeat(64 * 1024)})),
            "env.BIG".to_owned(),
            "the variables it exports would take ",
            "\"Argument list too long\"",
        ),
        // Small in the file, over the limit once `{worktree}` is the
        // worktree's path.
        (
            config(
                web(),
                json!({"PATHS": "{worktree}:".repeat(64 * 1024 / t.repo.as_os_str().len())}),
            ),
            "env.PATHS".to_owned(),
            "the variables it exports would take ",
            "\"Argument list too long\"",
        ),
    ];
    for (value, key, reason, hint) in &cases {
        for name in ["wtenv.toml", "wtenv.json"] {
            for old in ["wtenv.toml", "wtenv.json"] {
                let _ = std::fs::remove_file(t.repo.join(old));
            }
            let file = t.repo.join(name);
            let text = match name {
                "wtenv.json" => value.to_string(),
                _ => toml::to_string(value).unwrap(),
            };
            std::fs::write(&file, text).unwrap();
            let out = run(&mut t.wtenv(&["env"]));
            assert_eq!(out.code, Some(1), "{name} {key}: {out}");
            assert!(out.stdout.is_empty(), "{out}");
            let want = format!("error: invalid config {}: {key}: {reason}", file.display());
            assert!(out.stderr.starts_with(&want), "want {want:?}: {out}");
            assert!(
                out.stderr
                    .lines()
                    .any(|l| l.starts_with("hint: ") && l.contains(hint)),
                "{name} {key}: no hint {hint:?}: {out}"
            );
            assert_eq!(
                std::fs::read(t.registry_path()).unwrap(),
                registry,
                "{name} {key}: the registry was written"
            );
        }
    }

    // At every limit: 64 services of 64-character names, one with 16
    // variables, and values up to the size.
    let names: Vec<String> = (0..64)
        .map(|i| format!("s{i:02}{}", "x".repeat(61)))
        .collect();
    let mut services = named(names);
    let first = services.keys().next().unwrap().clone();
    services[&first] = json!({"env": (0..16).map(|i| format!("P{i}_PORT")).collect::<Vec<_>>()});
    let value = config(services, json!({"BIG": "x".repeat(48 * 1024)}));
    std::fs::remove_file(t.repo.join("wtenv.json")).unwrap();
    std::fs::write(t.repo.join("wtenv.toml"), toml::to_string(&value).unwrap()).unwrap();
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let out = run(&mut t.wtenv(&["env", "--format", "json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(vars["WTENV_PORTS"].as_str().unwrap().split(',').count(), 64);
    assert!(vars["P15_PORT"].is_string(), "{out}");
    assert_eq!(vars["BIG"].as_str().map(str::len), Some(48 * 1024));
}
