//! A background service's log: `<unit>.log` under the state directory,
//! rotated at a size limit (the full file becomes `<unit>.log.1`, replacing
//! the one before), so it takes at most twice the limit on disk. `logs`
//! reads `.log.1` then `.log`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::files::{OpenError, Refusal};
use crate::process::printable_path;

/// `up --detach`'s default log limit per service: 10 MiB.
pub const DEFAULT_LIMIT: u64 = 10 * 1024 * 1024;

/// A size in bytes: `1048576`, `512K`, `10M`, `1G` (powers of 1024).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let too_big = || format!("{text:?}: must be between 1 byte and 16 EiB");
    let n: u64 = digits
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow => too_big(),
            _ => format!("{text:?}: expected a size such as 1048576, 512K, 10M"),
        })?;
    let factor = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (K, M or G)")),
    };
    match n.checked_mul(factor) {
        Some(0) | None => Err(too_big()),
        Some(size) => Ok(size),
    }
}

/// The rotated-out file of `path`.
pub fn previous(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// The log, created 0600 if missing; a regular file keeps its owner's
/// `rw` whatever the umask (under 0277 it was made 0400, which the next
/// `up --detach` could not open: the service ended at once, exit code 1).
/// Never through a link, and never into a file with other names (a hard
/// link planted there would have another file appended to).
fn open_append(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() {
        if meta.nlink() > 1 {
            return Err(std::io::Error::other(
                Refusal::HardLinked(meta.nlink()).to_string(),
            ));
        }
        crate::files::keep_owner_bits(&file, &meta, 0o600)?;
    }
    Ok(file)
}

/// Refuses a service's log that is not a regular file of the user's with
/// one name (a link, a FIFO, a directory, another's file, a hard link to
/// another file): something other than wtenv put it there, and the
/// supervisor would refuse to write it (or, a hard link, write another
/// file). Exit 2, as a planted lock file, with the command that removes
/// it; `up --detach` asks before anything is reserved or started. A log
/// not there yet is fine.
pub fn check_log(path: &Path) -> Result<()> {
    let checked = crate::files::open_read(path, false).and_then(|found| {
        let Some(file) = found else { return Ok(()) };
        let meta = crate::files::require_own_regular(&file)?;
        if meta.nlink() > 1 {
            return Err(OpenError::Refused(Refusal::HardLinked(meta.nlink())));
        }
        Ok(())
    });
    checked.map_err(|e| super::state::unusable("log", path, e))
}

/// Whole lines appended to a file that rotates at `limit` bytes.
pub struct RotatingLog {
    path: PathBuf,
    limit: u64,
    file: File,
    size: u64,
}

impl RotatingLog {
    pub fn open(path: &Path, limit: u64) -> Result<RotatingLog> {
        let err = |e| Error::io(format!("could not open log {}", printable_path(path)), e);
        let file = open_append(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(Error::refused(format!(
                "log {} is not a regular file",
                printable_path(path)
            )));
        }
        Ok(RotatingLog {
            path: path.to_path_buf(),
            limit: limit.max(1),
            file,
            size: meta.len(),
        })
    }

    /// Appends `line` (which ends with a newline), rotating first when it
    /// would take the file past the limit. A line longer than the limit is
    /// cut to it.
    pub fn write_line(&mut self, line: &[u8]) {
        let line = &line[..line.len().min(self.limit as usize)];
        if self.size > 0 && self.size + line.len() as u64 > self.limit {
            match std::fs::rename(&self.path, previous(&self.path))
                .and_then(|()| open_append(&self.path))
            {
                Ok(file) => {
                    self.file = file;
                    self.size = 0;
                }
                Err(e) => tracing::warn!("could not rotate {}: {e}", printable_path(&self.path)),
            }
        }
        if self.file.write_all(line).is_ok() {
            self.size += line.len() as u64;
        }
    }
}

/// wtenv's own message `text` (its lines, each ending with a newline) in
/// `log`, where the service's output goes: what the supervisor of a
/// background service says on its stderr reaches no one else.
pub fn note(log: &Mutex<RotatingLog>, text: &str) {
    if let Ok(mut log) = log.lock() {
        for line in text.lines() {
            let mut line = crate::process::printable(line).into_bytes();
            line.push(b'\n');
            log.write_line(&line);
        }
    }
}

/// Copies `reader` (the command's stdout and stderr, one pipe) line by
/// line into `log`, and to our own stdout: the journal, under systemd.
/// Counted in `open` until EOF.
pub fn tee(
    reader: impl Read + Send + 'static,
    log: Arc<Mutex<RotatingLog>>,
    open: &crate::output::OpenPipes,
) {
    crate::output::pump_lines("wtenv-log", reader, open, move |line| {
        if let Ok(mut log) = log.lock() {
            log.write_line(line);
        }
        let _ = std::io::stdout().lock().write_all(line);
    });
}

/// The most a `logs` reads of one file (a launchd log is not rotated).
const READ_MAX: u64 = 64 * 1024 * 1024;

fn read_file(path: &Path) -> Vec<u8> {
    read_from(path, 0).unwrap_or_default()
}

/// The bytes of the file at `path` from `offset` on (the last
/// [`READ_MAX`] of them); `None` when it is not a regular file.
fn read_from(path: &Path, offset: u64) -> Option<Vec<u8>> {
    let mut file = crate::files::open_read(path, false).ok()??;
    let meta = crate::files::require_regular(&file).ok()?;
    let start = offset.max(meta.len().saturating_sub(READ_MAX));
    let _ = file.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = file.take(READ_MAX).read_to_end(&mut bytes);
    Some(bytes)
}

/// Where a log ends now (its file and length): what is written after it
/// is a new run's, told from the runs before ([`tail_since`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    file: (u64, u64),
    len: u64,
}

