//! One `Config`, built from the command line and checked before anything starts.
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrule_proto::forwarded::{BadTrustEntry, TrustList};
use ferrule_proto::Limits;

use crate::cli::{Cli, ClientCertArg, HttpArg};
use crate::statics::{self, StaticError, Statics};
use crate::tls::{self, CertPair, ClientCert, MinVersion, TlsError, TlsOptions};

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
    /// HTTP over TLS (`https://`, or every HTTP bind when `--certfile` is given).
    pub tls: bool,
}

impl Bind {
    /// The scheme shown in `Listening at:` (`https` for a TLS bind).
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            self.protocol.scheme()
        }
    }
}

/// Where an app is loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// APP (`module:attr`, ...); None: the built-in demo page.
    Spec(Option<String>),
    /// `--paste INI[#NAME]`.
    Paste(String),
}

/// A `--mount`: an app at a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The prefix without a trailing `/`: empty for `/`.
    pub prefix: String,
    pub source: AppSource,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The app (APP or --paste); with `--mount`s it is the mount at `/` among them.
    pub app: AppSource,
    /// `--mount`s, the longest prefix first; empty without `--mount` (one app serves all).
    pub mounts: Vec<Mount>,
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
    /// TLS: the options and the server configuration built from them (certificates loaded
    /// and checked), when any bind is a TLS bind.
    pub tls: Option<TlsSetup>,
    /// `--http`: HTTP/1.1 is served (on HTTP binds).
    pub http1: bool,
    /// `--http`: HTTP/2 is served, with these settings.
    pub http2: Option<Http2Settings>,
    /// `--static` mounts and their options; None without `--static`.
    pub statics: Option<Arc<Statics>>,
    /// `--compress`: the settings, when on.
    pub compress: Option<Arc<Compress>>,
    /// `--access-logformat` parsed, or `--access-log-json`.
    pub access_style: crate::access::Style,
    /// `--env KEY=VALUE`: set in `os.environ` of the master, so of the workers it forks.
    pub env: Vec<(String, String)>,
    /// The command line as given (program name first), to re-read the config file on HUP.
    pub argv: Vec<String>,
    /// Each option's value and source (`--print-config`).
    pub report: crate::sources::Report,
    /// Settings accepted without effect (gunicorn's), to log once the log is open.
    pub warnings: Vec<String>,
    pub cli: Cli,
}

/// `--compress` and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// `--compress-min-size`.
    pub min_size: u64,
    /// `--compress-types`, lower-cased (`text/*` a prefix).
    pub types: Vec<String>,
}

/// HTTP/2's limits (`--http2-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    pub max_concurrent_streams: u32,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    /// None: no PINGs of the server's own.
    pub keep_alive_interval: Option<Duration>,
    pub keep_alive_timeout: Duration,
}

impl Http2Settings {
    fn from_cli(cli: &Cli) -> Self {
        Self {
            max_concurrent_streams: cli.http2_max_concurrent_streams,
            initial_stream_window: cli.http2_initial_stream_window,
            initial_connection_window: cli.http2_initial_connection_window,
            max_frame_size: cli.http2_max_frame_size,
            max_header_list_size: cli.http2_max_header_list_size,
            keep_alive_interval: (cli.http2_keep_alive_interval > 0)
                .then(|| Duration::from_secs(cli.http2_keep_alive_interval)),
            keep_alive_timeout: Duration::from_secs(cli.http2_keep_alive_timeout),
        }
    }
}

/// The TLS options and the configuration built from them, kept current across renewals.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    pub options: TlsOptions,
    /// The rustls configuration for new connections (`CertStore::current`).
    pub store: Arc<tls::CertStore>,
    /// `--reload-certs`.
    pub reload_certs: bool,
}

impl TlsSetup {
    /// What loading the certificates found worth a warning (an expired one, say).
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        self.store.warnings()
    }
}

