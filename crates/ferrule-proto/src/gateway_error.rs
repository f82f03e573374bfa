//! The failures of the gateway codecs (uwsgi, SCGI, FastCGI) and of the PROXY protocol, each a
//! variant naming exactly what was wrong. They live inside [`crate::ParseError`]; a front server
//! rarely shows the status to anyone, but the log line names the failure.
use std::fmt;

/// What was wrong with a uwsgi packet head ([`crate::uwsgi`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UwsgiError {
    /// `modifier1` is not 0 (a WSGI request); the values are as sent.
    UnsupportedModifier {
        /// The packet's first byte.
        modifier1: u8,
        /// The packet's fourth byte.
        modifier2: u8,
    },
    /// The vars block is over [`crate::limits::GatewayLimits::vars_size`].
    VarsTooLarge,
    /// More vars than [`crate::limits::GatewayLimits::vars`].
    TooManyVars,
    /// A key's length runs past the end of the vars block.
    KeyPastBlock,
    /// A value's length runs past the end of the vars block.
    ValuePastBlock,
    /// The block ends inside a two-byte length field.
    TruncatedLength,
    /// `CONTENT_LENGTH` is present but not a plain decimal number.
    ContentLength,
}

/// What was wrong with an SCGI netstring head ([`crate::scgi`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScgiError {
    /// The netstring length is empty, holds a non-digit (sign, space) or a leading zero.
    LengthDigits,
    /// The netstring length is over [`crate::limits::GatewayLimits::vars_size`].
    HeadTooLarge,
    /// The netstring's content is not followed by `,`.
    MissingComma,
    /// The content does not end in NUL, or holds an odd number of NUL-terminated strings.
    OddStrings,
    /// More headers than [`crate::limits::GatewayLimits::vars`].
    TooManyVars,
    /// The first header is not `CONTENT_LENGTH` (the spec requires it first).
    ContentLengthNotFirst,
    /// `CONTENT_LENGTH` appears more than once.
    DuplicateContentLength,
    /// `CONTENT_LENGTH` is not a plain decimal number.
    ContentLength,
    /// There is no `SCGI` header, or its value is not `1`.
    ScgiVersion,
}

/// What was wrong with a FastCGI record or the order of records ([`crate::fastcgi`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FastCgiError {
    /// The record header's version is not 1; the value is as sent.
    Version(u8),
    /// A record of this type arrived where the protocol does not allow it (PARAMS before
    /// BEGIN_REQUEST, STDIN before the empty PARAMS, a second BEGIN_REQUEST, ...).
    UnexpectedRecord(u8),
    /// A BEGIN_REQUEST body that is not 8 bytes.
    BeginRequestBody,
    /// A BEGIN_REQUEST, PARAMS or STDIN record with request id 0 (reserved for management).
    NullRequestId,
    /// A name-value pair's length field is cut off by the end of the block.
    TruncatedLength,
    /// A name's length runs past the end of the block.
    NamePastBlock,
    /// A value's length runs past the end of the block.
    ValuePastBlock,
    /// The PARAMS stream is over [`crate::limits::GatewayLimits::vars_size`].
    ParamsTooLarge,
    /// More params than [`crate::limits::GatewayLimits::vars`].
    TooManyParams,
    /// `CONTENT_LENGTH` is present but not a plain decimal number.
    ContentLength,
}

/// What was wrong with a PROXY protocol header ([`crate::proxy_protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyProtocolError {
    /// The connection does not start with a v1 (`PROXY `) or v2 signature.
    NotProxy,
    /// A v1 line without CRLF within its 107 bytes (or a bare CR or LF).
    V1NoCrlf,
    /// A v1 line with the wrong number of fields or bad separators.
    V1Syntax,
    /// A v1 protocol other than `TCP4`, `TCP6` or `UNKNOWN`.
    V1Protocol,
    /// A source or destination address that is not valid for the declared family.
    Address,
    /// A port that is not a decimal number from 0 to 65535.
    Port,
    /// A v2 header whose version nibble is not 2; the byte is as sent.
    V2Version(u8),
    /// A v2 command other than LOCAL (0) or PROXY (1).
    V2Command(u8),
    /// A v2 address family or transport protocol not in the spec; the byte is as sent.
    V2Family(u8),
    /// A v2 length too short for the declared address family.
    V2LengthShort,
}

impl UwsgiError {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::UnsupportedModifier { .. } => 501,
            Self::VarsTooLarge | Self::TooManyVars => 431,
            _ => 400,
        }
    }
}

