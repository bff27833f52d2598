//! A process for a test to point at, that a failed assertion does not leak:
//! a plain one, and a `wtenv run` holding its worktree's ports.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::{TestEnv, wait_for};

/// A live `sleep 600`, killed and reaped on drop: a failed assertion
/// leaks nothing.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn new() -> Sleeper {
        Sleeper(
            std::process::Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `wtenv run`, ended as Ctrl-C would when dropped (a failed assertion
/// too leaves nothing running).
pub struct HeldRun(pub Child);

impl Drop for HeldRun {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// `wtenv run -- sleep 600` in `dir`, once its holds are recorded: the
/// process and the `(port, holder pid)` of each entry of `dir`, by port.
pub fn held_run(t: &TestEnv, dir: &Path) -> (HeldRun, Vec<(u16, u64)>) {
    let child = t
        .wtenv_in(dir, &["run", "--", "sleep", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = u64::from(child.id());
    let child = HeldRun(child);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let held = holds_of(t, dir);
            !held.is_empty() && held.iter().all(|(_, p)| *p == pid)
        }),
        "{}",
        t.registry()
    );
    let held = holds_of(t, dir);
    (child, held)
}

/// The `(port, first holder's pid)` of each entry recorded at `worktree`.
pub fn holds_of(t: &TestEnv, worktree: &Path) -> Vec<(u16, u64)> {
    if !t.registry_path().exists() {
        return Vec::new();
    }
    let mut held: Vec<(u16, u64)> = t.registry()["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["worktree"].as_str() == worktree.to_str())
        .map(|a| {
            let pid = a["holders"][0]["pid"].as_u64().unwrap_or(0);
            (a["port"].as_u64().unwrap() as u16, pid)
        })
        .collect();
    held.sort();
    held
}
