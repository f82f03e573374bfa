//! `wsgi.input`: the request body, streamed from the transport (a [`BodySource`]) as the app
//! reads it.
use std::io;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::sink::{BodyError, BodySource};

/// Bytes asked of the socket per read.
const READ_BLOCK: usize = 64 * 1024;
/// Largest `read(size)` made as one `bytes` object of its final size and filled in place (one
/// copy instead of two), when the body's length is known; a larger one (or one that would
/// allocate for a length the client only claims) grows as the bytes come.
const READ_IN_PLACE: usize = 4 * READ_BLOCK;

/// The Python exception a failed body read raises in the app.
fn body_error(e: BodyError) -> PyErr {
    match e {
        BodyError::Parse(e) => PyValueError::new_err(format!("request body refused: {e}")),
        BodyError::Io(io::ErrorKind::TimedOut) => {
            PyOSError::new_err("client timed out sending the request body")
        }
        BodyError::Io(_) => {
            PyOSError::new_err("client disconnected before sending the whole request body")
        }
        BodyError::TooSlow => {
            PyOSError::new_err("client sent the request body slower than --body-min-rate")
        }
    }
}

/// `wsgi.input`. Reads block (with the GIL released) until `size` bytes or the end of the body,
/// as a buffered file's do.
#[pyclass(module = "ferrule._native", name = "Input")]
pub struct Input {
    pub reader: Option<Box<dyn BodySource>>,
    /// Bytes read ahead by `readline`, served before the reader.
    pending: Vec<u8>,
}

impl Input {
    /// The response's head goes out while the body is not all read: true when the
    /// connection is to close after the response (see [`BodySource::head_going_out`]).
    pub fn head_going_out(&mut self) -> bool {
        self.reader.as_mut().is_some_and(|r| r.head_going_out())
    }

    #[must_use]
    pub fn new(reader: Box<dyn BodySource>) -> Self {
        Self {
            reader: Some(reader),
            pending: Vec::new(),
        }
    }

    /// An input that reads as empty (a request without a body).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            reader: None,
            pending: Vec::new(),
        }
    }

    /// Appends up to `max` bytes to `out` from the pending buffer, then the body; 0 at the end.
    fn read_more(&mut self, py: Python<'_>, out: &mut Vec<u8>, max: usize) -> PyResult<usize> {
        if !self.pending.is_empty() {
            let n = max.min(self.pending.len());
            out.extend(self.pending.drain(..n));
            return Ok(n);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(0);
        };
        match reader.read(out, max, false) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => match py.detach(|| {
                // Waiting for the client does not count against --timeout.
                let _paused = crate::watchdog::pause();
                reader.read(out, max, true)
            }) {
                Ok(n) => Ok(n.unwrap_or(0)),
                Err(e) => Err(body_error(e)),
            },
            Err(e) => Err(body_error(e)),
        }
    }

    fn read_exact(&mut self, py: Python<'_>, size: Option<usize>) -> PyResult<Vec<u8>> {
        let want = size.unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(want.min(READ_BLOCK));
        while out.len() < want {
            let max = (want - out.len()).min(4 * READ_BLOCK);
            let n = self.read_more(py, &mut out, max)?;
            if n == 0 {
                break;
            }
        }
        Ok(out)
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            if let Some(nl) = memchr_from(&self.pending, scanned) {
                let end = (nl + 1).min(limit);
                return Ok(self.pending.drain(..end).collect());
            }
            if self.pending.len() >= limit {
                return Ok(self.pending.drain(..limit).collect());
            }
            scanned = self.pending.len();
            let mut more = std::mem::take(&mut self.pending);
            let n = match self.reader.as_mut() {
                None => 0,
                Some(reader) => match reader.read(&mut more, READ_BLOCK, false) {
                    Ok(Some(n)) => n,
                    Ok(None) => py
                        .detach(|| {
                            let _paused = crate::watchdog::pause();
                            reader.read(&mut more, READ_BLOCK, true)
                        })
                        .map_err(body_error)?
                        .unwrap_or(0),
                    Err(e) => return Err(body_error(e)),
                },
            };
            self.pending = more;
            if n == 0 {
                let end = self.pending.len().min(limit);
                return Ok(self.pending.drain(..end).collect());
            }
        }
    }
}

impl Input {
    /// `read(size)` as one `bytes` object of its final size, filled in place, when the body's
    /// length is known and the read is small or already received (see [`READ_IN_PLACE`]).
    fn read_in_place<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<usize>,
    ) -> Option<PyResult<Bound<'py, PyBytes>>> {
        if !self.pending.is_empty() {
            return None;
        }
        let reader = self.reader.as_mut()?;
        let n = reader.exact_len(size)?;
        let received = reader.buffered() >= n;
        if !received && n > READ_IN_PLACE {
            return None;
        }
        let Ok(len) = pyo3::ffi::Py_ssize_t::try_from(n) else {
            return None;
        };
        // SAFETY: with a null pointer, PyBytes_FromStringAndSize makes a bytes object of `len`
        // bytes left uninitialised for the caller to fill (CPython's documented way to build
        // one in place); we hold the GIL. A null result is an exception set.
        let raw = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len) };
        if raw.is_null() {
            return Some(Err(PyErr::fetch(py)));
        }
        // SAFETY: `raw` is a new reference to a bytes object, owned by `bytes` from here on.
        let bytes = unsafe { Bound::from_owned_ptr(py, raw).cast_into_unchecked::<PyBytes>() };
        // SAFETY: the object's buffer holds `n` bytes and nothing else refers to the object
        // (it is returned only once filled): writing them is ours alone, and the slice ends
        // before `bytes` is returned or dropped.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(pyo3::ffi::PyBytes_AsString(raw).cast::<u8>(), n)
        };
        let filled = if received {
            reader.read_exact_into(dst)
        } else {
            // Waiting for the client does not count against --timeout.
            py.detach(|| {
                let _paused = crate::watchdog::pause();
                reader.read_exact_into(dst)
            })
        };
        Some(filled.map(|()| bytes).map_err(body_error))
    }
}

fn memchr_from(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)
        .and_then(|b| b.iter().position(|&c| c == b'\n'))
        .map(|p| p + from)
}

/// `None`, or a negative number, means "no limit", as for files.
fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size);
        if let Some(bytes) = self.read_in_place(py, size) {
            return bytes;
        }
        let data = self.read_exact(py, size)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, size_arg(size))?;
        Ok(PyBytes::new(py, &line))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}
}
