//! Hostile values through every `env --format`, eval'd by the real bash,
//! zsh and fish: they arrive byte-exact and no
//! code runs. The worktree's own path holds `$(touch PWNED)` and a quote.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::shell::{Sh, pwned_under, read_env, var};
use crate::support::{TestEnv, run};

/// Pieces that break naive quoting in one shell or another.
const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    "\\",
    "\\'",
    "'\\''",
    "$(touch PWNED)",
    "`touch PWNED`",
    "(touch PWNED)",
    "; touch PWNED",
    "'; touch PWNED; '",
    "\"; touch PWNED; \"",
    "\\'; touch PWNED #",
    "$HOME",
    "${HOME}",
    "$",
    "!",
    "!!",
    "*",
    "~",
    "{a,b}",
    "%s",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "#",
    "&",
    "|",
    "é",
    "☃",
    "𝄞",
    "\u{202e}",
    "\u{2028}",
    "\u{85}",
    "\u{1b}[31m",
];

fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        2 => "\\PC{0,6}",
        1 => any::<char>().prop_filter("no NUL in the environment", |c| *c != '\0').prop_map(String::from),
        1 => "[a-z'\"$`\\\\ \n]{1000,4000}",
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

/// A config with the test's range and the value as an `[env]` template
/// (braces doubled: they are literal).
fn write_case(t: &TestEnv, path: &Path, value: &str) {
    let config = serde_json::json!({
        "purposes": { "feature": t.ports.range() },
        "env": {
            "HOSTILE": value.replace('{', "{{").replace('}', "}}"),
            "WT": "{worktree}",
        },
    });
    std::fs::write(path, config.to_string()).unwrap();
}

struct Case<'a> {
    t: &'a TestEnv,
    worktree: &'a Path,
    config: PathBuf,
}

impl<'a> Case<'a> {
    /// A linked worktree at `worktree`, on a new `branch`, and the config
    /// file each case writes.
    fn new(t: &'a TestEnv, worktree: &'a Path, branch: &str) -> Case<'a> {
        t.git(&[
            "worktree",
            "add",
            "-q",
            "-b",
            branch,
            worktree.to_str().unwrap(),
        ]);
        Case {
            t,
            worktree,
            config: t.root().join("case.json"),
        }
    }

    fn output(&self, format: &str) -> Result<PathBuf, TestCaseError> {
        let out = self.run(format);
        prop_assert_eq!(out.code, Some(0), "{}", out);
        let file = self.t.root().join(format!("out.{format}"));
        std::fs::write(&file, out.stdout).unwrap();
        Ok(file)
    }

    fn run(&self, format: &str) -> crate::support::Run {
        run(&mut self.t.wtenv_in(
            self.worktree,
            &[
                "--config",
                self.config.to_str().unwrap(),
                "env",
                "--format",
                format,
            ],
        ))
    }

    /// `eval`s (bash, zsh) or `source`s (fish) `file` in the real shell
    /// and returns the exported environment.
    fn eval_in(
        &self,
        sh: Sh,
        file: &Path,
        prelude: &str,
    ) -> Result<Vec<(String, String)>, TestCaseError> {
        let dump = self.t.root().join(format!("{}.env", sh.name()));
        let _ = std::fs::remove_file(&dump);
        let script = match sh {
            Sh::Fish => format!(
                "source '{}'\nenv -0 > '{}'\n",
                file.display(),
                dump.display()
            ),
            _ => format!(
                "{prelude}eval \"$(cat '{}')\"\nenv -0 > '{}'\n",
                file.display(),
                dump.display()
            ),
        };
        let out = sh.run(self.t, self.worktree, &script);
        prop_assert_eq!(out.code, Some(0), "{}: {}", sh.name(), out);
        prop_assert_eq!(out.stderr.as_str(), "", "{}: {}", sh.name(), out);
        Ok(read_env(&dump))
    }
}