impl Mark {
    /// `None`: there is no log yet (all it will hold is new).
    pub fn of(path: &Path) -> Option<Mark> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(Mark {
            file: (meta.dev(), meta.ino()),
            len: meta.len(),
        })
    }
}

/// The log's lines (the rotated file's first), the last `n` if given.
pub fn lines(path: &Path, n: Option<usize>) -> Vec<Vec<u8>> {
    let mut bytes = read_file(&previous(path));
    bytes.extend(read_file(path));
    let mut out: Vec<Vec<u8>> = bytes
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.to_vec())
        .collect();
    if let Some(n) = n {
        out.drain(..out.len().saturating_sub(n));
    }
    out
}

/// The last `n` lines written since `mark` (all the log holds, with no
/// mark) as text, for an error's hint: only what this run wrote, not the
/// last words of an earlier one. A rotation since is followed: the marked
/// file is then the rotated one, and the new file is all new.
pub fn tail_since(path: &Path, mark: Option<Mark>, n: usize) -> String {
    let bytes = since(path, mark);
    let mut lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    lines.drain(..lines.len().saturating_sub(n));
    lines
        .iter()
        .map(|l| {
            let mut s = String::from("  ");
            s.push_str(&crate::process::printable(
                String::from_utf8_lossy(l).trim_end_matches('\n'),
            ));
            s.push('\n');
            s
        })
        .collect()
}

/// How the `wtenv run` of a background service noted, in the lines
/// written since `mark`, that its command `named` (`service web`) ended:
/// `exit code 4` of its last `wtenv: service web ended (exit code 4)`
/// ([`crate::supervise::services::ended`]). What tells why a unit its
/// manager has forgotten (systemd's `--collect`) is no longer running.
pub fn ended_since(path: &Path, mark: Option<Mark>, named: &str) -> Option<String> {
    let bytes = since(path, mark);
    String::from_utf8_lossy(&bytes)
        .lines()
        .rev()
        .find_map(|line| {
            let said = crate::report::status_said(line)?;
            crate::supervise::services::ended_how(said, named).map(str::to_owned)
        })
}

/// The bytes written to the log since `mark` (all it holds, with no
/// mark), following a rotation since: the marked file is then the
/// rotated one, and the new file is all new.
fn since(path: &Path, mark: Option<Mark>) -> Vec<u8> {
    let file = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let from = |p: &Path, offset| read_from(p, offset).unwrap_or_default();
    let before = previous(path);
    match mark {
        Some(m) if file(path) == Some(m.file) => from(path, m.len),
        Some(m) if file(&before) == Some(m.file) => {
            let mut bytes = from(&before, m.len);
            bytes.extend(from(path, 0));
            bytes
        }
        _ => from(path, 0),
    }
}

/// A log being followed: the open file and how far it was read.
struct Followed {
    path: PathBuf,
    prefix: Vec<u8>,
    file: Option<File>,
    pending: Vec<u8>,
}

impl Followed {
    /// Prints the complete lines appended since the last call; follows a
    /// rotation (a new file at the path) after finishing the old one.
    fn poll(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        loop {
            if let Some(file) = &mut self.file {
                let mut buf = Vec::new();
                file.read_to_end(&mut buf)?;
                self.pending.extend_from_slice(&buf);
                while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=i).collect();
                    out.write_all(&self.prefix)?;
                    out.write_all(&line)?;
                }
                out.flush()?;
            }
            let current = std::fs::metadata(&self.path)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            let open = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| (m.dev(), m.ino()));
            if current.is_none() || current == open {
                return Ok(());
            }
            // Rotated (or created): the old file is read to its end above.
            self.file = File::open(&self.path).ok();
        }
    }
}

