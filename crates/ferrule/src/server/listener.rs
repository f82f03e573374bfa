//! Listening sockets: bound once in the master and shared by every worker, inherited from a
//! parent (`fd://N`, systemd's LISTEN_FDS), or, with `--reuse-port`, one per worker.
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener as StdUnixListener;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use crate::config::{Bind, BindAddr, Protocol};

/// A bound, listening socket.
pub struct Listener {
    pub bind: Bind,
    pub socket: Socket,
    /// What the start-up line shows: `http://127.0.0.1:8000` with the real port.
    pub display: String,
    pub local: Option<SocketAddr>,
    /// `--reuse-port`: the master's socket only holds the address; each worker listens on a
    /// socket of its own (see [`Listener::for_worker`]).
    pub reuse_port: bool,
}

/// Why [`bind`] failed; its message names the address as the user wrote it.
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// Binding or listening on the address failed (`Cannot bind to SPEC: ERROR`).
    Address { spec: String, error: io::Error },
    /// The descriptor of an `fd://N` bind is not a usable listening socket.
    Inherited { spec: String, error: io::Error },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address { spec, error } => write!(f, "Cannot bind to {spec}: {error}"),
            Self::Inherited { spec, error } => write!(f, "--bind {spec}: {error}"),
        }
    }
}

/// The message includes the I/O error's, so it is not also given as the source.
impl std::error::Error for BindError {}

/// Binds `bind`; the error names the address.
pub fn bind(bind: &Bind, backlog: u32, reuse_port: bool) -> Result<Listener, BindError> {
    let fail = |error: io::Error| BindError::Address {
        spec: bind.spec.clone(),
        error,
    };
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    match &bind.addr {
        BindAddr::Tcp(addr) => {
            let socket = tcp_socket(*addr, reuse_port).map_err(fail)?;
            if !reuse_port {
                socket.listen(backlog).map_err(fail)?;
            }
            let local = socket.local_addr().map_err(fail)?.as_socket();
            let shown = local.map_or_else(|| addr.to_string(), |a| a.to_string());
            Ok(Listener {
                display: format!("{}://{shown}", bind.scheme()),
                bind: bind.clone(),
                socket,
                local,
                reuse_port,
            })
        }
        BindAddr::Unix(path) => {
            // A stale socket file from an earlier run is replaced; any other file is not.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            let l = StdUnixListener::bind(path).map_err(fail)?;
            let socket = Socket::from(OwnedFd::from(l));
            socket.listen(backlog).map_err(fail)?;
            Ok(Listener {
                display: format!("{}://unix:{}", bind.scheme(), path.display()),
                bind: bind.clone(),
                socket,
                local: None,
                reuse_port: false,
            })
        }
        BindAddr::Fd(fd) => inherited(bind, *fd, false).map_err(|error| BindError::Inherited {
            spec: bind.spec.clone(),
            error,
        }),
    }
}

fn tcp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(SockProtocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// After a `--preload` reload re-executed the master: the socket the previous image bound,
/// as descriptor `fd`. With `--reuse-port` it only holds the address (it is not listening).
pub fn adopt(protocol: Protocol, tls: bool, fd: RawFd, reuse_port: bool) -> io::Result<Listener> {
    let bind = Bind {
        protocol,
        addr: BindAddr::Fd(fd),
        spec: format!("fd://{fd}"),
        tls,
    };
    inherited(&bind, fd, reuse_port)
}

/// A listening socket handed down by the parent process as descriptor `fd`.
fn inherited(bind: &Bind, fd: RawFd, reuse_port: bool) -> io::Result<Listener> {
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::other(format!(
            "descriptor {fd} is not open; pass a listening socket from the parent process"
        )));
    }
    // SAFETY: the descriptor is open and was handed to us to own; nothing else in this process
    // uses it.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    if !reuse_port && !socket.is_listener()? {
        // Do not close a descriptor that is not ours to use.
        std::mem::forget(socket);
        return Err(io::Error::other(format!(
            "descriptor {fd} is not a listening socket"
        )));
    }
    socket.set_cloexec(true)?;
    let addr = socket.local_addr()?;
    let (display, local) = if let Some(a) = addr.as_socket() {
        (format!("{}://{a}", bind.scheme()), Some(a))
    } else {
        let path = addr
            .as_pathname()
            .map_or_else(|| format!("fd{fd}"), |p| p.display().to_string());
        (format!("{}://unix:{path}", bind.scheme()), None)
    };
    Ok(Listener {
        bind: bind.clone(),
        socket,
        display,
        local,
        reuse_port,
    })
}

impl Listener {
    /// In a worker: with `--reuse-port`, a listening socket of its own on the same address;
    /// the kernel spreads connections across the workers' sockets.
    pub fn for_worker(self, backlog: u32) -> io::Result<Self> {
        let (true, Some(addr)) = (self.reuse_port, self.local) else {
            return Ok(self);
        };
        let socket = tcp_socket(addr, true)?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        Ok(Self { socket, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_spec(spec: &str) -> Result<Listener, BindError> {
        let b = crate::config::parse_bind(spec).expect("a valid --bind");
        bind(&b, 16, false)
    }

    #[test]
    fn bind_errors_name_the_address_as_written() {
        let first = bind_spec("127.0.0.1:0").expect("binds");
        let taken = format!("127.0.0.1:{}", first.local.expect("tcp").port());
        let e = bind_spec(&taken).err().expect("address in use");
        assert!(matches!(e, BindError::Address { .. }));
        assert!(e
            .to_string()
            .starts_with(&format!("Cannot bind to {taken}: ")));

        let e = bind_spec("fd://987654").err().expect("not open");
        assert!(matches!(e, BindError::Inherited { .. }));
        assert_eq!(
            e.to_string(),
            "--bind fd://987654: descriptor 987654 is not open; pass a listening socket from \
             the parent process"
        );
    }
}
