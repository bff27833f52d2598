//! Services' rules, on text: health checks, dependencies, restarts and
//! the durations they take.

use std::time::Duration;

use super::*;
use crate::health::{Check, Health, Restart};

#[test]
fn health_depends_on_and_restart_parse() {
    let c = parse(
        "[services.api]\nhealth = { http = \"/healthz\", interval = \"500ms\", timeout = \"2s\", retries = 2, start_period = \"5s\" }\ndepends_on = [\"db\"]\nrestart = \"on-failure\"\n[services.db]\nhealth = { cmd = \"pg_isready\" }\n",
    )
    .unwrap();
    let api = c.service("api").unwrap();
    assert_eq!(
        api.health(),
        Some(Health {
            check: Check::Http {
                path: "/healthz".into()
            },
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            retries: 2,
            start_period: Duration::from_secs(5),
        })
    );
    assert_eq!(api.depends_on, vec!["db"]);
    assert_eq!(api.restart, Restart::OnFailure);
    let db = c.service("db").unwrap();
    assert_eq!(
        db.health().unwrap().check,
        Check::Cmd {
            command: "pg_isready".into()
        }
    );
    assert_eq!(db.restart, Restart::No);
}

/// `tcp = false` says "not tcp": beside `http` or `cmd` that one is the
/// check, whichever order the keys come in.
#[test]
fn tcp_false_beside_another_check_leaves_that_check() {
    for (health, check) in [
        (
            "{ tcp = false, http = \"/x\" }",
            Check::Http { path: "/x".into() },
        ),
        (
            "{ cmd = \"true\", tcp = false }",
            Check::Cmd {
                command: "true".into(),
            },
        ),
    ] {
        let c = parse(&format!("[services.web]\nhealth = {health}\n")).unwrap();
        assert_eq!(
            c.service("web").unwrap().health().unwrap().check,
            check,
            "{health}"
        );
    }
}

/// A service the config does not declare: one error for every command,
/// its hint listing the configured ones (the default `app` when it
/// declares none).
#[test]
fn an_unknown_service_is_said_with_the_configured_ones() {
    let root = std::path::Path::new("/w");
    for (text, hint) in [
        (
            "[services.web]\n[services.db]\n",
            "configured services: web, db (the [services.NAME] tables of wtenv.toml)",
        ),
        (
            "",
            "configured services: app (the [services.NAME] tables of wtenv.toml)",
        ),
    ] {
        let c = parse(text).unwrap();
        let err = c.require_service("api", root).unwrap_err();
        assert_eq!(err.to_string(), "unknown service \"api\"");
        assert_eq!(err.hint().as_deref(), Some(hint), "{text}");
    }
    assert_eq!(
        parse("[services.a]\n[services.b]\n")
            .unwrap()
            .service_index("b", root)
            .unwrap(),
        1
    );
}

#[test]
fn bad_health_names_the_service_and_key() {
    let cases = [
        (
            "health = { http = \"healthz\" }",
            "services.web.health.http: \"healthz\" is not a request path: a request path starts with '/' and holds only printable ASCII without spaces",
        ),
        (
            "health = { http = \"/a b\" }",
            "services.web.health.http: \"/a b\" is not a request path: a request path starts with '/' and holds only printable ASCII without spaces",
        ),
        (
            "health = { http = \"/a\\tb\" }",
            "services.web.health.http: \"/a\\tb\" is not a request path: a request path starts with '/' and holds only printable ASCII",
        ),
        (
            "health = { http = \"/café\" }",
            "services.web.health.http: \"/café\" is not a request path: a request path starts with '/' and holds only printable ASCII",
        ),
        (
            "health = { http = \"/h?q=1#frag\" }",
            "services.web.health.http: \"/h?q=1#frag\" is not a request path: it holds a fragment ('#'), which clients never send",
        ),
        (
            "health = { http = \"/\", cmd = \"true\" }",
            "services.web.health: one check only: http and cmd",
        ),
        (
            "health = { tcp = false }",
            "services.web.health.tcp: tcp = false names no check",
        ),
        (
            "health = { tcp = true, http = \"/\" }",
            "services.web.health: one check only: http and tcp",
        ),
        (
            "health = { cmd = \"true\", tcp = true }",
            "services.web.health: one check only: cmd and tcp",
        ),
        (
            "health = { cmd = \" \" }",
            "services.web.health.cmd: the command is empty",
        ),
        (
            "health = { interval = \"0s\" }",
            "wtenv.toml:2:23: services.web.health.interval: must be longer than 0s",
        ),
        (
            "health = { timeout = \"soon\" }",
            "wtenv.toml:2:22: services.web.health.timeout: \"soon\" is not a duration",
        ),
        (
            "health = { retries = 0 }",
            "services.web.health.retries: expected a whole number",
        ),
        (
            "health = \"/healthz\"",
            "services.web.health: expected a table",
        ),
        (
            "restart = \"sometimes\"",
            "services.web.restart: \"sometimes\" is not a restart policy",
        ),
        (
            "depends_on = \"db\"",
            "services.web.depends_on: expected an array of service names",
        ),
    ];
    for (line, want) in cases {
        let e = parse(&format!("[services.web]\n{line}\n")).unwrap_err();
        assert!(e.to_string().contains(want), "{line}: {e}");
    }
}

