//! A file that does not parse: TOML and JSON syntax errors and bytes that
//! are not UTF-8 are named by file, line and column, the line quoted in
//! the hint, control characters shown escaped.

use super::assert_refused_at;

#[test]
fn a_toml_syntax_error_names_file_line_and_column() {
    assert_refused_at(
        "wtenv.toml",
        "[purposes]\nfeature = \"21000-21009\"\nbugfix = = 2\n",
        "3:10: ",
        "not valid TOML: extra `=`, expected nothing",
        "fix line 3 (`bugfix = = 2`)",
    );
}

#[test]
fn a_json_syntax_error_names_file_line_and_column() {
    assert_refused_at(
        "wtenv.json",
        "{\n  \"purposes\": {\"feature\": \"21000-21009\",}\n}\n",
        "2:41: ",
        "not valid JSON: trailing comma",
        "fix line 2 (`\"purposes\": {\"feature\": \"21000-21009\",}`)",
    );
}

/// The error and its hint are printed on every `cd` under the shell hook:
/// an escape sequence in the file (raw, or a JSON `\u001b` in a key) is
/// shown escaped, never sent to the terminal.
#[test]
fn a_config_error_shows_control_characters_escaped() {
    assert_refused_at(
        "wtenv.toml",
        "[purposes]\nbad = \x1b]0;T\x07\n",
        "2:8: ",
        "not valid TOML: unexpected key or value, expected newline, `#`",
        r"fix line 2 (`bad = \u{1b}]0;T\u{7}`)",
    );
    assert_refused_at(
        "wtenv.json",
        r#"{"purposes": {"\u001b]0;T\u0007": 5}}"#,
        r#"1:35: purposes."\u{1b}]0;T\u{7}": "#,
        "expected a string \"START-END\" or an array of them, got number `5`",
        r#"fix line 1 (`{"purposes": {"\u001b]0;T\u0007": 5}}`)"#,
    );
}

/// A byte that is not UTF-8 is found by its line, as a syntax error is:
/// in a long file, "it is not valid UTF-8" left the user to search.
#[test]
fn a_config_that_is_not_utf8_names_the_line_and_the_byte() {
    for name in ["wtenv.toml", "wtenv.json"] {
        assert_refused_at(
            name,
            b"# ok\n# caf\xe9 ou th\xe9\n",
            "2:6: ",
            "not valid UTF-8 (byte 0xe9)",
            "fix line 2 (`# caf\u{fffd} ou th\u{fffd}`)",
        );
    }
}

/// A syntax error and a byte that is not UTF-8 stop the reading before
/// any key is known: they name no key, even in a value (README said
/// every error placed in the file named the key it is under).
#[test]
fn a_syntax_error_or_a_byte_not_utf8_in_a_value_names_no_key() {
    assert_refused_at(
        "wtenv.toml",
        b"[env]\nX = \"\xff\"\n",
        "2:6: ",
        "not valid UTF-8 (byte 0xff)",
        "fix line 2 (`X = \"\u{fffd}\"`)",
    );
    assert_refused_at(
        "wtenv.toml",
        "[services.web]\nrun = \"serve\nenv = [\"PORT\"]\n",
        "2:13: ",
        "not valid TOML: invalid basic string, expected `\"`",
        "fix line 2 (`run = \"serve`)",
    );
}
