//! What wtenv needs to know about other processes: are they alive (and the
//! same process, not a reused pid), who are their parents, where do they run.
//!
//! A pid alone is not an identity: pids are reused. A process is identified
//! by (pid, start time); a recorded holder whose pid is alive with another
//! start time is gone. On Linux the start time counts clock ticks since
//! boot, which repeat from one boot to the next (a machine that runs the
//! same start-up every boot gives the same pid the same start time), and
//! records outlive a reboot: so the token carries the boot too (see
//! `imp::start_time`). Linux reads `/proc` (no subprocess); macOS asks
//! `ps` and `lsof`, behind the same functions.

use std::path::{Path, PathBuf};

/// A process identity that survives pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    /// Opaque start-time token: clock ticks since boot, tagged with the
    /// boot, on Linux; a hash of `ps -o lstart` (a date, in UTC) on macOS.
    /// Compared with [`ProcessId::is_alive`], [`orphans`]: never by hand.
    pub start_time: u64,
}

impl ProcessId {
    /// This process.
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            pid,
            start_time: imp::start_time(pid).unwrap_or(0),
        }
    }

    /// The live process with this pid, if any.
    pub fn of(pid: u32) -> Option<ProcessId> {
        imp::start_time(pid).map(|start_time| ProcessId { pid, start_time })
    }

    /// Whether this very process (not a successor reusing the pid, in
    /// this boot or a later one) lives.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| now.is(*self))
    }

    /// Whether this live process is the one `recorded` names.
    pub fn is(&self, recorded: ProcessId) -> bool {
        self.pid == recorded.pid && imp::same_start(self.start_time, recorded.start_time)
    }
}

/// The parent pid of `pid`, if it is alive.
pub fn parent(pid: u32) -> Option<u32> {
    imp::parent(pid)
}

/// The process group of `pid`, if it is alive.
pub fn pgid(pid: u32) -> Option<u32> {
    imp::pgid(pid)
}

/// The session of `pid`, if it is alive and can be read (Linux).
pub fn session(pid: u32) -> Option<u32> {
    imp::session(pid)
}

/// `pid`'s command line, space-joined, if it can be read. It is data, as
/// the process wrote it (the registry records it, JSON carries it): a
/// message or a table shows it through [`printable`], since a
/// `python3 -c SCRIPT` holds newlines and a holder is shown on one line.
pub fn command(pid: u32) -> Option<String> {
    imp::command(pid)
}

/// `text` as a message or a table shows text wtenv did not write (command
/// lines, paths, branch names, a config's lines and keys): the characters
/// `needs_escape` names are escaped (`\n`, `\u{1b}`, `\u{202e}`), so it
/// stays on one line, cannot drive the terminal, and reads as the
/// characters it holds. The one rule for it (README, "Hostile files"); a
/// table escapes its cells with it too.
///
/// Once a text has one to escape, its backslashes are escaped as well
/// (`\\`): in it `\n` is then a newline and `\\n` a backslash and an
/// `n`, whichever the name held. A text with none is returned as it is,
/// backslashes included: an ordinary path or command line reads as typed
/// and a hint's command stays pasteable, and escaping escaped text again
/// changes nothing (a table cell holds command lines a state text has
/// escaped already). Its cost: a name holding a literal `\n` and nothing
/// else to escape reads like one holding a newline; `--json` tells them
/// apart.
pub fn printable(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if needs_escape(c) || c == '\\' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether [`printable`] escapes `c`: a control character (it drives the
/// terminal or breaks the line); a Unicode bidirectional control (U+202A-
/// U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), which reorders what the
/// terminal shows after it ("Trojan Source": a branch holding U+202E reads
/// backwards); or an invisible character (U+200B-U+200D, U+2060, U+FEFF),
/// which makes two different names look the same.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{200b}'..='\u{200d}'
                | '\u{2060}'
                | '\u{feff}'
        )
}

/// The first character of `text` that [`printable`] escapes, as it shows
/// it (`\u{202e}`, `\n`), or `None` when it has none. A name wtenv makes
/// (a new branch, the directories of a new worktree) must have none:
/// `create` refuses one, naming this, rather than make a name every
/// message and table has to show escaped.
pub fn first_escaped(text: &str) -> Option<String> {
    text.chars()
        .find(|&c| needs_escape(c))
        .map(|c| c.escape_default().to_string())
}

