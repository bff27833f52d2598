//! TOML, JSON, or none: one schema and one set of errors (a JSON file's
//! in JSON's words), both files side by side refused, a byte order mark
//! read past, the built-in defaults without a config, and services in
//! declaration order in both.

use std::path::Path;
use std::process::Command;

use crate::support::{TestEnv, run};

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
            "error: invalid config {}: both wtenv.toml and wtenv.json exist in {}\n\
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

/// A wtenv.json's errors speak JSON: an object, an array, a number, keys
/// written `"services": {...}`, never TOML's tables nor serde's maps and
/// sequences; and a key given twice, known or not, is said one way, where
/// it is given the second time. Exit 1, nothing allocated.
#[test]
fn a_json_config_s_errors_speak_json() {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    let json = t.repo.join("wtenv.json");
    let fix_line =
        |n: u32, line: &str| format!("fix line {n} (`{line}`), then run the command again");
    let fix_file = "fix the file, then run the command again".to_owned();
    let cases = [
        (
            "[]",
            ":1:1: expected an object, got array",
            fix_line(1, "[]"),
        ),
        (
            "{\"services\": {\"web\": {\"health\": {\n  \"tcp\": true,\n  \"tcp\": true}}}}",
            ":3:9: services.web.health.tcp: it is given twice",
            fix_line(3, "\"tcp\": true}}}}"),
        ),
        (
            "{\"services\": {\"web\": {\n  \"zz\": 1,\n  \"zz\": 2}}}",
            ":3:8: services.web.zz: it is given twice",
            fix_line(3, "\"zz\": 2}}}"),
        ),
        (
            r#"{"services": {}}"#,
            r#": services: at least one service is needed (or leave "services": {...} out for the default `app` on PORT)"#,
            fix_file.clone(),
        ),
        (
            r#"{"services": {"web": {"health": {"tcp": false}}}}"#,
            r#": services.web.health.tcp: "tcp": false names no check; use "http": "/path" or "cmd": "...""#,
            fix_file.clone(),
        ),
        (
            r#"{"services": {"web": {"socket": 1.5}}}"#,
            ":1:35: services.web.socket: expected a boolean, got number `1.5`",
            fix_line(1, r#"{"services": {"web": {"socket": 1.5}}}"#),
        ),
        (
            r#"{"purpose": {}}"#,
            r#": purpose: unknown top-level key "purpose"; did you mean "purposes"?"#,
            fix_file.clone(),
        ),
    ];
    for (text, said, hint) in cases {
        std::fs::write(&json, text).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{text}: {out}");
        assert!(out.stdout.is_empty(), "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: invalid config {}{said}\nhint: {hint}\n",
                json.display()
            ),
            "{text}"
        );
        assert!(t.allocations().is_empty(), "{text}");
    }
}

/// Without a config a worktree's one service, `app`, is exported as
/// `PORT` and gets the lowest port of the built-in purpose `feature`,
/// 5000-5099; once the registry holds every port of that range, `env`
/// refuses, naming it, and writes nothing; its hint, with no config to
/// name, says to create one and the line to start from. Both run in a network namespace
/// of the test's own (`unshare -n`, as root: `scripts/fixtures` installs
/// util-linux), where nothing of the machine listens and whose binds no
/// one outside sees: the range is free there whatever the machine runs,
/// and the test binds none of the machine's ports in it.
#[test]
fn no_config_means_the_built_in_defaults() {
    let t = TestEnv::bare();
    let out = run(&mut in_own_network(
        &t,
        &t.repo,
        &["env", "--format", "json"],
    ));
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out}");
    let vars: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        vars,
        serde_json::json!({
            "PORT": "5000",
            "WTENV_WORKTREE": t.repo,
            "WTENV_PURPOSE": "feature",
            "WTENV_IDENTIFIER": "repo",
            "WTENV_PORTS": "app=5000",
        }),
        "{out}"
    );

    let other = t.add_worktree("other");
    let third = t.add_worktree("third");
    let mut taken = vec![t.record(5000, "app", "feature", &t.repo, true, serde_json::json!([]))];
    taken.extend((5001..=5099).map(|port| {
        let service = format!("app{port}");
        t.record(
            port,
            &service,
            "feature",
            &other,
            true,
            serde_json::json!([]),
        )
    }));
    t.write_registry(taken);
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut in_own_network(
        &t,
        &third,
        &["env", "--format", "json"],
    ));
    assert_eq!((out.code, out.stdout.as_str()), (Some(1), ""), "{out}");
    assert_eq!(
        out.stderr,
        "error: no free port left in feature range 5000-5099\n\
         hint: run 'wtenv validate --verify-ports --fix' to release stale allocations, \
         or widen the range (or add an overflow range): there is no config, so create \
         wtenv.toml with a [purposes] table, from the built-in line feature = \"5000-5099\" \
         (the table replaces every built-in purpose)\n",
        "{out}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before, "{out}");
}

/// Without a config, a port of the built-in range that is occupied on the
/// system fails with the conflict message, whose hint said to set
/// `[allocation] skip_occupied = true in wtenv.toml`, a file that does not
/// exist: it says to create it with that table. In a network namespace of
/// the test's own, where a python3 listener holds port 5000 (see
/// [`no_config_means_the_built_in_defaults`]).
#[test]
fn a_conflict_without_a_config_says_which_file_to_create() {
    let t = TestEnv::bare();
    let mut cmd = in_own_network_under(
        &t,
        &t.repo,
        &[
            "python3",
            "-c",
            "import socket,subprocess,sys\n\
             s=socket.socket()\n\
             s.bind(('127.0.0.1',5000))\n\
             s.listen()\n\
             sys.exit(subprocess.run(sys.argv[1:]).returncode)",
        ],
        &["env"],
    );
    let out = run(&mut cmd);
    assert_eq!((out.code, out.stdout.as_str()), (Some(1), ""), "{out}");
    assert!(
        out.stderr.starts_with(
            "Port conflict detected in feature range 5000-5099.\n\
             Ports free in registry but occupied on system: 5000.\n"
        ),
        "{out}"
    );
    assert!(
        out.stderr.ends_with(
            "\nhint: to take the next free port instead, pass --skip-occupied or set \
             [allocation] skip_occupied = true: there is no config, so create wtenv.toml \
             with that table\n"
        ),
        "{out}"
    );
    assert!(!t.repo.join("wtenv.toml").exists(), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// `wtenv ARGS` in `dir`, in a fresh network namespace with its loopback
/// up (see [`no_config_means_the_built_in_defaults`]).
fn in_own_network(t: &TestEnv, dir: &Path, args: &[&str]) -> Command {
    in_own_network_under(t, dir, &[], args)
}

/// [`in_own_network`], wtenv run by the command `under` (its arguments
/// then wtenv's path and `args`), in the namespace too.
fn in_own_network_under(t: &TestEnv, dir: &Path, under: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    t.apply_env(&mut cmd);
    cmd.current_dir(dir)
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .args(under)
        .arg(env!("CARGO_BIN_EXE_wtenv"))
        .args(args);
    cmd
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
