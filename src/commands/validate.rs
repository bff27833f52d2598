//! `wtenv validate`: check the registry; `--fix` repairs what is fixable
//! and exits by what remains (0 valid, 1 fixable errors, 2 critical).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use crate::alloc::{self, RealSystem, System};
use crate::background;
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::process::printable_path;
use crate::registry::{Allocation, RegistryData};
use crate::supervise;
use crate::validate::{self, Checked, Finding};
use crate::{output, ports};

/// `--verbose` is the global flag: with it, every allocation checked is
/// listed with its state.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also probe every allocated port: stale (nothing listening) and
    /// foreign holders.
    #[arg(long)]
    pub verify_ports: bool,
    /// Repair every fixable finding, print each fix.
    #[arg(long)]
    pub fix: bool,
    /// JSON on stdout (with "version": 1) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let here_repository = ctx.worktree_here().ok().flatten().map(|w| w.common_dir);
    let mut configs = ConfigCache {
        ctx,
        repository: here_repository.clone(),
        cache: BTreeMap::new(),
    };
    let mut system = RealSystem::new(&ctx.registry);
    // The check the conflict message sends the user to: with
    // --verify-ports, the ranges of the config here are scanned too.
    let here = if args.verify_ports {
        // It needs the current directory; plain `validate` does not.
        ctx.cwd_else(Some("'wtenv validate' without --verify-ports"))?;
        Some(ctx.config_here()?)
    } else {
        None
    };
    let mut checker = |data: &RegistryData| -> Result<_> {
        let conflicts = match &here {
            Some(config) => ports::conflicts(config, data, &mut system)?,
            None => Vec::new(),
        };
        Ok(validate::check(
            data,
            args.verify_ports,
            here_repository.as_deref(),
            &mut system,
            &mut |a| configs.config_of(a),
            &conflicts,
        ))
    };
    // --fix changes the registry: a state directory it may not change
    // (see `Registry::check_dir`) is refused before anything is stopped or
    // fixed, as a registry that cannot be used, not read past as one with
    // nothing to fix.
    let writable = if args.fix {
        ctx.registry.ensure_state_dir().map(drop)
    } else {
        Ok(())
    };
    if args.fix && writable.is_ok() {
        stop_orphans(&args, ctx)?;
        remove_stale_status(&args, ctx)?;
        remove_stale_watch_locks(&args, ctx)?;
        remove_gone_background(&args, ctx)?;
    }
    // A registry `--fix` was refused to rewrite (a critical finding):
    // its fixable findings say why they are still there.
    let mut refused = false;
    let fixed = if let Err(e) = writable {
        Some(Err(e))
    } else if args.fix {
        match ctx.registry.transaction(|data| {
            let (mut findings, checked) = checker(data)?;
            validate::fix(data, &mut findings);
            Ok((findings, checked, data.allocations.len()))
        }) {
            Ok(r) => Some(Ok(r)),
            // Refused for rewriting (one port twice, a privileged port):
            // reported below as it is, unfixed.
            Err(Error::RegistryUnusable { .. }) => {
                refused = true;
                None
            }
            Err(e) => Some(Err(e)),
        }
    } else {
        None
    };
    let result = fixed.unwrap_or_else(|| {
        ctx.registry.read_unchecked().and_then(|data| {
            let (findings, checked) = checker(&data)?;
            Ok((findings, checked, data.allocations.len()))
        })
    });
    let (findings, checked, remaining) = match result {
        Ok(r) => r,
        Err(Error::RegistryUnusable {
            path, reason, hint, ..
        }) => {
            let f = Finding::unreadable(format!(
                "registry {} cannot be used: {reason}",
                printable_path(&path)
            ));
            report(&args, ctx, &[f], &[], 0, false)?;
            crate::report::hint(&hint);
            return Ok(Outcome::Code(crate::exit::REGISTRY));
        }
        Err(e) => return Err(e),
    };
    report(&args, ctx, &findings, &checked, remaining, refused)?;
    Ok(Outcome::Code(validate::exit_code(&findings)))
}

