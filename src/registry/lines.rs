//! A sealed registry file as its lines: framed and its ports read in
//! fixed chunks through one buffer (never the whole file in memory), the
//! part a [`Part`] picks found by binary search and parsed (positioned
//! reads of its lines only), and the new file spliced from runs of the
//! old one's lines, copied from it as they stand, and the part's new
//! entries.

use std::cmp::Ordering;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::layout::{self, Pieces, Writer};
use super::part::{Part, check_new_ports};
use super::record::{self, Key};
use super::{Allocation, MIN_PORT, RegistryData, VERSION};
use crate::error::{Error, Result};

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

/// A file in the layout wtenv writes, as its lines: where each
/// allocation's object is in the file, and its port. Only what
/// [`Lines::part`] picks, and the lines a binary search lands on, are
/// read again (positioned reads) and parsed.
pub struct Lines<'f> {
    file: &'f File,
    /// Each line's JSON object (no indent, comma or newline).
    objects: Vec<Range<u64>>,
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

/// How much of the file one read brings while it is framed: the buffer,
/// reused, is all the memory the framing takes but for the index itself.
const CHUNK: usize = 64 * 1024;

/// Where the framing is: which line may come next.
#[derive(PartialEq)]
enum Frame {
    Header,
    /// After the header: an allocation's line.
    First,
    /// After a line with a comma: another one.
    More,
    /// After a line without one: the footer.
    Last,
    /// After the footer (or the empty file's one line): nothing.
    End,
}

