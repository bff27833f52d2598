//! A worktree moved with `git worktree move` keeps its ports: its entries
//! follow it (the stamp in its git dir lists them) when `validate --fix`
//! or its own next `env` finds them; the sweep of another allocation
//! keeps them where they are. A worktree deleted and made again is not a
//! move.

use std::path::{Path, PathBuf};

use crate::support::{PortBlock, PyListener, TestEnv, run, stamp_line};

/// A repository whose committed config has two services, and a linked
/// worktree `first` whose `env` reserved the range's first two ports.
pub(super) fn moved_world() -> (TestEnv, PathBuf) {
    let t = TestEnv::with_ports(PortBlock::take_many(2));
    t.write_config("[services.web]\n[services.api]\n");
    t.git(&["commit", "-q", "-am", "two services"]);
    let first = t.add_worktree("first");
    let out = run(&mut t.wtenv_in(&first, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(ports_of(&t, &first), vec![t.ports.port(0), t.ports.port(1)]);
    (t, first)
}

/// The ports the registry records for `worktree`, sorted.
pub(super) fn ports_of(t: &TestEnv, worktree: &Path) -> Vec<u16> {
    let mut ports: Vec<u16> = t
        .allocations()
        .into_iter()
        .filter(|(_, _, w)| w == worktree)
        .map(|(p, _, _)| p)
        .collect();
    ports.sort();
    ports
}

pub(super) fn move_worktree(t: &TestEnv, from: &Path, to_name: &str) -> PathBuf {
    let to = t.root().join(to_name);
    t.git(&[
        "worktree",
        "move",
        from.to_str().unwrap(),
        to.to_str().unwrap(),
    ]);
    to
}

#[test]
fn a_moved_worktree_keeps_its_ports_at_its_next_env() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");

    let before = std::fs::read(t.registry_path()).unwrap();
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "a warning: {check}");
    assert!(
        check.stdout.contains(&format!(
            "worktree {} was moved to {} (git worktree move): its ports follow it",
            first.display(),
            moved.display()
        )),
        "{check}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);

    let out = run(&mut t.wtenv_in(&moved, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("export WEB_PORT='{}'", t.ports.port(0))),
        "{out}"
    );
    assert_eq!(ports_of(&t, &moved), vec![t.ports.port(0), t.ports.port(1)]);
    assert!(ports_of(&t, &first).is_empty());
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
    assert!(!check.stdout.contains("moved"), "{check}");
}

#[test]
fn the_sweep_of_another_allocation_keeps_the_moved_worktrees_entries() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let second = t.add_worktree("second");
    let out = run(&mut t.wtenv_in(&second, &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        ports_of(&t, &second),
        vec![t.ports.port(2), t.ports.port(3)],
        "the moved worktree's ports are not free"
    );
    // Kept where they were recorded: the part `second` read holds none
    // of `moved`'s entries, so it cannot tell whether `moved` has ports
    // of its own by now (see the test below); `moved`'s own `env` takes
    // them.
    assert_eq!(ports_of(&t, &first), vec![t.ports.port(0), t.ports.port(1)]);
    let out = run(&mut t.wtenv_in(&moved, &["env"]));
    assert!(
        out.stdout
            .contains(&format!("export API_PORT='{}'", t.ports.port(1))),
        "{out}"
    );
    assert_eq!(ports_of(&t, &moved), vec![t.ports.port(0), t.ports.port(1)]);
}

#[test]
fn validate_fix_records_the_entries_where_the_worktree_went() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(fixed.stdout.contains("[fixed]"), "{fixed}");
    assert_eq!(ports_of(&t, &moved), vec![t.ports.port(0), t.ports.port(1)]);
    assert!(ports_of(&t, &first).is_empty());
}

/// Deleted, pruned and added again under the same name elsewhere: git
/// makes a new git dir, with no stamp, so the old entries are gone ones.
#[test]
fn a_worktree_deleted_and_added_again_is_not_taken_for_a_move() {
    let (t, first) = moved_world();
    std::fs::remove_dir_all(&first).unwrap();
    t.git(&["worktree", "prune"]);
    let again = t.root().join("elsewhere/first");
    t.git(&["worktree", "add", "-q", again.to_str().unwrap(), "first"]);
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(1), "{check}");
    assert!(check.stdout.contains("worktree-gone"), "{check}");
    assert!(!check.stdout.contains("moved"), "{check}");
}

