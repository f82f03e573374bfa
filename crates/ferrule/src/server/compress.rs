//! `--compress`: a response sink that wraps a transport's own (HTTP/1, the gateways, HTTP/2)
//! and encodes the app's body with gzip, Brotli or zstd, as the client's `Accept-Encoding`
//! prefers. The decision is taken on the response head: never for a body that already has a
//! `Content-Encoding`, says `Cache-Control: no-transform`, is empty by its status or method
//! (HEAD, 1xx, 204, 304), is a range (206), is shorter than `--compress-min-size`, or whose
//! type is not in `--compress-types`. The length goes (the transport frames the body as it
//! ends), an ETag becomes weak, `Vary: Accept-Encoding` is added. Each block the app gives is
//! compressed and flushed at once (server-sent events still arrive on time), with the GIL
//! released.
use std::any::Any;
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::config::Compress;
use crate::statics::encoding::{choose, weights, Coding};
use crate::wsgi::sink::{Block, Gil, Head, Sink};

/// What a file body is read in, to be compressed.
const FILE_BLOCK: usize = 64 * 1024;
/// Brotli's quality for responses made on the fly (0-11): 4 compresses close to gzip -6 at
/// several times its speed.
const BROTLI_QUALITY: u32 = 4;
/// zstd's level for responses made on the fly.
const ZSTD_LEVEL: i32 = 3;

/// Wraps `sink` when the request accepts a coding Ferrule makes; else gives it back.
#[must_use]
pub fn wrap(settings: &Arc<Compress>, accept: Option<&[u8]>, sink: Box<dyn Sink>) -> Box<dyn Sink> {
    let Some(coding) = accept.and_then(|a| choose(weights(a), |_| true)) else {
        return sink;
    };
    Box::new(CompressSink {
        inner: sink,
        settings: Arc::clone(settings),
        coding,
        encoder: None,
    })
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(coding: Coding) -> io::Result<Self> {
        Ok(match coding {
            Coding::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Coding::Br => Self::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                BROTLI_QUALITY,
                22,
            ))),
            Coding::Zstd => Self::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?),
        })
    }

    /// Compresses `data`, flushed: what the client can decode up to here.
    fn block(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Self::Br(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Self::Zstd(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    /// The end of the stream (its trailer).
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.finish(),
            Self::Br(e) => Ok(e.into_inner()),
            Self::Zstd(e) => e.finish(),
        }
    }
}

struct CompressSink {
    inner: Box<dyn Sink>,
    settings: Arc<Compress>,
    coding: Coding,
    /// Set by `head` when this response is compressed.
    encoder: Option<Encoder>,
}

/// A header field of the encoded `Name: value\r\n` lines.
fn fields(encoded: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    encoded.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        Some((name, value.get(1..).unwrap_or_default().trim_ascii()))
    })
}

/// Whether `content_type` is one of `types` (`text/*` a prefix; `+json`, `+xml` suffixes count
/// as `application/json`, `application/xml`).
fn type_listed(types: &[String], content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    let Ok(essence) = std::str::from_utf8(&essence) else {
        return false;
    };
    types.iter().any(|t| match t.strip_suffix('*') {
        Some(prefix) => essence.starts_with(prefix),
        None => {
            essence == t
                || (t == "application/json" && essence.ends_with("+json"))
                || (t == "application/xml" && essence.ends_with("+xml"))
        }
    })
}

impl CompressSink {
    /// Whether this response is compressed.
    fn wanted(&self, head: &Head<'_>) -> bool {
        if head.no_body
            || head.code < 200
            || matches!(head.code, 204 | 206 | 304)
            || head.length.is_some_and(|n| n < self.settings.min_size)
        {
            return false;
        }
        let mut typed = false;
        for (name, value) in fields(head.fields) {
            if name.eq_ignore_ascii_case(b"content-encoding") {
                return false;
            }
            if name.eq_ignore_ascii_case(b"cache-control")
                && value
                    .split(|&b| b == b',')
                    .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
            {
                return false;
            }
            if name.eq_ignore_ascii_case(b"content-type") {
                typed = type_listed(&self.settings.types, value);
            }
        }
        typed
    }

