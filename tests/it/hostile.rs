//! Hostile input: files planted in the state directory, a config or a
//! directive file that is not a regular file, registries wtenv did not
//! write, a worktree record holding what `create` refuses, paths that are
//! not UTF-8. Each test asserts the exit code and
//! message, that nothing hangs (a bounded run), and that nothing outside
//! the state directory was written or created (a snapshot of it before and
//! after).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::shell::{SHELLS, Sh, hook_file, pwned_under, q};
use crate::support::{PortBlock, Run, TestEnv, run, run_bounded, snapshot};

/// A hang is a failure, not a stuck suite.
const LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A directory outside the state directory holding a file a planted link
/// points to, and the path of a file that must never be created.
struct Outside {
    dir: PathBuf,
    victim: PathBuf,
    absent: PathBuf,
}

impl Outside {
    fn new(t: &TestEnv) -> Outside {
        let dir = t.root().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "the user's file\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        Outside {
            absent: dir.join("absent"),
            dir,
            victim,
        }
    }
}

fn env_bounded(t: &TestEnv, args: &[&str]) -> Run {
    run_bounded(&mut t.wtenv(args), LIMIT)
}

/// A state directory with a registry in it (made by a first `env`).
pub(crate) fn with_registry() -> TestEnv {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    t
}

// ---- case 16: planted files in the state directory --------------------

/// Today's temp names and the fixed name older versions used, planted as
/// links: the write goes to a fresh temp file, the registry stays a
/// regular 0600 file, and neither link's target is written or created.
#[test]
fn a_link_planted_as_the_temp_file_redirects_no_write() {
    let t = with_registry();
    let out_dir = Outside::new(&t);
    let state = t.state_dir();
    std::os::unix::fs::symlink(&out_dir.victim, state.join("registry.json.tmp")).unwrap();
    std::os::unix::fs::symlink(&out_dir.absent, state.join("registry.json.tmp.999999999.0"))
        .unwrap();
    let before = snapshot(&out_dir.dir);
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        snapshot(&out_dir.dir),
        before,
        "written outside the state dir"
    );
    let meta = std::fs::symlink_metadata(t.registry_path()).unwrap();
    assert!(meta.file_type().is_file(), "the registry became a link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(t.allocations().len(), 2);
}

/// A FIFO as a temp file blocked a write forever, holding the lock.
#[test]
fn a_fifo_planted_as_the_temp_file_blocks_nothing() {
    let t = with_registry();
    mkfifo(&t.state_dir().join("registry.json.tmp"));
    mkfifo(&t.state_dir().join("registry.json.tmp.999999999.0"));
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(t.allocations().len(), 2);
}

