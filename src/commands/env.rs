//! `wtenv env`: the variables of the worktree around the current directory.
//!
//! The hot path (every `cd` under direnv or the prompt hook): when every
//! service has its allocation, it takes only the shared lock and writes
//! nothing; it probes the worktree's own ports (rule 5) and reads /proc
//! only when one is busy. No git subprocess, no network.
//!
//! `--hook` is the prompt hook's mode (shell-hooks/wtenv.*): outside a
//! worktree with a `wtenv.toml`/`wtenv.json` it allocates nothing and reads
//! no registry; it unsets what `$__WTENV_DIFF` says the hook exported before
//! and no longer applies, and records the names it exports in
//! `__WTENV_DIFF`. On failure it still prints (on stdout) the lines that
//! unset everything exported before, so a shell that evals its stdout is
//! never left half-set. `--direnv` adds what makes direnv watch the config
//! and the worktree's stamp (never the shared registry): see [`direnv`].

use std::path::{Path, PathBuf};

use crate::alloc::{self, HoldMode, RealSystem, Usage};
use crate::config::is_env_name;
use crate::context::{Ctx, Scope};
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::process::ProcessId;
use crate::registry::Hold;
use crate::shell::{self, Format};
use crate::worktree::Worktree;
use crate::{direnv, exports, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "bash")]
    pub format: Format,
    /// Tie the allocations this makes to PID (e.g. a `nix develop` shell's
    /// `$$`): they are released once PID is gone.
    #[arg(long, value_name = "PID")]
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

/// The variable in which the prompt hook remembers what it exported.
pub const DIFF_VAR: &str = "__WTENV_DIFF";

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    if args.hook {
        return run_hook(&args, ctx);
    }
    let scope = ctx.scope()?;
    let mode = match args.hold {
        None => HoldMode::Reserve,
        Some(pid) => HoldMode::HoldNew(hold_for(pid)?),
    };
    let vars = ensure_verified(ctx, &scope, &mode, args.skip_occupied)?;
    let mut text = shell::render(args.format, &vars, &[]);
    if args.direnv {
        let files = watched_files(ctx, &scope);
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let current = std::env::var(direnv::WATCHES_VAR).ok();
        text.push_str(&direnv::watch(current.as_deref(), &files));
    }
    output::stdout(&text)?;
    Ok(Outcome::SUCCESS)
}

/// What direnv reloads on: the config (both names when there is none yet,
/// so creating one reloads) and the worktree's stamp.
fn watched_files(ctx: &Ctx, scope: &Scope) -> Vec<PathBuf> {
    let mut files = match (&ctx.config_path, &scope.config.source) {
        // direnv records absolute, clean paths.
        (Some(p), _) | (None, Some(p)) => vec![crate::worktree::normalize(&ctx.cwd.join(p))],
        (None, None) => vec![
            scope.worktree.root.join(crate::config::TOML_NAME),
            scope.worktree.root.join(crate::config::JSON_NAME),
        ],
    };
    files.push(scope.worktree.stamp_path());
    files
}

fn run_hook(args: &Args, ctx: &Ctx) -> Result<Outcome> {
    let previous: Vec<String> = std::env::var(DIFF_VAR)
        .unwrap_or_default()
        .split(':')
        // The names are printed unquoted in `unset` lines: only names a
        // shell accepts as variables, whatever the environment holds.
        .filter(|n| is_env_name(n))
        .map(str::to_owned)
        .collect();
    let had_diff = std::env::var_os(DIFF_VAR).is_some();
    match hook_variables(args, ctx) {
        Ok(mut vars) => {
            let mut unset: Vec<String> = previous
                .into_iter()
                .filter(|p| !vars.iter().any(|(n, _)| n == p))
                .collect();
            if !vars.is_empty() {
                let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
                let diff = names.join(":");
                vars.push((DIFF_VAR.into(), diff));
            } else if had_diff {
                unset.push(DIFF_VAR.into());
            }
            output::stdout(&shell::render(args.format, &vars, &unset))?;
            Ok(Outcome::SUCCESS)
        }
        Err(err) => {
            let mut unset = previous;
            if had_diff {
                unset.push(DIFF_VAR.into());
            }
            output::stdout(&shell::render(args.format, &[], &unset))?;
            Err(err)
        }
    }
}

/// The hook's variables: none outside a worktree with a config file.
fn hook_variables(args: &Args, ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let Some(worktree) = Worktree::discover(&ctx.cwd)? else {
        return Ok(vec![]);
    };
    let scope = ctx.scope_of(worktree)?;
    if scope.config.source.is_none() && ctx.config_path.is_none() {
        return Ok(vec![]);
    }
    ensure_verified(ctx, &scope, &HoldMode::Reserve, args.skip_occupied)
}

/// A hold record for a live pid given on the command line.
pub fn hold_for(pid: u32) -> Result<Hold> {
    let process = ProcessId::of(pid).ok_or_else(|| {
        Error::hinted(
            format!("--hold {pid}: no such process"),
            "pass the pid of a live process, e.g. $$",
        )
    })?;
    Ok(Hold {
        pid,
        start_time: process.start_time,
        command: crate::process::command(pid).unwrap_or_default(),
        // Recorded for the record (SPEC: a held allocation names its
        // holder's group); wtenv never signals a group it did not spawn.
        pgid: crate::process::pgid(pid),
    })
}

/// Allocates what is missing, refuses a port held by another worktree's
/// process (rule 5), refreshes the stamp, and returns the variables.
/// Shared by `env` and `run`.
pub fn ensure_verified(
    ctx: &Ctx,
    scope: &Scope,
    mode: &HoldMode,
    skip_occupied: bool,
) -> Result<Vec<(String, String)>> {
    let mut system = RealSystem::new(&ctx.registry);
    let request = scope.request(skip_occupied);
    let (ports, mine) = alloc::ensure_allocations(&ctx.registry, &request, mode, &mut system)?;
    let mine: Vec<_> = mine.iter().collect();
    let usage = alloc::classify(&mine, &mut system).map_err(Error::probe)?;
    let foreign: Vec<String> = mine
        .iter()
        .zip(&usage)
        .filter_map(|(a, u)| match u {
            Usage::Foreign(h) => Some(format!(
                "  port {} ({}): {}",
                a.port,
                a.service,
                alloc::describe_holders(h)
            )),
            _ => None,
        })
        .collect();
    if !foreign.is_empty() {
        return Err(Error::ForeignHolder(format!(
            "error: ports reserved for worktree {} are held by processes outside it:\n{}\nhint: stop those processes; the reservation stays with this worktree",
            scope.worktree.root.display(),
            foreign.join("\n")
        )));
    }
    scope.worktree.update_stamp(&exports::ports_summary(&ports));
    Ok(exports::variables(scope, &ports))
}

/// Reserves every service's port for `scope`'s worktree (sticky, fail
/// fast) and refreshes its stamp: what `create --ports` and `enter` do.
pub fn reserve(ctx: &Ctx, scope: &Scope) -> Result<alloc::Ports> {
    let ports = reserve_request(ctx, &scope.request(false))?;
    scope.worktree.update_stamp(&exports::ports_summary(&ports));
    Ok(ports)
}

/// [`reserve`] without the stamp, for a worktree git may not have
/// finished making (`create`).
pub fn reserve_request(ctx: &Ctx, request: &alloc::Request) -> Result<alloc::Ports> {
    alloc::ensure(
        &ctx.registry,
        request,
        &HoldMode::Reserve,
        &mut RealSystem::new(&ctx.registry),
    )
}
