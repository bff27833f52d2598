//! Rules 2 and 3: scanning a purpose's ranges for ports free in the
//! registry and on the system, and the conflict message when a port is
//! free in one and not the other.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use super::{Request, System};
use crate::config::{PortRange, Ranges};
use crate::error::{Error, Result};
use crate::probe::{Holder, Holders, PortState};

/// The result of scanning a range for `count` free ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Free in the registry and on the system, lowest first.
    pub free: Vec<u16>,
    /// Free in the registry but occupied on the system.
    pub conflicts: Vec<u16>,
}

/// Rule 2 and 3: walk `range` upwards, skipping `taken`, probing the rest.
/// Stops once `count` ports are found, unless a conflict was met and
/// `skip_occupied` is off: then it scans to the end so the failure lists
/// every conflict in the range.
pub fn scan(
    range: PortRange,
    taken: &BTreeSet<u16>,
    count: usize,
    skip_occupied: bool,
    system: &mut dyn System,
) -> io::Result<Scan> {
    let mut out = Scan {
        free: Vec::new(),
        conflicts: Vec::new(),
    };
    for port in range.ports() {
        let failing = !skip_occupied && !out.conflicts.is_empty();
        if out.free.len() >= count && !failing {
            break;
        }
        if taken.contains(&port) {
            continue;
        }
        match system.probe(port)? {
            PortState::Occupied => {
                tracing::debug!(port, "free in registry, occupied on system: conflict");
                out.conflicts.push(port);
            }
            PortState::Free if out.free.len() < count => {
                tracing::debug!(port, "free: taken");
                out.free.push(port);
            }
            PortState::Free => {}
        }
    }
    Ok(out)
}

/// Every port of `range` that is free in the registry (not in `taken`) but
/// occupied on the system: the whole range, for `wtenv conflicts`.
pub fn occupied_in(
    range: PortRange,
    taken: &BTreeSet<u16>,
    system: &mut dyn System,
) -> io::Result<Vec<u16>> {
    let mut out = Vec::new();
    for port in range.ports().filter(|p| !taken.contains(p)) {
        if system.probe(port)? == PortState::Occupied {
            out.push(port);
        }
    }
    Ok(out)
}

/// A port of a configured range that is free in the registry but occupied
/// on the system (rule 3's conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeConflict {
    pub purpose: String,
    pub range: PortRange,
    pub port: u16,
}

/// Every [`RangeConflict`] of every range of `purposes`: what `conflicts`,
/// `list` and `validate --verify-ports` show.
pub fn range_conflicts(
    purposes: &BTreeMap<String, Ranges>,
    taken: &BTreeSet<u16>,
    system: &mut dyn System,
) -> io::Result<Vec<RangeConflict>> {
    let mut found = Vec::new();
    for (purpose, ranges) in purposes {
        for range in ranges.iter() {
            for port in occupied_in(range, taken, system)? {
                found.push(RangeConflict {
                    purpose: purpose.clone(),
                    range,
                    port,
                });
            }
        }
    }
    Ok(found)
}

