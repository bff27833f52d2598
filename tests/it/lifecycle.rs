//! Every view of the registry tells the truth at the edges of a worktree's
//! life: direnv shells reload when any command changes their ports, exited
//! or killed holders, orphans of a killed `run`, removed services, and the
//! conflict message's own advice (README, "Lifecycle").

use std::path::Path;

use crate::direnv::{allow, with_direnv};
use crate::supervise::{PATIENCE, Wtenv, recorded_pgid, server_script, wait_pidfile};
use crate::support::{PyListener, TestEnv, Tmux, held_env, kill_watcher_of, run, wait_for};

const WTENV: &str = env!("CARGO_BIN_EXE_wtenv");

/// The first line of `file` once it holds one, polled.
fn line_of(file: &Path) -> Option<String> {
    wait_for(PATIENCE, || {
        std::fs::read_to_string(file).is_ok_and(|s| s.ends_with('\n'))
    });
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// The port the registry gives `service` of `worktree`.
fn port_of(t: &TestEnv, worktree: &Path, service: &str) -> Option<u16> {
    t.allocations()
        .into_iter()
        .find(|(_, s, w)| s == service && w == worktree)
        .map(|(p, _, _)| p)
}

/// A direnv shell at a real terminal in worktree B: whatever command gives
/// B's port away (`release`, `validate --verify-ports --fix`), the next
/// prompt reloads and B exports the port the registry now gives it, not
/// the one another worktree took.
#[test]
fn a_direnv_shell_reloads_when_release_or_validate_fix_gives_its_port_away() {
    let t = TestEnv::new();
    with_direnv(&t);
    let (b, c, d) = (
        t.add_worktree("b"),
        t.add_worktree("c"),
        t.add_worktree("d"),
    );
    for wt in [&b, &c, &d] {
        allow(&t, wt);
    }
    let tmux = Tmux::start_bash(&t);
    tmux.line(&t, "eval \"$(direnv hook bash)\"");
    tmux.line(&t, &format!("cd '{}'", b.display()));
    let out = |n: u32| t.root().join(format!("port-{n}"));
    tmux.line(&t, &format!("echo \"$PORT\" > '{}'", out(1).display()));
    let first = t.ports.port(0).to_string();
    assert_eq!(
        line_of(&out(1)).as_deref(),
        Some(first.as_str()),
        "{}",
        tmux.pane(&t)
    );

    // B's port released, then taken by C before B's next prompt.
    tmux.line(
        &t,
        &format!(
            "{WTENV} release; (cd '{}' && {WTENV} env >/dev/null)",
            c.display()
        ),
    );
    tmux.line(&t, &format!("echo \"$PORT\" > '{}'", out(2).display()));
    let now = line_of(&out(2));
    assert_eq!(port_of(&t, &c, "app"), Some(t.ports.port(0)));
    assert_eq!(
        now.as_deref(),
        Some(t.ports.port(1).to_string().as_str()),
        "B still exports the port C took: {}",
        tmux.pane(&t)
    );
    assert_eq!(port_of(&t, &b, "app"), Some(t.ports.port(1)));

    // `validate --verify-ports --fix` releases the idle reservations of B
    // and C; D and C then take the two lowest ports before B's prompt.
    tmux.line(
        &t,
        &format!(
            "{WTENV} validate --verify-ports --fix >/dev/null; (cd '{}' && {WTENV} env >/dev/null); (cd '{}' && {WTENV} env >/dev/null)",
            d.display(),
            c.display()
        ),
    );
    tmux.line(&t, &format!("echo \"$PORT\" > '{}'", out(3).display()));
    let now = line_of(&out(3));
    assert_eq!(port_of(&t, &d, "app"), Some(t.ports.port(0)));
    assert_eq!(port_of(&t, &c, "app"), Some(t.ports.port(1)));
    assert_eq!(
        now.as_deref(),
        Some(t.ports.port(2).to_string().as_str()),
        "B kept exporting a port validate --fix gave away: {}",
        tmux.pane(&t)
    );
}

/// A holder that is gone is shown as gone by the read-only views, which
/// write nothing; `validate` reports it, `validate --fix` clears it. (Its
/// watcher, killed first, would have released it.)
#[test]
fn read_only_views_show_a_gone_holder_as_gone_and_write_nothing() {
    let t = TestEnv::new();
    let (mut holder, pid) = held_env(&t);
    let out = run(&mut t.wtenv(&["ports"]));
    assert!(out.stdout.contains(&format!("held by pid {pid} ")), "{out}");
    kill_watcher_of(holder.id());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let before = std::fs::read(t.registry_path()).unwrap();
    let gone = format!("held by pid {pid}: gone");
    let ports = run(&mut t.wtenv(&["ports"]));
    assert_eq!(ports.code, Some(0), "{ports}");
    assert!(ports.stdout.contains(&gone), "{ports}");
    let json = run(&mut t.wtenv(&["ports", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["allocations"][0]["holds"][0]["alive"], false, "{json}");
    let list = run(&mut t.wtenv(&["list"]));
    assert_eq!(list.code, Some(0), "{list}");
    assert!(list.stdout.contains(&gone), "{list}");
    let validate = run(&mut t.wtenv(&["validate", "-v"]));
    assert_eq!(validate.code, Some(1), "{validate}");
    assert!(validate.stdout.contains(&gone), "{validate}");
    assert!(validate.stdout.contains("holder-dead"), "{validate}");
    assert_eq!(
        std::fs::read(t.registry_path()).unwrap(),
        before,
        "a read-only view wrote the registry"
    );
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fix.code, Some(0), "{fix}");
    assert!(t.allocations().is_empty(), "the held-only port is released");
}

/// A service removed from the config leaves a stale allocation: reported
/// as an error `--fix` repairs by releasing it. `allocate --service S` for
/// a service the config never declared is not stale.
#[test]
fn an_allocation_of_a_removed_service_is_stale_and_fix_releases_it() {
    let t = TestEnv::new();
    t.write_config("[services.web]\n[services.api]\n");
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let adhoc = run(&mut t.wtenv(&["allocate", "--service", "scratch"]));
    assert_eq!(adhoc.code, Some(0), "{adhoc}");
    assert_eq!(run(&mut t.wtenv(&["validate"])).code, Some(0));
    t.write_config("[services.web]\n");
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(1), "{out}");
    let api = t.ports.port(1);
    assert!(
        out.stdout.contains(&format!(
            "error: service-removed: port {api} (api) of {}: ",
            t.repo.display()
        )),
        "{out}"
    );
    assert!(!out.stdout.contains("scratch"), "{out}");
    let fix = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(fix.code, Some(0), "{fix}");
    assert!(fix.stdout.contains("[fixed]"), "{fix}");
    let services: Vec<String> = t.allocations().into_iter().map(|a| a.1).collect();
    assert_eq!(services, ["web", "scratch"]);
}

/// The conflict message, followed word for word: the command it names
/// shows the conflict with its holder (an error `--fix` cannot fix),
/// `conflicts` and `list` agree with it, and the hint's flag allocates
/// past it. A reserved port held by a foreign process is a conflict in
/// `conflicts` as in `list`.
#[test]
fn the_conflict_message_followed_literally_shows_the_conflict_everywhere() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    let elsewhere = t.root().join("home");
    let squatter = PyListener::start(&elsewhere, "4", "127.0.0.1", t.ports.port(0), "");
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(1), "{out}");
    let told = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Run '").and_then(|l| l.split('\'').next()))
        .unwrap_or_else(|| panic!("no command in the message: {out}"))
        .to_owned();
    assert_eq!(told, "wtenv validate --verify-ports");
    let args: Vec<&str> = told.split(' ').skip(1).collect();
    let holder = format!("pid {} (", squatter.pid());
    for fix in [false, true] {
        let mut args = args.clone();
        if fix {
            args.push("--fix");
        }
        let v = run(&mut t.wtenv(&args));
        assert_eq!(v.code, Some(1), "{args:?}: {v}");
        let line = v
            .stdout
            .lines()
            .find(|l| l.starts_with("error: conflict: "))
            .unwrap_or_else(|| panic!("{args:?} does not show the conflict: {v}"));
        assert!(line.contains(&t.ports.port(0).to_string()), "{line}");
        assert!(line.contains(&holder), "{line}");
        assert!(line.ends_with("[needs manual intervention]"), "{line}");
    }
    let conflicts = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(conflicts.code, Some(1), "{conflicts}");
    assert!(conflicts.stdout.contains(&holder), "{conflicts}");
    // A table cell names a holder as `pid N COMMAND`, as every row does.
    let list = run(&mut t.wtenv(&["list"]));
    assert!(
        list.stdout
            .lines()
            .any(|l| l.contains(&t.ports.port(0).to_string())
                && l.contains(&format!("conflict (pid {} ", squatter.pid()))),
        "{list}"
    );
    // The hint: --skip-occupied takes the next free port.
    let hint = out.stderr.lines().last().unwrap();
    assert!(
        hint.starts_with("hint: ") && hint.contains("--skip-occupied"),
        "{out}"
    );
    let skip = run(&mut t.wtenv(&["env", "--skip-occupied"]));
    assert_eq!(skip.code, Some(0), "{skip}");
    assert!(
        skip.stdout.contains(&format!("PORT='{}'", t.ports.port(1))),
        "{skip}"
    );

    // A reservation taken over by a foreign process: `list` says conflict,
    // and so does `conflicts`.
    let out = run(&mut t.wtenv_in(&other, &["env", "--skip-occupied"]));
    assert_eq!(out.code, Some(0), "{out}");
    let taken = t.ports.port(2);
    let thief = PyListener::start(&elsewhere, "4", "127.0.0.1", taken, "");
    let list = run(&mut t.wtenv(&["list"]));
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{} ", other.display())))
        .unwrap();
    assert!(
        row.contains(&format!("conflict (pid {}", thief.pid())),
        "{list}"
    );
    let conflicts = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(conflicts.code, Some(1), "{conflicts}");
    let line = conflicts
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{taken} ")))
        .unwrap_or_else(|| panic!("conflicts misses the foreign holder of {taken}: {conflicts}"));
    assert!(line.contains(&format!("pid {} (", thief.pid())), "{line}");
    assert!(
        line.contains(&format!("reserved for app of {}", other.display())),
        "{line}"
    );
}

