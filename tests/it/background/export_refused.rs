//! `export` refused: a worktree path, a variable or a directory it cannot
//! write units into is refused before any port is reserved, with the
//! registry, the state directory and DIR as they were.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{parse_plist, path_not_utf8};
use crate::support::{Run, TestEnv, run, snapshot};

/// A repository cloned under a name holding a newline wrote a
/// `WorkingDirectory=` line that split in two (the rest a line of the
/// unit's own); a name ending in a backslash joined the next line, one
/// ending in a space named another directory once systemd stripped it.
/// `WorkingDirectory=` has no escape for them: `export systemd` refuses,
/// exit 1 naming the path, before anything is reserved or written.
#[test]
fn export_systemd_refuses_a_worktree_path_no_unit_can_name() {
    let t = TestEnv::new();
    for name in [
        "a\nExecStartPre=/bin/sh -c 'touch PWNED'",
        "ends-in\\",
        "ends in a space ",
    ] {
        let repo = repo_with_a_service(&t, name);
        let dir = t.root().join("units");
        let out = run(&mut t.wtenv_in(&repo, &["export", "systemd", dir.to_str().unwrap()]));
        refused_untouched(
            &t,
            &repo,
            &dir,
            &out,
            "error: cannot write a systemd unit for ",
        );
    }
}

