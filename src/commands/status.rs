//! `wtenv status [--json]`: the worktree's services that run in the
//! background, as their managers tell it.

use crate::background::{self, Manager, Naming, StateDir};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::exit::Outcome;
use crate::health;
use crate::output;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    let scope = ctx.scope()?;
    // Read only: nothing is created when nothing ever ran in the
    // background.
    let (records, unreadable) = match StateDir::existing(ctx)? {
        Some(dir) => (
            dir.records_of(&scope, &[]),
            dir.unreadable_in(&Naming::of(&scope), &[]),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut rows = Vec::new();
    let mut json = Vec::new();
    // What a `cmd` check sees of the worktree (read only: ports as
    // recorded; [env] when trusted, as under `up`), when there is
    // something to check.
    let vars = match records.is_empty() {
        true => None,
        false => Some(background::check_variables(ctx, &scope)?),
    };
    // The failed checks that printed something: said after the table as
    // the foreground `up` says them, its last lines included.
    let mut failed = Vec::new();
    for record in records {
        let live = background::query(&record);
        let probe = vars
            .as_ref()
            .filter(|_| live.running())
            .map(|vars| background::health_of(&record, live.pid, vars));
        // A service without a check (a socket service without a `health`
        // key) is `ready` while it runs, as the foreground `up` has it.
        let health = probe.as_ref().map(|probe| match probe {
            None => "ready".to_owned(),
            Some(Ok(())) => "healthy".to_owned(),
            Some(Err(why)) => format!("unhealthy: {why}"),
        });
        let output = match probe {
            Some(Some(Err(why))) if !why.output.is_empty() => {
                let output = why.output.clone();
                failed.push((record.service.clone(), why));
                output
            }
            _ => Vec::new(),
        };
        let ports: Vec<String> = record.ports.iter().map(u16::to_string).collect();
        let uptime = live
            .uptime
            .map(|u| humantime::format_duration(std::time::Duration::from_secs(u.as_secs())));
        rows.push(vec![
            record.service.clone(),
            record.manager.name().into(),
            record.unit.clone(),
            live.state.clone(),
            live.pid.map_or("-".into(), |p| p.to_string()),
            ports.join(","),
            health.clone().unwrap_or_else(|| "-".into()),
            uptime.map_or("-".into(), |u| u.to_string()),
            live.restarts.map_or("-".into(), |r| r.to_string()),
        ]);
        json.push(serde_json::json!({
            "service": record.service,
            "manager": record.manager.name(),
            "unit": record.unit,
            "state": live.state,
            "pid": live.pid,
            "ports": record.ports,
            "health": health,
            "health_output": output,
            "uptime_seconds": live.uptime.map(|u| u.as_secs()),
            "restarts": live.restarts,
            "log": record.log,
        }));
    }
    // A record this wtenv cannot read (a newer wtenv's): whether its unit
    // runs cannot be told, so it is shown as that, never as nothing.
    for u in &unreadable {
        let service = u.service.clone().unwrap_or_else(|| "-".into());
        rows.push(vec![
            service,
            "-".into(),
            u.unit.clone(),
            "unreadable".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        json.push(serde_json::json!({
            "service": u.service,
            "manager": null,
            "unit": u.unit,
            "state": "unreadable",
            "pid": null,
            "ports": [],
            "health": null,
            "health_output": [],
            "uptime_seconds": null,
            "restarts": null,
            "log": null,
            "record": u.path,
            "reason": u.why,
        }));
    }
    if args.json {
        output::json(serde_json::json!({ "services": json }))?;
    } else if rows.is_empty() {
        report::status("nothing of this worktree runs in the background");
        report::hint(
            "'wtenv up --detach' starts its services in the background, and 'wtenv status' shows what it started",
        );
        if let Some(hint) = exported_hint(&scope) {
            report::hint(&hint);
        }
    } else {
        let mut text = output::table(
            &[
                "SERVICE", "MANAGER", "UNIT", "STATE", "PID", "PORT", "HEALTH", "UPTIME",
                "RESTARTS",
            ],
            &rows,
        );
        text.push_str(&failures(ctx, &scope, &failed));
        output::stdout(&text)?;
    }
    if !unreadable.is_empty() {
        let lines: Vec<String> = unreadable
            .iter()
            .map(|u| format!("  {}", u.said()))
            .collect();
        report::warn_hinted(
            &format!(
                "whether these run cannot be told, their record cannot be read:\n{}",
                lines.join("\n")
            ),
            &background::Unreadable::hint(&unreadable),
        );
    }
    Ok(Outcome::SUCCESS)
}

/// Each failed check that printed something, in the foreground `up`'s
/// lines (`db | unhealthy: cmd "pg_isready" -> exit 2`, then its output's
/// last lines), prefixed as `up` and `logs` prefix its service's lines.
fn failures(ctx: &Ctx, scope: &Scope, failed: &[(String, health::Failed)]) -> String {
    let width = failed.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (service, why) in failed {
        let index = scope.config.prefix_index(service);
        let prefix = output::service_prefix(service, width, index, ctx.color_stdout());
        for line in why.unhealthy().split('\n') {
            text.push_str(&prefix);
            text.push_str(&crate::process::printable(line));
            text.push('\n');
        }
    }
    text
}

/// Where the services of units `wtenv export` made are shown: their user's
/// manager runs them, not wtenv, so `status` (what `up --detach` started)
/// does not. Under systemd, only the units whose exported files the user
/// manager has (linked, or in a directory it loads: the lookup `up -d`
/// refuses an exported service by, [`background::systemd::exported_fragment`]);
/// `None` when it has none, or the worktree has no service to run.
fn exported_hint(scope: &Scope) -> Option<String> {
    let naming = Naming::of(scope);
    let manager = if cfg!(target_os = "macos") {
        Manager::Launchd
    } else {
        Manager::Systemd
    };
    let units: Vec<String> = scope
        .config
        .services
        .iter()
        .filter(|s| s.run.is_some())
        .map(|s| background::unit_file_name(manager, &naming.unit(&s.name)))
        .collect();
    let show = match manager {
        // One service a call.
        Manager::Launchd => format!(
            "{}{}",
            background::launchd::print_command(units.first()?),
            if units.len() > 1 {
                " (and so for each service)"
            } else {
                ""
            }
        ),
        _ => {
            use background::systemd::{FRAGMENT, exported_fragment, show};
            // One `systemctl show` for every unit.
            let shown = show::ask(&units, FRAGMENT)?;
            let exported: Vec<&String> = units
                .iter()
                .filter(|u| exported_fragment(&shown, u).is_some())
                .collect();
            if exported.is_empty() {
                return None;
            }
            background::systemd::status_command(&exported)
        }
    };
    Some(format!(
        "units made by 'wtenv export' are your service manager's to show: {show}"
    ))
}
