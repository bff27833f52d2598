//! One worktree's allocations, read without keeping the others.
//!
//! `env` runs on every `cd` and needs only its own worktree's entries, but
//! the registry holds every worktree's. Parsing all of them into owned
//! [`Allocation`]s (five heap strings each) was most of `env`'s time on a
//! registry of 1,000 entries, much of it page faults on fresh heap.
//! [`read_lines`] reads a file in the layout wtenv writes line by line,
//! borrows each entry's strings from its line, and copies only the entries
//! of one worktree.
//!
//! It accepts what [`RegistryData`] accepts, or less, never more: the
//! entries have the same fields, unknown ones refused (the conversion
//! below names every field of both structs, so the compiler keeps them
//! equal), and the lines around them must be exactly the layout. When it
//! refuses (another layout, a hand edit, damage), the caller runs the full
//! parse, which accepts or says exactly what is wrong.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Allocation, Hold, RegistryData, VERSION, layout};
use crate::config::MIN_PORT;

/// The entries of `worktree` (of `repository`) in a file in the layout
/// wtenv writes (`serialize`), read line by line through a small buffer: a
/// buffer of the whole file costs a fresh page per 4 KiB of it (42 for
/// 1,000 allocations; 3% of `env`'s time). Every line is parsed and checked
/// all the same.
/// `Ok(None)` as soon as a line is not exactly that layout (an older
/// layout, a hand edit, damage): the caller then reads the file whole.
pub fn read_lines(
    file: &File,
    repository: &Path,
    worktree: &Path,
) -> io::Result<Option<RegistryData>> {
    let key = Key::new(repository, worktree);
    let mut reader = BufReader::with_capacity(LINE_BUFFER, file);
    let mut line = Vec::with_capacity(512);
    let mut next = |line: &mut Vec<u8>| -> io::Result<bool> {
        line.clear();
        Ok(reader.read_until(b'\n', line)? > 0)
    };
    let header = layout::header(VERSION);
    if !next(&mut line)? || !line.starts_with(header.as_bytes()) {
        return Ok(None);
    }
    let mut allocations = Vec::new();
    // One bit per port: a port seen twice, in any worktree, is refused.
    let mut seen = vec![0u64; 1 << 10];
    let data = |allocations| RegistryData {
        version: VERSION,
        allocations,
    };
    // With no allocations, the array closes on the header's line.
    if line[header.len()..] == *layout::FOOTER {
        // The footer's line is the file's last.
        return Ok((!next(&mut line)?).then(|| data(allocations)));
    }
    if line[header.len()..] != *b"\n" {
        return Ok(None);
    }
    // After the header and after a line that ends with ',', an allocation
    // must follow; after one without, the footer.
    let mut more = true;
    loop {
        if !next(&mut line)? {
            return Ok(None);
        }
        if line == layout::FOOTER {
            let complete = !more && !next(&mut line)?;
            return Ok(complete.then(|| data(allocations)));
        }
        let Some(body) = line
            .strip_prefix(layout::INDENT)
            .and_then(|l| l.strip_suffix(b"\n"))
        else {
            return Ok(None);
        };
        if !more {
            return Ok(None);
        }
        let (object, comma) = match body.strip_suffix(b",") {
            Some(object) => (object, true),
            None => (body, false),
        };
        more = comma;
        let Some(a) = std::str::from_utf8(object)
            .ok()
            .and_then(|text| serde_json::from_str::<AllocationView>(text).ok())
        else {
            return Ok(None);
        };
        let (word, bit) = (usize::from(a.port) / 64, 1u64 << (a.port % 64));
        if a.port < super::MIN_PORT || seen[word] & bit != 0 {
            return Ok(None);
        }
        seen[word] |= bit;
        if key.wants(&a) {
            allocations.push(a.into_owned());
        }
    }
}

/// Big enough for many lines per read, small enough to stay a few pages.
const LINE_BUFFER: usize = 16 * 1024;

