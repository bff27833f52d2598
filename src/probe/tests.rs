use super::holders::{LSOF_LISTENERS, parse_lsof_listeners};
use super::*;
use crate::config::{PortRange, Ranges};
use std::collections::BTreeSet;

/// A TCP socket bound to `addr` (port 0: any), not yet listening;
/// on IPv6, dual-stack whatever the host's default.
fn bound(addr: impl Into<SocketAddr>) -> Socket {
    let addr = addr.into();
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    if addr.is_ipv6() {
        socket.set_only_v6(false).unwrap();
    }
    socket.bind(&addr.into()).unwrap();
    socket
}

#[test]
fn ranges_in_the_ephemeral_range_are_one_warning_naming_three() {
    let eph = PortRange {
        start: 32768,
        end: 60999,
    };
    let purposes = |ranges: &[(&str, u16)]| -> BTreeMap<String, Ranges> {
        ranges
            .iter()
            .map(|&(p, start)| {
                let range = PortRange {
                    start,
                    end: start + 9,
                };
                (p.to_owned(), Ranges::one(range))
            })
            .collect()
    };
    assert_eq!(overlap_warning(&purposes(&[("a", 5000)]), eph), None);
    let (one, hint) = overlap_warning(&purposes(&[("a", 5000), ("b", 40000)]), eph).unwrap();
    assert_eq!(
        one,
        "purposes.b: port range 40000-40009 overlaps the OS ephemeral range 32768-60999: \
         outgoing connections may take its ports at any time"
    );
    assert_eq!(hint, "move it out of 32768-60999");
    let (two, _) = overlap_warning(&purposes(&[("a", 40000), ("b", 40010)]), eph).unwrap();
    assert_eq!(
        two,
        "2 port ranges overlap the OS ephemeral range 32768-60999 \
         (purposes.a 40000-40009, purposes.b 40010-40019): \
         outgoing connections may take their ports at any time"
    );
    let many: Vec<(String, u16)> = (0..1000)
        .map(|i| (format!("p{i:04}"), 32000 + 10 * i))
        .collect();
    let many: Vec<(&str, u16)> = many.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    let (text, hint) = overlap_warning(&purposes(&many), eph).unwrap();
    // 32000-32009 .. 32760-32769: the 77th is the first to overlap.
    assert_eq!(
        text,
        "924 port ranges overlap the OS ephemeral range 32768-60999 \
         (purposes.p0076 32760-32769, purposes.p0077 32770-32779, \
         purposes.p0078 32780-32789 and 921 more): \
         outgoing connections may take their ports at any time"
    );
    assert_eq!(hint, "move them out of 32768-60999");
}

/// The rule that lets the probe stop after `[::]` on Linux. Against a
/// socket of every kind another process could hold on the port (on
/// each IPv4 and IPv6 address, V6ONLY or not, with SO_REUSEADDR and
/// SO_REUSEPORT or without, bound, listening, or a connection a
/// listener accepted and outlived), a bind + listen on `[::]` that
/// succeeds means one on `127.0.0.1`, `0.0.0.0` and `::1` does too; and
/// every listener is seen by `[::]` itself.
#[cfg(target_os = "linux")]
#[test]
fn on_linux_a_free_dual_stack_bind_answers_for_the_other_three() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Bound,
        Listening,
        Accepted,
    }
    let v4 = |ip: [u8; 4]| IpAddr::from(ip);
    let v6 = |ip: &str| IpAddr::V6(ip.parse().unwrap());
    let holders = [
        (v4([0, 0, 0, 0]), false),
        (v4([127, 0, 0, 1]), false),
        (v4([127, 0, 0, 2]), false),
        (v6("::"), true),
        (v6("::"), false),
        (v6("::1"), true),
        (v6("::ffff:127.0.0.1"), false),
    ];
    let (mut free, mut busy_beside_a_free_address) = (0, 0);
    for (ip, v6only) in holders {
        for (reuse_addr, reuse_port) in [(false, false), (true, false), (false, true), (true, true)]
        {
            for kind in [Kind::Bound, Kind::Listening, Kind::Accepted] {
                let case = format!(
                    "held on {ip} (v6only {v6only}, reuseaddr {reuse_addr}, \
                     reuseport {reuse_port}), {kind:?}"
                );
                let socket = Socket::new(
                    Domain::for_address(SocketAddr::new(ip, 0)),
                    Type::STREAM,
                    None,
                )
                .unwrap();
                if ip.is_ipv6() {
                    socket.set_only_v6(v6only).unwrap();
                }
                socket.set_reuse_address(reuse_addr).unwrap();
                rustix::net::sockopt::set_socket_reuseport(&socket, reuse_port).unwrap();
                socket.bind(&SocketAddr::new(ip, 0).into()).unwrap();
                let port = socket.local_addr().unwrap().as_socket().unwrap().port();
                // What holds the port while the probe runs.
                let _held = match kind {
                    Kind::Bound => vec![socket],
                    Kind::Listening => {
                        socket.listen(8).unwrap();
                        vec![socket]
                    }
                    Kind::Accepted => {
                        socket.listen(8).unwrap();
                        let to = match ip {
                            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                            ip => ip,
                        };
                        let client = TcpStream::connect((to, port)).unwrap();
                        let (accepted, _) = socket.accept().unwrap();
                        vec![accepted, Socket::from(client)]
                    }
                };
                let answers: Vec<Bind> = BIND_ADDRS
                    .iter()
                    .map(|&a| bind_state(SocketAddr::new(a, port)).unwrap())
                    .collect();
                assert!(answers_for_all_binds(BIND_ADDRS[0]));
                if answers[0] == Bind::Free {
                    free += 1;
                    assert!(!answers.contains(&Bind::Busy), "{case}: {answers:?}");
                } else if answers.contains(&Bind::Free) {
                    busy_beside_a_free_address += 1;
                }
                if kind == Kind::Listening {
                    assert_eq!(answers[0], Bind::Busy, "{case}");
                }
            }
        }
    }
    // Neither branch is empty: the rule was put to the test.
    assert!(
        free > 0 && busy_beside_a_free_address > 0,
        "{free} {busy_beside_a_free_address}"
    );
}