/// A leftover temp file with mode 0666 passed its mode to the next
/// registry, which wtenv then refused as writable by others.
#[test]
fn a_leftover_temp_file_with_mode_0666_is_cleaned_and_its_mode_not_inherited() {
    let t = with_registry();
    let state = t.state_dir();
    let leftovers = [
        state.join("registry.json.tmp"),
        state.join("registry.json.tmp.999999999.0"),
    ];
    for p in &leftovers {
        std::fs::write(p, "{\"half\": ").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    let mode = std::fs::metadata(t.registry_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for p in &leftovers {
        assert!(!p.exists(), "{} was left", p.display());
    }
    let out = env_bounded(&t, &["env"]);
    assert_eq!(
        out.code,
        Some(0),
        "the next command refused the registry: {out}"
    );
}

/// The lock files, planted as links (to an existing file, to a missing
/// one), as FIFOs or as directories: refused with exit 2 naming the file
/// (a directory was "Is a directory (os error 21)", exit 1, no hint); no
/// link is followed (nothing created or locked elsewhere), nothing hangs.
#[test]
fn planted_lock_files_are_refused_followed_nowhere_and_never_hang() {
    for lock in ["registry.lock", "probe.lock"] {
        for plant in ["link", "dangling link", "fifo", "directory"] {
            let t = with_registry();
            // A new service, so `allocate` probes (and takes the probe lock).
            let out_dir = Outside::new(&t);
            let path = t.state_dir().join(lock);
            std::fs::remove_file(&path).unwrap();
            match plant {
                "link" => std::os::unix::fs::symlink(&out_dir.victim, &path).unwrap(),
                "dangling link" => std::os::unix::fs::symlink(&out_dir.absent, &path).unwrap(),
                "directory" => std::fs::create_dir(&path).unwrap(),
                _ => mkfifo(&path),
            }
            let before = snapshot(&out_dir.dir);
            let registry = std::fs::read(t.registry_path()).unwrap();
            let out = env_bounded(&t, &["allocate", "--service", "api"]);
            assert_eq!(out.code, Some(2), "{lock} as {plant}: {out}");
            assert!(
                out.stderr
                    .contains(&format!("its lock file {}: ", path.display())),
                "{lock} as {plant}: {out}"
            );
            assert!(out.stderr.contains("hint: "), "{out}");
            assert_eq!(snapshot(&out_dir.dir), before, "{lock} as {plant}");
            assert_eq!(std::fs::read(t.registry_path()).unwrap(), registry);
        }
    }
}

/// Lock files planted with mode 0666, regular files of the user's own:
/// only their lock is used, never their content, and the 0700 state
/// directory keeps everyone else out, so the command works, the registry
/// it writes is 0600, and nothing outside the state directory changes.
#[test]
fn lock_files_planted_with_mode_0666_lock_and_leak_nothing() {
    let t = with_registry();
    let out_dir = Outside::new(&t);
    let before = snapshot(&out_dir.dir);
    for lock in ["registry.lock", "probe.lock"] {
        let path = t.state_dir().join(lock);
        std::fs::write(&path, "planted\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    // A new service, so `allocate` probes (and takes the probe lock).
    let out = env_bounded(&t, &["allocate", "--service", "api"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().iter().any(|(_, s, _)| s == "api"), "{out}");
    let mode = std::fs::metadata(t.registry_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for lock in ["registry.lock", "probe.lock"] {
        let text = std::fs::read_to_string(t.state_dir().join(lock)).unwrap();
        assert_eq!(text, "planted\n", "{lock} was written");
    }
    assert_eq!(snapshot(&out_dir.dir), before);
}

/// A config that is a link to `/dev/zero` was read without limit; one to
/// `/dev/stdin` or a FIFO hung. Now: exit 1 naming the file, at once: a
/// FIFO or a directory is no regular file (the message says which, where
/// it used to guess "a FIFO, a device, a directory?"), and a link (to a
/// device, or to a FIFO beside it) leads somewhere a config is not read
/// from.
#[test]
fn a_config_that_is_not_a_regular_file_is_refused_without_hanging() {
    for target in [
        "/dev/zero",
        "/dev/stdin",
        "fifo",
        "directory",
        "link to a fifo",
    ] {
        let t = TestEnv::new();
        let config = t.repo.join("wtenv.toml");
        std::fs::remove_file(&config).unwrap();
        let reason = match target {
            "fifo" => {
                mkfifo(&config);
                "(file): it is a FIFO, not a regular file\n"
            }
            "directory" => {
                std::fs::create_dir(&config).unwrap();
                "(file): it is a directory, not a regular file\n"
            }
            "link to a fifo" => {
                mkfifo(&t.repo.join("config.fifo"));
                std::os::unix::fs::symlink("config.fifo", &config).unwrap();
                "it is a link to "
            }
            _ => {
                std::os::unix::fs::symlink(target, &config).unwrap();
                "it is a link to "
            }
        };
        for args in [
            &["env"][..],
            &["env", "--hook"],
            &["list"],
            &["run", "--", "true"],
        ] {
            // stdin a pipe nobody writes to: /dev/stdin would block a read.
            let mut cmd = t.wtenv(args);
            let start = Instant::now();
            let out = run_bounded(&mut cmd, LIMIT);
            assert_eq!(out.code, Some(1), "{target} {args:?}: {out}");
            assert!(
                out.stderr
                    .contains(&format!("invalid config {}: {reason}", config.display())),
                "{target} {args:?}: {out}"
            );
            assert!(start.elapsed() < LIMIT);
        }
        assert!(t.allocations().is_empty());
    }
}

/// A config that is a link to a file of the user's (`/proc/self/environ`,
/// a credentials file, or the worktree's own untracked `.env`): its
/// errors quoted the file's first line, printing secrets on every `cd`.
/// Now a link is followed only into the Nix store (tested in
/// `nix::a_config_linked_into_the_nix_store_is_read`): any other is
/// refused, naming where it leads, and no line of the file is printed.
#[test]
fn a_config_linked_anywhere_but_the_nix_store_is_refused_and_never_quoted() {
    let t = TestEnv::new();
    let config = t.repo.join("wtenv.toml");
    let credentials = t.root().join("credentials");
    std::fs::write(&credentials, "https://alice:TOKEN-IN-FILE@example.com\n").unwrap();
    let dotenv = t.repo.join(".env");
    std::fs::write(&dotenv, "API_KEY=TOKEN-IN-DOTENV\n").unwrap();
    for target in [
        Path::new("/proc/self/environ"),
        &credentials,
        Path::new(".env"),
    ] {
        std::fs::remove_file(&config).unwrap();
        std::os::unix::fs::symlink(target, &config).unwrap();
        for args in [&["env"][..], &["env", "--hook"], &["list"]] {
            let out = run_bounded(t.wtenv(args).env("SECRET", "TOKEN-IN-ENV"), LIMIT);
            assert_eq!(out.code, Some(1), "{target:?} {args:?}: {out}");
            assert!(
                !out.stderr.contains("TOKEN-IN") && !out.stdout.contains("TOKEN-IN"),
                "{target:?} {args:?}: {out}"
            );
            assert!(
                out.stderr.contains(&format!(
                    "invalid config {}: it is a link to /",
                    config.display()
                )) && out
                    .stderr
                    .contains("a config is read through a link only into the Nix store"),
                "{target:?} {args:?}: {out}"
            );
        }
    }
    assert!(t.allocations().is_empty());
}

/// A config that is a link leading nowhere (a Nix store path since
/// collected) was read as no config: `env` reserved a port of the
/// built-in 5000-5099 range without a word. It is refused, naming the
/// link's target, and nothing is reserved.
#[test]
fn a_config_linked_nowhere_is_refused_and_reserves_nothing() {
    let t = TestEnv::new();
    let config = t.repo.join("wtenv.toml");
    std::fs::remove_file(&config).unwrap();
    let gone = t.root().join("collected/wtenv.toml");
    std::os::unix::fs::symlink(&gone, &config).unwrap();
    for args in [
        &["env"][..],
        &["env", "--hook"],
        &["allocate", "--service", "web"],
    ] {
        let out = env_bounded(&t, args);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: invalid config {}: it is a link to {}, which does not exist\n\
                 hint: restore the file it names, or remove the link to use the built-in defaults\n",
                config.display(),
                gone.display()
            ),
            "{args:?}"
        );
    }
    assert!(t.allocations().is_empty());
}

/// A downloaded tree whose `.git/commondir` is a link to a file of the
/// user's: the error named the unresolvable common dir by the file's
/// text, so every `cd` printed `/proc/self/environ` or a credentials
/// file. It names the `commondir` file instead, and prints none of it.
#[test]
fn a_planted_commondir_never_prints_what_it_holds() {
    let t = TestEnv::new();
    let credentials = t.root().join("credentials");
    std::fs::write(&credentials, "https://alice:TOKEN-IN-FILE@example.com\n").unwrap();
    let tree = t.root().join("downloaded");
    std::fs::create_dir_all(tree.join(".git")).unwrap();
    let pointer = tree.join(".git/commondir");
    for target in [Path::new("/proc/self/environ"), &credentials] {
        let _ = std::fs::remove_file(&pointer);
        std::os::unix::fs::symlink(target, &pointer).unwrap();
        for args in [&["env"][..], &["env", "--hook"], &["list"]] {
            let out = run_bounded(t.wtenv_in(&tree, args).env("SECRET", "TOKEN-IN-ENV"), LIMIT);
            assert_ne!(out.code, Some(0), "{target:?} {args:?}: {out}");
            assert!(
                !out.stderr.contains("TOKEN-IN"),
                "{target:?} {args:?}: {out}"
            );
            assert!(
                !out.stdout.contains("TOKEN-IN"),
                "{target:?} {args:?}: {out}"
            );
            assert!(
                out.stderr.contains(&format!(
                    "could not resolve the git common dir {} names",
                    pointer.display()
                )),
                "{target:?} {args:?}: {out}"
            );
        }
    }
}

#[test]
fn a_config_over_one_mib_is_refused() {
    let t = TestEnv::new();
    let mut text = format!("[purposes]\nfeature = \"{}\"\n", t.ports.range());
    text.push_str(&"# padding\n".repeat(110_000));
    std::fs::write(t.repo.join("wtenv.toml"), text).unwrap();
    let out = env_bounded(&t, &["env"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("it is larger than 1024 KiB"), "{out}");
    assert!(t.allocations().is_empty());
}

/// A config that made `env` export more than the kernel passes on: 2,500
/// services of 50-character names put 150 KB in `WTENV_PORTS` (here 70
/// services of 2,000 characters, so that the test allocates little
/// without the limit), a trusted `[env]` value 140 KB. Once a prompt hook
/// exported it, every command the shell started failed with E2BIG
/// ("Argument list too long"), even after leaving, since the hook's own
/// `wtenv` could not start. Refused before anything is allocated: the
/// registry is untouched, and every shell keeps running commands in the
/// worktree and after it.
#[test]
fn a_config_exporting_too_much_is_refused_and_every_shell_still_runs_commands() {
    let t = TestEnv::with_ports(PortBlock::take_many(4));
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let registry = std::fs::read(t.registry_path()).unwrap();
    let outside = t.root().join("home");
    let services: serde_json::Map<String, serde_json::Value> = (0..70)
        .map(|i| (format!("s{i}{}", "x".repeat(2000)), serde_json::json!({})))
        .collect();
    let many = serde_json::json!({
        "purposes": {"feature": t.ports.range()},
        "services": services,
    });
    let big = format!(
        "[purposes]\nfeature = \"{}\"\n[env]\nBIG = \"{}\"\n",
        t.ports.range(),
        "x".repeat(140_000)
    );
    for (name, text, key) in [
        ("wtenv.json", many.to_string(), "services"),
        ("wtenv.toml", big, "env.BIG"),
    ] {
        for old in ["wtenv.toml", "wtenv.json"] {
            let _ = std::fs::remove_file(t.repo.join(old));
        }
        let file = t.repo.join(name);
        std::fs::write(&file, text).unwrap();
        // Trusted where it can be: without the limit, `trust` takes it.
        run(&mut t.wtenv(&["trust"]));
        let error = format!("error: invalid config {}: {key}: ", file.display());
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{name}: {out}");
        assert!(out.stdout.is_empty(), "{name}: {out}");
        assert!(out.stderr.starts_with(&error), "{name}: {out}");
        for sh in SHELLS {
            let hook = hook_file(&t, sh.name());
            let script = format!(
                "source {}\ncd {}\n{h}\nenv true\necho in\ncd {}\n{h}\nenv true\necho out\n",
                q(&hook),
                q(&t.repo),
                q(&outside),
                h = sh.after_cd(),
            );
            let out = sh.run(&t, &outside, &script);
            assert_eq!(
                (out.code, out.stdout.as_str()),
                (Some(0), "in\nout\n"),
                "{name} {}: {out}",
                sh.name()
            );
            assert!(
                out.stderr.starts_with(&error),
                "{name} {}: {out}",
                sh.name()
            );
        }
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            registry,
            "{name}: the registry was written"
        );
    }
}

/// `WTENV_CD_FILE` as a FIFO hung `enter`; as a link it wrote through it.
#[test]
fn a_cd_file_that_is_a_fifo_or_a_link_is_refused_without_hanging() {
    let t = TestEnv::new();
    let out_dir = Outside::new(&t);
    let cd_dir = t.root().join("cd");
    std::fs::create_dir_all(&cd_dir).unwrap();
    let fifo = cd_dir.join("fifo");
    mkfifo(&fifo);
    let link = cd_dir.join("link");
    std::os::unix::fs::symlink(&out_dir.victim, &link).unwrap();
    let before = snapshot(&out_dir.dir);
    for file in [&fifo, &link] {
        let out = run_bounded(t.wtenv(&["enter", "x"]).env("WTENV_CD_FILE", file), LIMIT);
        assert_eq!(out.code, Some(1), "{}: {out}", file.display());
        assert!(out.stderr.contains("WTENV_CD_FILE"), "{out}");
        assert!(out.stderr.contains("hint: "), "{out}");
    }
    assert_eq!(snapshot(&out_dir.dir), before);
    assert!(
        t.allocations().is_empty(),
        "refused before anything was made"
    );
    assert!(!t.git(&["branch", "--list"]).contains("feature/x"));
    // A regular file still works.
    let file = cd_dir.join("file");
    std::fs::write(&file, "").unwrap();
    let out = run_bounded(t.wtenv(&["enter", "x"]).env("WTENV_CD_FILE", &file), LIMIT);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        out.stdout.trim_end()
    );
}

// ---- case 17: registries wtenv did not write -------------------------

/// A registry holding `json`, then `args` run in the main worktree and in
/// another: exit 2, the file byte-identical, the reason named, once (a
/// `run` refused so also said it "could not release the ports held by
/// this wtenv", which held none, and `create --ports` that its rollback
/// "could not release the ports", with the hint to remove them by hand).
fn assert_registry_refused(t: &TestEnv, text: &str, reason: &str) {
    let path = t.registry_path();
    std::fs::create_dir_all(t.state_dir()).unwrap();
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = t.root().join("other");
    if !other.exists() {
        t.add_worktree("other");
    }
    for (dir, args) in [
        (&t.repo, &["env"][..]),
        (&other, &["env"][..]),
        (&other, &["allocate", "--service", "app"][..]),
        (&t.repo, &["ports"][..]),
        (&t.repo, &["release"][..]),
        (&t.repo, &["run", "--", "true"][..]),
        (
            &t.repo,
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "x",
                "--ports",
            ][..],
        ),
    ] {
        let out = run_bounded(&mut t.wtenv_in(dir, args), LIMIT);
        assert_eq!(out.code, Some(2), "{args:?} in {}: {out}", dir.display());
        assert!(out.stdout.is_empty(), "{out}");
        assert!(
            out.stderr.contains(reason),
            "{args:?}: no {reason:?}: {out}"
        );
        assert_eq!(out.stderr.matches("error: ").count(), 1, "{args:?}: {out}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{args:?}");
    }
}

fn entry(t: &TestEnv, port: u16, worktree: &Path) -> String {
    t.record(
        port,
        "app",
        "feature",
        worktree,
        true,
        serde_json::json!([]),
    )
    .to_string()
}

/// A second, empty `"allocations"` made the first one's entries vanish:
/// another worktree was then given their ports.
#[test]
fn a_registry_with_a_key_given_twice_is_exit_2_and_untouched() {
    let t = TestEnv::new();
    let mine = entry(&t, t.ports.start, &t.repo);
    let text =
        format!("{{\"version\": 1, \"allocations\": [\n  {mine}\n], \"allocations\": []}}\n");
    assert_registry_refused(&t, &text, "a key is given twice");
    // `"version": 2` then `1` was overwritten as version 1.
    let text = format!("{{\"version\": 2, \"version\": 1, \"allocations\": [{mine}]}}");
    assert_registry_refused(&t, &text, "a key is given twice");
    // Inside a record, in the layout wtenv writes (the line reader).
    let twice = mine.replacen('{', &format!("{{\"port\": {}, ", t.ports.port(3)), 1);
    let text = format!("{{\"version\": 1, \"allocations\": [\n  {twice}\n]}}\n");
    assert_registry_refused(&t, &text, "a key is given twice");
}

/// One port recorded twice: `env` exported two services on it with exit 0.
#[test]
fn a_registry_with_one_port_twice_is_exit_2_and_untouched() {
    let t = TestEnv::new();
    let other = t.root().join("other");
    let a = t.record(
        t.ports.start,
        "app",
        "feature",
        &t.repo,
        true,
        serde_json::json!([]),
    );
    let b = t.record(
        t.ports.start,
        "web",
        "feature",
        &other,
        true,
        serde_json::json!([]),
    );
    // In the layout wtenv writes (the line reader), and pretty-printed
    // (the full parse).
    let lines = format!("{{\"version\": 1, \"allocations\": [\n  {a},\n  {b}\n]}}\n");
    assert_registry_refused(&t, &lines, &format!("port {} twice", t.ports.start));
    let pretty =
        serde_json::to_string_pretty(&serde_json::json!({"version": 1, "allocations": [a, b]}))
            .unwrap();
    assert_registry_refused(&t, &pretty, &format!("port {} twice", t.ports.start));
    // `validate` still shows it, as a critical finding.
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stdout.contains("duplicate-port"), "{out}");
}

/// Ports outside 1024-65535 made the liveness check bind port 80 or 0.
#[test]
fn a_registry_with_a_port_below_1024_is_exit_2_and_untouched() {
    let t = TestEnv::new();
    for port in [0, 80, 1023] {
        let e = entry(&t, port, &t.repo);
        let text = format!("{{\"version\": 1, \"allocations\": [\n  {e}\n]}}\n");
        assert_registry_refused(&t, &text, "outside 1024-65535");
        // `validate` shows it as critical, and `--fix` leaves it as it is.
        for args in [&["validate"][..], &["validate", "--fix"]] {
            let out = run(&mut t.wtenv(args));
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert!(out.stdout.contains("privileged-port"), "{out}");
            assert_eq!(std::fs::read_to_string(t.registry_path()).unwrap(), text);
        }
    }
}

/// A registry or lock file the kernel keeps a user from opening (another
/// user's, as one `sudo wtenv` leaves behind; or the user's own with its
/// owner's bits taken) was "could not read registry: Permission denied",
/// exit 1 and no hint, where root, whom the kernel lets through, was
/// told exit 2 and the way out. Every user is now told as root is, and
/// nothing is written.
#[test]
fn a_registry_or_lock_the_kernel_keeps_the_user_from_is_exit_2_with_the_way_out() {
    use std::os::unix::fs::chown;
    let t = with_registry();
    t.give_to_nobody();
    let registry = t.registry_path();
    let lock = t.state_dir().join("registry.lock");
    let nobody = {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(t.state_dir()).unwrap();
        (Some(meta.uid()), Some(meta.gid()))
    };
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
    let quoted = |p: &Path| format!("'{}'", p.display());
    let refused = |reason: &str, hint: &str| {
        let before = snapshot(&t.root());
        for args in [&["env"][..], &["ports"], &["allocate", "--service", "web"]] {
            let out = run_bounded(&mut t.wtenv_as_nobody(args), LIMIT);
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert!(out.stdout.is_empty(), "{args:?}: {out}");
            let want = format!(
                "error: registry {} cannot be used: {reason}",
                registry.display()
            );
            assert!(
                out.stderr.starts_with(&want),
                "{args:?}: want {want:?}: {out}"
            );
            assert!(
                out.stderr.ends_with(&format!("\nhint: {hint}\n")),
                "{args:?}: want the hint {hint:?}: {out}"
            );
        }
        assert!(snapshot(&t.root()) == before, "something changed");
    };

    chown(&registry, Some(0), Some(0)).unwrap();
    refused(
        "it belongs to uid 0, not to you",
        "use a registry of your own: set WTENV_STATE_DIR or pass --registry",
    );
    chown(&registry, nobody.0, nobody.1).unwrap();

    mode(&registry, 0o000).unwrap();
    refused(
        "its mode 000 keeps its owner (you) from reading or writing it",
        &format!("chmod 600 {}", quoted(&registry)),
    );
    mode(&registry, 0o600).unwrap();

    chown(&lock, Some(0), Some(0)).unwrap();
    refused(
        &format!(
            "its lock file {}: it belongs to uid 0, not to you",
            lock.display()
        ),
        &format!(
            "something other than wtenv put it there: remove it (rm {}), wtenv makes a new one",
            quoted(&lock)
        ),
    );
    chown(&lock, nobody.0, nobody.1).unwrap();

    let out = run(&mut t.wtenv_as_nobody(&["env"]));
    assert_eq!(out.code, Some(0), "once mended: {out}");
}

/// A trust list of another user's (left by `sudo wtenv trust`) was "cannot
/// be used: Permission denied (os error 13)" for a user, where root was
/// told whose it is. Every user is told as root is, and nothing changes.
#[test]
fn a_trust_list_of_another_user_is_named_as_such_for_every_user() {
    let t = with_registry();
    let out = run(&mut t.wtenv(&["trust"]));
    assert_eq!(out.code, Some(0), "{out}");
    t.give_to_nobody();
    let list = t.state_dir().join("trust.json");
    std::os::unix::fs::chown(&list, Some(0), Some(0)).unwrap();
    let before = snapshot(&t.root());
    for args in [&["trust", "--list"][..], &["trust"]] {
        let out = run_bounded(&mut t.wtenv_as_nobody(args), LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: trust list {} cannot be used: it belongs to uid 0, not to you",
                list.display()
            )),
            "{args:?}: {out}"
        );
        assert!(out.stderr.contains("\nhint: "), "{args:?}: {out}");
    }
    assert!(snapshot(&t.root()) == before, "something changed");
}

