//! stdout is data or shell code only; stderr is talk (docs/ARCHITECTURE.md, "Integrations").
//!
//! Writes to stdout go through [`stdout`], which treats a closed pipe
//! (`wtenv ports | head -1`) as success, like ripgrep and zoxide.

use std::io::{ErrorKind, Write};

use crate::error::{Error, Result};

/// Writes `text` to stdout; EPIPE is success.
pub fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    written(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// What a write to stdout came to: an error when the output was lost (a
/// full disk, `/dev/full`), never a silent success; EPIPE is success (the
/// reader is gone, having read what it wanted).
pub fn written(result: std::io::Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(write_error(e)),
        _ => Ok(()),
    }
}

/// The error for output stdout could not take.
pub fn write_error(e: std::io::Error) -> Error {
    Error::io("could not write to stdout", e)
        .with_hint("the output is lost: make room where stdout goes, or send it elsewhere")
}

/// A JSON document with `"version": 1` first, then `fields`.
pub fn json(fields: serde_json::Value) -> Result<()> {
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), 1.into());
    if let serde_json::Value::Object(map) = fields {
        doc.extend(map);
    }
    let mut text = serde_json::to_string_pretty(&doc).expect("json values serialize");
    text.push('\n');
    stdout(&text)
}

/// [`table`] for stdout: on a terminal, the table fits its width by
/// shortening the cells of column `shrink` (the one that holds command
/// lines) with `…`; in a pipe or a file every cell stays whole.
pub fn table_for_stdout(header: &[&str], rows: &[Vec<String>], shrink: usize) -> String {
    fit(header, rows, shrink, terminal_width(std::io::stdout()))
}

/// The column count of the terminal `fd` is, if it is one that reports
/// one: its rows do not matter (a pty made by `script` without a size,
/// then `stty cols 90`, has 0 of them).
fn terminal_width(fd: impl std::os::fd::AsFd) -> Option<usize> {
    use rustix::termios::{isatty, tcgetwinsize};
    if !isatty(&fd) {
        return None;
    }
    let cols = tcgetwinsize(&fd).ok()?.ws_col;
    (cols > 0).then_some(usize::from(cols))
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
/// Control characters in cells are escaped: one row is one line, even for a
/// worktree path or a command line that holds a newline.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    fit(header, rows, 0, None)
}

/// Narrowest a shortened column gets: a state, a pid and the start of a
/// command (`listening (pid 1234567 nod…`).
const MIN_SHRUNK: usize = 28;

/// [`table`] within `width` columns, if given, by shortening column
/// `shrink` (never below [`MIN_SHRUNK`] characters).
fn fit(header: &[&str], rows: &[Vec<String>], shrink: usize, width: Option<usize>) -> String {
    let mut rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::process::printable(c)).collect())
        .collect();
    if let Some(width) = width {
        let cols = header.len();
        let widest = |i: usize, rows: &[Vec<String>]| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let total: usize = (0..cols).map(|i| widest(i, &rows)).sum::<usize>() + 2 * (cols - 1);
        if total > width && shrink < cols {
            let current = widest(shrink, &rows);
            let room = current
                .saturating_sub(total - width)
                .max(MIN_SHRUNK.min(current));
            for row in &mut rows {
                if let Some(cell) = row.get_mut(shrink) {
                    *cell = shorten(cell, room);
                }
            }
        }
    }
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// ANSI colours given to services in turn.
const COLOURS: [u8; 6] = [36, 33, 35, 32, 34, 31];

/// The prefix of service `index`'s output lines: `web | `, its name padded
/// to `width`, coloured when `colour` (services take colours in turn).
pub fn service_prefix(name: &str, width: usize, index: usize, colour: bool) -> String {
    if colour {
        let c = COLOURS[index % COLOURS.len()];
        format!("\x1b[{c}m{name:<width$}\x1b[0m | ")
    } else {
        format!("{name:<width$} | ")
    }
}

/// The output pipes of a command that [`pump_lines`] copies and that are
/// not at EOF yet. Once the command's processes are gone,
/// [`OpenPipes::drain`] lets the last lines they wrote be printed before
/// wtenv says what became of the command.
#[derive(Debug, Default, Clone)]
pub struct OpenPipes(std::sync::Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>);

impl OpenPipes {
    /// Waits until every pipe is at EOF, or until `deadline`: a process
    /// that left the group may hold one open.
    pub fn drain(&self, deadline: std::time::Instant) {
        let (open, changed) = &*self.0;
        let Ok(open) = open.lock() else { return };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = changed.wait_timeout_while(open, left, |n| *n > 0);
    }