/// The entries of `worktree` (of `repository`) in a sealed file
/// ([`super::seal`]) of `len` bytes, found by binary search with
/// positioned reads: about log2(n) lines are read and parsed, whatever the
/// size of the registry, so `env` on every `cd` does not grow with other
/// worktrees' allocations. The lines it reads are checked as
/// [`read_lines`] checks them (layout, schema, order); the rest of the
/// file is vouched for by the seal.
/// `Ok(None)` when anything is not as `serialize` writes it: the caller
/// then reads the file whole, which accepts or says what is wrong.
pub fn find(
    file: &File,
    len: u64,
    repository: &Path,
    worktree: &Path,
) -> io::Result<Option<(RegistryData, usize)>> {
    let key = Key::new(repository, worktree);
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
            let end = (pos + WINDOW).min(self.len);
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
        let Some(a) = std::str::from_utf8(object)
            .ok()
            .and_then(|text| serde_json::from_str::<AllocationView>(text).ok())
        else {
            return Ok(None);
        };
        let order = key.order(&a);
        let mine = (order == Ordering::Equal).then(|| a.into_owned());
        Ok(Some((order, mine, next)))
    }
}

/// [`Allocation`] with its strings borrowed where the JSON has no escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationView<'a> {
    port: u16,
    #[serde(borrow)]
    service: Cow<'a, str>,
    #[serde(borrow)]
    purpose: Cow<'a, str>,
    #[serde(borrow)]
    repository: Cow<'a, str>,
    #[serde(borrow)]
    worktree: Cow<'a, str>,
    #[serde(borrow)]
    created: Cow<'a, str>,
    reserved: bool,
    #[serde(default)]
    holders: Vec<Hold>,
    #[serde(default)]
    adhoc: bool,
}

impl AllocationView<'_> {
    fn into_owned(self) -> Allocation {
        let AllocationView {
            port,
            service,
            purpose,
            repository,
            worktree,
            created,
            reserved,
            holders,
            adhoc,
        } = self;
        Allocation {
            port,
            service: service.into_owned(),
            purpose: purpose.into_owned(),
            repository: PathBuf::from(repository.into_owned()),
            worktree: PathBuf::from(worktree.into_owned()),
            created: created.into_owned(),
            reserved,
            holders,
            adhoc,
        }
    }
}

/// Which worktree's entries to keep (paths as bytes: both sides are
/// canonical, see [`Allocation::belongs_to`]).
#[derive(Clone, Copy)]
struct Key<'k> {
    repository: &'k [u8],
    worktree: &'k [u8],
}