// ---- case 18: paths that are not UTF-8 --------------------------------

/// `env`, `allocate` and `create` panicked (exit 101) in a repository
/// whose path is not UTF-8: now exit 1 naming the path, nothing recorded.
#[test]
fn a_repository_path_that_is_not_utf8_is_refused_never_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestEnv::new();
    let name = std::ffi::OsStr::from_bytes(b"repo-\xff");
    let bad = t.root().join(name);
    std::fs::rename(&t.repo, &bad).unwrap();
    for args in [
        &["env"][..],
        &["env", "--hook"],
        &["env", "--format", "json"],
        &["allocate", "--service", "app"],
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "x",
            "--ports",
        ],
        &["enter", "y"],
        &["run", "--", "true"],
    ] {
        let out = run_bounded(&mut t.wtenv_in(&bad, args), LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(out.stderr.contains("not valid UTF-8"), "{args:?}: {out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
    assert!(!t.registry_path().exists(), "something was recorded");
    // A UTF-8 repository asked to create a worktree at a non-UTF-8 path.
    let t = TestEnv::new();
    let target = t.root().join(name);
    let mut cmd = t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "x",
        "--ports",
    ]);
    cmd.arg("--path").arg(&target);
    let out = run_bounded(&mut cmd, LIMIT);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("not valid UTF-8"), "{out}");
    assert!(!target.exists());
    assert!(t.allocations().is_empty());
}

