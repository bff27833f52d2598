//! A sealed registry file in memory, as its lines: the part a
//! [`Part`] picks found by binary search and parsed, the rest only framed
//! and its ports read, and the new file spliced from the old one's lines
//! and the part's new entries.

use std::cmp::Ordering;
use std::ops::Range;
use std::path::Path;

use super::layout::{self, Pieces, Writer};
use super::part::{Part, check_new_ports};
use super::record::{self, Key};
use super::{Allocation, MIN_PORT, RegistryData, VERSION};
use crate::error::Result;

/// One bit per port.
pub struct PortSet(Vec<u64>);

impl Default for PortSet {
    fn default() -> Self {
        PortSet(vec![0; 1 << 10])
    }
}

impl PortSet {
    /// `false` when it was already there.
    pub fn insert(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port) / 64, 1u64 << (port % 64));
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    pub fn remove(&mut self, port: u16) {
        self.0[usize::from(port) / 64] &= !(1u64 << (port % 64));
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port) / 64] & (1u64 << (port % 64)) != 0
    }
}

/// A file in the layout wtenv writes, in memory, as its lines: where each
/// allocation's object is, and its port.
pub struct Lines<'b> {
    bytes: &'b [u8],
    /// Each line's JSON object (no indent, comma or newline).
    objects: Vec<Range<usize>>,
    ports: Vec<u16>,
    /// Every port of the file.
    all: PortSet,
}

/// The lines of a [`Lines`] a [`Part`] picks, and their entries.
pub struct Found {
    /// Runs of lines, one per worktree of the part, in file order.
    pub groups: Vec<Range<usize>>,
    pub data: RegistryData,
}

/// How every line's object starts: `serialize` writes the port first.
const PORT_FIELD: &[u8] = b"{\"port\":";

impl<'b> Lines<'b> {
    /// `None` when `bytes` is not exactly the framing `serialize` writes,
    /// or a line's port is not one of 1024-65535 given once.
    pub fn index(bytes: &'b [u8]) -> Option<Lines<'b>> {
        let header = layout::header(VERSION);
        let mut lines = Lines {
            bytes,
            objects: Vec::new(),
            ports: Vec::new(),
            all: PortSet::default(),
        };
        if bytes == [header.as_bytes(), layout::FOOTER].concat() {
            return Some(lines);
        }
        let body = bytes
            .strip_prefix(header.as_bytes())?
            .strip_prefix(b"\n")?
            .strip_suffix(layout::FOOTER)?;
        let start = header.len() + 1;
        let mut at = start;
        let mut more = true;
        for nl in memchr::memchr_iter(b'\n', body) {
            let line = &body[at - start..nl];
            let object_start = at + layout::INDENT.len();
            let object = line.strip_prefix(layout::INDENT)?;
            let (object, comma) = match object.strip_suffix(b",") {
                Some(object) => (object, true),
                None => (object, false),
            };
            if !more || !object.ends_with(b"}") {
                return None;
            }
            more = comma;
            let port = port_of(object)?;
            if port < MIN_PORT || !lines.all.insert(port) {
                return None;
            }
            lines
                .objects
                .push(object_start..object_start + object.len());
            lines.ports.push(port);
            at = start + nl + 1;
        }
        // The last line ends the body, without a comma.
        (!more && at - start == body.len()).then_some(lines)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    fn object(&self, i: usize) -> &'b [u8] {
        &self.bytes[self.objects[i].clone()]
    }

    /// Where line `i`'s entry stands to `key`.
    fn order(&self, i: usize, key: &Key) -> Option<Ordering> {
        record::parse(self.object(i)).map(|a| key.order(&a))
    }

    /// The first line whose entry is not below `key` (`strict`: above it).
    fn bound(&self, key: &Key, strict: bool) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let below = match self.order(mid, key)? {
                Ordering::Less => true,
                Ordering::Equal => strict,
                Ordering::Greater => false,
            };
            if below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// The run of lines of `key`'s worktree (empty where they would go).
    fn group(&self, key: &Key) -> Option<Range<usize>> {
        Some(self.bound(key, false)?..self.bound(key, true)?)
    }

    /// The lines `part` picks, parsed whole; `None` when one of
    /// them is not an allocation as [`Allocation`] reads it.
    pub fn part(&self, part: &Part) -> Option<Found> {
        let mut groups = vec![self.group(&Key::new(part.repository, part.worktree))?];
        for i in 0..self.len() {
            if !part.covers(self.ports[i]) || groups.iter().any(|g| g.contains(&i)) {
                continue;
            }
            let a = record::parse(self.object(i))?;
            let key = Key::new(Path::new(&*a.repository), Path::new(&*a.worktree));
            groups.push(self.group(&key)?);
        }
        groups.sort_by_key(|g| g.start);
        let mut allocations = Vec::new();
        for i in groups.iter().flat_map(Clone::clone) {
            allocations.push(record::parse(self.object(i))?.into_owned());
        }
        Some(Found {
            groups,
            data: RegistryData {
                version: VERSION,
                allocations,
            },
        })
    }

    /// The file with the lines of `groups` replaced by `after`'s entries,
    /// each where its key sorts (after the lines of an equal key that
    /// stay): byte for byte what [`layout::serialize`] writes for the
    /// whole data. `Ok(None)` when a line it compares with is not an
    /// allocation.
    /// The lines kept are runs of the file's own bytes, not copies.
    pub fn splice(
        &self,
        groups: &[Range<usize>],
        after: &RegistryData,
    ) -> Result<Option<Pieces<'b>>> {
        let mut rest = PortSet(self.all.0.clone());
        let mut replaced = vec![false; self.len()];
        for i in groups.iter().flat_map(Clone::clone) {
            rest.remove(self.ports[i]);
            replaced[i] = true;
        }
        check_new_ports(after, |p| rest.contains(p))?;
        let mut entries: Vec<&Allocation> = after.allocations.iter().collect();
        entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        // Where each entry goes: before the first line whose key is above
        // its own (one binary search per worktree).
        let mut at = Vec::with_capacity(entries.len());
        for (i, a) in entries.iter().enumerate() {
            let pos = if i > 0 && entries[i - 1].sort_key() == a.sort_key() {
                at[i - 1]
            } else {
                match self.bound(&Key::new(&a.repository, &a.worktree), true) {
                    Some(pos) => pos,
                    None => return Ok(None),
                }
            };
            at.push(pos);
        }
        let mut out = Writer::new(VERSION, 256 * entries.len() + 64);
        let mut next = entries.iter().zip(&at).peekable();
        // The kept lines since the last entry written or line replaced.
        let mut run: Option<Range<usize>> = None;
        for (i, replaced) in replaced.iter().enumerate() {
            if *replaced || next.peek().is_some_and(|(_, pos)| **pos == i) {
                self.keep(&mut out, run.take());
            }
            while let Some((a, _)) = next.next_if(|(_, pos)| **pos == i) {
                out.entry(a)?;
            }
            if !replaced {
                run = Some(run.map_or(i..i + 1, |r| r.start..i + 1));
            }
        }
        self.keep(&mut out, run);
        for (a, _) in next {
            out.entry(a)?;
        }
        Ok(Some(out.finish()))
    }

