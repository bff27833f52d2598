//! Values the schema does not take: a duration that is negative or over
//! a year, an unknown table (with a suggestion), a value of the wrong
//! type (where it is, the key, what was expected and found).

use super::{assert_refused, assert_refused_at};
use crate::support::{TestEnv, run};

/// A duration refused is placed as a value of the wrong type is: the
/// file's line and column, the key, and the hint quoting the line.
#[test]
fn a_duration_that_is_a_negative_or_huge_number_is_exit_1_at_its_place() {
    assert_refused_at(
        "wtenv.toml",
        "[services.web]\nready_timeout = -30\n",
        "2:17: services.web.ready_timeout: ",
        "-30 is not a duration: expected seconds (30) or a duration (30s, 500ms, 1m), at most a year",
        "fix line 2 (`ready_timeout = -30`)",
    );
    assert_refused_at(
        "wtenv.toml",
        "[services.web]\nhealth = { interval = 1e12 }\n",
        "2:23: services.web.health.interval: ",
        "1000000000000.0 is longer than a year (1y), the most accepted",
        "fix line 2 (`health = { interval = 1e12 }`)",
    );
    assert_refused_at(
        "wtenv.json",
        "{\"services\": {\"web\": {\n  \"ready_timeout\": \"5x\"}}}\n",
        "2:23: services.web.ready_timeout: ",
        "\"5x\" is not a duration: expected seconds (30) or a duration (30s, 500ms, 1m), at most a year",
        "fix line 2 (`\"ready_timeout\": \"5x\"}}}`)",
    );
}

/// `ready_timeout = 0` made `up` fail at once (`not ready after 0s`): it
/// is refused as a zero `interval` or `timeout` is, in the same words and
/// at its place.
#[test]
fn a_zero_ready_timeout_is_refused_like_a_zero_interval() {
    for (line, place) in [
        ("ready_timeout = 0", "3:17: services.web.ready_timeout: "),
        (
            "health = { interval = \"0s\" }",
            "3:23: services.web.health.interval: ",
        ),
        (
            "health = { tcp = true, timeout = \"0ms\" }",
            "3:34: services.web.health.timeout: ",
        ),
    ] {
        assert_refused_at(
            "wtenv.toml",
            format!("[services.web]\nrun = \"true\"\n{line}\n"),
            place,
            "must be longer than 0s",
            &format!("fix line 3 (`{line}`)"),
        );
    }
}

/// A config's duration over a year is refused in the words `--grace` and
/// `WTENV_LOCK_TIMEOUT` use: the longest accepted, named.
#[test]
fn a_config_duration_over_a_year_says_the_most_accepted_word_for_word() {
    for (line, place, shown) in [
        (
            "ready_timeout = \"2y\"",
            "3:17: services.web.ready_timeout",
            "\"2y\"",
        ),
        (
            "health = { tcp = true, timeout = 1e12 }",
            "3:34: services.web.health.timeout",
            "1000000000000.0",
        ),
    ] {
        let t = TestEnv::new();
        let file = t.repo.join("wtenv.toml");
        let config = format!("[services.web]\nenv = \"WEB_PORT\"\n{line}\n");
        std::fs::write(&file, &config).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: invalid config {}:{place}: {shown} is longer than a year (1y), the most accepted\n\
                 hint: fix line 3 (`{line}`), then run the command again\n",
                file.display()
            ),
            "{out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), config);
        assert!(t.allocations().is_empty());
    }
}

/// `health.http` is sent on the request line as written: the refusal
/// says what a request path is (it read as a false statement of the value
/// refused), and a fragment, which no client sends, is refused for that.
#[test]
fn a_health_path_that_is_not_a_request_path_says_what_one_is() {
    let rule = "a request path starts with '/' and holds only printable ASCII without spaces";
    for (toml, shown, reason) in [
        ("h", "\"h\"", rule),
        ("/a\\tb", "\"/a\\tb\"", rule),
        ("/caf\u{e9}", "\"/caf\u{e9}\"", rule),
        (
            "/h?q=1#frag",
            "\"/h?q=1#frag\"",
            "it holds a fragment ('#'), which clients never send",
        ),
    ] {
        assert_refused(
            &format!("[services.web]\nhealth = {{ http = \"{toml}\" }}\n"),
            "services.web.health.http",
            &format!("services.web.health.http: {shown} is not a request path: {reason}\n"),
        );
    }
}

/// A misspelt table used to be a warning, and `[purpose]` then silently
/// fell back to the built-in 5000-5099 range.
#[test]
fn an_unknown_table_is_exit_1_with_a_suggestion_and_allocates_nothing() {
    assert_refused(
        "[purpose]\nfeature = \"21000-21009\"\n",
        "purpose",
        "unknown table [purpose]; did you mean [purposes]?",
    );
    assert_refused(
        "colour = true\n",
        "colour",
        "unknown table [colour]; known: [worktrees], [allocation], [purposes], [services], [env]",
    );
}

/// A value of the wrong type: where it is, the key it is under, what was
/// expected and what was found.
#[test]
fn a_type_error_names_file_line_column_and_key_in_toml_and_json() {
    assert_refused_at(
        "wtenv.toml",
        "[services.web]\nenv = \"WEB_PORT\"\nsocket = \"yes\"\n",
        "3:10: services.web.socket: ",
        "expected a boolean, got string \"yes\"",
        "fix line 3 (`socket = \"yes\"`)",
    );
    assert_refused_at(
        "wtenv.json",
        "{\"services\": {\n  \"web\": {\"health\": {\"retries\": 0}}}}\n",
        "2:33: services.web.health.retries: ",
        "expected a whole number from 1 to 1000, got number `0`",
        "fix line 2 (`\"web\": {\"health\": {\"retries\": 0}}}}`)",
    );
}

/// `[worktrees] branch` fills in `{purpose}` and `{identifier}`, `root`
/// `{repo}`: another placeholder is refused when the config is read, by
/// every command that reads it (`env` and `run` read `root` and `branch`
/// without using them), and
/// `create` then makes no branch, worktree nor directory.
#[test]
fn an_unknown_placeholder_in_worktrees_is_refused_by_every_command() {
    assert_refused(
        "[worktrees]\nbranch = \"{purpose}/{nope}/{identifier}\"\n",
        "worktrees.branch",
        "\"{purpose}/{nope}/{identifier}\": unknown placeholder {nope}; known: {purpose}, {identifier}",
    );
    assert_refused(
        "[worktrees]\nroot = \"../c.{nope}\"\n",
        "worktrees.root",
        "\"../c.{nope}\": unknown placeholder {nope}; known: {repo}",
    );
    let t = TestEnv::new();
    for extra in [
        "[worktrees]\nbranch = \"{purpose}/{nope}/{identifier}\"\n",
        "[worktrees]\nroot = \"../c.{nope}\"\n",
    ] {
        t.write_config(extra);
        for args in [
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "p1",
                "--ports",
            ][..],
            &["enter", "p1"],
            &["list"],
            &["run", "--", "true"],
        ] {
            let out = run(&mut t.wtenv(args));
            assert_eq!(out.code, Some(1), "{extra:?} {args:?}: {out}");
            assert!(
                out.stderr.contains("unknown placeholder {nope}"),
                "{extra:?} {args:?}: {out}"
            );
        }
        assert_eq!(t.git(&["branch", "--list", "feature/*"]), "", "{extra:?}");
        assert!(!t.root().join("repo.worktrees").exists(), "{extra:?}");
        assert!(!t.root().join("c.{nope}").exists(), "{extra:?}");
        assert!(t.allocations().is_empty(), "{extra:?}");
    }
}
