//! A config that is not a regular file, a link anywhere but into the Nix
//! store (or nowhere), over one MiB, or exporting more than the kernel
//! passes on.

use std::path::Path;
use std::time::Instant;

use super::{LIMIT, env_bounded, mkfifo};
use crate::shell::{SHELLS, hook_file, q};
use crate::support::{PortBlock, TestEnv, run, run_bounded};

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
                "it is a FIFO, not a regular file\n"
            }
            "directory" => {
                std::fs::create_dir(&config).unwrap();
                "it is a directory, not a regular file\n"
            }
            // Named as the link is written (`ls -l`), not where it
            // resolves: `/dev/stdin` named `/dev/null` or `/dev/pts/0`.
            "link to a fifo" => {
                mkfifo(&t.repo.join("config.fifo"));
                std::os::unix::fs::symlink("config.fifo", &config).unwrap();
                "it is a link to config.fifo;"
            }
            "/dev/zero" => {
                std::os::unix::fs::symlink(target, &config).unwrap();
                "it is a link to /dev/zero;"
            }
            _ => {
                std::os::unix::fs::symlink(target, &config).unwrap();
                "it is a link to /dev/stdin;"
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
            // The link's own target, as `ls -l` shows it: not
            // `/proc/24578/environ`, nor `.env` made absolute.
            assert!(
                out.stderr.contains(&format!(
                    "invalid config {}: it is a link to {};",
                    config.display(),
                    target.display()
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
                 hint: restore the file it names, or remove the link to use the built-in defaults\n{}",
                config.display(),
                gone.display(),
                // The prompt hook's failures say how to load once fixed.
                if args.contains(&"--hook") {
                    format!("hint: {}\n", wtenv::commands::env::RETRY_HINT)
                } else {
                    String::new()
                }
            ),
            "{args:?}"
        );
    }
    assert!(t.allocations().is_empty());
}

/// A config that is a link to itself (or to a link back to it) is a
/// link that leads nowhere, and is said so: it was "(file): it is a
/// symbolic link", which says nothing of the loop.
#[test]
fn a_config_linked_in_a_loop_is_said_to_lead_nowhere() {
    let t = TestEnv::new();
    let config = t.repo.join("wtenv.toml");
    for target in ["wtenv.toml", "other.toml"] {
        let _ = std::fs::remove_file(&config);
        let _ = std::fs::remove_file(t.repo.join("other.toml"));
        std::os::unix::fs::symlink(target, &config).unwrap();
        if target == "other.toml" {
            std::os::unix::fs::symlink("wtenv.toml", t.repo.join("other.toml")).unwrap();
        }
        let out = env_bounded(&t, &["env"]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                Some(1),
                &*format!(
                    "error: invalid config {}: it is a link to {target}, which leads nowhere (a loop of links)\n\
                     hint: point the link at a file, or remove it to use the built-in defaults\n",
                    config.display()
                )
            ),
            "{target}: {out}"
        );
    }
    assert!(t.allocations().is_empty());
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