/// A command-line value that cannot be used: the message names the option, the value as
/// given, and the fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// `--bind` with a scheme other than http, uwsgi, scgi, fastcgi (fcgi) or fd.
    UnknownProtocol { spec: String, protocol: String },
    /// `--bind fd://N` where N is not a descriptor number.
    BadFd { spec: String, fd: String },
    /// `--bind unix:` without a path.
    NoSocketPath { spec: String },
    /// `--bind HOST:PORT` where PORT is not a port number.
    BadPort { spec: String, port: String },
    /// `--bind HOST:PORT` where HOST does not resolve.
    Unresolvable {
        spec: String,
        host: String,
        error: std::io::Error,
    },
    /// `--bind HOST:PORT` where HOST resolves to no address.
    NoAddress { spec: String, host: String },
    /// `--umask` that is not an octal mask up to 0o777.
    Umask(String),
    /// `--user` with a NUL byte in it.
    BadUserName(String),
    /// `--user` naming no user (and not a number).
    NoSuchUser(String),
    /// `--group` with a NUL byte in it.
    BadGroupName(String),
    /// `--group` naming no group (and not a number).
    NoSuchGroup(String),
    /// `--forwarded-allow-ips` with an entry that is no address, network or `*`.
    ForwardedAllowIps { value: String, error: BadTrustEntry },
    /// `--proxy-allow-from` with an entry that is no address, network or `*`.
    ProxyAllowFrom { value: String, error: BadTrustEntry },
    /// `--root-path` that does not start with `/`.
    RootPath(String),
    /// `--limit-request-fields` above the most the parser allows.
    TooManyFields { given: usize, max: usize },
    /// `--bind https://...` without `--certfile`.
    TlsWithoutCert { spec: String },
    /// `--certfile` and `--keyfile` given a different number of times.
    CertKeyCount { certs: usize, keys: usize },
    /// The certificates, keys or TLS options could not be used.
    Tls(TlsError),
    /// A `--static` value that cannot be used.
    Static(StaticError),
    /// `--env` without `KEY=`.
    Env(String),
    /// A `--mount` value that cannot be used; the message says why.
    Mount(String),
    /// `--access-logformat` that is not a gunicorn format.
    AccessLogFormat(crate::access::FormatError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownProtocol { spec, protocol } => write!(
                f,
                "--bind {spec}: unknown protocol {protocol:?}; use http://, https://, \
                 uwsgi://, scgi://, fastcgi:// or none (HTTP)"
            ),
            Self::BadFd { spec, fd } => write!(
                f,
                "--bind {spec}: {fd:?} is not a file descriptor number, as in fd://3"
            ),
            Self::NoSocketPath { spec } => write!(
                f,
                "--bind {spec}: give a socket path, as in unix:/run/app.sock"
            ),
            Self::BadPort { spec, port } => {
                write!(f, "--bind {spec}: {port:?} is not a port number (0-65535)")
            }
            Self::Unresolvable { spec, host, error } => {
                write!(f, "--bind {spec}: cannot resolve {host:?}: {error}")
            }
            Self::NoAddress { spec, host } => write!(f, "--bind {spec}: {host:?} has no address"),
            Self::Umask(u) => write!(f, "--umask {u}: give an octal mask, as in 007 or 0o027"),
            Self::BadUserName(name) => write!(f, "--user {name:?}: bad name"),
            Self::NoSuchUser(name) => write!(f, "--user {name}: no such user"),
            Self::BadGroupName(name) => write!(f, "--group {name:?}: bad name"),
            Self::NoSuchGroup(name) => write!(f, "--group {name}: no such group"),
            Self::ForwardedAllowIps { value, error } => {
                write!(f, "--forwarded-allow-ips {value}: {error}")
            }
            Self::ProxyAllowFrom { value, error } => {
                write!(f, "--proxy-allow-from {value}: {error}")
            }
            Self::RootPath(root) => write!(
                f,
                "--root-path {root:?}: a prefix must start with '/', as in /app"
            ),
            Self::TooManyFields { given, max } => {
                write!(f, "--limit-request-fields {given}: at most {max}")
            }
            Self::TlsWithoutCert { spec } => write!(
                f,
                "--bind {spec}: an HTTPS bind needs a certificate; give --certfile and --keyfile"
            ),
            Self::CertKeyCount { certs, keys } => write!(
                f,
                "--certfile given {certs} time(s) and --keyfile {keys}: give one --keyfile for \
                 each --certfile, in the same order"
            ),
            Self::Tls(e) => write!(f, "{e}"),
            Self::Static(e) => write!(f, "{e}"),
            Self::Env(e) => write!(f, "--env {e:?}: give KEY=VALUE, as in DJANGO_DEBUG=0"),
            Self::Mount(e) => write!(f, "--mount {e}"),
            Self::AccessLogFormat(e) => write!(
                f,
                "--access-logformat: {e}; write atoms as %(h)s and a percent sign as %%"
            ),
        }
    }
}

