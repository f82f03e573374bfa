//! [`HeadDecoder`]: from a connection's first bytes (or the bytes after the previous request)
//! to one request's BEGIN_REQUEST and complete PARAMS.
use bytes::BytesMut;

use super::params::decode_params;
use super::record::{parse_record, Record};
use super::{BeginRequest, RecordType, Role};
use crate::error::FastCgiError;
use crate::limits::GatewayLimits;
use crate::vars::CgiVars;
use crate::ParseError;

/// A request whose head is complete: its STDIN (the body) follows, read with
/// [`super::StdinDecoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcgiRequest {
    /// The id every record of this request carries (never 0).
    pub request_id: u16,
    /// Ferrule serves [`Role::Responder`]; answer others with END_REQUEST `UnknownRole`.
    pub role: Role,
    /// `FCGI_KEEP_CONN`: keep the connection open after END_REQUEST (nginx's
    /// `fastcgi_keep_conn on`); otherwise close it.
    pub keep_conn: bool,
    /// The params, in the order sent; a repeated name's last value wins.
    pub vars: CgiVars,
    /// `CONTENT_LENGTH`, 0 when absent or empty. The body ends at the empty STDIN record.
    pub content_length: u64,
}

/// What [`HeadDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadEvent<'a> {
    /// A complete request head. The decoder is ready for the next one.
    Request(FcgiRequest),
    /// A management record (request id 0): answer it with [`super::answer_other`].
    Management(Record<'a>),
    /// A record for a request id other than the one being read (or, with none being read, a
    /// record other than BEGIN_REQUEST for an unknown id). [`super::answer_other`] answers a
    /// BEGIN_REQUEST with END_REQUEST `CantMpxConn` and ignores the rest.
    OtherRequest(Record<'a>),
    /// The request being read was aborted before its params were complete: answer with
    /// END_REQUEST `RequestComplete`. The decoder is ready for the next request.
    Aborted {
        /// The id of the aborted request.
        request_id: u16,
    },
}

/// Reads BEGIN_REQUEST and the PARAMS stream (which may span many records, with name-value
/// pairs split across them) into one [`FcgiRequest`]. Sans-IO: feed it the connection's
/// buffered bytes.
#[derive(Debug, Clone)]
pub struct HeadDecoder {
    limits: GatewayLimits,
    /// The request being read: its id and BEGIN_REQUEST.
    current: Option<(u16, BeginRequest)>,
    params: BytesMut,
}

impl HeadDecoder {
    /// A decoder waiting for a BEGIN_REQUEST, holding PARAMS to `limits`.
    #[must_use]
    pub fn new(limits: GatewayLimits) -> Self {
        Self {
            limits,
            current: None,
            params: BytesMut::new(),
        }
    }

    /// Whether a BEGIN_REQUEST has been read and its params are still arriving.
    #[must_use]
    pub fn in_request(&self) -> bool {
        self.current.is_some()
    }

    /// Reads at most one record from the front of `input`. Returns the bytes consumed and what
    /// it meant. `(0, None)`: the next record is incomplete, read more. `(n, None)` with
    /// `n > 0`: a record was absorbed (BEGIN_REQUEST, PARAMS), call again with the rest.
    /// Errors: a record out of order, a bad BEGIN_REQUEST, bad or oversized params; close
    /// the connection.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<HeadEvent<'a>>), ParseError> {
        let err = |e| Err(ParseError::FastCgi(e));
        let Some(rec) = parse_record(input)? else {
            return Ok((0, None));
        };
        let used = rec.len;
        let kind = rec.record_type();
        let is_app = matches!(
            kind,
            Some(RecordType::BeginRequest | RecordType::Params | RecordType::Stdin)
        );
        if rec.is_management() {
            if is_app {
                return err(FastCgiError::NullRequestId);
            }
            return Ok((used, Some(HeadEvent::Management(rec))));
        }
        let Some((id, begin)) = self.current else {
            if kind != Some(RecordType::BeginRequest) {
                return Ok((used, Some(HeadEvent::OtherRequest(rec))));
            }
            self.current = Some((rec.request_id, BeginRequest::parse(rec.content)?));
            self.params.clear();
            return Ok((used, None));
        };
        if rec.request_id != id {
            return Ok((used, Some(HeadEvent::OtherRequest(rec))));
        }
        match kind {
            Some(RecordType::AbortRequest) => {
                self.current = None;
                self.params.clear();
                Ok((used, Some(HeadEvent::Aborted { request_id: id })))
            }
            Some(RecordType::Params) if rec.content.is_empty() => {
                self.current = None;
                let block = self.params.split().freeze();
                let spans = decode_params(&block, &self.limits)?;
                let vars = CgiVars::new(block, spans);
                let content_length = vars
                    .content_length()
                    .ok_or(ParseError::FastCgi(FastCgiError::ContentLength))?;
                Ok((
                    used,
                    Some(HeadEvent::Request(FcgiRequest {
                        request_id: id,
                        role: begin.role,
                        keep_conn: begin.keep_conn(),
                        vars,
                        content_length,
                    })),
                ))
            }
            Some(RecordType::Params) => {
                if self.params.len().saturating_add(rec.content.len()) > self.limits.vars_size {
                    return err(FastCgiError::ParamsTooLarge);
                }
                self.params.extend_from_slice(rec.content);
                Ok((used, None))
            }
            _ => err(FastCgiError::UnexpectedRecord(rec.kind)),
        }
    }
}
