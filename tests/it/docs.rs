//! Docs that cannot drift: the README's command table is the
//! CLI's, command for command, every flag it shows exists, and every
//! flag a command has is shown, with its values; and the variables wtenv
//! reads and the names a config may not export are all listed; every
//! link to an anchor in README.md and docs/ leads to one.

use clap::CommandFactory;

/// `(synopsis, description)` rows of the README's command table.
fn readme_rows() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("<!-- commands: kept in sync with `wtenv --help` by a test -->")
        .nth(1)
        .expect("README has the commands marker");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| `wtenv"))
        .take_while(|l| l.starts_with("| `wtenv"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
            let synopsis = cells[0]
                .trim()
                .trim_matches('`')
                .trim_start_matches("wtenv ")
                .to_owned();
            (synopsis, cells[1].trim().to_owned())
        })
        .collect()
}

#[test]
fn readme_command_table_matches_the_cli() {
    let cli = wtenv::Cli::command();
    // Hidden commands are wtenv's own plumbing, not the user's.
    let commands: Vec<_> = cli.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let rows = readme_rows();
    let names: Vec<&str> = rows
        .iter()
        .map(|(s, _)| s.split(' ').next().unwrap())
        .collect();
    let cli_names: Vec<&str> = commands.iter().map(|c| c.get_name()).collect();
    assert_eq!(names, cli_names, "README command table vs `wtenv --help`");
    for ((synopsis, about), cmd) in rows.iter().zip(&commands) {
        assert_eq!(
            Some(about.as_str()),
            cmd.get_about().map(|a| a.to_string()).as_deref(),
            "description of {}",
            cmd.get_name()
        );
        for flag in synopsis
            .split([' ', '[', ']', '|'])
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let long = flag.trim_start_matches("--");
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(long))
                    || cli.get_arguments().any(|a| a.get_long() == Some(long)),
                "README shows {flag} for `{}`, which has no such flag",
                cmd.get_name()
            );
        }
    }
}

/// The README's configuration example is a valid config, with no warning.
#[test]
fn readme_config_example_is_valid() {
    let readme = include_str!("../../README.md");
    let example = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README has a toml example under Configuration");
    let config = wtenv::config::Config::parse(std::path::Path::new("wtenv.toml"), example)
        .unwrap_or_else(|e| panic!("README example: {e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.services.len(), 3);
    assert_eq!(config.env[0].0, "API_URL");
}

/// The global flags are listed once, below the command table, each by
/// its long or its short name.
#[test]
fn readme_lists_every_global_flag() {
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("Global flags: "))
        .expect("README has the global flags line");
    for arg in wtenv::Cli::command().get_arguments() {
        // The whole name: `--color` is not found in `--colors`.
        let long = arg
            .get_long()
            .map(|l| [format!("`--{l}`"), format!("`--{l} ")]);
        let short = arg.get_short().map(|c| format!("`-{c}`"));
        assert!(
            long.iter()
                .flatten()
                .chain(&short)
                .any(|f| line.contains(f.as_str())),
            "README's global flags lack {long:?} / {short:?}: {line}"
        );
    }
}

/// The other way round: every flag of a command (but the global ones,
/// listed once below the table, and the hidden plumbing) is in its row,
/// and a flag with a fixed set of values shows them all (`--format
/// bash|zsh|...`). A flag added to the CLI and not to the README fails here.
#[test]
fn readme_command_table_shows_every_flag_and_its_values() {
    let cli = wtenv::Cli::command();
    let global: Vec<&str> = cli.get_arguments().filter_map(|a| a.get_long()).collect();
    let rows = readme_rows();
    for cmd in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
        let (synopsis, _) = rows
            .iter()
            .find(|(s, _)| s.split(' ').next() == Some(cmd.get_name()))
            .unwrap_or_else(|| panic!("no README row for {}", cmd.get_name()));
        let words: Vec<&str> = synopsis.split([' ', '[', ']']).collect();
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long().filter(|l| !global.contains(l)) else {
                continue;
            };
            // Shown by its long name, or by its short one (`-d`).
            let flag = format!("--{long}");
            let short = arg.get_short().map(|c| format!("-{c}"));
            let at = words.iter().position(|w| {
                w.split('|')
                    .any(|f| f == flag || Some(f) == short.as_deref())
            });
            assert!(
                at.is_some(),
                "README's row for `{}` lacks {flag}: {synopsis}",
                cmd.get_name()
            );
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect();
            if arg.get_action().takes_values() && !values.is_empty() {
                let shown = words.get(at.unwrap() + 1).copied().unwrap_or("");
                assert_eq!(
                    shown,
                    values.join("|"),
                    "README's row for `{}` shows {flag}'s values",
                    cmd.get_name()
                );
            }
        }
    }
}

