//! The exit codes are the README's: its "Exit codes" table is parsed, and
//! for every kind of error wtenv has (the variants of `Error` in
//! src/error.rs, read from the source so that a new kind without a case
//! here fails) a real case through the binary must exit with the code the
//! table gives its meaning, saying what only that error says (a stable
//! fragment of its message: the same code from another error fails); every
//! code of the table must be produced by at least one case.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::snapshots::{one_port_for_two_services, two_services};
use crate::supervise::PATIENCE;
use crate::support::{HttpServer, Run, TestEnv, run, wait_for};

/// How a case must end: a code, or death by a signal (what a shell shows
/// as 128+N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Code(i32),
    Signal(i32),
}

impl End {
    /// The README row this ending belongs to.
    fn row(self) -> String {
        match self {
            End::Code(c) => c.to_string(),
            End::Signal(_) => "128+N".into(),
        }
    }

    fn of(out: &Run) -> Option<End> {
        match (out.code, out.signal) {
            (Some(c), _) => Some(End::Code(c)),
            (None, Some(s)) => Some(End::Signal(s)),
            _ => None,
        }
    }
}

/// The README's table: each code (`126 / 127` is two) with its meaning.
fn readme_table() -> BTreeMap<String, String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("README has an \"Exit codes\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [codes, meaning] = cells[..] else {
            panic!("README exit-code row with other than 2 cells: {line}");
        };
        if codes == "code" || codes.starts_with("---") {
            continue;
        }
        for code in codes.split('/').map(str::trim) {
            table.insert(code.to_owned(), meaning.to_owned());
        }
    }
    table
}

/// Kinds the binary reaches only through a race, with no case here: each
/// is tested where it is made. `PortInUse`: a port taken between the
/// check `run --sockets` and `up` make of their ports (a busy one is
/// `Refused`, above) and their bind (`sockets::tests`, a real socket).
const RACE_ONLY: [&str; 1] = ["PortInUse"];

