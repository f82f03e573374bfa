//! The command line. Names follow gunicorn's wherever gunicorn has the option.
use std::path::PathBuf;

use clap::Parser;
use ferrule_proto::limits;

use crate::log::Level;

/// Ferrule: a WSGI server written in Rust.
///
/// Serves APP, a PEP 3333 application given as `module:attr`, `module:factory()` (called once,
/// literal arguments allowed), a bare `module` (its `application`, else `app`), or
/// `path/to/file.py:attr`. Without APP it serves a built-in page showing the request.
#[derive(Debug, Clone, Parser)]
#[command(name = "ferrule", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// The WSGI application: `module:attr`, `module:factory()`, `module` or `file.py:attr`.
    #[arg(value_name = "APP")]
    pub app: Option<String>,

    /// A config file: TOML (`.toml`: the long option names with `_` or `-` as keys, and
    /// gunicorn's setting names) or Python, as gunicorn's (module-level names set options, as
    /// in `workers = 4` or `bind = ["0.0.0.0:8000"]`; functions named after a server hook,
    /// `on_starting`, `when_ready`, `post_fork`, `pre_request`, `post_request`, `child_exit`,
    /// `worker_exit`, `on_exit`, are hooks). Sources, lowest first: `[tool.ferrule]` in
    /// ./pyproject.toml, this file, FERRULE_<OPTION> variables, GUNICORN_CMD_ARGS,
    /// FERRULE_CMD_ARGS, the command line; PORT and WEB_CONCURRENCY count when nothing sets
    /// --bind / --workers. HUP re-reads them all. [default: ./ferrule.conf.py, else
    /// ./gunicorn.conf.py, when present]
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the options in effect, each with the source it came from, and exit.
    /// [default: off]
    #[arg(long = "print-config")]
    pub print_config: bool,

    /// Read the configuration and import the app, then exit: 0 when both are good, else
    /// non-zero with the error. [default: off]
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Print a reference page, as docs/ holds them (`make docs`), and exit: `options`, every
    /// option; `gunicorn`, every gunicorn setting and what Ferrule does with it.
    #[arg(long = "print-reference", value_name = "PAGE")]
    pub print_reference: Option<ReferencePage>,

    /// Set an environment variable in the server and its workers (`os.environ`), as
    /// `KEY=VALUE`. Repeatable. [default: none]
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Send the app's stdout and stderr (print(), tracebacks) to the --error-logfile file.
    /// Without an --error-logfile file it changes nothing. [default: off]
    #[arg(long = "capture-output")]
    pub capture_output: bool,

    /// Import the app once in the master before forking the workers (they share its memory
    /// copy-on-write). HUP then re-executes the master in place (same pid), keeping the
    /// listening sockets; if the new code fails to import, the old workers keep serving.
    /// [default: off]
    #[arg(long, alias = "preload-app")]
    pub preload: bool,

    /// Development: restart the workers when a `.py` file under the app module's directory
    /// (or a --reload-extra-file) changes; broken code is logged and the old workers serve on.
    /// [default: off]
    #[arg(long)]
    pub reload: bool,

    /// With --reload, also restart when this file changes. Repeatable. [default: none]
    #[arg(long = "reload-extra-file", value_name = "FILE")]
    pub reload_extra_file: Vec<PathBuf>,

    /// Address to listen on: `HOST:PORT`, `[::1]:PORT`, `unix:/path`, `http://HOST:PORT`, or
    /// `fd://N` (a listening socket inherited from the parent). Repeat for several. Port 0
    /// picks a free port (logged at start). Sockets passed by systemd (LISTEN_FDS) are used
    /// too. [default: 0.0.0.0:$PORT when PORT is set, else 127.0.0.1:8000]
    #[arg(short = 'b', long = "bind", value_name = "ADDRESS")]
    pub bind: Vec<String>,

    /// Give each worker its own listening socket (SO_REUSEPORT) instead of one shared queue.
    /// The kernel may reset connections still queued on the socket of a worker that exits,
    /// unless net.ipv4.tcp_migrate_req is set to 1.
    #[arg(long = "reuse-port")]
    pub reuse_port: bool,

    /// File mode creation mask (octal) set at start: it decides the permissions of Unix
    /// sockets and of files the app creates. [default: unchanged]
    #[arg(short = 'm', long, value_name = "MASK")]
    pub umask: Option<String>,

    /// Run the workers as this user (name or uid) once the sockets are bound.
    /// [default: unchanged]
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,

    /// Run the workers with this group (name or gid) once the sockets are bound.
    /// [default: the user's primary group]
    #[arg(short = 'g', long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Worker processes (WEB_CONCURRENCY when no source sets it).
    #[arg(short = 'w', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: u32,

    /// Application threads per worker. With 1 the app runs on the I/O thread itself.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: u32,

    /// Change to this directory before loading the app; it goes first on `sys.path`.
    /// [default: the current directory]
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Extra directories for `sys.path`, comma-separated. [default: none]
    #[arg(long, value_name = "DIRS")]
    pub pythonpath: Option<String>,

    /// URL prefix the app is mounted at: SCRIPT_NAME. Requests outside it get 404.
    #[arg(long = "root-path", value_name = "PREFIX", default_value = "")]
    pub root_path: String,

    /// Serve APP at the URL prefix PREFIX (`/api=api.wsgi:app`); repeatable. Each app is
    /// imported once per worker; the longest prefix matching the path on a segment boundary
    /// wins: SCRIPT_NAME gets the prefix (after --root-path), PATH_INFO the rest (`/api` alone
    /// reaches the `/api` app with an empty PATH_INFO). APP (or --paste) given beside mounts is
    /// the same as `--mount /=APP`; a path no mount matches gets 404. [default: none: APP
    /// serves every path]
    #[arg(long = "mount", value_name = "PREFIX=APP")]
    pub mounts: Vec<String>,

    /// Load the app from a PasteDeploy ini file (`app.ini`, or `app.ini#name` for another
    /// app section) through `paste.deploy.loadapp`, as gunicorn's --paste does; the file's
    /// `[server:main]` options count when it says `use = egg:ferrule` (below every other
    /// source), and its logging sections are applied when it has `[loggers]`. Needs the
    /// `pastedeploy` package. [default: none]
    #[arg(long = "paste", value_name = "INI[#NAME]")]
    pub paste: Option<String>,

    /// Pending-connection queue length of each listening socket.
    #[arg(long, default_value_t = 2048)]
    pub backlog: u32,

    /// Seconds an idle keep-alive connection is kept open. 0 disables keep-alive.
    #[arg(long = "keep-alive", value_name = "SECONDS", default_value_t = 2)]
    pub keep_alive: u64,

    /// Longest request line in bytes (414 beyond); 0 means 65535.
    #[arg(long = "limit-request-line", value_name = "BYTES", default_value_t = limits::DEFAULT_REQUEST_LINE)]
    pub limit_request_line: usize,

    /// Most header fields in a request (431 beyond); at most 32768.
    #[arg(long = "limit-request-fields", value_name = "N", default_value_t = limits::DEFAULT_REQUEST_FIELDS)]
    pub limit_request_fields: usize,

    /// Longest header field in bytes (431 beyond); 0 means 65535.
    #[arg(
        long = "limit-request-field_size",
        alias = "limit-request-field-size",
        value_name = "BYTES",
        default_value_t = limits::DEFAULT_FIELD_SIZE
    )]
    pub limit_request_field_size: usize,

    /// Largest request body in bytes (413 beyond); 0 means no limit.
    #[arg(long = "limit-request-body", value_name = "BYTES", default_value_t = limits::DEFAULT_REQUEST_BODY)]
    pub limit_request_body: u64,

    /// Do not send a `Server` header.
    #[arg(long = "no-server-header")]
    pub no_server_header: bool,

    /// Seconds a client may take to send a request head, or to accept or send one block of
    /// a body, before its connection is closed.
    #[arg(long = "client-timeout", value_name = "SECONDS", default_value_t = 30)]
    pub client_timeout: u64,

    /// Seconds workers get to finish in-flight requests after TERM.
    #[arg(
        long = "graceful-timeout",
        value_name = "SECONDS",
        default_value_t = 30
    )]
    pub graceful_timeout: u64,

    /// Peers trusted to set Forwarded / X-Forwarded-For, -Proto, -Host, -Port and -Prefix
    /// (comma-separated IPs and networks, `*` for all). From them REMOTE_ADDR, the URL scheme,
    /// the host and SCRIPT_NAME follow those headers; from others they stay ordinary headers.
    #[arg(
        long = "forwarded-allow-ips",
        value_name = "IPS",
        env = "FORWARDED_ALLOW_IPS",
        default_value = "127.0.0.1,::1"
    )]
    pub forwarded_allow_ips: String,

    /// Expect a PROXY protocol (v1 or v2) header on every connection to HTTP binds, from a
    /// load balancer such as HAProxy; the client address it carries becomes REMOTE_ADDR.
    #[arg(long = "proxy-protocol")]
    pub proxy_protocol: bool,

    /// Peers allowed to send the PROXY protocol header (comma-separated IPs and networks, `*`
    /// for all); connections from others are closed.
    #[arg(
        long = "proxy-allow-from",
        value_name = "IPS",
        default_value = "127.0.0.1,::1"
    )]
    pub proxy_allow_from: String,

    /// Seconds one call into the app (the call, one step of its response, or close()) may run
    /// before the worker dumps every thread's stack, answers 504 and is replaced. Also how long
    /// a worker's event loop may go without a heartbeat before the master kills it. 0 disables.
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,

    /// Requests a worker serves before it is replaced gracefully. 0 disables.
    #[arg(long = "max-requests", value_name = "N", default_value_t = 0)]
    pub max_requests: u64,

    /// Adds a random 0..=N to --max-requests per worker, so workers do not restart together.
    #[arg(long = "max-requests-jitter", value_name = "N", default_value_t = 0)]
    pub max_requests_jitter: u64,

    /// Resident memory in MiB above which a worker is replaced gracefully. 0 disables.
    #[arg(long = "max-worker-memory", value_name = "MIB", default_value_t = 0)]
    pub max_worker_memory: u64,

    /// Write the master's pid to this file (removed at exit). [default: none]
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Error log verbosity.
    #[arg(long = "log-level", value_enum, default_value_t = Level::Info, ignore_case = true)]
    pub log_level: Level,

    /// Where the error log goes: a file, or `-` for stderr.
    #[arg(
        long = "error-logfile",
        alias = "log-file",
        value_name = "FILE",
        default_value = "-"
    )]
    pub error_logfile: String,

    /// Where the access log goes (Apache combined format): a file, or `-` for stdout.
    /// [default: none, no access log]
    #[arg(long = "access-logfile", value_name = "FILE")]
    pub access_logfile: Option<String>,

    /// The access log's line, in gunicorn's atoms: `%(h)s` client address, `%(l)s` `-`,
    /// `%(u)s` Basic auth user, `%(t)s` `[time]`, `%(r)s` request line, `%(m)s` method,
    /// `%(U)s` path, `%(q)s` query, `%(H)s` protocol, `%(s)s` status, `%(B)s` body bytes,
    /// `%(b)s` body bytes or `-`, `%(f)s` referer, `%(a)s` user agent, `%(T)s` seconds,
    /// `%(D)s` microseconds, `%(M)s` milliseconds, `%(L)s` decimal seconds, `%(p)s` `<pid>`,
    /// `%({Name}i)s` a request header, `%({Name}o)s` a response header, `%({VAR}e)s` an
    /// environ variable, `%({request_id})s` the request id; `%%` for `%`. [default: Apache
    /// combined and the duration: `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s"
    /// "%(a)s" %(D)sus`]
    #[arg(long = "access-logformat", value_name = "FORMAT")]
    pub access_logformat: Option<String>,

    /// Write the access log as one JSON object a line (time, method, path, query, protocol,
    /// status, bytes, duration_ms, remote, user_agent, referer, request_id, pid) instead of
    /// --access-logformat. [default: off]
    #[arg(long = "access-log-json")]
    pub access_log_json: bool,

    /// Write the error log as one JSON object a line (time, level, pid, message; a traceback
    /// stays in its message) instead of gunicorn's `[time] [pid] [LEVEL] message`. What the
    /// app writes to `wsgi.errors` or, with --capture-output, to stdout and stderr is written
    /// as it is. [default: off]
    #[arg(long = "log-json")]
    pub log_json: bool,

    /// The name in the process titles, `ferrule: master [NAME]` and `ferrule: worker [NAME]`
    /// as `ps` and `top` show them (gunicorn's `proc_name`). [default: the app, as given]
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: Option<String>,

    /// A path (`/healthz`) the worker answers itself, without calling the app, on HTTP/1 and
    /// HTTP/2 (GET and HEAD, any query): `200 ok` while serving, `503 draining` once the
    /// worker is leaving (TERM, a reload, --max-requests), for readiness probes. [default:
    /// none: every path goes to the app]
    #[arg(long = "health-path", value_name = "PATH")]
    pub health_path: Option<String>,

    /// A request id header (`X-Request-ID`): the client's value is kept when the peer is
    /// trusted by --forwarded-allow-ips (visible ASCII, up to 200 bytes), else the id is 128
    /// random bits in hex; the app sees it as `HTTP_X_REQUEST_ID` and `ferrule.request_id`,
    /// the response echoes it, and the access log has it (`%({request_id})s`, JSON
    /// `request_id`). [default: none: no request ids]
    #[arg(long = "request-id-header", value_name = "NAME")]
    pub request_id_header: Option<String>,

    /// Serve the files under DIR at the URL prefix PREFIX (`/static=./staticfiles`), from the
    /// worker's event loop without calling the app: GET and HEAD (other methods get 405),
    /// ETag and Last-Modified with 304, one byte range (206, 416), precompressed `.br`, `.zst`
    /// and `.gz` siblings chosen by Accept-Encoding, sendfile. Paths that could leave DIR
    /// (`..`, `%2f`, `\`, NUL, symlinks out of it) get 404. Repeatable; the longest prefix
    /// wins. DIR is relative to the directory ferrule starts in (before --chdir); PREFIX is
    /// matched against the path as sent (--root-path is not applied). HTTP and HTTPS binds
    /// only: uwsgi, SCGI and FastCGI binds pass every request to the app. [default: none]
    #[arg(long = "static", value_name = "PREFIX=DIR")]
    pub statics: Vec<String>,

    /// Seconds a --static file may be cached: `Cache-Control: public, max-age=N`; 0 sends no
    /// Cache-Control (clients revalidate with the ETag). Names with a content hash before the
    /// extension (`base.5af66c1b1797.css`, 8 to 32 hex digits) always get `public,
    /// max-age=31536000, immutable`.
    #[arg(long = "static-max-age", value_name = "SECONDS", default_value_t = 0)]
    pub static_max_age: u64,

    /// Serve a directory's `index.html` under a --static prefix (the path without its
    /// trailing slash is redirected to it). Directories are never listed. [default: off:
    /// directories get 404]
    #[arg(long = "static-index")]
    pub static_index: bool,

    /// Serve --static files reached through symlinks that lead outside DIR. [default: off:
    /// such files get 404; symlinks that stay inside DIR are always followed]
    #[arg(long = "static-follow-symlinks")]
    pub static_follow_symlinks: bool,

    /// Pass requests under a --static prefix that find no file (and, for a missing file,
    /// methods other than GET and HEAD) to the app. [default: off: 404, and 405 for other
    /// methods]
    #[arg(long = "static-fallthrough")]
    pub static_fallthrough: bool,

    /// Compress the app's responses with gzip, Brotli or zstd, as the client's
    /// Accept-Encoding prefers; never a response that has Content-Encoding, says
    /// `Cache-Control: no-transform`, or is to HEAD, 1xx, 204, 206 or 304. Streamed responses
    /// are compressed block by block, each block flushed. [default: off]
    #[arg(long = "compress")]
    pub compress: bool,

    /// With --compress, leave responses whose Content-Length is below this alone.
    #[arg(
        long = "compress-min-size",
        value_name = "BYTES",
        default_value_t = 1024
    )]
    pub compress_min_size: u64,

    /// With --compress, the content types compressed, comma-separated; `text/*` matches a
    /// prefix, and `+json`/`+xml` suffixes count as JSON and XML.
    #[arg(
        long = "compress-types",
        value_name = "TYPES",
        default_value = "text/*,application/json,application/javascript,application/xml,image/svg+xml,application/wasm"
    )]
    pub compress_types: String,

    /// TLS certificate chain (PEM, leaf first). With it, every HTTP bind speaks HTTPS, unless
    /// some binds are written `https://HOST:PORT`: then only those do. Repeat with --keyfile
    /// for several certificates; the first is the default, the others are chosen by the name
    /// the client asks for (SNI). [default: none]
    #[arg(long, value_name = "FILE")]
    pub certfile: Vec<PathBuf>,

    /// The private key of the --certfile in the same position (PEM: PKCS#8, PKCS#1 or SEC1;
    /// encrypted PKCS#8 with --keyfile-password). [default: none]
    #[arg(long, value_name = "FILE")]
    pub keyfile: Vec<PathBuf>,

    /// Password of an encrypted --keyfile; FERRULE_KEYFILE_PASSWORD keeps it off the command
    /// line. [default: none]
    #[arg(long = "keyfile-password", value_name = "PASSWORD")]
    pub keyfile_password: Option<String>,

    /// CA certificates (PEM) that client certificates must chain to (with --client-cert).
    /// [default: none]
    #[arg(long = "ca-certs", value_name = "FILE")]
    pub ca_certs: Option<PathBuf>,

    /// Mutual TLS: ask for no client certificate, accept one when given (optional), or refuse
    /// clients without a valid one (required).
    #[arg(long = "client-cert", value_enum, default_value_t = ClientCertArg::None, ignore_case = true)]
    pub client_cert: ClientCertArg,

    /// gunicorn's spelling of --client-cert: 0 none, 1 optional, 2 required. [default: 0]
    #[arg(long = "cert-reqs", value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub cert_reqs: Option<u8>,

    /// Oldest TLS version accepted.
    #[arg(long = "tls-min-version", value_name = "VERSION", default_value = "1.2", value_parser = ["1.2", "1.3"])]
    pub tls_min_version: String,

    /// Cipher suites allowed, separated by `:` or `,`, by OpenSSL or IANA name (as in
    /// ECDHE-RSA-AES128-GCM-SHA256 or TLS13_AES_256_GCM_SHA384); only suites rustls implements.
    /// [default: rustls' suites]
    #[arg(long, value_name = "LIST")]
    pub ciphers: Option<String>,

    /// Re-read the certificates when their files change (a certbot or cert-manager renewal);
    /// new connections get the new ones. HUP re-reads them too. [default: off]
    #[arg(long = "reload-certs")]
    pub reload_certs: bool,

    /// HTTP versions served on HTTP binds: 1 (HTTP/1.1 only), 2 (HTTP/2 only: ALPN offers
    /// only h2 on TLS binds), auto (ALPN picks h2 or http/1.1 on TLS binds; plain binds take
    /// HTTP/2 with prior knowledge, h2c, beside HTTP/1.1).
    #[arg(long = "http", value_enum, default_value_t = HttpArg::Auto, ignore_case = true)]
    pub http: HttpArg,

    /// HTTP/2: streams a client may have open at once on one connection.
    #[arg(long = "http2-max-concurrent-streams", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,

    /// HTTP/2: the request body bytes a client may send on one stream before the server
    /// (buffering) or the app (a streamed body) reads them (the stream's initial
    /// flow-control window).
    #[arg(long = "http2-initial-stream-window", value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647))]
    pub http2_initial_stream_window: u32,

    /// HTTP/2: the same for all the streams of one connection together.
    #[arg(long = "http2-initial-connection-window", value_name = "BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647))]
    pub http2_initial_connection_window: u32,

    /// HTTP/2: the largest frame payload the server accepts.
    #[arg(long = "http2-max-frame-size", value_name = "BYTES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(16_384..=16_777_215))]
    pub http2_max_frame_size: u32,

    /// HTTP/2: the largest request head (the header list, decoded, as RFC 9113 counts it); a
    /// larger one is refused (431).
    #[arg(long = "http2-max-header-list-size", value_name = "BYTES", default_value_t = 64 << 10,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub http2_max_header_list_size: u32,

    /// HTTP/2: seconds between the server's PINGs on an idle connection (0: none).
    #[arg(
        long = "http2-keep-alive-interval",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    pub http2_keep_alive_interval: u64,

    /// HTTP/2: seconds a PING's answer may take before the connection is closed.
    #[arg(long = "http2-keep-alive-timeout", value_name = "SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http2_keep_alive_timeout: u64,

    /// Seconds a client may take to send a whole request head, counted from its first byte
    /// however steadily it sends (Apache mod_reqtimeout's `header=20`); past it the
    /// connection gets 408 and closes. 0: no limit but --client-timeout between reads.
    #[arg(long = "header-timeout", value_name = "SECONDS", default_value_t = DEFAULT_HEADER_TIMEOUT)]
    pub header_timeout: u64,

    /// Most connections a worker keeps open (gunicorn's name). At the cap, or when the
    /// worker runs out of file descriptors, it stops accepting and closes idle keep-alive
    /// connections, then the oldest still sending a request head, then accepts again.
    #[arg(long = "worker-connections", value_name = "N", default_value_t = DEFAULT_WORKER_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub worker_connections: u64,

    /// Request bodies (HTTP/1 and HTTP/2) kept in memory up to this many bytes while the
    /// server reads them before calling the app; a larger body is spooled to an unlinked temporary file in
    /// --body-spool-dir (up to --limit-request-body).
    #[arg(long = "body-buffer-size", value_name = "BYTES", default_value_t = DEFAULT_BODY_BUFFER_SIZE)]
    pub body_buffer_size: u64,

    /// Directory for the temporary files of request bodies over --body-buffer-size (created
    /// unlinked, never visible). Default: the system temp dir ($TMPDIR, else /tmp).
    #[arg(long = "body-spool-dir", value_name = "DIR")]
    pub body_spool_dir: Option<std::path::PathBuf>,

    /// Do not buffer request bodies: the app reads `wsgi.input` as the client sends it, so a
    /// slow client holds an app thread (with --threads 1, one of up to 8 side threads the
    /// worker starts for bodies still to come, never its event loop; `wsgi.multithread` is
    /// then true). Default: off (bodies are buffered).
    #[arg(long = "no-request-buffering")]
    pub no_request_buffering: bool,

    /// Requests whose path is PREFIX or beneath it stream their body to the app as it arrives,
    /// unbuffered, as with --no-request-buffering (repeatable). Default: none.
    #[arg(long = "stream-uploads", value_name = "PREFIX")]
    pub stream_uploads: Vec<String>,

    /// The slowest a request body may arrive, in bytes per second over each 5 s window
    /// (Apache mod_reqtimeout's MinRate); a slower one gets 408 and the connection closes.
    /// Default: 500 on buffered bodies; on streaming paths (--no-request-buffering,
    /// --stream-uploads) only when given. 0: no minimum.
    #[arg(long = "body-min-rate", value_name = "BYTES_PER_S")]
    pub body_min_rate: Option<u64>,

    /// With app threads (--threads > 1): a request that waited longer than this for a free
    /// app thread is answered 503 with Retry-After instead of being served late (the access
    /// log's duration includes the wait). Decimals allowed (0.5). Default: 0, off.
    #[arg(long = "max-queue-wait", value_name = "SECONDS", default_value_t = 0.0,
          value_parser = non_negative_seconds)]
    pub max_queue_wait: f64,

    /// Serve metrics at HOST:PORT from the master (any path: Prometheus' text format, or
    /// OpenMetrics when the scraper's Accept asks for it), summed over the workers: request
    /// durations by method, status and protocol, active requests, body bytes, connections,
    /// app threads, the queue for them, the listen backlog, worker restarts and memory.
    /// Port 0 picks a free port (the log says which). [default: none]
    #[arg(long = "metrics-bind", value_name = "HOST:PORT", value_parser = socket_address)]
    pub metrics_bind: Option<std::net::SocketAddr>,

    /// Send the same figures to statsd at HOST:PORT (UDP) every --statsd-interval seconds,
    /// under gunicorn's names where gunicorn has them. [default: none]
    #[arg(long = "statsd-host", value_name = "HOST:PORT", value_parser = socket_address)]
    pub statsd_host: Option<std::net::SocketAddr>,

    /// A prefix for the statsd names (a dot is added). [default: none]
    #[arg(long = "statsd-prefix", value_name = "PREFIX", default_value = "")]
    pub statsd_prefix: String,

    /// Seconds between two statsd sends. Decimals allowed.
    #[arg(long = "statsd-interval", value_name = "SECONDS", default_value_t = 10.0,
          value_parser = positive_seconds)]
    pub statsd_interval: f64,
}