/// One line per holder, or "holder unknown".
pub fn describe_holders(holders: &[Holder]) -> String {
    if holders.is_empty() {
        crate::probe::HOLDER_UNKNOWN.into()
    } else {
        holders
            .iter()
            .map(Holder::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One line per holder the lookup found ([`describe_holders`]), or,
/// with none, holder unknown or that nothing listens
/// ([`Holders::unnamed`]).
pub fn describe_found(found: &Holders) -> String {
    if found.processes.is_empty() {
        found.unnamed().into()
    } else {
        describe_holders(&found.processes)
    }
}

/// Overflow ranges: `count` free ports from `req`'s ranges in order, the
/// next range only for what the current one could not give. Fail fast
/// stays per range: a conflict in a range fails with that range's message
/// (unless `skip_occupied`), even when a later range has room. `own`: the
/// worktree's ports already in the ranges, which a full range's error
/// counts with `count` to say when the ranges are too small for it.
pub fn scan_ranges(
    req: &Request,
    taken: &BTreeSet<u16>,
    count: usize,
    own: usize,
    system: &mut dyn System,
) -> Result<Vec<u16>> {
    // The config that gives the ranges, as a hint names it; `None`: the
    // built-in defaults, and the hint says which file to create.
    let config_file = || {
        req.config_source
            .map(|source| crate::config::file_named(Some(source), req.worktree))
    };
    let mut free = Vec::new();
    // Occupied on the system, skipped (`skip_occupied`): named if the
    // ranges run out.
    let mut skipped = BTreeSet::new();
    for range in req.ranges.iter() {
        if free.len() >= count {
            break;
        }
        let wanted = count - free.len();
        let mut found =
            scan(range, taken, wanted, req.skip_occupied, system).map_err(Error::probe)?;
        if req.skip_occupied {
            skipped.extend(found.conflicts.iter().copied());
        }
        if !found.conflicts.is_empty() && !req.skip_occupied {
            let mut busy: BTreeSet<u16> = found.conflicts.iter().copied().collect();
            let holders = super::lookup_busy(&mut busy, system).map_err(Error::probe)?;
            if !busy.is_empty() {
                return Err(Error::Conflict(Box::new(crate::report::PortConflict {
                    purpose: req.purpose.to_owned(),
                    range,
                    ranges: req.ranges.clone(),
                    ports: busy
                        .iter()
                        .map(|p| (*p, holders.get(p).cloned().unwrap_or_default()))
                        .collect(),
                    config_file: config_file(),
                    syntax: crate::config::syntax_of(req.config_source),
                })));
            }
            // Every conflict's holder exited between the probe and the
            // lookup: those ports are free now, and the lowest free are
            // taken (rule 2).
            found.free.extend(found.conflicts);
            found.free.sort_unstable();
            found.free.truncate(wanted);
        }
        if found.free.len() < wanted {
            tracing::debug!(%range, "range has no more free ports: next range");
        }
        free.extend(found.free);
    }
    if free.len() < count {
        // Their holders, as far as the system tells (a port whose holder
        // is unknown is said so, as in the conflict message).
        let mut holders = system.holders(&skipped);
        return Err(Error::RangeExhausted {
            purpose: req.purpose.to_owned(),
            ranges: req.ranges.clone(),
            need: own + count,
            config_file: config_file(),
            occupied: skipped
                .iter()
                .map(|p| (*p, holders.remove(p).unwrap_or_default()))
                .collect(),
        });
    }
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::fake::*;
    use crate::alloc::{HoldMode, allocate_in};
    use crate::registry::{Allocation, RegistryData};

    #[test]
    fn conflicts_fail_fast_listing_every_one_and_allocate_nothing() {
        let mut sys = Fake {
            occupied: [5001, 5002, 5003].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        data.allocations.push(Allocation {
            port: 5000,
            service: "app".into(),
            purpose: "feature".into(),
            repository: "/r/.git".into(),
            worktree: "/other".into(),
            created: "t".into(),
            reserved: true,
            holders: vec![],
            adhoc: false,
        });
        let before = data.clone();
        let err = alloc(&mut data, "/r", vec!["app"], &HoldMode::Reserve, &mut sys).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(
            "Port conflict detected in feature range 5000-5009.\n\
             Ports free in registry but occupied on system: 5001, 5002, 5003.\n\
             Run 'wtenv validate --verify-ports' to detect and clean stale allocations.\n  port 5001: holder unknown"
        ), "{msg}");
        assert_eq!(data.allocations.len(), before.allocations.len());
    }

    #[test]
    fn skip_occupied_takes_the_next_free() {
        let mut sys = Fake {
            occupied: [5000, 5001].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        let mut r = req("/r", vec!["app"]);
        r.skip_occupied = true;
        assert_eq!(
            allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap()["app"],
            5002
        );
    }

    /// A range whose free ports are all occupied, skipped: the message
    /// named none of them ("no free port left", and a hint about stale
    /// allocations). It names each, with its holders as the conflict
    /// message does, at most ten; the hint says to stop them.
    #[test]
    fn a_range_exhausted_by_skipping_names_what_it_skipped() {
        let holder = Holder {
            pid: 7,
            command: "python3 -m http.server".into(),
            cwd: Some("/w/other".into()),
            unit: None,
        };
        let mut sys = Fake {
            occupied: (5000..=5009).collect(),
            holders: [(5001, vec![holder])].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        let mut r = req("/r", vec!["app"]);
        r.skip_occupied = true;
        r.config_source = Some(std::path::Path::new("/r/wtenv.toml"));
        r.ranges = Ranges::one(PortRange {
            start: 5000,
            end: 5001,
        });
        let err = allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free port left in feature range 5000-5001; occupied on the system, so skipped:\n  \
             port 5000: holder unknown\n  \
             port 5001: pid 7 (python3 -m http.server) in /w/other"
        );
        assert_eq!(
            err.hint().unwrap(),
            "stop what holds those ports, or widen the range (or add an overflow range) in wtenv.toml"
        );
        // Bounded: a line each for the first ten, then how many more.
        r.ranges = Ranges::one(PortRange {
            start: 5000,
            end: 5011,
        });
        sys.occupied = (5000..=5011).collect();
        let err = allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap_err();
        let text = err.to_string();
        assert_eq!(text.lines().count(), 12, "{text}");
        assert!(
            text.ends_with("\n  port 5009: holder unknown\n  and 2 more"),
            "{text}"
        );
        assert!(data.allocations.is_empty());
    }

    #[test]
    fn exhausted_range_is_an_error() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let one = PortRange {
            start: 5000,
            end: 5000,
        };
        let (mut first, mut second) = (req("/r", vec!["app"]), req("/w", vec!["app"]));
        first.ranges = Ranges::one(one);
        second.ranges = Ranges::one(one);
        allocate_in(&mut data, &first, &HoldMode::Reserve, &mut sys).unwrap();
        let err = allocate_in(&mut data, &second, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert!(matches!(err, Error::RangeExhausted { .. }), "{err}");
    }

    /// `feature` with a first range of 2 ports, then 5100-5109.
    fn overflow(worktree: &str) -> Request<'static> {
        let mut r = req(worktree, vec!["app"]);
        r.ranges = Ranges::new(vec![
            PortRange {
                start: 5000,
                end: 5001,
            },
            PortRange {
                start: 5100,
                end: 5109,
            },
        ])
        .unwrap();
        r
    }

    #[test]
    fn a_full_first_range_overflows_to_the_next_ranges_first_port() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mut got = Vec::new();
        for wt in ["/a", "/b", "/c"] {
            let ports = allocate_in(&mut data, &overflow(wt), &HoldMode::Reserve, &mut sys);
            got.push(ports.unwrap()["app"]);
        }
        assert_eq!(got, vec![5000, 5001, 5100]);
        // One worktree's services may span the ranges.
        let mut two = overflow("/d");
        two.services = vec!["a", "b"];
        let mut data = RegistryData::default();
        allocate_in(&mut data, &overflow("/a"), &HoldMode::Reserve, &mut sys).unwrap();
        let ports = allocate_in(&mut data, &two, &HoldMode::Reserve, &mut sys).unwrap();
        assert_eq!((ports["a"], ports["b"]), (5001, 5100));
    }

    #[test]
    fn a_conflict_in_the_first_range_fails_fast_naming_that_range_and_every_range() {
        let mut sys = Fake {
            occupied: [5001].into(),
            ..Fake::default()
        };
        let mut data = RegistryData::default();
        allocate_in(&mut data, &overflow("/a"), &HoldMode::Reserve, &mut sys).unwrap();
        let err = allocate_in(&mut data, &overflow("/b"), &HoldMode::Reserve, &mut sys)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "Port conflict detected in feature range 5000-5001.\n\
                 Ports free in registry but occupied on system: 5001.\n"
            ),
            "{err}"
        );
        assert!(err.contains("feature ranges 5000-5001, 5100-5109"), "{err}");
        assert_eq!(data.allocations.len(), 1, "nothing allocated");
        assert!(!sys.probes.contains(&5100), "the next range is not tried");

        let mut skip = overflow("/b");
        skip.skip_occupied = true;
        let ports = allocate_in(&mut data, &skip, &HoldMode::Reserve, &mut sys).unwrap();
        assert_eq!(ports["app"], 5100, "skip_occupied moves on");
    }

    #[test]
    fn every_range_exhausted_names_every_range() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mut r = overflow("/a");
        r.services = (0..13).map(|i| &*format!("s{i}").leak()).collect();
        let err = allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free port left in feature ranges 5000-5001, 5100-5109: \
             this worktree's services need 13 ports; the ranges hold 12"
        );
        assert!(
            err.hint()
                .unwrap()
                .starts_with("widen the ranges to at least 13 ports together")
        );
        assert!(data.allocations.is_empty());
    }

    /// Ranges another worktree filled are full, not too small: the
    /// message says no numbers. The worktree's own ports there count
    /// towards what it needs.
    #[test]
    fn ranges_too_small_only_when_the_worktrees_own_need_is_more() {
        let mut sys = Fake::default();
        let mut data = RegistryData::default();
        let mut other = overflow("/other");
        other.services = (0..11).map(|i| &*format!("s{i}").leak()).collect();
        allocate_in(&mut data, &other, &HoldMode::Reserve, &mut sys).unwrap();
        let mut r = overflow("/a");
        r.services = vec!["a", "b"];
        let err = allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free port left in feature ranges 5000-5001, 5100-5109"
        );
        assert!(err.hint().unwrap().starts_with("run 'wtenv validate"));
        // Its one port there and the 12 it lacks: 13.
        data.allocations.clear();
        let mut first = overflow("/a");
        first.services = vec!["a"];
        allocate_in(&mut data, &first, &HoldMode::Reserve, &mut sys).unwrap();
        r.services = (0..12).map(|i| &*format!("s{i}").leak()).collect();
        let err = allocate_in(&mut data, &r, &HoldMode::Reserve, &mut sys).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("need 13 ports; the ranges hold 12"),
            "{err}"
        );
    }
}
