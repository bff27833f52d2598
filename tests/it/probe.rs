//! The port probe against real listeners: every
//! way a port can be taken is "busy", a TIME_WAIT a server's SO_REUSEADDR
//! left is "free" (one left without it is busy, said so), and a host
//! without IPv6 still allocates. Each case is checked through the library
//! (`wtenv::probe::probe`) and through the real binary, whose fail-fast
//! allocation must refuse the port.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use wtenv::probe::{PortState, probe};

use crate::support::{PyListener, TestEnv, run, wait_for};

const V6ONLY_ON: &str = "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)";
const V6ONLY_OFF: &str = "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)";
const REUSEPORT: &str = "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)";

/// A listener of another process on the block's first port: the probe says
/// busy, `allocate` fails fast naming that port and allocates nothing;
/// once the listener is gone the same port is free and taken.
fn assert_listener_makes_port_busy(family: &str, addr: &str, opts: &str) {
    let t = TestEnv::new();
    let port = t.ports.start;
    let listener = PyListener::start(&t.root(), family, addr, port, opts);
    assert_eq!(
        probe(port).unwrap(),
        PortState::Occupied,
        "a listener on {addr} (opts: {opts:?}) was probed free"
    );
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "Ports free in registry but occupied on system: {port}."
        )),
        "{out}"
    );
    assert!(t.allocations().is_empty());
    drop(listener);
    assert!(
        wait_for(Duration::from_secs(10), || probe(port).unwrap()
            == PortState::Free),
        "port {port} stayed busy after its listener died"
    );
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("{port}\n"));
}

#[test]
fn listener_on_v6_loopback_only_is_busy() {
    assert_listener_makes_port_busy("6", "::1", "");
}

#[test]
fn listener_on_v6_wildcard_with_v6only_is_busy() {
    assert_listener_makes_port_busy("6", "::", V6ONLY_ON);
}

#[test]
fn listener_on_v4_loopback_only_is_busy() {
    assert_listener_makes_port_busy("4", "127.0.0.1", "");
}

#[test]
fn listener_on_v4_wildcard_is_busy() {
    assert_listener_makes_port_busy("4", "0.0.0.0", "");
}

#[test]
fn listener_on_dual_stack_wildcard_is_busy() {
    assert_listener_makes_port_busy("6", "::", V6ONLY_OFF);
}

#[test]
fn listener_with_so_reuseport_is_busy() {
    assert_listener_makes_port_busy("4", "127.0.0.1", REUSEPORT);
}

#[test]
fn v6_listener_with_so_reuseport_is_busy() {
    assert_listener_makes_port_busy("6", "::", &format!("{REUSEPORT}\n{V6ONLY_ON}"));
}

/// `ss -tan state time-wait` lines whose local port is `port`.
pub fn time_wait_lines(port: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-Htan", "state", "time-wait"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            // Local address is the first address column.
            l.split_whitespace()
                .find(|f| f.contains(':'))
                .is_some_and(|f| f.ends_with(&format!(":{port}")))
        })
        .map(str::to_owned)
        .collect()
}

/// A real TIME_WAIT whose local port is the candidate: the server side of
/// an accepted connection closes first, so its socket (local port = the
/// listening port) lingers in TIME_WAIT after everything is closed. Its
/// listener sets SO_REUSEADDR, as servers do (and std's `TcpListener`),
/// when `reuse_address`; the TIME_WAIT keeps it.
pub fn make_time_wait(addr: &str, port: u16, reuse_address: bool) {
    let at = SocketAddr::new(addr.parse().unwrap(), port);
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, None).unwrap();
    socket.set_reuse_address(reuse_address).unwrap();
    socket.bind(&at.into()).unwrap();
    socket.listen(1).unwrap();
    let listener = TcpListener::from(socket);
    let mut client = TcpStream::connect(at).unwrap();
    let (server_side, _) = listener.accept().unwrap();
    drop(listener);
    drop(server_side); // active close: this side goes to TIME_WAIT
    let mut buf = [0u8; 1];
    // Wait for the FIN, then close: the server side completes the close.
    assert_eq!(client.read(&mut buf).unwrap(), 0);
    drop(client);
}

#[test]
fn time_wait_on_the_candidate_port_is_free() {
    let t = TestEnv::new();
    let port = t.ports.start;
    make_time_wait("127.0.0.1", port, true);
    make_time_wait("::1", port, true);
    let lines = time_wait_lines(port);
    assert!(
        lines.iter().any(|l| l.contains("127.0.0.1:"))
            && lines.iter().any(|l| l.contains("[::1]:")),
        "no TIME_WAIT on port {port} for both families: {lines:?}"
    );
    assert_eq!(probe(port).unwrap(), PortState::Free);
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, format!("{port}\n"));
    assert!(
        !time_wait_lines(port).is_empty(),
        "the TIME_WAIT was gone before wtenv ran: the test proved nothing"
    );
}

