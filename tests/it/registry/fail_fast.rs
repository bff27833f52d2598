//! Fail fast (allocation rule 3): a port held on the system but free in
//! the registry is the conflict message, one holder line per port, with
//! nothing allocated; `--skip-occupied` (or the config key) takes the next
//! free port instead.

use crate::support::{HttpServer, PyListener, TestEnv, run};

/// Port 0 of the block is another worktree's; 1, 2 and 3 are held by
/// listeners the registry does not know. The command fails with the conflict
/// three lines, then exactly one holder line per port, and writes nothing.
#[test]
fn conflict_message_is_the_seeds_with_one_holder_line_per_port_and_allocates_nothing() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let out = run(&mut t.wtenv_in(&other, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    let (p1, p2, p3) = (t.ports.port(1), t.ports.port(2), t.ports.port(3));
    let elsewhere = t.root().join("home");
    let listeners = [
        PyListener::start(&elsewhere, "4", "127.0.0.1", p1, ""),
        PyListener::start(&elsewhere, "6", "::", p2, ""),
        PyListener::start(&elsewhere, "6", "::1", p3, ""),
    ];
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!(
                "Port conflict detected in feature range {}.",
                t.ports.range()
            )
            .as_str(),
            format!("Ports free in registry but occupied on system: {p1}, {p2}, {p3}.").as_str(),
            "Run 'wtenv validate --verify-ports' to detect and clean stale allocations.",
        ],
        "{out}"
    );
    // The listeners' command lines hold newlines (python3 -c SCRIPT): each
    // holder must still be one line.
    assert_eq!(lines.len(), 7, "not one line per conflicting port: {out}");
    assert_eq!(
        lines[6],
        "hint: to take the next free port instead, pass --skip-occupied or set [allocation] skip_occupied = true in wtenv.toml",
        "{out}"
    );
    for ((line, port), l) in lines[3..6].iter().zip([p1, p2, p3]).zip(&listeners) {
        let prefix = format!("  port {port}: pid {} (", l.pid());
        let suffix = format!(") in {}", elsewhere.display());
        assert!(
            line.starts_with(&prefix) && line.ends_with(&suffix),
            "{line:?} in {out}"
        );
        assert!(line.contains("python3"), "{line:?}");
    }
    assert_eq!(
        std::fs::read(t.registry_path()).unwrap(),
        before,
        "the failed env wrote to the registry"
    );
}

#[test]
fn skip_occupied_flag_takes_the_next_free_port() {
    let t = TestEnv::new();
    let _busy = PyListener::start(&t.root(), "4", "0.0.0.0", t.ports.start, "");
    let out = run(&mut t.wtenv(&["allocate", "--service", "x", "--skip-occupied"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("{}\n", t.ports.port(1)));
    let out = run(&mut t.wtenv(&["env", "--skip-occupied"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.port(2))),
        "{out}"
    );
}

/// The conflict's hint says to pass --skip-occupied: every command that
/// allocates takes it, and following the hint takes the next free port.
#[test]
fn every_allocating_command_takes_the_skip_occupied_its_conflict_hint_names() {
    let t = TestEnv::new();
    t.write_config("[services.app]\nrun = \"echo $APP_PORT\"\n");
    t.git(&["commit", "-qam", "a service"]);
    let _busy = HttpServer::start(&t.root(), t.ports.port(0));
    let dir = t.root().join("units");
    let dir = dir.to_str().unwrap();
    // What the next free port is after each: `run` and `up` give back at
    // exit the port they allocated for themselves, so the next takes it
    // again.
    let cases: [(&[&str], &[&str], u16); 5] = [
        (
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "a",
                "--ports",
            ],
            &[],
            1,
        ),
        (&["enter", "b"], &[], 2),
        (&["run"], &["--", "sh", "-c", "echo \"$APP_PORT\""], 3),
        (&["up"], &[], 3),
        (&["export", "systemd", dir], &[], 3),
    ];
    for (command, rest, next) in cases {
        let refused = run(&mut t.wtenv(&[command, rest].concat()));
        assert_eq!(refused.code, Some(1), "{refused}");
        let hint = refused.stderr.lines().last().unwrap_or_default();
        assert!(
            hint.starts_with("hint: to take the next free port instead, pass --skip-occupied "),
            "{refused}"
        );
        let out = run(&mut t.wtenv(&[command, &["--skip-occupied"], rest].concat()));
        assert_eq!(out.code, Some(0), "{command:?} --skip-occupied: {out}");
        let port = t.ports.port(next);
        if command[0] == "run" {
            assert_eq!(out.stdout, format!("{port}\n"), "{out}");
        } else if command[0] == "up" {
            assert!(out.stdout.contains(&format!("app | {port}\n")), "{out}");
        } else {
            assert!(
                t.allocations().iter().any(|(p, _, _)| *p == port),
                "{command:?} --skip-occupied did not take {port}: {out}"
            );
        }
    }
}

#[test]
fn skip_occupied_config_key_takes_the_next_free_port() {
    let t = TestEnv::new();
    t.write_config("[allocation]\nskip_occupied = true\n");
    let _busy = PyListener::start(&t.root(), "6", "::", t.ports.start, "");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export PORT='{}'", t.ports.port(1))),
        "{out}"
    );
    assert!(out.stderr.is_empty(), "{out}");
}

/// `--skip-occupied` with no free port left because the free ones are
/// occupied said `no free port left in feature range A-B` with the hint
/// about stale allocations: the occupied ports were never named. The
/// message now names each port it skipped, with its holder (as the
/// conflict message does), and the hint says to stop them or widen the
/// range; nothing is allocated.
#[test]
fn a_range_its_occupied_ports_exhaust_names_them_and_their_holders() {
    let t = TestEnv::new();
    let (p0, p1) = (t.ports.port(0), t.ports.port(1));
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purposes]\nfeature = \"{p0}-{p1}\"\n"),
    )
    .unwrap();
    let elsewhere = t.root().join("home");
    let listeners = [
        PyListener::start(&elsewhere, "4", "127.0.0.1", p0, ""),
        PyListener::start(&elsewhere, "6", "::", p1, ""),
    ];
    let out = run(&mut t.wtenv(&["env", "--skip-occupied"]));
    assert_eq!(out.code, Some(1), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        format!(
            "error: no free port left in feature range {p0}-{p1}; occupied on the system, so skipped:"
        ),
        "{out}"
    );
    for ((line, port), l) in lines[1..3].iter().zip([p0, p1]).zip(&listeners) {
        let prefix = format!("  port {port}: pid {} (", l.pid());
        let suffix = format!(") in {}", elsewhere.display());
        assert!(
            line.starts_with(&prefix) && line.ends_with(&suffix),
            "{line:?} in {out}"
        );
    }
    assert_eq!(
        lines[3],
        "hint: stop what holds those ports, or widen the range (or add an overflow range) in wtenv.toml",
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{out}");
}
