//! Keys, tables and types as a config's messages write them: in the
//! syntax of the file in use, TOML's or JSON's.

use super::*;

#[test]
fn hints_write_keys_in_the_syntax_of_the_file_in_use() {
    let json = Config::parse(Path::new("/r/wtenv.json"), "{}").unwrap();
    let toml = Config::parse(Path::new("/r/wtenv.toml"), "").unwrap();
    assert_eq!(json.syntax(), Syntax::Json);
    assert_eq!(toml.syntax(), Syntax::Toml);
    assert_eq!(Config::default().syntax(), Syntax::Toml);

    let web = ["services", "web"];
    assert_eq!(
        Syntax::Toml.add("run", "\"...\"", &web),
        r#"add run = "..." under [services.web]"#
    );
    assert_eq!(
        Syntax::Json.add("run", "\"...\"", &web),
        r#"add "run": "..." to "services": {"web": {...}}"#
    );
    assert_eq!(
        Syntax::Toml.tables(&["services", "NAME"]),
        "[services.NAME] tables"
    );
    assert_eq!(
        Syntax::Json.tables(&["services", "NAME"]),
        r#""services": {"NAME": {...}} entries"#
    );
    assert_eq!(
        Syntax::Toml.key(&["worktrees"], "branch"),
        "[worktrees] branch"
    );
    assert_eq!(
        Syntax::Json.key(&["worktrees"], "branch"),
        r#""worktrees": {"branch": ...}"#
    );
    assert_eq!(
        Syntax::Toml.setting(&["allocation"], "skip_occupied", "true"),
        "[allocation] skip_occupied = true"
    );
    assert_eq!(
        Syntax::Json.setting(&["allocation"], "skip_occupied", "true"),
        r#""allocation": {"skip_occupied": true}"#
    );
    assert_eq!(Syntax::Toml.pair("tcp", "false"), "tcp = false");
    assert_eq!(Syntax::Json.pair("tcp", "false"), r#""tcp": false"#);
    assert_eq!(Syntax::Toml.top_level("env"), "[env]");
    assert_eq!(Syntax::Json.top_level("env"), r#""env""#);
}

/// A value's type in the words of the file's format: serde's `sequence`
/// and `map` are no type of either, and JSON has neither tables nor
/// integers apart from other numbers.
#[test]
fn types_are_named_in_the_words_of_the_format() {
    for (serde, toml, json) in [
        ("a table", "a table", "an object"),
        ("sequence", "array", "array"),
        ("map", "table", "object"),
        ("integer `7`", "integer `7`", "number `7`"),
        ("floating point `1.5`", "float `1.5`", "number `1.5`"),
        ("string \"map\"", "string \"map\"", "string \"map\""),
        ("boolean `true`", "boolean `true`", "boolean `true`"),
        ("null", "null", "null"),
        (
            "a string or an array of strings",
            "a string or an array of strings",
            "a string or an array of strings",
        ),
    ] {
        assert_eq!(Syntax::Toml.type_words(serde), toml);
        assert_eq!(Syntax::Json.type_words(serde), json);
    }
}

/// What a `wtenv.json`'s errors say of its keys is written in JSON, as
/// its hints are: no `[services]` table nor `tcp = false` in a JSON file.
#[test]
fn a_json_config_s_errors_write_keys_in_json() {
    for (text, toml, json) in [
        (
            ("[services]\n", r#"{"services": {}}"#),
            "services: at least one service is needed (or leave [services] out for the default `app` on PORT)",
            r#"services: at least one service is needed (or leave "services": {...} out for the default `app` on PORT)"#,
        ),
        (
            (
                "[services.web]\nhealth = { tcp = false }\n",
                r#"{"services": {"web": {"health": {"tcp": false}}}}"#,
            ),
            r#"services.web.health.tcp: tcp = false names no check; use http = "/path" or cmd = "...""#,
            r#"services.web.health.tcp: "tcp": false names no check; use "http": "/path" or "cmd": "...""#,
        ),
        (
            ("[purpose]\n", r#"{"purpose": {}}"#),
            "purpose: unknown table [purpose]; did you mean [purposes]?",
            r#"purpose: unknown top-level key "purpose"; did you mean "purposes"?"#,
        ),
        (
            ("colour = 1\n", r#"{"colour": 1}"#),
            "colour: unknown table [colour]; known: [worktrees], [allocation], [purposes], [services], [env]",
            r#"colour: unknown top-level key "colour"; known: "worktrees", "allocation", "purposes", "services", "env""#,
        ),
        (
            (
                "[worktrees]\ndefault_purpose = \"x\"\n",
                r#"{"worktrees": {"default_purpose": "x"}}"#,
            ),
            "worktrees.default_purpose: purpose \"x\" is not defined in [purposes] (defined: bugfix, experiment, feature, hotfix)",
            r#"worktrees.default_purpose: purpose "x" is not defined in "purposes": {...} (defined: bugfix, experiment, feature, hotfix)"#,
        ),
        (
            ("[env]\nA = \"{port.x}\"\n", r#"{"env": {"A": "{port.x}"}}"#),
            "env.A: {port.x} names no service in [services]",
            r#"env.A: {port.x} names no service in "services": {...}"#,
        ),
    ] {
        for (name, text, want) in [("wtenv.toml", text.0, toml), ("wtenv.json", text.1, json)] {
            let e = Config::parse(Path::new(name), text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid config {name}: {want}"),
                "{text}"
            );
        }
    }
}
