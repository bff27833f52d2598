//! A bounded fuzz of what wtenv reads from disk: random mutations of a
//! valid registry (in the layout wtenv writes, so both the line reader and
//! the full parse see them) and of a valid config, as `wtenv.toml` and as
//! `wtenv.json`, fed to the real binary. Whatever the bytes: no panic, no
//! hang, exit 0, 1 or 2 only, and a registry wtenv refused is left byte
//! for byte.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::{TestEnv, run, run_bounded};

const LIMIT: Duration = Duration::from_secs(60);

/// Pieces a mutation inserts: JSON/TOML syntax, keys given twice, ports out
/// of range, numbers too big, NUL, invalid UTF-8, deep nesting.
const PIECES: &[&[u8]] = &[
    b"\"",
    b"}",
    b"{",
    b"]",
    b"[",
    b",",
    b":",
    b"=",
    b"\n",
    b"\\",
    b"\0",
    b"\xff\xfe",
    b"\"port\": 80, ",
    b"\"port\": 0, ",
    b"\"port\": 65535, ",
    b"\"port\": -1, ",
    b"\"port\": 99999999999999999999, ",
    b"1e400",
    b"null",
    b"true",
    b"\"allocations\": [], ",
    b"\"version\": 2, ",
    b"\"version\": 1, ",
    b"\"reserved\": false, \"holders\": [{\"pid\": 1, \"start_time\": 0, \"command\": \"x\"}], ",
    b"\"worktree\": \"/\", ",
    b"\"repository\": \"\\u0000\", ",
    b"[env]\nPATH = \"/x\"\n",
    b"[env]\nX = \"{port.nope}\"\n",
    b"[purpose]\n",
    b"[purposes]\nfeature = \"1-2\"\n",
    b"[purposes]\nfeature = [\"70000-70001\"]\n",
    b"[services.a]\nenv = []\n",
    b"[services.a]\ndepends_on = [\"a\"]\n",
    b"[services.\"\xff\"]\n",
    b"x = 1\nx = 2\n",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

fn mutation() -> impl Strategy<Value = Vec<(prop::sample::Index, usize, usize)>> {
    prop::collection::vec(
        (any::<prop::sample::Index>(), 0..PIECES.len(), 0usize..4),
        1..4,
    )
}

/// Each edit: at a position, delete up to `del` bytes, insert a piece.
fn apply(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, usize, usize)]) -> Vec<u8> {
    for (at, piece, del) in edits {
        let at = at.index(bytes.len() + 1);
        let end = (at + del).min(bytes.len());
        bytes.splice(at..end, PIECES[*piece].iter().copied());
    }
    bytes
}

fn assert_sane(out: &crate::support::Run, what: &str) {
    assert!(
        matches!(out.code, Some(0..=2)),
        "{what}: exit {:?} (0, 1 or 2 only)\n{out}",
        out.code
    );
    assert!(!out.stderr.contains("panicked"), "{what}: {out}");
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn mutated_registries_never_panic_hang_or_get_rewritten() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    for dir in [&t.repo, &other] {
        assert_eq!(run(&mut t.wtenv_in(dir, &["env"])).code, Some(0));
    }
    assert_eq!(
        run(&mut t.wtenv(&["allocate", "--service", "api"])).code,
        Some(0)
    );
    let valid = std::fs::read(t.registry_path()).unwrap();
    let path = t.registry_path();
    runner(48)
        .run(&mutation(), |edits| {
            let bytes = apply(valid.clone(), &edits);
            std::fs::write(&path, &bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            for args in [&["env"][..], &["ports", "--all"], &["validate"], &["list"]] {
                let out = run_bounded(&mut t.wtenv_in(&other, args), LIMIT);
                assert_sane(
                    &out,
                    &format!("{args:?} on {}", String::from_utf8_lossy(&bytes)),
                );
                if out.code == Some(2) {
                    assert_eq!(std::fs::read(&path).unwrap(), bytes, "{args:?}: rewritten");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_configs_never_panic_or_hang() {
    let t = TestEnv::new();
    let toml = format!(
        "[purposes]\nfeature = \"{}\"\n[services.web]\nenv = [\"PORT\", \"WEB_PORT\"]\nrun = \"true\"\n[services.api]\n[env]\nAPI_URL = \"http://localhost:{{port.api}}\"\n",
        t.ports.range()
    );
    // The same config in JSON, one key a line: its own parser, its own
    // errors placed at line and column.
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "purposes": {"feature": t.ports.range()},
        "services": {"web": {"env": ["PORT", "WEB_PORT"], "run": "true"}, "api": {}},
        "env": {"API_URL": "http://localhost:{port.api}"},
    }))
    .unwrap();
    let bases = [("wtenv.toml", toml), ("wtenv.json", json)];
    // Only one file at a time: both present is an error of its own.
    let write = |name: &str, bytes: &[u8]| {
        for (other, _) in &bases {
            let _ = std::fs::remove_file(t.repo.join(other));
        }
        std::fs::write(t.repo.join(name), bytes).unwrap();
    };
    // Each base is a config wtenv takes: the mutations start from one.
    for (name, valid) in &bases {
        write(name, valid.as_bytes());
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(0), "{name} unmutated: {out}");
        assert!(out.stdout.contains("export WEB_PORT="), "{name}: {out}");
    }
    runner(48)
        .run(&mutation(), |edits| {
            for (name, valid) in &bases {
                let bytes = apply(valid.clone().into_bytes(), &edits);
                write(name, &bytes);
                for args in [
                    &["env", "--hook"][..],
                    &["env", "--format", "fish"],
                    &["trust"],
                    &["validate"],
                ] {
                    let out = run_bounded(&mut t.wtenv(args), LIMIT);
                    assert_sane(
                        &out,
                        &format!("{args:?} on {name} {}", String::from_utf8_lossy(&bytes)),
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
