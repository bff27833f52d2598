//! Health in the background: `up --detach` starts dependencies first and
//! waits for their health, fails with a failing check, and `status` runs
//! only the check (with the variables) the service started with; a
//! socket service is checked as the foreground `up` checks it.

use nix::sys::signal::Signal;

use super::{DownOnDrop, free, holders, ports, serves, signal, status_cells};
use crate::supervise::{PATIENCE, alive};
use crate::support::{TestEnv, run, wait_for};

/// `status` runs a `cmd` health check with the environment `up` gave it:
/// a trusted config's `[env]` and service variables not named like a port
/// included (one trust gate for both).
#[test]
fn status_checks_health_with_the_trusted_variables_up_used() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
env = ["WEB_PORT", "WEB_LISTEN"]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { cmd = "test \"$GREETING:$WEB_LISTEN\" = \"hi:$WEB_PORT\"" }
[env]
GREETING = "hi"
"#,
    );
    assert_eq!(run(&mut t.wtenv(&["trust"])).code, Some(0));
    let up = run(&mut t.wtenv(&["up", "--detach"]));
    assert_eq!(up.code, Some(0), "{up}");
    let status = run(&mut t.wtenv(&["status"]));
    let line = status.stdout.lines().find(|l| l.starts_with("web"));
    assert!(
        line.is_some_and(|l| l.contains("healthy") && !l.contains("unhealthy")),
        "{status}"
    );
}

/// `status` runs the `cmd` check the service started with, not the
/// config's as it is now: a branch checked out since (another's config)
/// would have `status` run its code. A service started with no `cmd`
/// check gets its port checked.
#[test]
fn status_runs_only_the_health_command_the_service_started_with() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let config = |cmd: &str| {
        format!(
            "[services.web]\nrun = \"exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1\"\nhealth = {{ cmd = {} }}\n",
            serde_json::to_string(cmd).unwrap()
        )
    };
    t.write_config(&config("test -n \"$WEB_PORT\""));
    let up = run(&mut t.wtenv(&["up", "--detach", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let pwned = t.root().join("PWNED");
    t.write_config(&config(&format!("touch '{}'; false", pwned.display())));
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(crate::shell::pwned_under(&t.root()), None, "{status}");
    let line = status.stdout.lines().find(|l| l.starts_with("web"));
    // Seen once in CI: web inactive right after `up --detach` said it was
    // ready; its log says why the next time.
    assert!(
        line.is_some_and(|l| l.contains("healthy") && !l.contains("unhealthy")),
        "{status}\n--- wtenv logs web\n{}",
        run(&mut t.wtenv(&["logs", "web"]))
    );
}

/// `status` runs a `cmd` check with the variables of the service's port it
/// started with, though the config no longer names the service: it ran
/// without `$PORT` (and failed) once the service was removed. The
/// check's `timeout` is generous: a python3 start on a loaded 2-core
/// machine took more than the default 1s (`timed out after 1s (killed)`).
#[test]
fn status_checks_a_service_the_config_dropped_with_its_port_variables() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
env = ["PORT"]
run = "exec python3 -u -m http.server $PORT --bind 127.0.0.1"
health = { cmd = "python3 -c 'import os, socket; socket.create_connection((\"127.0.0.1\", int(os.environ[\"PORT\"])), 1)'", timeout = "30s" }
"#,
    );
    let web = t.ports.port(0);
    let up = run(&mut t.wtenv(&["up", "--detach", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    t.write_config("[services.api]\n");
    assert!(serves(web));
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(status_cells(&status, "web")[6], "healthy", "{status}");
    // `down` stops it still, by its record.
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web), "{down}");
}

/// A `cmd` check that passes at once does not make a service ready before
/// its command has started: `up --detach` returns with the group recorded,
/// so a server whose supervisor is killed right then is still found by
/// `status` (orphaned) and stopped by `down`.
#[test]
fn a_check_that_passes_at_once_waits_for_the_command_to_start() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    // A server that writes nothing: its supervisor's pipes die with it.
    t.write_config(
        r#"
[services.web]
run = "exec python3 -c 'import os, socket, time; s = socket.socket(); s.bind((\"127.0.0.1\", int(os.environ[\"WEB_PORT\"]))); s.listen(); time.sleep(600)'"
health = { cmd = "true" }
"#,
    );
    let web = t.ports.port(0);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let hold = &holders(&t, "web")[0];
    assert!(hold["pgid"].is_u64(), "{}", t.registry());
    let supervisor = hold["pid"].as_u64().unwrap() as u32;
    signal(supervisor, Signal::SIGKILL);
    assert!(wait_for(PATIENCE, || !alive(supervisor)));
    assert!(wait_for(PATIENCE, || !free(web)), "the server outlives it");
    let status = run(&mut t.wtenv(&["status"]));
    let line = status.stdout.lines().find(|l| l.starts_with("web"));
    assert!(line.is_some_and(|l| l.contains("orphaned")), "{status}");
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
    assert!(free(web), "{down}");
}