/// A socket connected to its own address (what the kernel can make of
/// a probe's connect to a port in the ephemeral range) is not a server.
#[test]
fn a_connect_to_itself_is_not_a_listener() {
    let socket = bound((Ipv4Addr::LOCALHOST, 0));
    let own = socket.local_addr().unwrap();
    socket.connect(&own).unwrap();
    let stream: TcpStream = socket.into();
    assert_eq!(stream.peer_addr().unwrap(), stream.local_addr().unwrap());
    assert_eq!(connected(&stream), PortState::Free);
    // A real connection to a listener is one.
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let to_server = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert_eq!(connected(&to_server), PortState::Occupied);
}

/// A port nothing listens on refuses the probe's connect at once; one a
/// listener holds is occupied, on both loopback addresses it serves.
#[test]
fn the_connect_tells_a_refused_port_from_a_listener() {
    let listener = bound((Ipv6Addr::UNSPECIFIED, 0));
    listener.listen(8).unwrap();
    let port = listener.local_addr().unwrap().as_socket().unwrap().port();
    for ip in CONNECT_ADDRS {
        let state = connect_state(SocketAddr::new(ip, port)).unwrap();
        assert_eq!(state, PortState::Occupied, "{ip}");
    }
    drop(listener);
    for ip in CONNECT_ADDRS {
        let state = connect_state(SocketAddr::new(ip, port)).unwrap();
        assert_eq!(state, PortState::Free, "{ip}");
    }
}

/// A listener whose accept queue is full drops the probe's SYN: the
/// connect times out, and a port with a listener is occupied.
#[test]
fn a_connect_a_full_listener_leaves_hanging_says_occupied() {
    let listener = bound((Ipv4Addr::LOCALHOST, 0));
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue (nobody accepts): kept open until the end.
    let fillers: Vec<_> = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok())
        .collect();
    assert!(!fillers.is_empty());
    let started = std::time::Instant::now();
    assert_eq!(connect_state(addr).unwrap(), PortState::Occupied);
    // Waited for (poll counts whole milliseconds), not refused at once;
    // and given up once CONNECT_TIMEOUT passed, not after the SYN's
    // retries (1 s, 3 s, 7 s, ...): the send timeout is honoured. The
    // upper bound leaves a loaded machine room.
    let waited = started.elapsed();
    assert!(waited >= CONNECT_TIMEOUT / 2, "{waited:?}");
    assert!(waited < CONNECT_TIMEOUT * 4, "{waited:?}");
}

