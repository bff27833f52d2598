//! The command line's own tests: clap's definition is consistent, and the
//! clap-free parse of the hot command lines answers as clap does.

use super::*;

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

fn argv(words: &[&str]) -> Vec<OsString> {
    std::iter::once("wtenv")
        .chain(words.iter().copied())
        .map(OsString::from)
        .collect()
}

/// Every arrangement of three of `pieces` after `command` (and after
/// a global flag and `command`): wherever
/// the hot path answers, clap answers the same. Returns how many it
/// answered.
fn hot_equals_clap(command: &str, pieces: &[&[&str]]) -> usize {
    let mut answered = 0;
    let n = pieces.len();
    for a in 0..n {
        for b in 0..n {
            for c in 0..n {
                for lead in [&[][..], &["-q"], &["--quiet"], &["-v"]] {
                    let mut words = lead.to_vec();
                    words.push(command);
                    for i in [a, b, c] {
                        words.extend_from_slice(pieces[i]);
                    }
                    let args = argv(&words);
                    if let Some(hot) = parse_hot(&args) {
                        answered += 1;
                        let clap = Cli::try_parse_from(&args)
                            .unwrap_or_else(|e| panic!("{words:?}: clap refuses: {e}"));
                        assert_eq!(format!("{hot:?}"), format!("{clap:?}"), "{words:?}");
                    }
                }
            }
        }
    }
    answered
}

#[test]
fn the_hot_path_parses_env_as_clap_does() {
    let answered = hot_equals_clap(
        "env",
        &[
            &["--format", "bash"],
            &["--format", "fish"],
            &["--format", "json"],
            &["--format", "powershell"],
            &["--format"],
            &["--format=zsh"],
            &["--hook"],
            &["--direnv"],
            &["--hold", "42"],
            &["--hold", "-1"],
            &["--hold", "x"],
            &["--skip-occupied"],
            &["-q"],
            &["--quiet"],
            &["-v"],
            &["--registry", "/r"],
            &["--help"],
        ],
    );
    assert!(answered > 100, "{answered}");
}

#[test]
fn the_hot_path_parses_create_as_clap_does() {
    let answered = hot_equals_clap(
        "create",
        &[
            &["--purpose", "feature", "--identifier", "x"],
            &["--identifier", "a b", "--purpose", "bugfix"],
            &["--purpose", "feature"],
            &["--identifier", "é"],
            &["--purpose", "-x"],
            &["--identifier", "-rf"],
            &["--identifier", ""],
            &["--identifier"],
            &["--identifier=y"],
            &["--branch", "main"],
            &["--branch", "$(touch p)"],
            &["--path", "/tmp/a b"],
            &["--path", "rel/dir"],
            &["--path", ""],
            &["--ports"],
            &["--skip-occupied"],
            &["--json"],
            &["-q"],
            &["--quiet"],
            &["-v"],
            &["--registry", "/r"],
            &["--help"],
            &["--"],
            &["extra"],
        ],
    );
    assert!(answered > 100, "{answered}");
}

#[test]
fn the_hot_path_parses_remove_as_clap_does() {
    let answered = hot_equals_clap(
        "remove",
        &[
            &["x"],
            &["a b"],
            &["../p"],
            &[""],
            &["-rf"],
            &["--force"],
            &["--delete-branch"],
            &["--force=1"],
            &["-q"],
            &["--quiet"],
            &["-v"],
            &["--"],
            &["--help"],
            &["--config", "/c"],
        ],
    );
    assert!(answered > 50, "{answered}");
}

#[test]
fn the_hot_path_parses_run_as_clap_does() {
    let answered = hot_equals_clap(
        "run",
        &[
            &["--", "true"],
            &["--", "-q"],
            &["--", "--"],
            &["--"],
            &["--grace", "2s"],
            &["--grace", "soon"],
            &["--grace", "-1s"],
            &["--grace"],
            &["--grace=3s"],
            &["--sockets"],
            &["--skip-occupied"],
            &["--service", "web"],
            &["--service", "-x"],
            &["--service"],
            &["--setsid"],
            &["-q"],
            &["-v"],
            &["--help"],
            &["true"],
        ],
    );
    assert!(answered > 100, "{answered}");
}

/// The command lines of shell-hooks/ take the hot path.
#[test]
fn the_integrations_take_the_hot_path() {
    for words in [
        &["env"][..],
        &["env", "--format", "bash", "--hook"],
        &["env", "--format", "zsh", "--hook"],
        &["env", "--format", "fish", "--hook"],
        &["env", "--format", "bash", "--direnv"],
        &["env", "--format", "bash", "--hold", "4242"],
    ] {
        assert!(parse_hot(&argv(words)).is_some(), "{words:?}");
    }
    assert!(parse_hot(&argv(&["ports"])).is_none());
    assert!(parse_hot(&argv(&["-v", "env"])).is_none());
    // And `create` + `remove` as scripts run them (scripts/bench).
    for words in [
        &["-q", "env"][..],
        &[
            "-q",
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--ports",
        ],
        &["-q", "remove", "x"],
        &["remove", "--delete-branch", "x"],
        &["run", "--", "true"],
        &[
            "-q",
            "run",
            "--grace",
            "2s",
            "--sockets",
            "--",
            "npm",
            "run",
            "dev",
        ],
    ] {
        assert!(parse_hot(&argv(words)).is_some(), "{words:?}");
    }
}
