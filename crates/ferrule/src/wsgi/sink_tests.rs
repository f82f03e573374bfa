//! The sink contract, as a transport sees it: a fake [`Sink`] records every call the bridge
//! makes while a real Python app serves one request through [`serve`].
use std::any::Any;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use clap::Parser;
use ferrule_proto::http1::parse_request;
use pyo3::prelude::*;
use pyo3::types::PyModule;

use super::sink::{Block, Gil, Head, Sink};
use super::{build_app, serve, App, Outcome, Request, Served};
use crate::cli::Cli;
use crate::config::Config;
use crate::net::ConnInfo;

/// A `Head` as the sink saw it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenHead {
    code: u16,
    status: Vec<u8>,
    fields: Vec<u8>,
    length: Option<u64>,
    state_length: bool,
    no_body: bool,
    close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Head(SeenHead),
    Body(Vec<u8>),
    File(u64, u64),
    Flush(bool),
    Finish,
    Cut,
    Abort,
}

/// Records every call; never congested, always willing to keep the connection.
struct FakeSink {
    calls: Arc<Mutex<Vec<Call>>>,
    gone: bool,
}

impl FakeSink {
    fn push(&self, call: Call) {
        self.calls.lock().expect("calls").push(call);
    }
}

impl Sink for FakeSink {
    fn head(&mut self, _gil: Gil<'_>, head: &Head<'_>) -> io::Result<()> {
        self.push(Call::Head(SeenHead {
            code: head.code,
            status: head.status.to_vec(),
            fields: head.fields.to_vec(),
            length: head.length,
            state_length: head.state_length,
            no_body: head.no_body,
            close: head.close,
        }));
        Ok(())
    }
    fn body(&mut self, _gil: Gil<'_>, block: Block<'_>) -> io::Result<()> {
        self.push(Call::Body(block.data().to_vec()));
        Ok(())
    }
    fn file(&mut self, _gil: Gil<'_>, _file: RawFd, offset: u64, count: u64) -> io::Result<()> {
        self.push(Call::File(offset, count));
        Ok(())
    }
    fn flush(&mut self, _gil: Gil<'_>, wait: bool) -> io::Result<()> {
        self.push(Call::Flush(wait));
        Ok(())
    }
    fn finish(&mut self, _gil: Gil<'_>) -> io::Result<()> {
        self.push(Call::Finish);
        Ok(())
    }
    fn cut(&mut self) {
        self.gone = true;
        self.push(Call::Cut);
    }
    fn abort(&mut self) {
        self.gone = true;
        self.push(Call::Abort);
    }
    fn client_gone(&self) -> bool {
        self.gone
    }
    fn congested(&self) -> bool {
        false
    }
    fn app_busy(&mut self) {}
    fn app_back(&mut self, _gil: Gil<'_>) -> io::Result<()> {
        Ok(())
    }
    fn keep_alive(&self) -> bool {
        true
    }
    fn raw_http(&self) -> bool {
        false
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// An `App` around `name` from the Python `code`, with the default config (and `args`).
fn app_from(code: &str, name: &str, args: &[&str]) -> (App, Config) {
    Python::initialize();
    let mut argv = vec!["ferrule", "x:app"];
    argv.extend_from_slice(args);
    let cfg = Config::from_cli(Cli::try_parse_from(argv).expect("cli")).expect("config");
    let app = Python::attach(|py| {
        let code = CString::new(code).expect("code");
        let module = PyModule::from_code(py, &code, c"sink_test_app.py", c"sink_test_app")
            .expect("the test app compiles");
        let callable = module.getattr(name).expect("app defined").unbind();
        build_app(py, &cfg, callable.into())
            .map_err(|_| "build_app")
            .expect("app")
    });
    (app, cfg)
}

/// What the sink recorded for one request, and the outcome.
struct Run {
    calls: Vec<Call>,
    outcome: Outcome,
}

impl Run {
    fn heads(&self) -> Vec<&SeenHead> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Head(h) => Some(h),
                _ => None,
            })
            .collect()
    }
    fn head(&self) -> &SeenHead {
        let heads = self.heads();
        assert_eq!(heads.len(), 1, "exactly one head: {:?}", self.calls);
        heads[0]
    }
    fn body(&self) -> Vec<u8> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Body(b) => Some(b.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }
    fn has(&self, call: &Call) -> bool {
        self.calls.contains(call)
    }
    /// Head once, before any body; finish last.
    fn assert_complete(&self) {
        let head_at = self
            .calls
            .iter()
            .position(|c| matches!(c, Call::Head(_)))
            .expect("a head");
        let first_body = self
            .calls
            .iter()
            .position(|c| matches!(c, Call::Body(_) | Call::File(..)));
        assert!(first_body.is_none_or(|b| b > head_at), "{:?}", self.calls);
        self.head();
        assert_eq!(self.calls.last(), Some(&Call::Finish), "{:?}", self.calls);
        assert_eq!(
            self.calls.iter().filter(|c| **c == Call::Finish).count(),
            1,
            "{:?}",
            self.calls
        );
        assert!(
            !self.has(&Call::Cut) && !self.has(&Call::Abort),
            "{:?}",
            self.calls
        );
    }
}

