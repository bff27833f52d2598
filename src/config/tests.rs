//! The config module's rules, on text: what is accepted, what each
//! refusal says and names.

use super::*;

mod ranges;
mod syntax;

fn parse(text: &str) -> Result<Config> {
    Config::parse(Path::new("wtenv.toml"), text)
}

#[test]
fn defaults_have_feature_range_and_app_service() {
    let c = Config::default();
    assert_eq!(
        c.purpose_ranges("feature"),
        Some(&Ranges::one(PortRange {
            start: 5000,
            end: 5099
        }))
    );
    assert_eq!(c.services[0].env, vec!["PORT".to_string()]);
}

#[test]
fn socket_services_bind_dual_stack_unless_an_address_is_given() {
    let c = parse(
        "[services.api]\nsocket = true\n[services.db]\n[services.web]\nsocket = true\nbind = \"127.0.0.1\"",
    )
    .unwrap();
    let found: Vec<(&str, String)> = c
        .socket_services()
        .into_iter()
        .map(|(s, ip)| (s.name.as_str(), ip.to_string()))
        .collect();
    assert_eq!(
        found,
        vec![("api", "::".to_owned()), ("web", "127.0.0.1".to_owned())]
    );
    let e = parse("[services.web]\nbind = \"localhost\"").unwrap_err();
    assert!(e.to_string().contains("services.web.bind"), "{e}");
    let e = parse("[services.web]\nsocket = \"yes\"").unwrap_err();
    assert!(
        e.to_string().contains(
            "wtenv.toml:2:10: services.web.socket: expected a boolean, got string \"yes\""
        ),
        "{e}"
    );
}

#[test]
fn unknown_keys_in_known_tables_warn_with_their_path() {
    let c = parse("[allocation]\ncolour = 1\n[services.web]\nenvv = \"X\"").unwrap();
    assert_eq!(c.warnings.len(), 2);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("\"services.web.envv\""))
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("\"allocation.colour\""))
    );
}

/// A misspelt key lost its setting with only "unknown key" said: in each
/// table whose keys are fixed, the warning names the key it likely stands
/// for; a key far from all of them is named alone.
#[test]
fn a_misspelt_key_suggests_the_known_key_of_its_table() {
    let cases = [
        (
            "[worktrees]\nbrnach = \"x\"",
            "worktrees.brnach",
            Some("branch"),
        ),
        (
            "[worktrees]\nDefault_Purpose = \"feature\"",
            "worktrees.Default_Purpose",
            Some("default_purpose"),
        ),
        ("[worktrees]\ncolour = 1", "worktrees.colour", None),
        (
            "[allocation]\nskip_ocupied = true",
            "allocation.skip_ocupied",
            Some("skip_occupied"),
        ),
        ("[allocation]\ncolour = 1", "allocation.colour", None),
        (
            "[services.web]\nrestrat = \"always\"",
            "services.web.restrat",
            Some("restart"),
        ),
        (
            "[services.web]\ndepends = []",
            "services.web.depends",
            Some("depends_on"),
        ),
        // There is no `port` key, and `url` is two edits from `run`, of
        // three letters.
        ("[services.web]\nprots = 1", "services.web.prots", None),
        ("[services.web]\nurl = \"/\"", "services.web.url", None),
        (
            "[services.web]\nhealth = { intervl = \"2s\" }",
            "services.web.health.intervl",
            Some("interval"),
        ),
        (
            "[services.web]\nhealth = { colour = 1 }",
            "services.web.health.colour",
            None,
        ),
    ];
    for (text, key, known) in cases {
        let table = key.rsplit_once('.').unwrap().0;
        let want = match known {
            Some(k) => {
                format!(
                    "wtenv.toml: unknown key \"{key}\" (ignored); did you mean \"{table}.{k}\"?"
                )
            }
            None => format!("wtenv.toml: unknown key \"{key}\" (ignored)"),
        };
        assert_eq!(parse(text).unwrap().warnings, [want], "{text}");
    }
    let json = r#"{"services": {"web": {"restrat": "always"}}}"#;
    let c = Config::parse(Path::new("wtenv.json"), json).unwrap();
    assert_eq!(
        c.warnings,
        [
            "wtenv.json: unknown key \"services.web.restrat\" (ignored); did you mean \"services.web.restart\"?"
        ]
    );
}