// ---- settings from the environment and the command line -------------

/// `WTENV_LOCK_TIMEOUT=30` was silently 10 s; `banana` too.
#[test]
fn lock_timeout_takes_bare_seconds_and_refuses_what_it_cannot_parse() {
    let t = with_registry();
    let out = run(t.wtenv(&["ports"]).env("WTENV_LOCK_TIMEOUT", "banana"));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("WTENV_LOCK_TIMEOUT=\"banana\" is not a duration"),
        "{out}"
    );
    let lock = t.state_dir().join("registry.lock");
    let mut holder = std::process::Command::new("flock")
        .args(["-F", lock.to_str().unwrap(), "sleep", "60"])
        .spawn()
        .unwrap();
    // Poll until the holder has the lock (a 0 s wait fails at once).
    assert!(crate::support::wait_for(Duration::from_secs(30), || {
        run(t.wtenv(&["ports"]).env("WTENV_LOCK_TIMEOUT", "0")).code == Some(2)
    }));
    let out = run(t.wtenv(&["ports"]).env("WTENV_LOCK_TIMEOUT", "1"));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("busy for 1s"), "{out}");
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// `--registry registry.json` (a bare file name) read an empty registry.
#[test]
fn a_bare_registry_file_name_is_resolved_like_any_relative_path() {
    let t = with_registry();
    let out = run(&mut t.wtenv_in(
        &t.state_dir(),
        &["--registry", "registry.json", "ports", "--all"],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&t.ports.start.to_string()),
        "the allocation is not listed: {out}"
    );
}

