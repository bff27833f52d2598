//! A worktree's directory made again as another repository.

use std::path::Path;

use super::TestEnv;

impl TestEnv {
    /// Deletes the worktree at `path` and clones the main repository
    /// there: the same path, now a repository of its own.
    pub fn reclone(&self, path: &Path) {
        std::fs::remove_dir_all(path).unwrap();
        self.git_in(
            &self.root(),
            &[
                "clone",
                "-q",
                self.repo.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
        );
    }
}