/// `remove` of a moved worktree, before any `env` there: the entries left
/// at the path it was moved from are its own, and are released with it
/// (it said "removed worktree", released nothing, and `ports --all` kept
/// them as a gone worktree's). While a server of the worktree listens on
/// one of them, they are seen as its ports in use: refused, the registry
/// as it was.
#[test]
fn remove_of_a_moved_worktree_releases_the_ports_it_left_behind() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let mut server = crate::support::HttpServer::start(&moved, t.ports.port(0));
    let before = std::fs::read(t.registry_path()).unwrap();
    let refused = run(&mut t.wtenv(&["remove", moved.to_str().unwrap()]));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains(&format!(
            "  port {} (web): listening: pid {}",
            t.ports.port(0),
            server.pid()
        )),
        "{refused}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
    server.kill();

    let out = run(&mut t.wtenv(&["remove", moved.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    for (port, service) in [(t.ports.port(0), "web"), (t.ports.port(1), "api")] {
        assert!(
            out.stderr
                .contains(&format!("released port {port} ({service})\n")),
            "{out}"
        );
    }
    assert!(t.allocations().is_empty(), "{}", t.registry());
    let check = run(&mut t.wtenv(&["validate"]));
    assert_eq!(check.code, Some(0), "{check}");
}

/// `release` in a moved worktree, and `release --worktree PATH` naming
/// it, release what it owns: the entries left at the path it was moved
/// from (it warned "has no allocations" and released nothing). One
/// service's release moves the others with it, as `env` would.
#[test]
fn release_in_a_moved_worktree_releases_the_ports_it_left_behind() {
    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let (web, api) = (t.ports.port(0), t.ports.port(1));
    let out = run(&mut t.wtenv_in(&moved, &["release", "--service", "api"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "released port {api} (api) of {}\n",
            moved.display()
        )),
        "{out}"
    );
    assert_eq!(ports_of(&t, &moved), vec![web]);
    assert!(ports_of(&t, &first).is_empty());
    let out = run(&mut t.wtenv_in(&moved, &["release"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "released port {web} (web) of {}\n",
            moved.display()
        )),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{}", t.registry());

    let (t, first) = moved_world();
    let moved = move_worktree(&t, &first, "moved");
    let out = run(&mut t.wtenv(&["release", "--worktree", moved.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains("has no allocations"), "{out}");
    assert!(t.allocations().is_empty(), "{}", t.registry());
}

/// `create --ports` reserves while git checks out. When the reservation's
/// write came before git had made the worktree's git dir, it wrote no
/// stamp, and the confirmation (the ports already reserved) wrote none
/// either: direnv had nothing to reload on, and a `git worktree move`
/// then was no move (a third of the time, on a loaded machine). A `git`
/// on PATH that starts `worktree add` only once the registry records the
/// new worktree (and a moment after, for the write's own stamp attempt)
/// makes that order certain.
#[test]
fn create_ports_leaves_the_stamp_when_its_reservation_came_before_git() {
    let t = TestEnv::with_ports(PortBlock::take_many(2));
    t.write_config("[services.web]\n[services.api]\n");
    t.git(&["commit", "-q", "-am", "two services"]);
    let bin = t.root().join("late-git");
    std::fs::create_dir(&bin).unwrap();
    // At most 10 s for the registry: a reservation that never comes
    // lets git run, and the test fails on what create did, not by hanging.
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$1\" = worktree ] && [ \"$2\" = add ]; then\n\
         i=0\n\
         until grep -qF feature-late '{}' 2>/dev/null || [ $i -ge 1000 ]; do i=$((i+1)); sleep 0.01; done\n\
         sleep 0.3\n\
         fi\n\
         PATH=${{PATH#*:}} exec git \"$@\"\n",
        t.registry_path().display()
    );
    let git = bin.join("git");
    std::fs::write(&git, script).unwrap();
    std::fs::set_permissions(&git, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let args = [
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "late",
        "--ports",
    ];
    let out = run(t.wtenv(&args).env("PATH", path));
    assert_eq!(out.code, Some(0), "{out}");
    let (web, api) = (t.ports.port(0), t.ports.port(1));
    let stamp = t.repo.join(".git/worktrees/feature-late/wtenv.stamp");
    let made = super::default_path(&t, "feature", "late");
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap_or_default(),
        stamp_line(&made, &[("api", api), ("web", web)])
    );

    let moved = move_worktree(&t, &made, "moved");
    let out = run(&mut t.wtenv(&["remove", moved.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    for (port, service) in [(web, "web"), (api, "api")] {
        assert!(
            out.stderr
                .contains(&format!("released port {port} ({service})\n")),
            "{out}"
        );
    }
    assert!(t.allocations().is_empty(), "{}", t.registry());
}

/// QA finding: the first `env` (or `run`) after `git worktree move`
/// exported a port a process outside the worktree listened on, exit 0:
/// the entries that followed the worktree were recorded at its new path
/// by the allocation's sweep, after the look for foreign holders, which
/// had seen none there. They are looked at under the lock now: refused,
/// the holder named, nothing written; the next `env`, and a `run`, alike.
#[test]
fn the_first_env_after_a_move_refuses_a_port_held_from_outside() {
    let (t, first) = moved_world();
    let web = t.ports.port(0);
    let _outsider = PyListener::start(&t.root(), "4", "127.0.0.1", web, "");
    let moved = move_worktree(&t, &first, "moved");
    let before = std::fs::read(t.registry_path()).unwrap();
    for args in [&["env"][..], &["env"], &["run", "--", "true"]] {
        let out = run(&mut t.wtenv_in(&moved, args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: ports reserved for worktree {} are held by processes outside it:",
                moved.display()
            )) && out.stderr.contains(&format!("port {web} (web)")),
            "{args:?}: {out}"
        );
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            before,
            "{args:?}: {out}"
        );
    }
}

/// A worktree moved onto the path of one removed behind wtenv's back
/// (`git worktree remove`), whose entry there it then takes (no other
/// stamp claims it), and the `env` of a third worktree in the first
/// one's range: its sweep moved the first worktree's old entry to the
/// new path without seeing the one already there (in another purpose's
/// range, outside the part it read), and recorded one service of that
/// worktree twice, which the registry then refuses (exit 2 for
/// `ports`, `list`, `validate` and that worktree's `env`). A move to a
/// worktree none of whose entries the part holds now waits for that
/// worktree's own transaction or `validate --fix`.
#[test]
fn a_sweep_never_moves_an_entry_to_a_worktree_it_cannot_see_whole() {
    let t = TestEnv::with_ports(PortBlock::take_many(2));
    let half = t.ports.len() / 2;
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!(
            "[purposes]\nfeature = \"{}-{}\"\nbugfix = \"{}-{}\"\n[services.web]\n",
            t.ports.port(0),
            t.ports.port(half - 1),
            t.ports.port(half),
            t.ports.port(2 * half - 1)
        ),
    )
    .unwrap();
    t.git(&["commit", "-q", "-am", "two purposes"]);
    let wt = |name: &str| t.root().join("wt").join(name);
    for (purpose, id) in [("feature", "A"), ("bugfix", "B")] {
        let out = run(&mut t.wtenv(&[
            "create",
            "--purpose",
            purpose,
            "--identifier",
            id,
            "--path",
            wt(id).to_str().unwrap(),
            "--ports",
        ]));
        assert_eq!(out.code, Some(0), "{out}");
    }
    t.git(&["worktree", "remove", wt("B").to_str().unwrap()]);
    t.git(&[
        "worktree",
        "move",
        wt("A").to_str().unwrap(),
        wt("B").to_str().unwrap(),
    ]);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "C",
        "--path",
        wt("C").to_str().unwrap(),
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    let out = run(&mut t.wtenv_in(&wt("C"), &["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    for (dir, args) in [
        (&t.repo, &["ports"][..]),
        (&t.repo, &["list"]),
        (&wt("B"), &["env"]),
    ] {
        let out = run(&mut t.wtenv_in(dir, args));
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
    }
    // One port for web at B, whichever; `validate --fix` leaves none twice.
    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_ne!(out.code, Some(2), "{out}");
    assert!(!out.stdout.contains("duplicate-service"), "{out}");
    assert_eq!(ports_of(&t, &wt("B")).len(), 1, "{:?}", t.allocations());
}
