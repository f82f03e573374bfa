//! `wsgi.file_wrapper` (sent with sendfile(2) when it wraps a real file) and `wsgi.errors`.
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// `environ['wsgi.file_wrapper'](filelike, blksize=8192)`. Iterable like PEP 3333's example;
/// the server sends it with sendfile(2) when `filelike.fileno()` is a regular file.
#[pyclass(module = "ferrule._native", name = "FileWrapper")]
pub struct FileWrapper {
    #[pyo3(get)]
    pub filelike: Py<PyAny>,
    #[pyo3(get)]
    pub blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr(pyo3::intern!(py, "close"))? {
            f.call_method0(pyo3::intern!(py, "close"))?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// The descriptor, start offset and byte count to send, if this wraps a regular file.
    pub fn sendfile_plan(&self, py: Python<'_>) -> Option<(i32, u64, u64)> {
        let f = self.filelike.bind(py);
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
#[pyclass(module = "ferrule._native", name = "Errors")]
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