/// The variants of `Error`, read from src/error.rs.
fn error_variants() -> BTreeSet<String> {
    let source = include_str!("../../src/error.rs");
    let body = source
        .split("pub enum Error {")
        .nth(1)
        .expect("src/error.rs defines `pub enum Error`");
    let body = &body[..body.find("\n}").unwrap()];
    body.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// What a case's output must show for its ending to be the one it names:
/// a stable fragment of the message, on the stream wtenv writes it to, or
/// nothing at all (an ending wtenv says nothing about). The code alone
/// would let a different error with the same code pass.
#[derive(Debug, Clone, Copy)]
enum Says {
    Stderr(&'static str),
    Stdout(&'static str),
    Nothing,
}

impl Says {
    fn shown_by(self, out: &Run) -> bool {
        match self {
            Says::Stderr(fragment) => out.stderr.contains(fragment),
            Says::Stdout(fragment) => out.stdout.contains(fragment),
            Says::Nothing => out.stdout.is_empty() && out.stderr.is_empty(),
        }
    }
}

/// A case: the error kind it triggers (`None`: an ending that is not an
/// error of wtenv's, e.g. a child's exit), the ending the README gives
/// its meaning, what its output says that only that error says, and how
/// the real binary is brought there.
struct Case {
    name: &'static str,
    kind: Option<&'static str>,
    expected: End,
    says: Says,
    trigger: fn() -> Run,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "env prints the ports",
            kind: None,
            expected: End::Code(0),
            says: Says::Stdout("export PORT='"),
            trigger: || {
                let t = TestEnv::new();
                run(&mut t.wtenv(&["env"]))
            },
        },
        Case {
            name: "a corrupt registry",
            kind: Some("RegistryUnusable"),
            expected: End::Code(2),
            says: Says::Stderr("registry.json cannot be used: it is not valid JSON"),
            trigger: || {
                let t = TestEnv::new();
                std::fs::create_dir_all(t.state_dir()).unwrap();
                std::fs::write(t.registry_path(), "{\"version\": 1, \"allocations\": [").unwrap();
                std::fs::set_permissions(t.registry_path(), PermissionsExt::from_mode(0o600))
                    .unwrap();
                run(&mut t.wtenv(&["env"]))
            },
        },
        Case {
            name: "the registry lock held past the wait",
            kind: Some("RegistryBusy"),
            expected: End::Code(2),
            says: Says::Stderr("error: could not lock registry "),
            trigger: || {
                let t = TestEnv::new();
                std::fs::create_dir_all(t.state_dir()).unwrap();
                let lock = std::fs::File::create(t.state_dir().join("registry.lock")).unwrap();
                lock.lock().unwrap();
                run(t.wtenv(&["list"]).env("WTENV_LOCK_TIMEOUT", "100ms"))
            },
        },
        Case {
            name: "the probe lock held past the wait",
            kind: Some("LockBusy"),
            expected: End::Code(2),
            says: Says::Stderr("probe.lock: busy for 100ms"),
            trigger: || {
                let t = TestEnv::new();
                std::fs::create_dir_all(t.state_dir()).unwrap();
                let lock = std::fs::File::create(t.state_dir().join("probe.lock")).unwrap();
                lock.lock().unwrap();
                run(t.wtenv(&["env"]).env("WTENV_LOCK_TIMEOUT", "100ms"))
            },
        },
        Case {
            name: "a port occupied outside the registry",
            kind: Some("Conflict"),
            expected: End::Code(1),
            says: Says::Stderr("Port conflict detected in feature range "),
            trigger: || {
                let t = TestEnv::new();
                let _squatter = HttpServer::start(&t.repo, t.ports.port(0));
                run(&mut t.wtenv(&["env"]))
            },
        },
        Case {
            name: "a reserved port held by another worktree's process",
            kind: Some("ForeignHolder"),
            expected: End::Code(1),
            says: Says::Stderr("are held by processes outside it:\n"),
            trigger: || {
                let t = TestEnv::new();
                assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
                let other = t.add_worktree("other");
                let _intruder = HttpServer::start(&other, t.ports.port(0));
                run(&mut t.wtenv(&["env"]))
            },
        },
        Case {
            name: "run --sockets on a port its own worktree's process listens on",
            kind: Some("Refused"),
            expected: End::Code(1),
            says: Says::Stderr("error: ports of the services to start are already in use:"),
            trigger: || {
                let t = TestEnv::new();
                t.write_config("[services.web]\nsocket = true\n");
                assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
                let _own = HttpServer::start(&t.repo, t.ports.port(0));
                run(&mut t.wtenv(&["run", "--sockets", "--", "true"]))
            },
        },
        Case {
            name: "no free port left in the range",
            kind: Some("RangeExhausted"),
            expected: End::Code(1),
            says: Says::Stderr("error: no free port left in feature range "),
            trigger: || {
                let t = TestEnv::new();
                one_port_for_two_services(&t);
                run(&mut t.wtenv(&["env"]))
            },
        },
        Case {
            name: "a config that is not TOML",
            kind: Some("Config"),
            expected: End::Code(1),
            says: Says::Stderr("wtenv.toml:1:10: not valid TOML: "),
            trigger: || {
                let t = TestEnv::new();
                std::fs::write(t.repo.join("wtenv.toml"), "[purposes\n").unwrap();
                run(&mut t.wtenv(&["env"]))
            },
        },
        Case {
            name: "a failing post-checkout hook in create",
            kind: Some("Git"),
            expected: End::Code(1),
            says: Says::Stderr("git's post-checkout hook refused the new worktree"),
            trigger: || {
                let t = TestEnv::new();
                let hook = t.repo.join(".git/hooks/post-checkout");
                std::fs::write(&hook, "#!/bin/sh\nexit 1\n").unwrap();
                std::fs::set_permissions(&hook, PermissionsExt::from_mode(0o755)).unwrap();
                run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "x"]))
            },
        },
        Case {
            name: "an invalid identifier",
            kind: Some("Invalid"),
            expected: End::Code(1),
            says: Says::Stderr("error: invalid identifier \"a..b\"\n"),
            trigger: || {
                let t = TestEnv::new();
                run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "a..b"]))
            },
        },
        Case {
            name: "remove of a worktree that does not exist",
            kind: Some("NotFound"),
            expected: End::Code(1),
            says: Says::Stderr("error: no worktree \"no-such-worktree\" in this repository\n"),
            trigger: || {
                let t = TestEnv::new();
                run(&mut t.wtenv(&["remove", "no-such-worktree"]))
            },
        },
        Case {
            name: "create where the path exists",
            kind: Some("Refused"),
            expected: End::Code(1),
            says: Says::Stderr("feature-x already exists\n"),
            trigger: || {
                let t = TestEnv::new();
                let create = ["create", "--purpose", "feature", "--identifier", "x"];
                assert_eq!(run(&mut t.wtenv(&create)).code, Some(0));
                run(&mut t.wtenv(&create))
            },
        },
        Case {
            name: "up of a service whose health check never passes",
            kind: Some("Failed"),
            expected: End::Code(1),
            says: Says::Stderr("error: service web not ready after 1s: "),
            trigger: || {
                let t = TestEnv::new();
                t.write_config(
                    "[services.web]\nrun = \"sleep 60\"\nhealth = { cmd = \"false\" }\nready_timeout = \"1s\"\n",
                );
                run(&mut t.wtenv(&["up", "--grace", "5s"]))
            },
        },
        Case {
            name: "an unknown argument",
            kind: None,
            expected: End::Code(1),
            says: Says::Stderr("error: unexpected argument '--no-such-flag' found\n"),
            trigger: || {
                let t = TestEnv::new();
                run(&mut t.wtenv(&["env", "--no-such-flag"]))
            },
        },
        Case {
            name: "a directory that cannot be made",
            kind: Some("Io"),
            expected: End::Code(1),
            says: Says::Stderr("error: could not create /dev/null/units: "),
            trigger: || {
                let t = TestEnv::new();
                t.write_config("[services.web]\nrun = \"true\"\n");
                run(&mut t.wtenv(&["export", "systemd", "/dev/null/units"]))
            },
        },
        Case {
            name: "Ctrl-C in the middle of create",
            kind: Some("Interrupted"),
            expected: End::Signal(2),
            says: Says::Nothing,
            trigger: interrupted_create,
        },
        Case {
            name: "validate: fixable errors remain",
            kind: None,
            expected: End::Code(1),
            says: Says::Stdout("error: worktree-gone: "),
            trigger: || {
                let t = TestEnv::new();
                let gone = t.root().join("gone");
                t.write_registry(vec![t.record(
                    t.ports.port(0),
                    "web",
                    "feature",
                    &gone,
                    true,
                    json!([]),
                )]);
                run(&mut t.wtenv(&["validate"]))
            },
        },
        Case {
            name: "validate: a critical finding",
            kind: None,
            expected: End::Code(2),
            says: Says::Stdout("critical: duplicate-port: "),
            trigger: || {
                let t = TestEnv::new();
                t.write_registry(vec![
                    t.record(t.ports.port(0), "web", "feature", &t.repo, true, json!([])),
                    t.record(t.ports.port(0), "api", "feature", &t.repo, true, json!([])),
                ]);
                run(&mut t.wtenv(&["validate"]))
            },
        },
        Case {
            name: "run: the child dies of SIGTERM",
            kind: None,
            expected: End::Signal(15),
            says: Says::Nothing,
            trigger: || {
                let t = TestEnv::new();
                run(&mut t.wtenv(&["run", "--", "sh", "-c", "kill -TERM $$"]))
            },
        },
        Case {
            name: "run: the command cannot be executed",
            kind: None,
            expected: End::Code(126),
            says: Says::Stderr(": permission denied (not executable)\n"),
            trigger: || {
                let t = TestEnv::new();
                let file = t.root().join("plain.txt");
                std::fs::write(&file, "not a program\n").unwrap();
                run(&mut t.wtenv(&["run", "--", file.to_str().unwrap()]))
            },
        },
        Case {
            name: "run: the command is not found",
            kind: None,
            expected: End::Code(127),
            says: Says::Stderr("error: could not run wtenv-no-such-command: command not found\n"),
            trigger: || {
                let t = TestEnv::new();
                two_services(&t);
                run(&mut t.wtenv(&["run", "--", "wtenv-no-such-command"]))
            },
        },
    ]
}