    /// Lines `run` as they stand in the file.
    fn keep(&self, out: &mut Writer<'b>, run: Option<Range<usize>>) {
        if let Some(run) = run {
            let bytes = &self.bytes[self.objects[run.start].start..self.objects[run.end - 1].end];
            out.lines(bytes, run.len());
        }
    }
}

/// The port at the start of a line's object: `{"port":N,`.
fn port_of(object: &[u8]) -> Option<u16> {
    let rest = object.strip_prefix(PORT_FIELD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=5).contains(&digits) || rest.get(digits) != Some(&b',') || rest[0] == b'0' {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::registry::samples::{REPO, alloc, written};

    /// A transaction on a large file changes one line: the file it writes
    /// is the kept lines as two slices of the old file (before and after
    /// the change), not a second copy of the file built in memory.
    #[test]
    fn the_kept_lines_are_written_from_the_files_own_bytes() {
        let worktree = |i: u16| format!("/w{i:04}");
        let all: Vec<Allocation> = (0..1000)
            .map(|i| Allocation {
                worktree: worktree(i).into(),
                ..alloc(10_000 + i)
            })
            .collect();
        let file = written(all.clone());
        let lines = Lines::index(&file).unwrap();
        let wt = worktree(500);
        let found = lines
            .part(&Part::of(Path::new(REPO), Path::new(&wt)))
            .unwrap();
        assert_eq!(found.data.allocations.len(), 1);
        let mut after = found.data.clone();
        after.allocations[0].port = 20_000;
        let pieces = lines.splice(&found.groups, &after).unwrap().unwrap();

        let borrowed: Vec<&[u8]> = pieces
            .0
            .iter()
            .filter_map(|p| match p {
                Cow::Borrowed(b) => Some(*b),
                Cow::Owned(_) => None,
            })
            .collect();
        assert_eq!(borrowed.len(), 2, "{} pieces", pieces.0.len());
        let kept: usize = borrowed.iter().map(|b| b.len()).sum();
        let line = file.len() / all.len();
        assert!(
            kept > file.len() - 2 * line,
            "{kept} of {} bytes",
            file.len()
        );
        for b in borrowed {
            let at = b.as_ptr() as usize - file.as_ptr() as usize;
            assert!(at + b.len() <= file.len(), "a slice of the file itself");
        }

        let mut expected = all;
        expected[500].port = 20_000;
        assert_eq!(pieces.concat(), written(expected));
    }
}
