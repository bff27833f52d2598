//! A transaction over part of the registry: what `allocate`, `env`,
//! `release` and `remove` change, without parsing, comparing and
//! rewriting every other worktree's entries.
//!
//! The part ([`Part`]) is one worktree's entries, and every entry with a
//! port in given ranges together with all the entries of its worktree.
//! Within those ranges the part is complete, so an allocation made in it
//! cannot take a port recorded elsewhere; a port outside them is checked
//! against the rest of the file before anything is written.
//!
//! In a sealed file (see [`super::seal`], and [`super::lines`] for how)
//! the rest is never parsed, nor held in memory: its
//! lines are framed and their ports read, in chunks (each must be
//! 1024-65535 and given once, as in the full parse), the part's lines are
//! found by binary search in the sorted file and parsed whole, and the new
//! file is the old one's lines, copied from it, with the part's replaced:
//! byte for byte what [`serialize`] writes for the whole data. Any other file (unsealed, missing, another
//! layout) is parsed whole, refused as ever when it cannot be trusted,
//! and split the same way: both paths give `f` the same entries.
//!
//! [`serialize`]: super::layout::serialize

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::layout;
use super::lines::{Lines, PortSet};
use super::{Allocation, MIN_PORT, Registry, RegistryData, VERSION, seal};
use crate::config::Ranges;
use crate::error::{Error, Result};
use crate::process::{printable, printable_path};

/// Which entries a [`Registry::transaction_in`] reads and may change.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// The worktree (of `repository`) whose entries are all in the part.
    pub repository: &'a Path,
    pub worktree: &'a Path,
    /// Every entry with a port in these is in the part, with every entry
    /// of its worktree.
    pub ports: Option<&'a Ranges>,
}

impl<'a> Part<'a> {
    /// The entries of one worktree (of `repository`), nothing else.
    pub fn of(repository: &'a Path, worktree: &'a Path) -> Part<'a> {
        Part {
            repository,
            worktree,
            ports: None,
        }
    }

    pub(super) fn covers(&self, port: u16) -> bool {
        self.ports.is_some_and(|r| r.contains(port))
    }
}

impl Registry {
    /// [`transaction`](Registry::transaction) over the part `part`
    /// picks: `f` sees only those entries, and may change, remove or add
    /// entries of their worktrees. Same lock, same refusals, same atomic
    /// sealed write, same stamps; the cost grows with the part, not with
    /// the registry (but for one read and one write of the file).
    pub fn transaction_in<T>(
        &self,
        part: Part,
        f: impl FnOnce(&mut RegistryData) -> Result<T>,
    ) -> Result<T> {
        self.ensure_dir()?;
        let _lock = self.lock(true)?;
        let file = self.open_checked()?;
        let mut bytes = None;
        if let Some((file, meta)) = &file {
            if seal::is_sealed(meta)
                && let Some(lines) = Lines::index(file).map_err(|e| self.read_error(e))?
                && let Some(found) = lines.part(&part).map_err(|e| self.read_error(e))?
            {
                tracing::debug!(
                    lines = lines.len(),
                    part = found.data.allocations.len(),
                    "registry: transaction on the part in scope"
                );
                return self.commit(found.data, f, |after| {
                    lines
                        .splice(&found.groups, after, |e| self.read_error(e))?
                        .ok_or_else(|| {
                            self.unusable(
                                "a line of it is not an allocation as wtenv writes it",
                                self.move_aside_hint(),
                            )
                        })
                });
            }
            bytes = Some(self.read_all(file, meta)?);
        }
        // Not sealed, or not as wtenv writes it: the full parse reads it,
        // or says exactly what is wrong.
        let all = match &bytes {
            Some(bytes) => self.parse(bytes)?,
            None => RegistryData::default(),
        };
        let picked: Vec<bool> = {
            let mut keys: HashSet<(&[u8], &[u8])> = all
                .allocations
                .iter()
                .filter(|a| part.covers(a.port))
                .map(Allocation::sort_key)
                .collect();
            keys.insert((
                part.repository.as_os_str().as_bytes(),
                part.worktree.as_os_str().as_bytes(),
            ));
            all.allocations
                .iter()
                .map(|a| keys.contains(&a.sort_key()))
                .collect()
        };
        let (mut mine, mut rest) = (Vec::new(), Vec::new());
        for (a, picked) in all.allocations.into_iter().zip(picked) {
            if picked {
                mine.push(a);
            } else {
                rest.push(a);
            }
        }
        let mut taken = PortSet::default();
        for a in &rest {
            taken.insert(a.port);
        }
        let data = RegistryData {
            version: VERSION,
            allocations: mine,
        };
        self.commit(data, f, |after| {
            check_new_ports(after, |p| taken.contains(p))?;
            rest.extend(after.allocations.iter().cloned());
            layout::serialize(&RegistryData {
                version: VERSION,
                allocations: rest,
            })
            .map(layout::Pieces::from)
        })
    }
}

