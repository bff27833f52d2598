//! Reaping: on Linux wtenv is a child subreaper, so orphans of the tree
//! (what `npm start` left when its shell exited) become our children and
//! are reaped here, never left as zombies to PID 1.

use std::collections::BTreeSet;

/// Linux: orphans of the tree are re-parented to us, not to init, so we
/// can reap and sweep them.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("could not become a child subreaper: {e}");
    }
}

/// Children that are not supervised groups but are waited for by their
/// spawner (a health check's command): the orphan reaper leaves them
/// alone, or it could reap one before its spawner reads its status.
static UNREAPED: std::sync::Mutex<BTreeSet<u32>> = std::sync::Mutex::new(BTreeSet::new());

/// Spawns `command`, whose status the caller waits for itself; call
/// [`forget_unreaped`] once it has. The set is locked across the spawn, so
/// the reaper never sees the child before it is recorded.
pub fn spawn_unreaped(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let mut set = UNREAPED.lock().unwrap_or_else(|e| e.into_inner());
    SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let child = command.spawn()?;
    set.insert(child.id());
    Ok(child)
}

/// How many children [`spawn_unreaped`] started (changed under
/// [`UNREAPED`]'s lock): [`Childless`] tells from it whether one was
/// started since.
static SPAWNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Set by [`kill_unreaped`]: nothing more is spawned.
static CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGKILLs the group of every child of [`spawn_unreaped`] still running
/// (each is its group's leader) and spawns no more: `up` ending must not
/// leave a health check behind.
pub fn kill_unreaped() {
    let set = UNREAPED.lock().unwrap_or_else(|e| e.into_inner());
    CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    for &pid in set.iter() {
        super::group::killpg(super::Pgid(pid), super::Signal::SIGKILL);
    }
}

/// The children of [`spawn_unreaped`] not waited for yet (each the leader
/// of its group).
pub(super) fn unreaped() -> BTreeSet<u32> {
    UNREAPED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The child `pid` of [`spawn_unreaped`] was waited for.
pub fn forget_unreaped(pid: u32) {
    UNREAPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
}

/// What [`reap_orphans`] found.
#[derive(Debug)]
pub struct Reaped {
    /// The children still there, see [`reap_orphans`].
    pub left: Vec<u32>,
    /// Set when /proc showed no child of ours at all (no leader, no
    /// orphan, no health check's command): see [`Childless`].
    pub childless: Option<Childless>,
}

/// wtenv had no child at all when [`reap_orphans`] looked. A subreaper
/// with no child has no descendant (every one descends from us through a
/// child of ours), so none can appear, alive or dying, until wtenv starts
/// one: a look at /proc until then would show none again. Valid while
/// [`spawn_unreaped`] started nothing since (its count, taken under the
/// same lock as the look) and the holder spawned nothing itself (the
/// supervisor forgets it when it spawns a group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Childless(u64);

impl Childless {
    /// Still no child: nothing was spawned since the look.
    pub fn still(self) -> bool {
        let _set = UNREAPED.lock().unwrap_or_else(|e| e.into_inner());
        SPAWNED.load(std::sync::atomic::Ordering::Relaxed) == self.0
    }
}

/// Reaps exited children that are not `leaders` (duct reaps those), and
/// returns the ones still there: alive, or dying (a process whose main
/// thread is a zombie while its other threads still exit, and still hold
/// its sockets: node does that). As a subreaper, every live process of an
/// exited leader's group descends from us through a child of ours (its
/// dead ancestors' orphans were re-parented to us), so "no child but
/// running leaders" proves those groups empty. `None` where that cannot be
/// read (not Linux, no /proc children file).
pub fn reap_orphans(leaders: &BTreeSet<u32>) -> Option<Reaped> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    // Held while reaping: a child spawned meanwhile is recorded first.
    let unreaped = UNREAPED.lock().unwrap_or_else(|e| e.into_inner());
    // A child reaped here had its own children re-parented to us as it
    // exited, maybe after the list was read: the list is read again until
    // a pass reaps nothing, so that "nothing left" is never said of a
    // list that missed them (Vite's esbuild, once node is reaped, was
    // left running while wtenv released the port and exited).
    loop {
        let mut left = Vec::new();
        let mut reaped = false;
        let children = children()?;
        // Only a list that was empty (so nothing was reaped).
        let childless = children
            .is_empty()
            .then(|| Childless(SPAWNED.load(std::sync::atomic::Ordering::Relaxed)));
        for pid in children {
            if leaders.contains(&pid) || unreaped.contains(&pid) {
                continue;
            }
            // Only what has fully exited is reaped: WNOHANG leaves the rest.
            match waitpid(
                nix::unistd::Pid::from_raw(pid as i32),
                Some(WaitPidFlag::WNOHANG),
            ) {
                Ok(WaitStatus::StillAlive) => left.push(pid),
                Ok(_) => reaped = true,
                // Not ours to wait for (a leader duct is reaping): count it.
                Err(_) => left.push(pid),
            }
        }
        if !reaped {
            return Some(Reaped { left, childless });
        }
    }
}

/// Our children (leaders and re-parented orphans), if /proc tells.
fn children() -> Option<Vec<u32>> {
    children_of(std::process::id())
}

/// The children of `pid`, from each of its threads' `children` file, if
/// /proc tells (Linux, with `CONFIG_PROC_CHILDREN`).
pub(super) fn children_of(pid: u32) -> Option<Vec<u32>> {
    #[cfg(target_os = "linux")]
    {
        let parse = |text: String| -> Vec<u32> {
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect()
        };
        // The main thread's file must exist (CONFIG_PROC_CHILDREN); another
        // thread's may vanish as the thread exits (a health check's).
        let main = pid.to_string();
        let tasks = format!("/proc/{pid}/task");
        let mut out = parse(crate::files::read_proc(format!("{tasks}/{main}/children")).ok()?);
        for t in std::fs::read_dir(&tasks).ok()?.flatten() {
            if t.file_name().to_str() == Some(main.as_str()) {
                continue;
            }
            if let Ok(text) = crate::files::read_proc(t.path().join("children")) {
                out.extend(parse(text));
            }
        }
        Some(out)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}
