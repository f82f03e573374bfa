//! Decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 section 7.1).
//!
//! Strict: sizes are plain hex that cannot overflow, every line ends in CRLF (a bare LF is an
//! error), extensions and trailers are bounded and skipped.
use std::ops::Range;

use crate::limits::MAX_CHUNK_LINE;
use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
    },
    /// Whitespace after the size digits.
    Bws {
        value: u64,
    },
    /// Inside `;` extensions, skipped until CR.
    Ext {
        value: u64,
    },
    /// Saw CR after the size line; LF must follow.
    SizeLf {
        value: u64,
    },
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// After data: CR then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Decodes a chunked body incrementally from whatever bytes have arrived.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line or trailer section, to bound them.
    line: usize,
    max_trailer: usize,
    /// Body bytes decoded so far.
    total: u64,
    max_body: u64,
}

impl ChunkedDecoder {
    /// `max_trailer` bounds the trailer section; `max_body` (0: none) bounds the decoded body.
    #[must_use]
    pub fn new(max_trailer: usize, max_body: u64) -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line: 0,
            max_trailer,
            total: 0,
            max_body,
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the front of `input`. Returns the bytes consumed and, if any, the range of
    /// body data within `input` (inside the consumed part, at most `max_data` bytes). Call again
    /// with the rest; `(n, None)` with `n == input.len()` means more input is needed, unless
    /// [`Self::is_done`].
    pub fn decode(
        &mut self,
        input: &[u8],
        max_data: usize,
    ) -> Result<(usize, Option<Range<usize>>), ParseError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data(left) = self.state {
                let avail = (input.len() - i) as u64;
                let take = left.min(avail).min(max_data as u64) as usize;
                if take == 0 {
                    return Ok((i, None));
                }
                let start = i;
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                return Ok((i, Some(start..i)));
            }
            let Some(&c) = input.get(i) else { break };
            i += 1;
            self.state = self.step(c)?;
            if self.state == State::Done {
                return Ok((i, None));
            }
        }
        Ok((i, None))
    }

    fn step(&mut self, c: u8) -> Result<State, ParseError> {
        Ok(match self.state {
            State::Size { value, digits } => {
                self.line += 1;
                if let Some(d) = (c as char).to_digit(16) {
                    if digits >= 16 {
                        return Err(ParseError::Chunked("chunk size too large"));
                    }
                    let value = value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(u64::from(d)))
                        .ok_or(ParseError::Chunked("chunk size too large"))?;
                    State::Size {
                        value,
                        digits: digits + 1,
                    }
                } else if digits == 0 {
                    return Err(ParseError::Chunked("chunk size is not hex"));
                } else {
                    Self::ext_byte(value, c, false)?
                }
            }
            State::Bws { value } | State::Ext { value } => {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err(ParseError::Chunked("chunk extension too long"));
                }
                Self::ext_byte(value, c, matches!(self.state, State::Ext { .. }))?
            }
            State::SizeLf { value } => {
                if c != b'\n' {
                    return Err(ParseError::Chunked("CR without LF after chunk size"));
                }
                self.line = 0;
                if value == 0 {
                    State::TrailerStart
                } else {
                    self.total = self.total.saturating_add(value);
                    if self.max_body != 0 && self.total > self.max_body {
                        return Err(ParseError::BodyTooLarge);
                    }
                    State::Data(value)
                }
            }
            State::Data(_) | State::Done => self.state,
            State::DataCr => {
                if c != b'\r' {
                    return Err(ParseError::Chunked("chunk data not followed by CRLF"));
                }
                State::DataLf
            }
            State::DataLf => {
                if c != b'\n' {
                    return Err(ParseError::Chunked("chunk data not followed by CRLF"));
                }
                State::Size {
                    value: 0,
                    digits: 0,
                }
            }
            State::TrailerStart => match c {
                b'\r' => State::EndLf,
                b'\n' => return Err(ParseError::Chunked("bare LF in trailer")),
                _ => self.trailer_byte(c)?,
            },
            State::Trailer => match c {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(ParseError::Chunked("bare LF in trailer")),
                _ => self.trailer_byte(c)?,
            },
            State::TrailerLf => {
                if c != b'\n' {
                    return Err(ParseError::Chunked("CR without LF in trailer"));
                }
                State::TrailerStart
            }
            State::EndLf => {
                if c != b'\n' {
                    return Err(ParseError::Chunked("CR without LF after last chunk"));
                }
                State::Done
            }
        })
    }

    /// A byte after the size digits. `ext` once a `;` began an extension; before it only
    /// whitespace (BWS), `;` or CR may follow the digits.
    fn ext_byte(value: u64, c: u8, ext: bool) -> Result<State, ParseError> {
        match c {
            b'\r' => Ok(State::SizeLf { value }),
            b'\n' => Err(ParseError::Chunked("bare LF after chunk size")),
            b'\t' | b' ' => Ok(if ext {
                State::Ext { value }
            } else {
                State::Bws { value }
            }),
            b';' => Ok(State::Ext { value }),
            c if ext && c >= 0x20 && c != 0x7f => Ok(State::Ext { value }),
            _ => Err(ParseError::Chunked("invalid character in chunk size line")),
        }
    }

    fn trailer_byte(&mut self, c: u8) -> Result<State, ParseError> {
        self.line += 1;
        if self.line > self.max_trailer {
            return Err(ParseError::Chunked("trailer section too large"));
        }
        if c != b'\t' && (c < 0x20 || c == 0x7f) {
            return Err(ParseError::Chunked("control character in trailer"));
        }
        Ok(State::Trailer)
    }
}
