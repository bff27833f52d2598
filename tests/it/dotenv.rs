//! `env --format dotenv` read back by the real readers: python-dotenv (with
//! interpolation on and off) and node's `dotenv` (the fixture app under
//! target/fixtures/node, made by scripts/fixtures). Every value wtenv
//! writes comes back byte-exact in all three; a value no quoting can carry
//! is refused with an error naming the variable; sourcing the file in a
//! shell runs nothing.

use std::path::Path;
use std::process::Command;

use crate::shell::{Sh, pwned_under};
use crate::support::{TestEnv, run};

/// The characters that break one reader or another, alone and in pairs.
const PIECES: &[&str] = &[
    "'",
    "\"",
    "$",
    "${",
    "{X}",
    "`",
    "`touch PWNED`",
    "$(touch PWNED)",
    "\\",
    "\\\\",
    "\\n",
    "\\'",
    "\n",
    "\r",
    "#",
    " # not a comment",
    " ",
    "é☃𝄞",
    "}",
    // node's dotenv trims an unquoted value as JavaScript's `trim` does:
    // Unicode white space, and U+FEFF, which Unicode does not count as
    // white space.
    "\u{a0}",
    "\u{feff}",
];

/// Values every `.env` reader must get (the ones users meet).
const MUST_CARRY: &[&str] = &[
    "it's $HOME",
    "it's\nmultiline $HOME",
    "a'b\\c",
    "`date` costs $5",
    "C:\\path\\to\\x",
    "C:\\\\server\\share",
    "#hash at start",
    "  spaced  ",
    "line1\nline2\r\n",
    "ünïcødé ☃",
    "$X $ {X} ${",
    "",
];

/// Values no quoting carries: python-dotenv expands `${X}` when it
/// interpolates and has no escape for it; a `'` with a `"` fits neither
/// single nor double quotes.
const MUST_REFUSE: &[&str] = &[
    "${X}",
    "a ${HOME} b",
    "${X:-y}",
    "it's \"quoted\"",
    "it's `cmd`",
];

fn values() -> Vec<String> {
    let mut out: Vec<String> = MUST_CARRY.iter().map(|s| s.to_string()).collect();
    for a in PIECES {
        out.push(a.to_string());
        for b in PIECES {
            out.push(format!("{a}{b}"));
        }
    }
    out
}

/// `env --format dotenv` in a worktree whose config has `value` as an
/// `[env]` template (braces doubled: literal).
fn dotenv_of(t: &TestEnv, config: &Path, value: &str) -> crate::support::Run {
    let literal = value.replace('{', "{{").replace('}', "}}");
    dotenv_with(t, config, serde_json::json!({ "HOSTILE": literal }))
}

/// `env --format dotenv` with `env` (a JSON object) as the config's
/// `[env]`, written to `config`.
fn dotenv_with(t: &TestEnv, config: &Path, env: serde_json::Value) -> crate::support::Run {
    let doc = serde_json::json!({
        "purposes": { "feature": t.ports.range() },
        "env": env,
    });
    std::fs::write(config, doc.to_string()).unwrap();
    run(&mut t.wtenv(&[
        "--config",
        config.to_str().unwrap(),
        "env",
        "--format",
        "dotenv",
    ]))
}