/// `--registry` naming the state directory instead of its file: the
/// locks were made in its parent, and the hint said to move the
/// directory, registry and all, aside. It is refused first, naming the
/// file to pass, and nothing is made anywhere.
#[test]
fn a_registry_flag_naming_a_directory_points_at_its_file_and_makes_nothing() {
    let t = with_registry();
    // The directory, and a link to it (in a directory of its own, whose
    // snapshot shows a lock made beside the link).
    let links = t.root().join("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink(t.state_dir(), links.join("state")).unwrap();
    let before = (snapshot(&t.root().join("state")), snapshot(&links));
    for dir in [t.state_dir(), links.join("state")] {
        for args in [
            &["env"][..],
            &["ports"],
            &["allocate", "--service", "x"],
            &["validate", "--fix"],
        ] {
            let mut full = vec!["--registry", dir.to_str().unwrap()];
            full.extend_from_slice(args);
            let out = run(&mut t.wtenv(&full));
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: registry {dir} cannot be used: it is a directory\n\
                     hint: --registry names the registry's file, not its directory: pass --registry '{dir}/registry.json'\n",
                    dir = dir.display()
                ),
            );
        }
    }
    assert_eq!(
        (snapshot(&t.root().join("state")), snapshot(&links)),
        before
    );
}

