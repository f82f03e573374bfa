//! `wsgi.file_wrapper` (sent with sendfile(2) when it wraps a real file) and `wsgi.errors`.
use std::sync::{Mutex, PoisonError, TryLockError};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{PyTraverseError, PyVisit};

/// `environ['wsgi.file_wrapper'](filelike, blksize=8192)`. Iterable like PEP 3333's example;
/// the server sends it with sendfile(2) when `filelike.fileno()` is a regular file.
///
/// It takes part in Python's garbage collector (`__traverse__`, `__clear__`): a cycle
/// through it (a file that refers back to its wrapper) is freed. Frozen, so no borrow of it
/// can fail; the file sits behind a lock that is held only to copy or take the reference,
/// never while Python code runs.
#[pyclass(module = "ferrule._native", name = "FileWrapper", frozen, weakref)]
pub struct FileWrapper {
    /// The file; `None` once the garbage collector has cleared the wrapper.
    filelike: Mutex<Option<Py<PyAny>>>,
    #[pyo3(get)]
    pub blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike: Mutex::new(Some(filelike)),
            blksize: blksize.max(1),
        }
    }

    /// The wrapped file (`None` once the garbage collector has cleared the wrapper).
    #[getter]
    fn filelike<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.file(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(f) = self.file(py) else {
            return Ok(None);
        };
        let data = f.call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(f) = self.file(py) else {
            return Ok(());
        };
        if f.hasattr(pyo3::intern!(py, "close"))? {
            f.call_method0(pyo3::intern!(py, "close"))?;
        }
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // The lock is never held while Python code (and so the collector) runs: it is free.
        let file = match self.filelike.try_lock() {
            Ok(f) => f,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        if let Some(f) = file.as_ref() {
            visit.call(f)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        // Taken under the lock, released after it: dropping the file may run Python code.
        let file = self.lock().take();
        drop(file);
    }
}

impl FileWrapper {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Py<PyAny>>> {
        self.filelike.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file, if the garbage collector has not cleared it: a new reference, so that no
    /// lock is held while it is used.
    fn file<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.lock().as_ref().map(|f| f.bind(py).clone())
    }

    /// The descriptor, start offset and byte count to send, if this wraps a regular file.
    pub fn sendfile_plan(&self, py: Python<'_>) -> Option<(i32, u64, u64)> {
        let f = self.file(py)?;
        let fd: i32 = f
            .call_method0(pyo3::intern!(py, "fileno"))
            .ok()?
            .extract()
            .ok()?;
        // SAFETY: fstat on a descriptor the file object owns, into a zeroed stat on our stack.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `st` is a valid out-pointer.
        if unsafe { libc::fstat(fd, &raw mut st) } != 0
            || (st.st_mode & libc::S_IFMT) != libc::S_IFREG
        {
            return None;
        }
        let pos: u64 = match f
            .call_method0(pyo3::intern!(py, "tell"))
            .and_then(|p| p.extract())
        {
            Ok(p) => p,
            Err(_) => {
                // SAFETY: lseek on the same descriptor, only reading the current offset.
                let p = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
                u64::try_from(p).ok()?
            }
        };
        let size = u64::try_from(st.st_size).ok()?;
        Some((fd, pos, size.saturating_sub(pos)))
    }
}

/// `wsgi.errors`: text written here goes to the error log.
#[pyclass(module = "ferrule._native", name = "Errors", frozen)]
pub struct Errors;

#[pymethods]
impl Errors {
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(b) = data.cast::<PyBytes>() {
            crate::log::write_error_raw(b.as_bytes());
            return Ok(b.as_bytes().len());
        }
        let s: String = data.extract()?;
        crate::log::write_error_raw(s.as_bytes());
        // TextIOBase.write returns the number of characters, not bytes.
        Ok(s.chars().count())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    fn flush(&self) {
        crate::log::flush();
    }
}
