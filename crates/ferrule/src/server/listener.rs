//! Listening sockets: bound once in the master, shared by every worker.
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener as StdUnixListener;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use crate::config::{Bind, BindAddr};

/// A bound, listening socket.
pub struct Listener {
    pub bind: Bind,
    pub socket: Socket,
    /// What the start-up line shows: `http://127.0.0.1:8000` with the real port.
    pub display: String,
    pub local: Option<SocketAddr>,
}

/// Binds `bind`; the error names the address.
pub fn bind(bind: &Bind, backlog: u32) -> Result<Listener, String> {
    let fail = |e: io::Error| format!("Cannot bind to {}: {e}", bind.spec);
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    match &bind.addr {
        BindAddr::Tcp(addr) => {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM,
                Some(SockProtocol::TCP),
            )
            .map_err(fail)?;
            socket.set_reuse_address(true).map_err(fail)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true).map_err(fail)?;
            }
            socket.bind(&(*addr).into()).map_err(fail)?;
            socket.listen(backlog).map_err(fail)?;
            let local = socket.local_addr().map_err(fail)?.as_socket();
            let shown = local.map_or_else(|| addr.to_string(), |a| a.to_string());
            Ok(Listener {
                display: format!("{}://{shown}", bind.protocol.scheme()),
                bind: bind.clone(),
                socket,
                local,
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
            let socket = Socket::from(std::os::fd::OwnedFd::from(l));
            socket.listen(backlog).map_err(fail)?;
            Ok(Listener {
                display: format!("{}://unix:{}", bind.protocol.scheme(), path.display()),
                bind: bind.clone(),
                socket,
                local: None,
            })
        }
    }
}