#[test]
fn dependency_cycles_and_unknown_names_are_config_errors() {
    let e = parse("[services.web]\ndepends_on = [\"api\"]\n").unwrap_err();
    assert!(
        e.to_string().contains(
            "services.web.depends_on: service web depends on \"api\", which is not a service"
        ),
        "{e}"
    );
    let e = parse("[services.a]\ndepends_on = [\"b\"]\n[services.b]\ndepends_on = [\"a\"]\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("services.a.depends_on: dependency cycle: a -> b -> a"),
        "{e}"
    );
}

/// A config's durations become deadlines on the clock: one it would
/// overflow (`up` panicked on `300000000000years`) is refused, key named.
#[test]
fn durations_over_a_year_are_refused_with_their_key() {
    for (text, key) in [
        (
            "[services.web]\nready_timeout = \"300000000000years\"\n",
            "2:17: services.web.ready_timeout",
        ),
        (
            "[services.web]\nhealth = { tcp = true, interval = \"366days\" }\n",
            "2:35: services.web.health.interval",
        ),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(&format!("wtenv.toml:{key}: ")), "{e}");
        assert!(
            e.ends_with("is longer than a year (1y), the most accepted"),
            "{e}"
        );
    }
    assert!(parse("[services.web]\nready_timeout = \"365days\"\n").is_ok());
}

/// A duration refused is placed at its line and column, as a value of
/// the wrong type is, in TOML and JSON alike, whatever its key.
#[test]
fn a_refused_duration_is_placed_at_its_line_and_column() {
    for (name, text, want) in [
        (
            "wtenv.toml",
            "[services.web]\nhealth = { tcp = true, start_period = \"soon\" }\n",
            "wtenv.toml:2:39: services.web.health.start_period: \"soon\" is not a duration: ",
        ),
        (
            "wtenv.json",
            "{\"services\": {\"web\": {\n  \"ready_timeout\": \"5x\"}}}",
            "wtenv.json:2:23: services.web.ready_timeout: \"5x\" is not a duration: ",
        ),
        (
            "wtenv.json",
            "{\"services\": {\"web\": {\"health\": {\n  \"timeout\": 0}}}}",
            "wtenv.json:2:14: services.web.health.timeout: must be longer than 0s",
        ),
    ] {
        let e = Config::parse(Path::new(name), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("invalid config {want}")),
            "{text}: {e}"
        );
    }
}

