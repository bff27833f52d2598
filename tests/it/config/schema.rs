//! Values the schema does not take: a duration that is negative or over
//! a year, an unknown table (with a suggestion), a value of the wrong
//! type (where it is, the key, what was expected and found).

use super::{assert_refused, assert_refused_at};

#[test]
fn a_duration_that_is_a_negative_or_huge_number_is_exit_1_naming_the_key() {
    assert_refused(
        "[services.web]\nready_timeout = -30\n",
        "services.web.ready_timeout",
        "-30 is not a duration: expected seconds (30) or a duration (30s, 500ms, 1m), at most a year",
    );
    assert_refused(
        "[services.web]\nhealth = { interval = 1e12 }\n",
        "services.web.health.interval",
        "1000000000000.0 is longer than a year",
    );
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
        "expected a whole number from 1 to 1000, got integer `0`",
        "fix line 2 (`\"web\": {\"health\": {\"retries\": 0}}}}`)",
    );
}
