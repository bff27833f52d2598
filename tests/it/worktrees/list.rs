//! `list`: every worktree with each service's port and live state, a
//! locked one with git's reason, and no conflict of another repository's
//! recorded port.

use std::path::Path;

use super::{create, default_path};
use crate::support::{PyListener, TestEnv, listed_worktree, run};

#[test]
fn list_shows_every_worktree_with_each_services_port_and_live_state() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    t.git(&["commit", "-q", "-am", "two services"]);
    assert_eq!(create(&t, "live", &["--ports"]).code, Some(0));
    assert_eq!(create(&t, "noports", &[]).code, Some(0));
    let hand = t.add_worktree("hand");
    let live = default_path(&t, "feature", "live");
    // `api` is declared second: it has the block's second port.
    let _api = PyListener::start(&live, "4", "127.0.0.1", t.ports.start + 1, "");
    // `web`'s port, held by a process outside the worktree: a conflict.
    let _foreign = PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.start, "");
    let env = run(&mut t.wtenv_in(&hand, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert!(rows[0].starts_with("PATH"), "{list}");
    let row = |path: &Path, service: &str| {
        rows.iter()
            .find(|r| {
                r.starts_with(&format!("{}  ", path.display()))
                    && r.split_whitespace().nth(4) == Some(service)
            })
            .unwrap_or_else(|| panic!("no row for {} {service}: {list}", path.display()))
            .to_string()
    };
    assert!(row(&t.repo, "web").contains("unallocated"), "{list}");
    let api = row(&live, "api");
    assert!(api.contains(&format!("{} ", t.ports.start + 1)), "{api}");
    assert!(
        api.contains(&format!("listening (pid {}", _api.pid())),
        "{api}"
    );
    assert!(
        row(&live, "web").contains(&format!("conflict (pid {}", _foreign.pid())),
        "{list}"
    );
    assert!(row(&hand, "web").ends_with("idle"), "{list}");
    assert!(row(&default_path(&t, "feature", "noports"), "api").contains("unallocated"));
    assert!(
        row(&hand, "web").contains("hand"),
        "hand-made, its branch: {list}"
    );

    let json = run(&mut t.wtenv(&["list", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    let wts = doc["worktrees"].as_array().unwrap();
    assert_eq!(wts.len(), 4, "main, two created, one by hand");
    assert_eq!(wts[0]["main"], true);
}

/// A locked worktree is shown locked, with git's reason: `remove` refuses
/// it, and a user or an agent reading `list` should see why before it
/// does. The reason is the locker's text: the table escapes it as it does
/// every cell, JSON carries it as it is. Git's own lock of a worktree it
/// is adding reads as that, not as a user's lock. `list` said only
/// `"locked": true` in JSON, and nothing in its table.
#[test]
fn list_shows_a_locked_worktree_with_gits_reason_for_the_lock() {
    let t = TestEnv::new();
    let hostile = "x\n\x1b[2Jy";
    let mut cases = vec![];
    for (name, reason, state) in [
        ("usb", Some("on a USB disk"), "locked: on a USB disk"),
        ("bare-lock", None, "locked"),
        ("hostile", Some(hostile), r"locked: x\n\u{1b}[2Jy"),
        ("adding", Some("initializing"), "being added by git"),
    ] {
        let path = t.add_worktree(name);
        let mut lock = vec!["worktree", "lock"];
        lock.extend(reason.iter().flat_map(|r| ["--reason", r]));
        lock.push(path.to_str().unwrap());
        t.git(&lock);
        cases.push((path, reason.unwrap_or(""), state));
    }
    let free = t.add_worktree("free");

    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    for (path, reason, _) in &cases {
        let w = listed_worktree(&doc, path, &json);
        assert_eq!(w["locked"], true, "{json}");
        assert_eq!(w["lock_reason"], *reason, "{json}");
    }
    for path in [&t.repo, &free] {
        let w = listed_worktree(&doc, path, &json);
        assert_eq!(w["locked"], false, "{json}");
        assert_eq!(w["lock_reason"], serde_json::Value::Null, "{json}");
    }

    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    assert!(!list.stdout.contains('\x1b'), "{list}");
    let rows: Vec<&str> = list.stdout.lines().collect();
    // One row of the worktree's own (SERVICE and PORT `-`), before its
    // service's: header, 6 worktrees' `app`, 4 locked ones.
    assert_eq!(rows.len(), 1 + 6 + 4, "{list}");
    let rows_of = |path: &Path| -> Vec<&str> {
        rows.iter()
            .copied()
            .filter(|r| r.starts_with(&format!("{}  ", path.display())))
            .collect()
    };
    for (path, _, state) in &cases {
        let own = rows_of(path);
        assert_eq!(own.len(), 2, "{list}");
        let cells: Vec<&str> = own[0].split_whitespace().collect();
        assert_eq!(cells[4..6], ["-", "-"], "{list}");
        assert!(own[0].ends_with(&format!("  {state}")), "{state}: {list}");
        assert_eq!(own[1].split_whitespace().nth(4), Some("app"), "{list}");
    }
    for path in [&t.repo, &free] {
        assert_eq!(rows_of(path).len(), 1, "{list}");
    }
}

/// Two repositories share a purpose's range. The other one's service,
/// listening on the port the registry records for it, is no conflict in
/// this repository's `list`: the registry knows that port, whichever
/// repository recorded it.
#[test]
fn list_does_not_call_another_repositorys_recorded_port_a_conflict() {
    let t = TestEnv::new();
    let other = t.root().join("other-repo");
    t.init_repo(&other);
    let env = run(&mut t.wtenv_in(&other, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");
    let port = t.ports.port(0);
    assert!(env.stdout.contains(&format!("PORT='{port}'")), "{env}");
    let _server = PyListener::start(&other, "4", "127.0.0.1", port, "");

    let list = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(list.code, Some(0), "{list}");
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(doc["conflicts"], serde_json::json!([]), "{list}");
    let table = run(&mut t.wtenv(&["list"]));
    assert!(!table.stdout.contains("conflict"), "{table}");
}

/// One rendering of a conflict's holders in `list`, whichever kind: a
/// reserved port held by a process outside its worktree, and a port of
/// the range free in the registry but held on the system (whose row
/// read `conflict (pid N (COMMAND) in DIR): ...`, an extra parenthesis).
#[test]
fn list_writes_both_kinds_of_conflict_row_alike() {
    let t = TestEnv::new();
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let (reserved, unrecorded) = (t.ports.start, t.ports.start + 1);
    let thief = PyListener::start(&t.root(), "4", "127.0.0.1", reserved, "");
    let squatter = PyListener::start(&t.root(), "4", "127.0.0.1", unrecorded, "");
    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    let holder = |pid: u32| {
        let command = wtenv::process::command(pid).unwrap();
        format!("pid {pid} {}", wtenv::process::printable(&command))
    };
    let state = |port: u16| {
        let row = list
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(5) == Some(&port.to_string()))
            .unwrap_or_else(|| panic!("no row for port {port}: {list}"));
        row[row.find("conflict").unwrap_or_else(|| panic!("{list}"))..].to_owned()
    };
    assert_eq!(
        state(reserved),
        format!("conflict ({})", holder(thief.pid()))
    );
    assert_eq!(
        state(unrecorded),
        format!(
            "conflict ({}): free in the registry",
            holder(squatter.pid())
        )
    );
}

/// Every service object of `list --json` carries the same keys whatever
/// its state: an unallocated one had only `service`, `port`, `state` and
/// `listeners`, so `.holds[]` failed on it. And before the first commit,
/// `head` is `null`, not git's all-zero id.
#[test]
fn list_json_gives_every_service_the_same_keys_and_no_head_before_a_commit() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    let allocated = run(&mut t.wtenv(&["allocate", "--service", "web"]));
    assert_eq!(allocated.code, Some(0), "{allocated}");
    let json = run(&mut t.wtenv(&["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let main = listed_worktree(&doc, &t.repo, &json);
    assert!(main["head"].is_string(), "{json}");
    let services = main["services"].as_array().unwrap();
    let keys = |s: &serde_json::Value| {
        let mut k: Vec<String> = s.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let states: Vec<&str> = services
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"unallocated") && states.len() == 2,
        "{json}"
    );
    assert_eq!(keys(&services[0]), keys(&services[1]), "{json}");
    let unallocated = services
        .iter()
        .find(|s| s["state"] == "unallocated")
        .unwrap();
    assert_eq!(unallocated["holds"], serde_json::json!([]), "{json}");
    assert_eq!(unallocated["worktree_gone"], false, "{json}");
    assert!(unallocated["port"].is_null() && unallocated["lifetime"].is_null());

    let fresh = t.root().join("fresh");
    t.init_repo(&fresh);
    let json = run(&mut t.wtenv_in(&fresh, &["list", "--json"]));
    assert_eq!(json.code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let w = listed_worktree(&doc, &fresh, &json);
    assert_eq!(w["head"], serde_json::Value::Null, "{json}");
    assert_eq!(w["branch"], "main", "{json}");
}

/// A worktree not made by `create` has the `default_purpose` of its own
/// config, as its `env` takes it. `list` showed the purpose (and its
/// ranges) of the config where it ran: from the main worktree, a branch
/// whose config says `beta` was listed `alpha`, with alpha's range beside
/// a port outside it; from the branch, the main worktree was listed
/// `beta`.
#[test]
fn list_shows_each_worktrees_purpose_from_its_own_config() {
    let t = TestEnv::new();
    let (alpha, beta) = (
        format!("{}-{}", t.ports.port(0), t.ports.port(1)),
        format!("{}-{}", t.ports.port(2), t.ports.port(3)),
    );
    let config = |default: &str| {
        format!(
            "[worktrees]\ndefault_purpose = \"{default}\"\n[purposes]\nalpha = \"{alpha}\"\nbeta = \"{beta}\"\n[services.app]\n"
        )
    };
    std::fs::write(t.repo.join("wtenv.toml"), config("alpha")).unwrap();
    t.git(&["commit", "-q", "-am", "alpha by default"]);
    let branch = t.add_worktree("b");
    std::fs::write(branch.join("wtenv.toml"), config("beta")).unwrap();
    for dir in [&t.repo, &branch] {
        assert_eq!(run(&mut t.wtenv_in(dir, &["env"])).code, Some(0));
    }
    for dir in [&t.repo, &branch] {
        let out = run(&mut t.wtenv_in(dir, &["list", "--json"]));
        assert_eq!(out.code, Some(0), "{out}");
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let seen: Vec<(String, String, u64)> = doc["worktrees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["purpose"].as_str().unwrap().to_owned(),
                    w["ranges"][0].as_str().unwrap().to_owned(),
                    w["services"][0]["port"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "alpha".to_owned(),
                    alpha.clone(),
                    u64::from(t.ports.port(0))
                ),
                ("beta".to_owned(), beta.clone(), u64::from(t.ports.port(2))),
            ],
            "list in {}: {out}",
            dir.display()
        );
    }
}