#[test]
fn up_detach_starts_dependencies_first_and_waits_for_their_health() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
depends_on = ["api"]
[services.api]
run = "exec python3 -u -m http.server $API_PORT --bind 127.0.0.1"
health = { http = "/wtenv.toml" }
"#,
    );
    let (web, api) = ports(&t);
    // Only web is named: api, which it depends on, starts too, first.
    let up = run(&mut t.wtenv(&["up", "-d", "web"]));
    assert_eq!(up.code, Some(0), "{up}");
    let lines: Vec<&str> = up.stdout.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("api") && lines[1].starts_with("web"),
        "{up}"
    );
    assert!(serves(web) && serves(api));
    assert_eq!(run(&mut t.wtenv(&["down"])).code, Some(0));
    assert!(free(web) && free(api));
}

#[test]
fn up_detach_fails_with_the_failing_health_check_and_releases() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { http = "/no-such-page" }
ready_timeout = "3s"
"#,
    );
    let web = t.ports.port(0);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr
            .contains("service web did not get ready: GET /no-such-page -> 404"),
        "{up}"
    );
    assert!(wait_for(PATIENCE, || free(web)));
    assert!(holders(&t, "web").is_empty());
    let status = run(&mut t.wtenv(&["status", "--json"]));
    assert!(status.stdout.contains("\"services\": []"), "{status}");
}

/// Socket services in the background: one without a `health` key got the
/// default tcp check from `up -d` and from `status`, which said `healthy`
/// whatever the server did (wtenv's socket accepts for it), and `up -d`'s
/// wait connected to its port to see who listens there, as it did for one
/// with an http check: each was a connection the server then accepted,
/// empty. As under the foreground `up`, one without a check is ready once
/// started (`status` says `ready`), and wtenv connects to a socket
/// service's port only to send its http check's request.
#[test]
fn socket_services_in_the_background_get_no_empty_connections() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    std::fs::write(
        t.repo.join("counting.py"),
        crate::up_sockets::COUNTING_SERVER,
    )
    .unwrap();
    let (sk_log, hk_log) = (t.root().join("sk.accepted"), t.root().join("hk.accepted"));
    t.write_config(&format!(
        "[services.sk]\nrun = \"python3 counting.py {}\"\nsocket = true\n[services.hk]\nrun = \"python3 counting.py {}\"\nsocket = true\nhealth = {{ http = \"/\" }}\n",
        sk_log.display(),
        hk_log.display()
    ));
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(status_cells(&status, "sk")[6], "ready", "{status}");
    assert_eq!(status_cells(&status, "hk")[6], "healthy", "{status}");
    // Each server handles its connections in turn: once this request is
    // answered, every earlier connection is in its log.
    let (sk, hk) = ports(&t);
    assert!(serves(sk) && serves(hk), "{up}");
    let accepted = |log: &std::path::Path| std::fs::read_to_string(log).unwrap();
    assert_eq!(accepted(&sk_log), "b'GET'\n", "{up}{status}");
    let hk_accepted = accepted(&hk_log);
    assert!(
        hk_accepted.lines().count() >= 3 && hk_accepted.lines().all(|l| l == "b'GET'"),
        "{hk_accepted}"
    );
    let down = run(&mut t.wtenv(&["down"]));
    assert_eq!(down.code, Some(0), "{down}");
}

/// `status` said only the first line of a failing `cmd` check
/// (`unhealthy: cmd "..." -> exit 2`), while the foreground `up` says its
/// last lines too: `pg_isready`'s reason was lost. After its table it now
/// says them in `up`'s lines, bounded and escaped (`--json`:
/// `health_output`).
#[test]
fn status_shows_a_failing_cmd_checks_last_lines_as_up_does() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let ok = t.root().join("ok");
    std::fs::write(&ok, "").unwrap();
    let check = format!(
        "test -e {} || {{ seq 1 6; printf 'err\\033[31m\\n' >&2; exit 2; }}",
        ok.display()
    );
    t.write_config(&format!(
        "[services.z]\nrun = \"exec python3 -u -m http.server $Z_PORT --bind 127.0.0.1\"\nhealth = {{ cmd = {} }}\n",
        serde_json::to_string(&check).unwrap()
    ));
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    std::fs::remove_file(&ok).unwrap();
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    let said = format!("unhealthy: cmd {check:?} -> exit 2");
    assert_eq!(
        status_cells(&status, "z")[6..8],
        ["unhealthy:", "cmd"],
        "{status}"
    );
    assert!(
        status.stdout.ends_with(&format!(
            "\nz | {said}\nz |   the end of its output:\nz |     3\nz |     4\nz |     5\nz |     6\nz |     err\\u{{1b}}[31m\n"
        )),
        "{status}"
    );
    let json = run(&mut t.wtenv(&["status", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let web = &json["services"][0];
    assert_eq!(web["health"], said.as_str(), "{json}");
    assert_eq!(
        web["health_output"],
        serde_json::json!(["3", "4", "5", "6", "err\\u{1b}[31m"]),
        "{json}"
    );
}

/// `up --detach`'s not-ready error for a failing `cmd` check said its
/// one line only, while the foreground `up` and `status` say its last
/// lines too: `pg_isready`'s reason was lost. It now says them as they
/// do (`its output:`, then the lines), after its own first line.
#[test]
fn up_detach_says_a_failing_cmd_checks_last_lines_as_up_does() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { cmd = "sh -c 'echo why >&2; exit 2'" }
ready_timeout = "2s"
"#,
    );
    let web = t.ports.port(0);
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.starts_with(
            "error: service web did not get ready: cmd \"sh -c 'echo why >&2; exit 2'\" -> exit 2 after 2s; \
             stopped what this 'up --detach' started\n  its output:\n    why\nhint: "
        ),
        "{up}"
    );
    assert!(wait_for(PATIENCE, || free(web)));
    assert!(holders(&t, "web").is_empty());
}

