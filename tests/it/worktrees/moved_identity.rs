//! An entry follows its worktree's identity (the git dir, and the stamp
//! in it), not only its path: a new worktree at the path another was
//! moved from gets ports of its own, a stamp a release left stale names
//! nothing, a repository deleted or moved whole is told apart.

use std::path::{Path, PathBuf};

use super::moved::{move_worktree, moved_world, ports_of};
use crate::support::{HttpServer, TestEnv, run, stamp_line};

/// `env` exports `service`'s port as `port` (`PORT` for `web`, as the
/// config of [`moved_world`] names none: `WEB_PORT`).
fn exports(t: &TestEnv, dir: &Path, variable: &str, port: u16) {
    let out = run(&mut t.wtenv_in(dir, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("export {variable}='{port}'")),
        "{out}"
    );
}

/// The main worktree given ports too, then the repository moved whole
/// with `mv` (its main worktree and `first`) into `elsewhere`: returns
/// the main worktree, the linked one and `elsewhere`.
fn move_whole(t: &TestEnv, first: &Path) -> (PathBuf, PathBuf, PathBuf) {
    exports(t, &t.repo, "WEB_PORT", t.ports.port(2));
    let to = t.root().join("elsewhere");
    std::fs::create_dir(&to).unwrap();
    let (main, linked) = (to.join("repo"), to.join("first"));
    std::fs::rename(&t.repo, &main).unwrap();
    std::fs::rename(first, &linked).unwrap();
    (main, linked, to)
}

/// Finding A: `git worktree move` keeps the git dir and its stamp; a new
/// worktree added at the old path is another worktree (a new git dir),
/// and gets ports of its own, whichever of the two runs `env` first.
#[test]
fn a_new_worktree_at_a_moved_worktrees_old_path_gets_ports_of_its_own() {
    let (t, first) = moved_world();
    let (web, api) = (t.ports.port(0), t.ports.port(1));
    let moved = move_worktree(&t, &first, "moved");
    t.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "other",
        first.to_str().unwrap(),
    ]);
    // A server started before the move keeps serving: not the new
    // worktree's, nor a foreign holder of a port it would refuse.
    let mut server = HttpServer::start(&moved, web);

    exports(&t, &first, "WEB_PORT", t.ports.port(2));
    assert_eq!(ports_of(&t, &first), vec![t.ports.port(2), t.ports.port(3)]);
    assert_eq!(ports_of(&t, &moved), vec![web, api]);
    exports(&t, &moved, "WEB_PORT", web);
    exports(&t, &moved, "API_PORT", api);
    let ports = run(&mut t.wtenv_in(&moved, &["ports"]));
    assert!(
        ports
            .stdout
            .contains(&format!("listening (pid {}", server.pid())),
        "{ports}"
    );
    server.kill();
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
    assert!(!check.stdout.contains("moved"), "{check}");
}

/// The same, `validate` first: it reports the entries as moved (a
/// warning), and `--fix` records them at the moved worktree.
#[test]
fn validate_tells_a_moved_worktrees_entries_from_a_new_worktree_at_its_path() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    t.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "other",
        first.to_str().unwrap(),
    ]);
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
    assert!(
        check.stdout.contains(&format!(
            "worktree {} was moved to {} (git worktree move): its ports follow it",
            first.display(),
            moved.display()
        )),
        "{check}"
    );
    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert_eq!(ports_of(&t, &moved), vec![t.ports.port(0), t.ports.port(1)]);
    assert!(ports_of(&t, &first).is_empty());
}

/// A worktree whose stamp is missing (an older wtenv wrote none) keeps
/// its entries when no other worktree's stamp claims them, and `env`
/// writes the stamp.
#[test]
fn a_missing_stamp_keeps_the_entries_and_env_writes_it() {
    let (t, first) = moved_world();
    let stamp = t.repo.join(".git/worktrees/first/wtenv.stamp");
    std::fs::remove_file(&stamp).unwrap();
    exports(&t, &first, "WEB_PORT", t.ports.port(0));
    assert_eq!(ports_of(&t, &first), vec![t.ports.port(0), t.ports.port(1)]);
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap(),
        stamp_line(
            &first,
            &[("api", t.ports.port(1)), ("web", t.ports.port(0))]
        )
    );
}