impl<'f> Lines<'f> {
    /// `file` (read from its start, in chunks) as its lines; `None` when
    /// it is not exactly the framing `serialize` writes, or a line's port
    /// is not one of 1024-65535 given once.
    pub fn index(file: &'f File) -> io::Result<Option<Lines<'f>>> {
        Lines::index_by(file, CHUNK)
    }

    fn index_by(file: &'f File, chunk: usize) -> io::Result<Option<Lines<'f>>> {
        let header = layout::header(VERSION);
        let empty = [header.as_bytes(), layout::FOOTER].concat();
        let footer = &layout::FOOTER[..layout::FOOTER.len() - 1];
        let mut lines = Lines {
            file,
            objects: Vec::new(),
            ports: Vec::new(),
            all: PortSet::default(),
        };
        let mut frame = Frame::Header;
        // `buf[..held]` are the file's bytes from `base`: the start of a
        // line not read whole yet.
        let mut buf = vec![0; chunk];
        let (mut base, mut held) = (0u64, 0);
        loop {
            if held == buf.len() {
                // A line longer than the buffer.
                buf.resize(held + chunk, 0);
            }
            let read = match file.read_at(&mut buf[held..], base + held as u64) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &buf[held..held + read]) {
                let nl = held + nl;
                let line = &buf[start..nl];
                let at = base + start as u64;
                frame = match frame {
                    Frame::Header if line == header.as_bytes() => Frame::First,
                    Frame::Header if line == &empty[..empty.len() - 1] => Frame::End,
                    Frame::First | Frame::More => match lines.push(line, at) {
                        Some(true) => Frame::More,
                        Some(false) => Frame::Last,
                        None => return Ok(None),
                    },
                    Frame::Last if line == footer => Frame::End,
                    _ => return Ok(None),
                };
                start = nl + 1;
            }
            held += read;
            buf.copy_within(start..held, 0);
            base += start as u64;
            held -= start;
        }
        // The footer's newline ends the file.
        Ok((frame == Frame::End && held == 0).then_some(lines))
    }

    /// Indexes the allocation's `line`, at `at` in the file: whether a
    /// comma ends it (another line follows); `None` when it is not one.
    fn push(&mut self, line: &[u8], at: u64) -> Option<bool> {
        let object = line.strip_prefix(layout::INDENT)?;
        let (object, comma) = match object.strip_suffix(b",") {
            Some(object) => (object, true),
            None => (object, false),
        };
        if !object.ends_with(b"}") {
            return None;
        }
        let port = port_of(object)?;
        if port < MIN_PORT || !self.all.insert(port) {
            return None;
        }
        let start = at + layout::INDENT.len() as u64;
        self.objects.push(start..start + object.len() as u64);
        self.ports.push(port);
        Some(comma)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Line `i`'s object, read again from the file.
    fn object(&self, i: usize) -> io::Result<Vec<u8>> {
        let range = &self.objects[i];
        let mut bytes = vec![0; (range.end - range.start) as usize];
        self.file.read_exact_at(&mut bytes, range.start)?;
        Ok(bytes)
    }

    /// Line `i`'s entry; `None` when it is not an allocation.
    fn entry(&self, i: usize) -> io::Result<Option<Allocation>> {
        Ok(record::parse(&self.object(i)?).map(record::AllocationView::into_owned))
    }

    /// Where line `i`'s entry stands to `key`.
    fn order(&self, i: usize, key: &Key) -> io::Result<Option<Ordering>> {
        Ok(record::parse(&self.object(i)?).map(|a| key.order(&a)))
    }

    /// The first line whose entry is not below `key` (`strict`: above it).
    fn bound(&self, key: &Key, strict: bool) -> io::Result<Option<usize>> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let below = match self.order(mid, key)? {
                None => return Ok(None),
                Some(Ordering::Less) => true,
                Some(Ordering::Equal) => strict,
                Some(Ordering::Greater) => false,
            };
            if below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }

    /// The run of lines of `key`'s worktree (empty where they would go).
    fn group(&self, key: &Key) -> io::Result<Option<Range<usize>>> {
        let Some(start) = self.bound(key, false)? else {
            return Ok(None);
        };
        Ok(self.bound(key, true)?.map(|end| start..end))
    }

    /// The lines `part` picks, parsed whole; `None` when one of
    /// them is not an allocation as [`Allocation`] reads it.
    pub fn part(&self, part: &Part) -> io::Result<Option<Found>> {
        let Some(own) = self.group(&Key::new(part.repository, part.worktree))? else {
            return Ok(None);
        };
        let mut groups = vec![own];
        for i in 0..self.len() {
            if !part.covers(self.ports[i]) || groups.iter().any(|g| g.contains(&i)) {
                continue;
            }
            let Some(a) = self.entry(i)? else {
                return Ok(None);
            };
            match self.group(&Key::new(&a.repository, &a.worktree))? {
                Some(group) => groups.push(group),
                None => return Ok(None),
            }
        }
        groups.sort_by_key(|g| g.start);
        let mut allocations = Vec::new();
        for i in groups.iter().flat_map(Clone::clone) {
            match self.entry(i)? {
                Some(a) => allocations.push(a),
                None => return Ok(None),
            }
        }
        Ok(Some(Found {
            groups,
            data: RegistryData {
                version: VERSION,
                allocations,
            },
        }))
    }

    /// The file with the lines of `groups` replaced by `after`'s entries,
    /// each where its key sorts (after the lines of an equal key that
    /// stay): byte for byte what [`layout::serialize`] writes for the
    /// whole data. `Ok(None)` when a line it compares with is not an
    /// allocation; `read_error` says why the file could not be read.
    /// The lines kept are runs of the file, copied from it when written.
    pub fn splice(
        &self,
        groups: &[Range<usize>],
        after: &RegistryData,
        read_error: impl Fn(io::Error) -> Error,
    ) -> Result<Option<Pieces<'f>>> {
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
                let key = Key::new(&a.repository, &a.worktree);
                match self.bound(&key, true).map_err(&read_error)? {
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
    fn keep(&self, out: &mut Writer<'f>, run: Option<Range<usize>>) {
        if let Some(run) = run {
            let bytes = self.objects[run.start].start..self.objects[run.end - 1].end;
            out.lines(self.file, bytes, run.len());
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
    use std::io::{Read, Seek, Write};
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::registry::layout::Piece;
    use crate::registry::samples::*;

    /// A file of `bytes`, sealed as wtenv seals what it writes.
    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        crate::registry::seal::stamp(&file).unwrap();
        file
    }

    /// What `pieces` write, as a file would hold it.
    fn bytes_of(pieces: &Pieces) -> Vec<u8> {
        let mut out = tempfile::tempfile().unwrap();
        pieces.write_to(&mut out).unwrap();
        let mut bytes = Vec::new();
        out.rewind().unwrap();
        out.read_to_end(&mut bytes).unwrap();
        bytes
    }

    /// What an index holds: each line's object and port.
    fn framed(lines: &Lines) -> Vec<(Vec<u8>, u16)> {
        (0..lines.len())
            .map(|i| (lines.object(i).unwrap(), lines.ports[i]))
            .collect()
    }

    /// `n` worktrees of one port each: `/w0000` has 10000, and so on.
    fn fleet(n: u16) -> Vec<Allocation> {
        (0..n)
            .map(|i| Allocation {
                worktree: format!("/w{i:04}").into(),
                ..alloc(10_000 + i)
            })
            .collect()
    }

    /// Worktree `i`'s part of `lines`, and the pieces of the file with its
    /// port moved to 20000.
    fn moved<'f>(lines: &Lines<'f>, i: u16) -> (Found, Pieces<'f>) {
        let wt = format!("/w{i:04}");
        let found = lines
            .part(&Part::of(Path::new(REPO), Path::new(&wt)))
            .unwrap()
            .unwrap();
        let mut after = found.data.clone();
        after.allocations[0].port = 20_000;
        let pieces = lines
            .splice(&found.groups, &after, |e| panic!("{e}"))
            .unwrap()
            .unwrap();
        (found, pieces)
    }

    /// A transaction on a large file changes one line: the file it writes
    /// is the kept lines as two runs of the old file (before and after
    /// the change), copied from it, and never read into memory whole.
    #[test]
    fn the_kept_lines_are_copied_from_the_old_file() {
        let all = fleet(1000);
        let bytes = written(all.clone());
        assert!(
            bytes.len() > 2 * CHUNK,
            "{} bytes: framed in chunks",
            bytes.len()
        );
        let file = file_of(&bytes);
        let lines = Lines::index(&file).unwrap().unwrap();
        assert_eq!(lines.len(), all.len());
        let (found, pieces) = moved(&lines, 500);
        assert_eq!(found.data.allocations, [all[500].clone()]);

        let copied: Vec<&Range<u64>> = pieces
            .0
            .iter()
            .filter_map(|p| match p {
                Piece::Copy(_, range) => Some(range),
                Piece::Bytes(_) => None,
            })
            .collect();
        assert_eq!(copied.len(), 2, "{} pieces", pieces.0.len());
        let kept: u64 = copied.iter().map(|r| r.end - r.start).sum();
        let line = (bytes.len() / all.len()) as u64;
        assert!(
            kept > bytes.len() as u64 - 2 * line,
            "{kept} of {} bytes",
            bytes.len()
        );

        let mut expected = all;
        expected[500].port = 20_000;
        assert_eq!(bytes_of(&pieces), written(expected));
    }

    /// A line rewritten in place while the transaction runs, by a program
    /// that ignores the lock, is not copied into the new file: the write
    /// fails, so nothing is renamed in.
    #[test]
    fn a_file_written_since_it_was_indexed_is_not_copied_from() {
        let bytes = written(fleet(3));
        let file = file_of(&bytes);
        let lines = Lines::index(&file).unwrap().unwrap();
        let (_, pieces) = moved(&lines, 1);
        assert_eq!(bytes_of(&pieces).len(), bytes.len(), "sealed: copied");

        // Another worktree's port, changed in place: the same length, so
        // only the seal tells.
        let at = memchr::memmem::find(&bytes, b"10000").unwrap() as u64;
        file.write_all_at(b"10009", at).unwrap();
        let mut out = tempfile::tempfile().unwrap();
        let err = pieces.write_to(&mut out).unwrap_err();
        assert!(err.to_string().contains("ignores wtenv's lock"), "{err}");
    }

    #[test]
    fn what_serialize_does_not_write_is_not_framed() {
        let one = layout_of(&[&ENTRY.replace(" ", "")]);
        let two = layout_of(&[
            &ENTRY.replace(" ", ""),
            &ENTRY.replace(" ", "").replace("5000", "5001"),
        ]);
        let empty = String::from_utf8(written(vec![])).unwrap();
        for good in [&one, &two, &empty] {
            for chunk in [1, 2, 7, 64, CHUNK] {
                let file = file_of(good.as_bytes());
                assert!(Lines::index_by(&file, chunk).unwrap().is_some(), "{good}");
            }
        }
        for damaged in [
            two.replace("]}\n", "]}"),
            two.replace(",\n", "\n"),
            two.replace("\n  {", "\n {"),
            two.replace("}\n]", "},\n]"),
            two.replace("\"allocations\": [", "\"allocations\":["),
            two.replace("5001", "5000"),
            two.replace("5001", "80"),
            two.replace("5001", "05001"),
            two.replace("5001", "65536"),
            format!("{two}\n"),
            format!("{two}x"),
            format!("{empty}\n"),
            empty.replace("]}", "\n]}"),
            one.replace("\n]}", "]}"),
            String::new(),
        ] {
            for chunk in [1, 2, 7, 64, CHUNK] {
                let file = file_of(damaged.as_bytes());
                assert!(
                    Lines::index_by(&file, chunk).unwrap().is_none(),
                    "{damaged}"
                );
            }
        }
    }

    proptest! {
        /// Framed in chunks of any size, lines cut anywhere: the same
        /// objects and ports as framed in one read, each the line's own
        /// object as `serialize` wrote it.
        #[test]
        fn any_chunk_frames_the_same_lines(
            allocations in prop::collection::vec(allocation(), 0..24),
            chunk in 1usize..400,
        ) {
            let mut allocations = allocations;
            for (i, a) in allocations.iter_mut().enumerate() {
                a.port = 1024 + 8 * i as u16 + a.port % 8;
            }
            let bytes = written(allocations.clone());
            let file = file_of(&bytes);
            let whole = Lines::index_by(&file, bytes.len() + 1).unwrap().unwrap();
            let cut = Lines::index_by(&file, chunk).unwrap().unwrap();
            prop_assert_eq!(framed(&cut), framed(&whole));
            let mut sorted = allocations;
            sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            for (i, a) in sorted.iter().enumerate() {
                prop_assert_eq!(&cut.entry(i).unwrap().unwrap(), a);
                prop_assert_eq!(cut.ports[i], a.port);
            }
        }
    }
}
