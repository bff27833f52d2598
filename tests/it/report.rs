//! One error channel (README, "Messages"): every message goes through the
//! reporter, which applies `-q` and `--json` the same way in every command.

use crate::support::{PyListener, TestEnv, run};

fn create(t: &TestEnv, flags: &[&str], id: &str) -> crate::support::Run {
    let mut args = vec![
        "create",
        "--purpose",
        "feature",
        "--identifier",
        id,
        "--ports",
    ];
    args.extend_from_slice(flags);
    run(&mut t.wtenv(&args))
}

#[test]
fn notes_are_dropped_by_quiet_and_json_and_errors_keep_their_line() {
    let t = TestEnv::new();
    let plain = create(&t, &[], "plain");
    assert_eq!(plain.code, Some(0), "{plain}");
    assert!(plain.stderr.starts_with("created worktree "), "{plain}");
    assert!(
        plain
            .stderr
            .contains(&format!("reserved port {} (app)", t.ports.start)),
        "{plain}"
    );

    let quiet = create(&t, &["-q"], "quiet");
    assert_eq!(quiet.code, Some(0), "{quiet}");
    assert_eq!(quiet.stderr, "", "{quiet}");
    let json = create(&t, &["--json"], "json");
    assert_eq!(json.code, Some(0), "{json}");
    assert_eq!(json.stderr, "", "the JSON document says it: {json}");
    assert!(json.stdout.contains("\"ports\""), "{json}");

    // The same identifier again: an error, its hint only without -q.
    let again = create(&t, &[], "plain");
    assert_eq!(again.code, Some(1), "{again}");
    let taken = format!(
        "error: path {} already exists\n",
        t.root().join("repo.worktrees/feature-plain").display()
    );
    assert_eq!(
        again.stderr,
        format!("{taken}hint: choose another identifier or --path, or remove that directory\n"),
        "{again}"
    );
    let quiet = create(&t, &["-q"], "plain");
    assert_eq!(quiet.code, Some(1), "{quiet}");
    assert_eq!(quiet.stderr, taken, "{quiet}");
}

/// The conflict message is documented word for word, hint included: `-q`
/// leaves it whole.
#[test]
fn quiet_leaves_the_conflict_message_whole() {
    let t = TestEnv::new();
    let port = t.ports.start;
    let _l = PyListener::start(&t.root(), "4", "127.0.0.1", port, "");
    let loud = run(&mut t.wtenv(&["env"]));
    let quiet = run(&mut t.wtenv(&["-q", "env"]));
    assert_eq!(loud.code, Some(1), "{loud}");
    assert_eq!(quiet.code, Some(1), "{quiet}");
    assert!(
        loud.stderr.starts_with(&format!(
            "Port conflict detected in feature range {}.\n",
            t.ports.range()
        )),
        "{loud}"
    );
    assert!(
        loud.stderr.ends_with(
            "\nhint: to take the next free port instead, pass --skip-occupied or set [allocation] skip_occupied = true in wtenv.toml\n"
        ),
        "{loud}"
    );
    assert_eq!(quiet.stderr, loud.stderr);
}
