//! Every environment variable wtenv reads, read here and nowhere else
//! (README, "Environment variables", lists them with their defaults).
//!
//! Each is read at most once, when first asked for: `wtenv env` runs on
//! every `cd` and reads only what its path needs. What a variable means is
//! decided by the module of its concept (the registry parses the lock
//! timeout, `lib` the log filter); this module only finds the values. An
//! empty value counts as unset, except where the name's presence is the
//! signal (the shell hook's own variables).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Overrides the state directory (registry, locks, trust list, logs).
pub const STATE_DIR: &str = "WTENV_STATE_DIR";
/// How long to wait for a lock: seconds (`30`) or a duration (`500ms`).
pub const LOCK_TIMEOUT: &str = "WTENV_LOCK_TIMEOUT";
/// Diagnostics filter: a level or `tracing` directives.
pub const LOG: &str = "WTENV_LOG";
/// Set by the shell function: the file `enter` writes its target into.
pub const CD_FILE: &str = "WTENV_CD_FILE";
/// `create` runs `git worktree add` with this variable naming the new
/// worktree (its path), its purpose and its identifier, so that git's
/// hooks (a `post-checkout` calling `wtenv env`) see them before `create`
/// writes them into the worktree's git dir. Read only for that path, and
/// only while the git dir holds no record yet.
pub const CREATING: &str = "WTENV_CREATING";
/// Set by the prompt hook: the names it exported, `:`-separated.
pub const HOOK_DIFF: &str = "__WTENV_DIFF";
/// Set by the prompt hook: as a JSON object, the values its variables had
/// before it set them (restored on leaving, as direnv does); a name it
/// lacks was unset.
pub const HOOK_SAVED: &str = "__WTENV_SAVED";
/// Set by the prompt hook: the trust warning it last showed, so that a
/// `cd` inside the same worktree does not repeat it.
pub const HOOK_WARNED: &str = "__WTENV_WARNED";
/// Set by the prompt hook: the fingerprint of the files its last load
/// depended on, so that a `cd` inside the same worktree reloads only when
/// one of them changed (see `env --hook`).
pub const HOOK_LOADED: &str = "__WTENV_LOADED";
/// Set by the shell function on its `env --hook` command (never
/// exported): `1` when direnv's hook is installed in that shell.
pub const HOOK_DIRENV: &str = "__WTENV_DIRENV";
/// Set by direnv: the files it watches (extended, never replaced).
pub const DIRENV_WATCHES: &str = "DIRENV_WATCHES";
/// The socket-activation protocol: how many sockets start at fd 3.
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// The socket-activation protocol: the pid the sockets are for.
pub const LISTEN_PID: &str = "LISTEN_PID";
/// The socket-activation protocol: the sockets' names, `:`-separated.
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";

/// One variable, read once: `None` when unset or empty.
macro_rules! once {
    ($name:expr) => {
        once!($name, raw).filter(|v| !v.is_empty())
    };
    ($name:expr, raw) => {{
        static VALUE: OnceLock<Option<OsString>> = OnceLock::new();
        VALUE.get_or_init(|| std::env::var_os($name)).as_ref()
    }};
}

/// A base directory from the environment (`HOME`, `XDG_*_HOME`): absolute
/// only. A relative one is ignored, as the XDG base directory spec says:
/// it would name a different place from every directory the user enters,
/// one the repository there may have shipped (its own trust list).
fn base_dir(value: Option<&'static OsString>) -> Option<&'static OsString> {
    value.filter(|v| Path::new(v).is_absolute())
}

fn home() -> Option<&'static OsString> {
    base_dir(once!("HOME"))
}

