//! A file system of a test's own, to fill or to make read-only: a tmpfs
//! (the suite runs as root), unmounted when the test ends, failed or not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a directory of the test's, until dropped.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// A tmpfs of `size` (`mount`'s `size=`: `16k`, `1m`) at `path`, made
    /// here. Drop it before the test's directory is removed (declare it
    /// after the [`TestEnv`](super::TestEnv)).
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            path,
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills it up (a file `fill` of zeros): the next write that needs a
    /// block fails with "No space left on device".
    pub fn fill(&self) {
        let mut file = std::fs::File::create(self.path.join("fill")).unwrap();
        let zeros = [0u8; 4096];
        while file.write_all(&zeros).is_ok() {}
    }

    /// Remounts it read-only: every write fails with "Read-only file
    /// system", root's too.
    pub fn remount_read_only(&self) {
        mount(&["-o", "remount,ro"], &self.path);
    }
}

fn mount(args: &[&str], path: &Path) {
    let out = Command::new("mount").args(args).arg(path).output().unwrap();
    assert!(out.status.success(), "mount {args:?}: {out:?}");
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process of the test's that still has a file open there
        // cannot keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
