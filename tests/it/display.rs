//! Text wtenv did not write (paths, branch names, command lines) as the
//! user sees it: escaped in messages and tables, so it cannot drive the
//! terminal or forge a line; exact in JSON and the registry, which are
//! data.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use crate::supervise::Wtenv;
use serde_json::json;

use crate::support::{PyListener, Run, TestEnv, run, wait_for};

/// A process's command line is data: the registry and JSON carry it as
/// the process has it, and messages and tables show it escaped. `env
/// --hold` recorded it escaped, JSON gave a listener's escaped, and
/// `remove` printed the command of a `run`'s hold as it stood, escape
/// sequence and newline included.
#[test]
fn a_command_line_is_exact_in_json_and_the_registry_and_escaped_where_shown() {
    let t = TestEnv::new();
    let wt = t.add_worktree("held");
    let script = "import time\ntime.sleep(60)  # \x1b[2J";
    let (stdout, stderr) = (t.root().join("run-out"), t.root().join("run-err"));
    let child = t
        .wtenv_in(&wt, &["run", "--", "python3", "-c", script])
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let holder = Wtenv {
        child,
        stdout,
        stderr,
    };
    // The hold names wtenv's `run`, whose pid it records, its words quoted
    // as a shell reads them back.
    let line = format!("wtenv run -- python3 -c '{script}'");
    // Its hold, with its group once the command runs.
    let held = wait_for(Duration::from_secs(10), || {
        t.registry_path().exists() && t.registry()["allocations"][0]["holders"][0]["pgid"].is_u64()
    });
    assert!(held, "no hold recorded: {}", holder.stderr_text());
    let port = t.ports.port(0);
    let listener = PyListener::start(&wt, "4", "127.0.0.1", port, "");
    let pid = listener.pid().to_string();
    let out = run(&mut t.wtenv_in(&wt, &["env", "--hold", &pid]));
    assert_eq!(out.code, Some(0), "{out}");
    // The listener's command line, as python3 has it and as it is shown.
    let (raw, shown) = ("import socket,sys,time\ns=", r"import socket,sys,time\ns=");

    let holds = t.registry()["allocations"][0]["holders"].clone();
    let command = |pid: u32| {
        holds
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["pid"] == pid)
            .unwrap_or_else(|| panic!("no hold of {pid}: {holds}"))["command"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(command(holder.pid()), line, "{holds}");
    assert!(command(listener.pid()).contains(raw), "{holds}");

    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let service = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == wt.to_str().unwrap())
        .unwrap()["services"][0]
        .clone();
    let listening = service["listeners"][0]["command"].as_str().unwrap();
    assert!(listening.contains(raw), "{json}");
    let held_by = |pid: u32| {
        service["holds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["pid"] == pid)
            .unwrap()["command"]
            .clone()
    };
    assert_eq!(held_by(holder.pid()), line.as_str(), "{json}");
    assert!(
        held_by(listener.pid()).as_str().unwrap().contains(raw),
        "{json}"
    );

    // The table: one line a row, the listener's command escaped.
    let table = run(&mut t.wtenv(&["list"]));
    assert_eq!(table.code, Some(0), "{table}");
    assert!(!table.stdout.contains('\x1b'), "{table}");
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[2].starts_with(&format!("{}  ", wt.display())) && rows[2].contains(shown),
        "{table}"
    );

    // `remove` names each process using the worktree, one line each, its
    // command escaped: the hold of `run`, the listener (held and
    // listening), and the command `run` runs there.
    let out = run(&mut t.wtenv(&["remove", "held"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!out.stderr.contains('\x1b'), "{out}");
    // (python3 may be a shim that runs another: its path then starts the
    // command lines of the processes.)
    let escaped = r"python3 -c import time\ntime.sleep(60)  # \u{1b}[2J";
    let line_of = |what: &str| {
        out.stderr
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?}: {out}"))
    };
    assert!(
        line_of(&format!("held by pid {}: ", holder.pid()))
            .ends_with(r"wtenv run -- python3 -c 'import time\ntime.sleep(60)  # \u{1b}[2J'"),
        "{out}"
    );
    assert!(
        line_of(&format!("held by pid {pid}: ")).contains(shown),
        "{out}"
    );
    assert!(
        line_of(&format!("listening: pid {pid} ")).contains(shown),
        "{out}"
    );
    assert!(
        line_of("working directory inside")
            .ends_with(&format!("{escaped}: working directory inside")),
        "{out}"
    );
    for l in out.stderr.lines() {
        assert!(
            ["error: worktree ", "  port ", "  pid ", "hint: "]
                .iter()
                .any(|p| l.starts_with(p)),
            "a line of its own: {l:?}\n{out}"
        );
    }
    assert!(wt.exists());
}

/// A worktree whose branch holds U+202E (right-to-left override: the
/// branch `feature/<U+202E>gnp.exe` reads `feature/exe.png` on a terminal)
/// and whose path holds U+200B (zero width: invisible) beside a literal
/// backslash-n. `list`'s table escapes both, and then the path's
/// backslash too, so that its `\\n` cannot read as the escaped newline
/// `\n`; `--json` keeps both names exact. (Git refuses a backslash in a
/// branch name, so the path holds it.) A path with a backslash and
/// nothing else to escape is shown as it is. The table showed the
/// branch and path raw: the rest of the row read backwards, and the
/// path like its neighbour's.
#[test]
fn list_escapes_bidi_and_invisible_characters_and_then_backslashes_too() {
    let t = TestEnv::new();
    let branch = "feature/\u{202e}gnp.exe";
    let path = t.root().join("wt\\n\u{200b}x");
    t.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        branch,
        path.to_str().unwrap(),
    ]);
    let plain = t.root().join("plain\\n");
    t.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "plain",
        plain.to_str().unwrap(),
    ]);

    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let listed = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["branch"] == branch)
        .unwrap_or_else(|| panic!("{branch:?} not listed: {json}"))
        .clone();
    assert_eq!(listed["path"], path.to_str().unwrap(), "{json}");
    assert!(json.stdout.contains("\u{202e}"), "{json}");

    let table = run(&mut t.wtenv(&["list"]));
    assert_eq!(table.code, Some(0), "{table}");
    assert!(!table.stdout.contains(['\u{202e}', '\u{200b}']), "{table}");
    let root = t.root().display().to_string();
    // Each row's PATH and BRANCH cells (no cell holds two spaces).
    let rows: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|r| {
            r.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .take(2)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 4, "{table}");
    let shown = [
        format!(r"{root}/wt\\n\u{{200b}}x"),
        r"feature/\u{202e}gnp.exe".to_owned(),
    ];
    assert!(rows.contains(&vec![&shown[0], &shown[1]]), "{table}");
    let shown = format!(r"{root}/plain\n");
    assert!(rows.contains(&vec![&shown, "plain"]), "{table}");
}