/// The escape [`printable`] writes that `text` starts with, if any (`\n`,
/// `\t`, `\r`, `\\`, `\u{202e}`): what a table that shortens a cell
/// keeps or cuts whole, since half of one (`\u{20`, a lone `\`) reads as
/// another or as none. In text [`printable`] left as it was, a literal
/// backslash-n reads like an escape, and is kept whole alike.
pub fn escape_at(text: &str) -> Option<&str> {
    let len = match text.strip_prefix('\\')?.as_bytes() {
        [b'n' | b't' | b'r' | b'\\', ..] => 2,
        [b'u', b'{', rest @ ..] => {
            let digits = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            if !(1..=6).contains(&digits) || rest.get(digits) != Some(&b'}') {
                return None;
            }
            digits + 4
        }
        _ => return None,
    };
    Some(&text[..len])
}

/// `path` as a message names it: [`printable`] applied to what
/// [`Path::display`] shows. A directory may be named with an escape
/// sequence or a newline; where a path is data (shell output, the
/// registry, JSON) it is written as it is, never through this.
pub fn printable_path(path: &Path) -> String {
    printable(&path.display().to_string())
}

/// `pid`'s working directory, if it can be read.
pub fn cwd(pid: u32) -> Option<PathBuf> {
    imp::cwd(pid)
}

/// Whether `pid`'s working directory was deleted (its worktree removed
/// under it): on Linux its link count is 0. `false` when it cannot be
/// told (macOS, a process gone).
pub fn cwd_deleted(pid: u32) -> bool {
    imp::cwd_deleted(pid)
}

/// Whether `pid` is `ancestor` or descends from it. Bounded walk: a cycle
/// (impossible, but /proc races) cannot hang us.
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..256 {
        if current == ancestor {
            return true;
        }
        match imp::parent(current) {
            Some(p) if p != 0 && p != current => current = p,
            _ => return false,
        }
    }
    false
}

/// Every live pid on the system (for holder lookup and group sweeps).
pub fn all_pids() -> Vec<u32> {
    imp::all_pids()
}

/// Live processes whose working directory is `dir` or below it (other
/// than this one), with their command lines: what still works in a
/// worktree about to be removed. Below it means anywhere below, another
/// worktree placed inside it included, unlike the in-use rule's
/// [`crate::alloc::works_in_worktree`] (allocation rule 5): removing the
/// worktree deletes the files of one nested in it too, so a process
/// working there is left in a deleted directory all the same.
pub fn working_in(dir: &std::path::Path) -> Vec<(u32, String)> {
    let me = std::process::id();
    imp::cwds()
        .into_iter()
        .filter(|(p, c)| *p != me && c.starts_with(dir))
        .filter(|&(p, _)| imp::start_time(p).is_some())
        .map(|(p, _)| (p, command(p).unwrap_or_default()))
        .collect()
}

/// `(pid, working directory)` of each process in `lsof -d cwd -Fn`
/// output (`-p PID` or every process): a `p<pid>` line starts a process,
/// its first `n<path>` line is the directory (the bytes as they are: a
/// path need not be UTF-8); other lines (`f`, as some versions add) are
/// skipped.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn parse_lsof_cwds(out: &[u8]) -> Vec<(u32, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let mut found = Vec::new();
    let mut pid = None;
    for line in out.split(|&b| b == b'\n') {
        match line.split_first() {
            Some((b'p', number)) => {
                pid = std::str::from_utf8(number)
                    .ok()
                    .and_then(|n| n.parse().ok());
            }
            Some((b'n', path)) => {
                if let Some(pid) = pid.take() {
                    found.push((pid, PathBuf::from(std::ffi::OsStr::from_bytes(path))));
                }
            }
            _ => {}
        }
    }
    found
}

/// A process group wtenv started, as its holder recorded it
/// ([`crate::registry::Hold::group`]): its id, its leader's start time
/// (clock ticks), and the session it was started in, read with that start
/// time (`None` in a hold an older wtenv wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub pgid: u32,
    pub leader_start: u64,
    pub session: Option<u32>,
}

