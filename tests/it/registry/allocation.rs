//! Allocation and release: the lowest free port, sticky once reserved;
//! `allocate` and `release` of one service or of a gone worktree; a
//! purpose's range.

use crate::support::{PortBlock, TestEnv, run};

#[test]
fn env_allocates_lowest_port_and_is_sticky() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    assert!(
        first
            .stdout
            .contains(&format!("export PORT='{}'\n", t.ports.start)),
        "{first}"
    );
    let again = run(&mut t.wtenv(&["env"]));
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(t.allocations().len(), 1);
}

#[test]
fn allocate_prints_the_port_alone_and_release_gives_it_back() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["allocate", "--service", "db"]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), &*format!("{}\n", t.ports.start)),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["release", "--service", "db"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().is_empty());
}

#[test]
fn release_by_path_frees_a_deleted_worktrees_ports_and_leaves_others() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    std::fs::remove_dir_all(&other).unwrap();
    let out = run(&mut t.wtenv(&["release", "--worktree", other.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("released port {} (app)", t.ports.port(1))),
        "{out}"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), t.repo.clone())]
    );
    let out = run(&mut t.wtenv(&["release", "--service", "nope"]));
    assert_eq!(out.code, Some(1), "{out}");
}

/// A linked worktree deleted and a fresh clone made at its path: its
/// entry is recorded under the first repository, the path is now the
/// clone's. `release --worktree PATH` releases it all the same (the user
/// named the path) and names it, with the repository that recorded it.
#[test]
fn release_by_path_frees_what_another_repository_recorded_there() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    t.reclone(&other);
    let out = run(&mut t.wtenv(&["release", "--worktree", other.to_str().unwrap()]));
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            Some(0),
            &*format!(
                "released port {} (app) of {}, recorded for repository {}\n",
                t.ports.port(1),
                other.display(),
                t.repo.join(".git").display()
            )
        ),
        "{out}"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), t.repo.clone())]
    );
}

/// A repository whose `feature` range starts at `a` and `bugfix` range at
/// `b`, 20 ports on.
fn two_purposes() -> (TestEnv, u16, u16) {
    let t = TestEnv::with_ports(PortBlock::take_many(2));
    let (a, b) = (t.ports.start, t.ports.start + 20);
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!(
            "[purposes]\nfeature = \"{a}-{}\"\nbugfix = \"{b}-{}\"\n",
            b - 1,
            t.ports.end()
        ),
    )
    .unwrap();
    (t, a, b)
}

#[test]
fn allocate_with_a_purpose_uses_that_range() {
    let (t, a, b) = two_purposes();
    let out = run(&mut t.wtenv(&["allocate", "--service", "x", "--purpose", "bugfix"]));
    assert_eq!(
        (out.code, out.stdout.clone()),
        (Some(0), format!("{b}\n")),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["allocate", "--service", "y"]));
    assert_eq!(out.stdout, format!("{a}\n"), "{out}");
    let out = run(&mut t.wtenv(&["allocate", "--service", "z", "--purpose", "nightly"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("unknown purpose \"nightly\""), "{out}");
    assert_eq!(
        run(&mut t.wtenv(&["validate"])).code,
        Some(0),
        "purposes recorded right"
    );
}

#[test]
fn release_of_a_missing_path_with_nothing_recorded_is_not_found() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let before = std::fs::read(t.registry_path()).unwrap();
    let nowhere = t.root().join("nowhere");
    let out = run(&mut t.wtenv(&["release", "--worktree", nowhere.to_str().unwrap()]));
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            Some(1),
            &*format!(
                "error: worktree {} does not exist, and the registry has no allocations for it\n\
                 hint: check the path; 'wtenv ports --all' lists what the registry holds\n",
                nowhere.display()
            )
        ),
        "{out}"
    );
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
    // A path that is there, with nothing recorded: said, and a success
    // (release is idempotent).
    let out = run(&mut t.wtenv(&["release", "--worktree", t.root().to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.starts_with("warning: "), "{out}");
    assert_eq!(std::fs::read(t.registry_path()).unwrap(), before);
}

#[test]
fn allocate_with_another_purpose_keeps_the_port_and_says_how_to_move_it() {
    let (t, a, b) = two_purposes();
    let out = run(&mut t.wtenv(&["allocate", "--service", "web"]));
    assert_eq!(
        (out.code, out.stdout.clone()),
        (Some(0), format!("{a}\n")),
        "{out}"
    );
    // Sticky: the port stays, and the warning says why --purpose did not
    // apply, and how to move it.
    let out = run(&mut t.wtenv(&["allocate", "--service", "web", "--purpose", "bugfix"]));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            Some(0),
            &*format!("{a}\n"),
            &*format!(
                "warning: service web keeps its port {a} from purpose feature, the one it was \
                 allocated in: --purpose applies to new allocations only\n\
                 hint: to move it, release it, then allocate it again: 'wtenv release --service \
                 web', then 'wtenv allocate --service web --purpose bugfix'\n"
            )
        ),
        "{out}"
    );
    // Asked in the purpose it has: nothing to say.
    let out = run(&mut t.wtenv(&["allocate", "--service", "web", "--purpose", "feature"]));
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out}");
    // The way the hint gives moves it.
    assert_eq!(
        run(&mut t.wtenv(&["release", "--service", "web"])).code,
        Some(0)
    );
    let out = run(&mut t.wtenv(&["allocate", "--service", "web", "--purpose", "bugfix"]));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), &*format!("{b}\n"), ""),
        "{out}"
    );
}
