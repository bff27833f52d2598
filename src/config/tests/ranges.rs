//! Port ranges in a config: the syntax of one, overflow ranges, overlaps.

use super::*;

#[test]
fn range_errors_name_the_problem() {
    assert!(
        PortRange::parse("5099-5000")
            .unwrap_err()
            .contains("reversed")
    );
    assert!(
        PortRange::parse("80-90")
            .unwrap_err()
            .contains("below 1024")
    );
    assert!(PortRange::parse("abc").unwrap_err().contains("START-END"));
    assert_eq!(
        PortRange::parse("5000-70000").unwrap_err(),
        "range \"5000-70000\": 70000 is not a port; ports go up to 65535"
    );
    assert!(
        PortRange::parse("99999999999999999999999-5000")
            .unwrap_err()
            .contains(": 99999999999999999999999 is not a port")
    );
    assert!(
        PortRange::parse("5000-7e4")
            .unwrap_err()
            .contains("START-END")
    );
    // Digits only: Rust's parse takes a sign, and `trim` took spaces.
    for text in [
        "+21000-21099",
        "21000-+21099",
        "021000-21099",
        "21000-021099",
        "00000000000000070000-5000",
        " 21000 - 21001 ",
        "21000 -21001",
        "21000-21001\n",
        "\u{a0}21000-21001",
        "21000-\u{0661}",
        "-21000-21001",
        "21000--21001",
        "21000-21001-21002",
        "-",
        "",
    ] {
        assert_eq!(
            PortRange::parse(text).unwrap_err(),
            format!("expected \"START-END\" (e.g. \"5000-5099\"), got {text:?}")
        );
    }
    assert_eq!(
        PortRange::parse("21000-21099"),
        Ok(PortRange {
            start: 21000,
            end: 21099
        })
    );
    assert_eq!(
        PortRange::parse("65535-65535"),
        Ok(PortRange {
            start: 65535,
            end: 65535
        })
    );
    assert!(
        PortRange::parse("0-1100")
            .unwrap_err()
            .contains("below 1024")
    );
}

#[test]
fn overlapping_purposes_are_refused() {
    let e = parse(
        "[purposes]\na = \"5000-5100\"\nb = \"5100-5200\"\n[worktrees]\ndefault_purpose=\"a\"",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("purposes.b: range 5100-5200 overlaps purposes.a"),
        "{e}"
    );
}

#[test]
fn a_purpose_lists_overflow_ranges_in_order_in_toml_and_json() {
    let toml =
        parse("[purposes]\nfeature = \"5000-5001\"\nreview = [\"5400-5499\", \"15400-15499\"]")
            .unwrap();
    let json = Config::parse(
        Path::new("wtenv.json"),
        r#"{"purposes":{"feature":"5000-5001","review":["5400-5499","15400-15499"]}}"#,
    )
    .unwrap();
    for c in [&toml, &json] {
        let review = c.purpose_ranges("review").unwrap();
        assert_eq!(review.to_string(), "5400-5499, 15400-15499");
        assert_eq!(review.label(), "ranges 5400-5499, 15400-15499");
        assert!(review.contains(15400) && !review.contains(5500));
        assert_eq!(c.purposes["feature"].label(), "range 5000-5001");
    }
}

/// Every `cd` reads the config: tens of thousands of ranges load in one
/// pass, and an overlap among them names the range it always named (the
/// first by purpose name, then the purpose's own earlier ranges), not
/// merely the nearest one.
#[test]
fn thirty_thousand_ranges_load_and_an_overlap_among_them_is_named() {
    let many: Vec<String> = (2000..32000).map(|p| format!("\"{p}-{p}\"")).collect();
    let feature = format!("[purposes]\nfeature = [{}", many.join(", "));
    let c = parse(&format!("{feature}]\na0 = \"1024-1099\"\n")).unwrap();
    let ranges = c.purpose_ranges("feature").unwrap();
    assert_eq!(ranges.len(), 30_000);
    assert!(
        ranges
            .iter()
            .zip(2000..)
            .all(|(r, p)| r.start == p && r.end == p)
    );
    assert_eq!(c.purposes["a0"].label(), "range 1024-1099");

    let e = parse(&format!(
        "{feature}]\na0 = \"1024-1099\"\nz = \"1050-2500\"\n"
    ))
    .unwrap_err();
    assert!(
        e.to_string().ends_with(
            "purposes.z: range 1050-2500 overlaps purposes.a0 (1024-1099); ranges must be disjoint"
        ),
        "{e}"
    );
    let e = parse(&format!("{feature}, \"2500-2600\"]\n")).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "purposes.feature: range 2500-2600 overlaps purposes.feature (2500-2500); ranges must be disjoint"
        ),
        "{e}"
    );
}

#[test]
fn overflow_ranges_must_be_disjoint_and_not_empty() {
    let e = parse("[purposes]\nfeature = [\"5000-5099\", \"5050-5150\"]").unwrap_err();
    assert!(
        e.to_string()
            .contains("purposes.feature: range 5050-5150 overlaps purposes.feature (5000-5099)"),
        "{e}"
    );
    let e = parse("[purposes]\nfeature = \"5000-5099\"\nreview = [\"6000-6009\", \"5090-5100\"]")
        .unwrap_err();
    assert!(e.to_string().contains("overlaps purposes.feature"), "{e}");
    let e = parse("[purposes]\nfeature = []").unwrap_err();
    assert!(e.to_string().contains("got an empty array"), "{e}");
    let e = parse("[purposes]\nfeature = [\"5000-5099\", 7]").unwrap_err();
    assert!(e.to_string().contains("expected a string"), "{e}");
}
