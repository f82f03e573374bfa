//! Every gunicorn setting (as of gunicorn 23), and what Ferrule does with it: the Ferrule
//! option with the same meaning, or accepted with one warning where it has no meaning here,
//! or refused where ignoring it would serve something else than asked. Server hooks that
//! Ferrule calls are read by `ferrule._hooks`; the others are listed here as [`Kind::Hook`].
//!
//! gunicorn's command-line flags that Ferrule has no option for are added to the command,
//! hidden ([`hidden_args`]), so that a gunicorn command line parses unchanged.
use clap::{Arg, ArgAction};

use super::words::boolish;
use super::Value;

/// The type a setting without effect must still have (so that a typo'd value is caught).
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    Bool,
    Int,
    Str,
    /// A string or an integer.
    Scalar,
    List,
    Dict,
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The Ferrule option (its long name) with the same meaning.
    Same(&'static str),
    /// No meaning here, for the reason given: accepted with a warning.
    Ignored(Expect, &'static str),
    /// A server hook Ferrule does not call: accepted with a warning.
    Hook,
    /// `worker_class`: sync, gthread and the like are accepted with a warning; an ASGI worker
    /// is refused.
    WorkerClass,
    /// `daemon`: False is accepted with a warning; True is refused.
    Daemon,
    /// `secure_scheme_headers`: what Ferrule reads anyway is accepted; other headers are
    /// warned about.
    SecureSchemeHeaders,
}

/// gunicorn's command-line flag for a setting Ferrule has no option for.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    /// Ferrule's own option covers the flag, or gunicorn has none.
    None,
    Switch(Option<char>, &'static str),
    Value(Option<char>, &'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// gunicorn's setting name (the config file's key).
    pub name: &'static str,
    pub flag: Flag,
    pub kind: Kind,
}

const fn same(name: &'static str, long: &'static str) -> Entry {
    Entry {
        name,
        flag: Flag::None,
        kind: Kind::Same(long),
    }
}

const fn ignored(name: &'static str, flag: Flag, expect: Expect, why: &'static str) -> Entry {
    Entry {
        name,
        flag,
        kind: Kind::Ignored(expect, why),
    }
}

const fn hook(name: &'static str) -> Entry {
    Entry {
        name,
        flag: Flag::None,
        kind: Kind::Hook,
    }
}

const NO_LOG_CONFIG: &str =
    "Ferrule's logs are configured by --error-logfile, --access-logfile and --log-level";
const NO_SYSLOG: &str =
    "Ferrule logs to files or stdout/stderr; send them to syslog with systemd or logger";
const NO_STATSD: &str = "Ferrule sends no statsd tags";
const STRICT_HTTP: &str = "Ferrule's HTTP parser is strict and has no switches for lenient parsing";

/// gunicorn's settings, by section of its documentation.
#[rustfmt::skip]
pub const TABLE: &[Entry] = &[
    // Config file. `config` is Ferrule's -c; `wsgi_app` is the app, handled by the merge.
    same("config", "config"),
    // Server socket.
    same("bind", "bind"),
    same("backlog", "backlog"),
    // Worker processes. Ferrule's worker is one kind: native I/O, the app on --threads.
    same("workers", "workers"),
    Entry { name: "worker_class", flag: Flag::Value(Some('k'), "worker-class"), kind: Kind::WorkerClass },
    same("threads", "threads"),
    same("worker_connections", "worker-connections"),
    same("max_requests", "max-requests"),
    same("max_requests_jitter", "max-requests-jitter"),
    same("timeout", "timeout"),
    same("graceful_timeout", "graceful-timeout"),
    same("keepalive", "keep-alive"),
    // Security.
    same("limit_request_line", "limit-request-line"),
    same("limit_request_fields", "limit-request-fields"),
    same("limit_request_field_size", "limit-request-field_size"),
    // Debugging.
    same("reload", "reload"),
    ignored("reload_engine", Flag::Value(None, "reload-engine"), Expect::Str,
            "Ferrule's --reload always watches with inotify"),
    same("reload_extra_files", "reload-extra-file"),
    ignored("spew", Flag::Switch(None, "spew"), Expect::Bool, "Ferrule has no line tracer"),
    same("check_config", "check-config"),
    same("print_config", "print-config"),
    // Server mechanics.
    same("preload_app", "preload"),
    ignored("sendfile", Flag::Switch(None, "no-sendfile"), Expect::Bool,
            "Ferrule always sends file responses with sendfile where the transport allows"),
    same("reuse_port", "reuse-port"),
    same("chdir", "chdir"),
    Entry { name: "daemon", flag: Flag::Switch(Some('D'), "daemon"), kind: Kind::Daemon },
    same("raw_env", "env"),
    same("pidfile", "pid"),
    ignored("worker_tmp_dir", Flag::Value(None, "worker-tmp-dir"), Expect::Str,
            "the master watches its workers through shared memory, not temporary files"),
    same("user", "user"),
    same("group", "group"),
    same("umask", "umask"),
    ignored("initgroups", Flag::Switch(None, "initgroups"), Expect::Bool,
            "the workers take --user's uid and --group's gid only"),
    ignored("tmp_upload_dir", Flag::None, Expect::Str, "Ferrule never writes request bodies to disk"),
    Entry { name: "secure_scheme_headers", flag: Flag::None, kind: Kind::SecureSchemeHeaders },
    same("forwarded_allow_ips", "forwarded-allow-ips"),
    same("pythonpath", "pythonpath"),
    same("paste", "paste"),
    ignored("raw_paste_global_conf", Flag::Value(None, "paste-global"), Expect::List,
            "Ferrule's --paste passes no global_conf to the ini file"),
    same("proxy_protocol", "proxy-protocol"),
    same("proxy_allow_ips", "proxy-allow-from"),
    ignored("permit_obsolete_folding", Flag::Switch(None, "permit-obsolete-folding"), Expect::Bool, STRICT_HTTP),
    ignored("strip_header_spaces", Flag::Switch(None, "strip-header-spaces"), Expect::Bool, STRICT_HTTP),
    ignored("permit_unconventional_http_method", Flag::Switch(None, "permit-unconventional-http-method"),
            Expect::Bool, STRICT_HTTP),
    ignored("permit_unconventional_http_version", Flag::Switch(None, "permit-unconventional-http-version"),
            Expect::Bool, STRICT_HTTP),
    ignored("casefold_http_method", Flag::Switch(None, "casefold-http-method"), Expect::Bool, STRICT_HTTP),
    ignored("forwarder_headers", Flag::Value(None, "forwarder-headers"), Expect::List,
            "Ferrule sets SCRIPT_NAME from X-Forwarded-Prefix and --root-path only"),
    ignored("header_map", Flag::Value(None, "header-map"), Expect::Str,
            "Ferrule always drops header fields whose names hold _, as gunicorn's drop does"),
    // Logging.
    same("accesslog", "access-logfile"),
    ignored("disable_redirect_access_to_syslog", Flag::Switch(None, "disable-redirect-access-to-syslog"),
            Expect::Bool, NO_SYSLOG),
    same("access_log_format", "access-logformat"),
    same("errorlog", "error-logfile"),
    same("loglevel", "log-level"),
    same("capture_output", "capture-output"),
    ignored("logger_class", Flag::Value(None, "logger-class"), Expect::Str, NO_LOG_CONFIG),
    ignored("logconfig", Flag::Value(None, "log-config"), Expect::Str, NO_LOG_CONFIG),
    ignored("logconfig_dict", Flag::None, Expect::Dict, NO_LOG_CONFIG),
    ignored("logconfig_json", Flag::Value(None, "log-config-json"), Expect::Str, NO_LOG_CONFIG),
    ignored("syslog_addr", Flag::Value(None, "log-syslog-to"), Expect::Str, NO_SYSLOG),
    ignored("syslog", Flag::Switch(None, "log-syslog"), Expect::Bool, NO_SYSLOG),
    ignored("syslog_prefix", Flag::Value(None, "log-syslog-prefix"), Expect::Str, NO_SYSLOG),
    ignored("syslog_facility", Flag::Value(None, "log-syslog-facility"), Expect::Str, NO_SYSLOG),
    ignored("enable_stdio_inheritance", Flag::Switch(Some('R'), "enable-stdio-inheritance"), Expect::Bool,
            "Ferrule's workers keep the master's stdout and stderr"),
    same("statsd_host", "statsd-host"),
    ignored("dogstatsd_tags", Flag::Value(None, "dogstatsd-tags"), Expect::Str, NO_STATSD),
    same("statsd_prefix", "statsd-prefix"),
    // Process naming.
    same("proc_name", "name"),
    ignored("default_proc_name", Flag::None, Expect::Str, "the titles name the app unless --name is given"),
    // SSL: rustls, configured by --certfile, --keyfile, --tls-min-version, --ciphers.
    same("keyfile", "keyfile"),
    same("certfile", "certfile"),
    ignored("ssl_version", Flag::Value(None, "ssl-version"), Expect::Scalar,
            "use --tls-min-version (1.2 or 1.3)"),
    same("cert_reqs", "cert-reqs"),
    same("ca_certs", "ca-certs"),
    ignored("suppress_ragged_eofs", Flag::Switch(None, "suppress-ragged-eofs"), Expect::Bool,
            "rustls handles a connection closed without close_notify itself"),
    ignored("do_handshake_on_connect", Flag::Switch(None, "do-handshake-on-connect"), Expect::Bool,
            "Ferrule always completes the handshake before reading a request"),
    same("ciphers", "ciphers"),
    // Server hooks that Ferrule does not call (on_starting, when_ready, post_fork,
    // pre_request, post_request, child_exit, worker_exit and on_exit are called).
    hook("on_reload"),
    hook("pre_fork"),
    hook("post_worker_init"),
    hook("worker_int"),
    hook("worker_abort"),
    hook("pre_exec"),
    hook("nworkers_changed"),
    hook("ssl_context"),
];

/// The server hooks Ferrule calls (read by `ferrule._hooks`), for suggestions.
pub const FERRULE_HOOKS: [&str; 8] = [
    "on_starting",
    "when_ready",
    "post_fork",
    "pre_request",
    "post_request",
    "child_exit",
    "worker_exit",
    "on_exit",
];

/// The entry for a gunicorn setting name.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.name == name)
}

/// What a gunicorn setting does here.
pub enum Apply {
    /// Sets this Ferrule option (long name) to this value.
    Option(&'static str, Value),
    /// Nothing: warn with this message.
    Warn(String),
    /// Nothing, and nothing to say.
    Quiet,
}

/// What `value` for gunicorn's setting `entry` does, or why it is refused.
pub fn apply(entry: &Entry, value: &Value) -> Result<Apply, String> {
    let name = entry.name;
    match entry.kind {
        Kind::Same(long) => Ok(Apply::Option(long, value.clone())),
        Kind::Ignored(expect, why) => {
            check(expect, value)?;
            Ok(Apply::Warn(format!(
                "gunicorn's {name} has no meaning in Ferrule ({why}); ignored"
            )))
        }
        Kind::Hook => match value {
            Value::Callable(_) => Ok(Apply::Warn(format!(
                "Ferrule does not call the {name} hook; ignored"
            ))),
            v => Err(format!("must be a function, not {}", v.kind())),
        },
        Kind::WorkerClass => worker_class(value),
        Kind::Daemon => match bool_of(value) {
            Some(true) => Err(
                "Ferrule does not daemonize; run it under systemd, a container \
                               or a process supervisor"
                    .to_owned(),
            ),
            Some(false) => Ok(Apply::Warn(
                "gunicorn's daemon has no meaning in Ferrule (it always runs in the foreground); \
                 ignored"
                    .to_owned(),
            )),
            None => Err(format!("must be true or false, not {}", value.kind())),
        },
        Kind::SecureSchemeHeaders => secure_scheme_headers(value),
    }
}

fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Int(n @ (0 | 1)) => Some(*n == 1),
        Value::Str(s) => boolish(s),
        _ => None,
    }
}

fn check(expect: Expect, value: &Value) -> Result<(), String> {
    let good = match (expect, value) {
        (Expect::Bool, v) => bool_of(v).is_some(),
        (Expect::Int, Value::Str(s)) => s.trim().parse::<i64>().is_ok(),
        (Expect::Int | Expect::Scalar, Value::Int(_))
        | (Expect::Str | Expect::Scalar | Expect::List, Value::Str(_))
        | (Expect::List, Value::List(_))
        | (Expect::Dict, Value::Dict(_)) => true,
        _ => false,
    };
    if good {
        return Ok(());
    }
    let want = match expect {
        Expect::Bool => "true or false",
        Expect::Int => "an integer",
        Expect::Str => "a string",
        Expect::Scalar => "a string or an integer",
        Expect::List => "a list of strings",
        Expect::Dict => "a table (dict)",
    };
    Err(format!("must be {want}, not {}", value.kind()))
}

/// `worker_class` / `-k`: every WSGI worker is accepted (Ferrule has one kind); ASGI is not.
fn worker_class(value: &Value) -> Result<Apply, String> {
    let (Value::Str(class) | Value::Callable(class)) = value else {
        return Err(format!("must be a worker class name, not {}", value.kind()));
    };
    let lower = class.to_ascii_lowercase();
    if ["uvicorn", "asgi", "aiohttp", "hypercorn"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Err(format!(
            "{class} is an ASGI worker, and Ferrule serves WSGI apps only; serve an ASGI app \
             with an ASGI server"
        ));
    }
    let why = if ["gevent", "eventlet", "tornado"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "the app runs on --threads threads, without monkey-patching; raise --threads for apps \
         that wait on I/O"
    } else {
        "Ferrule has one kind of worker: native I/O, the app on --threads threads"
    };
    Ok(Apply::Warn(format!(
        "gunicorn's worker_class {class} has no meaning in Ferrule ({why}); ignored"
    )))
}

/// `secure_scheme_headers`: Ferrule takes the scheme from `X-Forwarded-Proto: https` (and
/// `Forwarded: proto=https`) sent by a --forwarded-allow-ips peer; other headers are named.
fn secure_scheme_headers(value: &Value) -> Result<Apply, String> {
    let Value::Dict(pairs) = value else {
        return Err(format!(
            "must be a table (dict) of header: value, not {}",
            value.kind()
        ));
    };
    let others: Vec<String> = pairs
        .iter()
        .filter(|(h, v)| !(h.eq_ignore_ascii_case("x-forwarded-proto") && v == "https"))
        .map(|(h, v)| format!("{h}: {v}"))
        .collect();
    if others.is_empty() {
        return Ok(Apply::Quiet);
    }
    Ok(Apply::Warn(format!(
        "secure_scheme_headers: Ferrule takes https from X-Forwarded-Proto (and Forwarded) sent \
         by --forwarded-allow-ips peers only; {} ignored",
        others.join(", ")
    )))
}

/// gunicorn's flags for the settings Ferrule has no option for, hidden from `--help`.
pub fn hidden_args() -> Vec<Arg> {
    TABLE
        .iter()
        .filter_map(|e| {
            let (short, long, action) = match e.flag {
                Flag::None => return None,
                Flag::Switch(s, l) => (s, l, ArgAction::SetTrue),
                Flag::Value(s, l) => (s, l, ArgAction::Append),
            };
            let arg = Arg::new(e.name).long(long).action(action).hide(true);
            Some(match short {
                Some(c) => arg.short(c),
                None => arg,
            })
        })
        .collect()
}
