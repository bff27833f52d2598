//! Repositories whose git dir is not a `.git` directory in a main
//! worktree: bare ones (`bare.git`, the `.bare` layout), submodules, a
//! separate git dir.

use std::path::{Path, PathBuf};

use crate::support::{TestEnv, run};

/// A bare clone of the test's repository at `<root>/<name>`.
fn bare_clone(t: &TestEnv, name: &str) -> PathBuf {
    let bare = t.root().join(name);
    t.git_in(
        &t.root(),
        &["clone", "-q", "--bare", t.repo.to_str().unwrap(), name],
    );
    bare
}

/// In a bare repository (or a directory inside it) `env`, `list` and
/// `create` said "... is not inside a git worktree" with the hint "cd into
/// a git repository or one of its worktrees": the user was in one. They
/// now say it is a bare repository, and how to get a worktree of it.
/// `conflicts` had words of its own ("no configuration to check: ... is
/// not inside a git worktree"): it says the same, with its own two ways
/// out besides.
#[test]
fn a_bare_repository_is_named_as_one_with_the_way_to_a_worktree() {
    let t = TestEnv::new();
    let bare = bare_clone(&t, "bare.git");
    let hint = "hint: cd into one of its worktrees ('git worktree list' shows them), or add one: git worktree add PATH";
    let cases: [(&Path, String); 2] = [
        (
            &bare,
            format!(
                "error: {} is a bare repository, not a git worktree\n",
                bare.display()
            ),
        ),
        (
            &bare.join("refs"),
            format!(
                "error: {} is inside the bare repository {}, not a git worktree\n",
                bare.join("refs").display(),
                bare.display()
            ),
        ),
    ];
    let before = crate::support::snapshot(&t.root());
    for (dir, error) in &cases {
        for args in [
            &["env"][..],
            &["list"],
            &[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                "b1",
                "--ports",
            ],
            &["conflicts"],
        ] {
            let out = run(&mut t.wtenv_in(dir, args));
            assert_eq!(out.code, Some(1), "{args:?} in {dir:?}: {out}");
            let besides = if args == ["conflicts"] {
                "; or pass --config PATH, or --all for every repository in the registry"
            } else {
                ""
            };
            assert_eq!(
                out.stderr,
                format!("{error}{hint}{besides}\n"),
                "{args:?} in {dir:?}"
            );
            assert_eq!(out.stdout, "", "{args:?} in {dir:?}");
        }
    }
    assert_eq!(crate::support::snapshot(&t.root()), before, "written");
}

/// `create ARGS` run in `dir`, which must succeed: the path it printed.
fn create_in(t: &TestEnv, dir: &Path, id: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["create", "--purpose", "feature", "--identifier", id];
    args.extend_from_slice(extra);
    let out = run(&mut t.wtenv_in(dir, &args));
    assert_eq!(out.code, Some(0), "create {id} in {dir:?}: {out}");
    let path = PathBuf::from(out.stdout.trim());
    assert!(path.join(".git").is_file(), "{out}");
    path
}

/// `list --json` in `dir`: each worktree's path, whether it is the main
/// one, and its first service's port.
fn listed(t: &TestEnv, dir: &Path) -> Vec<(PathBuf, bool, Option<u64>)> {
    let out = run(&mut t.wtenv_in(dir, &["list", "--json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    doc["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                PathBuf::from(w["path"].as_str().unwrap()),
                w["main"].as_bool().unwrap(),
                w["services"][0]["port"].as_u64(),
            )
        })
        .collect()
}

