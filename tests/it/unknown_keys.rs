//! Unknown keys in `wtenv.toml` / `wtenv.json` through the real binary:
//! a warning naming each (ten at most, then a count), and the command
//! goes on. An unknown table is an error, with the config's other
//! refusals in `config/`.

use crate::support::{TestEnv, run};

#[test]
fn unknown_keys_are_warnings_naming_the_key() {
    let t = TestEnv::new();
    t.write_config(
        "[allocation]\ncolour = true\n[services.app]\nenv = \"PORT\"\nreadyness = \"5s\"\n",
    );
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.start)),
        "{out}"
    );
    for key in ["\"allocation.colour\"", "\"services.app.readyness\""] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains(&format!("unknown key {key}"))),
            "no warning for {key}: {out}"
        );
    }
}

/// A misspelt key silently lost its setting (a restart policy, a health
/// check's interval) with only "unknown key" said: the warning names the
/// key it likely stands for, and `env` goes on, exporting the ports.
#[test]
fn a_misspelt_key_is_warned_with_the_key_it_likely_stands_for() {
    let t = TestEnv::new();
    let file = t.repo.join("wtenv.toml");
    t.write_config("[services.web]\nrestrat = \"always\"\nhealth = { intervl = \"2s\" }\n");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export WEB_PORT='{}'", t.ports.start)),
        "{out}"
    );
    let f = file.display();
    assert_eq!(
        out.stderr,
        format!(
            "warning: {f}: unknown key \"services.web.restrat\" (ignored); did you mean \"services.web.restart\"?\n\
             warning: {f}: unknown key \"services.web.health.intervl\" (ignored); did you mean \"services.web.health.interval\"?\n"
        ),
    );
}

/// A config of 60,000 unknown keys (770 KB, under the 1 MiB cap) printed
/// 60,000 warning lines on every `cd` under the shell hook. The first ten
/// are named (a key longer than 80 characters shown cut), then one line
/// counts the rest; TOML and JSON alike.
#[test]
fn a_flood_of_unknown_keys_is_ten_warnings_and_a_count() {
    let t = TestEnv::new();
    let range = t.ports.range();
    let long = "k".repeat(1000);
    let keys: Vec<String> = std::iter::once(long.clone())
        .chain((1..60_000).map(|i| format!("k{i}")))
        .collect();
    let toml = format!(
        "[purposes]\nfeature = \"{range}\"\n[allocation]\n{}",
        keys.iter()
            .map(|k| format!("{k} = 1\n"))
            .collect::<String>()
    );
    let unknown: serde_json::Map<String, serde_json::Value> =
        keys.iter().map(|k| (k.clone(), 1.into())).collect();
    let json = serde_json::json!({"purposes": {"feature": range}, "allocation": unknown});
    for (name, text) in [("wtenv.toml", toml), ("wtenv.json", json.to_string())] {
        for old in ["wtenv.toml", "wtenv.json"] {
            let _ = std::fs::remove_file(t.repo.join(old));
        }
        let file = t.repo.join(name);
        std::fs::write(&file, text).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(0), "{name}: {out}");
        let f = file.display();
        let mut want = format!(
            "warning: {f}: unknown key \"allocation.{}...\" (ignored)\n",
            &long[..80 - "allocation.".len()]
        );
        for i in 1..10 {
            want.push_str(&format!(
                "warning: {f}: unknown key \"allocation.k{i}\" (ignored)\n"
            ));
        }
        want.push_str(&format!(
            "warning: {f}: and 59990 more unknown keys (ignored)\n"
        ));
        assert_eq!(out.stderr, want, "{name}");
    }
}