/// The live members of the process group `pgid` that wtenv started, whose
/// leader started at `leader_start` (clock ticks): those that started no
/// earlier than it. Provable because Linux never reuses a pid while a
/// process group of that id has a member: if a live process has the pid
/// `pgid` with another start time, the recorded group is gone entirely and
/// its id was reused, so nothing is returned.
/// A group recorded in an earlier boot has no member: every process of
/// this boot is someone else's, whatever its pid, group and start time.
///
/// A reused id whose new leader has exited too leaves no live process to
/// compare: the members of such a group all started later, like real
/// orphans. The usual way to make one is `setsid` (a daemon's double
/// fork), which makes the group a session's, its id the session's id. A
/// group wtenv starts never is (`setpgid` in wtenv's own session, whose id
/// stays in use, so is not the child's pid): a member whose session id is
/// `pgid` is someone else's. Nor does a group ever leave its session: with
/// the session recorded, a member of any other (a job of another
/// terminal's shell that got the id after a pid wrap-around, its leader
/// exited) is someone else's too. What is left unprovable is a group id
/// reused in the very session recorded, once its new leader exited.
pub fn orphans(group: Group) -> Vec<u32> {
    let Group {
        pgid,
        leader_start,
        session,
    } = group;
    // Only Linux start times are ordered (clock ticks since boot); the
    // macOS token is a hash: nothing there is provable.
    if !cfg!(target_os = "linux")
        || !imp::this_boot(leader_start)
        || imp::start_time(pgid).is_some_and(|t| !imp::same_start(t, leader_start))
    {
        return Vec::new();
    }
    group_members(pgid)
        .into_iter()
        .filter(|&p| imp::start_time(p).is_some_and(|t| imp::not_before(t, leader_start)))
        .filter(|&p| {
            let of = imp::session(p);
            of != Some(pgid) && session.is_none_or(|s| of == Some(s))
        })
        .collect()
}

/// Members of process group `pgid` that are still alive. A zombie is not:
/// it runs no code (see `imp::start_time`, and [`is_zombie`] for the
/// moment its threads still hold its sockets).
pub fn group_members(pgid: u32) -> Vec<u32> {
    table()
        .into_iter()
        .filter(|r| r.pgid == pgid && r.alive())
        .map(|r| r.pid)
        .collect()
}

/// One process of [`table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub pid: u32,
    pub parent: u32,
    pub pgid: u32,
    /// Its state letter (proc(5), ps(1)'s `stat`: `R`, `S`, `T`, `Z`...).
    pub state: char,
}

impl Row {
    /// Not a zombie (nor, on Linux, dead): it may still run code.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Every process on the system, with its parent, group and state, from
/// one look: /proc on Linux, one `ps` on macOS. What a scan of all
/// processes asks (a group's members at every readiness tick, a
/// service's tree): on macOS, a `ps` for each of hundreds of processes
/// would take seconds.
pub fn table() -> Vec<Row> {
    imp::table()
}

/// The rows of `ps -A -o pid=,ppid=,pgid=,stat=` output (macOS's and
/// procps' alike: columns padded with spaces, no header); a line that does
/// not read so is skipped.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn parse_ps_table(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let mut number = || f.next()?.parse::<u32>().ok();
            let (pid, parent, pgid) = (number()?, number()?, number()?);
            let state = f.next()?.chars().next()?;
            Some(Row {
                pid,
                parent,
                pgid,
                state,
            })
        })
        .collect()
}

/// Whether `pid` is a zombie: its main thread exited. Other threads of it
/// may still be exiting and holding its files (sockets included) until the
/// last one is gone and its parent can reap it.
pub fn is_zombie(pid: u32) -> bool {
    imp::state(pid) == Some('Z')
}

/// Whether `pid` is stopped by a signal (job control, state `T`): it runs
/// no code until continued, and acts on no signal but SIGKILL. One
/// stopped by its tracer (`t`) is not: its tracer continues it, and
/// decides what a signal sent to it does.
pub fn is_signal_stopped(pid: u32) -> bool {
    imp::state(pid) == Some('T')
}

