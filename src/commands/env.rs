//! `wtenv env`: the variables of the worktree around the current directory.
//!
//! The hot path (every `cd` under direnv or the prompt hook): when every
//! service has its allocation, it takes only the shared lock and writes
//! nothing; it probes the worktree's own ports (allocation rule 5) and reads /proc
//! only when one is busy. No git subprocess, no network.
//!
//! `--hook` is the prompt hook's mode (shell-hooks/wtenv.*): outside a
//! worktree with a `wtenv.toml`/`wtenv.json` it allocates nothing and reads
//! no registry; it unsets what `$__WTENV_DIFF` says the hook exported before
//! and no longer applies, and records the names it exports in
//! `__WTENV_DIFF`. Inside the worktree the shell last loaded, it prints
//! nothing while none of the files that load depended on changed
//! (`__WTENV_LOADED`): a value the user set by hand stays, as under
//! direnv. On failure it still prints (on stdout) the lines that
//! unset everything exported before, so a shell that evals its stdout is
//! never left half-set, and says that `wtenv reload` loads once fixed.
//! When the shell function says direnv's hook is installed too
//! (`__WTENV_DIRENV`), it leaves a worktree whose `.envrc` has direnv
//! load its variables (`use wtenv`, or `use flake`/`use nix` of a Nix
//! shell that runs wtenv's hook) to direnv ([`beside_direnv`]). `--direnv` adds what makes direnv
//! watch the config and the worktree's stamp (never the shared registry):
//! see [`direnv`].

use std::path::{Path, PathBuf};

use crate::alloc::HoldMode;
use crate::config::refused_name;
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::exit::Outcome;
use crate::ports::{Verified, ensure_verified, hold_for, verify};
use crate::shell::{self, Format};
use crate::{direnv, exports, output, report, settings, supervise, trust};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "bash")]
    pub format: Format,
    /// Tie the allocations this makes to PID (e.g. a `nix develop` shell's
    /// `$$`): they are released once PID is gone.
    // `allow_hyphen_values`: a negative value reaches the parser, which
    // says what it takes (clap called it an unknown flag).
    #[arg(long, value_name = "PID", allow_hyphen_values = true)]
    pub hold: Option<u32>,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
    /// Prompt-hook mode (used by `wtenv hook bash|zsh|fish`): nothing
    /// outside a configured worktree; unsets what `$__WTENV_DIFF` lists.
    #[arg(long, conflicts_with_all = ["hold", "direnv"])]
    pub hook: bool,
    /// Also make direnv watch the config and the worktree's stamp (used by
    /// `wtenv hook direnv`).
    #[arg(long)]
    pub direnv: bool,
}

pub fn run(args: Args, ctx: impl FnOnce() -> Result<Ctx>) -> Result<Outcome> {
    if args.hook {
        return run_hook(&args, ctx);
    }
    let ctx = &ctx()?;
    match load(&args, ctx) {
        Ok(text) => output::stdout(&text)?,
        // direnv reloads once the config is fixed: the config is watched
        // where wtenv looks for it, so the hooks (`use wtenv`, the nix
        // hook under direnv) eval this output on failure too.
        Err(err) if args.direnv => {
            if let Some(files) = watched_on_failure(ctx) {
                let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
                output::stdout(&direnv::watch(settings::direnv_watches(), &files))?;
            }
            return Err(err);
        }
        Err(err) => return Err(err),
    }
    Ok(Outcome::SUCCESS)
}

/// The variables (and with `--direnv`, what direnv watches), as shell
/// code in `args.format`.
fn load(args: &Args, ctx: &Ctx) -> Result<String> {
    let scope = ctx.scope()?;
    let mode = match args.hold {
        None => HoldMode::Reserve,
        Some(pid) => HoldMode::HoldAll(hold_for(pid)?),
    };
    // A value the format cannot carry is refused before anything is written.
    let accept = |vars: &[(String, String)]| shell::check(args.format, vars);
    let vars = ensure_verified(ctx, &scope, &mode, args.skip_occupied, &accept)?.vars;
    if let HoldMode::HoldAll(hold) = &mode {
        // Its holds are released once it ends, however it ends.
        supervise::watcher::ensure(&ctx.registry, hold.process());
    }
    let mut text = shell::render(args.format, &vars)?;
    if args.direnv {
        let files = watched_files(ctx, &scope)?;
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        text.push_str(&direnv::watch(settings::direnv_watches(), &files));
    }
    Ok(text)
}

