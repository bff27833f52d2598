//! wtenv's own diagnostics: the level `-v`/`-vv` choose without
//! `WTENV_LOG`, and no colour codes on a pipe unless asked.

use crate::support::{TestEnv, run};

/// Without `WTENV_LOG`, `-v`/`-vv` choose the level of wtenv's own
/// diagnostics (the subscriber that prints them is made at the first one),
/// and a plain run prints none.
#[test]
fn verbosity_flags_choose_the_diagnostics_without_wtenv_log() {
    let t = TestEnv::new();
    let count = |out: &crate::support::Run, level: &str| {
        out.stderr.lines().filter(|l| l.contains(level)).count()
    };
    let plain = run(&mut t.wtenv(&["env"]));
    assert_eq!(
        (plain.code, plain.stderr.as_str()),
        (Some(0), ""),
        "{plain}"
    );
    let info = run(&mut t.wtenv(&["-v", "env"]));
    assert_eq!((info.code, count(&info, "DEBUG")), (Some(0), 0), "{info}");
    let debug = run(&mut t.wtenv(&["-vv", "env"]));
    assert_eq!(debug.code, Some(0), "{debug}");
    assert!(count(&debug, "DEBUG") >= 2, "{debug}");
    assert!(
        debug
            .stderr
            .contains("fast path: every service has its port"),
        "{debug}"
    );
    // Each line once, in the formatter's layout: level, then message.
    let line = debug
        .stderr
        .lines()
        .find(|l| l.contains("fast path"))
        .unwrap();
    assert!(line.trim_start().starts_with("DEBUG fast path"), "{line:?}");
}

#[test]
fn diagnostics_on_a_pipe_have_no_colour_codes_unless_asked() {
    let t = TestEnv::new();
    let out = run(t.wtenv(&["env"]).env("WTENV_LOG", "wtenv=debug"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("DEBUG"),
        "no diagnostics to check: {out}"
    );
    assert!(
        !out.stderr.contains('\x1b'),
        "escape codes on a pipe: {:?}",
        out.stderr
    );
    let out = run(t
        .wtenv(&["--color", "always", "env"])
        .env("WTENV_LOG", "wtenv=debug"));
    assert!(
        out.stderr.contains('\x1b'),
        "--color always gave no colour: {out}"
    );
}
