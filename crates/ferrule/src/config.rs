//! One `Config`, built from the command line and checked before anything starts.
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use ferrule_proto::forwarded::TrustList;
use ferrule_proto::Limits;

use crate::cli::Cli;

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// A listening socket inherited from the parent process (`fd://N`, systemd).
    Fd(i32),
}

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    /// The uwsgi binary protocol (nginx `uwsgi_pass`).
    Uwsgi,
    /// SCGI (nginx `scgi_pass`).
    Scgi,
    /// FastCGI, responder role (nginx `fastcgi_pass`).
    FastCgi,
}

impl Protocol {
    /// The bind's scheme, as written in `--bind` and shown in `Listening at:`.
    #[must_use]
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Uwsgi => "uwsgi",
            Self::Scgi => "scgi",
            Self::FastCgi => "fastcgi",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub protocol: Protocol,
    pub addr: BindAddr,
    /// As the user wrote it, for messages.
    pub spec: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub app: Option<String>,
    pub binds: Vec<Bind>,
    pub workers: u32,
    pub threads: u32,
    pub chdir: Option<PathBuf>,
    pub pythonpath: Vec<String>,
    pub root_path: String,
    pub backlog: u32,
    pub keep_alive: Duration,
    pub limits: Limits,
    pub server_header: bool,
    pub client_timeout: Duration,
    pub graceful_timeout: Duration,
    /// `--timeout`; zero disables the request watchdog and the heartbeat check.
    pub timeout: Duration,
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    /// `--max-worker-memory` in bytes; 0 disables.
    pub max_worker_memory: u64,
    pub pidfile: Option<PathBuf>,
    pub reuse_port: bool,
    /// `--forwarded-allow-ips`.
    pub forwarded_allow: TrustList,
    /// `--proxy-protocol`: the peers allowed to send the header (`--proxy-allow-from`).
    pub proxy_protocol: Option<TrustList>,
    pub umask: Option<u32>,
    /// `--user`: uid (and its primary gid) the workers switch to.
    pub user: Option<(u32, u32)>,
    /// `--group`: gid the workers switch to.
    pub group: Option<u32>,
    /// `--preload`: the master imports the app before forking; HUP re-executes the master.
    pub preload: bool,
    /// `--reload`: restart the workers when the app's source changes.
    pub reload: bool,
    pub reload_extra_files: Vec<PathBuf>,
    /// The command line as given (program name first), to re-read the config file on HUP.
    pub argv: Vec<String>,
    pub cli: Cli,
}