/// A base revision is text wtenv did not write: another's branch may hold
/// U+202E, which git accepts, and `create --branch` from it said
/// `created worktree ... from <base>` with the character raw, the rest of
/// the line reading backwards.
#[test]
fn create_names_its_base_escaped() {
    let t = TestEnv::new();
    let base = "theirs/\u{202e}gnp.exe";
    t.git(&["branch", base]);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "from-theirs",
        "--branch",
        base,
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains('\u{202e}'), "{out}");
    assert!(
        out.stderr
            .contains(r"on branch feature/from-theirs from theirs/\u{202e}gnp.exe"),
        "{out}"
    );
}

/// The registry is a file a user, a script or an older wtenv may have
/// edited: the names read from it (a service, a purpose, a worktree's
/// path, a key) are text wtenv did not write. Every command that reports
/// on it shows them escaped, each where it is put into the line (a
/// finding escaped whole on top would double the backslashes of its
/// escaped path); `--json` gives them exact. `release` and `remove` said
/// `released port ... (<service>)` raw, a registry refused for a port
/// recorded twice, or for a key it does not know, put the service or the
/// key raw into its error, and `validate`'s line showed the path's
/// escapes doubled (`\\u{1b}`) beside a service it had not escaped.
#[test]
fn names_read_from_the_registry_are_escaped_where_shown_and_exact_in_json() {
    let t = TestEnv::new();
    let hostile = "\x1b[2J\u{202e}";
    let wt = t.root().join(format!("wt{hostile}gnp"));
    t.git(&["worktree", "add", "-q", "-b", "plain", wt.to_str().unwrap()]);
    let (service, purpose) = (format!("w{hostile}eb"), format!("n{hostile}ew"));
    let (p0, p1) = (t.ports.port(0), t.ports.port(1));
    let planted = || {
        vec![
            t.record(p0, &service, "feature", &wt, true, json!([])),
            t.record(p1, "api", &purpose, &wt, true, json!([])),
        ]
    };
    let escaped = |text: &str| {
        text.replace('\x1b', r"\u{1b}")
            .replace('\u{202e}', r"\u{202e}")
    };
    let (service_shown, purpose_shown) = (escaped(&service), escaped(&purpose));
    let wt_shown = escaped(wt.to_str().unwrap());
    // No raw character on the terminal, and no escape escaped twice.
    let clean = |out: &Run| {
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains(['\x1b', '\u{202e}']), "raw: {out}");
            assert!(!text.contains(r"\\u{"), "escaped twice: {out}");
        }
    };
    t.write_registry(planted());

    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(1), "{out}");
    clean(&out);
    let finding = format!(
        "error: service-removed: port {p0} ({service_shown}) of {wt_shown}: service {service_shown} is not declared in the worktree's config (stale) [fixable: run with --fix]"
    );
    assert!(out.stdout.lines().any(|l| l == finding), "{out}");
    assert!(
        out.stdout
            .contains(&format!("purpose \"{purpose_shown}\" is not configured")),
        "{out}"
    );
    // The tables (`list` shows the worktree's purpose, not a record's).
    for (args, purpose) in [
        (&["validate", "-v"][..], true),
        (&["ports"], true),
        (&["list"], false),
    ] {
        let out = run(&mut t.wtenv(args));
        clean(&out);
        let shown = [&service_shown, &wt_shown, &purpose_shown];
        for shown in &shown[..2 + usize::from(purpose)] {
            assert!(out.stdout.contains(shown.as_str()), "{args:?}: {out}");
        }
    }

    // A reservation a process outside its worktree listens on.
    let listener = PyListener::start(&t.root(), "4", "127.0.0.1", p0, "");
    let out = run(&mut t.wtenv(&["conflicts"]));
    drop(listener);
    assert_eq!(out.code, Some(1), "{out}");
    clean(&out);
    assert!(
        out.stdout
            .contains(&format!("; reserved for {service_shown} of {wt_shown}\n")),
        "{out}"
    );

    // JSON is data: the names as the registry has them.
    let json_of = |args: &[&str]| {
        let out = run(&mut t.wtenv(args));
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let doc = json_of(&["validate", "-v", "--json"]);
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "service-removed" && f["port"] == p0)
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(finding["service"], service.as_str(), "{doc}");
    assert_eq!(finding["worktree"], wt.to_str().unwrap(), "{doc}");
    assert!(
        doc["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["purpose"] == purpose.as_str()),
        "{doc}"
    );
    let doc = json_of(&["ports", "--json"]);
    let first = &doc["allocations"][0];
    assert_eq!(first["service"], service.as_str(), "{doc}");
    assert_eq!(first["worktree"], wt.to_str().unwrap(), "{doc}");
    assert_eq!(doc["allocations"][1]["purpose"], purpose.as_str(), "{doc}");
    let doc = json_of(&["list", "--json"]);
    let listed = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == wt.to_str().unwrap())
        .unwrap_or_else(|| panic!("{doc}"));
    assert!(
        listed["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["service"] == service.as_str()),
        "{doc}"
    );

    // What `release` and `remove` say they released.
    let released = format!("released port {p0} ({service_shown})");
    let out = run(&mut t.wtenv_in(&wt, &["release"]));
    assert_eq!(out.code, Some(0), "{out}");
    clean(&out);
    assert!(
        out.stderr.contains(&format!("{released} of {wt_shown}\n")),
        "{out}"
    );
    t.write_registry(planted());
    let out = run(&mut t.wtenv(&["remove", wt.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    clean(&out);
    assert!(out.stderr.lines().any(|l| l == released), "{out}");

    // A registry refused for what it holds names it escaped.
    let mut twice = planted();
    twice[1] = t.record(p0, "api", "feature", &t.repo, true, json!([]));
    t.write_registry(twice);
    let out = run(&mut t.wtenv(&["ports"]));
    assert_eq!(out.code, Some(2), "{out}");
    clean(&out);
    assert!(
        out.stderr.contains(&format!(
            "it records port {p0} twice (service {service_shown} of {wt_shown}, and service api of "
        )),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(2), "{out}");
    clean(&out);
    assert!(
        out.stdout.contains(&format!(
            "port {p0} is also allocated to {service_shown} of {wt_shown} "
        )),
        "{out}"
    );
    let mut unknown = planted();
    unknown[0][format!("x{hostile}y")] = json!(1);
    t.write_registry(unknown);
    let out = run(&mut t.wtenv(&["ports"]));
    assert_eq!(out.code, Some(2), "{out}");
    clean(&out);
    assert!(
        out.stderr.contains(&format!(
            "has a field this wtenv does not know, `{}`",
            escaped(&format!("x{hostile}y"))
        )),
        "{out}"
    );
}

/// `--color always|never` colours clap's own output too (help, usage
/// errors), as its help says: it was never handed to clap, so `never`
/// under CLICOLOR_FORCE (clap's stand-in for a terminal) still coloured
/// them and `always` into a pipe did not. Without the flag, clap's own
/// choice stands.
#[test]
fn color_always_and_never_apply_to_clap_help_and_usage_errors() {
    let t = TestEnv::new();
    let coloured = |text: &str| text.contains("\u{1b}[");
    let cases: [(&[&str], bool, bool); 6] = [
        // (args, CLICOLOR_FORCE, coloured)
        (&["--color", "always", "list", "--jsn"], false, true),
        (&["list", "--color=always", "--help"], false, true),
        (&["--color", "never", "list", "--jsn"], true, false),
        (&["--color=never", "list", "--help"], true, false),
        (&["list", "--jsn"], true, true),
        (&["list", "--jsn"], false, false),
    ];
    for (args, force, expected) in cases {
        let mut cmd = t.wtenv(args);
        if force {
            cmd.env("CLICOLOR_FORCE", "1");
        }
        let out = run(&mut cmd);
        let text = if args.contains(&"--help") {
            assert_eq!(out.code, Some(0), "{args:?}: {out}");
            &out.stdout
        } else {
            assert_eq!(out.code, Some(1), "{args:?}: {out}");
            assert!(out.stderr.contains("--jsn"), "{args:?}: {out}");
            &out.stderr
        };
        assert!(text.contains("Usage:"), "{args:?}: {out}");
        assert_eq!(coloured(text), expected, "{args:?} force {force}: {out}");
    }
}

/// `ports` and `list` fit a terminal of 90 columns that reports 0 rows
/// (`stty cols 90` in a pty of no size, as `script` makes one): the
/// column count alone is the width. They printed every cell whole, as
/// in a pipe, because the size was taken only with both counts set.
#[test]
fn ports_and_list_fit_a_terminal_that_reports_columns_but_no_rows() {
    let t = TestEnv::new();
    let port = crate::supervise::reserve_app(&t);
    let long = format!("import time # {}", "x".repeat(150));
    let _listener = PyListener::start(&t.repo, "4", "127.0.0.1", port, &long);
    let wtenv = env!("CARGO_BIN_EXE_wtenv");
    let mut script = std::process::Command::new("script");
    t.apply_env(&mut script);
    let out = run(script
        .current_dir(&t.repo)
        .stdin(Stdio::null())
        .args([
            "-qc",
            &format!("stty cols 90 rows 0; stty size; {wtenv} ports; {wtenv} list"),
        ])
        .arg("/dev/null"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.starts_with("0 90\r\n"), "{out}");
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(&port.to_string()) && l.contains("listening (pid "))
        .collect();
    assert_eq!(rows.len(), 2, "a row in ports and one in list:\n{out}");
    for row in rows {
        let row = row.trim_end_matches('\r');
        assert!(row.contains('…'), "not shortened: {row:?}\n{out}");
        // The state cell is cut (to 28 characters at the least, which
        // a long worktree path can push past 90).
        assert!(!row.contains(&"x".repeat(20)), "whole: {row:?}");
    }
}
