//! FastCGI 1.0, responder role (<https://fastcgi-archives.github.io/FastCGI_Specification.html>),
//! as nginx's `fastcgi_pass` speaks it.
//!
//! - [`record`]: one record's header and content ([`parse_record`]) and every encoder the
//!   server writes: STDOUT/STDERR streams ([`encode_stream`], or [`stream_header`] plus
//!   [`PADDING`] for a `writev` without copying), END_REQUEST, UNKNOWN_TYPE.
//! - [`params`]: name-value pairs (PARAMS, GET_VALUES) and GET_VALUES_RESULT.
//! - [`head`]: [`HeadDecoder`], BEGIN_REQUEST and the PARAMS stream into a [`FcgiRequest`].
//! - [`stdin`]: [`StdinDecoder`], the STDIN stream of one request, as the chunked decoder does
//!   for HTTP bodies.
//! - [`stdout`]: the response as STDOUT records ([`records`]) and its end
//!   ([`encode_response_end`]); the answers to other records ([`answer_other`]).
//!
//! A connection reads a head with [`HeadDecoder`], runs the app while a [`StdinDecoder`]
//! yields the body, writes STDOUT records and an END_REQUEST, then closes the connection
//! unless [`FcgiRequest::keep_conn`]. Both decoders hand back management records (request id 0)
//! and records of other request ids, which [`answer_other`] answers: the server serves one
//! request per connection at a time, so it answers another BEGIN_REQUEST with END_REQUEST
//! [`ProtocolStatus::CantMpxConn`] and ignores the rest, as the spec allows.
pub mod head;
pub mod params;
pub mod record;
pub mod stdin;
pub mod stdout;

pub use head::{FcgiRequest, HeadDecoder, HeadEvent};
pub use params::{
    answer_management, decode_params, encode_get_values_result, encode_pair, parse_get_values,
    ServerValues,
};
pub use record::{
    encode_end_request, encode_record, encode_stream, encode_stream_end, encode_unknown_type,
    padding_for, parse_record, stream_header, Record,
};
pub use stdin::{StdinDecoder, StdinEvent};
pub use stdout::{answer_other, encode_response_end, records, VALUES};

use crate::error::FastCgiError;
use crate::ParseError;

/// The only protocol version.
pub const VERSION: u8 = 1;
/// Bytes in a record header.
pub const HEADER_LEN: usize = 8;
/// Most content bytes in one record.
pub const MAX_CONTENT: usize = 65535;
/// The request id of management records.
pub const NULL_REQUEST_ID: u16 = 0;
/// Zero bytes to pad a record's content with: `&PADDING[..padding_for(len)]`.
pub const PADDING: [u8; 7] = [0; 7];
/// The BEGIN_REQUEST flag asking the application to keep the connection open afterwards.
pub const FCGI_KEEP_CONN: u8 = 1;

/// Record types (section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST`: role and flags of a new request.
    BeginRequest = 1,
    /// `FCGI_ABORT_REQUEST`: the front server gives up on a request.
    AbortRequest = 2,
    /// `FCGI_END_REQUEST`: the application's last record for a request.
    EndRequest = 3,
    /// `FCGI_PARAMS`: the stream of CGI variables, ended by an empty record.
    Params = 4,
    /// `FCGI_STDIN`: the stream of the request body, ended by an empty record.
    Stdin = 5,
    /// `FCGI_STDOUT`: the stream of the response, ended by an empty record.
    Stdout = 6,
    /// `FCGI_STDERR`: the application's error stream.
    Stderr = 7,
    /// `FCGI_DATA`: the Filter role's extra stream (not served).
    Data = 8,
    /// `FCGI_GET_VALUES`: a management query of the application's variables.
    GetValues = 9,
    /// `FCGI_GET_VALUES_RESULT`: the answer to GET_VALUES.
    GetValuesResult = 10,
    /// `FCGI_UNKNOWN_TYPE`: the answer to a management record of an unknown type.
    UnknownType = 11,
}

impl RecordType {
    /// The type for a wire value, `None` for types the spec does not define.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            _ => return None,
        })
    }
}

/// The role a BEGIN_REQUEST asks for. Ferrule serves [`Role::Responder`] only; answer the
/// others with END_REQUEST [`ProtocolStatus::UnknownRole`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 1: answer an HTTP request (what a WSGI server does).
    Responder,
    /// 2: decide whether a request is allowed.
    Authorizer,
    /// 3: filter a file (`FCGI_DATA`) into a response.
    Filter,
    /// A value the spec does not define, as sent.
    Other(u16),
}

impl Role {
    /// The role for a wire value.
    #[must_use]
    pub fn from_u16(v: u16) -> Self {
        match v {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            v => Self::Other(v),
        }
    }
}

/// The protocol status of an END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProtocolStatus {
    /// The request was served (or aborted) normally.
    RequestComplete = 0,
    /// A second concurrent request on a connection that does not multiplex.
    CantMpxConn = 1,
    /// The application is out of some resource.
    Overloaded = 2,
    /// The role is not one the application serves.
    UnknownRole = 3,
}

/// The body of a BEGIN_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role asked for.
    pub role: Role,
    /// The flags byte as sent.
    pub flags: u8,
}

impl BeginRequest {
    /// Parses the 8-byte body (role u16 BE, flags, 5 reserved bytes).
    pub fn parse(content: &[u8]) -> Result<Self, ParseError> {
        let Some(&[hi, lo, flags, ..]) = content.get(..8).filter(|_| content.len() == 8) else {
            return Err(ParseError::FastCgi(FastCgiError::BeginRequestBody));
        };
        Ok(Self {
            role: Role::from_u16(u16::from_be_bytes([hi, lo])),
            flags,
        })
    }

    /// `FCGI_KEEP_CONN`: the connection stays open after this request.
    #[must_use]
    pub fn keep_conn(&self) -> bool {
        self.flags & FCGI_KEEP_CONN != 0
    }
}