/// What direnv reloads on after a failed load: the config where wtenv
/// looks for it (`--config`, else both names at the worktree's root,
/// whichever directory below it holds the `.envrc`), so that fixing it
/// reloads. `None` where there is nothing of wtenv's to watch: outside a
/// worktree, or the directory gone.
fn watched_on_failure(ctx: &Ctx) -> Option<Vec<PathBuf>> {
    if let Some(p) = &ctx.config_path {
        return Some(vec![crate::worktree::normalize(&ctx.absolute(p).ok()?)]);
    }
    let root = ctx.worktree_here().ok()??.root;
    Some(vec![
        root.join(crate::config::TOML_NAME),
        root.join(crate::config::JSON_NAME),
    ])
}

/// What direnv reloads on: the config (both names at the worktree's root,
/// so that creating one reloads, and creating the other beside it, which
/// is an error, too) and the worktree's stamp.
fn watched_files(ctx: &Ctx, scope: &Scope) -> Result<Vec<PathBuf>> {
    let mut files = match &ctx.config_path {
        // direnv records absolute, clean paths.
        Some(p) => vec![crate::worktree::normalize(&ctx.absolute(p)?)],
        None => vec![
            scope.worktree.root.join(crate::config::TOML_NAME),
            scope.worktree.root.join(crate::config::JSON_NAME),
        ],
    };
    files.push(scope.worktree.stamp_path());
    // `wtenv trust` then reloads direnv by itself. Only for a config with
    // something to trust: the list changes rarely, by the user's own hand.
    if scope.config.untrusted_names().next().is_some() {
        files.push(ctx.registry.sibling(trust::FILE_NAME));
    }
    Ok(files)
}

/// The prompt hook's run. Whatever fails, the context included (the
/// current directory deleted under the shell, no state directory), the
/// lines that give back what the hook exported before are printed: the
/// shell must not keep a worktree's ports it cannot vouch for.
fn run_hook(args: &Args, ctx: impl FnOnce() -> Result<Ctx>) -> Result<Outcome> {
    let (diff, saved) = settings::hook_state();
    let previous: Vec<String> = diff
        .and_then(|d| d.to_str())
        .unwrap_or_default()
        .split(':')
        // The names are printed unquoted in `unset` lines: only names a
        // shell accepts as variables, whatever the environment holds; and
        // of those a config may not set (`PATH`, `LD_PRELOAD`...), only
        // the ones the hook exports itself: another program may have set
        // these two variables.
        .filter(|n| refused_name(n).is_none() || is_hook_export(n))
        .map(str::to_owned)
        .collect();
    let before = Before {
        names: previous,
        saved: saved
            .and_then(|s| s.to_str())
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        had_diff: diff.is_some(),
        had_saved: saved.is_some(),
    };
    let current = |name: &str| settings::passed(name).and_then(|v| v.into_string().ok());
    match ctx().and_then(|ctx| hook_variables(args, &ctx, &before)) {
        // The same worktree, nothing it depends on changed: the shell
        // keeps what it has, a value the user set by hand included.
        Ok(None) => Ok(Outcome::SUCCESS),
        Ok(Some(load)) => {
            let changes = hook_changes(&before, load, current);
            output::stdout(&shell::render_hook(args.format, &changes)?)?;
            Ok(Outcome::SUCCESS)
        }
        Err(err) => {
            let changes = hook_changes(&before, Load::default(), current);
            output::stdout(&shell::render_hook(args.format, &changes)?)?;
            // The hook does not run again at the next prompt (the
            // directory did not change): said here, after the error's own
            // hint, so the user knows how to load once it is fixed.
            report::error(&err);
            report::hint(RETRY_HINT);
            Ok(err.exit_code())
        }
    }
}

/// What the prompt hook says after a failed load (README "Shell
/// integration").
pub const RETRY_HINT: &str =
    "once that is fixed, 'wtenv reload' (or the next cd) loads this directory's variables";

/// A name a config may not set that the prompt hook exports itself: the
/// provenance variables, and the trust line it last said.
fn is_hook_export(name: &str) -> bool {
    exports::PROVENANCE.contains(&name)
        || name == settings::HOOK_WARNED
        || name == settings::HOOK_LOADED
}

/// What the prompt hook had done before this prompt.
#[derive(Debug, Default)]
struct Before {
    /// The names it exported (`__WTENV_DIFF`), checked as names.
    names: Vec<String>,
    /// Their values before it exported them (`__WTENV_SAVED`).
    saved: std::collections::BTreeMap<String, String>,
    had_diff: bool,
    had_saved: bool,
}