/// Messages include the inner error's, so it is not also given as the source.
impl std::error::Error for ConfigError {}

impl Config {
    /// Whether the inline worker (`--threads 1`) may run a request on a side thread
    /// (`server/side.rs`): some bodies stream to the app (`--no-request-buffering`,
    /// `--stream-uploads`, or a FastCGI bind, whose bodies always stream). Such a worker's
    /// `wsgi.multithread` is true: two requests may be in the app at once.
    #[must_use]
    pub fn side_threads(&self) -> bool {
        self.threads == 1
            && (self.cli.no_request_buffering
                || !self.cli.stream_uploads.is_empty()
                || self.binds.iter().any(|b| b.protocol == Protocol::FastCgi))
    }

    /// Checks the command line; the error names the bad option and the fix.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
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
                tls: false,
            });
        }
        if binds.is_empty() {
            binds.push(parse_bind(DEFAULT_BIND)?);
        }
        let tls = tls_setup(&cli, &mut binds)?;
        let umask = cli
            .umask
            .as_deref()
            .map(|u| {
                let digits = u.strip_prefix("0o").unwrap_or(u);
                u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|&m| m <= 0o777)
                    .ok_or_else(|| ConfigError::Umask(u.to_owned()))
            })
            .transpose()?;
        let user = cli.user.as_deref().map(resolve_user).transpose()?;
        let forwarded_allow: TrustList =
            cli.forwarded_allow_ips
                .parse()
                .map_err(|error| ConfigError::ForwardedAllowIps {
                    value: cli.forwarded_allow_ips.clone(),
                    error,
                })?;
        let proxy_allow: TrustList =
            cli.proxy_allow_from
                .parse()
                .map_err(|error| ConfigError::ProxyAllowFrom {
                    value: cli.proxy_allow_from.clone(),
                    error,
                })?;
        let group = cli.group.as_deref().map(resolve_group).transpose()?;
        let root_path = cli.root_path.trim_end_matches('/').to_owned();
        if !root_path.is_empty() && !root_path.starts_with('/') {
            return Err(ConfigError::RootPath(cli.root_path.clone()));
        }
        if cli.limit_request_fields > ferrule_proto::limits::MAX_FIELDS {
            return Err(ConfigError::TooManyFields {
                given: cli.limit_request_fields,
                max: ferrule_proto::limits::MAX_FIELDS,
            });
        }
        let statics = Statics::new(
            &cli.statics,
            statics::Options {
                max_age: cli.static_max_age,
                index: cli.static_index,
                follow_symlinks: cli.static_follow_symlinks,
                fallthrough: cli.static_fallthrough,
            },
        )
        .map_err(ConfigError::Static)?
        .map(Arc::new);
        let env = cli
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                    Ok((k.to_owned(), v.to_owned()))
                }
                _ => Err(ConfigError::Env(kv.clone())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (app, mounts) = mounts(&cli)?;
        let access_style = if cli.access_log_json {
            crate::access::Style::Json
        } else {
            crate::access::Style::Text(
                crate::access::Format::parse(
                    cli.access_logformat
                        .as_deref()
                        .unwrap_or(crate::access::DEFAULT_FORMAT),
                )
                .map_err(ConfigError::AccessLogFormat)?,
            )
        };
        Ok(Self {
            app,
            mounts,
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
            tls,
            http1: cli.http != HttpArg::Two,
            http2: (cli.http != HttpArg::One).then(|| Http2Settings::from_cli(&cli)),
            statics,
            access_style,
            compress: cli.compress.then(|| {
                Arc::new(Compress {
                    min_size: cli.compress_min_size,
                    types: cli
                        .compress_types
                        .split(',')
                        .map(|t| t.trim().to_ascii_lowercase())
                        .filter(|t| !t.is_empty())
                        .collect(),
                })
            }),
            env,
            argv: Vec::new(),
            report: crate::sources::Report::default(),
            warnings: Vec::new(),
            cli,
        })
    }
}