/// Makes `ps` write the start time it is asked for (`-o lstart`, macOS's
/// token: see `imp::start_time`) the same whoever asks. `ps` writes it with
/// `strftime("%c")` in local time, in the caller's locale: a wtenv run by
/// a launchd agent (no `LANG`) and one in a shell with `LANG=de_DE.UTF-8`
/// would read two dates for one process and take it for another (dead),
/// and so would every wtenv after the Mac's time zone changed. The C
/// locale and UTC, for that one field only (a command line is read as the
/// caller's locale has `ps` write it, as before).
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn fixed_dates(ps: &mut std::process::Command) -> &mut std::process::Command {
    ps.env("LC_ALL", "C").env("TZ", "UTC0")
}

#[cfg(target_os = "linux")]
mod imp {
    use std::path::PathBuf;

    /// Fields of /proc/PID/stat after the `(comm)`, which may hold spaces
    /// and parentheses: split at the last ')'.
    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let stat = crate::files::read_proc(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(rest.split_whitespace().map(str::to_owned).collect())
    }

    fn stat_field(pid: u32, field: usize) -> Option<u64> {
        // proc(5) numbers fields from 1; `rest` starts at field 3 (state).
        stat_fields(pid)?.get(field - 3)?.parse().ok()
    }

    /// The low 40 bits of a token: clock ticks since boot (at 100 Hz, 348
    /// years). The high 24: a tag of the boot ([`boot_tag`]).
    const TICKS: u64 = (1 << 40) - 1;

    /// A tag of this boot, never 0: 24 bits of a hash (FNV-1a) of the
    /// kernel's `boot_id`, a random UUID drawn at each boot. 0 when it
    /// cannot be read, like the tokens recorded before tags existed (see
    /// [`same_start`]).
    fn boot_tag() -> u64 {
        static TAG: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *TAG.get_or_init(|| {
            let Ok(id) = crate::files::read_proc("/proc/sys/kernel/random/boot_id") else {
                return 0;
            };
            let hash = crate::hash::fnv1a(id.trim_ascii().as_bytes());
            ((hash ^ (hash >> 24) ^ (hash >> 48)) & 0xff_ffff).max(1)
        })
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        let fields = stat_fields(pid)?;
        // A zombie is dead for our purposes: it will not run again. (Its
        // other threads may still be exiting and hold its sockets for a
        // moment; the supervisor, which can reap it, waits for that.)
        if fields.first().is_some_and(|s| s == "Z" || s == "X") {
            return None;
        }
        let ticks: u64 = fields.get(22 - 3)?.parse().ok()?;
        Some(boot_tag() << 40 | (ticks & TICKS))
    }

    /// Whether a live process's token `now` is the `recorded` one. A
    /// recorded token without a tag (written before tags, or where the
    /// boot cannot be read) is compared by its ticks, as it always was.
    pub fn same_start(now: u64, recorded: u64) -> bool {
        if recorded >> 40 == 0 {
            now & TICKS == recorded
        } else {
            now == recorded
        }
    }

    /// Whether `recorded` may be of this boot: tagged with it, or untagged.
    pub fn this_boot(recorded: u64) -> bool {
        recorded >> 40 == 0 || recorded >> 40 == boot_tag()
    }

    /// Whether a live process's token `now` started no earlier than
    /// `recorded`, in the same boot.
    pub fn not_before(now: u64, recorded: u64) -> bool {
        this_boot(recorded) && now & TICKS >= recorded & TICKS
    }

    pub fn parent(pid: u32) -> Option<u32> {
        stat_field(pid, 4).map(|p| p as u32)
    }

    /// The state letter of `pid` (proc(5): `R`, `S`, `T`, `t`, `Z`...).
    pub fn state(pid: u32) -> Option<char> {
        stat_fields(pid)?.first()?.chars().next()
    }

    pub fn pgid(pid: u32) -> Option<u32> {
        stat_field(pid, 5).map(|p| p as u32)
    }

    pub fn session(pid: u32) -> Option<u32> {
        stat_field(pid, 6).map(|p| p as u32)
    }

    pub fn command(pid: u32) -> Option<String> {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let text: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if text.is_empty() {
            // Kernel threads and zombies: fall back to comm.
            let comm = crate::files::read_proc(format!("/proc/{pid}/comm")).ok()?;
            return Some(comm.trim_end().to_owned());
        }
        Some(text.join(" "))
    }

    pub fn cwd(pid: u32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
    }

    pub fn cwd_deleted(pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/cwd")).is_ok_and(|m| m.nlink() == 0)
    }