/// A bare repository has no main worktree: the default root is beside
/// the repository, as the code meant it to be. It went one level above
/// the directory holding `bare.git`, and for the `.bare` layout (a hidden
/// bare repository in `proj`, which `proj/.git` names) to a hidden
/// `.bare.worktrees` outside `proj`.
#[test]
fn create_in_a_bare_repository_goes_beside_the_repository() {
    let t = TestEnv::new();
    let holder = t.root().join("repos");
    std::fs::create_dir(&holder).unwrap();
    let bare = holder.join("bare.git");
    t.git_in(
        &holder,
        &[
            "clone",
            "-q",
            "--bare",
            t.repo.to_str().unwrap(),
            "bare.git",
        ],
    );
    let main = holder.join("bwt-main");
    t.git_in(
        &bare,
        &["worktree", "add", "-q", main.to_str().unwrap(), "main"],
    );
    let made = create_in(&t, &main, "b1", &["--ports"]);
    assert_eq!(made, holder.join("bare.worktrees/feature-b1"));

    let proj = holder.join("proj");
    std::fs::create_dir(&proj).unwrap();
    t.git_in(
        &proj,
        &["clone", "-q", "--bare", t.repo.to_str().unwrap(), ".bare"],
    );
    std::fs::write(proj.join(".git"), "gitdir: ./.bare\n").unwrap();
    t.git_in(&proj, &["worktree", "add", "-q", "main", "main"]);
    // From a linked worktree, and from `proj` itself.
    let made = create_in(&t, &proj.join("main"), "pb", &["--ports"]);
    assert_eq!(made, holder.join("proj.worktrees/feature-pb"));
    let made = create_in(&t, &proj, "pb2", &[]);
    assert_eq!(made, holder.join("proj.worktrees/feature-pb2"));
    let out = run(&mut t.wtenv_in(&proj.join("main"), &["remove", "pb"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!holder.join("proj.worktrees/feature-pb").exists());
}

/// `git init --separate-git-dir <root>/sepgit <root>/sepwt` with the
/// test's config committed, and a linked worktree `<root>/seplinked`:
/// the three, in that order. The repository records no main worktree
/// (no `core.worktree`).
fn separate_git_dir(t: &TestEnv) -> (PathBuf, PathBuf, PathBuf) {
    let sepgit = t.root().join("sepgit");
    let sepwt = t.root().join("sepwt");
    t.git_in(
        &t.root(),
        &[
            "init",
            "-q",
            "-b",
            "main",
            "--separate-git-dir",
            sepgit.to_str().unwrap(),
            sepwt.to_str().unwrap(),
        ],
    );
    std::fs::copy(t.repo.join("wtenv.toml"), sepwt.join("wtenv.toml")).unwrap();
    t.git_in(&sepwt, &["add", "wtenv.toml"]);
    t.git_in(&sepwt, &["commit", "-q", "-m", "config"]);
    let linked = t.root().join("seplinked");
    t.git_in(
        &sepwt,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "sl",
            linked.to_str().unwrap(),
        ],
    );
    (sepgit, sepwt, linked)
}

/// A separate git dir (`git init --separate-git-dir`): from its main
/// worktree, whose `.git` file names the repository itself, the default
/// root is beside that worktree (it was beside the git dir), `list` shows
/// that worktree with its ports (it showed the git dir, unallocated), and
/// `remove` of it, from anywhere, is refused as the main worktree (from a
/// linked worktree it said "no worktree ... in this repository").
#[test]
fn a_separate_git_dir_has_its_main_worktree_where_wtenv_can_know_it() {
    let t = TestEnv::new();
    let (sepgit, sepwt, linked) = separate_git_dir(&t);
    let env = run(&mut t.wtenv_in(&sepwt, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    let made = create_in(&t, &sepwt, "s1", &[]);
    assert_eq!(made, t.root().join("sepwt.worktrees/feature-s1"));
    let rows = listed(&t, &sepwt);
    assert_eq!(
        rows[0],
        (sepwt.clone(), true, Some(u64::from(t.ports.start)))
    );
    assert!(rows.iter().all(|r| r.0 != sepgit), "{rows:?}");

    // From the linked worktree git's records do not name the main one:
    // beside the git dir, as for a bare repository.
    let made = create_in(&t, &linked, "s2", &[]);
    assert_eq!(made, t.root().join("sepgit.worktrees/feature-s2"));
    for dir in [&sepwt, &linked] {
        let out = run(&mut t.wtenv_in(dir, &["remove", sepwt.to_str().unwrap()]));
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: {} is the main worktree; it is never removed\n\
                 hint: to free its ports instead: wtenv release --worktree '{}'\n",
                sepwt.display(),
                sepwt.display()
            ),
            "from {dir:?}"
        );
    }
    assert!(sepwt.join("wtenv.toml").is_file());
}

/// Git lists a separate git dir that records no main worktree (no
/// `core.worktree`) in the main worktree's place, from any directory
/// (`git worktree list`: `worktree <sepgit>`, branch `main`). From a
/// linked worktree, where wtenv cannot name the main one either, `list`
/// showed that git dir as the main worktree, its services `unallocated`,
/// and `remove` of it said "no worktree". `list` keeps git's row, marked
/// as the git dir, without services; `remove` of a repository's git dir
/// says what it is, from anywhere, `.git` included.
#[test]
fn a_git_dir_git_lists_for_the_main_worktree_is_never_a_worktree() {
    let t = TestEnv::new();
    let (sepgit, sepwt, linked) = separate_git_dir(&t);
    let porcelain = t.git_in(&linked, &["worktree", "list", "--porcelain"]);
    assert!(
        porcelain.starts_with(&format!("worktree {}\n", sepgit.display())),
        "{porcelain}"
    );

    let out = run(&mut t.wtenv_in(&linked, &["list", "--json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = doc["worktrees"].as_array().unwrap();
    let fields = |w: &serde_json::Value| {
        (
            w["path"].as_str().unwrap().to_owned(),
            w["branch"].clone(),
            w["main"].clone(),
            w["git_dir"].clone(),
            w["services"].as_array().unwrap().len(),
        )
    };
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    assert_eq!(
        rows.iter().map(fields).collect::<Vec<_>>(),
        [
            (path(&sepgit), "main".into(), true.into(), true.into(), 0),
            (path(&linked), "sl".into(), false.into(), false.into(), 1),
        ]
    );
    let out = run(&mut t.wtenv_in(&linked, &["list"]));
    assert_eq!(out.code, Some(0), "{out}");
    let main_rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{} ", sepgit.display())))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        main_rows,
        [[
            sepgit.to_str().unwrap(),
            "main",
            "feature",
            &t.ports.range(),
            "-",
            "-",
            "git dir, not a worktree: no core.worktree names the main one",
        ]],
        "{out}"
    );

    let refused = |git_dir: &Path| {
        format!(
            "error: {} is the repository's git dir, not a worktree; nothing was removed\n\
             hint: name a worktree by its identifier or its path; 'wtenv list' shows them\n",
            git_dir.display()
        )
    };
    let sepgit_arg = path(&sepgit);
    let cases: [(&Path, &[&str], &Path); 4] = [
        (&linked, &["remove", &sepgit_arg], &sepgit),
        (
            &linked,
            &["remove", &sepgit_arg, "--delete-branch"],
            &sepgit,
        ),
        (&sepwt, &["remove", "../sepgit"], &sepgit),
        (
            &t.repo,
            &["remove", ".git", "--force"],
            &t.repo.join(".git"),
        ),
    ];
    for (dir, args, git_dir) in cases {
        let out = run(&mut t.wtenv_in(dir, args));
        assert_eq!(out.code, Some(1), "{args:?} in {dir:?}: {out}");
        assert_eq!(out.stderr, refused(git_dir), "{args:?} in {dir:?}");
    }
    assert!(sepgit.join("HEAD").is_file() && t.repo.join(".git/HEAD").is_file());
    assert!(
        t.git_in(&linked, &["worktree", "list", "--porcelain"]) == porcelain,
        "git's worktrees changed"
    );
}

/// A submodule's git dir lies in the superproject's `.git`: the default
/// root went inside it (`super/.git/sm.worktrees`), and `remove` left it
/// there, empty. It is beside the submodule's checkout now (the one its
/// `core.worktree` names), and `list` shows that checkout with its ports,
/// not the git dir unallocated.
#[test]
fn create_in_a_submodule_goes_beside_its_checkout_never_into_a_git_dir() {
    let t = TestEnv::new();
    let sup = t.root().join("super");
    t.init_repo(&sup);
    t.git_in(&sup, &["commit", "-q", "--allow-empty", "-m", "init"]);
    t.add_submodule(&sup, &t.repo, "sm");
    t.git_in(&sup, &["commit", "-q", "-m", "submodule"]);
    let sm = sup.join("sm");
    let env = run(&mut t.wtenv_in(&sm, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    let made = create_in(&t, &sm, "insub", &["--ports"]);
    assert_eq!(made, sup.join("sm.worktrees/feature-insub"));
    let rows = listed(&t, &sm);
    assert_eq!(
        rows,
        [
            (sm.clone(), true, Some(u64::from(t.ports.start))),
            (made.clone(), false, Some(u64::from(t.ports.start) + 1)),
        ]
    );
    let out = run(&mut t.wtenv_in(&sm, &["remove", "insub"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!made.exists(), "{out}");
    // Its last worktree gone, the root goes too: git left it, an
    // untracked directory of the superproject.
    assert!(!sup.join("sm.worktrees").exists(), "{out}");
    let git_dir = sup.join(".git");
    let entries: Vec<_> = std::fs::read_dir(&git_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !entries
            .iter()
            .any(|n| n.to_string_lossy().contains("worktrees")),
        "{entries:?}"
    );
}

/// Wherever it comes from, a new worktree's path inside a git dir is
/// refused before anything is touched: `--path`, or `[worktrees] root`
/// (here relative to a bare repository, which is the repository itself).
#[test]
fn a_worktree_path_inside_a_git_dir_is_refused_touching_nothing() {
    let t = TestEnv::new();
    let before = crate::support::snapshot(&t.root());
    let inside = t.repo.join(".git/wt");
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "g",
        "--path",
        inside.to_str().unwrap(),
    ]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot create {}: it is inside the git dir {}, which holds git's own files\n\
             hint: choose a --path outside it\n",
            inside.display(),
            t.repo.join(".git").display()
        )
    );
    assert_eq!(crate::support::snapshot(&t.root()), before);

    let bare = bare_clone(&t, "bare.git");
    let main = t.root().join("bwt-main");
    t.git_in(
        &bare,
        &["worktree", "add", "-q", main.to_str().unwrap(), "main"],
    );
    let config = main.join("wtenv.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}[worktrees]\nroot = \"wts\"\n")).unwrap();
    // A root of the config's own applies once trusted.
    assert_eq!(run(&mut t.wtenv_in(&main, &["trust"])).code, Some(0));
    let before = crate::support::snapshot(&t.root());
    let out = run(&mut t.wtenv_in(
        &main,
        &["create", "--purpose", "feature", "--identifier", "g"],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot create {}: it is inside the git dir {}, which holds git's own files\n\
             hint: set [worktrees] root in {} to a directory outside it, or choose one with --path\n",
            bare.join("wts/feature-g").display(),
            bare.display(),
            config.display()
        )
    );
    assert_eq!(crate::support::snapshot(&t.root()), before);
}
