//! `enter`: creates once, then enters, writing the cd file; a kept branch
//! checked out again; and an identifier two worktrees share, told apart
//! by what each command takes.

use super::{branch_exists, create, default_path, snapshot};
use crate::support::{PortBlock, TestEnv, run};

/// Two worktrees of one identifier (under two purposes): the hint says
/// what that command takes to tell them apart. `remove` said "add
/// --purpose", a flag it does not have; `enter` said "or give the path",
/// which it does not take.
#[test]
fn an_ambiguous_identifier_is_told_apart_by_what_the_command_takes() {
    let t = TestEnv::new();
    let bugfix = PortBlock::take();
    t.write_config(&format!("bugfix = \"{}\"\n", bugfix.range()));
    t.git(&["commit", "-qam", "two purposes"]);
    for purpose in ["feature", "bugfix"] {
        let out = run(&mut t.wtenv(&["create", "--purpose", purpose, "--identifier", "x"]));
        assert_eq!(out.code, Some(0), "{out}");
    }
    let ambiguous = "error: 2 worktrees are named \"x\": ";
    let out = run(&mut t.wtenv(&["remove", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with(ambiguous), "{out}");
    assert!(
        out.stderr
            .contains("\nhint: give the path of the one to remove"),
        "{out}"
    );
    let path = default_path(&t, "bugfix", "x");
    let out = run(&mut t.wtenv(&["remove", path.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    // Made again (its branch was kept), then entered by its purpose.
    for _ in 0..2 {
        let out = run(&mut t.wtenv(&["enter", "x", "--purpose", "bugfix"]));
        assert_eq!(out.stdout, format!("{}\n", path.display()), "{out}");
    }
    let out = run(&mut t.wtenv(&["enter", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with(ambiguous), "{out}");
    assert!(
        out.stderr
            .contains("\nhint: add --purpose to say which one"),
        "{out}"
    );
    // Two of one purpose, made by hand: no purpose tells them apart, and
    // `enter` takes no path.
    for (dir, branch) in [("a/dup", "feature/d1"), ("b/dup", "feature/d2")] {
        let path = t.root().join(dir);
        t.git(&[
            "worktree",
            "add",
            "-q",
            path.to_str().unwrap(),
            "-b",
            branch,
        ]);
    }
    for args in [
        &["enter", "dup"][..],
        &["enter", "dup", "--purpose", "feature"],
    ] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr
                .contains("\nhint: cd into the one you mean; 'wtenv list' shows them"),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn enter_creates_with_ports_once_then_enters_and_writes_the_cd_file() {
    let t = TestEnv::new();
    let cd_file = t.root().join("cd-target");
    let mut cmd = t.wtenv(&["enter", "api"]);
    cmd.env("WTENV_CD_FILE", &cd_file);
    let first = run(&mut cmd);
    assert_eq!(first.code, Some(0), "{first}");
    let path = default_path(&t, "feature", "api");
    assert_eq!(first.stdout, format!("{}\n", path.display()));
    assert_eq!(
        std::fs::read_to_string(&cd_file).unwrap(),
        path.to_str().unwrap(),
        "absolute path, no newline"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), path.clone())]
    );

    let again = run(&mut t.wtenv_in(&path, &["enter", "api"]));
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(t.allocations().len(), 1, "sticky: nothing new");
    assert_eq!(
        t.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        2
    );
}

/// `WTENV_CD_FILE` was written last: one that could not be written failed
/// `enter` after it had made the worktree, its branch and its ports (or
/// reserved an existing worktree's). It is opened first now; one `enter`
/// made for a command that then fails is removed again. Each refusal says
/// what the variable is for; a relative one, which was written into the
/// current directory (the worktree), is refused.
#[test]
fn enter_refuses_a_cd_file_it_cannot_write_before_making_anything() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "old", &[]).code, Some(0));
    let registry = || std::fs::read(t.registry_path()).ok();
    let worktrees = || t.git(&["worktree", "list", "--porcelain"]);
    let branches = || t.git(&["branch", "--list"]);
    let before = (registry(), worktrees(), branches());
    let dir = t.root().join("cd");
    std::fs::create_dir_all(&dir).unwrap();
    // What WTENV_CD_FILE is for, and what to do: in every refusal.
    let hint = "hint: WTENV_CD_FILE names the file enter writes the worktree's path into, \
                for the shell function `wtenv` to cd there";
    for (cd_file, reason, todo) in [
        (
            dir.clone(),
            ": it is a directory, not a regular file\n",
            "name a regular file of yours, or unset it\n",
        ),
        (
            dir.join("missing/file"),
            ": No such file or directory",
            "name a file in a directory of yours, or unset it\n",
        ),
    ] {
        for id in ["new", "old"] {
            let out = run(t.wtenv(&["enter", id]).env("WTENV_CD_FILE", &cd_file));
            assert_eq!(out.code, Some(1), "{id}: {out}");
            assert!(
                out.stderr.starts_with(&format!(
                    "error: could not write WTENV_CD_FILE {}{reason}",
                    cd_file.display()
                )),
                "{out}"
            );
            assert!(
                out.stderr.contains(hint) && out.stderr.ends_with(todo),
                "{out}"
            );
            assert_eq!((registry(), worktrees(), branches()), before, "{id}: {out}");
        }
    }
    // A relative one was written where `enter` ran: into the worktree.
    for id in ["new", "old"] {
        let out = run(t.wtenv(&["enter", id]).env("WTENV_CD_FILE", "cd-target"));
        assert_eq!(out.code, Some(1), "{id}: {out}");
        assert!(
            out.stderr.starts_with(
                "error: WTENV_CD_FILE cd-target is not an absolute path: enter would write \
                 the worktree's path into a file of the current directory\n"
            ),
            "{out}"
        );
        assert!(
            out.stderr.contains(hint)
                && out
                    .stderr
                    .ends_with("set it to an absolute path, or unset it\n"),
            "{out}"
        );
        assert!(!t.repo.join("cd-target").exists(), "{id}: {out}");
        assert_eq!((registry(), worktrees(), branches()), before, "{id}: {out}");
    }
    // Made by `enter`, which then failed (git knows no such base): gone.
    let cd_file = dir.join("target");
    let out = run(t
        .wtenv(&["enter", "new", "--branch", "no-such-base"])
        .env("WTENV_CD_FILE", &cd_file));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!cd_file.exists(), "{out}");
    assert_eq!((registry(), worktrees(), branches()), before, "{out}");
    let out = run(t.wtenv(&["enter", "new"]).env("WTENV_CD_FILE", &cd_file));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(&cd_file).unwrap(),
        out.stdout.trim_end()
    );
}

#[test]
fn enter_after_remove_checks_the_kept_branch_out_again() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["enter", "again"])).code, Some(0));
    let path = default_path(&t, "feature", "again");
    std::fs::write(path.join("work.txt"), "kept\n").unwrap();
    t.git_in(&path, &["add", "work.txt"]);
    t.git_in(&path, &["commit", "-q", "-m", "work"]);
    assert_eq!(run(&mut t.wtenv(&["remove", "again"])).code, Some(0));
    assert!(branch_exists(&t, "feature/again"));

    // With a base, the kept branch would be silently ignored: refused.
    let before = snapshot(&t);
    let out = run(&mut t.wtenv(&["enter", "again", "--branch", "main"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(snapshot(&t), before);

    let out = run(&mut t.wtenv(&["enter", "again"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), path.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("work.txt")).unwrap(),
        "kept\n"
    );
    assert_eq!(t.allocations().len(), 1);
}
