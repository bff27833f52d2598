//! The way out of something wtenv refuses at a path: the command that
//! removes it, and the hint that says so of a file planted where wtenv
//! keeps one of its own.

use std::path::Path;

/// The way out of something wtenv refuses at a path (a lock file, the
/// trust list): removing it ([`removal`]).
pub struct Removal {
    /// The command, with the path quoted for a message.
    pub command: String,
    /// It is `rm -r`: what the directory holds goes too, so its owner
    /// should see what that is first.
    pub recursive: bool,
}

/// The command that removes what is at `path`, looked at, not followed
/// (a link is the link's to remove). `rm` fails on a directory: an empty
/// one is `rmdir`'s, one that holds anything (or cannot be looked into)
/// `rm -r`'s.
pub fn removal(path: &Path) -> Removal {
    let quoted = crate::shell::quote_in_message(path);
    let (command, recursive) = if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        ("rm", false)
    } else if std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none()) {
        ("rmdir", false)
    } else {
        ("rm -r", true)
    };
    Removal {
        command: format!("{command} {quoted}"),
        recursive,
    }
}

/// The way out of something planted where wtenv keeps a file of its own (a
/// lock file, a worktree's stamp): removing it, by the command that removes
/// what is there ([`removal`]).
pub fn planted_hint(path: &Path) -> String {
    const PLANTED: &str = "something other than wtenv put it there";
    let Removal { command, recursive } = removal(path);
    if recursive {
        format!("{PLANTED}: see what it holds, then remove it ({command}); wtenv makes a new one")
    } else {
        format!("{PLANTED}: remove it ({command}), wtenv makes a new one")
    }
}