/// `remove` refuses while a process works inside the worktree (holding no
/// port), naming it; `--force` removes anyway and names what it left.
#[test]
fn remove_refuses_while_a_process_has_its_cwd_inside_and_force_names_it() {
    let t = TestEnv::new();
    let out = run(&mut t.wtenv(&["create", "--purpose", "feature", "--identifier", "busy"]));
    assert_eq!(out.code, Some(0), "{out}");
    let wt = t.root().join("repo.worktrees/feature-busy");
    let sub = wt.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let mut editor = std::process::Command::new("sleep")
        .arg("600")
        .current_dir(&sub)
        .spawn()
        .unwrap();
    let named = format!("pid {} sleep 600: working directory inside", editor.id());
    let out = run(&mut t.wtenv(&["remove", "busy"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains(&named), "{out}");
    assert!(wt.exists());
    let out = run(&mut t.wtenv(&["remove", "--force", "busy"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains(&format!("warning: left running: {named}")),
        "{out}"
    );
    assert!(!wt.exists());
    editor.kill().unwrap();
    editor.wait().unwrap();
}

/// The allocation of a process that crashed (a `wtenv run` SIGKILLed with
/// its child): `validate` reports it stale (exit 1), `--fix` releases it
/// (exit 0), and the port is given out again, lowest first.
#[test]
fn a_stale_allocation_after_a_crash_is_found_fixed_and_given_out_again() {
    let t = TestEnv::new();
    let mut w = Wtenv::start(&t, &["run", "--", "sleep", "600"]);
    let port = t.ports.port(0);
    assert!(wait_for(PATIENCE, || t.registry_path().exists()));
    let pgid = recorded_pgid(&t, port);
    // The crash: wtenv and its whole tree die, wtenv first. (The tree
    // first would let a live wtenv see its child exit and release the
    // port cleanly before its own SIGKILL lands: no crash left to find.)
    w.signal(nix::sys::signal::Signal::SIGKILL);
    w.wait();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_for(PATIENCE, || wtenv::process::group_members(pgid).is_empty()),
        "group {pgid} outlived SIGKILL"
    );
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .contains(&format!("error: holder-dead: port {port} (app)")),
        "{out}"
    );
    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
    let out = run(&mut t.wtenv(&["env"]));
    assert!(out.stdout.contains(&format!("PORT='{port}'")), "{out}");
}

/// `kill -9` of `wtenv run` serving an npm-shaped tree (sh → sh → server):
/// the server is an orphan. Every view names it; `validate` reports it
/// with its dead holder, with or without `--verify-ports` (exit 1);
/// `validate --fix` stops exactly that tree (a foreign listener on another
/// port of the range is left alone, and reported by `--verify-ports`) and
/// changes no other worktree's reservation; `--verify-ports --fix` then
/// names each idle reservation it releases.
#[test]
fn orphans_of_a_killed_run_are_named_everywhere_and_validate_fix_stops_only_them() {
    let t = TestEnv::new();
    let other = t.add_worktree("other");
    assert_eq!(run(&mut t.wtenv_in(&other, &["env"])).code, Some(0));
    let script = server_script(&t);
    let pidfile = t.root().join("server.pid");
    let tree = format!(
        "sh -c 'python3 {} {}'; echo leader-after-child",
        script.display(),
        pidfile.display()
    );
    let mut w = Wtenv::start(&t, &["run", "--", "sh", "-c", &tree]);
    let server = wait_pidfile(&pidfile, &w);
    let port = t.ports.port(1);
    let pgid = recorded_pgid(&t, port);
    assert!(
        wait_for(PATIENCE, || t.registry()["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["holders"][0]["leader_start"].is_u64())),
        "{}",
        t.registry()
    );
    // With the group, the session it is in: what tells a reused group id
    // of another session apart.
    let session = wtenv::process::session(server).map(u64::from);
    assert!(session.is_some());
    assert!(
        t.registry()["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["holders"][0]["session"].as_u64() == session),
        "{}",
        t.registry()
    );
    let foreign_port = t.ports.port(5);
    let foreign = PyListener::start(&t.root().join("home"), "4", "127.0.0.1", foreign_port, "");
    w.signal(nix::sys::signal::Signal::SIGKILL);
    w.wait();
    let tree_pids = wtenv::process::group_members(pgid);
    assert!(tree_pids.contains(&server), "{tree_pids:?}");
    let named = format!("pid {server} (");

    for view in [&["ports"][..], &["list"]] {
        let out = run(&mut t.wtenv(view));
        let row = out
            .stdout
            .lines()
            .find(|l| l.contains(&format!(" {port} ")) || l.starts_with(&format!("{port} ")))
            .unwrap_or_else(|| panic!("{view:?}: no row for {port}: {out}"));
        assert!(
            row.contains("orphans") && row.contains(&named),
            "{view:?}: {row}"
        );
    }
    let before_other: Vec<_> = t
        .allocations()
        .into_iter()
        .filter(|a| a.2 == other)
        .collect();
    for args in [&["validate"][..], &["validate", "--verify-ports"]] {
        let out = run(&mut t.wtenv(args));
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("error: holder-dead: "))
            .unwrap_or_else(|| panic!("{args:?}: {out}"));
        assert!(line.contains(&format!("port {port} (app)")), "{line}");
        assert!(line.contains("orphans") && line.contains(&named), "{line}");
        assert!(line.ends_with("[fixable: run with --fix]"), "{line}");
    }

    let out = run(&mut t.wtenv(&["validate", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("stopped the orphans"), "{out}");
    assert!(
        wait_for(PATIENCE, || tree_pids
            .iter()
            .all(|p| wtenv::process::ProcessId::of(*p).is_none())),
        "the tree survived: {out}"
    );
    assert!(
        wtenv::process::ProcessId::of(foreign.pid()).is_some(),
        "a foreign listener was stopped"
    );
    let after_other: Vec<_> = t
        .allocations()
        .into_iter()
        .filter(|a| a.2 == other)
        .collect();
    assert_eq!(
        after_other, before_other,
        "another worktree's reservation changed"
    );
    assert!(
        t.allocations().iter().all(|a| a.2 == other),
        "{:?}",
        t.allocations()
    );

    // The foreign listener is a conflict `--fix` cannot fix; the idle
    // reservation of `other` is released and named.
    let out = run(&mut t.wtenv(&["validate", "--verify-ports", "--fix"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("error: conflict: ")
                && l.contains(&format!("pid {} (", foreign.pid()))),
        "{out}"
    );
    assert!(
        out.stdout.lines().any(|l| l.contains(&format!("(app) of {}", other.display()))
            && l.ends_with("[fixed]")),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{:?}", t.allocations());
}

/// A `post-checkout` hook that writes `.env` with `wtenv env` during
/// `create --purpose bugfix` (no `--ports`): it sees the new worktree's
/// purpose and identifier, so its port comes from the bugfix range, and
/// what the hook prints reaches the user.
#[test]
fn a_post_checkout_hook_sees_the_new_worktrees_identity_and_its_output_is_shown() {
    let t = TestEnv::with_ports(crate::support::PortBlock::take_many(2));
    let half = t.ports.len() / 2;
    let (feature, bugfix) = (
        format!("{}-{}", t.ports.start, t.ports.start + half - 1),
        format!("{}-{}", t.ports.start + half, t.ports.end()),
    );
    std::fs::write(
        t.repo.join("wtenv.toml"),
        format!("[purposes]\nfeature = \"{feature}\"\nbugfix = \"{bugfix}\"\n"),
    )
    .unwrap();
    t.git(&["commit", "-q", "-am", "two purposes"]);
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n'{}' env --format dotenv > .env\necho \"hook: wrote .env\" >&2\n",
            env!("CARGO_BIN_EXE_wtenv")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(&mut t.wtenv(&["create", "--purpose", "bugfix", "--identifier", "fix1"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("hook: wrote .env\n"),
        "the hook's output is hidden: {out}"
    );
    let wt = t.root().join("repo.worktrees/bugfix-fix1");
    let dotenv = std::fs::read_to_string(wt.join(".env")).unwrap();
    assert!(dotenv.contains("WTENV_PURPOSE='bugfix'\n"), "{dotenv}");
    assert!(dotenv.contains("WTENV_IDENTIFIER='fix1'\n"), "{dotenv}");
    let port = t.ports.start + half;
    assert!(dotenv.contains(&format!("PORT='{port}'\n")), "{dotenv}");
    let out = run(&mut t.wtenv(&["validate"]));
    assert_eq!(out.code, Some(0), "{out}");
    let out = run(&mut t.wtenv_in(&wt, &["env"]));
    assert!(out.stdout.contains(&format!("PORT='{port}'")), "{out}");
}

/// Views create nothing in a state directory where nothing was ever
/// recorded: not the directory, nor `registry.lock`, nor `background/`.
/// (`logs` with nothing logged fails, saying so; it creates nothing
/// either.)
#[test]
fn views_on_a_fresh_state_directory_create_nothing() {
    let t = TestEnv::new();
    let state = t.state_dir();
    // `down` with nothing running stops nothing, so it makes nothing.
    let views: [&[&str]; 7] = [
        &["list"],
        &["ports"],
        &["validate"],
        &["conflicts"],
        &["status"],
        &["logs"],
        &["down"],
    ];
    for args in views {
        let out = run(&mut t.wtenv(args));
        assert!(out.code.is_some_and(|c| c <= 1), "{args:?}: {out}");
        assert!(!state.exists(), "{args:?} created {}", state.display());
    }
    // An empty one made by hand: status, logs and down leave it empty.
    std::fs::create_dir_all(&state).unwrap();
    for args in [&["status"][..], &["logs"], &["down"]] {
        let out = run(&mut t.wtenv(args));
        assert!(out.code.is_some_and(|c| c <= 1), "{args:?}: {out}");
        let made: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().collect();
        assert!(made.is_empty(), "{args:?} created {made:?}");
    }
}

/// QA finding: a port only a SIGKILLed `run` held (it allocated it
/// itself), its command still running without listening, was reported
/// twice by `validate --verify-ports`: `holder-dead` and `stale`, where
/// `--fix` makes one fix (it stops the orphans, then releases the port).
/// One port, one finding.
#[test]
fn a_killed_runs_own_port_with_orphans_is_one_finding_not_also_stale() {
    let t = TestEnv::new();
    let mut w = Wtenv::start(&t, &["run", "--", "sleep", "300"]);
    let port = t.ports.port(0);
    assert!(wait_for(PATIENCE, || t.registry_path().exists()));
    let pgid = recorded_pgid(&t, port);
    w.signal(nix::sys::signal::Signal::SIGKILL);
    w.wait();
    let out = run(&mut t.wtenv(&["validate", "--verify-ports"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("error: holder-dead: "), "{out}");
    assert!(!out.stdout.contains("stale"), "{out}");
    assert!(out.stdout.contains("1 error(s), 0 warning(s)"), "{out}");
    let out = run(&mut t.wtenv(&["validate", "--verify-ports", "--fix"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        wait_for(PATIENCE, || wtenv::process::group_members(pgid).is_empty()),
        "{out}"
    );
    assert!(t.allocations().is_empty(), "{out}");
}
