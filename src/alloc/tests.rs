use super::*;
use crate::alloc::fake::*;

#[test]
fn lowest_free_port_skipping_the_registry() {
    let mut sys = Fake::default();
    let mut data = RegistryData::default();
    let a = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
    let b = alloc(
        &mut data,
        "/w",
        vec!["app", "db"],
        &HoldMode::Reserve,
        &mut sys,
    )
    .unwrap();
    assert_eq!(a["app"], 5000);
    assert_eq!((b["app"], b["db"]), (5001, 5002));
}

#[test]
fn allocation_is_sticky_and_probes_nothing_when_complete() {
    let mut sys = Fake::default();
    let mut data = RegistryData::default();
    alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
    sys.probes.clear();
    sys.occupied.insert(5000); // our own server now runs there
    let again = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
    assert_eq!(again["app"], 5000);
    assert!(sys.probes.is_empty());
}

/// Over the worktree's own entries: a hold recorded, a dead holder of
/// ours swept; when the sweep leaves a service without its port,
/// nothing is changed and a port is left to `allocate_in` to pick.
#[test]
fn hold_in_holds_what_exists_and_leaves_a_missing_port_untouched() {
    let mut sys = Fake::default();
    let mut data = RegistryData::default();
    alloc(&mut data, "/w", vec!["web"], &HoldMode::Reserve, &mut sys).unwrap();
    let dead = HoldMode::HoldAll(hold(10));
    alloc(&mut data, "/w", vec!["web", "api"], &dead, &mut sys).unwrap();
    sys.dead.insert(10);
    sys.probes.clear();
    let before = data.clone();
    let req = req("/w", vec!["web", "api"]);
    let me = HoldMode::HoldAll(hold(11));
    assert_eq!(hold_in(&mut data, &req, &me, &mut sys), None);
    assert_eq!(data, before, "the dead holder's api port goes with it");

    let web = super::fake::req("/w", vec!["web"]);
    let ports = hold_in(&mut data, &web, &me, &mut sys).unwrap();
    assert_eq!(ports["web"], 5000);
    assert_eq!(data.allocations.len(), 1, "the api port was swept");
    let holders: Vec<u32> = data.allocations[0].holders.iter().map(|h| h.pid).collect();
    assert_eq!((data.allocations[0].reserved, holders), (true, vec![11]));
    assert!(sys.probes.is_empty(), "nothing to pick, nothing probed");
}

/// `run`'s mode in a real registry file: a port it must pick is held
/// at once (held-only, as by `HoldAll`); when every port is reserved,
/// the hold waits and the file is not written.
#[test]
fn a_settling_hold_waits_on_reserved_ports_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let registry = Registry::new(dir.path().join(crate::registry::FILE_NAME));
    let mut sys = Fake::default();
    let req = req("/r", vec!["app"]);
    let settling = HoldMode::Settling(hold(10));
    let first = ensure_allocations(&registry, &req, &settling, &mut sys).unwrap();
    assert!(!first.hold_waits);
    let held = registry.read().unwrap().allocations;
    assert_eq!(
        (held[0].reserved, held[0].holders.clone()),
        (false, vec![hold(10)])
    );

    let reserved = ensure_allocations(&registry, &req, &HoldMode::Reserve, &mut sys).unwrap();
    assert!(!reserved.hold_waits);
    registry
        .transaction(|d| {
            d.allocations[0].holders.clear();
            Ok(())
        })
        .unwrap();
    let before = std::fs::read(registry.path()).unwrap();
    let again = ensure_allocations(&registry, &req, &settling, &mut sys).unwrap();
    assert!(again.hold_waits);
    assert_eq!(again.ports, first.ports);
    assert_eq!(std::fs::read(registry.path()).unwrap(), before);
}

