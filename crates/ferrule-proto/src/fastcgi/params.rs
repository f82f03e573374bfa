//! FastCGI name-value pairs (section 3.4), in PARAMS streams and GET_VALUES records.
//!
//! Each length is one byte (0-127) or, when the first byte's high bit is set, four bytes
//! (31 bits, big-endian). Read with checked arithmetic: a length past the block is an error.
use super::record::{encode_record, Record};
use super::RecordType;
use crate::error::FastCgiError;
use crate::limits::GatewayLimits;
use crate::vars::Spans;
use crate::ParseError;

/// Decodes a whole block of name-value pairs (a PARAMS stream's content, concatenated) into
/// (name, value) spans within `block`. Repeated names are kept in order; the last wins when
/// read through [`crate::CgiVars`].
pub fn decode_params(block: &[u8], limits: &GatewayLimits) -> Result<Spans, ParseError> {
    let err = |e| ParseError::FastCgi(e);
    if block.len() > limits.vars_size {
        return Err(err(FastCgiError::ParamsTooLarge));
    }
    let mut spans = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        if spans.len() >= limits.vars {
            return Err(err(FastCgiError::TooManyParams));
        }
        let name_len = read_len(block, &mut pos).map_err(err)?;
        let value_len = read_len(block, &mut pos).map_err(err)?;
        let name_end = pos
            .checked_add(name_len)
            .filter(|&e| e <= block.len())
            .ok_or(err(FastCgiError::NamePastBlock))?;
        let value_end = name_end
            .checked_add(value_len)
            .filter(|&e| e <= block.len())
            .ok_or(err(FastCgiError::ValuePastBlock))?;
        spans.push((pos..name_end, name_end..value_end));
        pos = value_end;
    }
    Ok(spans)
}

/// Reads a 1- or 4-byte length at `pos` and advances past it.
fn read_len(block: &[u8], pos: &mut usize) -> Result<usize, FastCgiError> {
    let first = *block.get(*pos).ok_or(FastCgiError::TruncatedLength)?;
    if first & 0x80 == 0 {
        *pos += 1;
        return Ok(usize::from(first));
    }
    let end = pos.checked_add(4).ok_or(FastCgiError::TruncatedLength)?;
    let Some(&[b0, b1, b2, b3]) = block.get(*pos..end) else {
        return Err(FastCgiError::TruncatedLength);
    };
    *pos = end;
    usize::try_from(u32::from_be_bytes([b0 & 0x7f, b1, b2, b3]))
        .map_err(|_| FastCgiError::TruncatedLength)
}

/// Appends one name-value pair, with 1-byte lengths under 128 and 4-byte lengths otherwise.
/// Lengths over 2^31 - 1 cannot be encoded: such a pair is not written.
pub fn encode_pair(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    fn len_bytes(len: usize, out: &mut Vec<u8>) {
        match u8::try_from(len) {
            Ok(l) if l < 0x80 => out.push(l),
            _ => out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes()),
        }
    }
    if u32::try_from(name.len().max(value.len())).is_ok_and(|l| l < 0x8000_0000) {
        len_bytes(name.len(), out);
        len_bytes(value.len(), out);
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
}

/// What the server answers to GET_VALUES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerValues {
    /// `FCGI_MAX_CONNS`: connections the server accepts at once.
    pub max_conns: u32,
    /// `FCGI_MAX_REQS`: requests it serves at once.
    pub max_reqs: u32,
    /// `FCGI_MPXS_CONNS`: whether it multiplexes requests on one connection (Ferrule: false).
    pub mpxs_conns: bool,
}

/// The names a GET_VALUES record asks about (their values are empty and ignored).
pub fn parse_get_values(content: &[u8]) -> Result<Vec<&[u8]>, ParseError> {
    let spans = decode_params(content, &GatewayLimits::default())?;
    Ok(spans
        .into_iter()
        .map(|(name, _)| content.get(name).unwrap_or_default())
        .collect())
}

/// Appends the GET_VALUES_RESULT record answering `names`: the three variables the spec
/// defines, in the order asked; other names are left out, as the spec says.
pub fn encode_get_values_result(names: &[&[u8]], values: &ServerValues, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for &name in names {
        let value = match name {
            b"FCGI_MAX_CONNS" => values.max_conns,
            b"FCGI_MAX_REQS" => values.max_reqs,
            b"FCGI_MPXS_CONNS" => u32::from(values.mpxs_conns),
            _ => continue,
        };
        encode_pair(
            name,
            itoa::Buffer::new().format(value).as_bytes(),
            &mut body,
        );
    }
    encode_record(RecordType::GetValuesResult as u8, 0, &body, out);
}

/// Answers a management record (request id 0): GET_VALUES with GET_VALUES_RESULT, any other
/// type with UNKNOWN_TYPE. Errors when a GET_VALUES body is not valid name-value pairs.
pub fn answer_management(
    record: &Record<'_>,
    values: &ServerValues,
    out: &mut Vec<u8>,
) -> Result<(), ParseError> {
    if record.record_type() == Some(RecordType::GetValues) {
        let names = parse_get_values(record.content)?;
        encode_get_values_result(&names, values, out);
    } else {
        super::record::encode_unknown_type(record.kind, out);
    }
    Ok(())
}