/// What the hook's run found to export.
#[derive(Debug, Default)]
struct Load {
    /// The variables it exports now.
    vars: Vec<(String, String)>,
    /// Names it exported before that direnv has since set over it
    /// ([`beside_direnv`]): it keeps them in its bookkeeping, with the
    /// value the user had, and prints nothing for them.
    kept: Vec<String>,
}

/// What the hook prints, in order: its own bookkeeping first, then for
/// each variable it set before and no longer sets nor keeps, the value
/// the user had before (or an unset when there was none), then `vars`. A
/// variable it keeps setting, or keeps, keeps its first saved value,
/// whatever worktree set it since. `current` reads the environment as it
/// is now.
///
/// Bookkeeping first, on entering and on leaving alike: a line the shell
/// cannot run (a name the user made read-only, or an array in zsh) is
/// said and the others run (zsh's lines are each contained:
/// [`shell::render_hook`]), and should one stop the rest, the names after
/// it are listed, so leaving gives each back what it had (the value saved
/// is the one the user had, set or not by the lines that ran).
/// Bookkeeping last would be lost with the line.
fn hook_changes(
    before: &Before,
    load: Load,
    current: impl Fn(&str) -> Option<String>,
) -> Vec<shell::Change> {
    let Load { vars, kept } = load;
    let sets = |name: &str| vars.iter().any(|(n, _)| n == name);
    let kept: Vec<&String> = before
        .names
        .iter()
        .filter(|n| kept.contains(n) && !sets(n))
        .collect();
    let given_back = before
        .names
        .iter()
        .filter(|n| !sets(n) && !kept.contains(n))
        .map(|name| (name.clone(), before.saved.get(name).cloned()));
    let names: Vec<&str> = kept
        .iter()
        .map(|n| n.as_str())
        .chain(vars.iter().map(|(n, _)| n.as_str()))
        .collect();
    let mut saved = std::collections::BTreeMap::new();
    for &name in &names {
        let old = if before.names.iter().any(|n| n == name) {
            before.saved.get(name).cloned()
        } else {
            current(name)
        };
        if let Some(old) = old {
            saved.insert(name.to_owned(), old);
        }
    }
    let diff = names.join(":");
    let mut changes = Vec::new();
    match (diff.is_empty(), before.had_diff) {
        (false, _) => changes.push((settings::HOOK_DIFF.into(), Some(diff))),
        (true, true) => changes.push((settings::HOOK_DIFF.into(), None)),
        (true, false) => {}
    }
    match (saved.is_empty(), before.had_saved) {
        (false, _) => changes.push((
            settings::HOOK_SAVED.into(),
            Some(serde_json::to_string(&saved).expect("strings serialize")),
        )),
        (true, true) => changes.push((settings::HOOK_SAVED.into(), None)),
        (true, false) => {}
    }
    changes.extend(given_back);
    changes.extend(vars.into_iter().map(|(n, v)| (n, Some(v))));
    changes
}

/// The hook's variables: none outside a worktree with a config file;
/// `None` when the shell already has them: the last load
/// (`__WTENV_LOADED`) was of these very files, unchanged since.
///
/// The line about an untrusted `[env]` is said on entering the worktree,
/// not again on each `cd` inside it: the hook exports the line it said
/// (`__WTENV_WARNED`, gone once the shell leaves), and says a line only
/// when it differs (another worktree, or a new reason).
fn hook_variables(args: &Args, ctx: &Ctx, before: &Before) -> Result<Option<Load>> {
    let Some(worktree) = ctx.worktree_here()? else {
        return Ok(Some(Load::default()));
    };
    if settings::hook_beside_direnv()
        && let Some(managed) = direnv::manages(&worktree.root)
    {
        return Ok(beside_direnv(ctx, worktree, managed, before));
    }
    let scope = ctx.scope_of(worktree)?;
    if scope.config.source.is_none() && ctx.config_path.is_none() {
        return Ok(Some(Load::default()));
    }
    if settings::hook_loaded() == Some(fingerprint(ctx, &scope)?.as_str()) {
        return Ok(None);
    }
    let Verified {
        mut vars,
        untrusted,
        ..
    } = verify(
        ctx,
        &scope,
        &HoldMode::Reserve,
        args.skip_occupied,
        &|vars| shell::check(args.format, vars),
    )?;
    if let Some(line) = untrusted {
        if settings::hook_warned() != Some(line.as_str()) {
            report::warn(&line);
        }
        vars.push((settings::HOOK_WARNED.into(), line));
    }
    // Taken after the load, as direnv does: a write of this load's own
    // (the first allocation rewrites the stamp) does not count as a change.
    vars.push((settings::HOOK_LOADED.into(), fingerprint(ctx, &scope)?));
    Ok(Some(Load { vars, kept: vec![] }))
}