#[test]
fn hostile_values_arrive_byte_exact_in_every_format_and_run_nothing() {
    let t = TestEnv::new();
    let worktree = t.root().join("wt $(touch PWNED) it's");
    let case = Case::new(&t, &worktree, "hostile");
    let wt = worktree.to_str().unwrap();
    let mut runner = TestRunner::new(Config {
        // Each case spawns five wtenv and four shells.
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&hostile(), |value| {
            write_case(&t, &case.config, &value);
            for (sh, format) in [(Sh::Bash, "bash"), (Sh::Zsh, "zsh"), (Sh::Fish, "fish")] {
                let file = case.output(format)?;
                let env = case.eval_in(sh, &file, "")?;
                prop_assert_eq!(var(&env, "HOSTILE"), Some(value.as_str()), "{}", sh.name());
                prop_assert_eq!(var(&env, "WT"), Some(wt), "{}", sh.name());
                prop_assert_eq!(var(&env, "WTENV_WORKTREE"), Some(wt), "{}", sh.name());
            }
            // dotenv is for .env readers (tests/it/dotenv.rs reads it back
            // in them); sourced by a shell it may differ, but runs nothing.
            // A value no .env line can carry is refused.
            let out = case.run("dotenv");
            if out.code == Some(0) {
                let file = t.root().join("out.dotenv");
                std::fs::write(&file, out.stdout).unwrap();
                let script = format!("set -a\n. '{}' >/dev/null 2>&1 || :\n", file.display());
                Sh::Bash.run(&t, &worktree, &script);
            } else {
                prop_assert_eq!(out.code, Some(1), "{}", out);
                prop_assert!(out.stderr.contains("as a .env line"), "{}", out);
            }
            let file = case.output("json")?;
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
            prop_assert_eq!(json["HOSTILE"].as_str(), Some(value.as_str()));
            prop_assert_eq!(json["WTENV_WORKTREE"].as_str(), Some(wt));
            prop_assert_eq!(pwned_under(&t.root()), None);
            Ok(())
        })
        .unwrap();
    assert_eq!(pwned_under(&t.root()), None);
}

/// The locales (made once under `target/`) in which a character's last
/// byte may be `\`: `(LOCPATH, names)`.
fn legacy_locales() -> (PathBuf, [&'static str; 3]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/locales");
    let locales = [
        ("zh_CN", "GBK", "zh_CN.GBK"),
        ("zh_TW", "BIG5", "zh_TW.BIG5"),
        ("ja_JP", "SHIFT_JIS", "ja_JP.SJIS"),
    ];
    for (input, charmap, name) in locales {
        if dir.join(name).join("LC_CTYPE").exists() {
            continue;
        }
        // Made beside, then renamed: a parallel or killed run never sees
        // half a locale.
        let part = dir.join(format!("{name}.{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // `-c`: Shift-JIS is not ASCII-compatible (5C is the yen sign),
        // which localedef warns of with exit 1, writing the locale.
        let out = run(std::process::Command::new("localedef")
            .args(["-c", "-i", input, "-f", charmap])
            .arg(&part));
        assert!(part.join("LC_CTYPE").exists(), "localedef {name}: {out}");
        let _ = std::fs::rename(&part, dir.join(name));
        let _ = std::fs::remove_dir_all(&part);
    }
    (dir, locales.map(|(_, _, name)| name))
}

/// fish reads a script in the user's locale. In GBK or Shift-JIS `丁`
/// (UTF-8 E4 B8 81) ends with a byte that takes the next one with it, so
/// a `\` written after it inside quotes escaped the closing quote, and a
/// worktree named `丁'; touch PWNED; echo 丁'` ran `touch`. Every
/// non-ASCII character now stands outside the quotes as `\xHH` bytes: in
/// each locale nothing runs, and the path and value arrive byte-exact.
#[test]
fn fish_reads_exports_byte_exact_and_runs_nothing_in_gbk_big5_and_shift_jis() {
    let (locpath, locales) = legacy_locales();
    let t = TestEnv::new();
    let hostile = "丁'; touch PWNED; echo 丁'";
    let worktree = t.root().join(hostile);
    let case = Case::new(&t, &worktree, "gbk");
    write_case(&t, &case.config, &format!("{hostile} \\ é\\'"));
    let file = case.output("fish").unwrap();
    for locale in locales {
        let dump = t.root().join("fish.env");
        let _ = std::fs::remove_file(&dump);
        let script = format!(
            "source '{}'\nenv -0 > '{}'\n",
            file.display(),
            dump.display()
        );
        let out = run(Sh::Fish
            .command(&t, &worktree, &script)
            .env("LOCPATH", &locpath)
            .env("LC_ALL", locale));
        assert_eq!(out.code, Some(0), "{locale}: {out}");
        assert_eq!(pwned_under(&t.root()), None, "{locale}: code ran: {out}");
        // The environment holds bytes: compare them, not text in a locale.
        let env = std::fs::read(&dump).unwrap();
        for (name, value) in [
            ("WTENV_WORKTREE", worktree.to_str().unwrap().to_owned()),
            ("HOSTILE", format!("{hostile} \\ é\\'")),
        ] {
            let entry = [name.as_bytes(), b"=", value.as_bytes(), b"\0"].concat();
            assert!(
                env.windows(entry.len()).any(|w| w == entry.as_slice()),
                "{locale}: {name} not byte-exact: {}",
                String::from_utf8_lossy(&env)
            );
        }
    }
}
