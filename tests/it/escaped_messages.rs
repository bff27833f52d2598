//! Text wtenv did not write, read back from a file or from git, in the
//! messages that name it: a background record's service and unit (the
//! record may have been edited by hand), a branch made with git. Each is
//! shown escaped (`process::printable`), never raw: no ESC, no U+202E.

use std::process::{Command, Stdio};

use crate::support::{Run, TestEnv, run, start_time};

/// Neither stream of `out` holds a raw ESC or U+202E.
fn nothing_raw(out: &Run) {
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(['\x1b', '\u{202e}']), "{out}");
    }
}

/// A background record the wtenv back end would have written for a
/// supervisor `pid` of `wt`, with `service` and `unit` as someone edited
/// them in, as `<state>/background/<file>`.
fn plant_record(
    t: &TestEnv,
    wt: &std::path::Path,
    pid: u32,
    service: &str,
    unit: &str,
    file: &str,
) {
    let dir = t.state_dir().join("background");
    std::fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({
        "version": 1,
        "manager": "wtenv",
        "unit": unit,
        "service": service,
        "repository": t.common_dir(),
        "worktree": wt,
        "ports": [],
        "log": dir.join("web.log"),
        "pid": pid,
        "start_time": start_time(pid),
        "started": 0,
    });
    std::fs::write(dir.join(file), serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

/// Kills the process on drop: a failed assertion leaves nothing running.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// A real `sleep 60` for a planted record to point at: killed when its
/// guard drops (a failed assertion included), and reaped by a thread as
/// soon as it dies, since a zombie would look alive to `down`.
fn sleeper() -> (
    u32,
    KillOnDrop,
    std::thread::JoinHandle<std::io::Result<std::process::ExitStatus>>,
) {
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sleeper.id();
    (
        pid,
        KillOnDrop(pid),
        std::thread::spawn(move || sleeper.wait()),
    )
}

/// Records are read as they are (serde checks their shape, nothing their
/// names), so a hand-edited service or unit name reached `remove`'s list
/// of what runs in the background and `down`'s "stopped" raw.
#[test]
fn a_background_records_names_are_escaped_in_remove_and_down() {
    let t = TestEnv::new();
    let wt = t.add_worktree("bg");
    let (pid, _kill, reaper) = sleeper();
    // The unit is a name wtenv makes (one that is not is never acted on,
    // see below), so only the service's name needs escaping.
    let unit = r"wtenv-r_0000abcd-bg-web\x1b";
    plant_record(&t, &wt, pid, "web\x1b[2J", unit, &format!("{unit}.json"));

    let refused = run(&mut t.wtenv(&["remove", wt.to_str().unwrap()]));
    assert_eq!(refused.code, Some(1), "{refused}");
    nothing_raw(&refused);
    assert!(
        refused
            .stderr
            .contains(&format!("\n  web\\u{{1b}}[2J (wtenv, {unit})\n")),
        "{refused}"
    );

    let down = run(&mut t.wtenv_in(&wt, &["down", "--timeout", "20s"]));
    assert_eq!(down.code, Some(0), "{down}");
    nothing_raw(&down);
    assert!(
        down.stderr
            .contains(&format!("stopped web\\u{{1b}}[2J ({unit})")),
        "{down}"
    );
    reaper.join().unwrap().unwrap();
}

/// A record's unit names files in the state directory (`down` and
/// `remove --force` delete `<unit>.json`, launchd's `<unit>.plist`) and
/// is passed to the manager: a unit of `../../victim`, which serde lets
/// through, had them delete `victim.json` outside it. A record whose unit
/// is not a name wtenv makes, or not its file's name, is now skipped with
/// a warning naming it: nothing is stopped or deleted through it.
#[test]
fn a_background_record_whose_unit_is_no_name_of_wtenv_is_never_acted_on() {
    let t = TestEnv::new();
    let victim = t.root().join("state/victim.json");
    let record_dir = t.state_dir().join("background");
    for (name, args) in [
        ("down", &["down", "--timeout", "20s"][..]),
        ("status", &["status"][..]),
        ("removed", &["remove", "--force", "."][..]),
    ] {
        let wt = t.add_worktree(name);
        let (pid, kill, reaper) = sleeper();
        std::fs::write(&victim, "keep me").unwrap();
        plant_record(&t, &wt, pid, "web", "../../victim", "traversal.json");
        // The file's name is a unit name, the unit in it is not.
        let bidi = "wtenv-\u{202e}gnp.exe";
        plant_record(&t, &wt, pid, "api", bidi, &format!("{bidi}.json"));

        let out = run(&mut t.wtenv_in(&wt, args));
        assert_eq!(out.code, Some(0), "{out}");
        nothing_raw(&out);
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "keep me",
            "{out}"
        );
        for (file, unit) in [
            ("traversal.json", r#""../../victim""#),
            (r"wtenv-\u{202e}gnp.exe.json", r#""wtenv-\u{202e}gnp.exe""#),
        ] {
            let path = record_dir.join(file);
            let warning = format!(
                "ignoring {}: its unit {unit} is not a name wtenv makes",
                path.display()
            );
            assert!(out.stderr.contains(&warning), "{warning}\n{out}");
            assert!(out.stderr.contains("remove it by hand (rm '"), "{out}");
        }
        // Nothing was stopped through them either.
        assert!(!out.stderr.contains("stopped"), "{out}");
        assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok());
        for file in ["traversal.json".to_owned(), format!("{bidi}.json")] {
            std::fs::remove_file(record_dir.join(file)).unwrap();
        }
        drop(kill);
        reaper.join().unwrap().unwrap();
    }
}

/// A branch made with git may hold U+202E (git refuses control
/// characters in a ref name, ESC among them, but not Unicode's
/// bidirectional controls): `remove --delete-branch` named it raw in
/// "is not fully merged" and "deleted branch", so `feature/` U+202E
/// `gnp.exe` read `feature/exe.png`.
#[test]
fn remove_delete_branch_escapes_a_branch_made_with_git() {
    let t = TestEnv::new();
    for (dir, branch, merged) in [
        ("merged", "merged/\u{202e}gnp.exe", true),
        ("unmerged", "feature/\u{202e}gnp.exe", false),
    ] {
        let wt = t.root().join(dir);
        t.git(&["branch", branch]);
        t.git(&["worktree", "add", "-q", wt.to_str().unwrap(), branch]);
        let escaped = branch.replace('\u{202e}', "\\u{202e}");
        if !merged {
            t.git_in(&wt, &["commit", "-q", "--allow-empty", "-m", "ahead"]);
            let refused = run(&mut t.wtenv(&["remove", "--delete-branch", dir]));
            assert_eq!(refused.code, Some(1), "{refused}");
            nothing_raw(&refused);
            assert!(
                refused.stderr.contains(&format!(
                    "branch {escaped} is not fully merged; nothing was removed"
                )),
                "{refused}"
            );
            assert!(wt.is_dir(), "{refused}");
        }
        // The unmerged one is deleted with --force (`git branch -D`).
        let mut args = vec!["remove", "--delete-branch", dir];
        if !merged {
            args.push("--force");
        }
        let removed = run(&mut t.wtenv(&args));
        assert_eq!(removed.code, Some(0), "{removed}");
        nothing_raw(&removed);
        assert!(
            removed
                .stderr
                .contains(&format!("deleted branch {escaped}\n")),
            "{removed}"
        );
        assert!(t.git(&["branch", "--list", branch]).is_empty());
    }
}

/// A `[worktrees]` template's unknown placeholder holding a newline, and
/// one holding a backslash and an `n`: each is said escaped once, so the
/// two read apart. The placeholder was repeated raw beside the escaped
/// template, so the whole message was escaped again, and the newline's
/// `\n` became `\\n`, the backslash's own spelling.
#[test]
fn an_unknown_placeholders_newline_and_backslash_read_apart() {
    let t = TestEnv::new();
    let said = |template: &str| {
        let value = serde_json::to_string(template).unwrap();
        t.write_config(&format!("[worktrees]\nbranch = {value}\n"));
        let env = run(&mut t.wtenv(&["env"]));
        assert_eq!(env.code, Some(1), "{env}");
        nothing_raw(&env);
        env.stderr
    };
    let newline = said("{\n}");
    assert!(
        newline.contains(r#"worktrees.branch: "{\n}": unknown placeholder {\n}; "#),
        "{newline}"
    );
    let backslash = said("{\\n}");
    assert!(
        backslash.contains(r#"worktrees.branch: "{\\n}": unknown placeholder {\\n}; "#),
        "{backslash}"
    );
    let escape = said("{\u{1b}}");
    assert!(
        escape.contains(r#"worktrees.branch: "{\u{1b}}": unknown placeholder {\u{1b}}; "#),
        "{escape}"
    );
}
