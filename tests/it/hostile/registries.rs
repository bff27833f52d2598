//! Registries wtenv did not write (a key twice, a port twice, a port
//! below 1024), and a registry, lock or trust list the kernel keeps the
//! user from.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{LIMIT, with_registry};
use crate::support::{TestEnv, run, run_bounded, snapshot};

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

/// One service of a worktree recorded twice, with two ports: `validate`
/// called the registry valid. It is an error there, `duplicate-service`,
/// not fixed (which port is the worktree's is a guess) and not a refusal
/// of the registry (a flaw of wtenv's own that wrote one would lock every
/// command out): `release` of the service mends it, and the next `env`
/// takes one port.
#[test]
fn one_service_of_a_worktree_twice_is_a_validate_error_that_release_mends() {
    let t = TestEnv::new();
    let (a, b) = (
        entry(&t, t.ports.port(0), &t.repo),
        entry(&t, t.ports.port(2), &t.repo),
    );
    let lines = format!("{{\"version\": 1, \"allocations\": [\n  {a},\n  {b}\n]}}\n");
    std::fs::create_dir_all(t.state_dir()).unwrap();
    std::fs::set_permissions(t.state_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(t.registry_path(), &lines).unwrap();
    std::fs::set_permissions(t.registry_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    for args in [&["validate"][..], &["validate", "--fix"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stdout.contains(&format!(
                "error: duplicate-service: port {} (app) of {}: service app of {} is also recorded with port {}: ",
                t.ports.port(2),
                t.repo.display(),
                t.repo.display(),
                t.ports.port(0)
            )) && out.stdout.contains("run 'wtenv release --service app' in that worktree")
                && out.stdout.contains("[needs manual intervention]"),
            "{args:?}: {out}"
        );
        assert_eq!(std::fs::read_to_string(t.registry_path()).unwrap(), lines);
    }
    assert_eq!(
        run(&mut t.wtenv(&["release", "--service", "app"])).code,
        Some(0)
    );
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(t.allocations().len(), 1, "{:?}", t.allocations());
    assert_eq!(run(&mut t.wtenv(&["validate"])).code, Some(0));
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
            // The port is outside its purpose's range too: a fixable
            // finding that `--fix` could not fix says why, rather than
            // sending the user to the `--fix` they just ran.
            let left = out
                .stdout
                .lines()
                .find(|l| l.contains("out-of-range"))
                .unwrap_or_else(|| panic!("{out}"));
            if args.len() == 2 {
                assert!(
                    left.ends_with("[not fixed: --fix rewrites no registry with a critical finding; resolve it first]"),
                    "{out}"
                );
            } else {
                assert!(left.ends_with("[fixable: run with --fix]"), "{out}");
            }
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

/// A registry or lock file of yours with its owner's bits taken: a user
/// is refused by the kernel, and so wtenv refused them, exit 2 with the
/// way out; root, whom the kernel lets through, read such a registry
/// anyway (and rewrote it 0600), and gave a lock file its bits back.
/// Root now meets the same refusal in wtenv's own checks, word for word
/// (but the path), and nothing changes, modes included. What the open
/// asks for decides, as the kernel's check does: the registry is read
/// (0400 is enough), a lock opened to be made if missing is read and
/// written (0600), an existing one a reader only takes is read (0400).
#[test]
fn a_file_with_its_owners_bits_taken_is_refused_alike_for_root_and_a_user() {
    use std::os::unix::fs::MetadataExt;
    let root = with_registry();
    let user = with_registry();
    user.give_to_nobody();
    // (file, mode, the commands refused): the rest must read and work.
    let cases: [(&str, u32, &[&[&str]]); 6] = [
        (
            "registry.json",
            0o000,
            &[&["env"], &["ports"], &["allocate", "--service", "web"]],
        ),
        (
            "registry.json",
            0o200,
            &[&["env"], &["ports"], &["allocate", "--service", "web"]],
        ),
        (
            "registry.lock",
            0o000,
            &[&["env"], &["ports"], &["allocate", "--service", "web"]],
        ),
        (
            "registry.lock",
            0o400,
            &[&["env"], &["ports"], &["allocate", "--service", "web"]],
        ),
        ("probe.lock", 0o000, &[&["allocate", "--service", "web"]]),
        ("probe.lock", 0o200, &[&["allocate", "--service", "web"]]),
    ];
    for (name, mode, refused) in cases {
        let case = format!("{name} {mode:03o}");
        let mut said = Vec::new();
        for (t, nobody) in [(&root, false), (&user, true)] {
            let file = t.state_dir().join(name);
            std::fs::set_permissions(&file, PermissionsExt::from_mode(mode)).unwrap();
            let before = snapshot(&t.root());
            for args in refused {
                let mut cmd = match nobody {
                    false => t.wtenv(args),
                    true => t.wtenv_as_nobody(args),
                };
                let out = run_bounded(&mut cmd, LIMIT);
                assert_eq!(out.code, Some(2), "{case} {args:?}, nobody {nobody}: {out}");
                let shown = |p: &Path| format!("{}", p.display());
                let what = match name {
                    "registry.json" => String::new(),
                    _ => format!("its lock file {}: ", shown(&file)),
                };
                assert_eq!(
                    out.stderr,
                    format!(
                        "error: registry {} cannot be used: {what}its mode {mode:03o} keeps its owner (you) from reading or writing it\nhint: chmod 600 '{}'\n",
                        shown(&t.registry_path()),
                        shown(&file)
                    ),
                    "{case} {args:?}, nobody {nobody}"
                );
                said.push(out.stderr.replace(&shown(&t.root()), "ROOT"));
            }
            assert!(
                snapshot(&t.root()) == before,
                "{case}, nobody {nobody}: something changed"
            );
            let kept = std::fs::metadata(&file).unwrap().mode() & 0o777;
            assert_eq!(kept, mode, "{case}, nobody {nobody}: its mode was changed");
            std::fs::set_permissions(&file, PermissionsExt::from_mode(0o600)).unwrap();
        }
        let (as_root, as_user) = said.split_at(said.len() / 2);
        assert_eq!(as_root, as_user, "{case}: root and a user told apart");
    }
    // Only the bits an open needs: a registry its owner may only read is
    // read, and replaced by the next write, for root as for a user.
    for (t, nobody) in [(&root, false), (&user, true)] {
        let registry = t.registry_path();
        std::fs::set_permissions(&registry, PermissionsExt::from_mode(0o400)).unwrap();
        for args in [&["ports"][..], &["allocate", "--service", "api"]] {
            let mut cmd = match nobody {
                false => t.wtenv(args),
                true => t.wtenv_as_nobody(args),
            };
            let out = run_bounded(&mut cmd, LIMIT);
            assert_eq!(out.code, Some(0), "{args:?}, nobody {nobody}: {out}");
        }
        let mode = std::fs::metadata(&registry).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "nobody {nobody}: rewritten as wtenv writes it");
    }
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
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
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