/// `[purposes]`, `[services]` and `[env]` take names the file chooses: a
/// name close to a known key, or to another name, is a purpose, service or
/// variable of its own, never an unknown key; nothing is warned there.
#[test]
fn names_the_file_chooses_are_not_unknown_keys() {
    let c = parse(
        "[purposes]\nfeature = \"6000-6009\"\nbugfx = \"6010-6019\"\n\
         [services.wbe]\nrun = \"x\"\n[env]\nRESTRAT = \"x\"\nRUN = \"y\"\n",
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.env.len(), 2);
}

#[test]
fn an_unknown_table_is_an_error_with_a_suggestion() {
    let e = parse("[purpose]\nfeature = \"6000-6009\"").unwrap_err();
    assert!(e.to_string().contains("did you mean [purposes]?"), "{e}");
    let e = parse("[Purposes]\nfeature = \"6000-6009\"").unwrap_err();
    assert!(e.to_string().contains("did you mean [purposes]?"), "{e}");
    let e = parse("[servces.web]").unwrap_err();
    assert!(e.to_string().contains("did you mean [services]?"), "{e}");
    let e = parse("colour = 1").unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown table [colour]; known: [worktrees]"),
        "{e}"
    );
}

#[test]
fn refused_names_are_refused_everywhere_with_the_key() {
    for name in [
        "PATH",
        "PROMPT_COMMAND",
        "PS1",
        "BASH_ENV",
        "BASH_FUNC_x%%",
        "LD_PRELOAD",
        "DYLD_INSERT_LIBRARIES",
        "WTENV_STATE_DIR",
        "WTENV_WORKTREE",
        "IFS",
        "ZDOTDIR",
        "path",
        "cdpath",
        "fpath",
        "PROMPT",
        "RPROMPT",
        "fish_user_paths",
        "UID",
        "USERNAME",
        "HISTFILE",
        "GLOBIGNORE",
        "argv",
        "pipestatus",
        "status",
        "options",
        "ZSH_SUBSHELL",
        "1X",
        "A-B",
        "",
    ] {
        let e = parse(&format!("[env]\n{name:?} = \"x\"")).unwrap_err();
        assert!(
            e.to_string()
                .contains(&super::syntax::key_path(["env", name])),
            "{e}"
        );
        let e = parse(&format!("[services.web]\nenv = [{name:?}]")).unwrap_err();
        assert!(e.to_string().contains("services.web.env"), "{e}");
    }
    // Trust gates these; they are not refused.
    parse("[env]\nNODE_OPTIONS = \"--inspect\"\nPATHS = \"x\"\nLDX = \"y\"").unwrap();
    let e = parse("[env]\nX = \"a\\u0000b\"").unwrap_err();
    assert!(
        e.to_string().contains("env.X: the value holds a NUL byte"),
        "{e}"
    );
}

#[test]
fn toml_errors_name_line_and_column() {
    let e = parse("[purposes]\nfeature = \"6000-6009\"\nbugfix = = 1\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid config wtenv.toml:3:10: not valid TOML: "),
        "{e}"
    );
    assert_eq!(
        e.hint().unwrap(),
        "fix line 3 (`bugfix = = 1`), then run the command again"
    );
}

/// `retries` is a whole number however JSON writes it (`3.0`, `1e3`); a
/// fraction or one out of range is refused saying what it is.
#[test]
fn retries_is_any_whole_number_from_1_to_1000() {
    let retries = |text: &str| {
        let json = format!(
            r#"{{"services": {{"web": {{"health": {{"http": "/h", "retries": {text}}}}}}}}}"#
        );
        Config::parse(Path::new("wtenv.json"), &json)
            .map(|c| c.services[0].health.as_ref().unwrap().retries)
            .map_err(|e| e.to_string())
    };
    assert_eq!(retries("3.0"), Ok(3));
    assert_eq!(retries("1e3"), Ok(1000));
    assert_eq!(retries("7"), Ok(7));
    for (text, got) in [
        ("3.5", "number `3.5`"),
        ("1001.0", "number `1001.0`"),
        ("0", "number `0`"),
    ] {
        let said = retries(text).unwrap_err();
        assert!(
            said.ends_with(&format!(
                "services.web.health.retries: expected a whole number from 1 to 1000, got {got}"
            )),
            "{text}: {said}"
        );
    }
}

