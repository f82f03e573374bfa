//! [`StdinDecoder`]: one request's STDIN stream (its body), yielded as it arrives, the way
//! [`crate::http1::ChunkedDecoder`] yields a chunked body.
use std::ops::Range;

use super::record::{parse_record, Header, Record};
use super::{RecordType, HEADER_LEN};
use crate::error::FastCgiError;
use crate::ParseError;

/// What [`StdinDecoder::decode`] found besides consumed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinEvent<'a> {
    /// Body bytes: this range of the input (inside the consumed part).
    Data(Range<usize>),
    /// The empty STDIN record: the body is complete ([`StdinDecoder::is_done`] is now true).
    End,
    /// ABORT_REQUEST for this request: stop the app's output, close its iterable and answer
    /// END_REQUEST `RequestComplete`.
    Abort,
    /// A management record (request id 0): answer it with [`super::answer_other`].
    Management(Record<'a>),
    /// A record for another request id: [`super::answer_other`] answers a BEGIN_REQUEST with
    /// END_REQUEST `CantMpxConn` and ignores the rest.
    OtherRequest(Record<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a record boundary.
    Header,
    /// Inside a STDIN record's content, then its padding.
    Content { left: usize, padding: usize },
    /// Inside a STDIN record's padding.
    Padding(usize),
}

/// Decodes the STDIN stream of one request from whatever bytes have arrived. Keep feeding it
/// after the body ends (while the app runs) to see ABORT_REQUEST and other records.
#[derive(Debug, Clone)]
pub struct StdinDecoder {
    request_id: u16,
    state: State,
    done: bool,
    total: u64,
    max_body: u64,
}

impl StdinDecoder {
    /// For request `request_id`; `max_body` (0: none) bounds the body (`BodyTooLarge`).
    #[must_use]
    pub fn new(request_id: u16, max_body: u64) -> Self {
        Self {
            request_id,
            state: State::Header,
            done: false,
            total: 0,
            max_body,
        }
    }

    /// Whether the empty STDIN record (end of the body) has been read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Body bytes decoded so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decodes from the front of `input`; returns the bytes consumed and at most one event.
    /// Data comes at most `max_data` bytes at a time and may be part of a record; other
    /// records come whole. `(0, None)`: read more. `(n, None)` with `n > 0`: a header or padding was
    /// consumed, call again with the rest. Errors: a version other than 1, a record of this
    /// request out of place (PARAMS, BEGIN_REQUEST, STDIN after its end), a body over the limit.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
        max_data: usize,
    ) -> Result<(usize, Option<StdinEvent<'a>>), ParseError> {
        match self.state {
            State::Content { left, padding } => {
                let take = left.min(input.len()).min(max_data);
                if take == 0 {
                    return Ok((0, None));
                }
                let left = left - take;
                self.state = match (left, padding) {
                    (0, 0) => State::Header,
                    (0, p) => State::Padding(p),
                    (l, p) => State::Content {
                        left: l,
                        padding: p,
                    },
                };
                Ok((take, Some(StdinEvent::Data(0..take))))
            }
            State::Padding(left) => {
                let take = left.min(input.len());
                self.state = if take == left {
                    State::Header
                } else {
                    State::Padding(left - take)
                };
                Ok((take, None))
            }
            State::Header => self.record(input),
        }
    }

    fn record<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<StdinEvent<'a>>), ParseError> {
        let Some(h) = Header::parse(input)? else {
            return Ok((0, None));
        };
        let ours = h.request_id == self.request_id && h.request_id != 0;
        if ours && h.kind == RecordType::Stdin as u8 && !self.done && h.content_len > 0 {
            // Stream the content as it arrives rather than wait for the whole record.
            self.total = self.total.saturating_add(h.content_len as u64);
            if self.max_body != 0 && self.total > self.max_body {
                return Err(ParseError::BodyTooLarge);
            }
            self.state = State::Content {
                left: h.content_len,
                padding: h.padding,
            };
            return Ok((HEADER_LEN, None));
        }
        let Some(rec) = parse_record(input)? else {
            return Ok((0, None));
        };
        let event = if rec.is_management() {
            StdinEvent::Management(rec)
        } else if !ours {
            StdinEvent::OtherRequest(rec)
        } else {
            match rec.record_type() {
                Some(RecordType::Stdin) if !self.done => {
                    self.done = true;
                    StdinEvent::End
                }
                Some(RecordType::AbortRequest) => StdinEvent::Abort,
                _ => {
                    return Err(ParseError::FastCgi(FastCgiError::UnexpectedRecord(
                        rec.kind,
                    )))
                }
            }
        };
        Ok((rec.len, Some(event)))
    }
}
