//! Sockets a service manager passed to `wtenv run` (systemd socket
//! activation: an exported `.socket` unit starts its `.service` on the
//! first connection). `run` takes them at start-up and hands them on to
//! its command exactly as it hands on the sockets it binds itself
//! ([`super::handoff`]), binding nothing: the manager holds the port.
//!
//! Contract (systemd's `sd_listen_fds`):
//! - the sockets are ours only when `LISTEN_PID` is our own pid; otherwise
//!   the variables were meant for an ancestor and are ignored;
//! - they are fd 3 .. 3 + `LISTEN_FDS`, named by `LISTEN_FDNAMES`
//!   (`:`-separated; an exported unit names each by its service);
//! - each is taken as a close-on-exec copy (`pidfd_getfd` on our own
//!   pidfd, which needs no unsafe code) and the inherited descriptor is
//!   closed, so nothing `run` spawns inherits it except through the
//!   hand-off. `pidfd_getfd` is Linux's: on macOS, whose launchd passes
//!   sockets by an API of its own, a passed socket is refused.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;

use socket2::{Socket, Type};

use super::{FIRST_FD, Listener, MAX_SOCKETS};
use crate::alloc::Ports;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::settings;

/// One socket the manager passed, with the name it gave it.
#[derive(Debug)]
pub struct Passed {
    pub name: Option<String>,
    pub addr: SocketAddr,
    socket: Socket,
}

/// The sockets passed to this process, if any (empty when `LISTEN_PID`
/// is not our pid or `LISTEN_FDS` is unset).
pub fn take() -> Result<Vec<Passed>> {
    let ours = settings::listen_pid()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = settings::listen_fds()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    if !ours || count == 0 {
        return Ok(Vec::new());
    }
    if count > MAX_SOCKETS {
        return Err(Error::invalid(format!(
                "the service manager passed {count} sockets (LISTEN_FDS); at most {MAX_SOCKETS} are taken"
            )).with_hint("pass fewer sockets to one unit"));
    }
    let names: Vec<&str> = settings::listen_fdnames()
        .map(|n| n.split(':').collect())
        .unwrap_or_default();
    let mut passed = Vec::with_capacity(count);
    for (i, copy) in copies(count)?.into_iter().enumerate() {
        let fd = FIRST_FD + i as i32;
        let socket = Socket::from(copy);
        let addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .filter(|_| socket.r#type().is_ok_and(|t| t == Type::STREAM))
            .ok_or_else(|| {
                Error::invalid(format!("descriptor {fd} the service manager passed is not a TCP socket")).with_hint("wtenv takes TCP listening sockets only (ListenStream= with an address and port)")
            })?;
        passed.push(Passed {
            name: names
                .get(i)
                .filter(|n| !n.is_empty())
                .map(|n| n.to_string()),
            addr,
            socket,
        });
    }
    Ok(passed)
}

/// Close-on-exec copies of the `count` inherited descriptors from
/// [`FIRST_FD`] on, the inherited ones closed: they came with the exec and
/// are nobody's in this process, so nothing `run` spawns inherits them
/// except through the hand-off.
#[cfg(target_os = "linux")]
fn copies(count: usize) -> Result<Vec<OwnedFd>> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    let failed = |e: std::io::Error| {
        Error::io(
            "could not take the sockets the service manager passed (LISTEN_FDS)",
            e,
        )
    };
    let me = pidfd_open(getpid(), PidfdFlags::empty()).map_err(|e| failed(e.into()))?;
    (0..count)
        .map(|i| {
            let fd = FIRST_FD + i as i32;
            let copy =
                pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()).map_err(|e| failed(e.into()))?;
            nix::unistd::close(fd).map_err(|e| failed(e.into()))?;
            Ok(copy)
        })
        .collect()
}

/// Socket activation through `LISTEN_FDS` is systemd's: elsewhere (macOS's
/// launchd passes sockets by its own API) a passed socket is refused
/// rather than taken without `pidfd_getfd`, which only Linux has.
#[cfg(not(target_os = "linux"))]
fn copies(_count: usize) -> Result<Vec<OwnedFd>> {
    Err(
        Error::invalid("sockets passed by a service manager (LISTEN_FDS) are taken on Linux only")
            .with_hint("start 'wtenv run' without socket activation: it binds the ports itself"),
    )
}

/// The passed sockets as the listeners of `services` (the `--service`
/// names): each goes to the service it is named after, or, one socket for
/// one service, to that service whatever its name. Its port must be the
/// service's port in `ports`, so the command's socket and its `*_PORT`
/// variable agree.
pub fn assign(
    passed: Vec<Passed>,
    config: &Config,
    root: &Path,
    services: &[String],
    ports: &Ports,
) -> Result<Vec<Listener>> {
    let only = (passed.len() == 1 && services.len() == 1).then(|| services[0].clone());
    passed
        .into_iter()
        .map(|p| {
            let service = match (&p.name, &only) {
                (Some(name), _) if config.service(name).is_some() => name.clone(),
                (_, Some(service)) => service.clone(),
                (name, None) => {
                    return Err(Error::invalid(format!(
                            "the service manager passed a socket on {} named {:?}, which is no service of {}",
                            p.addr,
                            name.as_deref().unwrap_or(""),
                            config.file_named_for(root)
                        )).with_hint("name each socket after its service (FileDescriptorName=SERVICE), as 'wtenv export systemd' does"));
                }
            };
            let port = ports.get(&service).copied();
            if port != Some(p.addr.port()) {
                return Err(Error::refused(format!(
                        "the socket the service manager passed for service {service} listens on {}, but {service}'s port is {}",
                        p.addr,
                        port.map_or("not allocated".to_owned(), |p| p.to_string())
                    )).with_hint("export the units again ('wtenv export systemd') and reload them"));
            }
            Ok(Listener {
                service,
                addr: p.addr,
                socket: p.socket,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_of_no_service_names_the_config_in_use() {
        let root = Path::new("/r");
        let config = Config::parse(
            &root.join("wtenv.json"),
            r#"{"services": {"web": {}, "api": {}}}"#,
        )
        .unwrap();
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let passed = vec![Passed {
            name: Some("db".into()),
            addr: "127.0.0.1:5000".parse().unwrap(),
            socket,
        }];
        let services = ["web".to_owned(), "api".to_owned()];
        let Err(err) = assign(passed, &config, root, &services, &Ports::default()) else {
            panic!("db is no service");
        };
        assert_eq!(
            err.to_string(),
            "the service manager passed a socket on 127.0.0.1:5000 named \"db\", which is no service of wtenv.json"
        );
    }
}
