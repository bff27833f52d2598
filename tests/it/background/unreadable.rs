//! A background record this wtenv cannot read (a newer wtenv's, with a
//! field this one does not know): never deleted, overwritten or renamed,
//! and it blocks acting on its unit. An older wtenv's `up -d` skipped
//! such a record, started a second unit of the same name, and its failed
//! start's cleanup deleted the file: the newer wtenv's services ran on,
//! out of every wtenv's sight.

use std::path::PathBuf;

use nix::sys::signal::Signal;

use super::{free, holders, printed_port, serves, signal, status_cells, two_http_services};
use crate::supervise::{PATIENCE, alive};
use crate::support::{TestEnv, run, wait_for};

/// Stops what the test left running: `down` in the worktree, and the
/// supervisor of the record made unreadable (`down` leaves it).
struct Cleanup<'a> {
    t: &'a TestEnv,
    wt: PathBuf,
    supervisor: Option<u32>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.wt.exists() {
            let _ = self
                .t
                .wtenv_in(&self.wt, &["down", "--timeout", "30s"])
                .output();
        }
        if let Some(pid) = self.supervisor.filter(|&p| alive(p)) {
            signal(pid, Signal::SIGTERM);
            wait_for(PATIENCE, || !alive(pid));
        }
    }
}

#[test]
fn a_record_this_wtenv_cannot_read_is_left_as_it_is_and_blocks_its_unit() {
    let t = TestEnv::new();
    two_http_services(&t);
    let wt = t.add_worktree("feat");
    std::fs::copy(t.repo.join("wtenv.toml"), wt.join("wtenv.toml")).unwrap();
    let mut cleanup = Cleanup {
        t: &t,
        wt: wt.clone(),
        supervisor: None,
    };
    let up = run(&mut t.wtenv_in(&wt, &["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let naming = wtenv::background::Naming::at(
        &std::fs::canonicalize(t.common_dir()).unwrap(),
        &std::fs::canonicalize(&wt).unwrap(),
    )
    .expect("git knows the worktree");
    let (web_unit, api_unit) = (naming.unit("web"), naming.unit("api"));
    let (web, api) = (printed_port(&up, &web_unit), printed_port(&up, &api_unit));
    assert!(serves(web) && serves(api), "{up}");
    // Made a newer wtenv's: one field more, as a newer one adds.
    let file = t.state_dir().join(format!("background/{web_unit}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    cleanup.supervisor = Some(record["pid"].as_u64().unwrap() as u32);
    record["lease"] = serde_json::json!(7);
    let newer = serde_json::to_vec_pretty(&record).unwrap();
    std::fs::write(&file, &newer).unwrap();
    let web_holders = holders(&t, "web");
    let untouched = |out: &dyn std::fmt::Display| {
        assert_eq!(std::fs::read(&file).unwrap(), newer, "{out}");
    };
    let names_it = |text: &str| {
        text.contains(&format!(
            "web ({web_unit}): its record {} cannot be read: it was probably written by a newer wtenv: line ",
            file.display()
        )) && text.contains("has a field this wtenv does not know, `lease`")
    };
    let rm = format!("rm '{}'", file.display());

    // `up -d` (all, or web alone) refuses before anything is reserved or
    // started: no second unit under that name.
    for args in [
        &["up", "-d", "--manager", "wtenv"][..],
        &["up", "-d", "web", "--manager", "wtenv"],
    ] {
        let out = run(&mut t.wtenv_in(&wt, args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(names_it(&out.stderr), "{args:?}: {out}");
        assert!(out.stderr.contains("nothing was started"), "{out}");
        assert!(
            out.stderr.contains("hint: stop it with the wtenv that started it (a newer one: 'wtenv down'); if nothing of it runs, remove the record: ")
                && out.stderr.contains(&rm),
            "{out}"
        );
        untouched(&out);
        assert_eq!(holders(&t, "web"), web_holders, "{out}");
        assert!(serves(web), "{out}");
    }

    // `status` shows it, as unreadable, not as nothing.
    let status = run(&mut t.wtenv_in(&wt, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(status_cells(&status, "web")[3], "unreadable", "{status}");
    assert_eq!(status_cells(&status, "api")[3], "running", "{status}");
    assert!(names_it(&status.stderr), "{status}");
    untouched(&status);

    // `down` stops what it can read, and says what it left (exit 1).
    let down = run(&mut t.wtenv_in(&wt, &["down", "--timeout", "30s"]));
    assert_eq!(down.code, Some(1), "{down}");
    assert!(
        down.stderr.contains(&format!("stopped api ({api_unit})")),
        "{down}"
    );
    assert!(down.stderr.contains("not stopped:"), "{down}");
    assert!(
        names_it(&down.stderr) && down.stderr.contains(&rm),
        "{down}"
    );
    assert!(
        !down.stderr.contains("nothing of this worktree runs"),
        "{down}"
    );
    untouched(&down);
    assert!(free(api) && serves(web), "{down}");

    // `remove --force` leaves it running, and says so.
    let remove = run(&mut t.wtenv(&["remove", "--force", wt.to_str().unwrap()]));
    assert_eq!(remove.code, Some(0), "{remove}");
    assert!(
        remove.stderr.contains("left running: web (") && names_it(&remove.stderr),
        "{remove}"
    );
    untouched(&remove);
    // (Its directory gone, it no longer serves files; it still listens.)
    assert!(!free(web), "{remove}");
}

/// A damaged record (not JSON) was shown as service `?` (`-` in
/// `status`, `"service": null`) though wtenv matched it to `web` by its
/// file's name, and hinted as a newer wtenv's. It is said as web's, as
/// damaged: remove it if nothing of it runs.
#[test]
fn a_damaged_record_is_said_as_its_services_and_as_damaged() {
    let t = TestEnv::new();
    two_http_services(&t);
    let mut cleanup = Cleanup {
        t: &t,
        wt: t.repo.clone(),
        supervisor: None,
    };
    let up = run(&mut t.wtenv(&["up", "-d", "web", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let naming = wtenv::background::Naming::at(
        &std::fs::canonicalize(t.common_dir()).unwrap(),
        &std::fs::canonicalize(&t.repo).unwrap(),
    )
    .expect("git knows the worktree");
    let unit = naming.unit("web");
    let file = t.state_dir().join(format!("background/{unit}.json"));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    cleanup.supervisor = Some(record["pid"].as_u64().unwrap() as u32);
    std::fs::write(&file, "garbage\n").unwrap();
    let said = format!(
        "web ({unit}): its record {} cannot be read: it is not valid JSON",
        file.display()
    );
    let hint = format!(
        "hint: remove it if nothing of it runs (rm '{}')\n",
        file.display()
    );

    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(status_cells(&status, "web")[3], "unreadable", "{status}");
    assert!(status.stderr.contains(&said), "{status}");
    assert!(status.stderr.contains(&hint), "{status}");
    assert!(!status.stderr.contains("newer"), "{status}");
    let json = run(&mut t.wtenv(&["status", "--json"]));
    let services: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(services["services"][0]["service"], "web", "{json}");
    assert_eq!(services["services"][0]["state"], "unreadable", "{json}");

    for args in [&["up", "-d", "web"][..], &["down", "web"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(out.stderr.contains(&said), "{args:?}: {out}");
        assert!(out.stderr.ends_with(&hint), "{args:?}: {out}");
        assert_eq!(std::fs::read(&file).unwrap(), b"garbage\n", "{out}");
    }

    // `validate --fix`, which looks at every worktree's records, skips it
    // with a warning in the Messages format (it was tracing's ` WARN
    // ignoring ...`, without the hint); `-q` drops it.
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fix.code, Some(0), "{fix}");
    let skipped = format!(
        "warning: ignoring ? ({unit}): its record {} cannot be read: it is not valid JSON",
        file.display()
    );
    assert!(fix.stderr.contains(&skipped), "{fix}");
    assert!(fix.stderr.ends_with(&hint), "{fix}");
    assert!(!fix.stderr.contains("WARN"), "{fix}");
    let quiet = run(&mut t.wtenv(&["-q", "validate", "--fix"]));
    assert_eq!(
        (quiet.code, quiet.stderr.as_str()),
        (Some(0), ""),
        "{quiet}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"garbage\n", "{fix}");
}
