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
    /// boot, on Linux; a hash of `ps -o lstart` (a date) on macOS.
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
/// worktree about to be removed.
pub fn working_in(dir: &std::path::Path) -> Vec<(u32, String)> {
    let me = std::process::id();
    imp::all_pids()
        .into_iter()
        .filter(|&p| p != me && imp::cwd(p).is_some_and(|c| c.starts_with(dir)))
        .filter(|&p| imp::start_time(p).is_some())
        .map(|p| (p, command(p).unwrap_or_default()))
        .collect()
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
/// `pgid` is someone else's.
pub fn orphans(pgid: u32, leader_start: u64) -> Vec<u32> {
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
        .filter(|&p| imp::session(p) != Some(pgid))
        .collect()
}

/// Members of process group `pgid` that are still alive. A zombie is not:
/// it runs no code (see `imp::start_time`, and [`is_zombie`] for the
/// moment its threads still hold its sockets).
pub fn group_members(pgid: u32) -> Vec<u32> {
    imp::all_pids()
        .into_iter()
        .filter(|&p| imp::pgid(p) == Some(pgid) && imp::start_time(p).is_some())
        .collect()
}

/// Whether `pid` is a zombie: its main thread exited. Other threads of it
/// may still be exiting and holding its files (sockets included) until the
/// last one is gone and its parent can reap it.
pub fn is_zombie(pid: u32) -> bool {
    imp::is_zombie(pid)
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
            let hash = id
                .trim_ascii()
                .as_bytes()
                .iter()
                .fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
                });
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

    pub fn is_zombie(pid: u32) -> bool {
        stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z"))
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

    pub fn all_pids() -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
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
        let out = Command::new("ps")
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
        // lstart is a date string; only equality matters, so hash it (FNV-1a).
        let lstart = ps(pid, "lstart")?;
        Some(lstart.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        }))
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

    pub fn is_zombie(pid: u32) -> bool {
        ps(pid, "stat").is_some_and(|s| s.starts_with('Z'))
    }

    pub fn command(pid: u32) -> Option<String> {
        ps(pid, "command")
    }

    pub fn cwd(pid: u32) -> Option<PathBuf> {
        let out = Command::new("lsof")
            .args(["-a", "-p", &pid.to_string(), "-d", "cwd", "-Fn"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix('n').map(PathBuf::from))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh -c` started by `launch`, which leaves a `sleep` behind in the
    /// shell's group and exits: (the group's id, the sleep's pid).
    #[cfg(target_os = "linux")]
    fn leave_a_sleep_behind(launch: &mut std::process::Command) -> (u32, u32) {
        let out = launch
            .args(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $$ $!"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let [group, sleep] = text.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("{text:?}");
        };
        (group.parse().unwrap(), sleep.parse().unwrap())
    }

    /// The pid reuse that leaves no leader to compare: a daemon's double
    /// fork (`setsid`, then the leader exits) under a group id wtenv once
    /// recorded. Its member started after the recorded leader, as a real
    /// orphan would, yet it is never claimed (nor signalled, nor kept as a
    /// reason not to sweep the hold). The same shape started as wtenv
    /// starts a child (`setpgid` in this session) is.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_session_leaders_group_is_never_taken_for_orphans() {
        use std::os::unix::process::CommandExt;
        let recorded_start = ProcessId::current().start_time;
        let (daemon_group, daemon) =
            leave_a_sleep_behind(&mut std::process::Command::new("setsid"));
        let mut like_wtenv = std::process::Command::new("env");
        like_wtenv.process_group(0);
        let (group, orphan) = leave_a_sleep_behind(&mut like_wtenv);
        let found = (
            orphans(daemon_group, recorded_start),
            orphans(group, recorded_start),
        );
        for pid in [daemon, orphan] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert_eq!(found, (vec![], vec![orphan]));
    }

    #[test]
    fn current_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        let reused = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    /// `token` as the same pid's start in another boot: the same ticks,
    /// another tag.
    #[cfg(target_os = "linux")]
    fn in_another_boot(token: u64) -> u64 {
        let tag = token >> 40;
        assert_ne!(tag, 0, "the boot id is readable here");
        (if tag == 7 { 8 } else { 7 }) << 40 | (token & ((1 << 40) - 1))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_start_of_another_boot_is_dead_and_one_recorded_untagged_is_compared_by_ticks() {
        let me = ProcessId::current();
        let earlier_boot = ProcessId {
            start_time: in_another_boot(me.start_time),
            ..me
        };
        assert!(!earlier_boot.is_alive());
        assert!(!me.is(earlier_boot));
        let untagged = ProcessId {
            start_time: me.start_time & ((1 << 40) - 1),
            ..me
        };
        assert!(untagged.is_alive());
        assert!(me.is(untagged));
    }

    /// A group recorded in another boot has no orphans, though a live
    /// group of this boot has its id, and members started after its ticks.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_group_of_another_boot_has_no_orphans() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = ProcessId::of(pid).unwrap().start_time;
        let found = (
            orphans(pid, start),
            orphans(pid, start & ((1 << 40) - 1)),
            orphans(pid, in_another_boot(start)),
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found, (vec![pid], vec![pid], vec![]));
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_alive());
        }
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("-c a\nb\x1b[2J"), r"-c a\nb\u{1b}[2J");
        assert_eq!(printable("\t\r\0\x7f\u{85}"), r"\t\r\u{0}\u{7f}\u{85}");
        assert_eq!(printable_path(Path::new("/w/a\x1bb\nc")), r"/w/a\u{1b}b\nc");
    }

    #[test]
    fn printable_escapes_bidirectional_controls() {
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                printable(&format!("a{c}b")),
                format!("a\\u{{{:x}}}b", c as u32)
            );
        }
        for (c, shown) in [
            ('\u{200e}', r"\u{200e}"),
            ('\u{200f}', r"\u{200f}"),
            ('\u{061c}', r"\u{61c}"),
        ] {
            assert_eq!(printable(&format!("a{c}b")), format!("a{shown}b"));
        }
        // A branch that reads `feature/exe.png` on a terminal.
        assert_eq!(
            printable("feature/\u{202e}gnp.exe"),
            r"feature/\u{202e}gnp.exe"
        );
    }

    #[test]
    fn printable_escapes_invisible_characters() {
        for (c, shown) in [
            ('\u{200b}', r"\u{200b}"),
            ('\u{200c}', r"\u{200c}"),
            ('\u{200d}', r"\u{200d}"),
            ('\u{2060}', r"\u{2060}"),
            ('\u{feff}', r"\u{feff}"),
        ] {
            assert_eq!(printable(&format!("main{c}")), format!("main{shown}"));
        }
    }

    #[test]
    fn printable_leaves_other_text_as_it_is() {
        for text in [
            "node  srv.js é",
            "שלום عربي 中文 🦀",
            r"C:\dir\new",
            r"a\nb\u{1b}",
            "'it'\\''s here'",
        ] {
            assert_eq!(printable(text), text);
        }
    }

    #[test]
    fn first_escaped_names_the_first_character_printable_escapes() {
        assert_eq!(first_escaped(r"feature/a\b.c-d_é 中"), None);
        assert_eq!(
            first_escaped("a\u{200b}b\u{202e}").as_deref(),
            Some(r"\u{200b}")
        );
        assert_eq!(first_escaped("x\ny").as_deref(), Some(r"\n"));
        for text in ["\u{202e}", "\u{200b}", "\u{feff}", "\u{1b}", "\t"] {
            let shown = first_escaped(text).unwrap();
            assert_eq!(printable(text), shown);
        }
    }

    #[test]
    fn escape_at_finds_each_escape_printable_writes() {
        for (text, escape) in [
            ("\\nb", Some("\\n")),
            ("\\t", Some("\\t")),
            ("\\r", Some("\\r")),
            ("\\\\n", Some("\\\\")),
            ("\\u{202e}gnp", Some("\\u{202e}")),
            ("\\u{10ffff}}", Some("\\u{10ffff}")),
            ("\\u{0}", Some("\\u{0}")),
            ("a\\n", None),
            ("\\", None),
            ("\\d", None),
            ("\\u{20", None),
            ("\\u{}", None),
            ("\\u{1234567}", None),
            ("\\u{2x}", None),
        ] {
            assert_eq!(escape_at(text), escape, "{text:?}");
        }
        // Every escape printable writes is found whole.
        for c in [
            '\n', '\t', '\r', '\\', '\u{1b}', '\u{85}', '\u{202e}', '\u{feff}',
        ] {
            let shown = printable(&format!("{c}\u{200b}"));
            let escape = escape_at(&shown).unwrap();
            assert_eq!(escape, c.escape_default().to_string());
        }
    }

    #[test]
    fn once_printable_escapes_anything_it_escapes_every_backslash() {
        // A literal backslash-n beside a newline: each reads one way.
        assert_eq!(printable("a\\nb\nc"), r"a\\nb\nc");
        assert_eq!(
            printable_path(Path::new("/w/x\\n\u{202e}y\\")),
            r"/w/x\\n\u{202e}y\\"
        );
        // Escaped text has nothing left to escape: escaping it again, as a
        // table does its cells, changes nothing.
        for text in ["a\\nb\nc", "x\u{202e}\\", "\u{1b}[2J\\u{1b}"] {
            let once = printable(text);
            assert_eq!(printable(&once), once);
        }
    }

    #[test]
    fn ancestry_and_cwd_of_self() {
        let me = std::process::id();
        let parent = parent(me).unwrap();
        assert!(descends_from(me, parent));
        assert!(!descends_from(parent, me));
        assert_eq!(cwd(me).unwrap(), std::env::current_dir().unwrap());
    }
}
