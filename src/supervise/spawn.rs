//! Starting a child: where its program is, and why it could not start.

use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;

use crate::exit::{self, Outcome};

/// Why a child could not be started, with the shell's exit codes.
#[derive(Debug)]
pub struct SpawnError {
    pub program: String,
    pub source: io::Error,
}

impl SpawnError {
    /// 127 not found, 126 found but not executable (as a shell says).
    pub fn outcome(&self) -> Outcome {
        match self.source.kind() {
            io::ErrorKind::NotFound => Outcome::Code(exit::NOT_FOUND),
            _ => Outcome::Code(exit::NOT_EXECUTABLE),
        }
    }

    /// `could not run foo: command not found`.
    pub fn message(&self) -> String {
        let why = match self.source.kind() {
            io::ErrorKind::NotFound => "command not found".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied (not executable)".to_owned(),
            _ => self.source.to_string(),
        };
        format!("could not run {}: {why}", self.program)
    }
}

/// Where `execvp` would find `program` on `path`, when that is certain: a
/// bare name found as an executable file before any empty (current
/// directory) entry. `None`: leave the search to exec (names with a `/`,
/// nothing found, ambiguity), which then reports 127/126 itself.
///
/// Why: duct passes the whole environment, PATH included, and std then
/// forks instead of using posix_spawn for a bare name; an absolute path
/// lets it spawn without copying wtenv's address space.
pub fn resolve_program(program: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if program.is_empty() || program.as_bytes().contains(&b'/') {
        return None;
    }
    for dir in std::env::split_paths(path?) {
        if dir.as_os_str().is_empty() {
            return None;
        }
        let candidate = dir.join(program);
        if candidate.is_file()
            && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn programs_resolve_like_execvp_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(
            resolve_program(OsStr::new("tool"), Some(&path)),
            Some(exe.clone())
        );
        // Left to exec: not executable (126 there), missing (127), paths.
        assert_eq!(resolve_program(OsStr::new("data"), Some(&path)), None);
        assert_eq!(resolve_program(OsStr::new("nope"), Some(&path)), None);
        assert_eq!(resolve_program(OsStr::new("./tool"), Some(&path)), None);
        // An empty entry is the current directory: exec decides.
        let with_cwd = std::env::join_paths([Path::new(""), dir.path()]).unwrap();
        assert_eq!(resolve_program(OsStr::new("tool"), Some(&with_cwd)), None);
    }

    #[test]
    fn spawn_errors_map_to_shell_codes() {
        let e = SpawnError {
            program: "nope".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(e.outcome(), Outcome::Code(127));
        assert!(e.message().contains("command not found"));
        let e = SpawnError {
            program: "./x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.outcome(), Outcome::Code(126));
    }
}