/// The variable [`state_dir`] came from, with its value (the registry
/// decides what may be made below it).
#[derive(Debug, Clone, Copy)]
pub enum StateDirFrom {
    /// `WTENV_STATE_DIR`, the directory itself.
    StateDir,
    /// `XDG_STATE_HOME`, and `HOME` when it is set too.
    XdgStateHome(&'static Path, Option<&'static Path>),
    /// `HOME`.
    Home(&'static Path),
}

/// `$WTENV_STATE_DIR`, else `$XDG_STATE_HOME/wtenv`, else
/// `$HOME/.local/state/wtenv`, with where it came from; `None` when none
/// is set.
pub fn state_dir() -> Option<(PathBuf, StateDirFrom)> {
    if let Some(d) = once!(STATE_DIR) {
        Some((PathBuf::from(d), StateDirFrom::StateDir))
    } else if let Some(d) = base_dir(once!("XDG_STATE_HOME")) {
        let home = home().map(Path::new);
        Some((
            Path::new(d).join("wtenv"),
            StateDirFrom::XdgStateHome(Path::new(d), home),
        ))
    } else {
        home().map(|h| {
            (
                Path::new(h).join(".local/state/wtenv"),
                StateDirFrom::Home(Path::new(h)),
            )
        })
    }
}

/// Where the user's own systemd units go: `$XDG_CONFIG_HOME/systemd/user`,
/// else `$HOME/.config/systemd/user`.
pub fn systemd_user_dir() -> Option<PathBuf> {
    match base_dir(once!("XDG_CONFIG_HOME")) {
        Some(config) => Some(PathBuf::from(config).join("systemd/user")),
        None => home().map(|h| PathBuf::from(h).join(".config/systemd/user")),
    }
}

/// Where the user's own launchd agents go: `$HOME/Library/LaunchAgents`.
pub fn launch_agents_dir() -> Option<PathBuf> {
    home().map(|h| PathBuf::from(h).join("Library/LaunchAgents"))
}

/// `WTENV_LOCK_TIMEOUT`, unparsed (the registry says what it accepts).
pub fn lock_timeout() -> Option<&'static OsString> {
    once!(LOCK_TIMEOUT)
}

/// `WTENV_LOG`, unparsed; `None` when unset or blank.
pub fn log() -> Option<&'static OsString> {
    once!(LOG).filter(|v| !v.to_string_lossy().trim().is_empty())
}

/// `NO_COLOR` is set (to anything but empty): no colour on any stream
/// unless `--color always`.
pub fn no_color() -> bool {
    once!("NO_COLOR").is_some()
}

/// `TERM` names a terminal that shows colour: set, and not `dumb` (Emacs'
/// shell, some CI logs), which prints escape codes as they are. The rule
/// clap applies to `--help`, so both agree.
pub fn term_shows_color() -> bool {
    once!("TERM").is_some_and(|term| term != "dumb")
}

/// `PATH`, where a command named without a `/` is found: read only to
/// say why `run` or `up` could not start one (the system looks it up
/// itself, in the same value).
pub fn path() -> Option<&'static OsString> {
    once!("PATH")
}

/// `WTENV_CD_FILE`.
pub fn cd_file() -> Option<&'static OsString> {
    once!(CD_FILE)
}

/// `WTENV_CREATING`, when it is text.
pub fn creating() -> Option<&'static str> {
    once!(CREATING).and_then(|v| v.to_str())
}

/// `DIRENV_WATCHES`, when it is text (empty included: direnv's own
/// encoding says what it holds).
pub fn direnv_watches() -> Option<&'static str> {
    once!(DIRENV_WATCHES, raw).and_then(|v| v.to_str())
}

/// The shell hook's state: what its last run exported (`HOOK_DIFF`) and
/// the values that hid (`HOOK_SAVED`). `None` when unset; set but empty is
/// `Some("")` (the hook ran and exported nothing).
pub fn hook_state() -> (Option<&'static OsString>, Option<&'static OsString>) {
    (once!(HOOK_DIFF, raw), once!(HOOK_SAVED, raw))
}

/// The trust warning the shell hook last showed (`HOOK_WARNED`).
pub fn hook_warned() -> Option<&'static str> {
    once!(HOOK_WARNED).and_then(|v| v.to_str())
}

/// The fingerprint of the shell hook's last load (`HOOK_LOADED`).
pub fn hook_loaded() -> Option<&'static str> {
    once!(HOOK_LOADED).and_then(|v| v.to_str())
}

/// Whether the shell function said direnv's hook is installed in its
/// shell (`HOOK_DIRENV` is `1`).
pub fn hook_beside_direnv() -> bool {
    once!(HOOK_DIRENV).is_some_and(|v| v == "1")
}

/// `LISTEN_FDS`, when it is text.
pub fn listen_fds() -> Option<&'static str> {
    once!(LISTEN_FDS).and_then(|v| v.to_str())
}

/// `LISTEN_PID`, when it is text.
pub fn listen_pid() -> Option<&'static str> {
    once!(LISTEN_PID).and_then(|v| v.to_str())
}

/// `LISTEN_FDNAMES`, when it is text.
pub fn listen_fdnames() -> Option<&'static str> {
    once!(LISTEN_FDNAMES).and_then(|v| v.to_str())
}

/// The value of a variable wtenv does not interpret but passes on or
/// compares: the environment of a background unit, a value the shell hook
/// may overwrite, whether a child's variable is already set. Read where
/// it is used, uncached: the names are the caller's.
pub fn passed(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}