/// `create --ports` at the path a worktree was moved from: the
/// reservation, made while git checks out, is the new worktree's own.
#[test]
fn create_ports_at_a_moved_worktrees_old_path_reserves_ports_of_its_own() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let path = first.to_str().unwrap();
    let args = ["create", "--purpose", "feature", "--identifier", "c"];
    let out = run(&mut t.wtenv(&[&args[..], &["--path", path, "--ports"]].concat()));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("reserved port {} (web)", t.ports.port(2))),
        "{out}"
    );
    assert_eq!(ports_of(&t, &first), vec![t.ports.port(2), t.ports.port(3)]);
    assert_eq!(ports_of(&t, &moved), vec![t.ports.port(0), t.ports.port(1)]);
}

/// Finding C: `validate --fix` released the ports of a worktree moved
/// away with `mv` for a while, and left its stamp listing them; once the
/// directory was back, its stale stamp claimed the ports another
/// worktree got next, and took them when that one was moved. The release
/// rewrites the stamp in the git dir git keeps.
#[test]
fn a_release_of_a_gone_worktrees_ports_rewrites_the_stamp_git_keeps() {
    let (t, first) = moved_world();
    let away = t.root().join("away");
    std::fs::rename(&first, &away).unwrap();
    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(fixed.stdout.contains("worktree-gone"), "{fixed}");
    let stamp = t.repo.join(".git/worktrees/first/wtenv.stamp");
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap(),
        stamp_line(&first, &[])
    );
    std::fs::rename(&away, &first).unwrap();

    let second = t.add_worktree("second");
    exports(&t, &second, "WEB_PORT", t.ports.port(0));
    let moved = move_worktree(&t, &second, "second-moved");
    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert_eq!(ports_of(&t, &moved), vec![t.ports.port(0), t.ports.port(1)]);
    assert!(ports_of(&t, &first).is_empty(), "{}", t.registry());
}

/// Two stamps that list one entry prove nothing: none is followed (the
/// gone worktree's entry is released as if no stamp named it), and
/// `validate` names both. The entry only one stamp lists follows it.
#[test]
fn an_entry_two_stamps_claim_follows_neither_and_validate_names_them() {
    let (t, first) = moved_world();
    let (web, api) = (t.ports.port(0), t.ports.port(1));
    let moved = move_worktree(&t, &first, "moved");
    let third = t.add_worktree("third");
    let stamp = t.repo.join(".git/worktrees/third/wtenv.stamp");
    std::fs::write(&stamp, stamp_line(&first, &[("web", web)])).unwrap();
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(1), "{check}");
    assert!(check.stdout.contains("stamp-claimed"), "{check}");
    assert!(
        check.stdout.contains(&format!(
            "the stamps of 2 worktrees list it ({}, {})",
            moved.display(),
            third.display()
        )) || check.stdout.contains(&format!(
            "the stamps of 2 worktrees list it ({}, {})",
            third.display(),
            moved.display()
        )),
        "{check}"
    );
    assert!(check.stdout.contains("worktree-gone"), "{check}");
    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert_eq!(ports_of(&t, &moved), vec![api]);
    assert!(ports_of(&t, &third).is_empty());
    assert!(t.allocations().iter().all(|(p, _, _)| *p != web));
}

