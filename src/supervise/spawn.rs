//! Starting a child: clean, and why it could not start.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::exit::{self, Outcome};

/// Why a child could not be started, with the shell's exit codes.
#[derive(Debug)]
pub struct SpawnError {
    /// How the message names it: the command as given (`run`), or
    /// `service web` (`up`).
    pub program: String,
    /// What was executed: the command's first word, a path or a name
    /// looked up in PATH (looked up again to say why it did not start).
    pub command: OsString,
    pub source: io::Error,
    /// The directory the child was to start in, when wtenv chose it
    /// (`up`'s services: the worktree's root); `None` when the child
    /// inherits wtenv's own, which `run` checked before (see
    /// [`SpawnError::gone_dir`]).
    pub dir: Option<PathBuf>,
}

/// A command not found that names a file that is there: `execve` says
/// ENOENT too when the file's `#!` interpreter or an ELF's dynamic loader
/// is missing, and "command not found" sent the user looking for a file
/// they could see.
struct Missing {
    /// The file: the path as given, or the one found in PATH.
    file: PathBuf,
    /// The interpreter its first line names; `None` when it names none.
    interpreter: Option<String>,
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
        let mut at = String::new();
        let why = if let Some(dir) = self.gone_dir() {
            format!(
                "its working directory {} is gone",
                crate::process::printable_path(dir)
            )
        } else {
            match self.source.kind() {
                io::ErrorKind::NotFound => match self.missing() {
                    Some(missing) => {
                        at = self.named(&missing.file);
                        match missing.interpreter {
                        Some(interpreter) => format!(
                            "its interpreter {} (its #! line) was not found",
                            crate::process::printable(&interpreter)
                        ),
                        None => "it is there, but what it needs to start (a #! interpreter, a dynamic loader) was not found".to_owned(),
                    }
                    }
                    None => {
                        // `up`'s `./serve` is the root's file, wherever `up`
                        // was started: say which file was not there.
                        if self.command.as_bytes().contains(&b'/') {
                            at = self.named(Path::new(&self.command));
                            "command not found".to_owned()
                        } else if self.command.as_os_str() != self.program.as_str() {
                            // `up`'s `service web` does not say which command.
                            format!(
                                "{}: command not found",
                                crate::process::printable(&self.command.to_string_lossy())
                            )
                        } else {
                            "command not found".to_owned()
                        }
                    }
                },
                io::ErrorKind::PermissionDenied => match self.found(|_| true) {
                    Some(file) => {
                        at = self.named(&file);
                        if file.is_dir() {
                            "is a directory".to_owned()
                        } else {
                            "permission denied (not executable)".to_owned()
                        }
                    }
                    None => "permission denied (not executable)".to_owned(),
                },
                io::ErrorKind::ArgumentListTooLong => format!(
                    "its command line and environment are larger than the system allows ({})",
                    self.source
                ),
                _ => self.source.to_string(),
            }
        };
        // An empty name would read "could not run : ...".
        let program = match self.program.as_str() {
            "" => "''",
            p => p,
        };
        format!("could not run {program}{at}: {why}")
    }

    /// ` (/usr/local/bin/serve, found in PATH)`: the file, after the
    /// program's name when that does not say it already (a bare name, or
    /// `up`'s `service web`).
    fn named(&self, file: &Path) -> String {
        let shown = crate::process::printable_path(file);
        if file.as_os_str() == self.program.as_str() {
            String::new()
        } else if self.command.as_bytes().contains(&b'/') {
            format!(" ({shown})")
        } else {
            format!(" ({shown}, found in PATH)")
        }
    }

    /// The directory the child was to start in, when it is not there now:
    /// the child's `chdir` failed, which its `exec` would have said as
    /// ENOENT too, and naming the command (or its `#!` interpreter, when
    /// the command is there) sent the user looking for the wrong thing.
    /// Checked after the failed spawn, as the command's file is.
    fn gone_dir(&self) -> Option<&Path> {
        let dir = self.dir.as_deref()?;
        if self.source.kind() != io::ErrorKind::NotFound {
            return None;
        }
        match dir.metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(dir),
            _ => None,
        }
    }

    /// The file a command not found names, when it is there, and the
    /// interpreter its first line names. A path is the file as given (`up`
    /// gives a relative one made absolute from the worktree's root:
    /// [`in_dir`]; `run`'s is relative to wtenv's own directory, which is
    /// its child's). A bare name is looked up in PATH as `execvp`
    /// does: the first regular file of that name, in PATH's absolute
    /// directories; a relative one (`.`, an empty entry) names a directory
    /// that depends on where the child runs, and is skipped.
    fn missing(&self) -> Option<Missing> {
        use std::io::Read;
        // Regular files only: a FIFO there would block the read.
        let file = self.found(|m| m.is_file())?;
        let mut head = Vec::with_capacity(256);
        let read = std::fs::File::open(&file).and_then(|f| f.take(256).read_to_end(&mut head));
        let interpreter = read.ok().and_then(|_| {
            let line = head.strip_prefix(b"#!")?.split(|&b| b == b'\n').next()?;
            let word = String::from_utf8_lossy(line);
            word.split_whitespace().next().map(str::to_owned)
        });
        Some(Missing { file, interpreter })
    }

    /// The file the command names, when one that `wanted` accepts is
    /// there: the path as given, or the first of PATH's absolute
    /// directories that has one (a relative entry depends on where the
    /// child runs, and is skipped). `execvp` skips a directory or a file
    /// it may not execute and says EACCES when nothing else is found: the
    /// first such entry is the one to name.
    fn found(&self, wanted: impl Fn(&std::fs::Metadata) -> bool) -> Option<PathBuf> {
        let command = Path::new(&self.command);
        let there = |p: &Path| p.metadata().is_ok_and(|m| wanted(&m));
        if self.command.as_bytes().contains(&b'/') {
            Some(command.to_path_buf()).filter(|p| there(p))
        } else if self.command.is_empty() {
            None
        } else {
            std::env::split_paths(crate::settings::path()?)
                .filter(|dir| dir.is_absolute())
                .map(|dir| dir.join(command))
                .find(|p| there(p))
        }
    }

    /// What to do about it (`run` and `up` alike). Only a command that is
    /// missing or not executable is the command's own fault: a limit of
    /// the system (E2BIG, EMFILE, EAGAIN) is not fixed by checking its name.
    pub fn hint(&self) -> String {
        if self.gone_dir().is_some() {
            return "its worktree was moved or removed: 'wtenv list' shows the worktrees and where they are".to_owned();
        }
        let hint = match self.source.kind() {
            io::ErrorKind::NotFound => match self.missing() {
                Some(Missing {
                    file,
                    interpreter: Some(interpreter),
                }) => {
                    return format!(
                        "install {}, or fix the first line of {}",
                        crate::process::printable(&interpreter),
                        crate::process::printable_path(&file)
                    );
                }
                Some(_) => "check that it was built for this system (file(1) tells)",
                None => "check the command's name, PATH and permissions",
            },
            io::ErrorKind::PermissionDenied => {
                if self.found(|m| m.is_dir()).is_some() {
                    "name a program, not a directory"
                } else {
                    "check the command's name, PATH and permissions"
                }
            }
            io::ErrorKind::ArgumentListTooLong => {
                "unset large environment variables (env | wc -c counts them), or shorten the command line (at most 128 KiB per argument)"
            }
            _ => crate::error::too_many_files_hint(&self.source)
                .unwrap_or("check the system's limits (ulimit -a), then run it again"),
        };
        hint.to_owned()
    }
}

