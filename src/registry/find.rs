//! One worktree's allocations in a sealed registry, found by binary search
//! with positioned reads: `env`'s hot path on a registry of any size.

use std::cmp::Ordering;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::record::{self, Key};
use super::{Allocation, RegistryData, VERSION, layout};
use crate::config::MIN_PORT;

/// The entries of `worktree` (of `repository`) in a sealed file
/// ([`super::seal`]) of `len` bytes, found by binary search with
/// positioned reads: about log2(n) lines are read and parsed, whatever the
/// size of the registry, so `env` on every `cd` does not grow with other
/// worktrees' allocations. The lines it reads are checked as
/// [`read_lines`](super::view::read_lines) checks them (layout, schema, order); the rest of the
/// file is vouched for by the seal.
/// `Ok(None)` when anything is not as `serialize` writes it: the caller
/// then reads the file whole, which accepts or says what is wrong.
pub fn find(file: &File, len: u64, key: Key) -> io::Result<Option<(RegistryData, usize)>> {
    let mut at = At {
        file,
        len,
        buf: Vec::new(),
        from: 0,
    };
    let header = layout::header(VERSION);
    let empty = [header.as_bytes(), layout::FOOTER].concat();
    let data = |allocations| RegistryData {
        version: VERSION,
        allocations,
    };
    if len == empty.len() as u64 {
        let whole = at.slice(0, len)?;
        return Ok((whole == Some(&empty[..])).then(|| (data(Vec::new()), 0)));
    }
    // The header's line, then lines of allocations, then the footer's line.
    let body = header.len() as u64 + 1;
    let Some(end) = len.checked_sub(layout::FOOTER.len() as u64) else {
        return Ok(None);
    };
    if end <= body
        || at.slice(0, body)? != Some(&[header.as_bytes(), b"\n"].concat()[..])
        || at.slice(end - 1, len)? != Some(&[b"\n", layout::FOOTER].concat()[..])
    {
        return Ok(None);
    }
    let mut parsed = 0;
    // The first line whose key is not below ours: every line starting
    // before `lo` is below it, every line starting at or after `hi` is not.
    let (mut lo, mut hi) = (body, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some(start) = at.line_start(mid, body)? else {
            return Ok(None);
        };
        if start >= hi {
            hi = mid;
            continue;
        }
        let Some((order, _, next)) = at.entry(start, end, &key)? else {
            return Ok(None);
        };
        parsed += 1;
        if order == Ordering::Less {
            lo = next;
        } else {
            hi = start;
        }
    }
    // Ours, one after the other, up to the first line above ours.
    let mut allocations: Vec<Allocation> = Vec::new();
    let mut start = lo;
    while start < end {
        let Some((order, mine, next)) = at.entry(start, end, &key)? else {
            return Ok(None);
        };
        parsed += 1;
        match (order, mine) {
            (Ordering::Equal, Some(a)) => {
                if a.port < MIN_PORT || allocations.iter().any(|b| b.port == a.port) {
                    return Ok(None);
                }
                allocations.push(a);
                start = next;
            }
            (Ordering::Greater, _) => break,
            // Not sorted: not what wtenv writes.
            _ => return Ok(None),
        }
    }
    Ok(Some((data(allocations), parsed)))
}

/// Positioned reads of a file of `len` bytes through one small window.
struct At<'f> {
    file: &'f File,
    len: u64,
    buf: Vec<u8>,
    /// Where `buf` starts in the file.
    from: u64,
}

/// One read brings a few lines (about 200 bytes each).
const WINDOW: u64 = 2048;