/// The README section under `heading`, up to the next heading of its level.
fn readme_section(heading: &str) -> &'static str {
    let readme = include_str!("../../README.md");
    let level = heading.split(' ').next().unwrap();
    let rest = readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has {heading}"));
    rest.split(&format!("\n{level} ")).next().unwrap()
}

/// Every environment variable `src/settings.rs` reads (its named
/// constants and the literal names it reads) is in the README's table.
#[test]
fn readme_lists_every_environment_variable_wtenv_reads() {
    let settings = include_str!("../../src/settings.rs");
    let section = readme_section("## Environment variables");
    let quoted = |line: &str, open: &str| {
        line.split_once(open)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.to_owned())
    };
    let names: Vec<String> = settings
        .lines()
        .filter_map(|l| {
            if l.starts_with("pub const ") && l.contains(": &str = \"") {
                quoted(l, ": &str = \"")
            } else {
                quoted(l, "once!(\"")
            }
        })
        .collect();
    assert!(names.len() > 15, "{names:?}");
    for name in names {
        assert!(
            section.contains(&format!("`{name}`")),
            "README's Environment variables lack `{name}`"
        );
    }
}

/// Every name a config may never export is listed under Trust, with the
/// reason of its group (`PS0`-`PS4` and `PROMPT2`-`PROMPT4` stand for the
/// prompts between).
#[test]
fn readme_lists_every_refused_variable_name() {
    let section = readme_section("## Trust");
    for group in wtenv::config::REFUSED {
        for name in group.names {
            let shown = match *name {
                "PS1" | "PS2" | "PS3" => "`PS0`-`PS4`".to_owned(),
                "PROMPT3" => "`PROMPT2`-`PROMPT4`".to_owned(),
                _ => format!("`{name}`"),
            };
            assert!(section.contains(&shown), "Trust lacks {shown}");
        }
    }
    for prefix in wtenv::config::REFUSED_PREFIXES {
        let shown = format!("`{prefix}*`");
        assert!(section.contains(&shown), "Trust lacks {shown}");
    }
}

/// Every command's `--help`, from the real binary, shows its own flags
/// first and the global ones (`--registry`, `--config`, `-v`, `-q`,
/// `--color`) after them, under a heading of their own, never among
/// them; `-h` as `--help`.
#[test]
fn every_help_shows_the_global_options_apart_after_the_commands_own() {
    let t = crate::support::TestEnv::new();
    let cli = wtenv::Cli::command();
    let globals = ["--registry", "--config", "--verbose", "--quiet", "--color"];
    let commands: Vec<String> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .collect();
    let mut lines: Vec<Vec<&str>> = vec![vec![]];
    lines.extend(commands.iter().map(|c| vec![c.as_str()]));
    for words in lines {
        for flag in ["--help", "-h"] {
            let mut args = words.clone();
            args.push(flag);
            let out = crate::support::run(&mut t.wtenv(&args));
            assert_eq!(out.code, Some(0), "{args:?}: {out}");
            let (own, global) = out
                .stdout
                .split_once("\nGlobal options:\n")
                .unwrap_or_else(|| panic!("{args:?}: no Global options heading:\n{out}"));
            for g in globals {
                assert!(
                    !own.contains(g),
                    "{args:?}: {g} among the command's own:\n{own}"
                );
                assert!(
                    global.contains(g),
                    "{args:?}: {g} not under Global options:\n{global}"
                );
            }
            assert!(own.contains("\nOptions:\n"), "{args:?}:\n{own}");
            assert!(own.contains("--help"), "{args:?}:\n{own}");
        }
    }
}

