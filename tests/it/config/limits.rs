//! What a config may ask for is bounded: over a limit is refused in TOML
//! and JSON alike, and a config at every limit works.

use crate::support::{PortBlock, TestEnv, run};

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
            format!("services.\"{}...\"", &long[..64]),
            "a service name is 65 characters long; at most 64 are allowed",
            "use a shorter name",
        ),
        (
            json!({"purposes": {"feature": range, long.clone(): "1024-1024"}}),
            format!("purposes.\"{}...\"", &long[..64]),
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