/// HOST:PORT, the host a name or an address (IPv6 in brackets); a name is resolved now.
fn socket_address(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let bad = |why: String| format!("'{s}' is not HOST:PORT ({why})");
    if s.rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(bad("such as 127.0.0.1:9100".to_owned()));
    }
    s.to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("the name has no address".to_owned()))
}

/// A number of seconds above 0, decimals allowed.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds above 0")),
    }
}

/// A number of seconds, 0 or more, decimals allowed.
fn non_negative_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds (0 or more, such as 2 or 0.5)"
        )),
    }
}

/// `--body-min-rate`'s default on buffered bodies, in bytes per second: Apache's. Change it
/// with the option; 0 disables it.
pub const DEFAULT_BODY_MIN_RATE: u64 = 500;

/// `--body-buffer-size`' default: 64 KiB in memory, beyond it a spool file. Change it with
/// the option; 0 spools every body.
pub const DEFAULT_BODY_BUFFER_SIZE: u64 = 64 * 1024;

/// `--worker-connections`' default: gunicorn's. Change it with the option.
pub const DEFAULT_WORKER_CONNECTIONS: u64 = 10_000;

/// `--header-timeout`'s default, in seconds: Apache mod_reqtimeout's. Change it with the
/// option; 0 disables it.
pub const DEFAULT_HEADER_TIMEOUT: u64 = 20;

/// `--print-reference`'s pages (written by `sources::reference`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReferencePage {
    Options,
    Gunicorn,
}

/// `--http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpArg {
    #[value(name = "1")]
    One,
    #[value(name = "2")]
    Two,
    Auto,
}

/// `--client-cert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientCertArg {
    None,
    Optional,
    Required,
}
