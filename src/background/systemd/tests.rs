//! The systemd back end's unit tests.

use super::*;

#[test]
fn escape_keeps_safe_characters_and_hex_escapes_the_rest() {
    assert_eq!(escape("web"), "web");
    assert_eq!(escape("my-repo"), r"my\x2drepo");
    assert_eq!(escape("a/b"), "a-b");
    assert_eq!(escape(".hidden.x"), r"\x2ehidden.x");
    assert_eq!(escape("a b"), r"a\x20b");
    assert_eq!(escape("é"), r"\xc3\xa9");
    assert_eq!(escape("x:y_z"), "x:y_z");
    assert_eq!(escape(r"\"), r"\x5c");
}

/// A hint's commands name each unit quoted, its `\x2d` kept.
#[test]
fn hint_commands_quote_each_unit() {
    assert_eq!(
        status_command(&[r"wtenv-my\x2drepo-wt-web.service", "b.service"]),
        r"systemctl --user status 'wtenv-my'\\'x2drepo-wt-web.service' 'b.service'"
    );
    assert_eq!(
        journal_command(r"a\x2db.service"),
        r"journalctl --user -u 'a'\\'x2db.service'"
    );
}

#[test]
fn unit_file_values_are_quoted_so_nothing_expands() {
    assert_eq!(quote("a b", true), r#""a b""#);
    assert_eq!(
        quote(r#"say "hi" \ $HOME 100%"#, true),
        r#""say \"hi\" \\ $$HOME 100%%""#
    );
    assert_eq!(quote("K=$V", false), r#""K=$V""#);
    assert_eq!(quote("two\nlines", false), r#""two\nlines""#);
}

/// systemd reads `Description=` verbatim but for its specifiers: a
/// path is written as it is, `%` doubled, and `systemctl show` gives
/// it back whole (it showed `\'` and `\\` from a C escape nothing
/// undid).
#[test]
fn descriptions_name_the_worktree_as_it_is_but_for_specifiers() {
    let root = &unit_path(std::path::Path::new(r"/w/it's 100% a\b $HOME")).unwrap();
    let shown = r"/w/it's 100%% a\b $HOME";
    let description = |text: &str| {
        let line = text.lines().find_map(|l| l.strip_prefix("Description="));
        line.unwrap().to_owned()
    };
    let service = service_file(&ServiceUnit {
        service: "web",
        target: "t.target",
        after: Vec::new(),
        root,
        env: &[],
        argv: &[OsString::from("true")],
        grace: Duration::from_secs(1),
        socket: None,
    })
    .unwrap();
    assert_eq!(
        description(&service),
        format!("wtenv: service web of {shown}")
    );
    assert!(
        service.contains(&format!("\nWorkingDirectory={shown}\n")),
        "{service}"
    );
    let socket = socket_file(&SocketUnit {
        service: "web",
        target: "t.target",
        unit: "w-web.service",
        root,
        addr: "[::]:5000".parse().unwrap(),
    });
    assert_eq!(
        description(&socket),
        format!("wtenv: socket of service web of {shown}")
    );
    let target = target_file(root, &["w-web.service".to_owned()]);
    assert_eq!(
        description(&target),
        format!("wtenv: services of worktree {shown}")
    );
    // What cannot be written there is refused before any file is made.
    for bad in ["/w/a\nb", "/w/a\\", "/w/a "] {
        assert!(unit_path(std::path::Path::new(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn socket_files_listen_dual_stack_unless_an_address_is_bound() {
    let root = &unit_path(std::path::Path::new("/w")).unwrap();
    let unit = |addr: &str| SocketUnit {
        service: "web",
        target: "t.target",
        unit: "w-web.service",
        root,
        addr: addr.parse().unwrap(),
    };
    let any = socket_file(&unit("[::]:5000"));
    assert!(
        any.contains("ListenStream=[::]:5000\nBindIPv6Only=both\n"),
        "{any}"
    );
    assert!(
        any.contains("FileDescriptorName=web\nService=w-web.service\n"),
        "{any}"
    );
    let v4 = socket_file(&unit("127.0.0.1:5000"));
    assert!(v4.contains("ListenStream=127.0.0.1:5000\n") && !v4.contains("BindIPv6Only"));
    let v6 = socket_file(&unit("[::1]:5000"));
    assert!(
        v6.contains("ListenStream=[::1]:5000\nBindIPv6Only=ipv6-only\n"),
        "{v6}"
    );
}

#[test]
fn show_output_gives_state_pid_restarts_and_uptime() {
    let units = ["web.service", "api.service"];
    let text = "Id=web.service\nLoadState=loaded\nActiveState=active\nMainPID=42\nNRestarts=2\nActiveEnterTimestampMonotonic=5000000\n\nId=api.service\nLoadState=not-found\nActiveState=inactive\nMainPID=0\n";
    let shown = show::parse(text, &units);
    let live = live(&shown, "web.service", Some(Duration::from_secs(65)));
    assert_eq!(live.state, "active");
    assert_eq!(live.pid, Some(42));
    assert_eq!(live.restarts, Some(2));
    assert_eq!(live.uptime, Some(Duration::from_secs(60)));
    let gone = super::live(&shown, "api.service", None);
    assert_eq!((gone.state.as_str(), gone.pid), ("inactive", None));
    assert!(!gone.running());
}

/// One answer for several units gives each its own state, as one
/// [`query`] each would; without a manager each is unknown.
#[test]
fn one_answer_gives_each_unit_its_own_state() {
    let units = ["web.service", "api.service"];
    let text = "Id=web.service\nLoadState=loaded\nActiveState=active\nMainPID=42\nNRestarts=0\nActiveEnterTimestampMonotonic=5000000\n\nId=api.service\nLoadState=loaded\nActiveState=activating\nMainPID=43\nNRestarts=1\nActiveEnterTimestampMonotonic=0\n";
    let lives = Lives {
        shown: Some(show::parse(text, &units)),
        now: Some(Duration::from_secs(6)),
    };
    let web = lives.of("web.service");
    assert_eq!(
        (web.state.as_str(), web.pid, web.restarts, web.uptime),
        ("active", Some(42), Some(0), Some(Duration::from_secs(1)))
    );
    let api = lives.of("api.service");
    // Activating: running, but no main pid said until active.
    assert_eq!(
        (api.state.as_str(), api.pid, api.restarts),
        ("activating", None, Some(1))
    );
    assert!(api.running());
    // A unit not asked about is said as nothing answered of it.
    let other = lives.of("other.service");
    assert_eq!((other.state.as_str(), other.pid), ("", None));
    let none = Lives {
        shown: None,
        now: None,
    };
    assert_eq!(
        none.of("web.service").state,
        "unknown (no systemd user manager)"
    );
}
