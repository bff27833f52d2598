//! `release --worktree PATH` of a worktree whose background service holds
//! its ports, asked from another directory (QA 23 h7, finding 3): the
//! hint's `wtenv down` works only in that worktree, so it says where to
//! run it; and a unit of wtenv's own back end is never an exported one.

use super::DownOnDrop;
use crate::support::{TestEnv, run};

#[test]
fn release_of_another_worktree_says_where_to_run_down() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config("[services.web]\nrun = \"sleep 1000\"\nhealth = { cmd = \"true\" }\n");
    let up = run(&mut t.wtenv(&["up", "-d", "web", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let repo = t.repo.to_str().unwrap();
    let outside = t.root().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let other = t.add_worktree("other");
    let hint = "hint: stop what holds them, then release again: a background service: ";
    // From outside any worktree, and from another worktree: the `cd`.
    let paste = format!("cd '{repo}' && wtenv down web");
    for dir in [&outside, &other] {
        let out = run(&mut t.wtenv_in(dir, &["release", "--worktree", repo]));
        assert_eq!(out.code, Some(1), "{}: {out}", dir.display());
        assert!(
            out.stderr.contains(&format!("{hint}{paste}\n")),
            "{}: {out}",
            dir.display()
        );
    }
    // In the worktree itself, `--worktree` or not: no `cd`.
    for args in [&["release", "--worktree", repo][..], &["release"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains(&format!("{hint}'wtenv down web'\n")),
            "{args:?}: {out}"
        );
    }
    // Pasted where it is said, from outside: it stops the service, and
    // the release goes through.
    let wtenv = std::path::Path::new(env!("CARGO_BIN_EXE_wtenv"));
    let mut sh = std::process::Command::new("sh");
    t.apply_env(&mut sh);
    sh.current_dir(&outside)
        .env(
            "PATH",
            format!(
                "{}:{}",
                wtenv.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["-c", &paste]);
    let down = run(&mut sh);
    assert_eq!(down.code, Some(0), "{down}");
    assert!(down.stderr.contains("wtenv: stopped web ("), "{down}");
    let out = run(&mut t.wtenv_in(&outside, &["release", "--worktree", repo]));
    assert_eq!(out.code, Some(0), "{out}");
}
