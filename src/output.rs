//! stdout is data or shell code only; stderr is talk (STYLE 7).
//!
//! Writes to stdout go through [`stdout`], which treats a closed pipe
//! (`wtenv ports | head -1`) as success, like ripgrep and zoxide.

use std::io::{ErrorKind, Write};

use crate::error::{Error, Result};

/// Writes `text` to stdout; EPIPE is success.
pub fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(Error::io("could not write to stdout", e))
        }
        _ => Ok(()),
    }
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

/// Left-aligned columns, two spaces apart; the last column is not padded.
/// Control characters in cells are escaped: one row is one line, even for a
/// worktree path or a command line that holds a newline.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::process::printable(c)).collect())
        .collect();
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

/// Runs `each` on every line of `reader`, on a thread of its own, then
/// signals `done`. Bytes, not strings: a child's output need not be UTF-8;
/// a last line without a newline gets one.
pub fn pump_lines(
    name: &str,
    reader: impl std::io::Read + Send + 'static,
    done: std::sync::mpsc::Sender<()>,
    mut each: impl FnMut(&[u8]) + Send + 'static,
) {
    use std::io::BufRead;
    let _ = std::thread::Builder::new()
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
            let _ = done.send(());
        });
}