/// What a transaction may not record, whatever `f` did: a port below
/// 1024, one port twice in the part, or a port `elsewhere` says the rest
/// of the file records. Checked before anything is written.
pub(super) fn check_new_ports(data: &RegistryData, elsewhere: impl Fn(u16) -> bool) -> Result<()> {
    let mut seen = PortSet::default();
    for a in &data.allocations {
        if a.port < MIN_PORT || !seen.insert(a.port) || elsewhere(a.port) {
            return Err(Error::failed(format!(
                "refusing to record port {} for service {} of {}: the registry would hold it twice or out of range",
                a.port,
                printable(&a.service),
                printable_path(&a.worktree)
            ))
            .with_hint("nothing was written; run 'wtenv validate' and report this as a bug"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;
    use crate::config::PortRange;
    use crate::registry::samples::*;

    /// Ports 5000-5009.
    fn range() -> Ranges {
        Ranges::one(PortRange {
            start: 5000,
            end: 5009,
        })
    }

    /// Service `s<port>` of `worktree` (one port per service).
    fn entry(port: u16, worktree: &str) -> Allocation {
        Allocation {
            worktree: worktree.into(),
            service: format!("s{port}"),
            ..alloc(port)
        }
    }

    fn part<'a>(worktree: &'a Path, ports: Option<&'a Ranges>) -> Part<'a> {
        Part {
            repository: Path::new(REPO),
            worktree,
            ports,
        }
    }

    /// A registry holding `allocations` as wtenv writes it (sorted,
    /// sealed), or, `sealed` off, the same bytes written by something
    /// else.
    fn holding(allocations: Vec<Allocation>, sealed: bool) -> (tempfile::TempDir, Registry) {
        let (dir, reg) = registry();
        std::fs::write(reg.path(), written(allocations)).unwrap();
        if sealed {
            let file = std::fs::File::options()
                .write(true)
                .open(reg.path())
                .unwrap();
            seal::stamp(&file).unwrap();
        }
        let meta = std::fs::metadata(reg.path()).unwrap();
        assert_eq!(seal::is_sealed(&meta), sealed);
        (dir, reg)
    }

    fn ports(data: &RegistryData) -> Vec<u16> {
        let mut ports: Vec<u16> = data.allocations.iter().map(|a| a.port).collect();
        ports.sort_unstable();
        ports
    }

    #[test]
    fn the_part_is_the_worktrees_entries_and_every_one_in_range_with_its_worktrees() {
        let all = vec![
            entry(5000, "/a"),
            entry(6000, "/a"),
            entry(6001, "/b"),
            entry(6002, WT),
            entry(5005, "/z"),
            entry(6003, "/z"),
            entry(7000, "/y"),
        ];
        let range = range();
        for sealed in [true, false] {
            let (_d, reg) = holding(all.clone(), sealed);
            let seen = reg
                .transaction_in(part(Path::new(WT), Some(&range)), |d| Ok(d.clone()))
                .unwrap();
            assert_eq!(
                ports(&seen),
                [5000, 5005, 6000, 6002, 6003],
                "sealed: {sealed}"
            );
            let own = reg
                .transaction_in(part(Path::new("/b"), None), |d| Ok(d.clone()))
                .unwrap();
            assert_eq!(ports(&own), [6001], "sealed: {sealed}");
            let none = reg
                .transaction_in(part(Path::new("/new"), None), |d| Ok(d.clone()))
                .unwrap();
            assert!(none.allocations.is_empty());
        }
    }

    #[test]
    fn a_port_recorded_outside_the_part_is_never_written_twice() {
        let all = vec![entry(6000, "/a"), entry(5000, WT)];
        for sealed in [true, false] {
            let (_d, reg) = holding(all.clone(), sealed);
            let before = std::fs::read(reg.path()).unwrap();
            for bad in [6000, 5000, 80] {
                let err = reg
                    .transaction_in(part(Path::new(WT), None), |d| {
                        d.allocations.push(entry(bad, WT));
                        Ok(())
                    })
                    .unwrap_err();
                assert!(err.to_string().contains("refusing to record port"), "{err}");
                assert_eq!(std::fs::read(reg.path()).unwrap(), before);
            }
        }
    }

    #[test]
    fn an_unsealed_file_is_read_whole_and_the_write_seals_it() {
        let (_d, reg) = holding(vec![entry(6000, "/a"), entry(5000, WT)], false);
        reg.transaction_in(part(Path::new(WT), None), |d| {
            d.allocations.push(entry(5001, WT));
            Ok(())
        })
        .unwrap();
        let meta = std::fs::metadata(reg.path()).unwrap();
        assert!(seal::is_sealed(&meta));
        assert_eq!(ports(&reg.read().unwrap()), [5000, 5001, 6000]);
    }

    #[test]
    fn a_sealed_file_whose_lines_are_not_what_wtenv_writes_is_read_whole_and_refused() {
        // Sealed all the same (only a forger can): the ports the index
        // reads, and the lines the part parses, are checked.
        let other = ENTRY.replace("\"/r\"", "\"/z\"").replace(" ", "");
        let mine = ENTRY.replace(" ", "");
        for (text, reason) in [
            (layout_of(&[&mine, &other]), "twice"),
            (
                layout_of(&[&mine.replace("5000", "80")]),
                "outside 1024-65535",
            ),
            (
                layout_of(&[&mine.replace("}", ",\"x\":1}")]),
                "newer wtenv: line 2 has a field this wtenv does not know, `x`",
            ),
            (layout_of(&[&mine.replace("5000", "99999")]), "schema"),
        ] {
            let (_d, reg) = registry();
            std::fs::write(reg.path(), &text).unwrap();
            seal::stamp(
                &std::fs::File::options()
                    .write(true)
                    .open(reg.path())
                    .unwrap(),
            )
            .unwrap();
            let err = reg
                .transaction_in(part(Path::new(WT), None), |d| {
                    d.allocations.clear();
                    Ok(())
                })
                .unwrap_err();
            assert!(matches!(err, Error::RegistryUnusable { .. }), "{err}");
            assert!(err.to_string().contains(reason), "{err} lacks {reason}");
            assert_eq!(std::fs::read_to_string(reg.path()).unwrap(), text);
        }
    }

    /// What the test does to its part: drop some entries, add one of its
    /// own worktree on a port free in the range (the part holds all of
    /// them when `ranged`; else on a port no entry has), flip the rest.
    fn change(d: &mut RegistryData, own: &Path, drop: &[bool], ranged: bool) {
        let mut i = 0;
        d.allocations.retain(|_| {
            i += 1;
            !drop.get(i - 1).copied().unwrap_or(false)
        });
        let free = match ranged {
            true => (5000..=5009).find(|p| d.allocations.iter().all(|a| a.port != *p)),
            false => Some(7000),
        };
        if let Some(port) = free {
            // A fixed time: both runs must write the same bytes. A
            // service no generated entry has (upper case).
            d.allocations.push(Allocation {
                worktree: PathBuf::from(own),
                service: "ADDED".into(),
                created: "2026-01-01T00:00:00Z".into(),
                ..alloc(port)
            });
        }
        for a in &mut d.allocations {
            a.reserved = !a.reserved;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A sealed file (framed in chunks, the part's lines read and
        /// spliced into runs of the rest copied from the old file) and the
        /// same file unsealed (parsed whole, split, serialized whole) give
        /// the transaction the same part and end as the same bytes. Some
        /// lines are long: the file then spans several chunks, and lines
        /// and kept runs cross their edges.
        #[test]
        fn sealed_and_unsealed_files_give_the_same_part_and_the_same_file(
            mut allocations in prop::collection::vec(allocation(), 0..24),
            long in prop::collection::vec(prop::option::weighted(0.3, 0usize..40_000), 24),
            which in prop::sample::select(vec![WT, "/r/other", "/r/a", "/a", "/z", "/new"]),
            in_range in prop::collection::vec(any::<bool>(), 24),
            drop in prop::collection::vec(any::<bool>(), 24),
            ranged in any::<bool>(),
        ) {
            // Distinct ports, none below 1024; some in 5000-5009; one
            // port per service of a worktree.
            one_per_service(&mut allocations);
            for (i, a) in allocations.iter_mut().enumerate() {
                a.port = if in_range[i] && i < 10 { 5000 + i as u16 } else { 6000 + i as u16 };
                if let Some(n) = long[i] {
                    a.created.push_str(&"x".repeat(n));
                }
            }
            let range = range();
            let own = Path::new(which);
            let ports = ranged.then_some(&range);
            let mut results = Vec::new();
            for sealed in [true, false] {
                let (_d, reg) = holding(allocations.clone(), sealed);
                let seen = reg
                    .transaction_in(part(own, ports), |d| {
                        let seen = d.clone();
                        change(d, own, &drop, ranged);
                        Ok(seen)
                    })
                    .unwrap();
                let bytes = std::fs::read(reg.path()).unwrap();
                prop_assert!(seal::is_sealed(&std::fs::metadata(reg.path()).unwrap()));
                results.push((seen, bytes));
            }
            prop_assert_eq!(&results[0].0, &results[1].0);
            prop_assert_eq!(
                String::from_utf8_lossy(&results[0].1),
                String::from_utf8_lossy(&results[1].1)
            );
            // Complete in its ranges, and holding all of its worktree.
            let seen = &results[0].0;
            for a in &allocations {
                let wanted = a.belongs_to(Path::new(REPO), own) || (ranged && range.contains(a.port));
                prop_assert!(!wanted || seen.allocations.contains(a), "{a:?} missing");
            }
            // With every entry of each of its worktrees.
            for a in &allocations {
                let with = seen.allocations.iter().any(|b| b.sort_key() == a.sort_key());
                prop_assert!(!with || seen.allocations.contains(a), "{a:?} missing");
            }
            // The file is what the full serializer writes for its data.
            let whole: RegistryData = serde_json::from_slice(&results[0].1).unwrap();
            prop_assert_eq!(written(whole.allocations), results[0].1.clone());
        }
    }
}
