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

/// A full range whose skipped ports no socket listens on has no process
/// to stop: its hint says what to do instead, as the other refusals
/// naming such a port do; where a process holds one of them (or a
/// holder wtenv cannot see), it still says to stop what holds them.
#[test]
fn a_full_range_of_ports_no_process_listens_on_hints_what_to_do_instead() {
    use crate::config::{PortRange, Ranges};
    let unlistened = Holders {
        listening: Some(false),
        ..Holders::default()
    };
    let full = |occupied: Vec<(u16, Holders)>| {
        Error::RangeExhausted {
            purpose: "feature".into(),
            ranges: Ranges::one(PortRange {
                start: 5000,
                end: 5001,
            }),
            need: 1,
            config_file: Some("wtenv.toml".into()),
            occupied,
        }
        .hint()
        .unwrap()
    };
    let widen = "or widen the range (or add an overflow range) in wtenv.toml";
    let bound = if cfg!(target_os = "linux") {
        "no connection of ports 5000, 5001 is in TIME_WAIT: stop the programs that bound them without listening"
    } else {
        "wait a minute if ports 5000, 5001 are in TIME_WAIT; should they stay busy, stop the programs that bound them without listening"
    };
    assert_eq!(
        full(vec![(5000, unlistened.clone()), (5001, unlistened.clone())]),
        format!("{bound}, {widen}")
    );
    let process = Holders {
        processes: vec![crate::probe::Holder {
            pid: 7,
            command: "python3 -m http.server".into(),
            cwd: None,
            unit: None,
        }],
        listening: Some(true),
        ..Holders::default()
    };
    for held in [process, Holders::default()] {
        assert_eq!(
            full(vec![(5000, unlistened.clone()), (5001, held)]),
            format!("stop what holds those ports, {widen}")
        );
    }
}

/// A port held outside the worktree by the service manager: the hint
/// says to stop the unit it listens for, not "those processes".
#[cfg(target_os = "linux")]
#[test]
fn a_foreign_port_the_service_manager_holds_is_stopped_by_its_unit() {
    let manager = Holders {
        processes: vec![crate::probe::Holder {
            pid: 812,
            command: "/lib/systemd/systemd --user".into(),
            cwd: Some("/".into()),
            unit: Some("db.socket".into()),
        }],
        listening: Some(true),
        ..Holders::default()
    };
    let err = Error::ForeignHolder {
        worktree: "/w/a".into(),
        ports: vec![(5000, "db".into(), manager)],
    };
    assert_eq!(
        err.to_string(),
        "ports reserved for worktree /w/a are held by processes outside it:\n  port 5000 (db): pid 812 (/lib/systemd/systemd --user) in /: the service manager, listening for 'db.socket'"
    );
    assert_eq!(
        err.hint().unwrap(),
        "the service manager listens there for 'db.socket': stop it with systemctl --user stop 'db.socket'; the reservation stays with this worktree"
    );
}
