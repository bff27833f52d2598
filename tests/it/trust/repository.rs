//! Whose trust a directory has: a copy whose `.git` file names a trusted
//! repository borrows none; a submodule keeps its own repository's.

use super::commit_config;
use crate::support::{TestEnv, run};

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
    t.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        module.to_str().unwrap(),
        "sub",
    ]);
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
