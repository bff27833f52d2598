//! The exit status a shell in tmux saw, as the terminal tests read it.

use std::time::Duration;

use super::{TestEnv, Tmux, wait_for};

impl Tmux {
    /// Asks the shell for `$?` and waits (30 s at most) until the pane
    /// shows `rc=CODE`; fails with the pane otherwise.
    pub fn expect_status(&self, t: &TestEnv, code: i32) {
        self.line(t, "echo rc=$?");
        let want = format!("rc={code}");
        assert!(
            wait_for(Duration::from_secs(30), || self.pane(t).contains(&want)),
            "the shell did not see exit status {code}:\n{}",
            self.pane(t)
        );
    }
}
