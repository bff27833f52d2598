//! direnv's watch list, extended in-process; `direnv allow` of a new
//! worktree whose `.envrc` the user already allowed ([`allow_like`]); and
//! whether a worktree's `.envrc` has direnv load wtenv's variables, by
//! `use wtenv` or a Nix shell that runs `wtenv hook nix` ([`manages`]),
//! for the prompt hook, which then leaves the worktree to direnv.
//!
//! `use wtenv` must make direnv reload when the config or the worktree's
//! stamp changes. direnv's own `watch_file` starts a `direnv watch`
//! process, which alone made `direnv exec` of a `use wtenv` .envrc about
//! 1.3x one with a plain `export` (issue 4's budget is 1.2x). wtenv is
//! running anyway, so it extends the list itself: it prints
//! `export DIRENV_WATCHES=...` with its files added, exactly what
//! `direnv watch bash FILE...` prints.
//!
//! The format is direnv's "gzenv" (gzenv/gzenv.go, internal/cmd/
//! file_times.go in direnv 2.x): JSON `[{"path", "modtime", "exists"}]`,
//! zlib-compressed, then base64 with the URL alphabet and padding. `path`
//! is absolute and clean; `modtime` is the later of the `lstat` and `stat`
//! mtimes, in seconds; a missing file is `exists: false`. Anything this
//! code does not fully understand (no list in the environment, a shape or a
//! field it does not know, a path that is not UTF-8, a stat error other
//! than "not found") falls back to direnv's own `watch_file`: slower, never
//! wrong. Tests hold it equal to the real direnv both ways.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use serde::{Deserialize, Serialize};

use crate::git::Git;
use crate::process::printable_path;
use crate::shell::quote_posix;

/// A decoded list larger than this is not direnv's (it watches a handful
/// of files): refuse it rather than inflate without bound.
const MAX_DECODED: usize = 1 << 20;

/// One watched file, as direnv records it. direnv up to 2.32 writes the
/// keys capitalized (a Go struct without JSON tags), later ones in lower
/// case; Go's decoder matches keys case-insensitively, so every direnv
/// reads what this writes (lower case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTime {
    #[serde(alias = "Path")]
    pub path: String,
    #[serde(alias = "Modtime")]
    pub modtime: i64,
    #[serde(alias = "Exists")]
    pub exists: bool,
}

/// direnv's file in a directory.
pub const ENVRC: &str = ".envrc";

/// The most of an `.envrc`, or of the Nix file it loads, that
/// [`manages`] reads: such a file is a few lines; a larger one is not read.
const ENVRC_CAP: u64 = 64 * 1024;

/// How an `.envrc` has direnv load wtenv's variables: `use wtenv`, or a
/// Nix shell whose shellHook runs `wtenv hook nix` (`use flake`: the
/// worktree's `flake.nix`; `use nix`: its `shell.nix`, else
/// `default.nix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Wtenv,
    Flake,
    Nix,
}

impl Loader {
    /// The word after `use`, as the `.envrc` says it.
    pub fn word(self) -> &'static str {
        match self {
            Loader::Wtenv => "wtenv",
            Loader::Flake => "flake",
            Loader::Nix => "nix",
        }
    }
}

/// A worktree whose `.envrc` has direnv load its variables ([`manages`]):
/// how, and the files that tell (the `.envrc`, and for a Nix shell its
/// file), with their metadata, for the prompt hook's fingerprint.
#[derive(Debug)]
pub struct Managed {
    pub loader: Loader,
    pub files: Vec<(std::path::PathBuf, std::fs::Metadata)>,
}

/// Whether the `.envrc` at a worktree's `root` has direnv load wtenv's
/// variables: it says `use wtenv` (or `use_wtenv`); or it says `use
/// flake` and the worktree's `flake.nix` mentions `wtenv` (an input named
/// so, `wtenv.lib.shellHook`, `wtenv hook nix`); or `use nix` and its
/// `shell.nix` (else `default.nix`) does. Every file is read as data,
/// never run, and only a regular file of at most 64 KiB, opened without
/// following a link and without blocking: a link, a FIFO, a directory, a
/// larger file or one that cannot be read counts as none.
pub fn manages(root: &Path) -> Option<Managed> {
    let envrc = root.join(ENVRC);
    let (meta, text) = read_small(&envrc)?;
    let says = |word: &str| says_use(&text, word);
    if says(Loader::Wtenv.word()) {
        return Some(Managed {
            loader: Loader::Wtenv,
            files: vec![(envrc, meta)],
        });
    }
    let nix_file = |names: &[&str]| {
        names
            .iter()
            .map(|name| root.join(name))
            .find(|path| std::fs::symlink_metadata(path).is_ok())
    };
    [
        (Loader::Flake, nix_file(&["flake.nix"])),
        (Loader::Nix, nix_file(&["shell.nix", "default.nix"])),
    ]
    .into_iter()
    .filter(|(loader, _)| says(loader.word()))
    .find_map(|(loader, file)| {
        let file = file?;
        let (file_meta, text) = read_small(&file)?;
        text.contains("wtenv").then(|| Managed {
            loader,
            files: vec![(envrc.clone(), meta.clone()), (file, file_meta)],
        })
    })
}

