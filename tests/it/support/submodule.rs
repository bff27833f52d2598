//! A submodule added to a repository, as `git submodule add` makes it.

use std::path::Path;

use super::TestEnv;

impl TestEnv {
    /// Adds the repository at `module` to the one at `dir` as the
    /// submodule `name` (a local path: git refuses the file protocol
    /// unless allowed), not committed.
    pub fn add_submodule(&self, dir: &Path, module: &Path, name: &str) {
        self.git_in(
            dir,
            &[
                "-c",
                "protocol.file.allow=always",
                "submodule",
                "add",
                "-q",
                module.to_str().unwrap(),
                name,
            ],
        );
    }
}