impl<'k> Key<'k> {
    fn new(repository: &'k Path, worktree: &'k Path) -> Key<'k> {
        Key {
            repository: repository.as_os_str().as_bytes(),
            worktree: worktree.as_os_str().as_bytes(),
        }
    }

    fn wants(&self, a: &AllocationView) -> bool {
        a.worktree.as_bytes() == self.worktree && a.repository.as_bytes() == self.repository
    }

    /// Where `a` stands to this key in the order `serialize` writes:
    /// by repository, then worktree, as bytes.
    fn order(&self, a: &AllocationView) -> Ordering {
        (a.repository.as_bytes(), a.worktree.as_bytes()).cmp(&(self.repository, self.worktree))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn full(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<RegistryData> {
        let mut data = serde_json::from_slice::<RegistryData>(bytes)
            .ok()
            .filter(|d| {
                d.version == VERSION && super::super::check_ports(&d.allocations).is_ok()
            })?;
        data.allocations
            .retain(|a| a.belongs_to(repository, worktree));
        Some(data)
    }

    fn lines(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<RegistryData> {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        read_lines(&file, repository, worktree).unwrap()
    }

    const REPO: &str = "/r/.git";
    const WT: &str = "/r";

    /// Where the line reader accepts, the full parse accepts and agrees.
    fn agrees(bytes: &[u8]) {
        let (repo, wt) = (Path::new(REPO), Path::new(WT));
        let got = lines(bytes, repo, wt);
        if got.is_some() {
            assert_eq!(
                got,
                full(bytes, repo, wt),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// `entries` as the lines of the layout wtenv writes.
    fn layout_of(entries: &[&str]) -> String {
        format!(
            "{}\n  {}\n]}}\n",
            layout::header(VERSION),
            entries.join(",\n  ")
        )
    }

    fn allocation() -> impl Strategy<Value = Allocation> {
        let text = "[a-z/\"\\\\é\n\t\u{1}, ]{0,12}";
        (
            any::<u16>(),
            text,
            text,
            0u8..5,
            any::<bool>(),
            any::<u32>(),
        )
            .prop_map(|(port, service, command, mine, reserved, pid)| Allocation {
                port,
                service: service.clone(),
                purpose: service,
                repository: REPO.into(),
                worktree: ["/r/other", WT, "/r/a", "/a", "/z"][usize::from(mine)].into(),
                created: "2026-01-01T00:00:00Z".into(),
                reserved,
                adhoc: false,
                holders: if reserved {
                    vec![]
                } else {
                    vec![Hold {
                        pid,
                        start_time: 7,
                        command,
                        pgid: Some(pid),
                        leader_start: None,
                        unit: None,
                    }]
                },
            })
    }

    fn written(allocations: Vec<Allocation>) -> Vec<u8> {
        super::super::serialize(&RegistryData {
            version: VERSION,
            allocations,
        })
        .unwrap()
    }

    const ENTRY: &str = r#"{"port": 5000, "service": "app", "purpose": "feature", "repository": "/r/.git", "worktree": "/r", "created": "2026-01-01T00:00:00Z", "reserved": true}"#;

    #[test]
    fn keeps_only_the_worktrees_entries_and_unescapes() {
        let other = ENTRY
            .replace("\"/r\"", "\"/other\"")
            .replace("5000", "5001");
        let escaped = ENTRY
            .replace("\"app\"", r#""a\"p\u00e9""#)
            .replace("5000", "5002");
        let held = ENTRY.replace("5000", "5003").replace(
            "\"reserved\": true",
            r#""reserved": false, "holders": [{"pid": 7, "start_time": 9, "command": "npm", "pgid": 7}]"#,
        );
        let text = layout_of(&[ENTRY, &other, &escaped, &held]);
        let data = lines(text.as_bytes(), Path::new(REPO), Path::new(WT)).unwrap();
        let ports: Vec<u16> = data.allocations.iter().map(|a| a.port).collect();
        assert_eq!(ports, [5000, 5002, 5003]);
        assert_eq!(data.allocations[1].service, "a\"p\u{e9}");
        assert_eq!(data.allocations[2].holders[0].command, "npm");
        agrees(text.as_bytes());
    }

    #[test]
    fn refuses_what_the_full_parse_refuses() {
        let refused = [
            String::new(),
            "{".into(),
            "[1, []]".into(),
            r#"{"version": 2, "allocations": []}"#.into(),
            r#"{"version": 1}"#.into(),
            r#"{"allocations": []}"#.into(),
            r#"{"version": 1, "allocations": [], "extra": 1}"#.into(),
            r#"{"version": 1, "version": 1, "allocations": []}"#.into(),
            r#"{"version": 1, "allocations": []} trailing"#.into(),
            // Entries the schema refuses, in the layout wtenv writes.
            layout_of(&[&ENTRY.replace("}", r#", "note": "x"}"#)]),
            layout_of(&[&ENTRY.replace("5000", "70000")]),
            layout_of(&[&ENTRY.replace("5000", "80")]),
            layout_of(&[ENTRY, &ENTRY.replace("\"/r\"", "\"/other\"")]),
            layout_of(&[&ENTRY.replace("\"port\": 5000", "\"port\": 5000, \"port\": 5001")]),
            layout_of(&[&ENTRY.replace(r#""service": "app", "#, "")]),
        ];
        for text in refused {
            let view = lines(text.as_bytes(), Path::new(REPO), Path::new(WT));
            assert_eq!(view, None, "accepted: {text}");
        }
    }

    #[test]
    fn read_lines_leaves_other_layouts_to_the_full_parse() {
        let one = written(vec![serde_json::from_str(ENTRY).unwrap()]);
        let pretty = format!(r#"{{"version": 1, "allocations": [{ENTRY}]}}"#);
        let (repo, wt) = (Path::new(REPO), Path::new(WT));
        assert!(lines(&one, repo, wt).is_some());
        let mut no_newline = one.clone();
        no_newline.pop();
        let mut trailing = one.clone();
        trailing.extend_from_slice(b"\n");
        let header_only = layout::header(VERSION).into_bytes();
        let trailing_comma = String::from_utf8(one.clone())
            .unwrap()
            .replace("}\n]}", "},\n]}");
        let two_arrays = format!(
            "{}  {ENTRY}\n]}}\n",
            String::from_utf8(one.clone()).unwrap()
        );
        for other in [
            pretty.as_bytes(),
            b"",
            &no_newline,
            &trailing,
            &header_only,
            trailing_comma.as_bytes(),
            two_arrays.as_bytes(),
            &written(vec![])[..20],
        ] {
            assert_eq!(
                lines(other, repo, wt),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert_eq!(
            lines(&written(vec![]), repo, wt),
            Some(RegistryData::default())
        );
    }

    fn found(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<(RegistryData, usize)> {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        find(&file, bytes.len() as u64, repository, worktree).unwrap()
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
            // What wtenv writes: distinct ports, none below 1024.
            for (i, a) in allocations.iter_mut().enumerate() {
                a.port = 1024 + 8 * i as u16 + a.port % 8;
            }
            let bytes = written(allocations);
            let (repo, wt) = (Path::new(REPO), Path::new(which));
            let got = found(&bytes, repo, wt).map(|(d, _)| d);
            prop_assert!(got.is_some());
            prop_assert_eq!(got, full(&bytes, repo, wt));
        }

        /// What wtenv writes, read back line by line: the same as the full
        /// parse, whatever the strings hold.
        #[test]
        fn the_written_layout_reads_back_line_by_line(
            mut allocations in prop::collection::vec(allocation(), 0..12),
        ) {
            // What wtenv writes: distinct ports, none below 1024.
            for (i, a) in allocations.iter_mut().enumerate() {
                a.port = 1024 + 8 * i as u16 + a.port % 8;
            }
            let bytes = written(allocations);
            let (repo, wt) = (Path::new(REPO), Path::new(WT));
            let got = lines(&bytes, repo, wt);
            prop_assert!(got.is_some());
            prop_assert_eq!(got, full(&bytes, repo, wt));
        }

        /// Random edits of a valid file, in the written layout and in
        /// another: the line reader never accepts what the full parse
        /// refuses, nor disagrees with it.
        #[test]
        fn never_accepts_more_than_the_full_parse(
            allocations in prop::collection::vec(allocation(), 1..4),
            cut in any::<prop::sample::Index>(),
            insert in prop::sample::select(vec![
                "", "\"", "}", "]", ",", "1", "\"x\":1,", "null", "{}", "\n", "  ", ",\n  {}",
            ]),
        ) {
            let pretty = format!(r#"{{"version": 1, "allocations": [{ENTRY}, {ENTRY}]}}"#);
            for text in [written(allocations), pretty.into_bytes()] {
                let at = cut.index(text.len() + 1);
                let mut edited = text.clone();
                edited.splice(at..at, insert.bytes());
                agrees(&edited);
                let mut edited = text.clone();
                edited.drain(at..(at + 1).min(text.len()));
                agrees(&edited);
            }
        }
    }
}
