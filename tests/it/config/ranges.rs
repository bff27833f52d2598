//! Port ranges: bad syntax, reversed, below 1024 or overlapping another
//! purpose is refused; a range in the OS ephemeral range is a warning,
//! one for many.

use super::{assert_refused, assert_refused_at};
use crate::support::{TestEnv, run};

#[test]
fn bad_range_syntax_is_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"5000..5099\"\n",
        "purposes.feature",
        "START-END",
    );
    assert_refused(
        "[purposes]\nfeature = \"5000-70000\"\n",
        "purposes.feature",
        "range \"5000-70000\": 70000 is not a port; ports go up to 65535",
    );
    // START and END are digits only: no sign, space or leading zero.
    for range in ["+21000-21099", "021000-21099", " 21000 - 21001 "] {
        assert_refused(
            &format!("[purposes]\nfeature = \"{range}\"\n"),
            "purposes.feature",
            &format!(
                "expected \"START-END\" (e.g. \"5000-5099\"), got \"{range}\"\nhint: fix the file, then run the command again\n"
            ),
        );
    }
    assert_refused_at(
        "wtenv.toml",
        "[purposes]\nfeature = 5000\n",
        "2:11: purposes.feature: ",
        "expected a string \"START-END\" or an array of them, got integer `5000`",
        "fix line 2 (`feature = 5000`)",
    );
}

#[test]
fn a_reversed_range_is_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"5099-5000\"\n",
        "purposes.feature",
        "reversed",
    );
}

#[test]
fn ports_below_1024_are_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"80-1100\"\n",
        "purposes.feature",
        "below 1024",
    );
}

#[test]
fn overlapping_purposes_are_exit_1_naming_the_key() {
    assert_refused(
        "[purposes]\nfeature = \"5000-5099\"\nbugfix = \"5090-5199\"\n",
        "purposes.bugfix",
        "overlaps purposes.feature",
    );
}

#[test]
fn a_range_overlapping_the_ephemeral_range_is_a_warning() {
    let t = TestEnv::new();
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let start: u16 = eph.split_whitespace().next().unwrap().parse().unwrap();
    // A second purpose inside the ephemeral range; `feature` (the test's
    // block, below it) is the one allocated from.
    t.write_config(&format!(
        "ephemeral = \"{}-{}\"\n",
        start + 100,
        start + 109
    ));
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.starts_with("warning: ")
            && out.stderr.contains("purposes.ephemeral")
            && out.stderr.contains("overlaps the OS ephemeral range"),
        "{out}"
    );
    // `create` reads the source's config and the new checkout's: one
    // warning, not one per file.
    t.git(&["add", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "config"]);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "w",
        "--ports",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr
            .matches("overlaps the OS ephemeral range")
            .count(),
        1,
        "{out}"
    );
    // Ranges below the ephemeral range give no warning at all.
    t.write_config("");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.stderr, "", "{out}");
}

/// Every `cd` under the shell hook gives the config's warnings: a config
/// of many ranges in the ephemeral range gives one, with a count.
#[test]
fn many_ranges_in_the_ephemeral_range_are_one_warning() {
    let t = TestEnv::new();
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let start: u16 = eph.split_whitespace().next().unwrap().parse().unwrap();
    let purposes: String = (0..50)
        .map(|i| format!("e{i:02} = \"{0}-{0}\"\n", start + i))
        .collect();
    t.write_config(&purposes);
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("warning: ")
            && lines[0].contains(&format!(
                ": 50 port ranges overlap the OS ephemeral range {}-",
                start
            ))
            && lines[0].contains(&format!(
                "(purposes.e00 {0}-{0}, purposes.e01 {1}-{1}, purposes.e02 {2}-{2} and 47 more)",
                start,
                start + 1,
                start + 2
            )),
        "{out}"
    );
    assert!(lines[1].starts_with("hint: move them out of "), "{out}");
}
