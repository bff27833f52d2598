//! Worktrees deleted or damaged behind wtenv's back (`rm -rf` of the
//! directory, `rm` of its `.git` file): `remove` and `enter` find them by
//! what git and wtenv recorded in the repository, and say what works.

use std::path::Path;

use super::{branch_exists, create, default_path, listed_by_git, snapshot, snapshot_of};
use crate::support::{PortBlock, TestEnv, listed_worktree, run};

/// Two services, as a real project has; `bugfix` a range of its own.
fn two_services(t: &TestEnv, bugfix: &PortBlock) {
    t.write_config(&format!(
        "bugfix = \"{}\"\n[services.web]\n[services.api]\n",
        bugfix.range()
    ));
    t.git(&["commit", "-qam", "two services"]);
}

fn ports_of(t: &TestEnv, path: &Path) -> usize {
    t.allocations().iter().filter(|a| a.2 == path).count()
}

/// `remove PATH --delete-branch` of a worktree whose directory was
/// deleted ran `git symbolic-ref HEAD` inside that directory to find the
/// branch: the spawn failed (ENOENT), was said as "install git", and
/// nothing was removed, `--force` or not. Git now lists the branch from
/// the repository: the ports are released, the worktree pruned and the
/// branch deleted, as for a worktree that is there; an unmerged branch is
/// refused first, nothing removed, as for one that is there.
#[test]
fn remove_delete_branch_of_a_deleted_worktree_prunes_it_and_deletes_its_branch() {
    let t = TestEnv::new();
    two_services(&t, &PortBlock::take());
    for id in ["gone", "unmerged"] {
        let out = create(&t, id, &["--ports"]);
        assert_eq!(out.code, Some(0), "{out}");
    }
    let (gone, unmerged) = (
        default_path(&t, "feature", "gone"),
        default_path(&t, "feature", "unmerged"),
    );
    t.git_in(
        &unmerged,
        &["commit", "-q", "--allow-empty", "-m", "unmerged"],
    );
    for path in [&gone, &unmerged] {
        assert_eq!(ports_of(&t, path), 2);
        std::fs::remove_dir_all(path).unwrap();
    }

    // Unmerged: refused before anything is removed.
    let before = snapshot(&t);
    let out = run(&mut t.wtenv(&["remove", unmerged.to_str().unwrap(), "--delete-branch"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        "error: branch feature/unmerged is not fully merged; nothing was removed\n\
         hint: merge it first, leave out --delete-branch to keep it, or pass --force to delete it anyway (git branch -D 'feature/unmerged')\n",
        "{out}"
    );
    assert_eq!(snapshot(&t), before, "{out}");

    for (path, branch, force) in [
        (&gone, "feature/gone", &[][..]),
        (&unmerged, "feature/unmerged", &["--force"]),
    ] {
        let mut args = vec!["remove", path.to_str().unwrap(), "--delete-branch"];
        args.extend(force);
        let out = run(&mut t.wtenv(&args));
        assert_eq!(out.code, Some(0), "{force:?}: {out}");
        assert!(!out.stderr.contains("install git"), "{out}");
        for service in ["web", "api"] {
            assert!(
                out.stderr.contains(&format!("({service})")),
                "released: {out}"
            );
        }
        assert!(
            out.stderr.ends_with(&format!("deleted branch {branch}\n")),
            "{out}"
        );
        assert_eq!(ports_of(&t, path), 0, "{out}");
        assert!(!listed_by_git(&t, path), "pruned: {out}");
        assert!(!branch_exists(&t, branch), "{out}");
    }
    assert_eq!(t.allocations(), vec![]);
}

/// A worktree made with `--path` and `--identifier`, then deleted: the
/// listing took its identifier (and purpose) from the missing directory,
/// so `list` called it by the directory's name, `remove cust` found no
/// such worktree, and `enter cust` tried to make it again and failed on
/// git's raw error. Its record in the repository (the worktree's git
/// dir) is read whether the directory is there or not: `list` names it,
/// `remove` removes it, `enter` says the directory is gone and what to
/// do, and what it says works.
#[test]
fn a_deleted_worktree_is_found_by_its_recorded_identifier_and_purpose() {
    let t = TestEnv::new();
    let bugfix = PortBlock::take();
    two_services(&t, &bugfix);
    let custom = t.root().join("customdir");
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "bugfix",
        "--identifier",
        "cust",
        "--path",
        custom.to_str().unwrap(),
        "--ports",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    std::fs::remove_dir_all(&custom).unwrap();

    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let listed = listed_worktree(&doc, &custom, &json);
    assert_eq!(listed["identifier"], "cust", "{json}");
    assert_eq!(listed["purpose"], "bugfix", "{json}");
    assert_eq!(listed["prunable"], true, "{json}");

    let before = snapshot(&t);
    let out = run(&mut t.wtenv(&["enter", "cust"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: worktree {0} is listed by git but its directory is gone\n\
             hint: forget it and release its ports (its branch is kept), then enter again to make it anew: wtenv remove '{0}'\n",
            custom.display()
        ),
        "{out}"
    );
    assert_eq!(snapshot(&t), before, "nothing made: {out}");

    let out = run(&mut t.wtenv(&["remove", "cust"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!listed_by_git(&t, &custom), "{out}");
    assert_eq!(t.allocations(), vec![], "{out}");
    assert!(branch_exists(&t, "bugfix/cust"), "kept: {out}");

    // Entered again: made anew on its kept branch, under its purpose.
    let out = run(&mut t.wtenv(&["enter", "cust", "--purpose", "bugfix"]));
    assert_eq!(out.code, Some(0), "{out}");
    let made = default_path(&t, "bugfix", "cust");
    assert_eq!(out.stdout, format!("{}\n", made.display()), "{out}");
    assert_eq!(ports_of(&t, &made), 2, "{out}");
    assert!(
        t.allocations()
            .iter()
            .all(|a| (bugfix.start..=bugfix.end()).contains(&a.0)),
        "{:?}",
        t.allocations()
    );
}

/// A worktree whose `.git` file was deleted: git refuses to remove it
/// ("validation failed"), `--force` or not, and the hint said to commit
/// or stash, or pass `--force` (also when it was given), which cannot
/// help. The hint now gives what does (`git worktree repair` writes the
/// `.git` file again from the repository's record, then `remove` runs as
/// for any worktree), never offers `--force` when it was given, and
/// following it removes the worktree. `enter` says the same of it.
#[test]
fn remove_of_a_worktree_without_its_git_file_hints_the_repair_that_works() {
    let t = TestEnv::new();
    two_services(&t, &PortBlock::take());
    assert_eq!(create(&t, "nogit", &["--ports"]).code, Some(0));
    let path = default_path(&t, "feature", "nogit");
    std::fs::remove_file(path.join(".git")).unwrap();
    let shown = path.display();

    let before = snapshot(&t);
    for (force, again) in [
        (&["--force"][..], "wtenv remove --force"),
        (&[], "wtenv remove"),
    ] {
        let mut args = vec!["remove", "nogit"];
        args.extend(force);
        let out = run(&mut t.wtenv(&args));
        assert_eq!(out.code, Some(1), "{force:?}: {out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: git refused to remove {shown}: fatal: validation failed, cannot remove working tree: '{shown}/.git' does not exist\n\
                 hint: its .git file is missing or broken: restore it with 'git worktree repair' (run here), then run again: {again} '{shown}'\n"
            ),
            "{force:?}: {out}"
        );
        assert_eq!(snapshot(&t), before, "{force:?}: nothing removed: {out}");
    }
    let out = run(&mut t.wtenv(&["enter", "nogit"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: worktree {shown} is listed by git but its directory is not a worktree any more (its .git file is missing or broken)\n\
             hint: restore its .git file with 'git worktree repair' (run here), then enter again; or remove it: wtenv remove '{shown}'\n"
        ),
        "{out}"
    );
    assert_eq!(snapshot(&t), before, "nothing made: {out}");

    // What the hint says, done.
    t.git(&["worktree", "repair"]);
    let out = run(&mut t.wtenv(&["remove", "--force", path.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!path.exists() && !listed_by_git(&t, &path), "{out}");
    assert_eq!(t.allocations(), vec![], "{out}");
}

/// QA finding D: in a `cp -a` copy of a repository, git lists the
/// original's linked worktree (its record was copied). `remove` there
/// failed on git's refusal with the hint for a missing or broken `.git`
/// file, `git worktree repair` (run here): followed, it pointed the
/// original's worktree at the copy, and the next `remove` deleted the
/// original's checkout. The worktree's `.git` names the original's git
/// dir, which leads back to it: `remove` and `enter` say it is that
/// repository's and that the copy's record is stale, hint the `rm -r`
/// of that record alone (`git worktree prune` keeps it: the directory is
/// there), and change nothing; `list` says so on its row. Following the
/// hint leaves the original's worktree and its ports as they were.
#[test]
fn in_a_copied_repository_the_originals_worktree_is_refused_never_sent_to_repair() {
    let t = TestEnv::new();
    two_services(&t, &PortBlock::take());
    assert_eq!(create(&t, "orig", &["--ports"]).code, Some(0));
    let wt = default_path(&t, "feature", "orig");
    let copy = t.root().join("copy");
    let cp = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&t.repo)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    let record = copy.join(".git/worktrees/feature-orig");
    assert!(
        record.is_dir(),
        "the copy has no record of it: proves nothing"
    );
    // Git's own way to forget a stale record keeps it: its directory is there.
    t.git_in(&copy, &["worktree", "prune"]);
    assert!(record.is_dir());

    let registry = std::fs::read(t.registry_path()).unwrap();
    let dot_git = std::fs::read(wt.join(".git")).unwrap();
    let before = (snapshot(&t), snapshot_of(&t, &copy));
    let (shown, repo) = (wt.display(), t.repo.join(".git"));
    let path = wt.to_str().unwrap();
    for (args, nothing) in [
        (&["remove", "orig"][..], "removed"),
        (&["remove", "--force", path], "removed"),
        (&["enter", "orig"], "entered"),
    ] {
        let out = run(&mut t.wtenv_in(&copy, args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: worktree {shown} is another repository's ({}): its .git file names that repository's git dir, which leads back to it; this repository's record of it ({}) is a stale copy of that repository's own; nothing was {nothing}\n\
                 hint: to drop this repository's record and leave the worktree as it is: rm -r '{}'; use the worktree from its own repository (never 'git worktree repair' here: it would take the worktree from its repository)\n",
                repo.display(),
                record.display(),
                record.display()
            ),
            "{args:?}: {out}"
        );
        assert_eq!(
            std::fs::read(t.registry_path()).unwrap(),
            registry,
            "{args:?}"
        );
        assert_eq!(std::fs::read(wt.join(".git")).unwrap(), dot_git, "{args:?}");
        assert_eq!((snapshot(&t), snapshot_of(&t, &copy)), before, "{args:?}");
    }

    let list = run(&mut t.wtenv_in(&copy, &["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    let rows: Vec<&str> = list
        .stdout
        .lines()
        .filter(|l| l.starts_with(path))
        .collect();
    assert_eq!(rows.len(), 1, "one row of its own, no services: {list}");
    assert!(
        rows[0].ends_with(&format!(
            "another repository's worktree ({}): this repository's record of it is a stale copy of that repository's own",
            repo.display()
        )),
        "{list}"
    );
    let json = run(&mut t.wtenv_in(&copy, &["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let row = listed_worktree(&doc, &wt, &json);
    assert_eq!(
        row["of_another_repository"],
        repo.to_str().unwrap(),
        "{json}"
    );
    assert_eq!(row["services"], serde_json::json!([]), "{json}");
    let main = listed_worktree(&doc, &copy, &json);
    assert!(main["of_another_repository"].is_null(), "{json}");

    // What the hint says, done: the copy forgets it; the original keeps
    // its worktree, as it was, and its ports.
    std::fs::remove_dir_all(&record).unwrap();
    let listed = t.git_in(&copy, &["worktree", "list", "--porcelain"]);
    assert!(!listed.contains(path), "{listed}");
    assert!(listed_by_git(&t, &wt));
    assert_eq!(std::fs::read(wt.join(".git")).unwrap(), dot_git);
    assert_eq!(ports_of(&t, &wt), 2, "{:?}", t.allocations());
}