/// On Linux the probe's connect is a blocking one with a send timeout,
/// which the kernel fails with EINPROGRESS once it expires: a timeout,
/// so the port is occupied. Every other errno is left as it is.
#[cfg(target_os = "linux")]
#[test]
fn an_expired_send_timeout_is_a_timeout_and_occupied() {
    use std::io::{Error, ErrorKind};
    let timed_out = expired(Error::from_raw_os_error(libc_errno::EINPROGRESS));
    assert_eq!(timed_out.kind(), ErrorKind::TimedOut);
    assert_eq!(connect_failed(&timed_out), Some(PortState::Occupied));
    // ECONNREFUSED, EAGAIN, EACCES: as they were.
    for (errno, state) in [
        (111, Some(PortState::Free)),
        (11, None),
        (libc_errno::EACCES, None),
    ] {
        let e = expired(Error::from_raw_os_error(errno));
        assert_eq!(e.raw_os_error(), Some(errno));
        assert_eq!(connect_failed(&e), state, "{errno}");
    }
}

#[test]
fn lsof_listener_output_parses_every_address_form() {
    let text = "p101\nf5\nn*:5000\nf6\nn[::1]:5001\np202\nf3\nn127.0.0.1:5002\nnjunk\n";
    assert_eq!(
        parse_lsof_listeners(text),
        vec![(101, 5000), (101, 5001), (202, 5002)]
    );
}

/// The real `lsof` (Linux's here; macOS's takes the same options), asked
/// as macOS's lookup asks it, names this process for a port it listens
/// on, over IPv4 and IPv6 alike.
#[test]
fn a_real_lsof_listing_names_this_processs_listeners() {
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = std::net::TcpListener::bind("[::1]:0").ok();
    let out = std::process::Command::new("lsof")
        .args(LSOF_LISTENERS)
        .output()
        .unwrap();
    let found = parse_lsof_listeners(&String::from_utf8_lossy(&out.stdout));
    let me = std::process::id();
    for listener in std::iter::once(&v4).chain(&v6) {
        let port = listener.local_addr().unwrap().port();
        assert!(found.contains(&(me, port)), "{port} not in {found:?}");
    }
}
use std::net::TcpListener;

#[test]
fn a_v4_loopback_listener_is_seen_with_its_holder() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(probe(port).unwrap(), PortState::Occupied);
    let found = holders(&BTreeSet::from([port]));
    assert_eq!(found[&port][0].pid, std::process::id());
    assert_eq!(all_holders()[&port][0].pid, std::process::id());
    drop(listener);
    assert_eq!(probe(port).unwrap(), PortState::Free);
}

/// A port kept busy by a socket bound without listening has no listening
/// socket for the lookup to find: nothing listens, no process is hidden.
/// A listener is no such port.
#[cfg(target_os = "linux")]
#[test]
fn a_socket_bound_without_listening_is_seen_as_no_listener() {
    let socket = bound(([127, 0, 0, 1], 0));
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    assert_eq!(probe(port).unwrap(), PortState::Occupied);
    let found = lookup(&BTreeSet::from([port]));
    assert_eq!(
        found[&port],
        Holders {
            processes: vec![],
            listening: Some(false),
            time_wait: false,
        }
    );
    assert_eq!(found[&port].unnamed(), NOT_LISTENING);
    socket.listen(1).unwrap();
    let found = lookup(&BTreeSet::from([port]));
    assert_eq!(found[&port].listening, Some(true), "{found:?}");
    assert_eq!(found[&port].processes[0].pid, std::process::id());
}

/// A connect that something at the port answered, then dropped, is
/// occupied; refused is free; an error of the probe itself is an error.
#[test]
fn a_connect_reset_or_aborted_is_occupied_not_an_error() {
    use std::io::{Error, ErrorKind};
    for kind in [
        ErrorKind::ConnectionReset,
        ErrorKind::ConnectionAborted,
        ErrorKind::TimedOut,
    ] {
        assert_eq!(
            connect_failed(&Error::from(kind)),
            Some(PortState::Occupied),
            "{kind:?}"
        );
    }
    assert_eq!(
        connect_failed(&Error::from(ErrorKind::ConnectionRefused)),
        Some(PortState::Free)
    );
    assert_eq!(
        connect_failed(&Error::from(ErrorKind::PermissionDenied)),
        None
    );
}

/// `"listening"` goes right after the port's processes in JSON, and is
/// `null` where the lookup could not tell.
#[test]
fn listening_is_put_beside_the_processes_null_where_untold() {
    let item = || serde_json::json!({"port": 5000, "holders": [], "range": "5000-5009"});
    let mut told = item();
    listening_json(&mut told, "holders", Some(false));
    assert_eq!(
        serde_json::to_string(&told).unwrap(),
        r#"{"port":5000,"holders":[],"listening":false,"range":"5000-5009"}"#
    );
    let mut untold = item();
    listening_json(&mut untold, "holders", None);
    assert_eq!(
        serde_json::to_string(&untold).unwrap(),
        r#"{"port":5000,"holders":[],"listening":null,"range":"5000-5009"}"#
    );
}