impl ScgiError {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::HeadTooLarge | Self::TooManyVars => 431,
            _ => 400,
        }
    }
}

impl FastCgiError {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::ParamsTooLarge | Self::TooManyParams => 431,
            _ => 400,
        }
    }
}

impl fmt::Display for UwsgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedModifier {
                modifier1,
                modifier2,
            } => write!(
                f,
                "modifier1 {modifier1} (modifier2 {modifier2}) is not a WSGI request (modifier1 0)"
            ),
            Self::VarsTooLarge => f.write_str("vars block over the limit"),
            Self::TooManyVars => f.write_str("more vars than the limit"),
            Self::KeyPastBlock => f.write_str("key length past the end of the vars block"),
            Self::ValuePastBlock => f.write_str("value length past the end of the vars block"),
            Self::TruncatedLength => f.write_str("vars block ends inside a length field"),
            Self::ContentLength => f.write_str("invalid CONTENT_LENGTH"),
        }
    }
}

impl fmt::Display for ScgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LengthDigits => "netstring length is not plain decimal digits",
            Self::HeadTooLarge => "netstring length over the limit",
            Self::MissingComma => "netstring not terminated by ','",
            Self::OddStrings => "headers are not NUL-terminated name/value pairs",
            Self::TooManyVars => "more headers than the limit",
            Self::ContentLengthNotFirst => "CONTENT_LENGTH is not the first header",
            Self::DuplicateContentLength => "CONTENT_LENGTH sent twice",
            Self::ContentLength => "invalid CONTENT_LENGTH",
            Self::ScgiVersion => "no SCGI=1 header",
        })
    }
}

impl fmt::Display for FastCgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "record version {v}, not 1"),
            Self::UnexpectedRecord(t) => write!(f, "unexpected record of type {t}"),
            Self::BeginRequestBody => f.write_str("BEGIN_REQUEST body is not 8 bytes"),
            Self::NullRequestId => f.write_str("application record with request id 0"),
            Self::TruncatedLength => f.write_str("name-value block ends inside a length"),
            Self::NamePastBlock => f.write_str("name length past the end of the block"),
            Self::ValuePastBlock => f.write_str("value length past the end of the block"),
            Self::ParamsTooLarge => f.write_str("PARAMS over the limit"),
            Self::TooManyParams => f.write_str("more params than the limit"),
            Self::ContentLength => f.write_str("invalid CONTENT_LENGTH"),
        }
    }
}

impl fmt::Display for ProxyProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotProxy => f.write_str("connection does not start with a PROXY header"),
            Self::V1NoCrlf => f.write_str("v1 header without CRLF within 107 bytes"),
            Self::V1Syntax => f.write_str("v1 header fields malformed"),
            Self::V1Protocol => f.write_str("v1 protocol not TCP4, TCP6 or UNKNOWN"),
            Self::Address => f.write_str("invalid address for the declared family"),
            Self::Port => f.write_str("port not a decimal number from 0 to 65535"),
            Self::V2Version(b) => write!(f, "v2 version/command byte {b:#04x}: version not 2"),
            Self::V2Command(b) => write!(f, "v2 command {b} not LOCAL or PROXY"),
            Self::V2Family(b) => write!(f, "v2 family/transport byte {b:#04x} unknown"),
            Self::V2LengthShort => f.write_str("v2 length too short for its address family"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ParseError;

    use super::*;

    #[test]
    fn gateway_errors_map_to_statuses() {
        let big = ParseError::Uwsgi(UwsgiError::VarsTooLarge);
        assert_eq!(
            (big.status(), big.reason()),
            (431, "Request Header Fields Too Large")
        );
        let modifier = ParseError::Uwsgi(UwsgiError::UnsupportedModifier {
            modifier1: 5,
            modifier2: 0,
        });
        assert_eq!(modifier.status(), 501);
        assert!(modifier.to_string().contains("modifier1 5"));
        assert_eq!(ParseError::Scgi(ScgiError::MissingComma).status(), 400);
        assert_eq!(
            ParseError::FastCgi(FastCgiError::TooManyParams).status(),
            431
        );
        let v = ParseError::FastCgi(FastCgiError::Version(2));
        assert_eq!(
            v.to_string(),
            "malformed FastCGI request: record version 2, not 1"
        );
        assert_eq!(
            ParseError::ProxyProtocol(ProxyProtocolError::NotProxy).status(),
            400
        );
    }
}