/// `--registry /dev/null` made its lock in `/dev`, then said to move
/// `/dev/null` aside. A device, a FIFO or a socket is refused before any
/// lock is made beside it (here a FIFO, and a link to `/dev/null`, each
/// in a directory of its own whose snapshot would show the lock).
#[test]
fn a_registry_flag_naming_a_device_or_fifo_is_refused_and_makes_nothing() {
    let t = with_registry();
    let dir = t.root().join("special");
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let null = dir.join("null");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    let before = (snapshot(&t.state_dir()), snapshot(&dir));
    for path in [&fifo, &null] {
        for args in [&["env"][..], &["ports"], &["validate", "--fix"]] {
            let mut full = vec!["--registry", path.to_str().unwrap()];
            full.extend_from_slice(args);
            let out = run_bounded(&mut t.wtenv(&full), LIMIT);
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: registry {} cannot be used: it is {}, not a regular file\n\
                     hint: --registry names the registry's file: pass the path of a regular file, or of one wtenv may create\n",
                    path.display(),
                    if path == &fifo {
                        "a FIFO"
                    } else {
                        "a character device"
                    }
                ),
                "{args:?}"
            );
        }
    }
    assert_eq!((snapshot(&t.state_dir()), snapshot(&dir)), before);
}

/// `remove ""` (a script's `wtenv remove "$WT" --force` with WT unset)
/// read the empty word as the path "", the current directory, and with
/// --force removed the worktree it ran in. It is refused, and the
/// worktree, its branch and its ports stay.
#[test]
fn remove_of_an_empty_word_is_refused_and_removes_nothing() {
    let t = TestEnv::new();
    let wt = t.add_worktree("linked");
    assert_eq!(run(&mut t.wtenv_in(&wt, &["env"])).code, Some(0));
    let before = (t.allocations(), t.git(&["worktree", "list"]));
    for args in [&["remove", ""][..], &["remove", "", "--force"]] {
        let out = run(&mut t.wtenv_in(&wt, args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            "error: the worktree to remove is an empty word\n\
             hint: name it by its identifier or its path ('.' for this one); 'wtenv list' shows them\n",
            "{args:?}"
        );
        assert!(wt.exists(), "{args:?}: {out}");
    }
    assert_eq!((t.allocations(), t.git(&["worktree", "list"])), before);
}

/// An unparsable `WTENV_LOG` was silently ignored.
#[test]
fn an_unparsable_wtenv_log_is_an_error_naming_it() {
    let t = TestEnv::new();
    for bad in ["banana", "wtenv=loud"] {
        let out = run(t.wtenv(&["env"]).env("WTENV_LOG", bad));
        assert_eq!(out.code, Some(1), "{bad}: {out}");
        assert!(
            out.stderr
                .contains(&format!("WTENV_LOG={bad:?} is not a log filter")),
            "{out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    for good in ["debug", "wtenv=debug", "info,wtenv::probe=trace", ""] {
        let out = run(t.wtenv(&["env"]).env("WTENV_LOG", good));
        assert_eq!(out.code, Some(0), "{good}: {out}");
    }
}

/// `conflicts` outside a repository probed the built-in ranges, which
/// have nothing to do with any repository of the user's.
#[test]
fn conflicts_outside_a_repository_has_nothing_to_check_unless_all() {
    let t = with_registry();
    let outside = t.root().join("home");
    let out = run(&mut t.wtenv_in(&outside, &["conflicts"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("no configuration to check"), "{out}");
    assert!(out.stderr.contains("--all"), "{out}");
    let out = run(&mut t.wtenv_in(&outside, &["conflicts", "--all"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("no conflicts in feature {}", t.ports.range())),
        "the registry's repository's range: {out}"
    );
    // A registry that records no repository: nothing was checked, and
    // the line says so (it was "no conflicts in ", naming nothing).
    let empty = t.root().join("empty-registry.json");
    let out = run(&mut t.wtenv_in(
        &outside,
        &["--registry", empty.to_str().unwrap(), "conflicts", "--all"],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr,
        "no conflicts: no range to check (no repository of the registry has a main worktree)\n",
        "{out}"
    );
    let busy = t.ports.port(5);
    let _listener = crate::support::PyListener::start(&outside, "4", "127.0.0.1", busy, "");
    let out = run(&mut t.wtenv_in(&outside, &["conflicts", "--all", "--json"]));
    assert_eq!(out.code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["conflicts"][0]["port"], busy, "{out}");
}

/// A misspelt `[purpose]` fell back to the built-in ranges, and
/// `validate --fix` then released every allocation without a word. Now
/// the config error is shown and nothing is released; a warning of a
/// config (an unknown key) is shown by `validate` too.
#[test]
fn validate_shows_config_problems_and_a_misspelt_table_releases_nothing() {
    let t = with_registry();
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purpose]\nfeature = \"{}\"\n", t.ports.range()),
    )
    .unwrap();
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert!(out.stderr.contains("did you mean [purposes]?"), "{out}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before, "{out}");
    t.write_config("[services.app]\nreadyness = \"5s\"\n");
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains("unknown key \"services.app.readyness\""),
        "{out}"
    );
}

/// A `.git` that is a FIFO or a link to `/dev/zero` (a downloaded tree can
/// hold anything) hung or read without end every prompt hook run in it.
#[test]
fn a_dot_git_that_is_not_a_regular_file_hangs_nothing() {
    let t = TestEnv::new();
    for plant in ["fifo", "/dev/zero"] {
        let dir = t.repo.join(format!("sub-{}", plant.replace('/', "_")));
        std::fs::create_dir_all(&dir).unwrap();
        let dot_git = dir.join(".git");
        if plant == "fifo" {
            mkfifo(&dot_git);
        } else {
            std::os::unix::fs::symlink(plant, &dot_git).unwrap();
        }
        for args in [&["env", "--hook"][..], &["env"]] {
            let out = run_bounded(&mut t.wtenv_in(&dir, args), LIMIT);
            assert_eq!(out.code, Some(1), "{plant} {args:?}: {out}");
            let kind = match plant {
                "fifo" => "a FIFO",
                _ => "a character device",
            };
            assert!(
                out.stderr.contains(&format!(
                    "could not read {}: it is {kind}, not a regular file",
                    dot_git.display()
                )),
                "{plant} {args:?}: {out}"
            );
        }
    }
}

// ---- the worktree's own git dir: a downloaded tree can plant anything ----

/// A `.git` naming `/proc/self` (or `/proc/thread-self`, or `/dev/fd/0`)
/// resolves to another directory in every process: the registry recorded
/// the repository as `/proc/18536`, then `/proc/18537`, and every `env`
/// reserved another port. A git dir or common dir under `/proc`, `/sys`
/// or `/dev`, however it is named (`.git` file or link, `commondir`), is
/// refused with exit 1 naming the file, and nothing is reserved. So is one
/// whose name only passes through them: `/proc/self/cwd` resolves to the
/// current directory, outside `/proc`, and made each subdirectory `cd`
/// entered a repository of its own, with a port of its own; a link to it
/// did the same.
#[test]
fn a_git_dir_under_proc_sys_or_dev_is_refused_and_reserves_nothing() {
    let t = with_registry();
    let registry = std::fs::read(t.registry_path()).unwrap();
    let via = t.root().join("via-link");
    std::os::unix::fs::symlink("/proc/self/cwd", &via).unwrap();
    let via = via.to_str().unwrap();
    let plants = [
        ("file", "/proc/self", "/proc/"),
        ("file", "/proc/thread-self", "/proc/"),
        ("file", "/dev/fd/0", "/dev/"),
        ("file", "/sys/kernel", "/sys/kernel"),
        ("link", "/proc/self", "/proc/"),
        ("commondir", "/proc/self", "/proc/"),
        ("file", "/proc/self/cwd", "/proc/self/cwd"),
        ("link", "/proc/self/cwd", "/proc/self/cwd"),
        ("commondir", "/proc/self/cwd", "/proc/self/cwd"),
        ("file", via, "/proc/self/cwd"),
        ("commondir", via, "/proc/self/cwd"),
    ];
    for (i, (how, target, shown)) in plants.into_iter().enumerate() {
        let dir = t.root().join(format!("tree-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("wtenv.toml"), "[services.web]\n").unwrap();
        let dot_git = dir.join(".git");
        let named_by = match how {
            "file" => {
                std::fs::write(&dot_git, format!("gitdir: {target}\n")).unwrap();
                dot_git.clone()
            }
            "link" => {
                std::os::unix::fs::symlink(target, &dot_git).unwrap();
                dot_git.clone()
            }
            _ => {
                std::fs::create_dir_all(&dot_git).unwrap();
                std::fs::write(dot_git.join("commondir"), format!("{target}\n")).unwrap();
                dot_git.join("commondir")
            }
        };
        // From a subdirectory too: `/proc/self/cwd` names it there.
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        for (cwd, args) in [
            (&dir, &["env"][..]),
            (&dir, &["env", "--hook"]),
            (&dir, &["list"]),
            (&sub, &["env"]),
        ] {
            let out = run_bounded(&mut t.wtenv_in(cwd, args), LIMIT);
            assert_eq!(out.code, Some(1), "{how} {target} {args:?}: {out}");
            assert!(
                out.stderr
                    .starts_with(&format!("error: cannot use {shown}"))
                    && out
                        .stderr
                        .contains(&format!(": {} names it, and ", named_by.display()))
                    && out.stderr.contains("\nhint: "),
                "{how} {target} {args:?}: {out}"
            );
            assert!(!out.stdout.contains("WEB_PORT"), "{out}");
        }
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            registry,
            "{how} {target}: the registry was written"
        );
    }
}

/// `env` rewrites the worktree's stamp when its ports change (direnv
/// watches it). Planted as a link, or as a hard link, to a user's file, the
/// stamp must not be written through: entering the tree would overwrite
/// that file.
#[test]
fn a_stamp_planted_as_a_link_or_hard_link_is_never_written_through() {
    let t = TestEnv::new();
    let outside = Outside::new(&t);
    let stamp = t.repo.join(".git/wtenv.stamp");
    for kind in ["symlink", "hard link"] {
        let _ = std::fs::remove_file(&stamp);
        if kind == "symlink" {
            std::os::unix::fs::symlink(&outside.victim, &stamp).unwrap();
        } else {
            std::fs::hard_link(&outside.victim, &stamp).unwrap();
        }
        // A change of ports, so the stamp is due: allocate, then release.
        for args in [&["env"][..], &["release"]] {
            let out = env_bounded(&t, args);
            assert_eq!(out.code, Some(0), "{kind} {args:?}: {out}");
        }
        assert_eq!(
            std::fs::read_to_string(&outside.victim).unwrap(),
            "the user's file\n",
            "{kind}: the stamp was written through"
        );
    }
    // The stamp is written again once it is a file of ours.
    std::fs::remove_file(&stamp).unwrap();
    let out = env_bounded(&t, &["env"]);
    assert_eq!(out.code, Some(0), "{out}");
    let written = std::fs::symlink_metadata(&stamp).unwrap();
    assert!(written.is_file(), "{written:?}");
}

/// A `.git` file (or a `.git` link) in a downloaded tree can name any
/// directory as the worktree's git dir. `env` still exports ports there,
/// but writes nothing into that directory, and a FIFO planted where the
/// worktree's record would be hangs nothing.
#[test]
fn a_dot_git_naming_a_foreign_directory_gets_nothing_written_there() {
    let t = TestEnv::new();
    let outside = Outside::new(&t);
    mkfifo(&outside.dir.join("wtenv.json"));
    let before = snapshot(&outside.dir);
    let by_file = t.root().join("by-file");
    std::fs::create_dir_all(&by_file).unwrap();
    std::fs::write(
        by_file.join(".git"),
        format!("gitdir: {}\n", outside.dir.display()),
    )
    .unwrap();
    let by_link = t.root().join("by-link");
    std::fs::create_dir_all(&by_link).unwrap();
    std::os::unix::fs::symlink(&outside.dir, by_link.join(".git")).unwrap();
    for tree in [&by_file, &by_link] {
        for args in [&["env"][..], &["release"], &["env"]] {
            let out = run_bounded(&mut t.wtenv_in(tree, args), LIMIT);
            assert_eq!(out.code, Some(0), "{} {args:?}: {out}", tree.display());
        }
        let out = run_bounded(&mut t.wtenv_in(tree, &["env"]), LIMIT);
        assert!(out.stdout.contains("export PORT="), "{out}");
    }
    assert_eq!(
        snapshot(&outside.dir),
        before,
        "written into the foreign directory"
    );
    assert!(!outside.absent.exists());
}

/// A stored identifier `create` would refuse (a NUL in it made fish's
/// `source` fail, so nothing was applied) is dropped with one warning
/// naming the file; the directory name stands in, as for a worktree made
/// by hand, and every shell applies the output.
#[test]
fn an_invalid_stored_identifier_falls_back_to_the_directory_name_with_a_warning() {
    let t = TestEnv::new();
    let record = t.repo.join(".git/wtenv.json");
    std::fs::write(&record, r#"{"identifier":"id\u0000$(touch PWNED)"}"#).unwrap();
    let out = run(&mut t.wtenv(&["env", "--format", "fish"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "warning: {}: invalid identifier \"id\\0$(touch PWNED)\"; using the directory name\n",
            record.display()
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains("set -gx WTENV_IDENTIFIER 'repo'\n"),
        "{out}"
    );
    let file = t.root().join("out.fish");
    std::fs::write(&file, &out.stdout).unwrap();
    let sourced = Sh::Fish.run(
        &t,
        &t.repo,
        &format!("source '{}'\nprintf %s $WTENV_IDENTIFIER", file.display()),
    );
    assert_eq!(
        (sourced.code, sourced.stdout.as_str()),
        (Some(0), "repo"),
        "{sourced}"
    );
    assert_eq!(pwned_under(&t.root()), None);

    // `-q` drops the warning; `list` names the worktree by its directory.
    let out = run(&mut t.wtenv(&["-q", "env"]));
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out}");
    let out = run(&mut t.wtenv(&["list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["worktrees"][0]["identifier"], "repo", "{out}");
}

/// A stored purpose the config does not define is named in the error and
/// its hint with control characters escaped: the repository wrote it, and
/// the message is printed on every `cd` under the shell hook.
#[test]
fn an_undefined_stored_purpose_is_shown_escaped() {
    let t = TestEnv::new();
    let record = t.repo.join(".git/wtenv.json");
    std::fs::write(&record, r#"{"purpose":"x\u001b]0;T\u0007\ny"}"#).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("error: worktree ")
            && lines[0].ends_with(
                r#" has purpose "x\u{1b}]0;T\u{7}\ny", which the config does not define"#
            ),
        "{out}"
    );
    assert_eq!(
        lines[1], r"hint: add x\u{1b}]0;T\u{7}\ny to [purposes] in wtenv.toml",
        "{out}"
    );
    assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
}

/// A directory named with an escape sequence and a newline is shown
/// escaped in the errors and warnings that name it, as a config's own
/// text is: a repository cloned under such a name would otherwise drive
/// the terminal, or forge a line, on every `cd` under the shell hook.
#[test]
fn a_path_with_control_characters_is_shown_escaped_in_messages() {
    let t = TestEnv::new();
    let dir = t.root().join("a\x1b]0;T\x07\nb");
    t.init_repo(&dir);
    let shown = format!("{}/a\\u{{1b}}]0;T\\u{{7}}\\nb", t.root().display());
    let config = dir.join("wtenv.toml");
    let range = std::fs::read_to_string(&config).unwrap();
    let check = |args: &[&str], code: i32, stderr: String| {
        let out = run(&mut t.wtenv_in(&dir, args));
        assert_eq!((out.code, &out.stderr), (Some(code), &stderr), "{out}");
        assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
    };

    // A release with nothing to release: a warning, and an error for a
    // service.
    check(
        &["release"],
        0,
        format!("warning: worktree {shown} has no allocations\n"),
    );
    check(
        &["release", "--service", "web"],
        1,
        format!(
            "error: worktree {shown} has no allocation for service \"web\"\n\
             hint: it has no allocations; 'wtenv ports --all' lists the registry's\n"
        ),
    );
    // A key of the config wtenv does not know: a warning; a config that
    // does not parse: an error.
    std::fs::write(&config, format!("{range}[allocation]\nbogus = 1\n")).unwrap();
    check(
        &["env", "--format", "json"],
        0,
        format!("warning: {shown}/wtenv.toml: unknown key \"allocation.bogus\" (ignored)\n"),
    );
    std::fs::write(&config, "[purposes\n").unwrap();
    let out = run(&mut t.wtenv_in(&dir, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with(&format!("error: invalid config {shown}/wtenv.toml:1:")),
        "{out}"
    );
    assert!(!out.stderr.contains(['\x1b', '\x07']), "{out}");
}

/// A state directory that is a link leading nowhere (a loop, or dangling):
/// `env` said "could not create its directory: File exists", and the views
/// showed an empty registry, as if nothing were recorded. Both now say the
/// directory cannot be read, exit 2, and nothing is created.
#[test]
fn a_state_directory_that_is_a_broken_link_is_unusable_everywhere() {
    let t = TestEnv::new();
    let state = t.root().join("state-link");
    for (how, target) in [
        ("loop", state.clone()),
        ("dangling", t.root().join("absent")),
    ] {
        let _ = std::fs::remove_file(&state);
        std::os::unix::fs::symlink(&target, &state).unwrap();
        for args in [&["env"][..], &["ports"], &["list"], &["validate"]] {
            let out = run_bounded(t.wtenv(args).env("WTENV_STATE_DIR", &state), LIMIT);
            assert_eq!(out.code, Some(2), "{how} {args:?}: {out}");
            // validate reports it as a finding, on stdout.
            let said = if args[0] == "validate" {
                &out.stdout
            } else {
                &out.stderr
            };
            assert!(
                said.contains(&format!(
                    "its directory {} cannot be read: ",
                    state.display()
                )),
                "{how} {args:?}: {out}"
            );
            assert!(
                args[0] == "validate" || out.stderr.contains("\nhint: check the path"),
                "{how} {args:?}: {out}"
            );
        }
        assert!(!t.root().join("absent").exists(), "{how}: created");
    }
}
