//! `export systemd` and `export launchd`: units the real user manager
//! verifies, loads and serves from (socket activation included), plists
//! plistlib reads back, on ports reserved by the export.

use std::ffi::OsString;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::{
    UserManager, free, holders, listeners, naming, parse_plist, ports, serves, two_http_services,
    unit,
};
use crate::supervise::PATIENCE;
use crate::support::{TestEnv, run, snapshot, wait_for};

/// `export` into a directory it makes, under a umask of 0277: the
/// directory was made 0500 and the units could not be written into it.
#[test]
fn export_makes_a_directory_it_can_write_into_whatever_the_umask() {
    let t = TestEnv::new();
    t.write_config("[services.web]\nrun = \"true\"\n");
    t.give_to_nobody();
    let dir = t.root().join("units/user");
    for _ in 0..2 {
        let out = run(&mut t
            .wtenv_as_nobody_under_umask("277", &["export", "systemd", dir.to_str().unwrap()]));
        assert_eq!(out.code, Some(0), "{out}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(snapshot(&dir).len(), 2, "{:?}", snapshot(&dir));
}

/// The launchd agent's plist, parsed by python's plistlib, carries the
/// program, directory and environment exactly, whatever they hold.
#[test]
fn launchd_plists_parse_with_the_right_program_directory_and_environment() {
    let argv: Vec<OsString> = [
        "/opt/wtenv",
        "run",
        "--service",
        "web",
        "--",
        "sh",
        "-c",
        "echo <a> & \"b\" 'c' $(d) ü",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let env = vec![
        ("PATH".to_owned(), OsString::from("/usr/bin:/bin")),
        ("HOME".to_owned(), OsString::from("/Users/a b")),
    ];
    let agent = wtenv::background::launchd::Agent {
        label: r"wtenv-my\x2drepo-wt-web",
        argv: &argv,
        root: Path::new("/Users/a b/repo & co"),
        env: &env,
        log: Path::new("/state/background/wtenv-r-w-web.log"),
        run_at_load: true,
        exit_timeout: Duration::from_secs(15),
    };
    let text = wtenv::background::launchd::plist(&agent).unwrap();
    let t = TestEnv::bare();
    let path = t.root().join("agent.plist");
    std::fs::write(&path, &text).unwrap();
    let doc = parse_plist(&path);
    assert_eq!(doc["Label"], r"wtenv-my\x2drepo-wt-web");
    let args: Vec<&str> = doc["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        argv.iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(doc["WorkingDirectory"], "/Users/a b/repo & co");
    assert_eq!(doc["EnvironmentVariables"]["HOME"], "/Users/a b");
    assert_eq!(doc["EnvironmentVariables"]["PATH"], "/usr/bin:/bin");
    assert_eq!(
        doc["StandardOutPath"],
        "/state/background/wtenv-r-w-web.log"
    );
    assert_eq!(doc["StandardErrorPath"], doc["StandardOutPath"]);
    assert_eq!(doc["RunAtLoad"], true);
    assert_eq!(doc["ExitTimeOut"], 15);
}

#[test]
fn exported_systemd_units_verify_load_and_serve_on_the_reserved_ports() {
    let t = TestEnv::new();
    let web_unit = unit(&t, "web");
    let api_unit = unit(&t, "api");
    two_http_services(&t);
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv(&t, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let files: Vec<&str> = export.stdout.lines().collect();
    assert_eq!(files.len(), 3, "{export}");
    let target = format!("{}.target", naming(&t).group());
    assert!(files[0].ends_with(&format!("/{target}")), "{export}");
    assert!(export.stderr.contains("systemctl --user link"), "{export}");
    // Reserved before anything runs: `env` exports these same ports.
    let ports: Vec<(u16, String)> = t
        .allocations()
        .into_iter()
        .map(|(p, s, _)| (p, s))
        .collect();
    assert_eq!(ports, vec![(web, "web".into()), (api, "api".into())]);

    m.verify_and_link(&t, &files);
    let start = m.systemctl(&t, &["start", &target]);
    assert_eq!(start.code, Some(0), "{start}");
    assert!(wait_for(PATIENCE, || serves(web) && serves(api)));
    // Their output reaches the log `wtenv logs` reads, as under `up -d`.
    let web_logs = || run(&mut m.wtenv(&t, &["logs", "web"]));
    assert!(
        wait_for(PATIENCE, || web_logs()
            .stdout
            .contains("web | web says hello\n")),
        "{}",
        web_logs()
    );
    assert!(!web_logs().stdout.contains("api says"));
    // Held by the units' `run`s, which the registry names.
    assert_eq!(holders(&t, "web")[0]["unit"]["name"], web_unit.as_str());
    assert_eq!(holders(&t, "api")[0]["unit"]["name"], api_unit.as_str());
    let stop = m.systemctl(&t, &["stop", &target]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || {
        holders(&t, "web").is_empty() && holders(&t, "api").is_empty() && free(web) && free(api)
    }));
}

/// A worktree whose path holds `%`, `'`, `\` and spaces: each unit's
/// `Description=` names it as it is (`%` written `%%`, systemd's one
/// expansion there), and the real manager shows it back whole. It showed
/// `100%% it\'s a\\b`: a C escape, which systemd does not undo there.
#[test]
fn exported_units_describe_the_worktree_by_its_path_as_it_is() {
    let t = TestEnv::new();
    t.write_config(
        "[services.web]\nrun = \"true\"\n[services.api]\nrun = \"true\"\nsocket = true\n",
    );
    t.git(&["commit", "-q", "-am", "services"]);
    let path = t.root().join(r"it's 100% a\b $HOME");
    t.git(&["worktree", "add", "-q", "-b", "odd", path.to_str().unwrap()]);
    let m = UserManager::start(&t);
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv_in(&t, &path, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let files: Vec<&str> = export.stdout.lines().collect();
    assert_eq!(files.len(), 4, "{export}");
    let shown = path.display().to_string();
    let described = |unit: &str| {
        if unit.ends_with(".target") {
            format!("wtenv: services of worktree {shown}")
        } else if unit.ends_with("-web.service") {
            format!("wtenv: service web of {shown}")
        } else if unit.ends_with("-api.service") {
            format!("wtenv: service api of {shown}")
        } else {
            format!("wtenv: socket of service api of {shown}")
        }
    };
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("Description="));
        assert_eq!(line, Some(&*described(file).replace('%', "%%")), "{text}");
    }
    m.verify_and_link(&t, &files);
    for file in &files {
        let unit = Path::new(file).file_name().unwrap().to_str().unwrap();
        let show = m.systemctl(&t, &["show", "--property=Description", "--value", unit]);
        assert_eq!(show.code, Some(0), "{show}");
        assert_eq!(show.stdout, format!("{}\n", described(file)), "{unit}");
    }
}

/// `export systemd` for `socket = true` services, under the real user
/// manager: systemd listens on the reserved ports (web dual-stack, api on
/// its `bind`), `env` takes that listener as the worktree's own, the first
/// connection starts the service with the socket at fd 3 and `LISTEN_PID`
/// its own pid, and stopping the target frees the ports.
#[test]
fn exported_socket_units_start_the_service_on_the_first_connection_with_the_socket() {
    use crate::sockets::{APP, NODE, get_patiently};
    let t = TestEnv::new();
    t.write_config(
        r#"
[services.web]
socket = true
run = "node server.js"
[services.api]
socket = true
bind = "127.0.0.1"
run = "uvicorn --fd 3 --log-level warning app:asgi"
"#,
    );
    std::fs::write(t.repo.join("app.py"), APP).unwrap();
    std::fs::write(t.repo.join("server.js"), NODE).unwrap();
    let m = UserManager::start(&t);
    let (web, api) = ports(&t);
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv(&t, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let n = naming(&t);
    let target = format!("{}.target", n.group());
    let socket = |s: &str| format!("{}.socket", n.unit(s));
    let service = |s: &str| format!("{}.service", n.unit(s));
    let files: Vec<&str> = export.stdout.lines().collect();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            target.clone(),
            socket("web"),
            service("web"),
            socket("api"),
            service("api")
        ]
    );
    let read = |name: String| std::fs::read_to_string(dir.join(name)).unwrap();
    let web_socket = read(socket("web"));
    assert!(
        web_socket.contains(&format!(
            "ListenStream=[::]:{web}\nBindIPv6Only=both\nFileDescriptorName=web\n"
        )),
        "{web_socket}"
    );
    let api_socket = read(socket("api"));
    assert!(
        api_socket.contains(&format!(
            "ListenStream=127.0.0.1:{api}\nFileDescriptorName=api\n"
        )),
        "{api_socket}"
    );

    m.verify_and_link(&t, &files);
    let start = m.systemctl(&t, &["start", &target]);
    assert_eq!(start.code, Some(0), "{start}");
    // systemd listens; no service runs until a connection comes.
    assert!(wait_for(PATIENCE, || !free(web) && !free(api)));
    for s in ["web", "api"] {
        let state = m.systemctl(&t, &["is-active", &service(s)]);
        assert_eq!(state.stdout.trim(), "inactive", "{s}: {state}");
    }
    // The manager's listener is the worktree's own, not a foreign holder.
    let env = run(&mut m.wtenv(&t, &["env"]));
    assert_eq!(env.code, Some(0), "{env}");

    for (s, port) in [("web", web), ("api", api)] {
        let logs = || {
            m.systemctl(&t, &["status", "--no-pager", &service(s)])
                .to_string()
        };
        let answer = get_patiently(port, &logs);
        let pid = answer["pid"].as_u64().unwrap();
        assert_eq!(
            answer["listen_pid"].as_str(),
            Some(pid.to_string().as_str()),
            "{s}: LISTEN_PID is not the server's pid: {answer}"
        );
        assert_eq!(answer["listen_fds"], "1", "{answer}");
        assert_eq!(answer["listen_fdnames"], s, "{answer}");
        assert_eq!(answer["web_port"], web.to_string(), "{answer}");
        let state = m.systemctl(&t, &["is-active", &service(s)]);
        assert_eq!(state.stdout.trim(), "active", "{s}: {state}");
        // Held by the unit's `run`, which binds nothing: the server's
        // socket is systemd's.
        assert_eq!(holders(&t, s)[0]["unit"]["name"], service(s).as_str());
        assert!(listeners(port).contains(&(pid as u32)), "{s}");
    }
    // Dual-stack: web answers IPv6 clients too.
    assert!(TcpStream::connect(("::1", web)).is_ok());

    let stop = m.systemctl(&t, &["stop", &target]);
    assert_eq!(stop.code, Some(0), "{stop}");
    assert!(wait_for(PATIENCE, || {
        holders(&t, "web").is_empty() && holders(&t, "api").is_empty() && free(web) && free(api)
    }));
}

#[test]
fn exported_launchd_plists_carry_the_program_directory_and_environment() {
    let t = TestEnv::new();
    two_http_services(&t);
    let dir = t.root().join("agents");
    let export = run(&mut t.wtenv(&["export", "launchd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let label = naming(&t).unit("web");
    let web = dir.join(format!("{label}.plist"));
    let doc = parse_plist(&web);
    assert_eq!(doc["Label"], label.as_str());
    let args: Vec<&str> = doc["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(args[0], env!("CARGO_BIN_EXE_wtenv"));
    let expected = [
        "--service",
        "web",
        "--unit",
        &format!("launchd:{label}"),
        "--",
        "sh",
        "-c",
        "echo web says hello; exec python3 -u -m http.server $WEB_PORT --bind 127.0.0.1",
    ];
    assert_eq!(
        &args[args.len() - expected.len()..],
        &expected[..],
        "{args:?}"
    );
    assert_eq!(doc["WorkingDirectory"], t.repo.to_str().unwrap());
    let home = t.root().join("home");
    assert_eq!(doc["EnvironmentVariables"]["HOME"], home.to_str().unwrap());
    assert_eq!(
        doc["EnvironmentVariables"]["PATH"],
        std::env::var("PATH").unwrap()
    );
    assert!(!t.allocations().is_empty(), "ports reserved by export");
}

/// Services started from exported units run under the user's manager,
/// not wtenv: `status` (what `up --detach` started) says nothing runs,
/// and where those units are shown, by the names `export` gave their
/// files, once the manager has them. It named them for units never
/// exported too; now it names none where the manager has none (nothing
/// exported, or files the manager does not load yet).
#[test]
fn status_names_where_the_units_export_made_are_shown() {
    let t = TestEnv::new();
    two_http_services(&t);
    let m = UserManager::start(&t);
    let nothing = "wtenv: nothing of this worktree runs in the background\n\
                   hint: 'wtenv up --detach' starts its services in the background, and 'wtenv status' shows what it started\n";
    let status = run(&mut m.wtenv(&t, &["status"]));
    assert_eq!(
        (status.code, status.stderr.as_str()),
        (Some(0), nothing),
        "{status}"
    );
    let dir = t.root().join("units");
    let export = run(&mut m.wtenv(&t, &["export", "systemd", dir.to_str().unwrap()]));
    assert_eq!(export.code, Some(0), "{export}");
    let (web, api) = (unit(&t, "web"), unit(&t, "api"));
    for name in [&web, &api] {
        assert!(dir.join(name).is_file(), "{export}");
    }
    // Written, not linked: the manager has no such unit to show.
    let status = run(&mut m.wtenv(&t, &["status"]));
    assert_eq!(
        (status.code, status.stderr.as_str()),
        (Some(0), nothing),
        "{status}"
    );
    m.verify_and_link(&t, &export.stdout.lines().collect::<Vec<_>>());
    let status = run(&mut m.wtenv(&t, &["status"]));
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(
        status.stderr,
        format!(
            "{nothing}hint: units made by 'wtenv export' are your service manager's to show: systemctl --user status '{web}' '{api}'\n"
        ),
        "{status}"
    );
}
