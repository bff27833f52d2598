//! A worktree whose directory is gone while git still lists it
//! (`prunable`): how `list` shows it and the way out it gives.

use crate::support::{TestEnv, listed_worktree, run};

/// A worktree deleted with `rm -rf` is one git calls prunable. `list`
/// showed it as any other, its port `idle`, with nothing to say that its
/// directory is gone nor what to do. It now has a row of its own (git's
/// reason) and a hint: `git worktree prune` forgets it, `validate --fix`
/// releases its ports, `remove` does both for one. Each command the hint
/// names does what it says. JSON gives git's reason beside `prunable`, as
/// `lock_reason` beside `locked`.
#[test]
fn list_shows_a_prunable_worktree_and_the_commands_that_clear_it() {
    let t = TestEnv::new();
    let (gone, removed) = (t.add_worktree("gone"), t.add_worktree("removed"));
    for wt in [&gone, &removed] {
        let env = run(&mut t.wtenv_in(wt, &["env"]));
        assert_eq!(env.code, Some(0), "{env}");
    }
    // Both deleted once both have their ports: the next allocation in
    // the range would sweep a deleted one's.
    for wt in [&gone, &removed] {
        std::fs::remove_dir_all(wt).unwrap();
    }
    let porcelain = t.git(&["worktree", "list", "--porcelain"]);
    let reason = porcelain
        .lines()
        .find_map(|l| l.strip_prefix("prunable "))
        .unwrap_or_else(|| panic!("git does not call it prunable: {porcelain}"));

    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    assert_eq!(json.stderr, "", "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let (listed, main) = (
        listed_worktree(&doc, &gone, &json),
        listed_worktree(&doc, &t.repo, &json),
    );
    assert_eq!(listed["prunable"], true, "{json}");
    assert_eq!(listed["prunable_reason"], reason, "{json}");
    assert_eq!(main["prunable"], false, "{json}");
    assert_eq!(main["prunable_reason"], serde_json::Value::Null, "{json}");

    let rows_of = |out: &str| -> Vec<String> {
        let prefix = format!("{}  ", gone.display());
        out.lines()
            .filter(|r| r.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    };
    let prune = "hint: a worktree listed as prunable was moved or deleted: if moved, 'git worktree repair <its new path>' (run here) finds it again, before any prune; if deleted, 'git worktree prune' forgets it";
    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    let rows = rows_of(&list.stdout);
    // Its own row (SERVICE and PORT `-`), then its service's, still
    // holding its port.
    assert_eq!(rows.len(), 2, "{list}");
    let cells: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(cells[4..6], ["-", "-"], "{list}");
    assert!(
        rows[0].ends_with(&format!("  prunable: {reason}")),
        "{list}"
    );
    assert!(rows[1].contains(&t.ports.port(0).to_string()), "{list}");
    assert_eq!(
        list.stderr,
        format!(
            "{prune}, and 'wtenv validate --fix' releases its ports ('wtenv remove PATH' does both for one worktree)\n"
        ),
        "{list}"
    );
    let quiet = run(&mut t.wtenv(&["-q", "list"]));
    assert_eq!(quiet.stderr, "", "{quiet}");

    // `remove` forgets one and releases its port.
    let out = run(&mut t.wtenv(&["remove", removed.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    let porcelain = t.git(&["worktree", "list", "--porcelain"]);
    assert!(!porcelain.contains("/removed\n"), "{porcelain}");
    let left = t.allocations();
    assert_eq!(left.len(), 1, "{out}");
    assert_eq!(left[0].2, gone, "{out}");

    // `validate --fix` releases its ports: the hint then names git's step
    // alone.
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fix.code, Some(0), "{fix}");
    assert_eq!(t.allocations(), vec![], "{fix}");
    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(rows_of(&list.stdout).len(), 2, "{list}");
    assert_eq!(list.stderr, format!("{prune}\n"), "{list}");

    // `git worktree prune` forgets it: no row, no hint.
    t.git(&["worktree", "prune"]);
    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    assert_eq!(rows_of(&list.stdout), Vec::<String>::new(), "{list}");
    assert_eq!(list.stderr, "", "{list}");
}

/// `ports` and `list` say in the STATE column that a port's worktree is
/// gone, as `validate` reports `worktree-gone` (they read `reserved`,
/// `idle`, nothing said of the directory): one deleted and forgotten by
/// git (`ports` only; `list` shows the worktrees git lists) and one git
/// still lists as prunable. `ports --json` and `list --json` carry it.
#[test]
fn ports_and_list_say_a_gone_worktrees_port_is_of_a_gone_worktree() {
    let t = TestEnv::new();
    let (forgotten, prunable) = (t.add_worktree("forgotten"), t.add_worktree("prunable"));
    for wt in [&forgotten, &prunable, &t.repo] {
        let env = run(&mut t.wtenv_in(wt, &["env"]));
        assert_eq!(env.code, Some(0), "{env}");
    }
    std::fs::remove_dir_all(&forgotten).unwrap();
    t.git(&["worktree", "prune"]);
    std::fs::remove_dir_all(&prunable).unwrap();
    let cells = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let ports = run(&mut t.wtenv(&["ports"]));
    assert_eq!(ports.code, Some(0), "{ports}");
    let rows: Vec<Vec<String>> = ports.stdout.lines().skip(1).map(cells).collect();
    let row = |i: u16, state: &str, wt: &std::path::Path| {
        let port = t.ports.port(i).to_string();
        [
            &port,
            "app",
            "feature",
            "reserved",
            state,
            wt.to_str().unwrap(),
        ]
        .map(str::to_owned)
    };
    assert_eq!(
        rows,
        [
            row(0, "worktree gone, idle", &forgotten),
            row(1, "worktree gone, idle", &prunable),
            row(2, "idle", &t.repo),
        ],
        "{ports}"
    );
    let json = run(&mut t.wtenv(&["ports", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let gone: Vec<bool> = doc["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["worktree_gone"].as_bool().unwrap())
        .collect();
    assert_eq!(gone, [true, true, false], "{json}");

    let list = run(&mut t.wtenv(&["list"]));
    let service_rows: Vec<Vec<String>> = list
        .stdout
        .lines()
        .map(cells)
        .filter(|r| r.get(4).is_some_and(|s| s == "app"))
        .collect();
    let states: Vec<(&str, &str)> = service_rows
        .iter()
        .map(|r| (r[0].as_str(), r[6].as_str()))
        .collect();
    let (repo, prunable) = (t.repo.to_str().unwrap(), prunable.to_str().unwrap());
    assert_eq!(
        states,
        [(repo, "idle"), (prunable, "worktree gone, idle")],
        "{list}"
    );
    let json = run(&mut t.wtenv(&["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let listed = listed_worktree(&doc, std::path::Path::new(prunable), &json);
    assert_eq!(listed["services"][0]["worktree_gone"], true, "{json}");
}