/// A vet that refuses writes nothing, on each path: a port to pick, a
/// hold to record on ports that exist, and it is asked on the fast path
/// too, with what the allocation would leave.
#[test]
fn a_refusing_check_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let registry = Registry::new(dir.path().join(crate::registry::FILE_NAME));
    let mut sys = Fake::default();
    let web = req("/r", vec!["web"]);
    let both = req("/r", vec!["web", "api"]);
    ensure_allocations(&registry, &web, &HoldMode::Reserve, &mut sys).unwrap();
    let before = std::fs::read(registry.path()).unwrap();
    let cases = [
        (&both, HoldMode::Reserve),
        (&web, HoldMode::HoldAll(hold(10))),
        (&web, HoldMode::Reserve),
    ];
    // `vet` sees the outcome: what would be written, api's new port too.
    let mut seen = Vec::new();
    for (req, mode) in &cases {
        let mut refuse = |e: &Ensured| {
            seen.push(e.ports.values().copied().collect::<Vec<u16>>());
            Err(crate::error::Error::invalid("refused"))
        };
        let e = ensure_vetted(
            &registry,
            req,
            mode,
            &mut sys,
            &mut |_, _| Ok(()),
            &mut refuse,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "refused");
        assert_eq!(std::fs::read(registry.path()).unwrap(), before, "{mode:?}");
    }
    assert_eq!(seen, vec![vec![5000, 5001], vec![5000], vec![5000]]);
    // `had` sees what the worktree had, before anything is locked.
    let mut had_seen = Vec::new();
    for (req, mode) in &cases {
        let mut refuse = |mine: &[Allocation], _: &mut dyn System| {
            had_seen.push(mine.iter().map(|a| a.port).collect::<Vec<u16>>());
            Err(crate::error::Error::invalid("refused"))
        };
        let e = ensure_vetted(&registry, req, mode, &mut sys, &mut refuse, &mut |_| Ok(()))
            .unwrap_err();
        assert_eq!(e.to_string(), "refused");
        assert_eq!(std::fs::read(registry.path()).unwrap(), before, "{mode:?}");
    }
    assert_eq!(had_seen, vec![vec![5000], vec![5000], vec![5000]]);
}

#[test]
fn hold_services_holds_only_the_named_services_and_reserves_the_rest() {
    let mut sys = Fake::default();
    let mut data = RegistryData::default();
    let mode = HoldMode::HoldServices(hold(10), vec!["web".into()]);
    alloc(&mut data, "/w", vec!["web", "api"], &mode, &mut sys).unwrap();
    let by = |s: &str| data.allocations.iter().find(|a| a.service == s).unwrap();
    assert!(!by("web").reserved && by("web").holders.len() == 1);
    assert!(by("api").reserved && by("api").holders.is_empty());
    // Existing allocations: the same split.
    let mode = HoldMode::HoldServices(hold(11), vec!["api".into()]);
    alloc(&mut data, "/w", vec!["web", "api"], &mode, &mut sys).unwrap();
    let by = |s: &str| data.allocations.iter().find(|a| a.service == s).unwrap();
    assert_eq!(by("web").holders.len(), 1);
    assert_eq!(by("api").holders[0].pid, 11);
}

#[test]
fn run_marks_reservations_held_and_releases_only_its_own() {
    let mut sys = Fake::default();
    let mut data = RegistryData::default();
    alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
    let me = hold(42);
    alloc(
        &mut data,
        "/r",
        vec!["app", "db"],
        &HoldMode::HoldAll(me.clone()),
        &mut sys,
    )
    .unwrap();
    assert_eq!(data.allocations[0].holders, vec![me.clone()]);
    assert!(!data.allocations[1].reserved);
    let released = release_holds(&mut data, me.process());
    assert_eq!(
        released.len(),
        1,
        "the db port was allocated by the run: released"
    );
    assert_eq!(data.allocations.len(), 1);
    assert!(data.allocations[0].holders.is_empty() && data.allocations[0].reserved);
}

