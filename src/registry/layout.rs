//! The layout wtenv writes: `{"version": 1, "allocations": [` on the first
//! line, one allocation per line, `]}` on the last, the lines sorted by
//! repository, then worktree (docs/ARCHITECTURE.md, "The registry's
//! layout").

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;

use super::{Allocation, RegistryData};
use crate::error::{Error, Result};
use crate::process::printable_path;

/// Opens the object and the `allocations` array (closed on the same
/// line when there are none).
pub fn header(version: u32) -> String {
    format!("{{\"version\": {version}, \"allocations\": [")
}
/// Before each allocation, on a line of its own.
pub const INDENT: &[u8] = b"  ";
/// Closes the array and the object; the file's last line.
pub const FOOTER: &[u8] = b"]}\n";

impl Allocation {
    /// Where the allocation's line goes in the file: by repository, then
    /// worktree, as bytes (the order [`super::find::find`] searches).
    pub(super) fn sort_key(&self) -> (&[u8], &[u8]) {
        (
            self.repository.as_os_str().as_bytes(),
            self.worktree.as_os_str().as_bytes(),
        )
    }
}

/// Writes the layout: the header, then each allocation on a line of its
/// own (a run of lines copied from a file in this layout, or an
/// allocation to serialize), then the footer. What it writes is
/// [`Pieces`]: a run kept from the old file stays a range of that file,
/// copied from it when the new file is written, so a transaction on a
/// large registry never holds the file in memory.
pub struct Writer<'f> {
    pieces: Vec<Piece<'f>>,
    /// What is being written after the last piece.
    bytes: Vec<u8>,
    lines: usize,
}

/// Part of a file's bytes.
#[derive(Debug)]
pub enum Piece<'f> {
    Bytes(Vec<u8>),
    /// Bytes `range` of a file, as they stand there.
    Copy(&'f File, Range<u64>),
}

/// A file's bytes, in order, in pieces.
#[derive(Debug, Default)]
pub struct Pieces<'f>(pub Vec<Piece<'f>>);

impl Pieces<'_> {
    /// Writes the bytes to `out`: a [`Piece::Copy`] straight from its
    /// file (a seek, then `std::io::copy`, which copies file to file in
    /// the kernel where it can: `copy_file_range`).
    ///
    /// A file copied from must still carry the seal ([`super::seal`])
    /// once copied: its lines were checked when it was indexed, and
    /// anything that wrote it since, in place and under wtenv's lock (an
    /// editor, a script), left its own modification time. Then nothing is
    /// renamed in: the lines copied may not be the lines checked.
    pub fn write_to(&self, out: &mut File) -> io::Result<()> {
        let mut sources: Vec<&File> = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Bytes(bytes) => out.write_all(bytes)?,
                Piece::Copy(from, range) => {
                    let mut from = *from;
                    from.seek(SeekFrom::Start(range.start))?;
                    let want = range.end - range.start;
                    // Shorter than when it was read: changed under the
                    // lock by something that ignores it. Nothing is
                    // renamed in.
                    if io::copy(&mut from.take(want), out)? != want {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if !sources.iter().any(|f| std::ptr::eq(*f, from)) {
                        sources.push(from);
                    }
                }
            }
        }
        for from in sources {
            if !super::seal::is_sealed(&from.metadata()?) {
                return Err(io::Error::other(
                    "it was written while wtenv rewrote it, by a program that ignores wtenv's lock; nothing was changed, run the command again",
                ));
            }
        }
        Ok(())
    }
}

impl From<Vec<u8>> for Pieces<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        Pieces(vec![Piece::Bytes(bytes)])
    }
}

impl<'f> Writer<'f> {
    pub fn new(version: u32, capacity: usize) -> Writer<'f> {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(header(version).as_bytes());
        Writer {
            pieces: Vec::new(),
            bytes,
            lines: 0,
        }
    }

    fn next_line(&mut self) {
        self.bytes
            .extend_from_slice(if self.lines == 0 { b"\n" } else { b",\n" });
        self.bytes.extend_from_slice(INDENT);
        self.lines += 1;
    }

    /// `count` consecutive lines of `file`, in this layout, bytes `run`
    /// from the first line's object to the last one's (the separators
    /// between them are the ones this writer puts there), copied from the
    /// file when the pieces are written.
    pub fn lines(&mut self, file: &'f File, run: Range<u64>, count: usize) {
        self.next_line();
        self.pieces
            .push(Piece::Bytes(std::mem::take(&mut self.bytes)));
        self.pieces.push(Piece::Copy(file, run));
        self.lines += count - 1;
    }

    pub fn entry(&mut self, a: &Allocation) -> Result<()> {
        self.next_line();
        // Paths are bytes; JSON strings are UTF-8. Worktrees are refused
        // earlier (`Scope`), this is the backstop: an error, never a panic.
        serde_json::to_writer(&mut self.bytes, a).map_err(|e| {
            Error::invalid(format!(
                "could not record port {} for {}: {e}",
                a.port,
                printable_path(&a.worktree)
            ))
            .with_hint("wtenv handles paths that are valid UTF-8 only; rename the directory")
        })
    }

    fn end(&mut self) {
        if self.lines > 0 {
            self.bytes.push(b'\n');
        }
        self.bytes.extend_from_slice(FOOTER);
    }

    pub fn finish(mut self) -> Pieces<'f> {
        self.end();
        self.pieces.push(Piece::Bytes(self.bytes));
        Pieces(self.pieces)
    }

    /// The whole file, of a writer given no [`lines`](Writer::lines).
    fn into_bytes(mut self) -> Vec<u8> {
        debug_assert!(self.pieces.is_empty(), "lines of a file are not bytes");
        self.end();
        self.bytes
    }
}

/// One allocation per line: as easy to read and grep as indented JSON,
/// and about 30% smaller. The lines are sorted by repository, then
/// worktree (as bytes; a worktree's own lines keep their order), so that
/// [`super::find::find`] finds one worktree's lines by binary search; files of
/// older wtenvs, in insertion order, are read whole ([`super::view::read_lines`])
/// until the next write sorts them.
pub fn serialize(data: &RegistryData) -> Result<Vec<u8>> {
    let mut sorted: Vec<&Allocation> = data.allocations.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut out = Writer::new(data.version, 256 * sorted.len() + 64);
    for a in sorted {
        out.entry(a)?;
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::samples::alloc;

    #[test]
    fn the_file_holds_one_allocation_per_line_and_parses_back() {
        let mut data = RegistryData::default();
        assert_eq!(
            serialize(&data).unwrap(),
            b"{\"version\": 1, \"allocations\": []}\n"
        );
        data.allocations = vec![alloc(5000), alloc(5001)];
        let text = String::from_utf8(serialize(&data).unwrap()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.lines().nth(1).unwrap().contains("\"port\":5000"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RegistryData>(&text).unwrap(), data);
    }
}