fn report(
    args: &Args,
    ctx: &Ctx,
    findings: &[Finding],
    checked: &[Checked],
    remaining: usize,
    refused: bool,
) -> Result<()> {
    let code = validate::exit_code(findings);
    if args.json {
        let mut doc = json!({
            "registry": ctx.registry.path(),
            "valid": code == 0,
            "checked": checked.len(),
            "findings": findings,
        });
        if ctx.verbose > 0 {
            doc["allocations"] = json!(checked);
        }
        return output::json(doc);
    }
    let mut out = String::new();
    if ctx.verbose > 0 {
        let rows: Vec<Vec<String>> = checked
            .iter()
            .map(|c| {
                vec![
                    c.port.to_string(),
                    c.service.clone(),
                    c.purpose.clone(),
                    c.lifetime.to_string(),
                    c.state.clone(),
                    c.worktree.display().to_string(),
                ]
            })
            .collect();
        out.push_str(&output::table(
            &[
                "PORT", "SERVICE", "PURPOSE", "LIFETIME", "STATE", "WORKTREE",
            ],
            &rows,
        ));
    }
    for f in findings {
        let what = match (f.port, &f.service, &f.worktree) {
            (Some(p), Some(s), Some(w)) => format!(
                "port {p} ({}) of {}: ",
                crate::process::printable(s),
                printable_path(w)
            ),
            _ => String::new(),
        };
        let tail = match (f.fixed, f.fixable) {
            (true, _) => " [fixed]",
            (false, true) if refused => {
                " [not fixed: --fix rewrites no registry with a critical finding; resolve it first]"
            }
            (false, true) => " [fixable: run with --fix]",
            // Nothing to do: it goes once its holder ends.
            (false, false) if f.kind == validate::Kind::WorktreeGoneHeld => {
                " [kept while its holder lives, released when it ends]"
            }
            (false, false) => " [needs manual intervention]",
        };
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let sev = serde_json::to_value(f.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        // Each part wtenv did not write is escaped where it is put in (a
        // path, a command line): escaping the whole line then changes
        // nothing, and still catches a part that was not.
        let line = crate::process::printable(&format!("{sev}: {kind}: {what}{}{tail}", f.reason));
        out.push_str(&line);
        out.push('\n');
    }
    let count = |s| {
        findings
            .iter()
            .filter(|f| f.severity == s && !f.fixed)
            .count()
    };
    out.push_str(&format!(
        "{}: {} allocation(s) checked, {} left; {} critical, {} error(s), {} warning(s) remaining; {} fixed\n",
        if code == 0 { "valid" } else { "invalid" },
        checked.len(),
        remaining,
        count(validate::Severity::Critical),
        count(validate::Severity::Error),
        count(validate::Severity::Warning),
        findings.iter().filter(|f| f.fixed).count(),
    ));
    output::stdout(&out)
}

/// The config of each allocation's worktree, read once; unknown (range
/// checks skipped) when its directory is missing or its config is broken.
/// `--config` stands for the config of the repository around the current
/// directory only: judged by it, another repository's allocations would be
/// "out of range" and `--fix` would release them. Config warnings are not
/// repeated here (each worktree holds the same file).
struct ConfigCache<'a> {
    ctx: &'a Ctx,
    /// The repository around the current directory.
    repository: Option<PathBuf>,
    cache: BTreeMap<PathBuf, Option<Config>>,
}

impl ConfigCache<'_> {
    fn config_of(&mut self, a: &Allocation) -> Option<Config> {
        let flag = self
            .ctx
            .config_path
            .as_ref()
            .filter(|_| self.repository.as_ref() == Some(&a.repository));
        let wt = &a.worktree;
        self.cache
            .entry(wt.clone())
            .or_insert_with(|| {
                // Gone, or not a worktree yet (`create` makes the directory
                // before git fills it): no config to judge it by.
                if !wt.join(".git").exists() {
                    return None;
                }
                let loaded = match flag {
                    Some(path) => Config::load(path),
                    None => Config::discover(wt),
                };
                // Shown, never silent: a config that cannot be read would
                // otherwise make its range checks vanish unexplained.
                match loaded {
                    Ok(config) => {
                        self.ctx.warn_about(&config);
                        Some(config)
                    }
                    Err(e) => {
                        crate::report::warn(&format!(
                            "{e}; the allocations of {} are not checked against it",
                            printable_path(wt)
                        ));
                        None
                    }
                }
            })
            .clone()
    }
}

