//! The worktree lifecycle through the real binary and real git: create
//! (all or nothing), enter, remove, list.

use std::collections::BTreeSet;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{HttpServer, PortBlock, PyListener, Run, TestEnv, run, wait_for};

/// Everything `create` could leave behind, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// Every path under the test's root, outside `.git` dirs' objects.
    files: BTreeSet<PathBuf>,
    branches: String,
    admin_entries: BTreeSet<String>,
    allocations: Vec<(u16, String, PathBuf)>,
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // The registry's lock and the state dir change on any read.
        if p.ends_with("objects") || p.ends_with("logs") || p.ends_with("state") {
            continue;
        }
        out.insert(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
    }
}

fn snapshot_of(t: &TestEnv, repo: &Path) -> Snapshot {
    let mut files = BTreeSet::new();
    walk(&t.root(), &mut files);
    // index and ORIG_HEAD-like files may be rewritten in place; presence is
    // what matters, and `files` records presence.
    let admin_entries = std::fs::read_dir(repo.join(".git/worktrees"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Snapshot {
        files,
        branches: t.git_in(repo, &["for-each-ref", "--format=%(refname)", "refs/heads"]),
        admin_entries,
        allocations: t.allocations(),
    }
}

fn snapshot(t: &TestEnv) -> Snapshot {
    snapshot_of(t, &t.repo)
}

/// Where `create` puts `<purpose>-<id>` by default: beside the main
/// worktree, in `<repo>.worktrees`.
fn default_path(t: &TestEnv, purpose: &str, id: &str) -> PathBuf {
    t.root()
        .join("repo.worktrees")
        .join(format!("{purpose}-{id}"))
}

fn create(t: &TestEnv, id: &str, extra: &[&str]) -> Run {
    let mut args = vec!["create", "--purpose", "feature", "--identifier", id];
    args.extend_from_slice(extra);
    run(&mut t.wtenv(&args))
}

fn branch_exists(t: &TestEnv, name: &str) -> bool {
    !t.git(&["branch", "--list", name]).trim().is_empty()
}

fn listed_by_git(t: &TestEnv, path: &Path) -> bool {
    t.git(&["worktree", "list", "--porcelain"])
        .lines()
        .any(|l| l.strip_prefix("worktree ") == Some(path.to_str().unwrap()))
}

/// Nothing of the worktree `<feature>-<id>` exists: no directory, no
/// branch, no `.git/worktrees` entry pointing at it, no allocation.
fn assert_nothing_of(t: &TestEnv, id: &str, context: &str) {
    let path = default_path(t, "feature", id);
    assert!(!path.exists(), "{context}: {} left", path.display());
    assert!(
        !branch_exists(t, &format!("feature/{id}")),
        "{context}: branch left"
    );
    assert!(!listed_by_git(t, &path), "{context}: git still lists it");
    if let Ok(entries) = std::fs::read_dir(t.repo.join(".git/worktrees")) {
        for e in entries.flatten() {
            let gitdir = std::fs::read_to_string(e.path().join("gitdir")).unwrap_or_default();
            assert!(
                !gitdir.contains(&format!("feature-{id}/"))
                    && !e
                        .file_name()
                        .to_string_lossy()
                        .starts_with(&format!("feature-{id}")),
                "{context}: .git/worktrees entry {:?} left",
                e.file_name()
            );
        }
    }
    assert!(
        t.allocations().iter().all(|(_, _, w)| w != &path),
        "{context}: allocation left: {:?}",
        t.allocations()
    );
}

// --- the four scenarios of the scripts wtenv replaces----------------------------------------

#[test]
fn create_makes_the_worktree_its_branch_and_reserves_its_ports() {
    let t = TestEnv::new();
    let out = create(&t, "login", &["--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let path = default_path(&t, "feature", "login");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["path"], path.to_str().unwrap());
    assert_eq!(doc["branch"], "feature/login");
    assert_eq!(doc["purpose"], "feature");
    assert_eq!(doc["identifier"], "login");
    assert_eq!(doc["ports"]["app"], t.ports.start);

    assert!(path.join("wtenv.toml").is_file(), "the checkout is there");
    assert!(listed_by_git(&t, &path));
    assert_eq!(
        t.git_in(&path, &["rev-parse", "--abbrev-ref", "HEAD"])
            .trim(),
        "feature/login"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), path.clone())]
    );
    // The new worktree's env sees the same port and the recorded purpose.
    let env = run(&mut t.wtenv_in(&path, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(
        env.stdout
            .contains(&format!("export PORT='{}'", t.ports.start)),
        "{env}"
    );
    assert!(
        env.stdout.contains("export WTENV_PURPOSE='feature'"),
        "{env}"
    );
    assert!(
        env.stdout.contains("export WTENV_IDENTIFIER='login'"),
        "{env}"
    );
    assert_eq!(t.allocations().len(), 1, "env kept the reservation");
}

#[test]
fn create_ports_fails_fast_on_a_held_port_with_the_seeds_message_and_leaves_nothing() {
    let t = TestEnv::new();
    let _server = HttpServer::start(&t.root(), t.ports.start);
    let before = snapshot(&t);
    let out = create(&t, "held", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    let expected = format!(
        "Port conflict detected in feature range {}.\n\
         Ports free in registry but occupied on system: {}.\n\
         Run 'wtenv validate --verify-ports' to detect and clean stale allocations.\n",
        t.ports.range(),
        t.ports.start
    );
    assert!(out.stderr.starts_with(&expected), "{out}");
    assert!(
        out.stderr
            .contains(&format!("port {}: pid {}", t.ports.start, _server.pid())),
        "the holder is named: {out}"
    );
    assert_nothing_of(&t, "held", "after a port conflict");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn validate_verify_ports_reports_the_stale_allocation_of_a_killed_service_and_fix_cleans_it() {
    let t = TestEnv::new();
    let out = create(&t, "svc", &["--ports"]);
    assert_eq!(out.code, Some(0), "{out}");
    let path = default_path(&t, "feature", "svc");
    let mut server = HttpServer::start(&path, t.ports.start);
    let live = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(live.code, Some(0), "{live}");
    assert!(
        !live.stdout.contains("stale"),
        "its service listens: {live}"
    );
    server.kill();

    let stale = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(stale.code, Some(0), "a warning is still valid: {stale}");
    assert!(
        stale.stdout.contains(&format!(
            "stale: port {} (app) of {}",
            t.ports.start,
            path.display()
        )),
        "{stale}"
    );
    assert_eq!(t.allocations().len(), 1, "without --fix nothing changes");

    let fixed = run(&mut t.wtenv(&["validate", "--verify-ports", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(fixed.stdout.contains("[fixed]"), "{fixed}");
    assert!(t.allocations().is_empty());
    let clean = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert!(!clean.stdout.contains("stale"), "{clean}");
}

#[test]
fn validate_verbose_lists_every_allocation_with_and_without_verify_ports() {
    let t = TestEnv::new();
    for id in ["one", "two"] {
        let out = create(&t, id, &["--ports"]);
        assert_eq!(out.code, Some(0), "{out}");
    }
    let one = default_path(&t, "feature", "one");
    let _server = HttpServer::start(&one, t.ports.start);

    let plain = run(&mut t.wtenv(&["validate", "--verbose"]));
    assert_eq!(plain.code, Some(0), "{plain}");
    for (port, id) in [(t.ports.start, "one"), (t.ports.start + 1, "two")] {
        let path = default_path(&t, "feature", id);
        assert!(
            plain
                .stdout
                .lines()
                .any(|l| l.starts_with(&port.to_string())
                    && l.ends_with(path.to_str().unwrap())
                    && l.contains(" ok ")),
            "{port} listed as checked: {plain}"
        );
    }
    assert!(
        !plain.stdout.contains("stale"),
        "no probing without --verify-ports: {plain}"
    );

    let verify = run(&mut t.wtenv(&["validate", "--verbose", "--verify-ports"]));
    assert_eq!(verify.code, Some(0), "{verify}");
    let line = |port: u16| {
        verify
            .stdout
            .lines()
            .find(|l| l.starts_with(&port.to_string()))
            .unwrap_or_else(|| panic!("{port} not listed: {verify}"))
            .to_owned()
    };
    assert!(!line(t.ports.start).contains("stale"), "{verify}");
    assert!(line(t.ports.start + 1).contains("stale"), "{verify}");
}

// --- all or nothing -------------------------------------------------------

#[test]
fn create_refuses_an_existing_branch_path_unknown_base_or_no_repository_touching_nothing() {
    let t = TestEnv::new();
    t.git(&["branch", "feature/taken"]);
    std::fs::create_dir_all(default_path(&t, "feature", "occupied")).unwrap();
    let before = snapshot(&t);
    for (id, extra, says) in [
        ("taken", &[][..], "already exists"),
        ("occupied", &[][..], "already exists"),
        (
            "nobase",
            &["--branch", "no-such-branch"][..],
            "names no commit",
        ),
        ("nopurpose", &[][..], ""),
    ] {
        let out = if id == "nopurpose" {
            run(&mut t.wtenv(&["create", "--purpose", "nope", "--identifier", id]))
        } else {
            create(&t, id, extra)
        };
        assert_eq!(out.code, Some(1), "{id}: {out}");
        assert!(out.stderr.contains(says), "{id}: {out}");
        assert_eq!(snapshot(&t), before, "{id}");
    }
    let outside = t.root().join("not-a-repo");
    std::fs::create_dir(&outside).unwrap();
    let before = snapshot(&t);
    let out = run(&mut t.wtenv_in(
        &outside,
        &["create", "--purpose", "feature", "--identifier", "x"],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("not inside a git worktree"), "{out}");
    assert_eq!(snapshot(&t), before);
}

/// Without git on PATH (a minimal container, a sandbox), the commands
/// that run it said only "No such file or directory" of `git ...`; they
/// say what is missing, and touch nothing. `env` needs no git.
#[test]
fn without_git_the_commands_that_need_it_say_so_touching_nothing() {
    let t = TestEnv::new();
    let bin = t.root().join("bin-without-git");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let before = snapshot(&t);
    for args in [
        &["list"][..],
        &["create", "--purpose", "feature", "--identifier", "x"],
    ] {
        let out = run(t.wtenv(args).env("PATH", &bin));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with("error: could not run git ")
                && out.stderr.ends_with(
                    ": No such file or directory (os error 2)\nhint: install git, or put it on PATH\n"
                ),
            "{args:?}: {out}"
        );
        assert_eq!(snapshot(&t), before, "{args:?}");
    }
    let out = run(t.wtenv(&["env"]).env("PATH", &bin));
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn create_rolls_back_when_git_fails_half_way() {
    // A failing post-checkout hook: git has made the branch, the directory
    // and the .git/worktrees entry, then exits 1. create undoes all three.
    let t = TestEnv::new();
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\necho hook refuses >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = snapshot(&t);
    let out = create(&t, "hooked", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("hook refuses"),
        "git's own words: {out}"
    );
    assert_nothing_of(&t, "hooked", "after git failed");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn create_rolls_back_the_worktree_when_the_new_checkout_has_no_such_purpose() {
    // The base branch's wtenv.toml lacks the purpose: the worktree is made,
    // then its ports cannot be: nothing is kept.
    let t = TestEnv::new();
    t.write_config("bugfix = \"1100-1101\"\n");
    t.git(&["commit", "-q", "-am", "bugfix purpose"]);
    t.git(&["branch", "old", "HEAD~1"]);
    let before = snapshot(&t);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "bugfix",
        "--identifier",
        "b",
        "--branch",
        "old",
        "--ports",
    ]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("bugfix"), "{out}");
    let path = default_path(&t, "bugfix", "b");
    assert!(!path.exists() && !branch_exists(&t, "bugfix/b"), "{out}");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn create_reserves_what_the_new_checkouts_own_config_asks_for() {
    // Ports are reserved while git checks out, for the config create runs
    // under; the base branch's wtenv.toml asks for other services, so those
    // are what the new worktree gets, and nothing of the first guess stays.
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    t.git(&["commit", "-q", "-am", "web and api"]);
    t.git(&["branch", "old", "HEAD~1"]);
    let out = create(&t, "b", &["--branch", "old", "--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start}));
    let path = default_path(&t, "feature", "b");
    assert_eq!(t.allocations(), vec![(t.ports.start, "app".into(), path)]);
    // And from HEAD, whose config is the source's: both services at once.
    let out = create(&t, "c", &["--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc["ports"],
        serde_json::json!({"web": t.ports.start + 1, "api": t.ports.start + 2})
    );
}

/// SIGINT at 16 moments spread over a whole create (before wtenv catches
/// it, during git, during allocation, after): wtenv either finished (exit
/// 0, everything there) or died of the signal with nothing left. Odd rounds
/// signal wtenv's whole process group, as a terminal's Ctrl-C does (git
/// runs in a group of its own, so it finishes its step); some even rounds
/// send SIGTERM instead.
#[test]
fn sigint_or_sigterm_at_any_moment_of_create_leaves_everything_or_nothing() {
    let t = TestEnv::new();
    // A slow post-checkout hook widens the window in the middle of git.
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\nsleep 0.05\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The delays span one whole create on this machine (measured), from 0
    // to a little past its end, so a slow machine is covered as well.
    let start = std::time::Instant::now();
    assert_eq!(create(&t, "calibrate", &["--ports"]).code, Some(0));
    let whole = start.elapsed().as_millis() as u64;
    assert_eq!(
        run(&mut t.wtenv(&["remove", "--delete-branch", "calibrate"])).code,
        Some(0)
    );
    let (mut interrupted, mut finished, mut rolled_back) = (0, 0, 0);
    for round in 0..16u64 {
        let delay_ms = whole * round / 13;
        let id = format!("sig{round}");
        let round = round as usize;
        let mut cmd = t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            &id,
            "--ports",
        ]);
        cmd.process_group(0)
            .env("WTENV_LOG", "wtenv=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Every fourth round is a SIGTERM (wtenv dies of it likewise).
        let expected = if round % 4 == 2 { 15 } else { 2 };
        if round % 2 == 1 {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT);
        } else if expected == 15 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        } else {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context = format!("round {round} ({delay_ms} ms): {:?} {stderr}", out.status);
        match (out.status.code(), out.status.signal()) {
            (Some(0), _) => {
                finished += 1;
                let path = default_path(&t, "feature", &id);
                assert!(path.is_dir() && listed_by_git(&t, &path), "{context}");
                assert!(branch_exists(&t, &format!("feature/{id}")), "{context}");
                assert!(
                    t.allocations().iter().any(|(_, _, w)| w == &path),
                    "{context}"
                );
                // Keep the port block free for the next rounds.
                let rm = run(&mut t.wtenv(&["remove", "--delete-branch", &id]));
                assert_eq!(rm.code, Some(0), "{rm}");
            }
            (None, Some(sig)) if sig == expected => {
                interrupted += 1;
                rolled_back += usize::from(stderr.contains("rolled back"));
                assert_nothing_of(&t, &id, &context);
            }
            _ => panic!("neither success nor death by the signal sent: {context}"),
        }
    }
    eprintln!("{interrupted} interrupted ({rolled_back} after a change), {finished} finished");
    assert!(
        rolled_back > 0,
        "no round was interrupted mid-create ({interrupted} interrupted, {finished} finished)"
    );
    // Empty parents the interrupted rounds made are gone too.
    let root = t.root().join("repo.worktrees");
    assert!(
        !root.exists() || std::fs::read_dir(&root).unwrap().next().is_none(),
        "leftovers in {}",
        root.display()
    );
}

#[test]
fn hostile_identifiers_and_bases_are_refused_touching_and_running_nothing() {
    let t = TestEnv::new();
    let long = "a".repeat(300);
    let before = snapshot(&t);
    let hostile = [
        "../x",
        "a b",
        "$(touch p)",
        "`touch p`",
        "-rf",
        "a\nb",
        long.as_str(),
        "ünï",
        "x;touch p",
        "a/../../b",
        ".hidden",
        "",
    ];
    for id in hostile {
        let out = run(&mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            &format!("--identifier={id}"),
            "--ports",
        ]));
        assert_eq!(out.code, Some(1), "identifier {id:?}: {out}");
        assert!(out.stderr.contains("invalid identifier"), "{id:?}: {out}");
        assert_eq!(snapshot(&t), before, "identifier {id:?}");
    }
    for base in hostile {
        let out = run(&mut t.wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "ok",
            &format!("--branch={base}"),
            "--ports",
        ]));
        assert_eq!(out.code, Some(1), "base {base:?}: {out}");
        assert_eq!(snapshot(&t), before, "base {base:?}");
    }
    // And through `enter` too.
    let out = run(&mut t.wtenv(&["enter", "--", "$(touch p)"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(snapshot(&t), before);
    assert!(!t.repo.join("p").exists() && !t.root().join("p").exists());
}

#[test]
fn a_repository_under_a_path_with_spaces_and_quotes_works_end_to_end() {
    let t = TestEnv::new();
    let repo = t.root().join("it's a \"repo\" dir").join("my repo");
    t.init_repo(&repo);
    t.git_in(&repo, &["add", "wtenv.toml"]);
    t.git_in(&repo, &["commit", "-q", "-m", "config"]);

    let out = run(&mut t.wtenv_in(
        &repo,
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "q",
            "--ports",
            "--json",
        ],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    let path = repo.parent().unwrap().join("my repo.worktrees/feature-q");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["path"], path.to_str().unwrap());
    assert!(path.join("wtenv.toml").is_file());
    let env = run(&mut t.wtenv_in(&path, &["env", "--format", "json"]));
    let vars: serde_json::Value = serde_json::from_str(&env.stdout).unwrap();
    assert_eq!(vars["WTENV_WORKTREE"], path.to_str().unwrap(), "{env}");
    let list = run(&mut t.wtenv_in(&repo, &["list"]));
    assert!(list.stdout.contains(path.to_str().unwrap()), "{list}");
    let rm = run(&mut t.wtenv_in(&repo, &["remove", "q"]));
    assert_eq!(rm.code, Some(0), "{rm}");
    assert!(!path.exists());
    assert!(t.allocations().is_empty());
}

#[test]
fn sixteen_concurrent_creates_make_sixteen_worktrees_with_distinct_ports() {
    let t = TestEnv::new();
    let children: Vec<(String, Child)> = (0..16)
        .map(|i| {
            let id = format!("c{i}");
            let mut cmd = t.wtenv(&[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                &id,
                "--ports",
            ]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            (id, cmd.spawn().unwrap())
        })
        .collect();
    for (id, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let allocations = t.allocations();
    assert_eq!(allocations.len(), 16, "{allocations:?}");
    let ports: BTreeSet<u16> = allocations.iter().map(|a| a.0).collect();
    assert_eq!(ports.len(), 16, "ports are distinct: {allocations:?}");
    let worktrees: BTreeSet<&PathBuf> = allocations.iter().map(|a| &a.2).collect();
    assert_eq!(worktrees.len(), 16);
    for i in 0..16 {
        let path = default_path(&t, "feature", &format!("c{i}"));
        assert!(listed_by_git(&t, &path), "{}", path.display());
        assert!(worktrees.contains(&path));
    }
}

// --- remove ---------------------------------------------------------------

#[test]
fn remove_releases_the_ports_and_delete_branch_deletes_the_branch() {
    let t = TestEnv::new();
    for id in ["keep", "drop"] {
        assert_eq!(create(&t, id, &["--ports"]).code, Some(0));
    }
    let keep = default_path(&t, "feature", "keep");
    let out = run(&mut t.wtenv(&["remove", "keep"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("released port {}", t.ports.start)),
        "{out}"
    );
    assert!(!keep.exists() && !listed_by_git(&t, &keep));
    assert!(
        branch_exists(&t, "feature/keep"),
        "the branch stays by default"
    );
    assert!(t.allocations().iter().all(|a| a.2 != keep));

    // By path, with the branch.
    let drop = default_path(&t, "feature", "drop");
    let out = run(&mut t.wtenv(&["remove", drop.to_str().unwrap(), "--delete-branch"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!drop.exists() && !branch_exists(&t, "feature/drop"));
    assert!(t.allocations().is_empty());
}

/// `git branch -d` refuses an unmerged branch; asked after the worktree
/// was gone, that left the worktree removed and the command failed. It is
/// asked first now, by git's rule (merged into the branch's upstream when
/// it has one, else into HEAD).
#[test]
fn remove_delete_branch_of_an_unmerged_branch_removes_nothing() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "work", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "work");
    t.git_in(&path, &["commit", "-q", "--allow-empty", "-m", "unmerged"]);
    let registry = std::fs::read(t.registry_path()).unwrap();

    let out = run(&mut t.wtenv(&["remove", "work", "--delete-branch"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("error: branch feature/work is not fully merged; nothing was removed"),
        "{out}"
    );
    assert!(path.is_dir() && listed_by_git(&t, &path));
    assert!(branch_exists(&t, "feature/work"));
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);

    // Merged into its upstream though not into HEAD: git deletes it.
    t.git(&["branch", "published", "feature/work"]);
    t.git(&[
        "branch",
        "-q",
        "--set-upstream-to=published",
        "feature/work",
    ]);
    let out = run(&mut t.wtenv(&["remove", "work", "--delete-branch"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !branch_exists(&t, "feature/work"));
    assert!(t.allocations().is_empty());

    // --force deletes an unmerged one (git branch -D).
    assert_eq!(create(&t, "gone", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "gone");
    t.git_in(&path, &["commit", "-q", "--allow-empty", "-m", "unmerged"]);
    let out = run(&mut t.wtenv(&["remove", "gone", "--delete-branch", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !branch_exists(&t, "feature/gone"));
}

#[test]
fn remove_refuses_while_a_holder_lives_unless_forced() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "busy", &[]).code, Some(0));
    let path = default_path(&t, "feature", "busy");
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let held = run(&mut t.wtenv_in(&path, &["env", "--hold", &pid]));
    assert_eq!(held.code, Some(0), "{held}");
    let before = t.allocations();
    assert_eq!(before.len(), 1);

    let out = run(&mut t.wtenv(&["remove", "busy"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains(&format!("held by pid {pid}")), "{out}");
    assert!(path.is_dir() && listed_by_git(&t, &path));
    assert_eq!(t.allocations(), before, "nothing released");

    let out = run(&mut t.wtenv(&["remove", "busy", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("left running"), "{out}");
    assert!(out.stderr.contains(&pid), "{out}");
    assert!(!path.exists());
    assert!(t.allocations().is_empty());
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the holder keeps running"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn remove_refuses_a_dirty_worktree_keeping_its_ports_unless_forced() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "dirty", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "dirty");
    std::fs::write(path.join("wtenv.toml"), "# edited\n").unwrap();
    let before = t.allocations();
    let out = run(&mut t.wtenv(&["remove", "dirty"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("git refused"), "{out}");
    assert!(path.is_dir());
    assert_eq!(t.allocations(), before, "a refusal releases nothing");
    let out = run(&mut t.wtenv(&["remove", "dirty", "--force"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty());
}

#[test]
fn remove_never_removes_the_main_worktree() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["remove", t.repo.to_str().unwrap(), "--force"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("main worktree"), "{out}");
    assert!(t.repo.join(".git").is_dir());
}

/// A locked worktree is refused, and the refusal gives git's reason for
/// the lock (escaped like all text in messages), so that the user knows
/// why it was locked before unlocking it. The refusal said only "is
/// locked".
#[test]
fn remove_of_a_locked_worktree_names_the_lock_reason_and_removes_nothing() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "usb", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "usb");
    let shown = path.display();
    assert_eq!(t.allocations().len(), 1);

    let unlock = format!("git worktree unlock '{shown}'");
    let unlock_first = format!("unlock it first: {unlock}");
    // Git's own lock while `git worktree add` runs: wait, or unlock only
    // what a killed git left.
    let git_adding = format!(
        "git is still adding it: run this again once that is done; if git was killed while adding it: {unlock}"
    );
    for (reason, said, hint) in [
        (
            "on a USB disk",
            r#" (reason: "on a USB disk")"#,
            &unlock_first,
        ),
        (
            "\"mine\"\x1b[2J",
            r#" (reason: "\"mine\"\u{1b}[2J")"#,
            &unlock_first,
        ),
        ("", "", &unlock_first),
        ("initializing", r#" (reason: "initializing")"#, &git_adding),
    ] {
        let mut lock = vec!["worktree", "lock"];
        if !reason.is_empty() {
            lock.extend(["--reason", reason]);
        }
        lock.push(path.to_str().unwrap());
        t.git(&lock);
        let before = snapshot(&t);
        for force in [&[][..], &["--force"]] {
            let mut args = vec!["remove", "usb"];
            args.extend(force);
            let out = run(&mut t.wtenv(&args));
            assert_eq!(out.code, Some(1), "{reason:?}: {out}");
            assert!(
                out.stderr.contains(&format!(
                    "error: worktree {shown} is locked{said}; nothing was removed\n\
                     hint: {hint}\n"
                )),
                "{reason:?}: {out}"
            );
            assert!(!out.stderr.contains('\x1b'), "{out}");
            assert_eq!(snapshot(&t), before, "{reason:?}: nothing removed");
            assert!(branch_exists(&t, "feature/usb") && listed_by_git(&t, &path));
        }
        t.git(&["worktree", "unlock", path.to_str().unwrap()]);
    }
    let out = run(&mut t.wtenv(&["remove", "usb"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty());
}

/// While `git worktree add` runs, git locks the new worktree with the
/// reason "initializing"; `create` holds the repository lock until its
/// worktree is whole. `remove` read the listing before taking that lock,
/// so during a concurrent `create` it could see git's transient lock and
/// refuse with "unlock it first". It reads the listing under the lock
/// now. Here the test holds the lock as `create` would, with git's
/// "initializing" lock in place, and lifts both (git's first) only once
/// `remove` either ended (as it did, refusing) or holds the lock's file
/// open, waiting: it opens that file before it reads anything of the
/// listing, so no timing decides the outcome.
#[test]
fn remove_reads_the_worktree_listing_under_the_repository_lock() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "late", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "late");
    let common_dir = t.repo.join(".git");
    let held = std::fs::File::open(&common_dir).unwrap();
    held.lock().unwrap();
    t.git(&[
        "worktree",
        "lock",
        "--reason",
        "initializing",
        path.to_str().unwrap(),
    ]);

    let mut remove = t
        .wtenv(&["remove", "late"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fds = format!("/proc/{}/fd", remove.id());
    let waits_on_the_lock = || {
        std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == common_dir))
    };
    assert!(wait_for(Duration::from_secs(20), || {
        remove.try_wait().unwrap().is_some() || waits_on_the_lock()
    }));
    t.git(&["worktree", "unlock", path.to_str().unwrap()]);
    drop(held);

    let out = remove.wait_with_output().unwrap();
    let out = Run::of(out.status, out.stdout, out.stderr);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !listed_by_git(&t, &path), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// Two worktrees of one identifier (under two purposes): the hint says
/// what that command takes to tell them apart. `remove` said "add
/// --purpose", a flag it does not have; `enter` said "or give the path",
/// which it does not take.
#[test]
fn an_ambiguous_identifier_is_told_apart_by_what_the_command_takes() {
    let t = TestEnv::new();
    let bugfix = PortBlock::take();
    t.write_config(&format!("bugfix = \"{}\"\n", bugfix.range()));
    t.git(&["commit", "-qam", "two purposes"]);
    for purpose in ["feature", "bugfix"] {
        let out = run(&mut t.wtenv(&["create", "--purpose", purpose, "--identifier", "x"]));
        assert_eq!(out.code, Some(0), "{out}");
    }
    let ambiguous = "error: 2 worktrees are named \"x\": ";
    let out = run(&mut t.wtenv(&["remove", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with(ambiguous), "{out}");
    assert!(
        out.stderr
            .contains("\nhint: give the path of the one to remove"),
        "{out}"
    );
    let path = default_path(&t, "bugfix", "x");
    let out = run(&mut t.wtenv(&["remove", path.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    // Made again (its branch was kept), then entered by its purpose.
    for _ in 0..2 {
        let out = run(&mut t.wtenv(&["enter", "x", "--purpose", "bugfix"]));
        assert_eq!(out.stdout, format!("{}\n", path.display()), "{out}");
    }
    let out = run(&mut t.wtenv(&["enter", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with(ambiguous), "{out}");
    assert!(
        out.stderr
            .contains("\nhint: add --purpose to say which one"),
        "{out}"
    );
    // Two of one purpose, made by hand: no purpose tells them apart, and
    // `enter` takes no path.
    for (dir, branch) in [("a/dup", "feature/d1"), ("b/dup", "feature/d2")] {
        let path = t.root().join(dir);
        t.git(&[
            "worktree",
            "add",
            "-q",
            path.to_str().unwrap(),
            "-b",
            branch,
        ]);
    }
    for args in [
        &["enter", "dup"][..],
        &["enter", "dup", "--purpose", "feature"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .contains("\nhint: cd into the one you mean; 'wtenv list' shows them"),
            "{args:?}: {out}"
        );
    }
}

// --- enter, list, worktrees made by hand ----------------------------------

#[test]
fn enter_creates_with_ports_once_then_enters_and_writes_the_cd_file() {
    let t = TestEnv::new();
    let cd_file = t.root().join("cd-target");
    let mut cmd = t.wtenv(&["enter", "api"]);
    cmd.env("WTENV_CD_FILE", &cd_file);
    let first = run(&mut cmd);
    assert_eq!(first.code, Some(0), "{first}");
    let path = default_path(&t, "feature", "api");
    assert_eq!(first.stdout, format!("{}\n", path.display()));
    assert_eq!(
        std::fs::read_to_string(&cd_file).unwrap(),
        path.to_str().unwrap(),
        "absolute path, no newline"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), path.clone())]
    );

    let again = run(&mut t.wtenv_in(&path, &["enter", "api"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(t.allocations().len(), 1, "sticky: nothing new");
    assert_eq!(
        t.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        2
    );
}

/// `WTENV_CD_FILE` was written last: one that could not be written failed
/// `enter` after it had made the worktree, its branch and its ports (or
/// reserved an existing worktree's). It is opened first now; one `enter`
/// made for a command that then fails is removed again.
#[test]
fn enter_refuses_a_cd_file_it_cannot_write_before_making_anything() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "old", &[]).code, Some(0));
    let registry = || std::fs::read(t.registry_path()).ok();
    let worktrees = || t.git(&["worktree", "list", "--porcelain"]);
    let branches = || t.git(&["branch", "--list"]);
    let before = (registry(), worktrees(), branches());
    let dir = t.root().join("cd");
    std::fs::create_dir_all(&dir).unwrap();
    for (cd_file, reason) in [
        (dir.clone(), "Is a directory"),
        (dir.join("missing/file"), "No such file or directory"),
    ] {
        for id in ["new", "old"] {
            let out = run(t.wtenv(&["enter", id]).env("WTENV_CD_FILE", &cd_file));
            assert_eq!(out.code, Some(1), "{id}: {out}");
            assert!(
                out.stderr.contains(&format!(
                    "could not write WTENV_CD_FILE {}",
                    cd_file.display()
                )),
                "{out}"
            );
            assert!(out.stderr.contains(reason), "{out}");
            assert_eq!((registry(), worktrees(), branches()), before, "{id}: {out}");
        }
    }
    // Made by `enter`, which then failed (git knows no such base): gone.
    let cd_file = dir.join("target");
    let out = run(t
        .wtenv(&["enter", "new", "--branch", "no-such-base"])
        .env("WTENV_CD_FILE", &cd_file));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!cd_file.exists(), "{out}");
    assert_eq!((registry(), worktrees(), branches()), before, "{out}");
    let out = run(t.wtenv(&["enter", "new"]).env("WTENV_CD_FILE", &cd_file));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(&cd_file).unwrap(),
        out.stdout.trim_end()
    );
}

#[test]
fn worktrees_made_by_hand_are_first_class() {
    let t = TestEnv::new();
    let hand = t.add_worktree("hand");
    let env = run(&mut t.wtenv_in(&hand, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(
        env.stdout.contains("export WTENV_PURPOSE='feature'"),
        "default_purpose: {env}"
    );
    assert!(
        env.stdout
            .contains(&format!("export PORT='{}'", t.ports.start)),
        "{env}"
    );

    let entered = run(&mut t.wtenv(&["enter", "hand"]));
    assert_eq!(entered.code, Some(0), "{entered}");
    assert_eq!(entered.stdout.trim(), hand.to_str().unwrap());
    assert_eq!(t.allocations().len(), 1, "entering keeps its port");

    let list = run(&mut t.wtenv(&["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let entry = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == hand.to_str().unwrap())
        .expect("listed");
    assert_eq!(entry["purpose"], "feature");
    assert_eq!(entry["branch"], "hand");
    assert_eq!(entry["services"][0]["port"], t.ports.start);

    let rm = run(&mut t.wtenv(&["remove", "hand"]));
    assert_eq!(rm.code, Some(0), "{rm}");
    assert!(!hand.exists() && t.allocations().is_empty());
}

/// Makes `dir` root's, mode 0700: nobody may not search it.
fn shut_to_nobody(dir: &Path) {
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
}

/// `env` (and the prompt hook's) as nobody in each `(cwd, message, hint)`:
/// exit 1, the message and hint as given, nothing exported, and nothing
/// under the test's root (registry, state, trees) written.
fn assert_discovery_fails_as_nobody(t: &TestEnv, cases: &[(PathBuf, String, String)]) {
    let before = crate::support::snapshot(&t.root());
    for (cwd, message, hint) in cases {
        for args in [&["env"][..], &["env", "--hook"]] {
            let out = run(&mut t.wtenv_as_nobody_in(cwd, args));
            assert_eq!(out.code, Some(1), "{cwd:?} {args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!("error: {message}\nhint: {hint}\n"),
                "{cwd:?} {args:?}: {out}"
            );
            assert_eq!(out.stdout, "", "{cwd:?} {args:?}: {out}");
        }
    }
    assert_eq!(
        crate::support::snapshot(&t.root()),
        before,
        "written behind the failure"
    );
}

/// A user in a worktree whose directory they may not search (a shell left
/// there by `sudo -u`, or a `chmod` above it) could not look at its
/// `.git`: the walk took that for "no .git here" and went on up, to "not
/// inside a git worktree". So did a `.git` link into such a directory,
/// and a linked worktree whose repository is there. Each is now an
/// error naming what could not be read, with the directory to fix when
/// wtenv can tell it.
#[test]
fn a_dot_git_the_user_may_not_look_at_is_named_not_walked_past() {
    let t = TestEnv::new();
    let sub = t.repo.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let linked = t.add_worktree("linked");
    let by_link = t.root().join("by-link");
    std::fs::create_dir(&by_link).unwrap();
    std::os::unix::fs::symlink(t.repo.join(".git"), by_link.join(".git")).unwrap();
    t.give_to_nobody();
    shut_to_nobody(&t.repo);
    let denied = "Permission denied (os error 13)";
    let search_repo = format!(
        "you may not search {}: have its permissions fixed (x for you), or run wtenv from a directory you can read",
        t.repo.display()
    );
    assert_discovery_fails_as_nobody(
        &t,
        &[
            (
                t.repo.clone(),
                format!("could not read {}/.git: {denied}", t.repo.display()),
                search_repo.clone(),
            ),
            (
                sub.clone(),
                format!("could not read {}/.git: {denied}", sub.display()),
                search_repo,
            ),
            (
                by_link.clone(),
                format!("could not read {}/.git: {denied}", by_link.display()),
                "fix its permissions (or those of what it links to), or run wtenv from a directory you can read".into(),
            ),
            (
                linked.clone(),
                format!(
                    "could not resolve the git dir {}/.git names: {denied}",
                    linked.display()
                ),
                "you may not search a directory on the way to the one it names: have its permissions fixed, or run wtenv from a directory you can read".into(),
            ),
        ],
    );
}

/// A repository nested in another, which the user may not search: the
/// walk went past its `.git` to the outer repository's, and `env`
/// reserved and exported a port for the wrong worktree.
#[test]
fn a_nested_repository_the_user_may_not_search_is_not_taken_for_the_one_around_it() {
    let t = TestEnv::new();
    let inner = t.repo.join("inner");
    t.init_repo(&inner);
    let sub = inner.join("sub");
    std::fs::create_dir(&sub).unwrap();
    t.give_to_nobody();
    shut_to_nobody(&inner);
    let hint = format!(
        "you may not search {}: have its permissions fixed (x for you), or run wtenv from a directory you can read",
        inner.display()
    );
    assert_discovery_fails_as_nobody(
        &t,
        &[&inner, &sub].map(|cwd| {
            (
                cwd.clone(),
                format!(
                    "could not read {}/.git: Permission denied (os error 13)",
                    cwd.display()
                ),
                hint.clone(),
            )
        }),
    );
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
}

#[test]
fn list_shows_every_worktree_with_each_services_port_and_live_state() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    t.git(&["commit", "-q", "-am", "two services"]);
    assert_eq!(create(&t, "live", &["--ports"]).code, Some(0));
    assert_eq!(create(&t, "noports", &[]).code, Some(0));
    let hand = t.add_worktree("hand");
    let live = default_path(&t, "feature", "live");
    // `api` is declared second: it has the block's second port.
    let _api = PyListener::start(&live, "4", "127.0.0.1", t.ports.start + 1, "");
    // `web`'s port, held by a process outside the worktree: a conflict.
    let _foreign = PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.start, "");
    let env = run(&mut t.wtenv_in(&hand, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert!(rows[0].starts_with("PATH"), "{list}");
    let row = |path: &Path, service: &str| {
        rows.iter()
            .find(|r| {
                r.starts_with(&format!("{}  ", path.display()))
                    && r.split_whitespace().nth(4) == Some(service)
            })
            .unwrap_or_else(|| panic!("no row for {} {service}: {list}", path.display()))
            .to_string()
    };
    assert!(row(&t.repo, "web").contains("unallocated"), "{list}");
    let api = row(&live, "api");
    assert!(api.contains(&format!("{} ", t.ports.start + 1)), "{api}");
    assert!(
        api.contains(&format!("listening (pid {}", _api.pid())),
        "{api}"
    );
    assert!(
        row(&live, "web").contains(&format!("conflict (pid {}", _foreign.pid())),
        "{list}"
    );
    assert!(row(&hand, "web").ends_with("idle"), "{list}");
    assert!(row(&default_path(&t, "feature", "noports"), "api").contains("unallocated"));
    assert!(
        row(&hand, "web").contains("hand"),
        "hand-made, its branch: {list}"
    );

    let json = run(&mut t.wtenv(&["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    let wts = doc["worktrees"].as_array().unwrap();
    assert_eq!(wts.len(), 4, "main, two created, one by hand");
    assert_eq!(wts[0]["main"], true);
}

#[test]
fn create_runs_direnv_allow_when_the_source_envrc_is_allowed() {
    let t = TestEnv::new();
    t.write_config("[worktrees]\ndirenv_allow = true\n");
    std::fs::write(t.repo.join(".envrc"), "export FROM_ENVRC=yes\n").unwrap();
    t.git(&["add", ".envrc", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "envrc"]);
    let direnv = |dir: &Path, args: &[&str]| {
        let mut cmd = Command::new("direnv");
        t.apply_env(&mut cmd);
        run(cmd.current_dir(dir).args(args))
    };
    // Not allowed in the source: the new worktree is not allowed either.
    assert_eq!(create(&t, "no", &[]).code, Some(0));
    let no = default_path(&t, "feature", "no");
    let status = direnv(&no, &["status"]);
    assert!(status.stdout.contains("Found RC allowed false"), "{status}");

    assert_eq!(direnv(&t.repo, &["allow", "."]).code, Some(0));
    assert_eq!(create(&t, "yes", &[]).code, Some(0));
    let yes = default_path(&t, "feature", "yes");
    let exec = direnv(&yes, &["exec", ".", "printenv", "FROM_ENVRC"]);
    assert_eq!(exec.stdout.trim(), "yes", "{exec}");

    // A branch whose .envrc differs is code nobody reviewed: not allowed,
    // and the user is told why and what to run.
    t.git(&["checkout", "-q", "-b", "theirs"]);
    std::fs::write(t.repo.join(".envrc"), "export FROM_ENVRC=theirs\n").unwrap();
    t.git(&["commit", "-q", "-am", "their envrc"]);
    t.git(&["checkout", "-q", "-"]);
    let out = create(&t, "theirs", &["--branch", "theirs"]);
    assert_eq!(out.code, Some(0), "{out}");
    let theirs = default_path(&t, "feature", "theirs");
    let status = direnv(&theirs, &["status"]);
    assert!(status.stdout.contains("Found RC allowed false"), "{status}");
    assert!(
        out.stderr.contains(&format!(
            "did not run direnv allow {}: its .envrc differs from the one allowed in {}",
            theirs.display(),
            t.repo.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("run `direnv allow {}`", theirs.display())),
        "{out}"
    );
}

#[test]
fn create_from_a_linked_worktree_still_puts_worktrees_beside_the_main_one_and_path_overrides() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "first", &[]).code, Some(0));
    let first = default_path(&t, "feature", "first");
    let out = run(&mut t.wtenv_in(
        &first,
        &["create", "--purpose", "feature", "--identifier", "second"],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout.trim(),
        default_path(&t, "feature", "second").to_str().unwrap()
    );
    let custom = t.root().join("custom place/wt");
    let out = run(&mut t.wtenv_in(
        &first,
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "third",
            "--path",
            "../../custom place/wt",
        ],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), custom.to_str().unwrap());
    assert!(listed_by_git(&t, &custom));
}

#[test]
fn a_branch_template_git_refuses_fails_touching_nothing() {
    let t = TestEnv::new();
    t.write_config("[worktrees]\nbranch = \"{identifier}.lock\"\n");
    t.git(&["commit", "-q", "-am", "bad template"]);
    let before = snapshot(&t);
    let out = create(&t, "x", &["--ports"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("not a valid branch name"), "{out}");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn enter_after_remove_checks_the_kept_branch_out_again() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["enter", "again"])).code, Some(0));
    let path = default_path(&t, "feature", "again");
    std::fs::write(path.join("work.txt"), "kept\n").unwrap();
    t.git_in(&path, &["add", "work.txt"]);
    t.git_in(&path, &["commit", "-q", "-m", "work"]);
    assert_eq!(run(&mut t.wtenv(&["remove", "again"])).code, Some(0));
    assert!(branch_exists(&t, "feature/again"));

    // With a base, the kept branch would be silently ignored: refused.
    let before = snapshot(&t);
    let out = run(&mut t.wtenv(&["enter", "again", "--branch", "main"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(snapshot(&t), before);

    let out = run(&mut t.wtenv(&["enter", "again"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), path.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("work.txt")).unwrap(),
        "kept\n"
    );
    assert_eq!(t.allocations().len(), 1);
}

#[test]
fn remove_refuses_while_its_own_server_listens_on_its_port() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "serving", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "serving");
    let server = PyListener::start(&path, "4", "127.0.0.1", t.ports.start, "");
    let out = run(&mut t.wtenv(&["remove", "serving"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("listening: pid {}", server.pid())),
        "{out}"
    );
    assert!(path.is_dir() && t.allocations().len() == 1);
    drop(server);
    let out = run(&mut t.wtenv(&["remove", "serving"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && t.allocations().is_empty());
}

#[test]
fn create_ignores_a_conflict_in_the_source_configs_range_the_new_checkout_does_not_use() {
    // The base branch `old` gives feature the whole block; HEAD (the source
    // worktree) narrows it to one port that is occupied. The new checkout's
    // own config decides its services and range (create reserves in the
    // purpose's range of the worktree it makes), so create must succeed on port 0.
    let t = TestEnv::new();
    t.git(&["branch", "old"]);
    let busy = t.ports.port(10);
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purposes]\nfeature = \"{busy}-{busy}\"\n"),
    )
    .unwrap();
    t.git(&["commit", "-q", "-am", "narrow"]);
    let _l = PyListener::start(&t.root(), "4", "127.0.0.1", busy, "");
    let out = create(&t, "b", &["--branch", "old", "--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start}));
}

#[test]
fn create_honours_skip_occupied_in_the_new_checkouts_config() {
    // Same range; the base branch's config opts into skip_occupied, HEAD's
    // does not: the new checkout's config must decide.
    let t = TestEnv::new();
    t.write_config("[allocation]\nskip_occupied = true\n");
    t.git(&["commit", "-q", "-am", "skip"]);
    t.git(&["branch", "old"]);
    t.write_config("");
    t.git(&["commit", "-q", "-am", "no skip"]);
    let _l = PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.start, "");
    let out = create(&t, "b", &["--branch", "old", "--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start + 1}));
}

#[test]
fn validate_fix_during_create_leaves_the_new_worktree_reserved() {
    // A slow smudge filter on a file checked out before wtenv.toml: while
    // git checks out, the new directory exists without its wtenv.toml, so
    // a concurrent `validate --fix` judges the reservation by the default
    // config and releases it as out of range. create confirms its
    // reservation once git is done: it reports only a port the registry
    // holds for it, never one that may be handed out twice (allocation rule 7).
    let t = TestEnv::new();
    std::fs::write(t.repo.join(".gitattributes"), "aaa filter=slow\n").unwrap();
    std::fs::write(t.repo.join("aaa"), "x\n").unwrap();
    t.git(&["add", ".gitattributes", "aaa"]);
    t.git(&["commit", "-q", "-m", "slow file"]);
    t.git(&["config", "filter.slow.smudge", "sleep 2; cat"]);
    let path = default_path(&t, "feature", "slow");
    let child = t
        .wtenv(&[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "slow",
            "--ports",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        t.allocations().iter().any(|a| a.2 == path)
    }));
    assert!(path.is_dir() && !path.join("wtenv.toml").exists());
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start}));
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), path)],
        "validate --fix during create: {fix}"
    );
}

/// Two repositories share a purpose's range. The other one's service,
/// listening on the port the registry records for it, is no conflict in
/// this repository's `list`: the registry knows that port, whichever
/// repository recorded it.
/// A locked worktree is shown locked, with git's reason: `remove` refuses
/// it, and a user or an agent reading `list` should see why before it
/// does. The reason is the locker's text: the table escapes it as it does
/// every cell, JSON carries it as it is. Git's own lock of a worktree it
/// is adding reads as that, not as a user's lock. `list` said only
/// `"locked": true` in JSON, and nothing in its table.
#[test]
fn list_shows_a_locked_worktree_with_gits_reason_for_the_lock() {
    let t = TestEnv::new();
    let hostile = "x\n\x1b[2Jy";
    let mut cases = vec![];
    for (name, reason, state) in [
        ("usb", Some("on a USB disk"), "locked: on a USB disk"),
        ("bare-lock", None, "locked"),
        ("hostile", Some(hostile), r"locked: x\n\u{1b}[2Jy"),
        ("adding", Some("initializing"), "being added by git"),
    ] {
        let path = t.add_worktree(name);
        let mut lock = vec!["worktree", "lock"];
        lock.extend(reason.iter().flat_map(|r| ["--reason", r]));
        lock.push(path.to_str().unwrap());
        t.git(&lock);
        cases.push((path, reason.unwrap_or(""), state));
    }
    let free = t.add_worktree("free");

    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let entry = |path: &Path| {
        doc["worktrees"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not listed: {json}", path.display()))
            .clone()
    };
    for (path, reason, _) in &cases {
        let w = entry(path);
        assert_eq!(w["locked"], true, "{json}");
        assert_eq!(w["lock_reason"], *reason, "{json}");
    }
    for path in [&t.repo, &free] {
        let w = entry(path);
        assert_eq!(w["locked"], false, "{json}");
        assert_eq!(w["lock_reason"], serde_json::Value::Null, "{json}");
    }

    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    assert!(!list.stdout.contains('\x1b'), "{list}");
    let rows: Vec<&str> = list.stdout.lines().collect();
    // One row of the worktree's own (SERVICE and PORT `-`), before its
    // service's: header, 6 worktrees' `app`, 4 locked ones.
    assert_eq!(rows.len(), 1 + 6 + 4, "{list}");
    let rows_of = |path: &Path| -> Vec<&str> {
        rows.iter()
            .copied()
            .filter(|r| r.starts_with(&format!("{}  ", path.display())))
            .collect()
    };
    for (path, _, state) in &cases {
        let own = rows_of(path);
        assert_eq!(own.len(), 2, "{list}");
        let cells: Vec<&str> = own[0].split_whitespace().collect();
        assert_eq!(cells[4..6], ["-", "-"], "{list}");
        assert!(own[0].ends_with(&format!("  {state}")), "{state}: {list}");
        assert_eq!(own[1].split_whitespace().nth(4), Some("app"), "{list}");
    }
    for path in [&t.repo, &free] {
        assert_eq!(rows_of(path).len(), 1, "{list}");
    }
}

#[test]
fn list_does_not_call_another_repositorys_recorded_port_a_conflict() {
    let t = TestEnv::new();
    let other = t.root().join("other-repo");
    t.init_repo(&other);
    let env = run(&mut t.wtenv_in(&other, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    let port = t.ports.port(0);
    assert!(env.stdout.contains(&format!("PORT='{port}'")), "{env}");
    let _server = PyListener::start(&other, "4", "127.0.0.1", port, "");

    let list = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(list.code, Some(0), "{list}");
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(doc["conflicts"], serde_json::json!([]), "{list}");
    let table = run(&mut t.wtenv(&["list"]));
    assert!(!table.stdout.contains("conflict"), "{table}");
}
