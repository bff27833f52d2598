//! The registry and the allocation rules through the real binary: sticky
//! and lowest-free, fail-fast with the conflict message, own vs foreign
//! holders (allocation rule 5), sweeps (rule 4), concurrency and crashes
//! (rule 7, atomic writes), and registries that must not be touched
//! (corrupt, empty, newer, a symlink, unsafe permissions).
//!
//! A module per concept; this file holds the helpers several of them
//! share.

mod allocation;
mod concurrency;
mod damaged;
mod diagnostics;
mod fail_fast;
mod holders;
mod lock;
mod permissions;
mod release_held;
mod scale;
mod sweep;
mod syscalls;
mod views;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::json;

use crate::support::{TestEnv, run, start_time};

/// Bytes and mtime of the file the registry path leads to, and whether the
/// path is a symlink.
fn fingerprint(path: &Path) -> (Vec<u8>, i64, i64, bool) {
    let meta = std::fs::metadata(path).unwrap();
    (
        // A FIFO is not read: the open would wait for a writer.
        if meta.is_file() {
            std::fs::read(path).unwrap()
        } else {
            Vec::new()
        },
        meta.mtime(),
        meta.mtime_nsec(),
        std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_symlink(),
    )
}

/// Every command that needs the registry exits 2, names the file and says
/// what is wrong, and leaves it byte-identical.
fn assert_refused(t: &TestEnv, what: &str, reason: &str) {
    let path = t.registry_path();
    let before = fingerprint(&path);
    for args in [
        &["env"][..],
        &["allocate", "--service", "x"],
        &["release"],
        &["release", "--service", "app"],
        &["ports"],
        &["ports", "--all", "--json"],
        &["validate"],
        &["validate", "--fix", "--verify-ports"],
        &["conflicts"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(2), "{what}: wtenv {args:?}: {out}");
        let talk = format!("{}{}", out.stdout, out.stderr);
        assert!(
            talk.contains(&path.display().to_string()) && talk.contains(reason),
            "{what}: wtenv {args:?} did not name the file and {reason:?}: {out}"
        );
        assert_eq!(
            fingerprint(&path),
            before,
            "{what}: wtenv {args:?} touched the file"
        );
    }
}

/// Reserved allocations of ports 2-16 of `t`'s range, one per sibling
/// worktree (a directory that exists) of `repository`: a fleet sharing
/// the range.
fn fleet(t: &TestEnv, repository: &Path) -> Vec<serde_json::Value> {
    (2..17)
        .map(|i| {
            let worktree = t.root().join(format!("siblings/wt{i}"));
            std::fs::create_dir_all(&worktree).unwrap();
            let mut record = t.record(
                t.ports.port(i),
                "app",
                "feature",
                &worktree,
                true,
                json!([]),
            );
            record["repository"] = json!(repository);
            record
        })
        .collect()
}

/// A registry of one reserved port (`app`, `t`'s first port, of
/// `t.repo`) whose holder is gone: this test's pid recorded with another
/// start time, as a SIGKILLed `run`'s pid later reused. Returns that pid.
fn gone_holder_registry(t: &TestEnv) -> u32 {
    let me = std::process::id();
    t.write_registry(vec![t.record(
        t.ports.start,
        "app",
        "feature",
        &t.repo,
        true,
        json!([{"pid": me, "start_time": start_time(me) + 1, "command": "wtenv run -- npm start"}]),
    )]);
    me
}