/// The app and the `--mount`s: each prefix starting with `/`, none twice; APP or --paste
/// beside mounts becomes the mount at `/`.
fn mounts(cli: &Cli) -> Result<(AppSource, Vec<Mount>), ConfigError> {
    let app = match (&cli.app, &cli.paste) {
        (Some(_), Some(p)) => {
            return Err(ConfigError::Mount(format!(
                "/: APP and --paste {p} both name the app; give one"
            )))
        }
        (_, Some(p)) => AppSource::Paste(p.clone()),
        (a, None) => AppSource::Spec(a.clone()),
    };
    let mut mounts = Vec::with_capacity(cli.mounts.len() + 1);
    for m in &cli.mounts {
        let Some((prefix, spec)) = m.split_once('=').filter(|(_, s)| !s.is_empty()) else {
            return Err(ConfigError::Mount(format!(
                "{m:?}: give PREFIX=APP, as in /api=api.wsgi:app"
            )));
        };
        if !prefix.starts_with('/') {
            return Err(ConfigError::Mount(format!(
                "{m:?}: a prefix must start with '/', as in /api"
            )));
        }
        let prefix = prefix.trim_end_matches('/').to_owned();
        if mounts.iter().any(|o: &Mount| o.prefix == prefix) {
            return Err(ConfigError::Mount(format!(
                "{m:?}: two apps at {:?}",
                if prefix.is_empty() { "/" } else { &prefix }
            )));
        }
        mounts.push(Mount {
            prefix,
            source: AppSource::Spec(Some(spec.to_owned())),
        });
    }
    if mounts.is_empty() {
        return Ok((app, mounts));
    }
    let root_given = matches!(&app, AppSource::Paste(_) | AppSource::Spec(Some(_)));
    if root_given {
        if mounts.iter().any(|m| m.prefix.is_empty()) {
            return Err(ConfigError::Mount(
                "/=...: APP (or --paste) is already the app at /; give one".to_owned(),
            ));
        }
        mounts.push(Mount {
            prefix: String::new(),
            source: app.clone(),
        });
    }
    mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
    Ok((app, mounts))
}