impl At<'_> {
    /// The bytes `start..end`; `None` past the end of the file.
    fn slice(&mut self, start: u64, end: u64) -> io::Result<Option<&[u8]>> {
        if end > self.len || start > end {
            return Ok(None);
        }
        let covered = start >= self.from && end <= self.from + self.buf.len() as u64;
        if !covered {
            let want = (end - start).max(WINDOW).min(self.len - start);
            self.buf.resize(want as usize, 0);
            match self.file.read_exact_at(&mut self.buf, start) {
                Ok(()) => self.from = start,
                // Shorter than its length said: changed under us (only a
                // writer that ignores the lock can): not ours.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.buf.clear();
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let at = (start - self.from) as usize;
        Ok(Some(&self.buf[at..at + (end - start) as usize]))
    }

    /// Where the first `\n` at or after `pos` is.
    fn newline(&mut self, mut pos: u64) -> io::Result<Option<u64>> {
        while pos < self.len {
            // The rest of the window already read first: the line a
            // search step lands in usually starts and ends there.
            let held = self.from + self.buf.len() as u64;
            let end = if (self.from..held).contains(&pos) {
                held
            } else {
                (pos + WINDOW).min(self.len)
            };
            let Some(bytes) = self.slice(pos, end)? else {
                return Ok(None);
            };
            if let Some(i) = bytes.iter().position(|&b| b == b'\n') {
                return Ok(Some(pos + i as u64));
            }
            pos = end;
        }
        Ok(None)
    }

    /// The first line start at or after `pos` (`first` is the first line's).
    fn line_start(&mut self, pos: u64, first: u64) -> io::Result<Option<u64>> {
        if pos <= first {
            return Ok(Some(first));
        }
        Ok(self.newline(pos - 1)?.map(|nl| nl + 1))
    }

    /// Where the allocation on the line at `start` stands to `key`, the
    /// allocation itself when it is `key`'s, and where the next line
    /// starts. The last line before `end` has no comma, the others one.
    fn entry(
        &mut self,
        start: u64,
        end: u64,
        key: &Key,
    ) -> io::Result<Option<(Ordering, Option<Allocation>, u64)>> {
        let Some(nl) = self.newline(start)? else {
            return Ok(None);
        };
        let next = nl + 1;
        let Some(line) = self.slice(start, nl)? else {
            return Ok(None);
        };
        let Some(body) = line.strip_prefix(layout::INDENT) else {
            return Ok(None);
        };
        let object = match (body.strip_suffix(b","), next == end) {
            (Some(object), false) => object,
            (None, true) => body,
            _ => return Ok(None),
        };
        let Some(a) = record::parse(object) else {
            return Ok(None);
        };
        let order = key.order(&a);
        let mine = (order == Ordering::Equal).then(|| a.into_owned());
        Ok(Some((order, mine, next)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::path::Path;

    use super::*;
    use crate::registry::Hold;
    use crate::registry::samples::*;

    fn found(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<(RegistryData, usize)> {
        found_by(bytes, Key::new(repository, worktree))
    }

    fn found_by(bytes: &[u8], key: Key) -> Option<(RegistryData, usize)> {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        find(&file, bytes.len() as u64, key).unwrap()
    }

    /// `n` reserved allocations, one per worktree `/w/NNNNN` of `/w/.git`,
    /// ports from 10000, with `command` as a holder's command on each.
    fn many(n: u16, command: &str) -> Vec<Allocation> {
        (0..n)
            .map(|i| Allocation {
                port: 10000 + i,
                service: "app".into(),
                purpose: "feature".into(),
                repository: "/w/.git".into(),
                worktree: format!("/w/{i:05}").into(),
                created: "2026-01-01T00:00:00Z".into(),
                reserved: true,
                adhoc: false,
                holders: vec![Hold {
                    pid: u32::from(i),
                    start_time: 7,
                    command: command.into(),
                    pgid: None,
                    leader_start: None,
                    session: None,
                    unit: None,
                }],
            })
            .collect()
    }

    #[test]
    fn find_reads_about_log2_n_lines_whatever_the_size() {
        let all = many(5000, "npm run dev");
        // Written in another order: the file is sorted all the same.
        let mut shuffled = all.clone();
        shuffled.reverse();
        let bytes = written(shuffled);
        let repo = Path::new("/w/.git");
        for i in [0u16, 1, 2499, 4998, 4999] {
            let wt = format!("/w/{i:05}");
            let (data, lines) = found(&bytes, repo, Path::new(&wt)).unwrap();
            assert_eq!(data.allocations, [all[usize::from(i)].clone()]);
            assert!(lines <= 2 * 13 + 2, "{lines} lines read for {wt}");
        }
        // Absent keys, before, between and after every line.
        for wt in ["/a", "/w/00000a", "/w/02499x", "/z"] {
            let (data, _) = found(&bytes, repo, Path::new(wt)).unwrap();
            assert!(data.allocations.is_empty(), "{wt}");
        }
        let (data, _) = found(&bytes, Path::new("/x/.git"), Path::new("/w/00001")).unwrap();
        assert!(data.allocations.is_empty());
    }

    /// A repository's key finds every worktree of that repository, and
    /// only those: not a repository whose path it is a prefix of, or that
    /// is a prefix of it. The lines read grow with what is found, not with
    /// the file.
    #[test]
    fn a_repository_key_finds_all_its_worktrees_and_no_other() {
        let mut all = many(2000, "npm run dev");
        let others = ["/a/.git", "/w/.gi", "/w/.git2", "/x/.git"];
        for (i, repo) in others.iter().enumerate() {
            for (j, a) in all
                .iter_mut()
                .skip(i * 2 + 100)
                .step_by(7)
                .take(50)
                .enumerate()
            {
                a.repository = repo.into();
                a.worktree = format!("/{i}/{j:03}").into();
            }
        }
        let bytes = written(all.clone());
        for repo in [
            "/w/.git", "/w/.gi", "/w/.git2", "/x/.git", "/a/.git", "/b/.git",
        ] {
            let (data, lines) = found_by(&bytes, Key::repository(Path::new(repo))).unwrap();
            let mut expected: Vec<Allocation> = all
                .iter()
                .filter(|a| a.repository == Path::new(repo))
                .cloned()
                .collect();
            expected.sort_by(|a, b| a.worktree.cmp(&b.worktree));
            assert_eq!(data.allocations, expected, "{repo}");
            assert!(
                lines <= 2 * 12 + 2 + expected.len(),
                "{lines} lines read for {repo}"
            );
        }
    }

    #[test]
    fn find_reads_lines_longer_than_its_window() {
        let long = "x".repeat(3 * WINDOW as usize);
        let all = many(40, &long);
        let bytes = written(all.clone());
        for i in [0, 17, 39] {
            let wt = format!("/w/{i:05}");
            let (data, _) = found(&bytes, Path::new("/w/.git"), Path::new(&wt)).unwrap();
            assert_eq!(data.allocations, [all[i].clone()]);
        }
    }

    #[test]
    fn find_refuses_what_is_not_the_sorted_layout() {
        let (repo, wt) = (Path::new(REPO), Path::new(WT));
        // The order itself is vouched for by the seal (a binary search
        // cannot tell an unsorted file); the lines it reads are checked.
        let sorted = layout_of(&[
            ENTRY,
            &ENTRY.replace("\"/r\"", "\"/z\"").replace("5000", "5001"),
        ]);
        assert!(found(sorted.as_bytes(), repo, wt).is_some());
        for damaged in [
            // Its own lines: one port twice, a port below 1024, a field too many.
            layout_of(&[ENTRY, &ENTRY.replace("\"app\"", "\"web\"")]),
            layout_of(&[&ENTRY.replace("5000", "80")]),
            layout_of(&[&ENTRY.replace("}", r#", "note": "x"}"#)]),
            // The framing.
            sorted.replace("]}\n", "]}"),
            sorted.replace(",\n", "\n"),
            sorted.replace("\"allocations\": [", "\"allocations\":["),
            format!("{sorted}\n"),
            String::new(),
        ] {
            assert_eq!(found(damaged.as_bytes(), repo, wt), None, "{damaged}");
        }
        let empty = written(vec![]);
        assert_eq!(found(&empty, repo, wt), Some((RegistryData::default(), 0)));
    }

    proptest! {
        /// What wtenv writes, found by binary search: the same entries as
        /// the full parse keeps, whatever the strings hold.
        #[test]
        fn the_written_layout_is_found_by_binary_search(
            allocations in prop::collection::vec(allocation(), 0..24),
            which in prop::sample::select(vec![WT, "/r/other", "/r/a", "/a", "/z"]),
        ) {
            let mut allocations = allocations;
            // What wtenv writes: distinct ports, none below 1024, one
            // port per service of a worktree.
            for (i, a) in allocations.iter_mut().enumerate() {
                a.port = 1024 + 8 * i as u16 + a.port % 8;
            }
            one_per_service(&mut allocations);
            let bytes = written(allocations);
            let (repo, wt) = (Path::new(REPO), Path::new(which));
            let got = found(&bytes, repo, wt).map(|(d, _)| d);
            prop_assert!(got.is_some());
            prop_assert_eq!(got, full(&bytes, repo, wt));
        }
    }
}