    pub fn cwds() -> Vec<(u32, PathBuf)> {
        all_pids()
            .into_iter()
            .filter_map(|pid| Some((pid, cwd(pid)?)))
            .collect()
    }

    pub fn all_pids() -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// One read of each process's `stat`.
    pub fn table() -> Vec<super::Row> {
        all_pids()
            .into_iter()
            .filter_map(|pid| {
                let f = stat_fields(pid)?;
                Some(super::Row {
                    pid,
                    state: f.first()?.chars().next()?,
                    parent: f.get(4 - 3)?.parse().ok()?,
                    pgid: f.get(5 - 3)?.parse().ok()?,
                })
            })
            .collect()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    //! macOS (and other BSDs): no /proc, so ask `ps` and `lsof`. Untested
    //! here (Linux-only CI); kept small on purpose.
    use std::path::PathBuf;
    use std::process::Command;

    fn ps(pid: u32, field: &str) -> Option<String> {
        asked(Command::new("ps"), pid, field)
    }

    /// What `ps`, the command `ps` (its environment set), says of
    /// `field` for `pid`.
    fn asked(mut ps: Command, pid: u32, field: &str) -> Option<String> {
        let out = ps
            .args(["-o", &format!("{field}="), "-p", &pid.to_string()])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        if ps(pid, "stat")?.starts_with('Z') {
            return None;
        }
        // lstart is a date string; only equality matters, so hash it
        // (FNV-1a), written the same whoever asks (`fixed_dates`).
        let mut cmd = Command::new("ps");
        super::fixed_dates(&mut cmd);
        let lstart = asked(cmd, pid, "lstart")?;
        Some(crate::hash::fnv1a(lstart.as_bytes()))
    }

    /// An `lstart` date names one moment: no boot tag is needed.
    pub fn same_start(now: u64, recorded: u64) -> bool {
        now == recorded
    }

    pub fn this_boot(_recorded: u64) -> bool {
        true
    }

    pub fn not_before(_now: u64, _recorded: u64) -> bool {
        false
    }

    pub fn parent(pid: u32) -> Option<u32> {
        ps(pid, "ppid")?.parse().ok()
    }

    pub fn pgid(pid: u32) -> Option<u32> {
        ps(pid, "pgid")?.parse().ok()
    }

    /// Not asked: `orphans` proves nothing here (no ordered start times).
    pub fn session(_pid: u32) -> Option<u32> {
        None
    }

    /// The state letter of `pid` (ps(1)'s `stat`: `R`, `S`, `T`, `Z`...).
    pub fn state(pid: u32) -> Option<char> {
        ps(pid, "stat")?.chars().next()
    }

    pub fn command(pid: u32) -> Option<String> {
        ps(pid, "command")
    }

    /// Not told on macOS (lsof names a deleted directory by its old
    /// path): a holder there vouches as it did.
    pub fn cwd_deleted(_pid: u32) -> bool {
        false
    }

    pub fn cwd(pid: u32) -> Option<PathBuf> {
        let out = Command::new("lsof")
            .args(["-a", "-p", &pid.to_string(), "-d", "cwd", "-Fn"])
            .output()
            .ok()?;
        super::parse_lsof_cwds(&out.stdout)
            .into_iter()
            .find_map(|(p, dir)| (p == pid).then_some(dir))
    }

    /// One `lsof` for every process's (that the user may see): one per
    /// process takes minutes on a Mac.
    pub fn cwds() -> Vec<(u32, PathBuf)> {
        let Ok(out) = Command::new("lsof").args(["-d", "cwd", "-Fn"]).output() else {
            return Vec::new();
        };
        super::parse_lsof_cwds(&out.stdout)
    }

    pub fn all_pids() -> Vec<u32> {
        let Ok(out) = Command::new("ps").args(["-A", "-o", "pid="]).output() else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// One `ps` for every process.
    pub fn table() -> Vec<super::Row> {
        let Ok(out) = Command::new("ps")
            .args(["-A", "-o", "pid=,ppid=,pgid=,stat="])
            .output()
        else {
            return Vec::new();
        };
        super::parse_ps_table(&String::from_utf8_lossy(&out.stdout))
    }
}

#[cfg(test)]
mod tests;