/// The text of a small regular file ([`ENVRC_CAP`]), never through a
/// link, with its metadata.
fn read_small(path: &Path) -> Option<(std::fs::Metadata, String)> {
    let file = crate::files::open_read(path, false).ok()??;
    let meta = crate::files::require_regular(&file).ok()?;
    let bytes = crate::files::read_capped(&file, ENVRC_CAP, meta.len()).ok()?;
    Some((meta, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Whether a command of `text` (a line, or a part of one between `;`,
/// `&` and `|`), past the shell words that may open it (`then`, `do`,
/// `{`...), is `use WORD` or `use_WORD` (with any arguments). A comment
/// is no command.
fn says_use(text: &str, word: &str) -> bool {
    text.lines()
        .flat_map(|line| line.split('#').next().unwrap_or("").split([';', '&', '|']))
        .any(|command| {
            let mut words = command
                .split_whitespace()
                .skip_while(|w| matches!(*w, "then" | "else" | "do" | "{" | "(" | "!"));
            match words.next() {
                Some("use") => words.next() == Some(word),
                Some(joined) => joined.strip_prefix("use_") == Some(word),
                None => false,
            }
        })
}

/// The bash for an .envrc that makes direnv watch `paths`: an `export` of
/// the extended list when `current` (the inherited `DIRENV_WATCHES`) can be
/// extended here, else a `watch_file` line.
pub fn watch(current: Option<&str>, paths: &[&Path]) -> String {
    match current.and_then(|c| extended(c, paths)) {
        Some(list) => {
            format!(
                "export {}={}\n",
                crate::settings::DIRENV_WATCHES,
                quote_posix(&list)
            )
        }
        None => watch_file(paths),
    }
}

/// direnv's stdlib call, which runs `direnv watch`.
pub fn watch_file(paths: &[&Path]) -> String {
    let mut out = String::from("watch_file");
    for p in paths {
        out.push(' ');
        out.push_str(&quote_posix(&p.to_string_lossy()));
    }
    out.push('\n');
    out
}

/// `current` with `paths` added or refreshed, encoded; `None` when this
/// code cannot do it exactly as `direnv watch` would.
fn extended(current: &str, paths: &[&Path]) -> Option<String> {
    let mut list = decode(current)?;
    for path in paths {
        let time = stat(path)?;
        match list.iter_mut().find(|t| t.path == time.path) {
            Some(known) => *known = time,
            None => list.push(time),
        }
    }
    Some(encode(&list))
}

/// What `direnv watch` records for `path` (which must be absolute and
/// clean, as every path wtenv watches is).
fn stat(path: &Path) -> Option<FileTime> {
    if !path.is_absolute() {
        return None;
    }
    let path_str = path.to_str()?.to_owned();
    let times = std::fs::symlink_metadata(path)
        .and_then(|l| std::fs::metadata(path).map(|s| l.mtime().max(s.mtime())));
    match times {
        Ok(modtime) => Some(FileTime {
            path: path_str,
            modtime,
            exists: true,
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Some(FileTime {
            path: path_str,
            modtime: 0,
            exists: false,
        }),
        Err(_) => None,
    }
}

pub fn decode(value: &str) -> Option<Vec<FileTime>> {
    let zlib = URL_SAFE.decode(value.trim()).ok()?;
    let json = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&zlib, MAX_DECODED).ok()?;
    serde_json::from_slice(&json).ok()
}

pub fn encode(list: &[FileTime]) -> String {
    let json = serde_json::to_vec(list).expect("file times always serialize");
    URL_SAFE.encode(miniz_oxide::deflate::compress_to_vec_zlib(&json, 6))
}

/// `direnv allow NEW` when the source worktree's `.envrc` is allowed, the
/// new one's is the same file, byte for byte, and the new worktree's whole
/// checkout is the source's HEAD (the same `HEAD^{tree}`), so the new
/// worktree loads at once. An `.envrc` loads other files (`source`,
/// `dotenv`, `use flake`), so one that is the same over other files (the
/// new branch came from someone else) is code the user has not seen, as is
/// an `.envrc` that differs: it is left for them to review, with a warning.
/// When it runs `direnv allow`, a note says so and why. Best effort: the
/// worktree is made either way; without direnv, nothing is said. `git`
/// runs in `source`; its git steps, and the new worktree's, stop as it
/// does ([`Git::at`]).
pub fn allow_like(git: &Git, source: &Path, new: &Path) {
    const CAP: u64 = 1024 * 1024;
    let read = |dir: &Path| {
        crate::files::read_regular(&dir.join(ENVRC), CAP)
            .ok()
            .flatten()
    };
    let (Some(source_rc), Some(new_rc)) = (read(source), read(new)) else {
        return;
    };
    let status = std::process::Command::new("direnv")
        .arg("status")
        .current_dir(source)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(status) = status else {
        return; // direnv is not installed
    };
    // direnv 2.32 prints "Found RC allowed true", newer ones "... 0".
    let allowed = String::from_utf8_lossy(&status.stdout).lines().any(|l| {
        l.strip_prefix("Found RC allowed ")
            .is_some_and(|v| matches!(v.trim(), "true" | "0"))
    });
    if !allowed {
        return;
    }
    let not_allowed = |why: String| {
        crate::report::warn(&format!(
            "did not run direnv allow {}: {why}; review it, then run `direnv allow {}`",
            printable_path(new),
            printable_path(new)
        ));
    };
    if source_rc != new_rc {
        return not_allowed(format!(
            "its .envrc differs from the one allowed in {}",
            printable_path(source)
        ));
    }
    let head_tree = |dir: &Path| {
        git.at(dir)
            .lookup(&["HEAD^{tree}".to_owned()])
            .map(|mut found| found.pop().flatten().map(|(hash, _)| hash))
    };
    match (head_tree(source), head_tree(new)) {
        (Ok(Some(ours)), Ok(Some(theirs))) if ours == theirs => {}
        (Err(e), _) | (_, Err(e)) => {
            return not_allowed(format!(
                "could not compare its files with those of {} ({e}), which its .envrc may load",
                printable_path(source)
            ));
        }
        _ => {
            return not_allowed(format!(
                "its branch's files differ from those of {} (its HEAD), where the same .envrc is allowed, \
                 and the .envrc may load them (`source`, `dotenv`, `use flake`)",
                printable_path(source)
            ));
        }
    }
    match std::process::Command::new("direnv")
        .arg("allow")
        .arg(new)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => crate::report::note(&format!(
            "ran direnv allow {}: it and every file of its checkout are those of {} (its HEAD), where the .envrc is allowed",
            printable_path(&new.join(".envrc")),
            printable_path(source)
        )),
        Ok(out) => crate::report::warn(&format!(
            "direnv allow {} failed: {}",
            printable_path(new),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => crate::report::warn(&format!("could not run direnv allow: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(path: &str, modtime: i64, exists: bool) -> FileTime {
        FileTime {
            path: path.into(),
            modtime,
            exists,
        }
    }

    #[test]
    fn an_envrc_says_use_wtenv_in_a_command_of_its_own() {
        for says in [
            "use wtenv\n",
            "  use wtenv # ports\n",
            "eval \"$(wtenv hook direnv)\"; use wtenv",
            "has wtenv && use wtenv",
            "if has wtenv; then use wtenv; fi",
            "use_wtenv",
            "use flake\nuse wtenv",
        ] {
            assert!(says_use(says, "wtenv"), "{says:?}");
        }
        for not in [
            "",
            "# use wtenv",
            "echo use wtenv",
            "use wtenvx",
            "use flake",
            "use_wtenvx",
            "dotenv # use wtenv",
        ] {
            assert!(!says_use(not, "wtenv"), "{not:?}");
        }
    }

    /// `use flake` or `use nix` counts when the Nix file it loads (read
    /// as data, as the `.envrc` is) mentions wtenv; `use wtenv` first.
    #[test]
    fn a_nix_shell_counts_when_its_file_mentions_wtenv() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let loader = |root: &Path| manages(root).map(|m| (m.loader, m.files.len()));
        std::fs::write(root.join(ENVRC), "use flake . --impure\n").unwrap();
        assert_eq!(loader(root), None, "no flake.nix");
        std::fs::write(root.join("flake.nix"), "{ outputs = _: { }; }\n").unwrap();
        assert_eq!(loader(root), None, "a flake without wtenv");
        std::fs::write(
            root.join("flake.nix"),
            "{ shellHook = wtenv.lib.shellHook { }; }\n",
        )
        .unwrap();
        assert_eq!(loader(root), Some((Loader::Flake, 2)));
        std::fs::write(root.join(ENVRC), "use flake\nuse wtenv\n").unwrap();
        assert_eq!(loader(root), Some((Loader::Wtenv, 1)));
        // `use nix`: shell.nix, else default.nix; a flake.nix is not it.
        std::fs::write(root.join(ENVRC), "use_nix\n").unwrap();
        assert_eq!(loader(root), None);
        std::fs::write(root.join("default.nix"), "eval \"$(wtenv hook nix)\"").unwrap();
        assert_eq!(loader(root), Some((Loader::Nix, 2)));
        std::fs::write(root.join("shell.nix"), "{ }").unwrap();
        assert_eq!(loader(root), None, "shell.nix is the one nix-shell reads");
        // A link is none, as an .envrc that is one.
        std::fs::remove_file(root.join("shell.nix")).unwrap();
        std::fs::write(root.join(ENVRC), "use flake\n").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("flake.nix");
        std::fs::rename(root.join("flake.nix"), &target).unwrap();
        std::os::unix::fs::symlink(&target, root.join("flake.nix")).unwrap();
        assert_eq!(loader(root), None);
        for not in ["use flakes", "# use flake", "echo use flake", "use nixx"] {
            assert!(!says_use(not, "flake") && !says_use(not, "nix"), "{not:?}");
        }
    }

    #[test]
    fn an_envrc_is_read_only_when_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let envrc = dir.path().join(ENVRC);
        assert!(manages(dir.path()).is_none());
        std::fs::write(&envrc, "use wtenv\n").unwrap();
        assert!(manages(dir.path()).is_some());
        // A link to one that says it counts as none.
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&envrc, other.path().join(ENVRC)).unwrap();
        assert!(manages(other.path()).is_none());
        // A FIFO: not opened to block, none.
        std::fs::remove_file(&envrc).unwrap();
        nix::unistd::mkfifo(&envrc, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(manages(dir.path()).is_none());
        // Past the cap: none, whatever it says.
        std::fs::remove_file(&envrc).unwrap();
        let mut big = "use wtenv\n".to_owned();
        big.push_str(&"#".repeat(ENVRC_CAP as usize));
        std::fs::write(&envrc, big).unwrap();
        assert!(manages(dir.path()).is_none());
    }

    #[test]
    fn reads_both_key_styles() {
        let list =
            r#"[{"Path":"/a","Modtime":1,"Exists":true},{"path":"/b","modtime":0,"exists":false}]"#;
        let value = URL_SAFE.encode(miniz_oxide::deflate::compress_to_vec_zlib(
            list.as_bytes(),
            6,
        ));
        assert_eq!(
            decode(&value),
            Some(vec![time("/a", 1, true), time("/b", 0, false)])
        );
    }

    #[test]
    fn round_trips() {
        let list = vec![time("/a/.envrc", 1_700_000_000, true), time("/b", 0, false)];
        assert_eq!(decode(&encode(&list)), Some(list));
        assert_eq!(decode(&encode(&[])), Some(vec![]));
    }

    #[test]
    fn what_it_does_not_understand_falls_back_to_watch_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wtenv.toml");
        let unknown_field = URL_SAFE.encode(miniz_oxide::deflate::compress_to_vec_zlib(
            br#"[{"path":"/x","modtime":1,"exists":true,"hash":"y"}]"#,
            6,
        ));
        for current in [
            "not base64 !",
            &URL_SAFE.encode(b"not zlib"),
            &unknown_field,
        ] {
            let out = watch(Some(current), &[&file]);
            assert!(out.starts_with("watch_file '"), "{current}: {out}");
        }
        assert!(watch(None, &[&file]).starts_with("watch_file '"));
        assert!(watch(Some(&encode(&[])), &[Path::new("relative")]).starts_with("watch_file"));
    }

    #[test]
    fn adds_new_files_and_refreshes_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("wtenv.toml");
        std::fs::write(&there, "").unwrap();
        let missing = dir.path().join("wtenv.json");
        let there_str = there.to_str().unwrap();
        let before = vec![time("/r/.envrc", 5, true), time(there_str, 1, false)];
        let out = watch(Some(&encode(&before)), &[&there, &missing]);
        let value = out
            .strip_prefix("export DIRENV_WATCHES='")
            .and_then(|v| v.strip_suffix("'\n"))
            .unwrap_or_else(|| panic!("{out}"));
        let mtime = std::fs::metadata(&there).unwrap().mtime();
        assert_eq!(
            decode(value).unwrap(),
            vec![
                time("/r/.envrc", 5, true),
                time(there_str, mtime, true),
                time(missing.to_str().unwrap(), 0, false),
            ]
        );
    }
}