/// `--fix`: removes the status files (`up/<pid>.json`) of `up`s that are
/// gone, which a SIGKILLed `up` leaves, and says how many.
fn remove_stale_status(args: &Args, ctx: &Ctx) -> Result<()> {
    let Some(state_dir) = ctx.registry.path().parent() else {
        return Ok(());
    };
    let n = crate::health::status::remove_stale(state_dir);
    if n == 0 || args.json || crate::report::quiet() {
        return Ok(());
    }
    let files = if n == 1 { "file" } else { "files" };
    output::stdout(&format!(
        "removed {n} status {files} of gone up processes from {}\n",
        printable_path(&state_dir.join("up"))
    ))
}

/// `--fix`: removes the records of background services whose unit no
/// longer runs and whose worktree is gone ([`background::forget_gone`]),
/// and names each.
fn remove_gone_background(args: &Args, ctx: &Ctx) -> Result<()> {
    let gone = background::forget_gone(ctx)?;
    if args.json || crate::report::quiet() {
        return Ok(());
    }
    for r in gone {
        output::stdout(&crate::process::printable(&format!(
            "removed the record of background service {} ({}): its worktree (started at {}) is gone and its unit no longer runs",
            r.service,
            r.unit,
            printable_path(&r.worktree)
        )))?;
        output::stdout("\n")?;
    }
    Ok(())
}

/// `--fix`: removes the lock files killed watchers left
/// (`watch/<pid>-<start>.lock` of a gone holder, not locked:
/// [`supervise::watcher::remove_stale`]), and says how many.
fn remove_stale_watch_locks(args: &Args, ctx: &Ctx) -> Result<()> {
    let n = supervise::watcher::remove_stale(&ctx.registry);
    if n == 0 || args.json || crate::report::quiet() {
        return Ok(());
    }
    let files = if n == 1 { "file" } else { "files" };
    output::stdout(&format!(
        "removed {n} lock {files} of killed watchers from {}\n",
        printable_path(&supervise::watcher::dir(&ctx.registry))
    ))
}

/// `--fix`, first: stops the orphans of every gone `run`/`up` (SIGTERM,
/// grace, SIGKILL), each proven of the group that wtenv started, and says
/// so; the transaction then releases their holds.
fn stop_orphans(args: &Args, ctx: &Ctx) -> Result<()> {
    let data = match ctx.registry.read_unchecked() {
        Ok(data) => data,
        // Reported by the check itself.
        Err(_) => return Ok(()),
    };
    let mut system = RealSystem::new(&ctx.registry);
    let mut groups = BTreeMap::new();
    for a in &data.allocations {
        for h in &a.holders {
            let orphans = system.orphans(h);
            if let (false, Some(group)) = (orphans.is_empty(), h.group()) {
                let entry = groups
                    .entry(group)
                    .or_insert_with(|| (h.clone(), orphans, Vec::new()));
                entry.2.push(a.port);
            }
        }
    }
    for (group, (holder, orphans, ports)) in groups {
        let named = alloc::describe_pids(&orphans);
        let left = supervise::orphans::stop(group, supervise::orphans::GRACE, None, &|_| {});
        if args.json || crate::report::quiet() {
            continue;
        }
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mut line = format!(
            "stopped the orphans of gone holder pid {} ({}) on port {}: {named}\n",
            holder.pid,
            crate::process::printable(&holder.command),
            ports.join(", ")
        );
        if !left.is_empty() {
            line = format!(
                "could not stop the orphans of gone holder pid {}: {} still run\n",
                holder.pid,
                alloc::describe_pids(&left)
            );
        }
        output::stdout(&crate::process::printable(line.trim_end()))?;
        output::stdout("\n")?;
    }
    Ok(())
}