/// Finding G: a repository deleted with its main worktree leaves its
/// linked worktrees' directories behind; their entries are gone all the
/// same (no command can reach them again), once no holder lives: `ports
/// --all` says so, and `validate --fix` releases them.
#[test]
fn a_deleted_repositorys_entries_are_gone_though_a_worktrees_directory_is_left() {
    let (t, first) = moved_world();
    let (web, api) = (t.ports.port(0), t.ports.port(1));
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid = holder.id().to_string();
    let out = run(&mut t.wtenv_in(&first, &["env", "--hold", &pid]));
    assert_eq!(out.code, Some(0), "{out}");
    let common = t.repo.join(".git");
    std::fs::remove_dir_all(&t.repo).unwrap();
    assert!(first.join(".git").exists());
    let root = t.root();

    // A live holder keeps them: its process has the numbers.
    let check = run(&mut t.wtenv_in(&root, &["validate", "--fix"]));
    assert!(!check.stdout.contains("no longer exists"), "{check}");
    assert_eq!(ports_of(&t, &first), vec![web, api]);
    holder.kill().unwrap();
    holder.wait().unwrap();

    let ports = run(&mut t.wtenv_in(&root, &["ports", "--all"]));
    assert_eq!(ports.code, Some(0), "{ports}");
    assert_eq!(
        ports.stdout.matches("worktree gone, idle").count(),
        2,
        "{ports}"
    );
    let check = run(&mut t.wtenv_in(&root, &["validate"]));
    assert_eq!(check.code, Some(1), "{check}");
    assert!(
        check.stdout.contains(&format!(
            "worktree {} is gone: its repository {} no longer exists",
            first.display(),
            common.display()
        )),
        "{check}"
    );
    let fixed = run(&mut t.wtenv_in(&root, &["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(t.allocations().is_empty(), "{}", t.registry());
}

/// Finding E: a repository moved whole with `mv` (its main worktree and
/// its worktrees). Each worktree claims the entries its own stamp lists
/// from the gone paths, whichever enters first; none gets another's
/// ports. Before the repair, `list` says to repair a moved worktree
/// before it says to prune.
#[test]
fn a_repository_moved_whole_keeps_each_worktrees_ports() {
    let (t, first) = moved_world();
    let (main, linked, to) = move_whole(&t, &first);

    exports(&t, &main, "WEB_PORT", t.ports.port(2));
    exports(&t, &main, "API_PORT", t.ports.port(3));
    let list = run(&mut t.wtenv_in(&main, &["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    let (repair, prune) = (
        list.stderr
            .find("git worktree repair")
            .unwrap_or_else(|| panic!("{list}")),
        list.stderr
            .find("git worktree prune")
            .unwrap_or_else(|| panic!("{list}")),
    );
    assert!(repair < prune, "{list}");
    // The entries the unrepaired worktree's stamp lists are left for it:
    // a new worktree's allocation meanwhile does not take them.
    let third = to.join("third");
    t.git_in(
        &main,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "third",
            third.to_str().unwrap(),
        ],
    );
    exports(&t, &third, "WEB_PORT", t.ports.port(4));

    t.git_in(&main, &["worktree", "repair", linked.to_str().unwrap()]);
    exports(&t, &linked, "WEB_PORT", t.ports.port(0));
    exports(&t, &linked, "API_PORT", t.ports.port(1));
    assert_eq!(ports_of(&t, &main), vec![t.ports.port(2), t.ports.port(3)]);
    assert_eq!(
        ports_of(&t, &linked),
        vec![t.ports.port(0), t.ports.port(1)]
    );
    assert_eq!(t.allocations().len(), 6, "{}", t.registry());
}

/// Finding H: `ports` and `list` said "worktree gone" of a worktree that
/// was only moved (its ports are not freed: they follow it); they say
/// where it went, as `validate` does, and JSON's `moved_to` names it.
#[test]
fn ports_and_list_say_a_moved_worktrees_ports_moved_not_gone() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let said = format!("moved to {}, idle", moved.display());
    for args in [&["ports"][..], &["ports", "--all"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(0), "{out}");
        assert_eq!(out.stdout.matches(&said).count(), 2, "{out}");
        assert!(!out.stdout.contains("worktree gone"), "{out}");
    }
    let json = run(&mut t.wtenv(&["ports", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    for a in doc["allocations"].as_array().unwrap() {
        assert_eq!(a["worktree_gone"], false, "{json}");
        assert_eq!(a["moved_to"], moved.to_str().unwrap(), "{json}");
    }
    // A new worktree at the old path: its rows say whose they are.
    t.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "other",
        first.to_str().unwrap(),
    ]);
    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    assert_eq!(list.stdout.matches(&said).count(), 2, "{list}");
}

/// A repository moved whole, `validate --fix` run in it before its linked
/// worktree is repaired: the entries the stamps of its worktrees list are
/// kept, as the allocating sweep keeps them (it released them all), and
/// reported with the repair that finds the worktree again; once
/// repaired, each worktree's `env` takes its own.
#[test]
fn validate_fix_keeps_the_entries_of_a_repository_moved_whole_for_its_worktrees() {
    let (t, first) = moved_world();
    let (main, linked, _) = move_whole(&t, &first);

    let fix = |expected: usize| {
        let fixed = run(&mut t.wtenv_in(&main, &["validate", "--fix"]));
        assert_eq!(fixed.code, Some(0), "{fixed}");
        let said = fixed.stdout.matches("repository-moved").count();
        assert_eq!(said, expected, "{fixed}");
        assert!(
            fixed
                .stdout
                .contains("'git worktree repair <its new path>' (run here)"),
            "{fixed}"
        );
        assert_eq!(t.allocations().len(), 4, "kept: {}", t.registry());
    };
    fix(4);
    exports(&t, &main, "WEB_PORT", t.ports.port(2));
    exports(&t, &main, "API_PORT", t.ports.port(3));
    fix(2);

    t.git_in(&main, &["worktree", "repair", linked.to_str().unwrap()]);
    exports(&t, &linked, "WEB_PORT", t.ports.port(0));
    exports(&t, &linked, "API_PORT", t.ports.port(1));
    assert_eq!(
        ports_of(&t, &linked),
        vec![t.ports.port(0), t.ports.port(1)]
    );
    assert_eq!(ports_of(&t, &main), vec![t.ports.port(2), t.ports.port(3)]);
    let check = run(&mut t.wtenv_in(&main, &["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
    assert!(!check.stdout.contains("repository-moved"), "{check}");
}

/// A repository moved whole, seen from its main worktree before the
/// linked one is repaired: `ports --all` and `list` said the entries
/// kept for the linked one `worktree gone` (and `list` showed its
/// services unallocated) while `validate` says `repository-moved`; they
/// say `repository moved`, in JSON `repository_moved`. Seen from
/// outside the repository, `worktree gone`, as `validate` says there.
#[test]
fn ports_and_list_say_a_repository_moved_whole_as_validate_does() {
    let (t, first) = moved_world();
    let (main, linked, _) = move_whole(&t, &first);
    exports(&t, &main, "WEB_PORT", t.ports.port(2));
    let kept = [t.ports.port(0), t.ports.port(1)];
    let said = "repository moved, idle";

    let all = run(&mut t.wtenv_in(&main, &["ports", "--all"]));
    assert_eq!(all.code, Some(0), "{all}");
    assert_eq!(all.stdout.matches(said).count(), 2, "{all}");
    assert!(!all.stdout.contains("worktree gone"), "{all}");
    let list = run(&mut t.wtenv_in(&main, &["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    for port in kept {
        let row = list
            .stdout
            .lines()
            .find(|l| l.contains(&format!(" {port} ")))
            .unwrap_or_else(|| panic!("no row of {port}: {list}"));
        assert!(row.starts_with(first.to_str().unwrap()), "{list}");
        assert!(row.ends_with(said), "{list}");
    }
    assert!(!list.stderr.contains("validate --fix"), "{list}");

    let json = run(&mut t.wtenv_in(&main, &["ports", "--all", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    for a in doc["allocations"].as_array().unwrap() {
        let is_kept = kept.iter().any(|p| a["port"] == *p);
        assert_eq!(a["repository_moved"], is_kept, "{json}");
        assert_eq!(a["worktree_gone"], false, "{json}");
    }
    let json = run(&mut t.wtenv_in(&main, &["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let services: Vec<&serde_json::Value> = doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["path"] == first.to_str().unwrap())
        .flat_map(|w| w["services"].as_array().unwrap())
        .collect();
    assert_eq!(services.len(), 2, "{json}");
    for s in services {
        assert!(kept.iter().any(|p| s["port"] == *p), "{json}");
        assert_eq!(s["repository_moved"], true, "{json}");
        assert_eq!(s["worktree_gone"], false, "{json}");
    }

    // Outside the repository, nothing tells where it went.
    let outside = run(&mut t.wtenv_in(&t.root(), &["ports", "--all"]));
    assert_eq!(
        outside.stdout.matches("worktree gone, idle").count(),
        2,
        "{outside}"
    );
    assert!(!outside.stdout.contains(said), "{outside}");

    // Once the linked worktree takes them, nothing is kept.
    t.git_in(&main, &["worktree", "repair", linked.to_str().unwrap()]);
    exports(&t, &linked, "WEB_PORT", t.ports.port(0));
    let all = run(&mut t.wtenv_in(&main, &["ports", "--all"]));
    assert!(!all.stdout.contains("repository moved"), "{all}");
}

/// QA finding: stamps left one change behind by wtenvs SIGKILLed between
/// the registry's write and the stamp's. `second` released its web port
/// (its stamp still listing it), `first` then got that port (its stamp
/// not written). `env` in `second` took `first`'s entry as its own,
/// moved away from `first`'s path, and `validate` said `first` was moved
/// to `second`. A stamp proves a move only when it was written at the
/// entry's path: `second`'s, written at its own, claims nothing there.
#[test]
fn a_stale_stamp_never_takes_the_port_another_worktree_got_since() {
    let (t, first) = moved_world();
    let second = t.add_worktree("second");
    let stamp = |wt: &str| t.repo.join(".git/worktrees").join(wt).join("wtenv.stamp");
    let allocate = |dir: &Path| {
        let out = run(&mut t.wtenv_in(dir, &["allocate", "--service", "web"]));
        assert_eq!(out.code, Some(0), "{out}");
        out.stdout.trim().parse::<u16>().unwrap()
    };
    let release = |dir: &Path| {
        let out = run(&mut t.wtenv_in(dir, &["release", "--service", "web"]));
        assert_eq!(out.code, Some(0), "{out}");
    };
    let port = allocate(&second);
    let left_behind = std::fs::read(stamp("second")).unwrap();
    release(&second);
    std::fs::write(stamp("second"), &left_behind).unwrap();
    release(&first);
    assert_eq!(allocate(&t.repo), t.ports.port(0), "the lowest free port");
    assert_eq!(allocate(&first), port, "the lowest free port");
    std::fs::remove_file(stamp("first")).unwrap();

    let check = run(&mut t.wtenv(&["validate"]));
    assert!(!check.stdout.contains("worktree-moved"), "{check}");
    let env = run(&mut t.wtenv_in(&second, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(!env.stdout.contains(&format!("='{port}'")), "{env}");
    assert!(ports_of(&t, &first).contains(&port), "{}", t.registry());
    assert!(!ports_of(&t, &second).contains(&port), "{}", t.registry());
    // Each stamp is current again once its worktree's `env` ran.
    exports(&t, &first, "WEB_PORT", port);
    for (wt, dir) in [("first", &first), ("second", &second)] {
        let line = std::fs::read_to_string(stamp(wt)).unwrap();
        assert!(
            line.contains(&format!("web={}", ports_of_service(&t, dir, "web"))),
            "{wt}: {line}"
        );
    }
}

/// The port the registry records for `service` of `worktree`.
fn ports_of_service(t: &TestEnv, worktree: &Path, service: &str) -> u16 {
    t.allocations()
        .into_iter()
        .find(|(_, s, w)| w == worktree && s == service)
        .map(|(p, _, _)| p)
        .unwrap_or_else(|| panic!("no {service} of {}: {}", worktree.display(), t.registry()))
}