/// A config's durations are read as the command line's are (bare seconds
/// too), and a TOML or JSON number is seconds.
#[test]
fn durations_take_seconds_as_text_or_number() {
    for (value, want) in [
        ("\"30\"", Duration::from_secs(30)),
        ("\"1.5\"", Duration::from_millis(1500)),
        ("\"1m\"", Duration::from_secs(60)),
        ("30", Duration::from_secs(30)),
        ("0.5", Duration::from_millis(500)),
    ] {
        let c = parse(&format!(
            "[services.web]\nready_timeout = {value}\nhealth = {{ tcp = true, start_period = {value} }}\n"
        ))
        .unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(c.services[0].ready_timeout, want, "{value}");
        assert_eq!(
            c.services[0].health().unwrap().start_period,
            want,
            "{value}"
        );
    }
    // A start period may be none at all.
    let c = parse("[services.web]\nhealth = { tcp = true, start_period = 0 }\n").unwrap();
    assert_eq!(c.services[0].health().unwrap().start_period, Duration::ZERO);
    let c = Config::parse(
        Path::new("wtenv.json"),
        r#"{"services": {"web": {"ready_timeout": 2, "health": {"interval": 0.25, "timeout": "3"}}}}"#,
    )
    .unwrap();
    let web = &c.services[0];
    assert_eq!(web.ready_timeout, Duration::from_secs(2));
    assert_eq!(web.health().unwrap().interval, Duration::from_millis(250));
    assert_eq!(web.health().unwrap().timeout, Duration::from_secs(3));

    for (line, want) in [
        (
            "ready_timeout = -5",
            "wtenv.toml:2:17: services.web.ready_timeout: -5 is not a duration: expected seconds (30) or a duration (30s, 500ms, 1m), at most a year",
        ),
        (
            "ready_timeout = -0.5",
            "wtenv.toml:2:17: services.web.ready_timeout: -0.5 is not a duration",
        ),
        (
            "ready_timeout = nan",
            "wtenv.toml:2:17: services.web.ready_timeout: NaN is not a duration",
        ),
        (
            "ready_timeout = \"-5\"",
            "wtenv.toml:2:17: services.web.ready_timeout: \"-5\" is not a duration",
        ),
        (
            "ready_timeout = inf",
            "wtenv.toml:2:17: services.web.ready_timeout: inf is longer than a year (1y), the most accepted",
        ),
        (
            "ready_timeout = 1e300",
            "wtenv.toml:2:17: services.web.ready_timeout: 1e300 is longer than a year (1y), the most accepted",
        ),
        (
            "ready_timeout = 9223372036854775807",
            "wtenv.toml:2:17: services.web.ready_timeout: 9223372036854775807 is longer than a year (1y), the most accepted",
        ),
        (
            "ready_timeout = \"1e19\"",
            "wtenv.toml:2:17: services.web.ready_timeout: \"1e19\" is longer than a year (1y), the most accepted",
        ),
        (
            "health = { interval = 0 }",
            "wtenv.toml:2:23: services.web.health.interval: must be longer than 0s",
        ),
        // A deadline of 0s fails `up` at once: refused as interval and
        // timeout are, in the same words.
        (
            "ready_timeout = 0",
            "wtenv.toml:2:17: services.web.ready_timeout: must be longer than 0s",
        ),
        (
            "ready_timeout = \"0ms\"",
            "wtenv.toml:2:17: services.web.ready_timeout: must be longer than 0s",
        ),
        (
            "health = { timeout = -1 }",
            "wtenv.toml:2:22: services.web.health.timeout: -1 is not a duration",
        ),
        (
            "ready_timeout = true",
            "wtenv.toml:2:17: services.web.ready_timeout: expected seconds (30) or a duration (\"30s\"), got boolean `true`",
        ),
    ] {
        let e = parse(&format!("[services.web]\n{line}\n")).unwrap_err();
        assert!(e.to_string().contains(want), "{line}: {e}");
    }
}

/// A service named on the command line keeps a `[services]` key's rule,
/// through the same function: 64 characters are allowed, 65 are not; only
/// ASCII letters, digits, `_` and `-`, not starting with `-` (an option's
/// look); never empty.
#[test]
fn a_service_name_on_the_command_line_keeps_the_configs_rule() {
    for name in ["web", "my-api_2", &"a".repeat(64)] {
        assert!(check_service_name(name).is_ok(), "{name}");
        assert!(parse(&format!("[services.{name:?}]\n")).is_ok(), "{name}");
    }
    for name in [
        "",
        "web ui",
        "web.ui",
        "wéb",
        "a/b",
        "-web",
        "-",
        &"a".repeat(65),
    ] {
        assert!(check_service_name(name).is_err(), "{name:?}");
        assert!(
            parse(&format!("[services.{name:?}]\n")).is_err(),
            "{name:?}"
        );
    }
}

/// What check a service has: the configured one, else the default tcp
/// check, but none at all for a `socket = true` service without a
/// `health` key (its port accepts by wtenv's own socket).
#[test]
fn a_socket_service_without_a_health_key_has_no_check() {
    let c = parse(
        "[services.web]\n[services.sk]\nsocket = true\n[services.hk]\nsocket = true\nhealth = { cmd = \"true\" }\n",
    )
    .unwrap();
    let check = |name: &str| c.service(name).unwrap().health().map(|h| h.check);
    assert_eq!(check("web"), Some(Check::Tcp));
    assert_eq!(check("sk"), None);
    assert_eq!(
        check("hk"),
        Some(Check::Cmd {
            command: "true".into()
        })
    );
    assert_eq!(c.service("hk").unwrap().default_health(), None);
}