impl Config {
    /// Checks the command line; the error names the bad option and the fix.
    pub fn from_cli(cli: Cli) -> Result<Self, String> {
        let mut binds = cli
            .bind
            .iter()
            .map(|b| parse_bind(b))
            .collect::<Result<Vec<_>, _>>()?;
        // systemd socket activation: the sockets it passes, as gunicorn does.
        for fd in crate::net::systemd_fds() {
            binds.push(Bind {
                protocol: Protocol::Http,
                addr: BindAddr::Fd(fd),
                spec: format!("fd://{fd}"),
            });
        }
        if binds.is_empty() {
            binds.push(parse_bind(DEFAULT_BIND)?);
        }
        let umask = cli
            .umask
            .as_deref()
            .map(|u| {
                let digits = u.strip_prefix("0o").unwrap_or(u);
                u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|&m| m <= 0o777)
                    .ok_or_else(|| format!("--umask {u}: give an octal mask, as in 007 or 0o027"))
            })
            .transpose()?;
        let user = cli.user.as_deref().map(resolve_user).transpose()?;
        let forwarded_allow: TrustList = cli
            .forwarded_allow_ips
            .parse()
            .map_err(|e| format!("--forwarded-allow-ips {}: {e}", cli.forwarded_allow_ips))?;
        let proxy_allow: TrustList = cli
            .proxy_allow_from
            .parse()
            .map_err(|e| format!("--proxy-allow-from {}: {e}", cli.proxy_allow_from))?;
        let group = cli.group.as_deref().map(resolve_group).transpose()?;
        let root_path = cli.root_path.trim_end_matches('/').to_owned();
        if !root_path.is_empty() && !root_path.starts_with('/') {
            return Err(format!(
                "--root-path {:?}: a prefix must start with '/', as in /app",
                cli.root_path
            ));
        }
        if cli.limit_request_fields > ferrule_proto::limits::MAX_FIELDS {
            return Err(format!(
                "--limit-request-fields {}: at most {}",
                cli.limit_request_fields,
                ferrule_proto::limits::MAX_FIELDS
            ));
        }
        Ok(Self {
            app: cli.app.clone(),
            binds,
            workers: cli.workers,
            threads: cli.threads,
            chdir: cli.chdir.clone(),
            pythonpath: cli
                .pythonpath
                .as_deref()
                .map(|p| {
                    p.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            root_path,
            backlog: cli.backlog,
            keep_alive: Duration::from_secs(cli.keep_alive),
            limits: Limits::new(
                cli.limit_request_line,
                cli.limit_request_fields,
                cli.limit_request_field_size,
                cli.limit_request_body,
            ),
            server_header: !cli.no_server_header,
            client_timeout: Duration::from_secs(cli.client_timeout.max(1)),
            graceful_timeout: Duration::from_secs(cli.graceful_timeout),
            timeout: Duration::from_secs(cli.timeout),
            max_requests: cli.max_requests,
            max_requests_jitter: cli.max_requests_jitter,
            max_worker_memory: cli.max_worker_memory.saturating_mul(1 << 20),
            pidfile: cli.pidfile.clone(),
            reuse_port: cli.reuse_port,
            forwarded_allow,
            proxy_protocol: cli.proxy_protocol.then_some(proxy_allow),
            umask,
            user,
            group,
            preload: cli.preload,
            reload: cli.reload,
            reload_extra_files: cli.reload_extra_file.clone(),
            argv: Vec::new(),
            cli,
        })
    }
}

/// Where the server listens when no `--bind` is given.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";

/// A user name or number: its uid and primary gid.
fn resolve_user(name: &str) -> Result<(u32, u32), String> {
    let cname = std::ffi::CString::new(name).map_err(|_| format!("--user {name:?}: bad name"))?;
    // SAFETY: getpwnam/getpwuid return a pointer to static storage or null; the master is
    // single-threaded while it reads the configuration.
    let pw = unsafe {
        match name.parse::<u32>() {
            Ok(uid) => libc::getpwuid(uid),
            Err(_) => libc::getpwnam(cname.as_ptr()),
        }
    };
    if pw.is_null() {
        if let Ok(uid) = name.parse::<u32>() {
            return Ok((uid, uid));
        }
        return Err(format!("--user {name}: no such user"));
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A group name or number: its gid.
fn resolve_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let cname = std::ffi::CString::new(name).map_err(|_| format!("--group {name:?}: bad name"))?;
    // SAFETY: getgrnam returns a pointer to static storage or null; single-threaded here.
    let gr = unsafe { libc::getgrnam(cname.as_ptr()) };
    if gr.is_null() {
        return Err(format!("--group {name}: no such group"));
    }
    // SAFETY: gr is non-null and points to a valid group record.
    Ok(unsafe { (*gr).gr_gid })
}

/// `HOST:PORT`, `[v6]:PORT`, `HOST` (port 8000), `unix:/path`, each optionally `http://`-prefixed.
pub fn parse_bind(spec: &str) -> Result<Bind, String> {
    let (protocol, rest) = match spec.split_once("://") {
        Some(("http", rest)) => (Protocol::Http, rest),
        Some(("uwsgi", rest)) => (Protocol::Uwsgi, rest),
        Some(("scgi", rest)) => (Protocol::Scgi, rest),
        Some(("fastcgi" | "fcgi", rest)) => (Protocol::FastCgi, rest),
        Some(("fd", _)) | None => (Protocol::Http, spec),
        Some((other, _)) => {
            return Err(format!(
                "--bind {spec}: unknown protocol {other:?}; use http://, uwsgi://, scgi://, \
                 fastcgi:// or none (HTTP)"
            ));
        }
    };
    let addr = if let Some(fd) = rest.strip_prefix("fd://").or(spec.strip_prefix("fd://")) {
        let fd: i32 = fd.parse().ok().filter(|&n| n >= 0).ok_or_else(|| {
            format!("--bind {spec}: {fd:?} is not a file descriptor number, as in fd://3")
        })?;
        BindAddr::Fd(fd)
    } else if let Some(path) = rest.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!(
                "--bind {spec}: give a socket path, as in unix:/run/app.sock"
            ));
        }
        BindAddr::Unix(PathBuf::from(path))
    } else {
        let with_port = if rest.ends_with(']') || !rest.contains(':') {
            format!("{rest}:8000")
        } else {
            rest.to_owned()
        };
        let host = with_port.rsplit_once(':').map_or("", |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = with_port.rsplit_once(':').map_or("", |(_, p)| p);
        let port: u16 = port
            .parse()
            .map_err(|_| format!("--bind {spec}: {port:?} is not a port number (0-65535)"))?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("--bind {spec}: cannot resolve {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--bind {spec}: {host:?} has no address"))?;
        BindAddr::Tcp(addr)
    };
    Ok(Bind {
        protocol,
        addr,
        spec: spec.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        assert_eq!(
            parse_bind("127.0.0.1:0").unwrap().addr,
            BindAddr::Tcp("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            parse_bind("[::1]:80").unwrap().addr,
            BindAddr::Tcp("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_bind("http://127.0.0.1").unwrap().addr,
            BindAddr::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(
            parse_bind("unix:/tmp/x.sock").unwrap().addr,
            BindAddr::Unix("/tmp/x.sock".into())
        );
        assert!(parse_bind("127.0.0.1:http")
            .unwrap_err()
            .contains("not a port"));
        assert!(parse_bind("ftp://x:1")
            .unwrap_err()
            .contains("unknown protocol"));
    }
}