/// Makes a child start clean: with the signal dispositions and mask wtenv
/// was started with, and nothing of glibc's own.
///
/// Why: std starts a child with posix_spawn when it can, and glibc's
/// posix_spawn sets its internal signals (32 and 33, used for thread
/// cancellation and set*id) to "ignored" in the child, which `exec` keeps:
/// every child, and everything it starts, would ignore them. The fork and
/// exec path leaves them as they were (handled, so reset by `exec`). std
/// takes that path when a group id is to be set; setting the one we run
/// as changes nothing. Dispositions wtenv handles itself reset to the
/// default at `exec`; the ones it left ignored (see `signal`) stay ignored;
/// the mask is inherited as it is (wtenv's threads block nothing).
pub fn start_clean(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let gid = nix::unistd::getgid();
    // With a set-group-ID wtenv, setgid(real gid) would drop the effective
    // one: leave such a process on the posix_spawn path.
    if nix::unistd::getegid() == gid {
        command.gid(gid.as_raw());
    }
}

/// Shell keywords and builtins: a line that starts with one needs `sh`.
const SHELL_WORDS: &[&str] = &[
    ".", "alias", "bg", "builtin", "case", "cd", "command", "eval", "exec", "exit", "export", "fg",
    "for", "hash", "if", "jobs", "local", "read", "readonly", "return", "set", "shift", "source",
    "time", "trap", "type", "ulimit", "umask", "unset", "until", "wait", "while",
];

/// How a service's `run` line is run: its words, exec'd directly, when it
/// has no shell syntax (only words of letters, digits and `-_./:,=+%@^`,
/// not starting with `VAR=value` or a shell keyword or builtin); else
/// `sh -c LINE`. Without the shell the
/// command is the child itself, so `LISTEN_PID` names it (README
/// "Sockets instead of port numbers").
pub fn command_words(line: &str) -> Vec<std::ffi::OsString> {
    let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    let direct = !words.is_empty()
        && !words[0].contains('=')
        && !SHELL_WORDS.contains(&words[0])
        && words
            .iter()
            .all(|w| w.chars().all(crate::shell::plain_word_char));
    if direct {
        words.into_iter().map(Into::into).collect()
    } else {
        ["sh", "-c", line].into_iter().map(Into::into).collect()
    }
}