/// Into a directory its user can write and search but not read (mode
/// 300), the first unit file was renamed in, then the directory could not
/// be opened to sync it: exit 1 with a file written. The directory is now
/// opened (`files::check_writable_dir`) before any port is reserved: the
/// export fails with nothing written there and nothing reserved.
#[test]
fn export_into_a_directory_it_cannot_read_writes_nothing_there() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    let dir = t.root().join("units");
    std::fs::create_dir(&dir).unwrap();
    t.give_to_nobody();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o300)).unwrap();
    let out = run(&mut t.wtenv_as_nobody(&["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with(&format!("error: could not open {}: ", dir.display()))
            && out.stderr.contains("\nhint: "),
        "{out}"
    );
    assert_eq!(snapshot(&dir), vec![], "{out}");
    assert!(t.allocations().is_empty(), "ports reserved: {out}");
}

/// A DIR that cannot be made (under a regular file) was found so only
/// after the worktree's ports were reserved: the export failed on its
/// input with the registry changed. DIR is made first now: refused (exit
/// 1, naming it) with nothing reserved or made.
#[test]
fn export_into_a_directory_under_a_regular_file_changes_nothing() {
    let t = TestEnv::new();
    let fresh = a_fresh_worktree_with_a_service(&t);
    let file = t.root().join("file");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("units");
    let export = t.wtenv_in(&fresh, &["export", "systemd", dir.to_str().unwrap()]);
    let error = format!("error: could not create {}: ", dir.display());
    refused_with_nothing_changed(&t, export, &error);
}

/// A DIR its user cannot write into, or make (its parent not writable),
/// failed as the first file was written, after the ports were reserved.
/// Seen before anything is reserved now; nothing made on the way.
#[test]
fn export_into_a_directory_it_cannot_write_changes_nothing() {
    let t = TestEnv::new();
    let fresh = a_fresh_worktree_with_a_service(&t);
    let locked = t.root().join("locked");
    std::fs::create_dir(&locked).unwrap();
    t.give_to_nobody();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    for (dir, error) in [
        (locked.clone(), "could not write into"),
        (locked.join("units/user"), "could not create"),
    ] {
        let mut export = t.wtenv_as_nobody(&["export", "launchd", dir.to_str().unwrap()]);
        export.current_dir(&fresh);
        let error = format!("error: {error} {}: Permission denied", dir.display());
        refused_with_nothing_changed(&t, export, &error);
    }
}

/// DIR is made before the ports are reserved: when the reservation is
/// refused (no free port left for the second service), what was made for
/// DIR goes again.
#[test]
fn export_refused_its_ports_removes_the_directories_it_made() {
    let t = TestEnv::new();
    let p = t.ports.port(0);
    let config = format!(
        "[purposes]\nfeature = \"{p}-{p}\"\n[services.web]\nrun = \"true\"\n[services.api]\nrun = \"true\"\n"
    );
    std::fs::write(t.repo.join("wtenv.toml"), config).unwrap();
    let dir = t.root().join("new/units");
    let out = run(&mut t.wtenv(&["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with("error: no free port left"), "{out}");
    assert!(!t.root().join("new").exists(), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// A worktree `fresh` of `t`'s repository, with a service to export and
/// no port reserved, beside the main worktree's (so the registry exists).
fn a_fresh_worktree_with_a_service(t: &TestEnv) -> PathBuf {
    t.write_config("[services.web]\nrun = \"true\"\n");
    t.git(&["commit", "-q", "-am", "a service"]);
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    t.add_worktree("fresh")
}

/// `export` is refused with `error` and a hint, with the test's tree (the
/// registry, the state directory, where DIR would be) as it was.
fn refused_with_nothing_changed(t: &TestEnv, mut export: Command, error: &str) {
    let before = snapshot(&t.root());
    let out = run(&mut export);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(snapshot(&t.root()) == before, "something changed: {out}");
    assert!(
        out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
        "{out}"
    );
}

/// A relative `HOME` (and no `XDG_CONFIG_HOME`) names no place for the
/// units: ignored, as the XDG spec says, so `export` asks for the
/// directory; the error said "HOME is not set" of a HOME that was.
#[test]
fn export_without_an_absolute_home_asks_for_the_directory_and_writes_nothing() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    let mut cmd = t.wtenv(&["export", "systemd"]);
    cmd.env("HOME", "home").env_remove("XDG_CONFIG_HOME");
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        "error: HOME is not set to an absolute path\nhint: pass the directory: export FORMAT DIR\n"
    );
    assert!(!t.repo.join("home").exists(), "{out}");
    assert!(t.allocations().is_empty(), "{out}");
}

/// A repository at `root/name` whose config has a service to export.
fn repo_with_a_service(t: &TestEnv, name: &str) -> PathBuf {
    let repo = t.root().join(name);
    t.init_repo(&repo);
    let config = repo.join("wtenv.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[services.web]\nrun = \"true\"\n");
    std::fs::write(&config, text).unwrap();
    repo
}

/// `out` is an export of `repo` into `dir` refused with `error` and a
/// hint: nothing written, no port reserved.
fn refused_untouched(t: &TestEnv, repo: &Path, dir: &Path, out: &Run, error: &str) {
    assert_eq!(out.code, Some(1), "{}: {out}", repo.display());
    assert!(
        out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
        "{}: {out}",
        repo.display()
    );
    assert!(!dir.exists(), "{}: files written", repo.display());
    assert!(
        !t.allocations().iter().any(|(_, _, w)| w == repo),
        "{}: ports reserved",
        repo.display()
    );
}

/// A plist's strings are XML text: a carriage return there reads back as
/// a newline (another directory) unless written `&#13;`, and a control
/// character such as `\x01` cannot be written at all (launchd would not
/// load the file): the one is kept, the other refused before anything is
/// reserved or written.
#[test]
fn export_launchd_keeps_a_carriage_return_and_refuses_what_xml_cannot_carry() {
    let t = TestEnv::new();
    for (name, code) in [("a\rb", 0), ("a\u{1}b", 1)] {
        let repo = repo_with_a_service(&t, name);
        let dir = t.root().join(format!("agents-{code}"));
        let out = run(&mut t.wtenv_in(&repo, &["export", "launchd", dir.to_str().unwrap()]));
        if code == 0 {
            assert_eq!(out.code, Some(0), "{name:?}: {out}");
            let plist = PathBuf::from(out.stdout.trim_end());
            assert_eq!(
                parse_plist(&plist)["WorkingDirectory"],
                repo.to_str().unwrap()
            );
        } else {
            let error = "error: cannot write a launchd plist: its WorkingDirectory ";
            refused_untouched(&t, &repo, &dir, &out, error);
        }
    }
}

/// A passed variable a plist cannot carry (a control character, which
/// XML cannot hold even escaped) is refused before the worktree's ports are
/// reserved: the refusal once came after the reservation, which stayed.
#[test]
fn export_launchd_refuses_a_variable_xml_cannot_carry_with_the_registry_as_it_was() {
    let path = format!("{}:/opt/a\u{1}b", std::env::var("PATH").unwrap());
    let error = "error: cannot write a launchd plist: its variable PATH ";
    refused_in_a_fresh_worktree("launchd", "PATH", path.into(), error);
}

/// systemd takes a variable's value only as UTF-8 (it ignores the
/// assignment in a unit file, and `systemd-run` refuses it): such a
/// passed variable is refused before the ports are reserved, where it was
/// written as another value.
#[test]
fn export_systemd_refuses_a_variable_that_is_not_utf8_with_the_registry_as_it_was() {
    let error = "error: systemd cannot carry the variable PATH ";
    refused_in_a_fresh_worktree("systemd", "PATH", path_not_utf8(), error);
}

/// `export FORMAT DIR` in a fresh worktree, with `name=value` in its
/// environment, is refused with `error` and a hint, and leaves the
/// registry, the state directory and DIR as they were: first with no
/// registry (and no DIR) yet, then with another worktree's ports in it
/// (and DIR empty).
fn refused_in_a_fresh_worktree(format: &str, name: &str, value: OsString, error: &str) {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    t.git(&["commit", "-q", "-am", "a service"]);
    let fresh = t.add_worktree("fresh");
    let dir = t.root().join("units");
    for before in ["absent", "present"] {
        if before == "present" {
            assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
            std::fs::create_dir(&dir).unwrap();
        }
        let registry = std::fs::read(t.registry_path()).ok();
        assert_eq!(registry.is_some(), before == "present");
        let state = snapshot(&t.root().join("state"));
        let mut export = t.wtenv_in(&fresh, &["export", format, dir.to_str().unwrap()]);
        let out = run(export.env(name, &value));
        assert_eq!(out.code, Some(1), "{before}: {out}");
        let after = std::fs::read(t.registry_path()).ok();
        assert!(after == registry, "{before}: the registry changed: {out}");
        // Not even an empty `background/` (or state) directory is made.
        let made = snapshot(&t.root().join("state"));
        assert!(
            made == state,
            "{before}: the state directory changed: {out}"
        );
        assert!(
            out.stderr.starts_with(error) && out.stderr.contains("\nhint: "),
            "{before}: {out}"
        );
        let written = std::fs::read_dir(&dir).map_or(0, Iterator::count);
        assert_eq!(
            (dir.exists(), written),
            (before == "present", 0),
            "{before}"
        );
    }
}