    fn add(&self, by: isize) {
        let (open, changed) = &*self.0;
        if let Ok(mut n) = open.lock() {
            *n = n.saturating_add_signed(by);
            changed.notify_all();
        }
    }
}

/// Runs `each` on every line of `reader`, on a thread of its own, counted
/// in `open` until EOF. Bytes, not strings: a child's output need not be
/// UTF-8; a last line without a newline gets one.
pub fn pump_lines(
    name: &str,
    reader: impl std::io::Read + Send + 'static,
    open: &OpenPipes,
    mut each: impl FnMut(&[u8]) + Send + 'static,
) {
    use std::io::BufRead;
    open.add(1);
    let pipe = open.clone();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut reader = std::io::BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                each(&line);
            }
            pipe.add(-1);
        });
    if spawned.is_err() {
        open.add(-1);
    }
}

/// `text` in at most `room` characters, its end replaced by `…` if cut.
/// The cut never splits an escape [`crate::process::printable`] wrote:
/// it comes before one that does not fit whole, since `\u{20…` or `\…`
/// would read as another escape (the cell is then shorter than `room`).
fn shorten(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let room = room.saturating_sub(1);
    let (mut out, mut used, mut rest) = (String::new(), 0, text);
    while let Some(c) = rest.chars().next() {
        let unit = crate::process::escape_at(rest).unwrap_or(&rest[..c.len_utf8()]);
        let width = unit.chars().count();
        if used + width > room {
            break;
        }
        out.push_str(unit);
        used += width;
        rest = &rest[unit.len()..];
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_fits_its_width_by_shortening_the_command_column() {
        let rows = vec![vec![
            "5000".to_owned(),
            "listening (pid 12 node /a/very/long/path/to/vite --port 5000)".to_owned(),
            "/w".to_owned(),
        ]];
        let header = ["PORT", "STATE", "WORKTREE"];
        let full = fit(&header, &rows, 1, None);
        assert!(full.contains("--port 5000)"), "{full}");
        let fitted = fit(&header, &rows, 1, Some(50));
        for line in fitted.lines() {
            assert!(line.chars().count() <= 50, "{fitted}");
        }
        assert!(
            fitted.contains("listening (pid 12 node /a/very/lo…  /w"),
            "{fitted}"
        );
        // Never narrower than a state, a pid and a command's start.
        let narrow = fit(&header, &rows, 1, Some(10));
        assert!(narrow.contains("listening (pid 12 node /a/v…"), "{narrow}");
        // Wide enough: unchanged.
        assert_eq!(fit(&header, &rows, 1, Some(200)), full);
    }

    /// `text` shortened to every room from nothing to its own width: the
    /// cut never falls inside an escape (`\u{202e}`, `\\`, `\n`); when
    /// it would, it falls before that escape.
    fn cuts(text: &str) -> Vec<String> {
        (0..=text.chars().count())
            .map(|room| shorten(text, room))
            .collect()
    }

    #[test]
    fn shortening_never_splits_a_unicode_escape() {
        // `ab`, the 8 characters of `\u{202e}`, `cd`: a room of 4 to 10
        // keeps 3 to 9 characters, which would cut the escape.
        let text = r"ab\u{202e}cd";
        let mut want = vec!["…", "…", "a…", "ab…"];
        want.extend(["ab…"; 7]);
        want.extend([r"ab\u{202e}…", text]);
        assert_eq!(cuts(text), want);
    }

    #[test]
    fn shortening_never_splits_a_two_character_escape() {
        // `\\` (a backslash, once anything is escaped) and `\n`.
        let text = r"a\\n\nb";
        assert_eq!(
            cuts(text),
            ["…", "…", "a…", "a…", r"a\\…", r"a\\n…", r"a\\n…", text]
        );
    }

    #[test]
    fn a_shortened_cell_keeps_the_escapes_printable_made_whole() {
        let cell = crate::process::printable("node \u{1b}[2J\u{202e}x");
        assert_eq!(cell, r"node \u{1b}[2J\u{202e}x");
        for (room, shown) in [
            (6, "node …"),
            (11, "node …"),
            (12, r"node \u{1b}…"),
            (16, r"node \u{1b}[2J…"),
            (22, r"node \u{1b}[2J…"),
            (23, r"node \u{1b}[2J\u{202e}x"),
        ] {
            assert_eq!(shorten(&cell, room), shown, "room {room}");
        }
    }
}