/// A value of the wrong type is placed like a syntax error, with the key
/// it is under, in TOML and JSON alike; so is a list element.
#[test]
fn type_errors_name_line_column_and_key() {
    let cases = [
        (
            "wtenv.toml",
            "[purposes]\nfeature = [\"5000-5099\", 7]\n",
            "wtenv.toml:2:25: purposes.feature[1]: expected a string, got integer `7`",
        ),
        (
            "wtenv.toml",
            "[services.web]\nhealth = { retries = -3 }\n",
            "wtenv.toml:2:22: services.web.health.retries: expected a whole number from 1 to 1000, got integer `-3`",
        ),
        (
            "wtenv.toml",
            "[[services]]\nname = \"web\"\n",
            "wtenv.toml:1:1: services: expected a table, got array",
        ),
        (
            "wtenv.toml",
            "[services.web]\nsocket = 1.5\n",
            "wtenv.toml:2:10: services.web.socket: expected a boolean, got float `1.5`",
        ),
        (
            "wtenv.toml",
            "[services]\nweb = 5\n",
            "wtenv.toml:2:7: services.web: expected a table, got integer `5`",
        ),
        (
            "wtenv.toml",
            "[services.web]\nenv = { a = 1 }\n",
            "wtenv.toml:2:7: services.web.env: expected a string or an array of strings, got table",
        ),
        // JSON's words: object, array, number.
        (
            "wtenv.json",
            "{\n  \"services\": {\n    \"wéb\": {\"socket\": 1}}}",
            "wtenv.json:3:23: services.\"wéb\".socket: expected a boolean, got number `1`",
        ),
        (
            "wtenv.json",
            r#"{"services": {"web": {"socket": 1.5}}}"#,
            "wtenv.json:1:35: services.web.socket: expected a boolean, got number `1.5`",
        ),
        (
            "wtenv.json",
            r#"{"purposes": null}"#,
            "wtenv.json:1:17: purposes: expected an object, got null",
        ),
        (
            "wtenv.json",
            "[]",
            "wtenv.json:1:1: expected an object, got array",
        ),
        (
            "wtenv.json",
            r#"{"services": {"web": 5}}"#,
            "wtenv.json:1:22: services.web: expected an object, got number `5`",
        ),
        (
            "wtenv.json",
            r#"{"services": {"web": {"env": {}}}}"#,
            "wtenv.json:1:31: services.web.env: expected a string or an array of strings, got object",
        ),
    ];
    for (name, text, want) in cases {
        let e = Config::parse(Path::new(name), text).unwrap_err();
        assert_eq!(e.to_string(), format!("invalid config {want}"), "{text}");
        assert!(e.hint().unwrap().starts_with("fix line "), "{e:?}");
    }
}

