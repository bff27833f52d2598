//! The watchers `env --hold PID` starts (`wtenv __watch PID START`), as
//! the tests find and stop them.

use std::time::Duration;

use super::wait_for;

/// The live watchers (`wtenv __watch PID START`, started by `env --hold
/// PID`) of `pid`.
pub fn watchers_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let raw = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let words: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
            words
                .windows(2)
                .any(|w| w[0] == b"__watch" && w[1] == pid.to_string().as_bytes())
        })
        .collect()
}

/// SIGKILLs the watcher of `pid`, and waits until it is gone: the holds
/// of `pid` then outlive it, as after a killed watcher, for the sweep and
/// `validate` to find.
pub fn kill_watcher_of(pid: u32) {
    let watchers = watchers_seen(pid);
    assert!(!watchers.is_empty(), "pid {pid} has no watcher");
    for w in watchers {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(w as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        wait_for(Duration::from_secs(30), || watchers_of(pid).is_empty()),
        "the watcher of {pid} outlived SIGKILL"
    );
}

/// The watchers of `pid` once one is seen, waiting for it a while: `env
/// --hold` returns as soon as its watcher is exec'd, and the kernel shows
/// a new program's command line only a moment later (a loaded machine
/// made that moment long enough to miss it once).
pub fn watchers_seen(pid: u32) -> Vec<u32> {
    let mut seen = Vec::new();
    wait_for(Duration::from_secs(30), || {
        seen = watchers_of(pid);
        !seen.is_empty()
    });
    seen
}
