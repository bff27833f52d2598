use super::*;

#[test]
fn each_kind_of_user_error_carries_its_hint_and_exits_1() {
    for make in [
        Error::invalid,
        Error::not_found,
        Error::refused,
        Error::failed,
    ] {
        let bare = make("what failed, on what");
        assert_eq!(bare.hint(), None);
        assert_eq!(bare.exit_code(), exit::Outcome::Code(exit::FAILURE));
        let hinted = make("what failed, on what").with_hint("what next");
        assert_eq!(hinted.to_string(), "what failed, on what");
        assert_eq!(hinted.hint().as_deref(), Some("what next"));
        assert_eq!(hinted.exit_code(), exit::Outcome::Code(exit::FAILURE));
    }
    // A kind that knows its own hint keeps it.
    let busy = Error::RegistryBusy {
        path: "/r".into(),
        waited: std::time::Duration::from_secs(1),
    }
    .with_hint("other");
    assert!(
        busy.hint()
            .unwrap()
            .starts_with("another process (usually another wtenv)")
    );
}

/// A full range's hint names the config that gives the range; with
/// none, the built-in ranges are in use, and it says which file to
/// create and the line to start from (a `[purposes]` table replaces
/// every built-in purpose).
#[test]
fn a_full_range_says_where_to_widen_it_with_and_without_a_config() {
    use crate::config::{PortRange, Ranges};
    let full = |config_file: Option<&str>, ranges: Vec<(u16, u16)>| Error::RangeExhausted {
        purpose: "feature".into(),
        ranges: Ranges::new(
            ranges
                .into_iter()
                .map(|(start, end)| PortRange { start, end })
                .collect(),
        )
        .unwrap(),
        need: 1,
        config_file: config_file.map(str::to_owned),
        occupied: Vec::new(),
    };
    let stale = "run 'wtenv validate --verify-ports --fix' to release stale allocations, \
                 or widen the range (or add an overflow range)";
    assert_eq!(
        full(Some("wtenv.json"), vec![(5000, 5099)]).hint().unwrap(),
        format!("{stale} in wtenv.json")
    );
    assert_eq!(
        full(None, vec![(5000, 5099)]).hint().unwrap(),
        format!(
            "{stale}: there is no config, so create wtenv.toml with a [purposes] table, \
             from the built-in line feature = \"5000-5099\" \
             (the table replaces every built-in purpose)"
        )
    );
    assert!(
        full(None, vec![(5000, 5000), (6000, 6000)])
            .hint()
            .unwrap()
            .contains(" feature = [\"5000-5000\", \"6000-6000\"] "),
    );
}

#[test]
fn a_location_shows_its_line_with_control_characters_escaped() {
    let at = Location::at("[a]\nbad = \x1b]0;T\x07\nx = 1\n", 10);
    assert_eq!((at.line, at.column), (2, 7));
    assert_eq!(at.text, r"bad = \u{1b}]0;T\u{7}");
}