/// A service's `argv` as run in `dir`, the directory it runs in (the
/// worktree's root): a program path with a `/` that is not absolute
/// (`./serve`, `bin/serve`) is `dir`'s file, made absolute here; a bare
/// name is left to PATH, `sh -c LINE` to the shell (which runs in `dir`).
///
/// Why: given `.dir()`, duct makes such a path absolute from wtenv's own
/// directory (it prefers Windows' rule), so `up` started in a
/// subdirectory looked for `sub/./serve` and said "command not found".
/// std alone would find it in the child's directory (its chdir comes
/// before the exec), but an absolute path leaves nothing to either
/// (duct also resolved links, so the program's `argv[0]` was the link's
/// target). `run -- ./serve` is not a service: the user's own command
/// line runs from where it is typed, as in a shell.
pub fn in_dir(mut argv: Vec<OsString>, dir: &Path) -> Vec<OsString> {
    if let Some(program) = argv.first_mut()
        && program.as_bytes().contains(&b'/')
        && Path::new(program).is_relative()
    {
        // `components` drops the `.` of `./serve`; `..` stays (a link
        // on the way makes it mean something else than a lexical step).
        let path: PathBuf = dir.join(&*program).components().collect();
        *program = path.into_os_string();
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lines_without_shell_syntax_are_exec_d_directly() {
        let words = |l: &str| -> Vec<String> {
            command_words(l)
                .into_iter()
                .map(|w| w.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            words("uvicorn app:asgi --fd 3  --log-level=warning"),
            ["uvicorn", "app:asgi", "--fd", "3", "--log-level=warning"]
        );
        assert_eq!(words("node server.js"), ["node", "server.js"]);
        for shell in [
            "uvicorn app:app --port $API_PORT",
            "exec node server.js",
            "PORT=1 node s.js",
            "npm run dev && echo done",
            "python3 -c 'print(1)'",
            "a | b",
            "echo ~",
            "cmd > log",
            "x\nnext",
            "",
        ] {
            assert_eq!(words(shell), ["sh", "-c", shell], "{shell:?}");
        }
    }

    #[test]
    fn a_relative_program_path_is_the_service_directory_s_file() {
        let dir = Path::new("/w/repo");
        let run = |words: &[&str]| -> Vec<String> {
            in_dir(words.iter().map(Into::into).collect(), dir)
                .into_iter()
                .map(|w| w.into_string().unwrap())
                .collect()
        };
        assert_eq!(run(&["./serve", "./x"]), ["/w/repo/serve", "./x"]);
        assert_eq!(run(&["bin/serve", "--dev"]), ["/w/repo/bin/serve", "--dev"]);
        assert_eq!(run(&["../tools/serve"]), ["/w/repo/../tools/serve"]);
        // Absolute, a name for PATH, the shell: as they are.
        assert_eq!(run(&["/usr/bin/serve"]), ["/usr/bin/serve"]);
        assert_eq!(run(&["serve", "a/b"]), ["serve", "a/b"]);
        assert_eq!(run(&["sh", "-c", "./serve"]), ["sh", "-c", "./serve"]);
        assert!(run(&[]).is_empty());
    }

    #[test]
    fn a_path_not_found_is_named_unless_it_is_the_command_as_typed() {
        let missing = |program: &str, command: &str| SpawnError {
            program: program.into(),
            command: command.into(),
            source: io::Error::from(io::ErrorKind::NotFound),
            dir: None,
        };
        assert_eq!(
            missing("service web", "/nonexistent/wtenv/serve").message(),
            "could not run service web (/nonexistent/wtenv/serve): command not found"
        );
        assert_eq!(
            missing("./nonexistent-serve", "./nonexistent-serve").message(),
            "could not run ./nonexistent-serve: command not found"
        );
        assert_eq!(
            missing("service web", "wtenv-no-such-command").message(),
            "could not run service web: wtenv-no-such-command: command not found"
        );
    }

    #[test]
    fn a_working_directory_gone_is_named_not_the_command() {
        // `sh` is there: without the check, its missing "#! interpreter"
        // was blamed.
        let gone = |dir: &str| SpawnError {
            program: "service web".into(),
            command: "sh".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
            dir: Some(dir.into()),
        };
        let e = gone("/nonexistent/wtenv/worktree");
        assert_eq!(
            e.message(),
            "could not run service web: its working directory /nonexistent/wtenv/worktree is gone"
        );
        assert!(e.hint().contains("'wtenv list'"), "{}", e.hint());
        assert_eq!(e.outcome(), Outcome::Code(127));
        // A directory that is there: the command is to blame.
        let e = SpawnError {
            command: "wtenv-no-such-command".into(),
            ..gone("/")
        };
        assert_eq!(
            e.message(),
            "could not run service web: wtenv-no-such-command: command not found"
        );
    }

    #[test]
    fn spawn_errors_map_to_shell_codes() {
        let e = SpawnError {
            program: "nope".into(),
            command: "nope".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
            dir: None,
        };
        assert_eq!(e.outcome(), Outcome::Code(127));
        assert!(e.message().contains("command not found"));
        let e = SpawnError {
            program: "./x".into(),
            command: "./x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
            dir: None,
        };
        assert_eq!(e.outcome(), Outcome::Code(126));
    }
}