#[test]
fn plain_env_makes_a_held_port_sticky_and_a_dead_holders_port_is_swept_first() {
    let mut sys = Fake::default();
    let mut data = RegistryData::default();
    // A `nix develop` shell (pid 10) allocated it, held.
    alloc(
        &mut data,
        "/r",
        vec!["app"],
        &HoldMode::HoldAll(hold(10)),
        &mut sys,
    )
    .unwrap();
    assert!(!data.allocations[0].reserved);
    // direnv's plain `env` in the same worktree, while it lives.
    let ports = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
    assert_eq!(ports["app"], 5000);
    assert!(data.allocations[0].reserved, "exported by env: sticky");
    // Another worktree whose nix shell died: swept, then reserved anew.
    alloc(
        &mut data,
        "/w",
        vec!["app"],
        &HoldMode::HoldAll(hold(11)),
        &mut sys,
    )
    .unwrap();
    sys.dead.insert(11);
    alloc(&mut data, "/w", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap();
    let w: Vec<_> = data
        .allocations
        .iter()
        .filter(|a| a.worktree == Path::new("/w"))
        .collect();
    assert_eq!(w.len(), 1);
    assert!(w[0].reserved && w[0].holders.is_empty());
}

/// The real machine, but for what happens between a probe that found a
/// port busy and the lookup of its holder.
struct Between {
    real: RealSystem,
    /// Closed just before the lookup: a server that exits in between.
    stopping: Option<std::net::TcpListener>,
    /// The lookup finds nobody though the port stays busy (a `/proc` the
    /// holder is hidden from).
    hidden: bool,
    /// Killed and reaped once its holders are being judged: a holder that
    /// ends between the lookup and the judgment.
    ending: Option<std::process::Child>,
}

impl Between {
    /// A listener on a port of loopback, and that port.
    fn listener() -> (std::net::TcpListener, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }
}

impl System for Between {
    fn probe(&mut self, port: u16) -> std::io::Result<crate::probe::PortState> {
        self.real.probe(port)
    }
    fn holders(&mut self, ports: &BTreeSet<u16>) -> BTreeMap<u16, crate::probe::Holders> {
        self.stopping = None;
        if self.hidden {
            return BTreeMap::new();
        }
        self.real.holders(ports)
    }
    fn is_alive(&mut self, p: crate::process::ProcessId) -> bool {
        self.real.is_alive(p)
    }
    fn unit_active(&mut self, unit: &crate::background::UnitRef) -> bool {
        self.real.unit_active(unit)
    }
    fn worktree_gone(&mut self, w: &Path, r: &Path) -> bool {
        self.real.worktree_gone(w, r)
    }
    fn running(&mut self, pid: u32) -> bool {
        self.real.running(pid)
    }
    fn works_in(&mut self, dir: &Path, worktree: &Path, repository: &Path) -> bool {
        if let Some(mut child) = self.ending.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.real.works_in(dir, worktree, repository)
    }
    fn descends_from(&mut self, pid: u32, ancestor: u32) -> bool {
        self.real.descends_from(pid, ancestor)
    }
    fn orphans(&mut self, hold: &crate::registry::Hold) -> Vec<u32> {
        self.real.orphans(hold)
    }
}

/// A reserved port whose server exits between the probe and the holder
/// lookup (`env` while the worktree's own dev server stops) is free, not
/// a foreign holder; one still busy whose holder nobody can name stays
/// "holder unknown". Real sockets: the test closes its listener itself
/// between the two steps.
#[test]
fn a_holder_that_exits_before_its_lookup_leaves_its_port_free() {
    let mut data = app_reserved();
    let (listener, port) = Between::listener();
    data.allocations[0].port = port;
    let mine: Vec<&Allocation> = data.allocations.iter().collect();
    let mut stopping = Between {
        real: RealSystem::default(),
        stopping: Some(listener),
        hidden: false,
        ending: None,
    };
    assert_eq!(classify(&mine, &mut stopping).unwrap(), vec![Usage::Idle]);

    let (listener, port) = Between::listener();
    data.allocations[0].port = port;
    let mine: Vec<&Allocation> = data.allocations.iter().collect();
    let mut hidden = Between {
        real: RealSystem::default(),
        stopping: None,
        hidden: true,
        ending: None,
    };
    let usage = classify(&mine, &mut hidden).unwrap();
    assert_eq!(
        usage,
        vec![Usage::Foreign(crate::probe::Holders::default())],
        "holder unknown"
    );
    drop(listener);
}

/// A listener outside the worktree that ends between the lookup and the
/// judgment (a shim's short-lived subshell that inherited a service's
/// handed-on socket) is no foreign holder: it holds nothing any more.
/// Alone, its port is looked up once more and found free; beside a
/// foreign holder that stays, only that one is named. Real processes.
#[test]
fn a_holder_that_ends_before_it_is_judged_is_no_foreign_holder() {
    // Listens on a port of loopback from `/`; with an argument, a forked
    // copy holds the socket too and stays. Prints the port and that pid.
    const LISTENER: &str = "import os, socket, sys, time\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
        kept = os.fork() if len(sys.argv) > 1 else -1\n\
        if kept == 0: time.sleep(60); os._exit(0)\n\
        print(s.getsockname()[1], kept, flush=True); time.sleep(60)\n";
    let spawn = |args: &[&str]| {
        let mut child = std::process::Command::new("python3")
            .args(["-c", LISTENER])
            .args(args)
            .current_dir("/")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let mut words = line.split_whitespace().map(|w| w.parse::<i32>().unwrap());
        let port = u16::try_from(words.next().unwrap()).unwrap();
        (child, port, words.next().unwrap())
    };
    let judge = |child, port| {
        let mut data = app_reserved();
        data.allocations[0].port = port;
        let mine: Vec<&Allocation> = data.allocations.iter().collect();
        let mut ending = Between {
            real: RealSystem::default(),
            stopping: None,
            hidden: false,
            ending: Some(child),
        };
        classify(&mine, &mut ending).unwrap()
    };

    let (child, port, _) = spawn(&[]);
    assert_eq!(judge(child, port), vec![Usage::Idle]);

    let (child, port, kept) = spawn(&["keep"]);
    let usage = judge(child, port);
    let kept_pid = nix::unistd::Pid::from_raw(kept);
    nix::sys::signal::kill(kept_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let [Usage::Foreign(found)] = usage.as_slice() else {
        panic!("{usage:?}");
    };
    let named: Vec<u32> = found.processes.iter().map(|h| h.pid).collect();
    assert_eq!(named, [kept.unsigned_abs()], "{found:?}");
}

/// The allocation's side of the same race: a port of the range found
/// busy whose holder exits before its lookup is picked (it is the lowest
/// free), not a conflict; one still busy and nameless is the conflict.
#[test]
fn a_conflict_whose_holder_exits_before_its_lookup_is_no_conflict() {
    let (listener, port) = Between::listener();
    let mut request = req("/r", vec!["app"]);
    request.ranges = crate::config::Ranges::one(crate::config::PortRange {
        start: port,
        end: port,
    });
    let mut stopping = Between {
        real: RealSystem::default(),
        stopping: Some(listener),
        hidden: false,
        ending: None,
    };
    let mut data = RegistryData::default();
    let ports = allocate_in(&mut data, &request, &HoldMode::Reserve, &mut stopping).unwrap();
    assert_eq!(ports["app"], port);

    let (listener, port) = Between::listener();
    request.ranges = crate::config::Ranges::one(crate::config::PortRange {
        start: port,
        end: port,
    });
    let mut hidden = Between {
        real: RealSystem::default(),
        stopping: None,
        hidden: true,
        ending: None,
    };
    let mut data = RegistryData::default();
    let err = allocate_in(&mut data, &request, &HoldMode::Reserve, &mut hidden).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("  port {port}: holder unknown")),
        "{text}"
    );
    drop(listener);
}