    /// The head's fields for the compressed body.
    fn rewritten(&self, encoded: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded.len() + 64);
        for (name, value) in fields(encoded) {
            if name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            if name.eq_ignore_ascii_case(b"etag") && !value.starts_with(b"W/") {
                out.extend_from_slice(b"W/");
            }
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Encoding: ");
        out.extend_from_slice(self.coding.token().as_bytes());
        out.extend_from_slice(b"\r\nVary: Accept-Encoding\r\n");
        out
    }

    /// Compresses `data` outside the GIL and sends what came out.
    fn send(&mut self, gil: Gil<'_>, data: &[u8]) -> io::Result<()> {
        let Some(encoder) = self.encoder.as_mut() else {
            return self.inner.body(gil, Block::own(data));
        };
        let out = gil.unlocked(|| encoder.block(data))?;
        if out.is_empty() {
            return Ok(());
        }
        self.inner.body(gil, Block::own(&out))
    }
}

impl Sink for CompressSink {
    fn head(&mut self, gil: Gil<'_>, head: &Head<'_>) -> io::Result<()> {
        if !self.wanted(head) {
            return self.inner.head(gil, head);
        }
        self.encoder = Some(Encoder::new(self.coding)?);
        let fields = self.rewritten(head.fields);
        self.inner.head(
            gil,
            &Head {
                fields: &fields,
                length: None,
                state_length: false,
                ..*head
            },
        )
    }

    fn body(&mut self, gil: Gil<'_>, block: Block<'_>) -> io::Result<()> {
        if self.encoder.is_none() {
            return self.inner.body(gil, block);
        }
        self.send(gil, block.data())
    }

    fn file(&mut self, gil: Gil<'_>, file: RawFd, offset: u64, count: u64) -> io::Result<()> {
        if self.encoder.is_none() {
            return self.inner.file(gil, file, offset, count);
        }
        // SAFETY: `file` is the app's open descriptor, valid for this call; it is duplicated
        // so that reading it does not depend on the app's object.
        let file =
            std::fs::File::from(unsafe { BorrowedFd::borrow_raw(file) }.try_clone_to_owned()?);
        let (mut at, end) = (offset, offset.saturating_add(count));
        let mut buf = vec![0u8; FILE_BLOCK];
        while at < end {
            let want = usize::try_from(end - at)
                .unwrap_or(FILE_BLOCK)
                .min(FILE_BLOCK);
            let dst = buf.get_mut(..want).unwrap_or_default();
            let n = file.read_at(dst, at)?;
            if n == 0 {
                break;
            }
            let data = buf.get(..n).unwrap_or_default().to_vec();
            self.send(gil, &data)?;
            at += n as u64;
        }
        Ok(())
    }

    fn flush(&mut self, gil: Gil<'_>, wait: bool) -> io::Result<()> {
        self.inner.flush(gil, wait)
    }

    fn finish(&mut self, gil: Gil<'_>) -> io::Result<()> {
        if let Some(encoder) = self.encoder.take() {
            let tail = gil.unlocked(|| encoder.finish())?;
            if !tail.is_empty() {
                self.inner.body(gil, Block::own(&tail))?;
            }
        }
        self.inner.finish(gil)
    }

    fn cut(&mut self) {
        self.inner.cut();
    }

    fn abort(&mut self) {
        self.inner.abort();
    }

    fn client_gone(&self) -> bool {
        self.inner.client_gone()
    }

    fn congested(&self) -> bool {
        self.inner.congested()
    }

    fn app_busy(&mut self) {
        self.inner.app_busy();
    }

    fn app_back(&mut self, gil: Gil<'_>) -> io::Result<()> {
        self.inner.app_back(gil)
    }

    fn keep_alive(&self) -> bool {
        self.inner.keep_alive()
    }

    fn raw_http(&self) -> bool {
        self.inner.raw_http()
    }

    fn answered_by_transport(&self) -> bool {
        self.inner.answered_by_transport()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        // The transport takes back its own sink.
        self.inner.into_any()
    }
}
