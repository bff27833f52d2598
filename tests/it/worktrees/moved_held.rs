//! A repository's entry a `run` still holds, once the repository is gone:
//! a stamp is a claim, not a proof. The worktree of a repository moved
//! whole (`mv`) claims it, its holder having moved along (a process's
//! working directory follows the directory); a stamp planted in another
//! repository does not take it from the holder left in a deleted one.

use std::path::Path;

use super::moved::moved_world;
use crate::support::{TestEnv, held_run, holds_of, run};

/// A repository of its own at `dir`, with one commit.
fn committed_repo(t: &TestEnv, dir: &Path) {
    t.init_repo(dir);
    t.git_in(dir, &["add", "wtenv.toml"]);
    t.git_in(dir, &["commit", "-q", "-m", "config"]);
}

/// QA 22 (hostile files): a `run` serving in a repository deleted under
/// it (`rm -rf`) keeps its port while it lives. A stamp planted in an
/// unrelated new repository, naming that port, claims nothing: the
/// holder does not work there. `env` there gets another port, and the
/// deleted repository's entry and its holder are left as they were.
#[test]
fn a_planted_stamp_does_not_take_a_deleted_repositorys_held_port() {
    let t = TestEnv::new();
    let gone = t.root().join("g1");
    committed_repo(&t, &gone);
    let (child, held) = held_run(&t, &gone);
    let [(port, pid)] = held[..] else {
        panic!("{held:?}")
    };
    let stamp = std::fs::read(gone.join(".git/wtenv.stamp")).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();

    let other = t.root().join("z1");
    committed_repo(&t, &other);
    std::fs::write(other.join(".git/wtenv.stamp"), stamp).unwrap();
    let out = run(&mut t.wtenv_in(&other, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("export PORT='"), "{out}");
    assert!(
        !out.stdout.contains(&format!("export PORT='{port}'")),
        "{out}"
    );
    assert_eq!(holds_of(&t, &gone), vec![(port, pid)], "{}", t.registry());
    let theirs = holds_of(&t, &other);
    assert!(theirs.len() == 1 && theirs[0].0 != port, "{}", t.registry());
    drop(child);
}

/// The real move: `mv` of a repository whose `run` serves in its main
/// worktree. The holder's working directory moved with it, so `env` in
/// the moved main worktree claims the held entries and keeps its ports,
/// holder and all. QA finding: once that `run` ended (Ctrl-C), its holds
/// stayed at the new path, a dead holder `validate` reported: it looked
/// for them only in the repository it started in. It finds them wherever
/// they carry its hold, also after a second move.
#[test]
fn a_repository_moved_whole_keeps_the_ports_its_run_holds() {
    let (t, _first) = moved_world();
    let (child, held) = held_run(&t, &t.repo);
    assert_eq!(held.len(), 2, "{}", t.registry());
    let to = t.root().join("elsewhere");
    std::fs::create_dir(&to).unwrap();
    let main = to.join("repo");
    std::fs::rename(&t.repo, &main).unwrap();

    let out = run(&mut t.wtenv_in(&main, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    for (port, _) in &held {
        assert!(out.stdout.contains(&format!("_PORT='{port}'")), "{out}");
    }
    assert_eq!(holds_of(&t, &main), held, "{}", t.registry());
    let again = t.root().join("again");
    std::fs::rename(&to, &again).unwrap();
    drop(child);
    let ports: Vec<(u16, u64)> = held.iter().map(|&(port, _)| (port, 0)).collect();
    assert_eq!(holds_of(&t, &main), ports, "{}", t.registry());
    let check = run(&mut t.wtenv_in(&again.join("repo"), &["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
}

/// QA finding: a new repository made at the path a repository was moved
/// away from (`mv`) took the port the moved one's `run` still served:
/// its server, descending from the entry's live holder, passed for the
/// new repository's own, and `env` exported the port to both. A holder
/// that works in another repository's worktree is not the new one's:
/// its server holds the port from outside, and `env` refuses it.
#[test]
fn a_new_repository_where_one_was_moved_from_never_takes_its_served_port() {
    let t = TestEnv::new();
    let old = t.root().join("old");
    committed_repo(&t, &old);
    let env = run(&mut t.wtenv_in(&old, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    let port = t.ports.port(0);
    let serving = crate::support::HeldRun(
        t.wtenv_in(
            &old,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "exec python3 -m http.server $PORT --bind 127.0.0.1",
            ],
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap(),
    );
    assert!(
        crate::support::wait_for(crate::supervise::PATIENCE, || std::net::TcpStream::connect(
            ("127.0.0.1", port)
        )
        .is_ok()),
        "nothing serves {port}"
    );
    std::fs::rename(&old, t.root().join("moved")).unwrap();
    committed_repo(&t, &old);
    let before = std::fs::read(t.registry_path()).unwrap();
    let out = run(&mut t.wtenv_in(&old, &["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!out.stdout.contains(&format!("'{port}'")), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "are held by processes outside it:\n  port {port} ("
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
    drop(serving);
}

/// A linked worktree moved with a plain `mv` while its `run` serves: git
/// still lists it at its old path (until `git worktree repair`), and no
/// listing led to the new one. `env` there gave the worktree a second
/// port while its server kept the first, recorded at the old path; after
/// the repair, `validate --fix` released that first one as a moved entry
/// of a worktree with a port of its own, while its server answered on it
/// (QA). The worktree's own stamp lists the entry and the holder works
/// in it: `env` claims it, and keeps the port.
#[test]
fn a_worktree_moved_with_mv_while_its_run_serves_keeps_its_port() {
    let t = TestEnv::new();
    let wt = t.add_worktree("wt");
    assert_eq!(run(&mut t.wtenv_in(&wt, &["env"])).code, Some(0));
    let (child, held) = held_run(&t, &wt);
    let [(port, pid)] = held[..] else {
        panic!("{held:?}")
    };
    let moved = t.root().join("moved");
    std::fs::rename(&wt, &moved).unwrap();
    let out = run(&mut t.wtenv_in(&moved, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("export PORT='{port}'")),
        "{out}"
    );
    assert_eq!(holds_of(&t, &moved), vec![(port, pid)], "{}", t.registry());
    // Ended before any repair, the `run` finds its holds where its
    // working directory went, and lets them go (they stayed, a dead
    // holder `validate` reported: QA).
    drop(child);
    assert_eq!(holds_of(&t, &moved), vec![(port, 0)], "{}", t.registry());
    let (child, held) = held_run(&t, &moved);
    assert_eq!(held.len(), 1, "{held:?}");
    t.git(&["worktree", "repair", moved.to_str().unwrap()]);
    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(holds_of(&t, &moved), held, "{}", t.registry());
    drop(child);
}