/// `create` whose post-checkout hook waits: SIGINT reaches wtenv while git
/// runs; it lets git finish, undoes everything, and dies of SIGINT.
fn interrupted_create() -> Run {
    let t = TestEnv::new();
    let started = t.root().join("hook-started");
    let go = t.root().join("hook-go");
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\n",
            started.display(),
            go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, PermissionsExt::from_mode(0o755)).unwrap();
    let child = t
        .wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--ports",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(PATIENCE, || started.exists()),
        "the hook did not start"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    // Let the signal land before git goes on (wtenv waits for git either way).
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let run = Run::of(out.status, out.stdout, out.stderr);
    assert!(
        !t.root().join("repo.worktrees/feature-x").exists(),
        "an interrupted create leaves nothing: {run}"
    );
    run
}

#[test]
fn every_error_kind_exits_with_the_code_the_readme_documents() {
    let table = readme_table();
    let cases = cases();
    let variants = error_variants();
    assert!(!variants.is_empty(), "no variant of Error found");

    let covered: BTreeSet<String> = cases
        .iter()
        .filter_map(|c| c.kind)
        .map(String::from)
        .collect();
    let untested: Vec<&String> = variants
        .difference(&covered)
        .filter(|v| !RACE_ONLY.contains(&v.as_str()))
        .collect();
    assert!(
        untested.is_empty(),
        "error kinds without a case here: {untested:?} (add one that triggers each through the binary)"
    );
    let stale: Vec<&String> = covered.difference(&variants).collect();
    assert!(
        stale.is_empty(),
        "cases name kinds Error no longer has: {stale:?}"
    );

    let mut failures = Vec::new();
    let mut produced = BTreeSet::new();
    for case in &cases {
        let row = case.expected.row();
        assert!(
            table.contains_key(&row),
            "case {:?} expects {:?}, which the README's table lacks",
            case.name,
            case.expected
        );
        let out = (case.trigger)();
        let got = End::of(&out);
        if got != Some(case.expected) {
            failures.push(format!(
                "{} ({}): expected {:?} ({}), got {got:?}\n{out}",
                case.name,
                case.kind.unwrap_or("-"),
                case.expected,
                table[&row]
            ));
        } else if !case.says.shown_by(&out) {
            failures.push(format!(
                "{} ({}): exited as expected, but not with the error it names: expected {:?}\n{out}",
                case.name,
                case.kind.unwrap_or("-"),
                case.says
            ));
        } else {
            produced.insert(row);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let unproduced: Vec<&String> = table.keys().filter(|k| !produced.contains(*k)).collect();
    assert!(
        unproduced.is_empty(),
        "README codes no case produces: {unproduced:?}"
    );
}

/// The table's rows are the ones wtenv's exit module names, and the
/// mapping is that module's (`Error::exit_code`).
#[test]
fn the_readme_table_lists_exactly_the_codes_of_the_exit_module() {
    use wtenv::exit;
    let table = readme_table();
    let codes: BTreeSet<String> = [
        exit::SUCCESS,
        exit::FAILURE,
        exit::REGISTRY,
        exit::NOT_EXECUTABLE,
        exit::NOT_FOUND,
    ]
    .iter()
    .map(|c| c.to_string())
    .chain([format!("{}+N", exit::SIGNAL_BASE)])
    .collect();
    let documented: BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(documented, codes);
}

/// Output stdout cannot take (`> /dev/full`, a full disk) is a failure:
/// exit 1 with the reason, never a success with the output lost. `--help`
/// and `--version`, which clap prints, exited 0 that way.
#[test]
fn output_that_stdout_cannot_take_is_exit_1_never_a_silent_success() {
    let t = TestEnv::new();
    for args in [
        &["env"][..],
        &["env", "--format", "json"],
        &["ports"],
        &["list", "--json"],
        &["hook", "bash"],
        &["completions", "fish"],
        &["--help"],
        &["--version"],
        &["env", "--help"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run(t.wtenv(args).stdout(full));
        assert_eq!(out.code, Some(1), "wtenv {args:?}: {out}");
        assert!(
            out.stderr.starts_with("error: could not write to stdout: ")
                && out.stderr.ends_with(
                    "\nhint: the output is lost: make room where stdout goes, or send it elsewhere\n"
                ),
            "wtenv {args:?}: {out}"
        );
    }
}

/// A reader gone before wtenv writes (`wtenv env | true`) is EPIPE to
/// wtenv, which takes it as success: never a death by SIGPIPE, which would
/// also kill a supervisor before it released its ports. wtenv's own
/// start-up ignores SIGPIPE (src/main.rs). Its children still start with
/// SIGPIPE at its default, as every program expects.
#[test]
fn a_reader_gone_is_epipe_and_success_never_a_death_by_sigpipe() {
    let t = TestEnv::new();
    for args in [&["env"][..], &["hook", "bash"], &["--help"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run(t.wtenv(args).stdout(writer));
        assert_eq!(
            (out.code, out.signal),
            (Some(0), None),
            "wtenv {args:?}: {out}"
        );
    }
    let out = run(&mut t.wtenv(&["run", "--", "cat", "/proc/self/status"]));
    assert_eq!(out.code, Some(0), "{out}");
    let ignored = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
        .expect("/proc/self/status has SigIgn");
    let sigpipe = 1 << (nix::sys::signal::Signal::SIGPIPE as u32 - 1);
    assert_eq!(ignored & sigpipe, 0, "the child ignores SIGPIPE: {out}");
}

/// Standard descriptors closed before wtenv starts are `/dev/null` to it,
/// as to any Rust program (wtenv's own start-up opens them: src/main.rs):
/// no file wtenv opens (the registry, a lock) takes the place of its
/// stdout or stderr, and the command succeeds. Its children inherit the
/// same `/dev/null`: a write of theirs to stdout or stderr succeeds.
#[test]
fn closed_standard_descriptors_are_dev_null_never_a_file_wtenv_opens() {
    let t = TestEnv::new();
    for args in [
        &["env"][..],
        &["run", "--", "sh", "-c", "echo out && echo err >&2"],
    ] {
        let mut cmd = std::process::Command::new("sh");
        t.apply_env(&mut cmd);
        cmd.current_dir(&t.repo)
            .args(["-c", "exec \"$@\" <&- >&- 2>&-", "sh"])
            .arg(env!("CARGO_BIN_EXE_wtenv"))
            .args(args);
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(0), "wtenv {args:?}: {out}");
        assert!(
            !t.allocations().is_empty(),
            "wtenv {args:?}: nothing reserved"
        );
        for entry in std::fs::read_dir(t.state_dir()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if path.extension().is_some_and(|e| e == "lock") {
                assert!(
                    bytes.is_empty(),
                    "wtenv {args:?} wrote into {}",
                    path.display()
                );
            } else if path.file_name().is_some_and(|n| n == "registry.json") {
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
            }
        }
    }
}
