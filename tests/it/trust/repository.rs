//! Whose trust a directory has: a copy whose `.git` file names a trusted
//! repository borrows none; a submodule keeps its own repository's.

use super::commit_config;
use crate::support::{TestEnv, run, stamp_line};

/// A directory whose `.git` file names a repository, beside a copy of that
/// repository's trusted config, is not one of its worktrees: the config's
/// `[env]` (whose `{worktree}` would name the copy's files) does not apply
/// there, and the line says why. The repository's own worktrees, main and
/// linked, keep the trust.
#[test]
fn a_copy_whose_git_file_names_a_trusted_repository_does_not_borrow_its_trust() {
    let t = TestEnv::new();
    let text = format!(
        "[purposes]\nfeature = \"{}\"\n[env]\nNODE_OPTIONS = \"--require {{worktree}}/setup.js\"\n",
        t.ports.range()
    );
    commit_config(&t, &text);
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let linked = t.add_worktree("linked");
    let copy = t.root().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("wtenv.toml"), &text).unwrap();
    std::fs::write(
        copy.join(".git"),
        format!("gitdir: {}\n", t.repo.join(".git").display()),
    )
    .unwrap();
    for (dir, applies) in [(&t.repo, true), (&linked, true), (&copy, false)] {
        let out = run(&mut t.wtenv_in(dir, &["env"]));
        assert_eq!(out.code, Some(0), "{out}");
        let exported = format!("export NODE_OPTIONS='--require {}/setup.js'", dir.display());
        assert_eq!(
            out.stdout.contains(&exported),
            applies,
            "{}: {out}",
            dir.display()
        );
        let told = out.stderr.contains(&format!(
            "this directory's .git names {}, but that repository does not list it as a worktree",
            t.repo.join(".git").display()
        ));
        assert_eq!(told, !applies, "{}: {out}", dir.display());
    }
}

/// A submodule's checkout is its module repository's own worktree (git
/// records it as `core.worktree`): trusted there, its `[env]` applies.
#[test]
fn a_submodule_keeps_the_trust_of_its_own_repository() {
    let t = TestEnv::new();
    let module = t.root().join("module");
    t.init_repo(&module);
    std::fs::write(
        module.join("wtenv.toml"),
        format!(
            "[purposes]\nfeature = \"{}\"\n[env]\nAPI_URL = \"http://localhost:{{port.app}}\"\n",
            t.ports.range()
        ),
    )
    .unwrap();
    t.git_in(&module, &["add", "wtenv.toml"]);
    t.git_in(&module, &["commit", "-q", "-m", "module"]);
    t.add_submodule(&t.repo, &module, "sub");
    let sub = t.repo.join("sub");
    assert!(sub.join(".git").is_file(), "a submodule's .git is a file");
    let before = run(&mut t.wtenv_in(&sub, &["env"]));
    assert!(!before.stdout.contains("API_URL"), "{before}");
    assert_eq!(run(&mut t.wtenv_in(&sub, &["trust"])).code, Some(0));
    let after = run(&mut t.wtenv_in(&sub, &["env"]));
    assert!(
        after.stdout.contains("export API_URL='http://localhost:"),
        "{after}"
    );
    assert!(!after.stderr.contains("not applied"), "{after}");
}

/// A separate git dir (`git init --separate-git-dir`) records no worktree:
/// its main worktree's `.git` file, `gitdir: <sepgit>`, is all that makes
/// it one, and a downloaded tree `evil/` holding the same line is, to git,
/// a worktree just as much. So neither gets the trusted `[env]`, nor
/// writes the stamp into the repository, and the line says how to record
/// the main worktree. Once `core.worktree` names it, it is the
/// repository's own (trust applies; the stamp is written, it was never
/// written there), and `evil/` still borrows nothing.
#[test]
fn a_separate_git_dir_trusts_its_main_worktree_once_recorded_never_a_copy() {
    let t = TestEnv::new();
    let sepgit = t.root().join("sepgit");
    let sepwt = t.root().join("sepwt");
    t.git_in(
        &t.root(),
        &["init", "-q", "-b", "main", "--separate-git-dir"]
            .into_iter()
            .chain([sepgit.to_str().unwrap(), sepwt.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let text = format!(
        "[purposes]\nfeature = \"{}\"\n[env]\nAPI_URL = \"http://localhost:{{port.app}}/{{worktree}}\"\n",
        t.ports.range()
    );
    let evil = t.root().join("evil");
    std::fs::create_dir(&evil).unwrap();
    for dir in [&sepwt, &evil] {
        std::fs::write(dir.join("wtenv.toml"), &text).unwrap();
    }
    std::fs::write(evil.join(".git"), format!("gitdir: {}\n", sepgit.display())).unwrap();
    let unrecorded = |dir: &std::path::Path| {
        format!(
            "this directory's .git names {}, a separate git dir that records no worktree (no core.worktree), \
             so a copy whose .git names it would look the same; if '{}' is that repository's main \
             worktree (made there, not a downloaded copy), record it as core.worktree in that repository \
             (README, \"Trust\")\n",
            sepgit.display(),
            dir.display()
        )
    };
    // Recorded, and said not to apply yet: it said "trusted" alone, and
    // the next `env` said otherwise.
    let trust = run(&mut t.wtenv_in(&sepwt, &["trust"]));
    assert_eq!(trust.code, Some(0), "{trust}");
    assert_eq!(
        trust.stderr,
        format!(
            "warning: trusted {} for repository {} ([env]: API_URL); it applies here once core.worktree is set: {}",
            sepwt.join("wtenv.toml").display(),
            sepgit.display(),
            unrecorded(&sepwt)
        )
    );
    let stamp = sepgit.join("wtenv.stamp");
    // What `env` in `dir` exports as API_URL (after a release, so its
    // ports change and the stamp is due), and its stderr.
    let env = |dir: &std::path::Path| {
        assert_eq!(run(&mut t.wtenv_in(dir, &["release"])).code, Some(0));
        let out = run(&mut t.wtenv_in(dir, &["env"]));
        assert_eq!(out.code, Some(0), "{}: {out}", dir.display());
        let api = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("export API_URL="))
            .map(str::to_owned);
        (api, out.stderr)
    };
    for dir in [&sepwt, &evil] {
        let (api, stderr) = env(dir);
        assert_eq!(api, None, "{}: {stderr}", dir.display());
        assert!(
            stderr.contains(&unrecorded(dir)),
            "{}: {stderr}",
            dir.display()
        );
        assert!(!stamp.exists(), "{}: the stamp was written", dir.display());
    }

    t.git_in(
        &sepwt,
        &["config", "core.worktree", sepwt.to_str().unwrap()],
    );
    let (api, stderr) = env(&sepwt);
    let port = t.ports.start;
    assert_eq!(
        api,
        Some(format!("'http://localhost:{port}/{}'", sepwt.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("not applied"), "{stderr}");
    let trust = run(&mut t.wtenv_in(&sepwt, &["trust"]));
    assert_eq!(
        trust.stderr,
        format!(
            "already trusted: {} for repository {} ([env]: API_URL)\n",
            sepwt.join("wtenv.toml").display(),
            sepgit.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap(),
        stamp_line(&sepwt, &[("app", port)])
    );
    let (api, stderr) = env(&evil);
    assert_eq!(api, None, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "this directory's .git names {}, but that repository does not list it as a worktree",
            sepgit.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap(),
        stamp_line(&sepwt, &[("app", port)]),
        "evil/ rewrote the stamp"
    );
}