fn read_back(reader: &mut Command) -> serde_json::Value {
    let out = reader.output().unwrap();
    assert!(
        out.status.success(),
        "{reader:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dotenv_values_read_back_exactly_in_python_dotenv_and_node_dotenv() {
    let t = TestEnv::new();
    let config = t.root().join("case.json");
    let mut file = String::new();
    let mut carried = Vec::new();
    for (i, value) in values().into_iter().enumerate() {
        let out = dotenv_of(&t, &config, &value);
        if out.code == Some(0) {
            // HOSTILE is the last variable: the rest of the output is its
            // line (or lines).
            let at = out.stdout.find("\nHOSTILE=").unwrap() + 1;
            file.push_str(&out.stdout[at..].replacen("HOSTILE=", &format!("V{i}="), 1));
            carried.push((format!("V{i}"), value));
        } else {
            assert_eq!(out.code, Some(1), "{value:?}: {out}");
            assert!(out.stdout.is_empty(), "{value:?}: {out}");
            assert!(
                out.stderr
                    .contains("error: cannot write HOSTILE as a .env line: its value ")
                    && out.stderr.contains("\nhint: "),
                "{value:?}: {out}"
            );
            assert!(
                !MUST_CARRY.contains(&value.as_str()),
                "{value:?} must be carried: {out}"
            );
        }
    }
    for value in MUST_REFUSE {
        let out = dotenv_of(&t, &config, value);
        assert_eq!(out.code, Some(1), "{value:?} must be refused: {out}");
    }
    assert!(carried.len() > 250, "only {} values carried", carried.len());
    let env_file = t.root().join("all.env");
    std::fs::write(&env_file, &file).unwrap();

    let python = |interpolate: &str| {
        let mut c = Command::new("python3");
        c.args([
            "-c",
            &format!(
                "import json,sys\nfrom dotenv import dotenv_values\nprint(json.dumps(dotenv_values(sys.argv[1], interpolate={interpolate})))"
            ),
            env_file.to_str().unwrap(),
        ]);
        read_back(&mut c)
    };
    let node_modules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/node/node_modules");
    let mut node = Command::new("node");
    node.env("NODE_PATH", &node_modules).args([
        "-e",
        "const fs=require('fs');process.stdout.write(JSON.stringify(require('dotenv').parse(fs.readFileSync(process.argv[1]))))",
        env_file.to_str().unwrap(),
    ]);
    for (reader, got) in [
        ("python-dotenv, interpolate=True", python("True")),
        ("python-dotenv, interpolate=False", python("False")),
        ("node dotenv", read_back(&mut node)),
    ] {
        for (name, value) in &carried {
            assert_eq!(
                got[name].as_str(),
                Some(value.as_str()),
                "{reader} misreads {value:?} written as {:?}",
                file.lines()
                    .find(|l| l.starts_with(&format!("{name}=")))
                    .unwrap_or("")
            );
        }
    }

    // Sourced by a shell (`set -a; . ./.env`), the file runs no code.
    let out = run(Command::new("bash").current_dir(t.root()).args([
        "--norc",
        "--noprofile",
        "-c",
        "set -a; . ./all.env >/dev/null 2>&1; true",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(pwned_under(&t.root()), None);
}

/// With a `'` a value cannot be single-quoted; between double quotes bash
/// and zsh evaluate `${X:X}`, `${!X}`, `$X[X]` and the like, and so X's
/// value `a[$(touch PWNED)]`, which runs. Such values are refused; a plain
/// `$X` is carried and only substitutes.
#[test]
fn dotenv_sourced_by_bash_or_zsh_runs_nothing_from_another_variables_value() {
    let t = TestEnv::new();
    let config = t.root().join("case.json");
    let env_file = t.root().join("x.env");
    // As a user sources it: without -u, which would stop at the unset `a`
    // before `$(...)` runs.
    let source = "set +u\nX='a[$(touch PWNED)]'\nset -a\n. ./x.env\nprintf %s \"$V\"\n";
    for value in [
        "it's ${X:X}",
        "it's ${X:0:X}",
        "it's ${!X}",
        "it's ${X@P}",
        "it's ${X[X]}",
        "it's ${#X[X]}",
        "it's $X[X]",
        "it's $[X]",
    ] {
        let out = dotenv_of(&t, &config, value);
        if out.code == Some(0) {
            std::fs::write(&env_file, out.stdout.replace("HOSTILE=", "V=")).unwrap();
            for sh in [Sh::Bash, Sh::Zsh] {
                sh.run(&t, &t.root(), source);
                assert_eq!(pwned_under(&t.root()), None, "{value:?} ran in {sh:?}");
            }
        }
        assert_eq!(out.code, Some(1), "{value:?} must be refused: {out}");
        assert!(out.stderr.contains("as a .env line"), "{out}");
    }

    let out = dotenv_of(&t, &config, "it's $X");
    assert_eq!(out.code, Some(0), "{out}");
    std::fs::write(&env_file, out.stdout.replace("HOSTILE=", "V=")).unwrap();
    for sh in [Sh::Bash, Sh::Zsh] {
        let run = sh.run(&t, &t.root(), source);
        assert_eq!(run.code, Some(0), "{sh:?}: {run}");
        assert_eq!(run.stdout, "it's a[$(touch PWNED)]", "{sh:?}");
    }
    assert_eq!(pwned_under(&t.root()), None);
}

/// A value `dotenv` refuses was found once the ports were allocated, so
/// `env --format dotenv` exited 1 with ports reserved. It is checked
/// before the registry is written now: the registry stays as it was,
/// whether the worktree had no port yet or gains a service.
#[test]
fn a_value_dotenv_refuses_reserves_nothing() {
    let t = TestEnv::new();
    let config = t.root().join("case.json");
    let out = dotenv_of(&t, &config, "${HOME}");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("as a .env line"), "{out}");
    assert!(t.allocations().is_empty(), "{out}");

    let doc = |services: serde_json::Value| {
        let doc = serde_json::json!({
            "purposes": { "feature": t.ports.range() },
            "services": services,
            "env": { "HOSTILE": "${{HOME}}" },
        });
        std::fs::write(&config, doc.to_string()).unwrap();
    };
    let env = |format: &str| {
        run(&mut t.wtenv(&[
            "--config",
            config.to_str().unwrap(),
            "env",
            "--format",
            format,
        ]))
    };
    doc(serde_json::json!({ "web": {} }));
    assert_eq!(env("json").code, Some(0));
    let registry = std::fs::read(t.registry_path()).unwrap();
    doc(serde_json::json!({ "web": {}, "api": {} }));
    let out = env("dotenv");
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry, "{out}");
    assert_eq!(env("json").code, Some(0));
    assert_eq!(t.allocations().len(), 2);
}

/// `A = 'x\'` was written unquoted, `A=x\`, and a shell sourcing the
/// file (`set -a; . ./.env`) read that backslash as a line continuation:
/// A became `xB=y` and B was lost. A value ending in an odd number of
/// backslashes is refused like the other values no line carries; an even
/// number is backslashes, and the next line stays its own.
#[test]
fn a_value_ending_in_a_backslash_cannot_swallow_the_next_line() {
    let t = TestEnv::new();
    let config = t.root().join("case.json");
    let dotenv = |a: &str| dotenv_with(&t, &config, serde_json::json!({ "A": a, "B": "y" }));
    for odd in ["x\\", "\\", "x\\\\\\"] {
        let out = dotenv(odd);
        assert_eq!(out.code, Some(1), "{odd:?}: {out}");
        assert!(out.stdout.is_empty(), "{odd:?}: {out}");
        assert!(
            out.stderr
                .starts_with("error: cannot write A as a .env line: its value holds "),
            "{odd:?}: {out}"
        );
        assert!(t.allocations().is_empty(), "{odd:?}: {out}");
    }
    let out = dotenv("x\\\\");
    assert_eq!(out.code, Some(0), "{out}");
    std::fs::write(t.root().join("x.env"), &out.stdout).unwrap();
    let sourced = run(Command::new("bash").current_dir(t.root()).args([
        "--norc",
        "--noprofile",
        "-c",
        "set -a; . ./x.env; printf '%s|%s' \"$A\" \"$B\"",
    ]));
    assert_eq!(sourced.stdout, "x\\|y", "{}\n{sourced}", out.stdout);
}
