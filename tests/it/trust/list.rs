//! The trust list: kept like the registry (0600, never through a link,
//! unreadable means nothing trusted), and in a state directory no
//! repository can move into itself (a relative `XDG_STATE_HOME` ignored, a
//! relative `WTENV_STATE_DIR` refused); and what `wtenv trust` says it
//! allows.

use super::{commit_config, gated_config};
use crate::support::{TestEnv, run};

/// The trust list is kept like the registry: 0600, never written through
/// a link, and one wtenv cannot read trusts nothing (with a warning) while
/// the ports are still exported.
#[test]
fn the_trust_list_is_hardened_like_the_registry() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let list = t.state_dir().join("trust.json");
    let mode = std::fs::metadata(&list).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("export PORT="), "{out}");
    assert!(!out.stdout.contains("API_URL"), "{out}");
    assert!(out.stderr.contains("writable by group or others"), "{out}");
    // What to do is the list's own way out: `wtenv trust` refuses it.
    assert!(!out.stderr.contains("then run 'wtenv trust'"), "{out}");
    // A mode alone is mended by chmod, which keeps what it trusts; rm,
    // which trusts nothing, is for a damaged file.
    let quoted = format!("'{}'", list.display());
    assert!(
        out.stderr.contains(&format!(
            "inspect what it trusts, then chmod 600 {quoted}; or, if it is damaged, remove it to trust nothing: rm {quoted}"
        )),
        "{out}"
    );
    let before = std::fs::read(&list).unwrap();
    let out = run(&mut t.wtenv(&["untrust"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert_eq!(std::fs::read(&list).unwrap(), before, "rewritten");

    let victim = t.root().join("victim");
    std::fs::write(&victim, "mine\n").unwrap();
    std::fs::remove_file(&list).unwrap();
    std::os::unix::fs::symlink(&victim, &list).unwrap();
    let out = run(&mut t.wtenv(&["trust"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("symbolic link"), "{out}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine\n");

    let bare = TestEnv::bare();
    let out = run(&mut bare.wtenv(&["trust"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("no wtenv.toml or wtenv.json here to trust"),
        "{out}"
    );
}

/// A trust list whose mode keeps its owner from reading it (000, 200) is
/// refused as the registry is, root included (the kernel lets root read
/// it; the suite runs as root): it trusts nothing, with the mode and the
/// `chmod 600` in the warning, and `untrust` neither reads it nor gives
/// it its bits back.
#[test]
fn a_trust_list_its_owner_may_not_read_trusts_nothing_even_for_root() {
    use std::os::unix::fs::PermissionsExt;
    assert!(nix::unistd::geteuid().is_root(), "this test is about root");
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let list = t.state_dir().join("trust.json");
    let quoted = format!("'{}'", list.display());
    for mode in [0o000, 0o200] {
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(0), "{mode:o}: {out}");
        assert!(out.stdout.contains("export PORT="), "{mode:o}: {out}");
        assert!(!out.stdout.contains("API_URL"), "{mode:o}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "its mode {mode:03o} keeps its owner (you) from reading or writing it); \
                 wtenv never rewrites it; chmod 600 {quoted}"
            )),
            "{mode:o}: {out}"
        );
        let before = std::fs::read(&list).unwrap();
        for args in [&["untrust"][..], &["trust"], &["trust", "--list"]] {
            let out = run(&mut t.wtenv(args));
            assert_eq!(out.code, Some(2), "{mode:o} {args:?}: {out}");
            assert!(
                out.stderr
                    .contains(&format!("its mode {mode:03o} keeps its owner")),
                "{mode:o} {args:?}: {out}"
            );
            let now = std::fs::metadata(&list).unwrap().permissions().mode();
            assert_eq!(now & 0o777, mode, "{args:?} gave the list its bits back");
            assert_eq!(std::fs::read(&list).unwrap(), before, "{args:?} rewrote it");
        }
    }
}

/// `trust` writes `trust.json`: a state directory it cannot use is said
/// of that file (it said "registry .../registry.json cannot be used"),
/// exit 2 as for the registry, with the directory, its mode and the way
/// out, and nothing written.
#[test]
fn a_state_directory_trust_cannot_use_is_said_of_the_trust_list() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let dir = t.state_dir();
    let list = dir.join("trust.json");
    for (mode, commands) in [
        (0o500, &[&["trust"][..], &["untrust"]][..]),
        (0o300, &[&["trust", "--list"][..], &["trust"]]),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = crate::support::snapshot(&dir);
        for args in commands {
            let out = run(&mut t.wtenv(args));
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            assert_eq!(out.code, Some(2), "{args:?}: {out}");
            assert_eq!(
                out.stderr,
                format!(
                    "error: trust list {} cannot be used: its directory {} has mode {mode:o}: {} \
                     needs its owner (you) to {}\nhint: chmod 700 '{}'\n",
                    list.display(),
                    dir.display(),
                    if args.len() == 1 {
                        "changing what is there"
                    } else {
                        "reading what is there"
                    },
                    if args.len() == 1 {
                        "read, write and search it"
                    } else {
                        "read and search it"
                    },
                    dir.display()
                ),
                "{args:?}"
            );
            assert_eq!(crate::support::snapshot(&dir), before, "{args:?} wrote");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

/// A relative `XDG_STATE_HOME` (which a repository could once export, and
/// which would name a directory in every worktree entered) is ignored, as
/// the XDG spec says: wtenv keeps its state under `HOME`, and writes
/// nothing into the worktree.
#[test]
fn a_relative_xdg_state_home_is_ignored() {
    let t = TestEnv::new();
    let out = run(t.wtenv(&["env"]).env("XDG_STATE_HOME", "4242"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        !t.repo.join("4242").exists(),
        "state written into the worktree"
    );
    assert!(
        t.root()
            .join("home/.local/state/wtenv/registry.json")
            .exists(),
        "the state went to HOME/.local/state/wtenv"
    );
}

/// `WTENV_STATE_DIR` is wtenv's own, so a relative one is refused rather
/// than ignored: it named a registry, and a trust list, inside every
/// directory entered (one a repository could ship), and gave each
/// directory ports of its own.
#[test]
fn a_relative_wtenv_state_dir_is_refused() {
    let t = TestEnv::new();
    for args in [&["env"][..], &["ports"], &["trust", "--list"]] {
        let out = run(t.wtenv(args).env("WTENV_STATE_DIR", "state"));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .starts_with("error: WTENV_STATE_DIR=state is not an absolute path\nhint: "),
            "{args:?}: {out}"
        );
        assert!(!out.stdout.contains("PORT"), "{out}");
        assert!(
            !t.repo.join("state").exists(),
            "{args:?}: state in the worktree"
        );
    }
}

/// `wtenv trust` names every variable the trust allows, so what the user
/// reviews is all of it: the `[env]` names and the service variables not
/// named like a port (`GIT_CONFIG_GLOBAL` would make git read the
/// repository's own file), as the untrusted warning names them.
#[test]
fn trust_names_every_variable_it_allows() {
    let t = TestEnv::new();
    for (config, allowed) in [
        (
            "[services.web]\nenv = [\"PORT\", \"GIT_CONFIG_GLOBAL\"]\n",
            "(service variables: GIT_CONFIG_GLOBAL)",
        ),
        (
            "[services.web]\nenv = [\"PORT\", \"GIT_CONFIG_GLOBAL\"]\n[env]\nNODE_OPTIONS = \"x\"\n",
            "([env] and service variables: GIT_CONFIG_GLOBAL, NODE_OPTIONS)",
        ),
        ("[env]\nNODE_OPTIONS = \"x\"\n", "([env]: NODE_OPTIONS)"),
    ] {
        t.write_config(config);
        let warned = run(&mut t.wtenv(&["env"]));
        let out = run(&mut t.wtenv(&["trust"]));
        assert_eq!(out.code, Some(0), "{out}");
        assert!(
            out.stderr.starts_with(&format!(
                "trusted {}/wtenv.toml for repository ",
                t.repo.display()
            )) && out.stderr.ends_with(&format!(" {allowed}\n")),
            "{out}"
        );
        // The same names the warning said were left out.
        let names = allowed.split_once(": ").unwrap().1.trim_end_matches(')');
        assert!(
            warned.stderr.contains(&format!(" not applied ({names}): ")),
            "{warned}"
        );
    }
    // Nothing to allow: nothing listed.
    t.write_config("[services.web]\nenv = [\"PORT\"]\n");
    let out = run(&mut t.wtenv(&["trust"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.ends_with(".git\n"), "{out}");
    // A wtenv.json's section is named as JSON writes it.
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    let json = format!(
        r#"{{"purposes": {{"feature": "{}"}}, "env": {{"NODE_OPTIONS": "y"}}}}"#,
        t.ports.range()
    );
    std::fs::write(t.repo.join("wtenv.json"), json).unwrap();
    let warned = run(&mut t.wtenv(&["env"]));
    assert!(
        warned.stderr.contains("\"env\" of ") && !warned.stderr.contains("[env]"),
        "{warned}"
    );
    let out = run(&mut t.wtenv(&["trust"]));
    assert!(out.stderr.ends_with(" (\"env\": NODE_OPTIONS)\n"), "{out}");
}

/// A file wtenv keeps that it cannot use is one kind, exit 2 (README
/// "Exit codes"): `trust` exited 1 for a damaged `trust.json` but 2 in a
/// state directory of mode 500, where a damaged registry is 2 either way.
/// The trust list now follows the registry.
#[test]
fn a_damaged_trust_list_is_refused_as_a_damaged_registry_is() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let dir = t.state_dir();
    let list = dir.join("trust.json");
    std::fs::write(&list, "{not json").unwrap();
    for args in [&["trust"][..], &["untrust"], &["trust", "--list"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: trust list {} cannot be used: it is not a trust list (",
                list.display()
            )),
            "{args:?}: {out}"
        );
    }
    std::fs::write(t.registry_path(), "{not json").unwrap();
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(2), "{out}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = run(&mut t.wtenv(&["trust"]));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(out.code, Some(2), "{out}");
}

/// A trust list a newer wtenv wrote (a higher version, or a field this
/// one does not know) is said to be that, and left to it: its hint said
/// to remove it, dropping every trust the newer wtenv recorded. Now it
/// says what the registry says of a newer file, the removal last, for a
/// file no newer wtenv has used; the file is untouched.
#[test]
fn a_newer_wtenvs_trust_list_is_said_to_be_one_and_left_as_it_is() {
    let t = TestEnv::new();
    let (text, _) = gated_config(&t);
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let list = t.state_dir().join("trust.json");
    let written = std::fs::read_to_string(&list).unwrap();
    let newer_version = written.replacen("\"version\": 1", "\"version\": 2", 1);
    assert_ne!(newer_version, written, "{written}");
    let newer_field = written.replacen("\"version\": 1", "\"version\": 1, \"scopes\": []", 1);
    for (file, reason) in [
        (
            &newer_version,
            "it was written by a newer wtenv (trust list version 2; this wtenv knows version 1)",
        ),
        (
            &newer_field,
            "it was probably written by a newer wtenv: line 2 has a field this wtenv does not know, `scopes`",
        ),
    ] {
        std::fs::write(&list, file).unwrap();
        let out = run(&mut t.wtenv(&["trust"]));
        assert_eq!(out.code, Some(2), "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: trust list {} cannot be used: {reason}\n\
                 hint: use the newer wtenv that wrote it, or upgrade this one; the trust list is left as it is. \
                 Only if no newer wtenv has used it: remove it to trust nothing: rm '{}'\n",
                list.display(),
                list.display()
            )
        );
        assert_eq!(&std::fs::read_to_string(&list).unwrap(), file);
    }
}
