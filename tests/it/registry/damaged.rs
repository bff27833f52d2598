//! Registries whose file must not be touched: truncated, empty, not JSON,
//! the wrong schema, a newer version, a symlink, a FIFO, a state directory
//! that is a file. Every command refuses them and leaves them as they
//! are.

use super::assert_refused;
use crate::support::{TestEnv, run};

fn bad_file(bytes: &[u8], what: &str, reason: &str) {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::write(t.registry_path(), bytes).unwrap();
    assert_refused(&t, what, reason);
}

#[test]
fn a_truncated_registry_is_refused_and_untouched() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let full = std::fs::read(t.registry_path()).unwrap();
    bad_file(&full[..full.len() / 2], "truncated", "not valid JSON");
}

#[test]
fn an_empty_registry_is_refused_and_untouched() {
    bad_file(b"", "empty", "empty");
}

#[test]
fn a_registry_that_is_not_json_is_refused_and_untouched() {
    bad_file(b"port=5000\n", "not json", "not valid JSON");
}

#[test]
fn a_registry_with_the_wrong_schema_is_refused_and_untouched() {
    bad_file(
        br#"{"version": 1, "allocations": {"5000": "app"}}"#,
        "wrong schema",
        "schema",
    );
    bad_file(br#"{"version": 1, "ports": []}"#, "wrong schema", "schema");
    bad_file(br#"{"allocations": []}"#, "no version", "version");
}

#[test]
fn a_registry_from_a_newer_version_is_refused_and_untouched() {
    bad_file(
        br#"{"version": 2, "allocations": [], "leases": []}"#,
        "newer",
        "newer wtenv",
    );
}

/// A field this wtenv does not know, in a file of its version (a newer
/// wtenv's hold gained `leader_start` so, before 0.1.0): refused and left
/// as it is, the likely cause first, the way aside only after it.
#[test]
fn a_registry_line_with_a_field_this_wtenv_does_not_know_is_said_as_a_newer_wtenvs() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let written = std::fs::read_to_string(t.registry_path()).unwrap();
    let line = written.lines().nth(1).unwrap();
    assert!(line.ends_with('}'), "{written}");
    let newer = written.replacen(
        line,
        &format!("{}, \"lease\": 7}}", &line[..line.len() - 1]),
        1,
    );
    std::fs::write(t.registry_path(), &newer).unwrap();
    let reason = "it was probably written by a newer wtenv: line 2 has a field this wtenv does not know, `lease`";
    assert_refused(&t, "unknown field", reason);
    let out = run(&mut t.wtenv(&["env"]));
    let hint = format!(
        "hint: use the newer wtenv that wrote it, or upgrade this one; the registry is left as it is. Only if no newer wtenv has used it: inspect it, or move it aside to start afresh: mv '{0}' '{0}.bak'",
        t.registry_path().display()
    );
    assert!(out.stderr.contains(&hint), "{out}");
    assert_eq!(std::fs::read_to_string(t.registry_path()).unwrap(), newer);
}

#[test]
fn a_symlinked_registry_is_refused_and_untouched() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    let real = t.root().join("home/real-registry.json");
    std::fs::rename(t.registry_path(), &real).unwrap();
    std::os::unix::fs::symlink(&real, t.registry_path()).unwrap();
    assert_refused(&t, "symlink", "symbolic link");
}

#[test]
fn a_fifo_in_place_of_the_registry_is_refused_without_blocking() {
    let t = TestEnv::new();
    t.write_registry(vec![]);
    std::fs::remove_file(t.registry_path()).unwrap();
    nix::unistd::mkfifo(
        &t.registry_path(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert_refused(&t, "fifo", "not a regular file");
}

#[test]
fn a_state_directory_that_is_a_file_is_refused_and_untouched() {
    let t = TestEnv::new();
    let dir = t.state_dir();
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, b"not a directory\n").unwrap();
    for args in [
        &["env"][..],
        &["allocate", "--service", "x"],
        &["ports"],
        &["validate"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "wtenv {args:?}: {out}");
        let talk = format!("{}{}", out.stdout, out.stderr);
        assert!(
            talk.contains(&format!("{} is not a directory", dir.display())),
            "wtenv {args:?}: {out}"
        );
        assert_eq!(std::fs::read(&dir).unwrap(), b"not a directory\n");
    }
}