/// A `cmd` check killed at its own timeout, until the readiness timeout:
/// `timed out after 1s (killed) after 3s` said two durations as one.
/// Each now says what it is; its output is said as any failing check's.
#[test]
fn up_detach_says_a_cmd_checks_timeout_apart_from_the_readiness_timeout() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    t.write_config(
        r#"
[services.web]
run = "exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1"
health = { cmd = "echo checking; sleep 5", timeout = "1s" }
ready_timeout = "3s"
"#,
    );
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.starts_with(
            "error: service web did not get ready: cmd \"echo checking; sleep 5\": timed out after 1s (killed), \
             still not ready after 3s; stopped what this 'up --detach' started\n  its output:\n    checking\nhint: "
        ),
        "{up}"
    );
}

/// `status` decided a check from the config as it is now: a service
/// removed from it since `up -d` got a tcp check, a socket service too
/// (whose check is none: wtenv's socket answers, and the server then
/// accepts an empty connection), and a service still there got the
/// config's http path. It runs the check the record says the service
/// started with, and the config is not consulted for it.
#[test]
fn status_runs_the_recorded_check_whatever_the_config_says_now() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    std::fs::write(
        t.repo.join("counting.py"),
        crate::up_sockets::COUNTING_SERVER,
    )
    .unwrap();
    for page in ["web-ok", "api-ok"] {
        std::fs::write(t.repo.join(page), "").unwrap();
    }
    let sk_log = t.root().join("sk.accepted");
    let http = |name: &str, page: &str| {
        format!(
            "[services.{name}]\nrun = \"exec python3 -u -m http.server ${}_PORT --bind 127.0.0.1\"\nhealth = {{ http = \"/{page}\" }}\n",
            name.to_uppercase()
        )
    };
    t.write_config(&format!(
        "[services.sk]\nrun = \"python3 counting.py {}\"\nsocket = true\n{}{}",
        sk_log.display(),
        http("web", "web-ok"),
        http("api", "api-ok"),
    ));
    let up = run(&mut t.wtenv(&["up", "-d", "--manager", "wtenv"]));
    assert_eq!(up.code, Some(0), "{up}");
    // sk and web leave the config; api's check changes.
    t.write_config(&http("api", "no-such-page"));
    std::fs::remove_file(t.repo.join("web-ok")).unwrap();
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(status_cells(&status, "sk")[6], "ready", "{status}");
    assert_eq!(
        status_cells(&status, "web")[6..10],
        ["unhealthy:", "GET", "/web-ok", "->"],
        "{status}"
    );
    assert_eq!(status_cells(&status, "api")[6], "healthy", "{status}");
    // The server's first connection is this request: status made none.
    let sk: u16 = status_cells(&status, "sk")[5].parse().unwrap();
    assert!(serves(sk), "{status}");
    let accepted = std::fs::read_to_string(&sk_log).unwrap();
    assert_eq!(accepted, "b'GET'\n", "{status}");
}

/// QA finding: `status` said `healthy` while a stranger served on the
/// service's port (its own server killed, its shell running on), where
/// `list` called the port a conflict. The port must answer for the
/// unit, as `up` judges readiness: unhealthy, the stranger named.
#[test]
fn status_is_unhealthy_while_a_stranger_answers_on_the_services_port() {
    let t = TestEnv::new();
    let _down = DownOnDrop(&t);
    let port = super::half_service(&t, "");
    let healthy = run(&mut t.wtenv(&["status"]));
    assert_eq!(status_cells(&healthy, "half")[6], "healthy", "{healthy}");
    super::kill_listeners(port);
    let stranger = crate::support::HttpServer::start(&t.root(), port);
    let status = run(&mut t.wtenv(&["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    let cells = status_cells(&status, "half");
    assert_eq!(cells[3], "running", "{status}");
    let health = cells[6..].join(" ");
    assert!(
        health.starts_with(&format!(
            "unhealthy: nothing of the unit listens on port {port}, and port {port} is busy: pid {} (",
            stranger.pid()
        )) && health.contains(&format!("-m http.server {port} ")),
        "{status}"
    );
    let json = run(&mut t.wtenv(&["status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let health = doc["services"][0]["health"].as_str().unwrap_or_default();
    assert!(
        health.starts_with("unhealthy: nothing of the unit listens"),
        "{json}"
    );
}
