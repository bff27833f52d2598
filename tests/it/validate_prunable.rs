//! `validate` of a worktree whose directory is gone: said as git has it,
//! still listed (prunable) or listed no more.

use crate::support::{TestEnv, run};

/// `rm -rf` of a worktree leaves git listing it, as prunable, until
/// `git worktree prune`. `validate` said "not listed by git" of both; it
/// now says which (its report, on stdout), with the same finding (worktree-gone), fix and exit.
#[test]
fn validate_says_whether_git_still_lists_a_gone_worktree() {
    let t = TestEnv::new();
    let (prunable, pruned) = (t.add_worktree("prunable"), t.add_worktree("pruned"));
    for wt in [&prunable, &pruned] {
        let env = run(&mut t.wtenv_in(wt, &["env"]));
        assert_eq!(env.code, Some(0), "{env}");
    }
    std::fs::remove_dir_all(&pruned).unwrap();
    t.git(&["worktree", "prune"]);
    std::fs::remove_dir_all(&prunable).unwrap();
    let porcelain = t.git(&["worktree", "list", "--porcelain"]);
    assert!(porcelain.contains("\nprunable "), "{porcelain}");

    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(1), "{out}");
    let line = |path: &std::path::Path| {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("worktree {} is gone", path.display())))
            .unwrap_or_else(|| panic!("nothing on {}: {out}", path.display()))
            .to_owned()
    };
    let (listed, unlisted) = (line(&prunable), line(&pruned));
    assert!(listed.starts_with("error: worktree-gone: "), "{out}");
    assert!(unlisted.starts_with("error: worktree-gone: "), "{out}");
    assert!(
        listed.ends_with(" is gone (directory missing, git still lists it, as prunable) [fixable: run with --fix]"),
        "{out}"
    );
    assert!(
        unlisted
            .ends_with(" is gone (directory missing, not listed by git) [fixable: run with --fix]"),
        "{out}"
    );

    let fixed = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(
        t.allocations().iter().all(|(_, _, w)| *w == t.repo),
        "{fixed}"
    );
}
