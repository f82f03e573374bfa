//! One FastCGI record: the 8-byte header (version, type, request id u16 BE, content length u16
//! BE, padding length, reserved), its content and padding; and the records the server writes.
use super::{
    ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT, NULL_REQUEST_ID, PADDING, VERSION,
};
use crate::error::FastCgiError;
use crate::ParseError;

/// A complete record at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The type byte as sent; [`Record::record_type`] maps it to [`RecordType`].
    pub kind: u8,
    /// The request the record belongs to; 0 for a management record.
    pub request_id: u16,
    /// The content, without padding.
    pub content: &'a [u8],
    /// Bytes the record took: header, content and padding.
    pub len: usize,
}

impl Record<'_> {
    /// The record's type, `None` for one the spec does not define (answer UNKNOWN_TYPE).
    #[must_use]
    pub fn record_type(&self) -> Option<RecordType> {
        RecordType::from_u8(self.kind)
    }

    /// Whether this is a management record (request id 0).
    #[must_use]
    pub fn is_management(&self) -> bool {
        self.request_id == NULL_REQUEST_ID
    }
}

/// The fields of a record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: usize,
    pub padding: usize,
}

impl Header {
    /// Reads a header from the front of `buf`: `Ok(None)` under 8 bytes, an error for a
    /// version other than 1.
    pub(crate) fn parse(buf: &[u8]) -> Result<Option<Self>, ParseError> {
        let Some(&[version, kind, id_hi, id_lo, len_hi, len_lo, padding, _]) =
            buf.get(..HEADER_LEN)
        else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(ParseError::FastCgi(FastCgiError::Version(version)));
        }
        Ok(Some(Self {
            kind,
            request_id: u16::from_be_bytes([id_hi, id_lo]),
            content_len: usize::from(u16::from_be_bytes([len_hi, len_lo])),
            padding: usize::from(padding),
        }))
    }

    /// Header, content and padding: at most 8 + 65535 + 255, so no overflow.
    pub(crate) fn record_len(&self) -> usize {
        HEADER_LEN + self.content_len + self.padding
    }
}

/// Parses one record from the front of `buf`.
///
/// `Ok(None)`: the record (padding included) is not complete yet. `Ok(Some(record))`: advance
/// by `record.len`. `Err`: a version other than 1; close the connection. A buffer of
/// 8 + 65535 + 255 bytes always holds a whole record.
pub fn parse_record(buf: &[u8]) -> Result<Option<Record<'_>>, ParseError> {
    let Some(h) = Header::parse(buf)? else {
        return Ok(None);
    };
    let len = h.record_len();
    let (Some(content), true) = (
        buf.get(HEADER_LEN..HEADER_LEN + h.content_len),
        buf.len() >= len,
    ) else {
        return Ok(None);
    };
    Ok(Some(Record {
        kind: h.kind,
        request_id: h.request_id,
        content,
        len,
    }))
}

/// Padding that brings `len` content bytes to a multiple of 8 (0 to 7).
#[must_use]
pub fn padding_for(len: usize) -> usize {
    (8 - len % 8) % 8
}

fn header_bytes(kind: u8, request_id: u16, content_len: u16) -> [u8; HEADER_LEN] {
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = content_len.to_be_bytes();
    let padding = padding_for(usize::from(content_len)) as u8;
    [VERSION, kind, id_hi, id_lo, len_hi, len_lo, padding, 0]
}

/// The header of a record carrying `len` content bytes, padded to a multiple of 8. To send a
/// stream record without copying the app's bytes, `writev` this header, the content and
/// `&PADDING[..padding_for(len)]`. A `len` of 0 is the end of the stream.
#[must_use]
pub fn stream_header(kind: RecordType, request_id: u16, len: u16) -> [u8; HEADER_LEN] {
    header_bytes(kind as u8, request_id, len)
}

/// Appends one record holding `content` (at most 65535 bytes; beyond that only the first
/// 65535 are written: split with [`encode_stream`]) and its padding to `out`.
pub fn encode_record(kind: u8, request_id: u16, content: &[u8], out: &mut Vec<u8>) {
    let content = content.get(..MAX_CONTENT).unwrap_or(content);
    let len = content.len() as u16;
    out.extend_from_slice(&header_bytes(kind, request_id, len));
    out.extend_from_slice(content);
    out.extend_from_slice(
        PADDING
            .get(..padding_for(content.len()))
            .unwrap_or_default(),
    );
}

/// Appends `data` to `out` as STDOUT or STDERR records of at most 65535 bytes each, padded to
/// multiples of 8. Empty `data` writes nothing (an empty record would end the stream: that is
/// [`encode_stream_end`]).
pub fn encode_stream(kind: RecordType, request_id: u16, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_CONTENT) {
        encode_record(kind as u8, request_id, chunk, out);
    }
}

/// Appends the empty record that ends a STDOUT or STDERR stream.
pub fn encode_stream_end(kind: RecordType, request_id: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&stream_header(kind, request_id, 0));
}

/// Appends an END_REQUEST record: the app's exit status (0 for a served request) and the
/// protocol status.
pub fn encode_end_request(
    request_id: u16,
    app_status: u32,
    status: ProtocolStatus,
    out: &mut Vec<u8>,
) {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    body[4] = status as u8;
    encode_record(RecordType::EndRequest as u8, request_id, &body, out);
}

/// Appends the UNKNOWN_TYPE answer to a management record of type `kind`.
pub fn encode_unknown_type(kind: u8, out: &mut Vec<u8>) {
    let body = [kind, 0, 0, 0, 0, 0, 0, 0];
    encode_record(RecordType::UnknownType as u8, NULL_REQUEST_ID, &body, out);
}
