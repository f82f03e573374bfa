//! The response writer: what the bridge sends of the app's response, through the request's
//! [`Sink`]. It decides when the head goes (with the first non-empty block, PEP 3333), what
//! length the body has, and holds the app to it (excess dropped, a short body logged and the
//! connection closed); how the bytes are framed and written is the transport's.
use std::io;
use std::os::fd::RawFd;

use pyo3::prelude::*;

use super::response::{BodyState, StartResponse};
use super::sink::{Block, Gil, Head, Sink};
use crate::log::error;
use crate::watchdog;

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection already failed")
}

impl StartResponse {
    /// The sink, while the response holds it.
    fn sink(&mut self) -> io::Result<&mut Box<dyn Sink>> {
        self.sink.as_mut().ok_or_else(gone)
    }

    fn no_body(&self) -> bool {
        self.head_request || self.code < 200 || self.code == 204 || self.code == 304
    }

    /// Sends the head. `total`: the whole body's length, when the app gave it whole.
    fn send_head(&mut self, py: Python<'_>, total: Option<u64>) -> io::Result<()> {
        let claimed = watchdog::claim_response(self.code);
        if let Some(input) = self.input.take() {
            // The body is not all read: if it is to be left unread, the connection closes
            // after this response, and the response says so.
            if input
                .try_borrow_mut(py)
                .is_ok_and(|mut i| i.head_going_out())
            {
                self.close = true;
            }
        }
        let no_body = self.no_body();
        let has_length = self.code >= 200 && self.code != 204 && self.code != 304;
        let (length, state_length) = match self.content_length {
            Some(n) => (Some(n), false),
            None => (total.filter(|_| has_length), true),
        };
        self.body = if no_body {
            BodyState::None
        } else if let Some(n) = length {
            BodyState::Length(n)
        } else {
            BodyState::Open
        };
        let status: &[u8] = if self.started {
            &self.status
        } else {
            b"500 Internal Server Error"
        };
        let head = Head {
            code: self.code,
            status,
            fields: &self.headers,
            has_date: self.app_date,
            has_server: self.app_server,
            length,
            state_length: state_length && length.is_some(),
            no_body,
            close: self.close,
            began: self.began,
        };
        let sink = self.sink.as_mut().ok_or_else(gone)?;
        if !claimed {
            // The watchdog answered this request (--timeout): nothing more goes out.
            sink.abort();
            return Err(gone());
        }
        sink.head(Gil(py), &head)
    }

    /// Sends one block of body (queued, in a transport that coalesces). `total`: the whole
    /// body's length, when this is all of it.
    pub(super) fn send_block(
        &mut self,
        py: Python<'_>,
        block: Block<'_>,
        total: Option<u64>,
    ) -> io::Result<()> {
        let len = block.data().len();
        if len == 0 && total.is_none() {
            return Ok(()); // headers wait for the first non-empty block
        }
        if !self.headers_sent() {
            self.send_head(py, total)?;
        }
        let n = match self.body {
            BodyState::None => 0,
            BodyState::Length(left) => {
                let n = (len as u64).min(left);
                if n < len as u64 && !self.overflow_logged {
                    self.overflow_logged = true;
                    error!("app sent more than its Content-Length; the excess was not sent");
                }
                self.body = BodyState::Length(left - n);
                n as usize
            }
            BodyState::Open | BodyState::Unsent => len,
        };
        self.body_sent += n as u64;
        watchdog::body_sent(self.body_sent);
        if n == 0 && len > 0 {
            return Ok(());
        }
        self.sink()?.body(Gil(py), block.truncated(n))
    }

    /// Sends `count` bytes of the open file `file` from `offset` (sendfile where the
    /// transport can).
    pub(super) fn send_file(
        &mut self,
        py: Python<'_>,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        if !self.headers_sent() {
            self.send_head(py, Some(count))?;
        }
        let count = match self.body {
            BodyState::None => 0,
            BodyState::Length(left) => {
                let n = count.min(left);
                self.body = BodyState::Length(left - n);
                n
            }
            BodyState::Open | BodyState::Unsent => count,
        };
        self.body_sent += count;
        watchdog::body_sent(self.body_sent);
        self.sink()?.file(Gil(py), file, offset, count)
    }

    /// Ends the response: the head if no body was sent, the end of the body, and the check
    /// that the app sent its Content-Length.
    pub(super) fn finish(&mut self, py: Python<'_>) -> io::Result<()> {
        self.finished = true;
        if !self.headers_sent() {
            self.send_head(py, Some(0))?;
        }
        if let BodyState::Length(left) = self.body {
            if left > 0 {
                error!(
                    "app sent {} bytes, {left} fewer than its Content-Length; closing the connection",
                    self.body_sent
                );
                self.close = true;
            }
        }
        self.sink()?.finish(Gil(py))
    }

    /// Sends what the transport holds queued; `wait`: on its way when this returns.
    pub(super) fn flush(&mut self, py: Python<'_>, wait: bool) -> io::Result<()> {
        self.sink()?.flush(Gil(py), wait)
    }

    /// The app is about to produce its next block (or run `close()`).
    pub(super) fn app_busy(&mut self) {
        if let Some(s) = self.sink.as_mut() {
            s.app_busy();
        }
    }

    /// The app is back.
    pub(super) fn app_back(&mut self, py: Python<'_>) -> io::Result<()> {
        self.sink()?.app_back(Gil(py))
    }

    /// The connection takes no more for now (see [`Sink::congested`]).
    pub(super) fn congested(&self) -> bool {
        self.sink.as_ref().is_some_and(|s| s.congested())
    }

    /// The client is gone: nothing can be sent.
    pub(super) fn client_gone(&self) -> bool {
        self.sink.as_ref().is_none_or(|s| s.client_gone())
    }

    /// The connection failed, or the client read nothing within the timeout: what is queued
    /// is dropped and nothing more is sent.
    pub(super) fn abort(&mut self) {
        self.close = true;
        if let Some(s) = self.sink.as_mut() {
            s.abort();
        }
    }

    /// The app failed mid-response: what is queued still goes out, then the connection
    /// closes.
    pub(super) fn cut(&mut self) {
        self.close = true;
        if let Some(s) = self.sink.as_mut() {
            s.cut();
        }
    }

    /// Whether the connection may serve another request after this response.
    pub(super) fn keep_alive(&self) -> bool {
        !self.close && self.sink.as_ref().is_some_and(|s| s.keep_alive())
    }

    pub fn mark_finished(&mut self) {
        self.finished = true;
    }
}