/// What the prompt hook says when it leaves a worktree to direnv (README
/// "Shell integration"): `direnv's 'use wtenv' (this worktree's .envrc)
/// loads its variables: ...`, or for a Nix shell that runs wtenv's hook
/// `direnv's 'use flake' (this worktree's .envrc, its flake.nix running
/// wtenv's hook) loads ...`.
fn beside_direnv_note(managed: &direnv::Managed) -> String {
    let through = match managed.files.get(1).and_then(|(f, _)| f.file_name()) {
        Some(nix_file) => format!(", its {} running wtenv's hook", nix_file.to_string_lossy()),
        None => String::new(),
    };
    format!(
        "direnv's 'use {}' (this worktree's .envrc{through}) loads its variables: \
         the prompt hook leaves them to direnv",
        managed.loader.word()
    )
}

/// The hook in a worktree whose `.envrc` has direnv load its variables
/// (`use wtenv`, or a Nix shell whose shellHook runs `wtenv hook nix`:
/// [`direnv::manages`]), in a shell where direnv's hook is installed
/// too: both would export the ports, and on leaving each would restore
/// what the other set. It stands aside: it exports none of the
/// worktree's variables (the caller gives back what it exported before)
/// and says so once, on entering. What it records is the fingerprint of
/// the files that told (the `.envrc`, the Nix file): a `cd` inside the
/// worktree then prints and says nothing, and an edit of one looks again.
///
/// Where direnv's hook ran first (bash's and zsh's order: direnv puts
/// its hook first) straight from a worktree whose variables the hook had
/// exported, direnv has loaded this one over them (the environment's
/// `WTENV_WORKTREE` names it already), and recorded them as the values
/// to give back on leaving. Giving the user's back now would undo
/// direnv's load; so of the names the hook had exported, those this
/// worktree exports too are kept ([`Load::kept`]): nothing printed, still
/// listed, with the user's values saved, so that once direnv has given
/// back the other worktree's values on leaving, the hook gives back the
/// user's. The rest is given back as ever.
fn beside_direnv(
    ctx: &Ctx,
    worktree: crate::worktree::Worktree,
    managed: direnv::Managed,
    before: &Before,
) -> Option<Load> {
    let loaded = fingerprint_of(
        &worktree.root,
        managed
            .files
            .iter()
            .map(|(file, meta)| (file.as_path(), Ok(meta.clone()))),
    );
    if settings::hook_loaded() == Some(loaded.as_str()) {
        return None;
    }
    report::note(&beside_direnv_note(&managed));
    let loaded_by_direnv =
        || settings::passed(exports::PROVENANCE[0]).as_deref() == Some(worktree.root.as_os_str());
    let kept = if before.names.is_empty() || !loaded_by_direnv() {
        Vec::new()
    } else {
        // A config that does not read (direnv's load failed on it too):
        // nothing kept, everything given back, as before direnv.
        ctx.scope_of(worktree)
            .map(|scope| exports::names(&scope, ctx.trust_gate(&scope).applies()))
            .unwrap_or_default()
    };
    Some(Load {
        vars: vec![(settings::HOOK_LOADED.into(), loaded)],
        kept,
    })
}

/// What the hook's load depended on, as one value: the files direnv would
/// watch ([`watched_files`]: the config, the worktree's stamp, the trust
/// list when something waits for trust), each by path and, when it
/// exists, device, inode, size, modification and change times. The files
/// are only looked at (`stat`), never opened. The hash is the standard
/// library's: stable within one build, and a new build at worst reloads
/// once.
fn fingerprint(ctx: &Ctx, scope: &Scope) -> Result<String> {
    let files = watched_files(ctx, scope)?;
    let looked = files.iter().map(|f| (f.as_path(), std::fs::metadata(f)));
    Ok(fingerprint_of(&scope.worktree.root, looked))
}

/// [`fingerprint`] of the worktree at `root` over `files`, each with what
/// looking at it gave.
fn fingerprint_of<'a>(
    root: &Path,
    files: impl IntoIterator<Item = (&'a Path, std::io::Result<std::fs::Metadata>)>,
) -> String {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut hasher);
    for (file, looked) in files {
        file.hash(&mut hasher);
        match looked {
            Ok(m) => (
                m.dev(),
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )
                .hash(&mut hasher),
            Err(e) => e.kind().hash(&mut hasher),
        }
    }
    format!("{:016x}", hasher.finish())
}
