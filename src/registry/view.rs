//! One worktree's allocations, read without keeping the others.
//!
//! `env` runs on every `cd` and needs only its own worktree's entries, but
//! the registry holds every worktree's. Parsing all of them into owned
//! [`Allocation`](super::Allocation)s (five heap strings each) was most of `env`'s time on a
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

use std::fs::File;
use std::io::{self, BufRead, BufReader};

use super::record::{self, Key};
use super::{RegistryData, VERSION, layout};

/// The entries of `worktree` (of `repository`) in a file in the layout
/// wtenv writes (`serialize`), read line by line through a small buffer: a
/// buffer of the whole file costs a fresh page per 4 KiB of it (42 for
/// 1,000 allocations; 3% of `env`'s time). Every line is parsed and checked
/// all the same.
/// `Ok(None)` as soon as a line is not exactly that layout (an older
/// layout, a hand edit, damage): the caller then reads the file whole.
pub fn read_lines(file: &File, key: Key) -> io::Result<Option<RegistryData>> {
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
        let Some(a) = record::parse(object) else {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::registry::samples::*;

    /// Where the line reader accepts, the full parse accepts and agrees.
    pub fn agrees(bytes: &[u8]) {
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
    fn lines(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<RegistryData> {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        read_lines(&file, Key::new(repository, worktree)).unwrap()
    }

    #[test]
    fn keeps_only_the_worktrees_entries_and_unescapes() {
        let other = ENTRY
            .replace("\"/r\"", "\"/other\"")
            .replace("5000", "5001");
        let escaped = ENTRY
            .replace("\"app\"", r#""a\"p\u00e9""#)
            .replace("5000", "5002");
        let held = ENTRY
            .replace("5000", "5003")
            .replace("\"app\"", "\"held\"")
            .replace(
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

    proptest! {
        /// What wtenv writes, read back line by line: the same as the full
        /// parse, whatever the strings hold.
        #[test]
        fn the_written_layout_reads_back_line_by_line(
            mut allocations in prop::collection::vec(allocation(), 0..12),
        ) {
            // What wtenv writes: distinct ports, none below 1024, one
            // port per service of a worktree.
            one_per_service(&mut allocations);
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