/// `env --help` says how dotenv values are quoted: each as it needs, not
/// always in single quotes.
#[test]
fn env_help_says_dotenv_quotes_each_value_as_it_needs() {
    let t = crate::support::TestEnv::new();
    let out = crate::support::run(&mut t.wtenv(&["env", "--help"]));
    assert_eq!(out.code, Some(0), "{out}");
    let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!help.contains("`NAME='value'`"), "{help}");
    assert!(
        help.contains(
            "dotenv: `NAME=value` lines for `.env` readers (python-dotenv, node's `dotenv`), \
             each value quoted as it needs (single quotes, none, or double quotes)"
        ),
        "{help}"
    );
}

/// `list --help` says `--json` prints one object, holding the worktrees
/// and the conflicts: "one object per worktree" read like a line per
/// worktree (NDJSON). And the README says `conflicts` exits 1 when it
/// finds any, which it does (the exit-code table's row alone did not).
#[test]
fn list_help_names_the_one_json_object_and_the_readme_conflicts_exit() {
    let t = crate::support::TestEnv::new();
    let out = crate::support::run(&mut t.wtenv(&["list", "--help"]));
    assert_eq!(out.code, Some(0), "{out}");
    let json = out.stdout.lines().find(|l| l.contains("--json")).unwrap();
    assert!(!json.contains("per worktree"), "{json}");
    assert!(
        json.contains(r#"one JSON object: {"version": 1, "worktrees": [...], "conflicts": [...]}"#),
        "{json}"
    );
    let readme = include_str!("../../README.md");
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(readme.contains("`conflicts` exits 1 when it lists any"));
}

/// README says what a `run` or `up` hold's `command` is: wtenv's own
/// rendering (`wtenv run -- ...`, quoted for a shell), which
/// `display::a_command_line_is_exact_in_json_and_the_registry_and_escaped_where_shown`
/// holds it to. It said a hold's command was given "as the process has
/// it", which is true of a listener's and an `env --hold` holder's only.
#[test]
fn readme_says_a_run_holds_command_is_wtenvs_rendering() {
    let readme = include_str!("../../README.md");
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!readme.contains("(a listener's, a hold's)"));
    assert!(readme.contains(
        "its `command` is wtenv's rendering, not the process's argv: the command line `wtenv run` was given, quoted for a shell"
    ));
}

/// The anchors of a Markdown file: its headings' (GitHub's slugs:
/// lower case, spaces as `-`, other punctuation dropped; a repeated
/// heading gets `-1`, `-2`) and its `<a id="...">`s.
fn anchors(text: &str) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        if let Some(heading) = line.trim_start_matches('#').strip_prefix(' ')
            && line.starts_with('#')
        {
            let slug: String = heading
                .trim()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => {
                        Some(c.to_lowercase().next().unwrap_or(c))
                    }
                    _ => None,
                })
                .collect();
            let n = seen.entry(slug.clone()).or_default();
            found.insert(if *n == 0 { slug } else { format!("{slug}-{n}") });
            *n += 1;
        }
        for id in line.split("<a id=\"").skip(1) {
            found.insert(id.split('"').next().unwrap_or_default().to_owned());
        }
    }
    found
}

/// Every link to an anchor in README.md and docs/ (`[x](#a)`,
/// `[x](docs/ARCHITECTURE.md#a)`, `[x](../README.md#a)`) names one that
/// exists: a heading renamed left its links pointing nowhere.
#[test]
fn every_link_to_an_anchor_in_the_docs_leads_somewhere() {
    use std::path::{Path, PathBuf};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let mut broken = Vec::new();
    let mut links = 0;
    for file in &files {
        let text = read(file);
        for link in text.split("](").skip(1) {
            let Some(target) = link.split([')', ' ']).next() else {
                continue;
            };
            let Some((path, anchor)) = target.split_once('#') else {
                continue;
            };
            if path.contains("://") {
                continue;
            }
            let to: PathBuf = match path {
                "" => file.clone(),
                path => file.parent().unwrap().join(path),
            };
            links += 1;
            if !anchors(&read(&to)).contains(anchor) {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(links > 50, "the links were not found: {links}");
    assert_eq!(broken, Vec::<String>::new());
}
