use super::*;

/// The group a holder recorded.
#[cfg(target_os = "linux")]
fn recorded(pgid: u32, leader_start: u64, session: Option<u32>) -> Group {
    Group {
        pgid,
        leader_start,
        session,
    }
}

/// A group id reused after a pid wrap-around by a job of another
/// terminal's shell (a group made with `setpgid` in another session, its
/// leader exited): its member started after the recorded leader, is in a
/// group of that id, and its session is not the group's, so only the
/// session wtenv recorded tells it apart. `validate --fix` killed such a
/// process (QA, the reuse forced through `ns_last_pid`).
#[cfg(target_os = "linux")]
#[test]
fn a_group_id_reused_in_another_session_is_never_taken_for_orphans() {
    let recorded_start = ProcessId::current().start_time;
    let ours = session(std::process::id());
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys\n\
             os.setsid()\n\
             pid = os.fork()\n\
             if pid == 0:\n\
             \x20   os.setpgid(0, 0)\n\
             \x20   sleep = os.fork()\n\
             \x20   if sleep == 0:\n\
             \x20       os.dup2(os.open('/dev/null', os.O_WRONLY), 1)\n\
             \x20       os.execvp('sleep', ['sleep', '30'])\n\
             \x20   print(os.getpid(), sleep, flush=True)\n\
             \x20   os._exit(0)\n\
             os.waitpid(pid, 0)\n",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let [group, sleep] = text.split_whitespace().collect::<Vec<_>>()[..] else {
        panic!("{text:?}");
    };
    let (group, sleep): (u32, u32) = (group.parse().unwrap(), sleep.parse().unwrap());
    let found = (
        orphans(recorded(group, recorded_start, ours)),
        orphans(recorded(group, recorded_start, None)),
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleep as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(ours.is_some());
    // Without the session (a hold an older wtenv wrote), it is claimed.
    assert_eq!(found, (vec![], vec![sleep]));
}

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
    let (daemon_group, daemon) = leave_a_sleep_behind(&mut std::process::Command::new("setsid"));
    let mut like_wtenv = std::process::Command::new("env");
    like_wtenv.process_group(0);
    let (group, orphan) = leave_a_sleep_behind(&mut like_wtenv);
    let found = (
        orphans(recorded(daemon_group, recorded_start, None)),
        orphans(recorded(group, recorded_start, None)),
    );
    for pid in [daemon, orphan] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert_eq!(found, (vec![], vec![orphan]));
}

/// A group wtenv started in this session, its session recorded: its
/// member, whose leader exited, is its orphan.
#[cfg(target_os = "linux")]
#[test]
fn a_group_in_the_recorded_session_has_its_orphans() {
    use std::os::unix::process::CommandExt;
    let recorded_start = ProcessId::current().start_time;
    let mut like_wtenv = std::process::Command::new("env");
    like_wtenv.process_group(0);
    let (group, orphan) = leave_a_sleep_behind(&mut like_wtenv);
    let found = orphans(recorded(group, recorded_start, session(orphan)));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(orphan as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(found, vec![orphan]);
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
        orphans(recorded(pid, start, None)),
        orphans(recorded(pid, start & ((1 << 40) - 1), None)),
        orphans(recorded(pid, in_another_boot(start), None)),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(found, (vec![pid], vec![pid], vec![]));
}

/// A child that cannot have ended before it is looked at (`true` could:
/// a zombie has no identity, and the check was then skipped): alive,
/// then reaped, dead.
#[test]
fn a_reaped_child_is_dead() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let id = ProcessId::of(child.id()).expect("a running child has an identity");
    assert!(id.is_alive());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!id.is_alive());
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

/// The start time macOS's token is made of, `ps -o lstart`, reads the
/// same whoever asks: a caller in another time zone (a launchd agent, a
/// shell with its own `TZ`) gets the same text. Run with Linux's `ps`,
/// which writes `lstart` in local time too.
#[test]
fn the_start_time_ps_writes_is_the_same_in_every_time_zone() {
    let lstart = |tz: &str| {
        let mut ps = std::process::Command::new("ps");
        ps.env("TZ", tz);
        let out = fixed_dates(&mut ps)
            .args(["-o", "lstart=", "-p", &std::process::id().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let tokyo = lstart("JST-9");
    assert!(!tokyo.trim().is_empty());
    assert_eq!(tokyo, lstart("EST5"));
}

/// `ps -A -o pid=,ppid=,pgid=,stat=` as macOS writes it (right-aligned
/// columns, flags after the state letter), and a line that is no row.
#[test]
fn a_ps_table_gives_each_process_its_parent_group_and_state() {
    let text = "    1     0     1 Ss\n  312     1   312 Ss\n\
                \x20 901   900   901 S+\n  905   901   901 Z\n   77 garbage\n";
    let row = |pid, parent, pgid, state| Row {
        pid,
        parent,
        pgid,
        state,
    };
    assert_eq!(
        parse_ps_table(text),
        [
            row(1, 0, 1, 'S'),
            row(312, 1, 312, 'S'),
            row(901, 900, 901, 'S'),
            row(905, 901, 901, 'Z'),
        ]
    );
    assert!(!row(905, 901, 901, 'Z').alive());
}

/// The same command, run (procps' `ps` here, as macOS's `ps` is there),
/// names this process as the kernel does, and as the table of /proc does.
#[test]
fn the_ps_table_of_a_real_ps_names_this_process_as_the_kernel_does() {
    let out = std::process::Command::new("ps")
        .args(["-A", "-o", "pid=,ppid=,pgid=,stat="])
        .output()
        .unwrap();
    let me = std::process::id();
    let want = (
        me,
        std::os::unix::process::parent_id(),
        nix::unistd::getpgrp().as_raw() as u32,
    );
    let find = |rows: Vec<Row>| {
        rows.into_iter()
            .find(|r| r.pid == me)
            .map(|r| (r.pid, r.parent, r.pgid))
    };
    assert_eq!(
        find(parse_ps_table(&String::from_utf8_lossy(&out.stdout))),
        Some(want)
    );
    assert_eq!(find(table()), Some(want));
}

/// `lsof -d cwd -Fn` as it comes: each process's first name is its
/// directory, kept byte for byte (not UTF-8, spaces); an `f` line, as
/// some versions add, is skipped; a name with no process before it is
/// no one's.
#[test]
fn lsof_cwd_output_gives_each_process_its_directory() {
    use std::os::unix::ffi::OsStrExt;
    let out = b"nstray\np1\nfcwd\nn/\np4242\nn/w/my repo\np77\nfcwd\nn/w/caf\xe9\n";
    assert_eq!(
        parse_lsof_cwds(out),
        [
            (1, PathBuf::from("/")),
            (4242, PathBuf::from("/w/my repo")),
            (
                77,
                PathBuf::from(std::ffi::OsStr::from_bytes(b"/w/caf\xe9"))
            ),
        ]
    );
}

/// The real `lsof` (Linux's here, macOS's there takes the same options),
/// asked for every process, names this one's directory.
#[test]
fn a_real_lsof_names_this_processs_directory() {
    let out = std::process::Command::new("lsof")
        .args(["-d", "cwd", "-Fn"])
        .output()
        .unwrap();
    let me = std::process::id();
    let dir = parse_lsof_cwds(&out.stdout)
        .into_iter()
        .find_map(|(p, dir)| (p == me).then_some(dir));
    assert_eq!(dir, Some(std::env::current_dir().unwrap()));
}
