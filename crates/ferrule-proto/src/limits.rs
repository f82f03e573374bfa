//! Limits on what a client may send. Each default is gunicorn's where gunicorn has the knob.

/// Longest request line (method, target and version), in bytes, without the CRLF.
/// Default 4094 (gunicorn's); `--limit-request-line`, 0 means the maximum (65535).
/// A longer line is answered 414 URI Too Long.
pub const DEFAULT_REQUEST_LINE: usize = 4094;

/// Most header fields in one request. Default 100; `--limit-request-fields`, at most 32768.
/// More fields are answered 431.
pub const DEFAULT_REQUEST_FIELDS: usize = 100;

/// Longest single header line (name, colon, value), in bytes. Default 8190;
/// `--limit-request-field_size`, 0 means the maximum (65535). A longer one is answered 431.
pub const DEFAULT_FIELD_SIZE: usize = 8190;

/// Largest request body, in bytes. Default 0: no limit (frameworks apply their own).
/// `--limit-request-body`; a larger declared or streamed body is answered 413.
pub const DEFAULT_REQUEST_BODY: u64 = 0;

/// Hard ceiling for the line-length knobs.
pub const MAX_LINE: usize = 65535;
/// Hard ceiling for the field-count knob.
pub const MAX_FIELDS: usize = 32768;
/// Longest chunk-size line (size, extensions) accepted in a chunked body. Fixed at 4096.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The limits one server applies to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, in bytes ([`DEFAULT_REQUEST_LINE`]).
    pub request_line: usize,
    /// Most header fields ([`DEFAULT_REQUEST_FIELDS`]).
    pub request_fields: usize,
    /// Longest header line, in bytes ([`DEFAULT_FIELD_SIZE`]).
    pub field_size: usize,
    /// Largest body, in bytes ([`DEFAULT_REQUEST_BODY`]); 0: unlimited.
    pub request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_line: DEFAULT_REQUEST_LINE,
            request_fields: DEFAULT_REQUEST_FIELDS,
            field_size: DEFAULT_FIELD_SIZE,
            request_body: DEFAULT_REQUEST_BODY,
        }
    }
}

impl Limits {
    /// Builds limits from the command-line values, where 0 means "the maximum".
    #[must_use]
    pub fn new(
        request_line: usize,
        request_fields: usize,
        field_size: usize,
        request_body: u64,
    ) -> Self {
        let clamp = |v: usize, max: usize| if v == 0 || v > max { max } else { v };
        Self {
            request_line: clamp(request_line, MAX_LINE),
            request_fields: clamp(request_fields, MAX_FIELDS),
            field_size: clamp(field_size, MAX_LINE),
            request_body,
        }
    }

    /// The most bytes a complete request head may take: beyond this it is refused (431).
    #[must_use]
    pub fn max_head(&self) -> usize {
        self.request_line + 2 + self.request_fields.saturating_mul(self.field_size + 2) + 2
    }

    /// Whether a body of `len` bytes is over the body limit.
    #[must_use]
    pub fn body_too_large(&self, len: u64) -> bool {
        self.request_body != 0 && len > self.request_body
    }
}

/// Largest vars block a front server may send ahead of a request: the uwsgi vars block, the
/// SCGI netstring, the FastCGI PARAMS stream. Default 65535 bytes, the most a uwsgi `datasize`
/// can say; nginx's stock params plus a request head within its `large_client_header_buffers`
/// (4 x 8k) fit well inside it. Set [`GatewayLimits::vars_size`] to change it (at most
/// [`MAX_GATEWAY_VARS_SIZE`]); a larger block is refused (431).
pub const DEFAULT_GATEWAY_VARS_SIZE: usize = 65535;

/// Most vars (CGI variables and `HTTP_*` headers) in one gateway request. Default 512: nginx's
/// stock params are about 20, plus one per request header (gunicorn allows 100). Set
/// [`GatewayLimits::vars`] to change it; more are refused (431).
pub const DEFAULT_GATEWAY_VARS: usize = 512;

/// Hard ceiling for [`GatewayLimits::vars_size`]: 1 MiB.
pub const MAX_GATEWAY_VARS_SIZE: usize = 1 << 20;

/// The limits on the vars block that uwsgi, SCGI and FastCGI send before the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Bytes in the vars block (uwsgi datasize, SCGI netstring length, FastCGI PARAMS total).
    pub vars_size: usize,
    /// Number of name/value pairs.
    pub vars: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            vars_size: DEFAULT_GATEWAY_VARS_SIZE,
            vars: DEFAULT_GATEWAY_VARS,
        }
    }
}

impl GatewayLimits {
    /// Builds limits where 0 means "the maximum" ([`MAX_GATEWAY_VARS_SIZE`] bytes, and as many
    /// pairs as fit).
    #[must_use]
    pub fn new(vars_size: usize, vars: usize) -> Self {
        let vars_size = if vars_size == 0 || vars_size > MAX_GATEWAY_VARS_SIZE {
            MAX_GATEWAY_VARS_SIZE
        } else {
            vars_size
        };
        Self {
            vars_size,
            vars: if vars == 0 { usize::MAX } else { vars },
        }
    }
}