/// Decides which binds speak TLS (the `https://` ones; every HTTP bind when `--certfile` is
/// given and none is written `https://`) and, when any does, loads the certificates.
fn tls_setup(cli: &Cli, binds: &mut [Bind]) -> Result<Option<TlsSetup>, ConfigError> {
    if !cli.certfile.is_empty() && !binds.iter().any(|b| b.tls) {
        for b in binds.iter_mut().filter(|b| b.protocol == Protocol::Http) {
            b.tls = true;
        }
    }
    let Some(first) = binds.iter().find(|b| b.tls) else {
        return Ok(None);
    };
    if cli.certfile.is_empty() {
        return Err(ConfigError::TlsWithoutCert {
            spec: first.spec.clone(),
        });
    }
    if cli.certfile.len() != cli.keyfile.len() {
        return Err(ConfigError::CertKeyCount {
            certs: cli.certfile.len(),
            keys: cli.keyfile.len(),
        });
    }
    let client_cert = match (cli.cert_reqs, cli.client_cert) {
        (Some(1), _) | (None, ClientCertArg::Optional) => ClientCert::Optional,
        (Some(2), _) | (None, ClientCertArg::Required) => ClientCert::Required,
        _ => ClientCert::None,
    };
    let options = TlsOptions {
        certs: cli
            .certfile
            .iter()
            .zip(&cli.keyfile)
            .map(|(c, k)| CertPair {
                certfile: c.clone(),
                keyfile: k.clone(),
            })
            .collect(),
        key_password: cli.keyfile_password.clone(),
        ca_certs: cli.ca_certs.clone(),
        client_cert,
        min_version: if cli.tls_min_version == "1.3" {
            MinVersion::Tls13
        } else {
            MinVersion::Tls12
        },
        ciphers: cli
            .ciphers
            .as_deref()
            .map(|c| {
                c.split([':', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        alpn: match cli.http {
            HttpArg::One => vec![b"http/1.1".to_vec()],
            HttpArg::Two => vec![b"h2".to_vec()],
            HttpArg::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        },
    };
    let store = tls::CertStore::new(options.clone()).map_err(ConfigError::Tls)?;
    Ok(Some(TlsSetup {
        options,
        store: Arc::new(store),
        reload_certs: cli.reload_certs,
    }))
}

/// Where the server listens when no `--bind` is given.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";

/// A user name or number: its uid and primary gid.
fn resolve_user(name: &str) -> Result<(u32, u32), ConfigError> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| ConfigError::BadUserName(name.to_owned()))?;
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
        return Err(ConfigError::NoSuchUser(name.to_owned()));
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A group name or number: its gid.
fn resolve_group(name: &str) -> Result<u32, ConfigError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let cname =
        std::ffi::CString::new(name).map_err(|_| ConfigError::BadGroupName(name.to_owned()))?;
    // SAFETY: getgrnam returns a pointer to static storage or null; single-threaded here.
    let gr = unsafe { libc::getgrnam(cname.as_ptr()) };
    if gr.is_null() {
        return Err(ConfigError::NoSuchGroup(name.to_owned()));
    }
    // SAFETY: gr is non-null and points to a valid group record.
    Ok(unsafe { (*gr).gr_gid })
}

/// `HOST:PORT`, `[v6]:PORT`, `HOST` (port 8000), `unix:/path`, each optionally `http://`-prefixed.
pub fn parse_bind(spec: &str) -> Result<Bind, ConfigError> {
    let mut tls = false;
    let (protocol, rest) = match spec.split_once("://") {
        Some(("http", rest)) => (Protocol::Http, rest),
        Some(("https", rest)) => {
            tls = true;
            (Protocol::Http, rest)
        }
        Some(("uwsgi", rest)) => (Protocol::Uwsgi, rest),
        Some(("scgi", rest)) => (Protocol::Scgi, rest),
        Some(("fastcgi" | "fcgi", rest)) => (Protocol::FastCgi, rest),
        Some(("fd", _)) | None => (Protocol::Http, spec),
        Some((other, _)) => {
            return Err(ConfigError::UnknownProtocol {
                spec: spec.to_owned(),
                protocol: other.to_owned(),
            });
        }
    };
    let addr = if let Some(fd) = rest.strip_prefix("fd://").or(spec.strip_prefix("fd://")) {
        let fd: i32 = fd
            .parse()
            .ok()
            .filter(|&n| n >= 0)
            .ok_or_else(|| ConfigError::BadFd {
                spec: spec.to_owned(),
                fd: fd.to_owned(),
            })?;
        BindAddr::Fd(fd)
    } else if let Some(path) = rest.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(ConfigError::NoSocketPath {
                spec: spec.to_owned(),
            });
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
        let port: u16 = port.parse().map_err(|_| ConfigError::BadPort {
            spec: spec.to_owned(),
            port: port.to_owned(),
        })?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|error| ConfigError::Unresolvable {
                spec: spec.to_owned(),
                host: host.to_owned(),
                error,
            })?
            .next()
            .ok_or_else(|| ConfigError::NoAddress {
                spec: spec.to_owned(),
                host: host.to_owned(),
            })?;
        BindAddr::Tcp(addr)
    };
    Ok(Bind {
        protocol,
        addr,
        spec: spec.to_owned(),
        tls,
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
        assert_eq!(
            parse_bind("127.0.0.1:http").unwrap_err().to_string(),
            "--bind 127.0.0.1:http: \"http\" is not a port number (0-65535)"
        );
        assert_eq!(
            parse_bind("ftp://x:1").unwrap_err().to_string(),
            "--bind ftp://x:1: unknown protocol \"ftp\"; use http://, https://, uwsgi://, \
             scgi://, fastcgi:// or none (HTTP)"
        );
        assert_eq!(
            parse_bind("fd://x").unwrap_err().to_string(),
            "--bind fd://x: \"x\" is not a file descriptor number, as in fd://3"
        );
        assert_eq!(
            parse_bind("unix:").unwrap_err().to_string(),
            "--bind unix:: give a socket path, as in unix:/run/app.sock"
        );
    }
}