/// `logs -f`: prints what is appended to each `(path, prefix)` as it
/// comes, starting at their current ends, until writing fails (a closed
/// pipe) or the process is interrupted.
pub fn follow(logs: &[(PathBuf, String)]) -> Result<()> {
    let mut followed: Vec<Followed> = logs
        .iter()
        .map(|(path, prefix)| {
            let file = File::open(path).ok().map(|mut f| {
                let _ = f.seek(SeekFrom::End(0));
                f
            });
            Followed {
                path: path.clone(),
                prefix: prefix.clone().into_bytes(),
                file,
                pending: Vec::new(),
            }
        })
        .collect();
    let stdout = std::io::stdout();
    loop {
        for f in &mut followed {
            let mut out = stdout.lock();
            match f.poll(&mut out) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Error::io("could not follow the logs", e)),
                Ok(()) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10X").is_err());
        assert!(parse_size("M").is_err());
        // Too big is said so, whether the number or its unit overflows.
        for big in ["18446744073709551616", "99999999999G"] {
            assert_eq!(
                parse_size(big),
                Err(format!("{big:?}: must be between 1 byte and 16 EiB"))
            );
        }
    }

    #[test]
    fn the_log_rotates_at_its_limit_and_keeps_one_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let mut log = RotatingLog::open(&path, 100).unwrap();
        for i in 0..50 {
            log.write_line(format!("line {i:04}\n").as_bytes());
        }
        let now = std::fs::metadata(&path).unwrap().len();
        let before = std::fs::metadata(previous(&path)).unwrap().len();
        assert!(now <= 100 && before <= 100, "{now} {before}");
        let all = lines(&path, None);
        assert_eq!(all.last().unwrap(), b"line 0049\n");
        assert_eq!(lines(&path, Some(2)).len(), 2);
        // Whole lines only, in order.
        let nums: Vec<u32> = all
            .iter()
            .map(|l| String::from_utf8_lossy(&l[5..9]).parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    }

    #[test]
    fn the_tail_since_a_mark_is_only_what_was_written_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        assert_eq!(tail_since(&path, Mark::of(&path), 10), "");
        let mut log = RotatingLog::open(&path, 30).unwrap();
        log.write_line(b"old run\n");
        let mark = Mark::of(&path);
        assert_eq!(tail_since(&path, mark, 10), "");
        log.write_line(b"new 1\n");
        assert_eq!(tail_since(&path, mark, 10), "  new 1\n");
        // Rotated since: the rest of the marked file, then the new one.
        log.write_line(b"new 2 4567890123456\n");
        assert!(previous(&path).exists());
        assert_eq!(
            tail_since(&path, mark, 10),
            "  new 1\n  new 2 4567890123456\n"
        );
        assert_eq!(tail_since(&path, mark, 1), "  new 2 4567890123456\n");
        // No mark: the log was made by this run.
        assert_eq!(tail_since(&path, None, 10), "  new 2 4567890123456\n");
    }

    #[test]
    fn how_a_command_ended_is_read_from_this_run_s_last_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let log = Mutex::new(RotatingLog::open(&path, 1 << 20).unwrap());
        note(&log, "wtenv: service web ended (exit code 1)");
        let mark = Mark::of(&path);
        assert_eq!(ended_since(&path, mark, "service web"), None);
        note(&log, "wtenv: service web ended (exit code 7)\nserving");
        note(&log, "wtenv: service api ended (exit code 5)");
        note(&log, "wtenv: service web ended (exit code 4)");
        let ended = |named| ended_since(&path, mark, named);
        assert_eq!(ended("service web").as_deref(), Some("exit code 4"));
        assert_eq!(ended("service api").as_deref(), Some("exit code 5"));
        assert_eq!(ended("service db"), None);
    }

    #[test]
    fn following_prints_appended_lines_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let mut log = RotatingLog::open(&path, 30).unwrap();
        log.write_line(b"old\n");
        let mut f = Followed {
            path: path.clone(),
            prefix: b"web | ".to_vec(),
            file: File::open(&path).ok(),
            pending: Vec::new(),
        };
        let mut out = Vec::new();
        f.poll(&mut out).unwrap();
        for l in ["one 6789012345\n", "two 6789012345\n", "three\n"] {
            log.write_line(l.as_bytes());
        }
        f.poll(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "web | old\nweb | one 6789012345\nweb | two 6789012345\nweb | three\n"
        );
    }
}
