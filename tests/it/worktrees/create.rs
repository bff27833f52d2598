//! `create`: the worktree, its branch and its ports, reserved for what
//! the new checkout's own config asks for, beside the main worktree or
//! where `--path` says, under any path, sixteen at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{create, default_path, listed_by_git};
use crate::support::{PyListener, TestEnv, run};

#[test]
fn create_makes_the_worktree_its_branch_and_reserves_its_ports() {
    let t = TestEnv::new();
    let out = create(&t, "login", &["--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let path = default_path(&t, "feature", "login");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["path"], path.to_str().unwrap());
    assert_eq!(doc["branch"], "feature/login");
    assert_eq!(doc["purpose"], "feature");
    assert_eq!(doc["identifier"], "login");
    assert_eq!(doc["ports"]["app"], t.ports.start);

    assert!(path.join("wtenv.toml").is_file(), "the checkout is there");
    assert!(listed_by_git(&t, &path));
    assert_eq!(
        t.git_in(&path, &["rev-parse", "--abbrev-ref", "HEAD"])
            .trim(),
        "feature/login"
    );
    assert_eq!(
        t.allocations(),
        vec![(t.ports.start, "app".into(), path.clone())]
    );
    // The new worktree's env sees the same port and the recorded purpose.
    let env = run(&mut t.wtenv_in(&path, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    assert!(
        env.stdout
            .contains(&format!("export PORT='{}'", t.ports.start)),
        "{env}"
    );
    assert!(
        env.stdout.contains("export WTENV_PURPOSE='feature'"),
        "{env}"
    );
    assert!(
        env.stdout.contains("export WTENV_IDENTIFIER='login'"),
        "{env}"
    );
    assert_eq!(t.allocations().len(), 1, "env kept the reservation");
}

#[test]
fn create_reserves_what_the_new_checkouts_own_config_asks_for() {
    // Ports are reserved while git checks out, for the config create runs
    // under; the base branch's wtenv.toml asks for other services, so those
    // are what the new worktree gets, and nothing of the first guess stays.
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    t.git(&["commit", "-q", "-am", "web and api"]);
    t.git(&["branch", "old", "HEAD~1"]);
    let out = create(&t, "b", &["--branch", "old", "--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start}));
    let path = default_path(&t, "feature", "b");
    assert_eq!(t.allocations(), vec![(t.ports.start, "app".into(), path)]);
    // And from HEAD, whose config is the source's: both services at once.
    let out = create(&t, "c", &["--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc["ports"],
        serde_json::json!({"web": t.ports.start + 1, "api": t.ports.start + 2})
    );
}

#[test]
fn a_repository_under_a_path_with_spaces_and_quotes_works_end_to_end() {
    let t = TestEnv::new();
    let repo = t.root().join("it's a \"repo\" dir").join("my repo");
    t.init_repo(&repo);
    t.git_in(&repo, &["add", "wtenv.toml"]);
    t.git_in(&repo, &["commit", "-q", "-m", "config"]);

    let out = run(&mut t.wtenv_in(
        &repo,
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "q",
            "--ports",
            "--json",
        ],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    let path = repo.parent().unwrap().join("my repo.worktrees/feature-q");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["path"], path.to_str().unwrap());
    assert!(path.join("wtenv.toml").is_file());
    let env = run(&mut t.wtenv_in(&path, &["env", "--format", "json"]));
    let vars: serde_json::Value = serde_json::from_str(&env.stdout).unwrap();
    assert_eq!(vars["WTENV_WORKTREE"], path.to_str().unwrap(), "{env}");
    let list = run(&mut t.wtenv_in(&repo, &["list"]));
    assert!(list.stdout.contains(path.to_str().unwrap()), "{list}");
    let rm = run(&mut t.wtenv_in(&repo, &["remove", "q"]));
    assert_eq!(rm.code, Some(0), "{rm}");
    assert!(!path.exists());
    assert!(t.allocations().is_empty());
}

#[test]
fn sixteen_concurrent_creates_make_sixteen_worktrees_with_distinct_ports() {
    let t = TestEnv::new();
    let children: Vec<(String, Child)> = (0..16)
        .map(|i| {
            let id = format!("c{i}");
            let mut cmd = t.wtenv(&[
                "create",
                "--purpose",
                "feature",
                "--identifier",
                &id,
                "--ports",
            ]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            (id, cmd.spawn().unwrap())
        })
        .collect();
    for (id, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let allocations = t.allocations();
    assert_eq!(allocations.len(), 16, "{allocations:?}");
    let ports: BTreeSet<u16> = allocations.iter().map(|a| a.0).collect();
    assert_eq!(ports.len(), 16, "ports are distinct: {allocations:?}");
    let worktrees: BTreeSet<&PathBuf> = allocations.iter().map(|a| &a.2).collect();
    assert_eq!(worktrees.len(), 16);
    for i in 0..16 {
        let path = default_path(&t, "feature", &format!("c{i}"));
        assert!(listed_by_git(&t, &path), "{}", path.display());
        assert!(worktrees.contains(&path));
    }
}

#[test]
fn create_runs_direnv_allow_when_the_source_envrc_is_allowed() {
    let t = TestEnv::new();
    t.write_config("[worktrees]\ndirenv_allow = true\n");
    std::fs::write(t.repo.join(".envrc"), "export FROM_ENVRC=yes\n").unwrap();
    t.git(&["add", ".envrc", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "envrc"]);
    let direnv = |dir: &Path, args: &[&str]| direnv(&t, dir, args);
    // Not allowed in the source: the new worktree is not allowed either.
    assert_eq!(create(&t, "no", &[]).code, Some(0));
    let no = default_path(&t, "feature", "no");
    let status = direnv(&no, &["status"]);
    assert!(status.stdout.contains("Found RC allowed false"), "{status}");

    assert_eq!(direnv(&t.repo, &["allow", "."]).code, Some(0));
    assert_eq!(create(&t, "yes", &[]).code, Some(0));
    let yes = default_path(&t, "feature", "yes");
    let exec = direnv(&yes, &["exec", ".", "printenv", "FROM_ENVRC"]);
    assert_eq!(exec.stdout.trim(), "yes", "{exec}");

    // A branch whose .envrc differs is code nobody reviewed: not allowed,
    // and the user is told why and what to run.
    t.git(&["checkout", "-q", "-b", "theirs"]);
    std::fs::write(t.repo.join(".envrc"), "export FROM_ENVRC=theirs\n").unwrap();
    t.git(&["commit", "-q", "-am", "their envrc"]);
    t.git(&["checkout", "-q", "-"]);
    let out = create(&t, "theirs", &["--branch", "theirs"]);
    assert_eq!(out.code, Some(0), "{out}");
    let theirs = default_path(&t, "feature", "theirs");
    let status = direnv(&theirs, &["status"]);
    assert!(status.stdout.contains("Found RC allowed false"), "{status}");
    assert!(
        out.stderr.contains(&format!(
            "did not run direnv allow {}: its .envrc differs from the one allowed in {}",
            theirs.display(),
            t.repo.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("run `direnv allow {}`", theirs.display())),
        "{out}"
    );
}

/// `direnv ARGS` in `dir`, in the test's environment (its own allow list).
fn direnv(t: &TestEnv, dir: &Path, args: &[&str]) -> crate::support::Run {
    let mut cmd = Command::new("direnv");
    t.apply_env(&mut cmd);
    run(cmd.current_dir(dir).args(args))
}

/// An `.envrc` loads other files (`source`, `dotenv`, `use flake`): a
/// branch (a pull request's) whose `.envrc` is the allowed one but whose
/// `dev.sh`, which it sources, is not, is not allowed, and direnv then runs
/// none of it. The same `.envrc` over the source's very files is allowed,
/// and `create` says so.
#[test]
fn create_runs_direnv_allow_only_over_the_source_s_own_files() {
    let t = TestEnv::new();
    t.write_config("[worktrees]\ndirenv_allow = true\n");
    std::fs::write(t.repo.join(".envrc"), "source ./dev.sh\n").unwrap();
    std::fs::write(t.repo.join("dev.sh"), "export FROM_DEV=ours\n").unwrap();
    t.git(&["add", ".envrc", "dev.sh", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "envrc"]);
    assert_eq!(direnv(&t, &t.repo, &["allow", "."]).code, Some(0));
    t.git(&["checkout", "-q", "-b", "pr42"]);
    std::fs::write(
        t.repo.join("dev.sh"),
        format!(
            "touch '{}/PWNED-dev'\nexport FROM_DEV=theirs\n",
            t.root().display()
        ),
    )
    .unwrap();
    t.git(&["commit", "-q", "-am", "their dev.sh"]);
    t.git(&["checkout", "-q", "-"]);

    let out = create(&t, "pr42", &["--branch", "pr42"]);
    assert_eq!(out.code, Some(0), "{out}");
    let pr = default_path(&t, "feature", "pr42");
    let status = direnv(&t, &pr, &["status"]);
    assert!(status.stdout.contains("Found RC allowed false"), "{status}");
    assert!(
        out.stderr.contains(&format!(
            "did not run direnv allow {}: its branch's files differ from those of {}",
            pr.display(),
            t.repo.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("run `direnv allow {}`", pr.display())),
        "{out}"
    );
    assert!(!out.stderr.contains("ran direnv allow"), "{out}");
    let exec = direnv(&t, &pr, &["exec", ".", "printenv", "FROM_DEV"]);
    assert_ne!(exec.code, Some(0), "{exec}");
    assert_eq!(crate::shell::pwned_under(&t.root()), None, "{exec}");

    let out = create(&t, "same", &[]);
    assert_eq!(out.code, Some(0), "{out}");
    let same = default_path(&t, "feature", "same");
    assert!(
        out.stderr.contains(&format!(
            "ran direnv allow {}: ",
            same.join(".envrc").display()
        )),
        "{out}"
    );
    let exec = direnv(&t, &same, &["exec", ".", "printenv", "FROM_DEV"]);
    assert_eq!(exec.stdout.trim(), "ours", "{exec}");
}

#[test]
fn create_from_a_linked_worktree_still_puts_worktrees_beside_the_main_one_and_path_overrides() {
    let t = TestEnv::new();
    assert_eq!(create(&t, "first", &[]).code, Some(0));
    let first = default_path(&t, "feature", "first");
    let out = run(&mut t.wtenv_in(
        &first,
        &["create", "--purpose", "feature", "--identifier", "second"],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout.trim(),
        default_path(&t, "feature", "second").to_str().unwrap()
    );
    let custom = t.root().join("custom place/wt");
    let out = run(&mut t.wtenv_in(
        &first,
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "third",
            "--path",
            "../../custom place/wt",
        ],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), custom.to_str().unwrap());
    assert!(listed_by_git(&t, &custom));
}

#[test]
fn create_ignores_a_conflict_in_the_source_configs_range_the_new_checkout_does_not_use() {
    // The base branch `old` gives feature the whole block; HEAD (the source
    // worktree) narrows it to one port that is occupied. The new checkout's
    // own config decides its services and range (create reserves in the
    // purpose's range of the worktree it makes), so create must succeed on port 0.
    let t = TestEnv::new();
    t.git(&["branch", "old"]);
    let busy = t.ports.port(10);
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purposes]\nfeature = \"{busy}-{busy}\"\n"),
    )
    .unwrap();
    t.git(&["commit", "-q", "-am", "narrow"]);
    let _l = PyListener::start(&t.root(), "4", "127.0.0.1", busy, "");
    let out = create(&t, "b", &["--branch", "old", "--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start}));
}

#[test]
fn create_honours_skip_occupied_in_the_new_checkouts_config() {
    // Same range; the base branch's config opts into skip_occupied, HEAD's
    // does not: the new checkout's config must decide.
    let t = TestEnv::new();
    t.write_config("[allocation]\nskip_occupied = true\n");
    t.git(&["commit", "-q", "-am", "skip"]);
    t.git(&["branch", "old"]);
    t.write_config("");
    t.git(&["commit", "-q", "-am", "no skip"]);
    let _l = PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.start, "");
    let out = create(&t, "b", &["--branch", "old", "--ports", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ports"], serde_json::json!({"app": t.ports.start + 1}));
}

#[test]
fn create_from_a_config_that_is_not_committed_says_the_new_worktree_has_none() {
    // The config is in the main worktree, never committed: the new
    // checkout has none, so its ports would come from the built-in ranges
    // without a word.
    let t = TestEnv::bare();
    t.write_config("");
    let out = create(&t, "a", &[]);
    assert_eq!(out.code, Some(0), "{out}");
    let path = default_path(&t, "feature", "a");
    assert!(!path.join("wtenv.toml").exists());
    let warning = format!(
        "warning: new worktree {} has no wtenv.toml (it is not committed on main, which the \
         worktree was made from), so its ports come from the built-in ranges\n\
         hint: commit wtenv.toml on main, so that the worktrees made from it have it; for this \
         one, copy it in",
        path.display()
    );
    assert!(out.stderr.contains(&format!("{warning}\n")), "{out}");
    // With --ports, from the linked worktree (which has no config either:
    // the main worktree's is the one that counts), the hint says how to
    // move the ports it reserved.
    let out = run(&mut t.wtenv_in(
        &path,
        &[
            "create",
            "--purpose",
            "feature",
            "--identifier",
            "b",
            "--branch",
            "main",
            "--ports",
            "--skip-occupied",
        ],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "{}, then run 'wtenv release' and 'wtenv env' there to take its ports from its \
             ranges\n",
            warning.replace("feature-a", "feature-b")
        )),
        "{out}"
    );
    // Committed, it is the new worktree's: nothing to say.
    t.git(&["add", "wtenv.toml"]);
    t.git(&["commit", "-q", "-m", "config"]);
    let out = create(&t, "c", &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains("warning"), "{out}");
}

/// QA finding: a `create` waiting for the repository's lock (held by a
/// `remove` that waits for an `up -d` of its worktree to get ready) said
/// nothing until it failed 60 s later. It says, once, after a second,
/// what it waits for.
#[test]
fn create_waiting_for_the_repository_lock_says_so() {
    let t = TestEnv::new();
    let lock = std::fs::File::open(t.repo.join(".git")).unwrap();
    lock.lock().unwrap();
    let mut cmd = t.wtenv(&["create", "--purpose", "feature", "--identifier", "w"]);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1600));
    lock.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("wtenv: waiting for another wtenv creating or removing a worktree of this repository (at most 60 s)\n")
            .count(),
        1,
        "{stderr}"
    );
}
