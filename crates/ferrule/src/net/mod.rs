//! What the worker's I/O and the WSGI bridge both know of connections and sockets, below
//! both: the connection's addresses ([`ConnInfo`]), socket calls outside the event loop
//! ([`io`]), the `Date` header's clock ([`date`]) and inherited listening sockets.
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

pub mod date;
pub mod io;

/// What the WSGI bridge knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub fd: RawFd,
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub scheme: &'static str,
    /// The TLS session the connection came through, on a TLS bind.
    pub tls: Option<Arc<TlsInfo>>,
}

/// What a TLS handshake settled, for the environ (mod_ssl's names: `SSL_PROTOCOL`,
/// `SSL_CIPHER`, `SSL_CLIENT_*`).
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// The cipher suite, by its OpenSSL name (as mod_ssl reports it).
    pub cipher: &'static str,
    /// The client's certificate, when it sent one that verified.
    pub client: Option<ClientCertInfo>,
}

/// A verified client certificate, as mod_ssl presents it.
#[derive(Debug, Clone, Default)]
pub struct ClientCertInfo {
    /// `SSL_CLIENT_S_DN`: the subject, RFC 4514 (`CN=client,O=Example`).
    pub subject: String,
    /// `SSL_CLIENT_I_DN`: the issuer, same form.
    pub issuer: String,
    /// `SSL_CLIENT_SERIAL`: the serial number in upper-case hex.
    pub serial: String,
    /// `SSL_CLIENT_CERT`: the certificate in PEM.
    pub pem: String,
}

impl ConnInfo {
    /// The peer for log lines: its address, or that it came over a Unix socket.
    pub fn peer_label(&self) -> String {
        self.peer
            .map_or_else(|| "a unix socket peer".to_owned(), |p| p.to_string())
    }
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// systemd socket activation: the descriptors in LISTEN_FDS when LISTEN_PID is this process.
/// The variables are removed so that the app's own children do not take them too.
#[must_use]
pub fn systemd_fds() -> Vec<RawFd> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<RawFd>().ok())
        .unwrap_or(0);
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY (of the environment): the master is still single-threaded here.
        std::env::remove_var(var);
    }
    (LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count)).collect()
}