fn run(app: &App, cfg: &Config, raw: &[u8]) -> Run {
    let mut buf = BytesMut::from(raw);
    let head = parse_request(&mut buf, &cfg.limits)
        .expect("the request parses")
        .expect("the request is whole");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = Box::new(FakeSink {
        calls: Arc::clone(&calls),
        gone: false,
    });
    let conn = ConnInfo {
        fd: -1,
        peer: Some("127.0.0.1:40000".parse().expect("addr")),
        local: Some("127.0.0.1:8000".parse().expect("addr")),
        scheme: "http",
        tls: None,
    };
    let Served::Done(outcome) = serve(app, &conn, Request::Fields(head), sink, None, None) else {
        panic!("a sink that is never congested never waits");
    };
    let calls = calls.lock().expect("calls").clone();
    Run { calls, outcome }
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
const HEAD: &[u8] = b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n";

const APPS: &str = r#"
def one(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello world"]

def several(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ab", b"", b"cde", b"f"]

def gen(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain")])
    for i in range(5):
        yield b"block%d;" % i

def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    write(b"again;")
    return [b"returned"]

def raises_first(environ, start_response):
    raise RuntimeError("before start_response")

def raises_late(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first block"
    raise RuntimeError("after a block")

def declared(environ, start_response):
    start_response("200 OK", [("Content-Length", "6")])
    return [b"abc", b"def"]
"#;

#[test]
fn one_element_list_sends_head_once_then_body_then_finish() {
    let (app, cfg) = app_from(APPS, "one", &[]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    let head = r.head();
    assert_eq!(head.code, 200);
    assert_eq!(head.status, b"200 OK");
    assert_eq!(
        head.length,
        Some(11),
        "a body given whole has a known length"
    );
    assert!(
        head.state_length,
        "the length is not among the app's fields"
    );
    assert!(!head.no_body && !head.close);
    assert!(head.fields.windows(12).any(|w| w == b"Content-Type"));
    assert_eq!(r.body(), b"hello world");
    assert!(r.outcome.keep_alive);
}

#[test]
fn several_element_list_body_is_the_blocks_concatenated() {
    let (app, cfg) = app_from(APPS, "several", &[]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    assert_eq!(r.body(), b"abcdef");
    assert!(
        !r.calls.contains(&Call::Body(Vec::new())),
        "no empty block is sent"
    );
}

#[test]
fn generator_app_streams_every_block_after_one_head() {
    let (app, cfg) = app_from(APPS, "gen", &[]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    assert_eq!(r.head().code, 201);
    assert_eq!(r.head().length, None, "a generator's length is unknown");
    assert!(!r.head().state_length);
    assert_eq!(r.body(), b"block0;block1;block2;block3;block4;");
    assert!(r.outcome.keep_alive);
}

#[test]
fn write_callable_bytes_come_before_the_returned_ones() {
    let (app, cfg) = app_from(APPS, "writer", &[]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    assert_eq!(r.body(), b"written;again;returned");
    let written = Call::Body(b"written;".to_vec());
    let at = r.calls.iter().position(|c| *c == written).expect("written");
    assert_eq!(
        r.calls[at + 1],
        Call::Flush(true),
        "write() pushes its bytes out"
    );
    assert_eq!(r.head().length, None, "write() leaves the length unknown");
}

#[test]
fn app_content_length_is_passed_on_without_stating_it_again() {
    let (app, cfg) = app_from(APPS, "declared", &[]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    assert_eq!(r.head().length, Some(6));
    assert!(
        !r.head().state_length,
        "Content-Length is already among the fields"
    );
    assert_eq!(r.body(), b"abcdef");
}

#[test]
fn exception_before_start_response_answers_one_500_without_abort() {
    let (app, cfg) = app_from(APPS, "raises_first", &[]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    assert_eq!(r.head().code, 500);
    assert!(r.head().close, "the 500 tells the transport to close");
    assert_eq!(r.body(), b"Internal Server Error\n");
    assert!(
        !r.outcome.keep_alive,
        "the connection closes after an app error"
    );
}

#[test]
fn exception_after_a_block_cuts_the_response_and_never_finishes() {
    let (app, cfg) = app_from(APPS, "raises_late", &[]);
    let r = run(&app, &cfg, GET);
    assert_eq!(r.heads().len(), 1, "{:?}", r.calls);
    assert_eq!(r.head().code, 200, "the head already went out: no 500");
    assert_eq!(r.body(), b"first block");
    assert!(
        r.has(&Call::Cut) || r.has(&Call::Abort),
        "the response is cut: {:?}",
        r.calls
    );
    assert!(!r.has(&Call::Finish), "{:?}", r.calls);
    assert!(!r.outcome.keep_alive);
}

#[test]
fn head_request_gets_no_body() {
    let (app, cfg) = app_from(APPS, "one", &[]);
    let r = run(&app, &cfg, HEAD);
    r.assert_complete();
    assert!(r.head().no_body);
    assert_eq!(
        r.head().length,
        Some(11),
        "HEAD states the length a GET would have"
    );
    assert!(r.body().is_empty(), "{:?}", r.calls);
}

#[test]
fn head_request_to_a_generator_app_gets_no_body() {
    let (app, cfg) = app_from(APPS, "gen", &[]);
    let r = run(&app, &cfg, HEAD);
    r.assert_complete();
    assert!(r.head().no_body);
    assert!(r.body().is_empty(), "{:?}", r.calls);
}

#[test]
fn path_outside_root_path_answers_404_without_calling_the_app() {
    let (app, cfg) = app_from(APPS, "raises_first", &["--root-path", "/mount"]);
    let r = run(&app, &cfg, GET);
    r.assert_complete();
    assert_eq!(r.head().code, 404);
}

#[test]
fn outcome_hands_back_the_transports_own_sink() {
    let (app, cfg) = app_from(APPS, "one", &[]);
    let r = run(&app, &cfg, GET);
    let sink = r.outcome.sink.expect("the sink comes back");
    let fake = sink
        .into_any()
        .downcast::<FakeSink>()
        .expect("the very sink the transport gave");
    assert!(!fake.gone);
    assert!(r.outcome.body.is_none(), "a request without body gave none");
}

#[test]
fn outcome_after_an_app_error_still_returns_the_sink_but_no_keep_alive() {
    for name in ["raises_first", "raises_late"] {
        let (app, cfg) = app_from(APPS, name, &[]);
        let r = run(&app, &cfg, GET);
        assert!(!r.outcome.keep_alive, "{name}");
        let sink = r.outcome.sink.expect("the sink comes back");
        assert!(sink.into_any().downcast::<FakeSink>().is_ok(), "{name}");
    }
}