/// JSON allows a key twice, where TOML does not: a key given twice is an
/// error, known or not (not two warnings), in every table, said one way
/// and placed where it is given the second time.
#[test]
fn a_json_key_given_twice_is_an_error_placed_in_the_file() {
    for (text, want) in [
        (r#"{"x": 1, "x": 2}"#, "1:14: x"),
        (r#"{"env": {}, "env": {}}"#, "1:19: env"),
        (
            "{\"services\": {\"web\": {\n  \"flag\": 1,\n  \"flag\": 1}}}",
            "3:10: services.web.flag",
        ),
        (
            r#"{"services": {"web": {"health": {"tcp": true, "tcp": true}}}}"#,
            "1:53: services.web.health.tcp",
        ),
        (
            r#"{"services": {"web": {}, "web": {}}}"#,
            "1:32: services.web",
        ),
        (
            r#"{"purposes": {"a": "5000-5001", "a": "5002-5003"}}"#,
            "1:37: purposes.a",
        ),
        (r#"{"env": {"A": "1", "A": "2"}}"#, "1:24: env.A"),
    ] {
        let e = Config::parse(Path::new("/r/wtenv.json"), text).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid config /r/wtenv.json:{want}: it is given twice"),
            "{text}"
        );
        assert!(e.hint().unwrap().starts_with("fix line "), "{e:?}");
    }
    // A key as long as the file is shown cut.
    let long = "k".repeat(100_000);
    let text = format!(r#"{{"{long}": 1, "{long}": 2}}"#);
    let e = Config::parse(Path::new("/r/wtenv.json"), &text).unwrap_err();
    assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
}

#[test]
fn json_syntax_errors_name_line_and_column() {
    let e = Config::parse(
        Path::new("wtenv.json"),
        "{\n  \"purposes\": {\"feature\": \"5000-5001\",}\n}",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("wtenv.json:2:39: not valid JSON: trailing comma"),
        "{e}"
    );
    let e = Config::parse(Path::new("wtenv.json"), "").unwrap_err();
    assert!(
        e.to_string()
            .contains("wtenv.json:1:1: not valid JSON: EOF"),
        "{e}"
    );
    assert_eq!(
        e.hint().unwrap(),
        "fix the file, then run the command again"
    );
}

#[test]
fn unknown_keys_are_found_at_every_depth_in_toml_and_json() {
    let toml = parse("[allocation]\ncolour = 1\n[services.web.health]\nfoo = 1\n").unwrap();
    let json = Config::parse(
        Path::new("wtenv.json"),
        r#"{"allocation": {"colour": 1}, "services": {"web": {"health": {"foo": 1}}}}"#,
    )
    .unwrap();
    for (c, name) in [(toml, "wtenv.toml"), (json, "wtenv.json")] {
        assert_eq!(
            c.warnings,
            [
                format!("{name}: unknown key \"allocation.colour\" (ignored)"),
                format!("{name}: unknown key \"services.web.health.foo\" (ignored)"),
            ]
        );
    }
}

#[test]
fn env_names_are_validated_and_unique() {
    let e = parse("[services.web]\nenv = \"1BAD\"").unwrap_err();
    assert!(e.to_string().contains("services.web.env"), "{e}");
    let e = parse("[services.a]\nenv = \"P\"\n[services.b]\nenv = [\"P\"]").unwrap_err();
    assert!(e.to_string().contains("also exported by services.a"), "{e}");
}

#[test]
fn templates_parse_and_check_services() {
    let c = parse("[services.api]\n[env]\nURL = \"http://localhost:{port.api}/{{x}}\"").unwrap();
    assert_eq!(
        c.env[0].1.pieces,
        vec![
            Piece::Text("http://localhost:".into()),
            Piece::Port("api".into()),
            Piece::Text("/{x}".into())
        ]
    );
    let e = parse("[services.api]\n[env]\nURL = \"{port.web}\"").unwrap_err();
    assert!(e.to_string().contains("names no service"), "{e}");
}

#[test]
fn a_worktree_with_the_same_file_reuses_the_known_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let known = Config::discover(&a).unwrap();
    assert_eq!(Config::discover_unless_same(&b, &known).unwrap(), None);

    let text = "[purposes]\nfeature = \"6000-6009\"\n";
    std::fs::write(a.join(TOML_NAME), text).unwrap();
    let known = Config::discover(&a).unwrap();
    let fresh = Config::discover_unless_same(&b, &known).unwrap();
    assert_eq!(fresh, Some(Config::default()), "b has no file");
    std::fs::write(b.join(TOML_NAME), text).unwrap();
    assert_eq!(Config::discover_unless_same(&b, &known).unwrap(), None);
    std::fs::write(b.join(TOML_NAME), text.replace("6009", "6019")).unwrap();
    let other = Config::discover_unless_same(&b, &known).unwrap().unwrap();
    assert_eq!(other.purposes["feature"].to_string(), "6000-6019");
    std::fs::remove_file(b.join(TOML_NAME)).unwrap();
    std::fs::write(b.join(JSON_NAME), r#"{"purposes":{"feature":"6000-6009"}}"#).unwrap();
    let json = Config::discover_unless_same(&b, &known).unwrap().unwrap();
    assert_eq!(json.source, Some(b.join(JSON_NAME)));
}

#[test]
fn json_and_toml_share_the_schema() {
    let c = Config::parse(
        Path::new("wtenv.json"),
        r#"{"purposes":{"feature":"6000-6009"},"services":{"web":{"env":["PORT","WEB_PORT"]}}}"#,
    )
    .unwrap();
    assert_eq!(
        c.purpose_ranges("feature"),
        Some(&Ranges::one(PortRange {
            start: 6000,
            end: 6009
        }))
    );
    assert_eq!(c.services[0].env, vec!["PORT", "WEB_PORT"]);
}

/// Valid configs (`the_fuzz_bases_are_valid`) the fuzz below mutates.
const FUZZ_BASES: &[&str] = &[
    "[purposes]\nfeature = [\"5000-5099\", \"15000-15099\"]\n[services.web]\nhealth = { http = \"/h\", retries = 3 }\n[env]\nA = \"{port.web}/é\"\n",
    "{\"purposes\": {\"feature\": \"5000-5099\"}, \"services\": {\"web\": {\"env\": [\"P\"], \"run\": \"é\"}}}",
];

#[test]
fn the_fuzz_bases_are_valid() {
    parse(FUZZ_BASES[0]).unwrap();
    Config::parse(Path::new("wtenv.json"), FUZZ_BASES[1]).unwrap();
}

proptest::proptest! {
    /// Whatever the text, TOML or JSON: an answer, never a panic, and a
    /// place given is a place in the text.
    #[test]
    fn any_text_parses_or_is_placed_in_the_text(
        base in proptest::sample::select(FUZZ_BASES.to_vec()),
        at in 0usize..200,
        cut in 0usize..8,
        insert in "[\\[\\]{}\",:=\\n é0-9a-z\\\\]{0,6}",
    ) {
        let mut text = base.to_owned();
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        text.replace_range(at..end, &insert);
        for name in ["wtenv.toml", "wtenv.json"] {
            if let Err(crate::error::Error::Config { at: Some(place), .. }) =
                Config::parse(Path::new(name), &text)
            {
                let lines = text.split('\n').count();
                proptest::prop_assert!(place.line >= 1 && place.line <= lines, "{place:?} in {text:?}");
                proptest::prop_assert!(place.column >= 1, "{place:?} in {text:?}");
                let line = text.split('\n').nth(place.line - 1).unwrap();
                proptest::prop_assert!(place.column <= line.chars().count() + 1, "{place:?} in {text:?}");
            }
        }
    }
}

/// Services' health checks, dependencies, restarts and durations.
mod services;

/// `[worktrees] root` fills in `{repo}` only, `branch` `{purpose}` and
/// `{identifier}`: anything else between braces, or a brace alone, is
/// refused when the file is read, naming the key and what is known.
#[test]
fn worktrees_templates_refuse_unknown_placeholders_when_read() {
    for (text, key, reason) in [
        (
            "[worktrees]\nbranch = \"{purpose}/{nope}/{identifier}\"\n",
            "worktrees.branch",
            "\"{purpose}/{nope}/{identifier}\": unknown placeholder {nope}; known: {purpose}, {identifier}",
        ),
        (
            "[worktrees]\nbranch = \"{repo}/{identifier}\"\n",
            "worktrees.branch",
            "unknown placeholder {repo}; known: {purpose}, {identifier}",
        ),
        (
            "[worktrees]\nroot = \"../c.{nope}\"\n",
            "worktrees.root",
            "\"../c.{nope}\": unknown placeholder {nope}; known: {repo}",
        ),
        (
            "[worktrees]\nroot = \"../{identifier}\"\n",
            "worktrees.root",
            "unknown placeholder {identifier}; known: {repo}",
        ),
        (
            "[worktrees]\nroot = \"../{repo\"\n",
            "worktrees.root",
            "a '{' that no '}' closes",
        ),
        (
            "[worktrees]\nroot = \"../{{repo}\"\n",
            "worktrees.root",
            "a '{' that no '}' closes",
        ),
        (
            "[worktrees]\nroot = \"../repo}\"\n",
            "worktrees.root",
            "a '}' that no '{' opens",
        ),
        (
            "[worktrees]\nbranch = \"{}\"\n",
            "worktrees.branch",
            "unknown placeholder {}",
        ),
    ] {
        let err = parse(text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(&format!("{key}: ")), "{text:?}: {shown}");
        assert!(shown.contains(reason), "{text:?}: {shown}");
        assert!(matches!(err, Error::Config { .. }), "{text:?}: {err:?}");
    }
    for text in [
        "[worktrees]\nroot = \"../{repo}.worktrees\"\nbranch = \"{purpose}/{identifier}\"\n",
        "[worktrees]\nroot = \"/srv/trees\"\nbranch = \"wt-{identifier}-{identifier}\"\n",
        "[worktrees]\nroot = \"{repo}{repo}\"\nbranch = \"x{purpose}{identifier}\"\n",
    ] {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}