/// A port busy with nothing listening on it: a socket bound without
/// listening, or a TIME_WAIT left by a socket without SO_REUSEADDR (no
/// bind of the port succeeds until it clears, a server's with
/// SO_REUSEADDR included). No process is hidden there, as `holder
/// unknown` would say: the line says what holds the port instead, where
/// a reserved port is refused (`env`, `ports`, `conflicts`) and where the
/// allocation fails fast on a free one.
#[test]
fn a_port_busy_with_nothing_listening_is_said_so_not_holder_unknown() {
    const NOT_LISTENING: &str = "no listening process (a socket bound without listening, or a TIME_WAIT: it clears within a minute)";
    let t = TestEnv::new();
    let (bound_port, waiting_port) = (t.ports.port(0), t.ports.port(1));
    assert_eq!(run(&mut t.wtenv(&["env"])).code, Some(0));
    let bound = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    bound
        .bind(&SocketAddr::from(([127, 0, 0, 1], bound_port)).into())
        .unwrap();
    let env = run(&mut t.wtenv(&["env"]));
    assert_eq!(env.code, Some(1), "{env}");
    assert!(
        env.stderr
            .contains(&format!("  port {bound_port} (app): {NOT_LISTENING}\n")),
        "{env}"
    );
    let ports = run(&mut t.wtenv(&["ports"]));
    assert!(
        ports
            .stdout
            .contains(&format!("conflict ({NOT_LISTENING})")),
        "{ports}"
    );
    let conflicts = run(&mut t.wtenv(&["conflicts"]));
    assert_eq!(conflicts.code, Some(1), "{conflicts}");
    assert!(conflicts.stdout.contains(NOT_LISTENING), "{conflicts}");

    make_time_wait("127.0.0.1", waiting_port, false);
    assert_eq!(probe(waiting_port).unwrap(), PortState::Occupied);
    let out = run(&mut t.wtenv(&["allocate", "--service", "x"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("\n  port {waiting_port}: {NOT_LISTENING}\n")),
        "{out}"
    );
    assert!(
        !time_wait_lines(waiting_port).is_empty(),
        "the TIME_WAIT was gone before wtenv ran: the test proved nothing"
    );
    drop(bound);
}

/// The real binary in a fresh network namespace where IPv6 is disabled on
/// every interface: `::1` cannot be bound there (shown first), yet
/// allocation works, and an IPv4 listener is still seen as a conflict.
#[test]
fn a_host_without_ipv6_still_allocates_and_sees_v4_listeners() {
    let t = TestEnv::new();
    let (p0, p1) = (t.ports.port(0), t.ports.port(1));
    let script = r#"
set -eu
ip link set lo up
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > "$f"; done
python3 -c '
import socket, errno
s = socket.socket(socket.AF_INET6)
try:
    s.bind(("::1", 0))
    print("ipv6 present")
except OSError as e:
    print("ipv6 absent" if e.errno == errno.EADDRNOTAVAIL else "unexpected %r" % e)
'
"$WTENV" allocate --service a
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
time.sleep(60)
' "$P1" &
for _ in $(seq 600); do ss -Htln "sport = :$P1" | grep -q . && break; sleep 0.05; done
set +e
"$WTENV" allocate --service b
echo "conflict exit $?"
"$WTENV" allocate --service b --skip-occupied
echo "skip exit $?"
kill %1
"#;
    let mut cmd = Command::new("unshare");
    t.apply_env(&mut cmd);
    cmd.current_dir(&t.repo)
        .env("WTENV", env!("CARGO_BIN_EXE_wtenv"))
        .env("P1", p1.to_string())
        .args(["-n", "bash", "-c", script]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "ipv6 absent", "{out}");
    assert_eq!(lines[1], p0.to_string(), "{out}");
    assert_eq!(lines[2], "listening", "{out}");
    assert_eq!(lines[3], "conflict exit 1", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "Ports free in registry but occupied on system: {p1}."
        )),
        "{out}"
    );
    assert_eq!(lines[4], (p1 + 1).to_string(), "{out}");
    assert_eq!(lines[5], "skip exit 0", "{out}");
}

/// A listener on one specific non-loopback address (a dev server bound to
/// the LAN address): a bind on 127.0.0.1 does not conflict with it and a
/// loopback connect does not reach it, so only the wildcard binds can see
/// it. Made real in a network namespace whose `lo` carries 10.200.0.1.
#[test]
fn a_listener_on_a_specific_non_loopback_address_is_busy() {
    let t = TestEnv::new();
    let p0 = t.ports.port(0);
    let script = r#"
set -eu
ip link set lo up
ip addr add 10.200.0.1/32 dev lo
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET)
s.bind(("10.200.0.1", int(sys.argv[1])))
s.listen(8)
time.sleep(60)
' "$P0" &
for _ in $(seq 600); do ss -Htln "sport = :$P0" | grep -q 10.200.0.1 && break; sleep 0.05; done
set +e
"$WTENV" allocate --service a
echo "exit $?"
kill %1
"#;
    let mut cmd = Command::new("unshare");
    t.apply_env(&mut cmd);
    cmd.current_dir(&t.repo)
        .env("WTENV", env!("CARGO_BIN_EXE_wtenv"))
        .env("P0", p0.to_string())
        .args(["-n", "bash", "-c", script]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, "exit 1\n", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "Ports free in registry but occupied on system: {p0}."
        )),
        "{out}"
    );
}
