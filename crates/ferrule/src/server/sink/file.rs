//! A file as the body of a response: sendfile(2) on the socket (the inline worker leaves what
//! a full socket does not take to the connection's task), or copied into FastCGI records.
use std::io;
use std::os::fd::{FromRawFd, RawFd};

use ferrule_proto::http1::response as enc;

use super::{Framing, StreamSink};
use crate::net::io as sio;
use crate::wsgi::sink::{Gil, Sink};

impl StreamSink {
    /// Sends the file with sendfile, waiting (the GIL released) while the socket is full.
    pub(super) fn send_file_sync(
        &mut self,
        gil: Gil<'_>,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            let mut size = Vec::with_capacity(18);
            enc::push_chunk_size(&mut size, count as usize);
            self.send(gil, &[&size])?;
        }
        let (fd, timeout) = (self.set.fd, self.set.timeout);
        let sent = gil
            .unlocked(|| sio::sendfile(fd, file, offset, count, timeout))
            .inspect_err(|_| self.abort())?;
        if let Framing::Length(left) = self.framing {
            self.framing = Framing::Length(left - sent.min(left));
        }
        if sent < count {
            self.abort();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its size",
            ));
        }
        if self.framing == Framing::Chunked {
            self.send(gil, &[b"\r\n"])?;
        }
        Ok(())
    }

    /// The inline worker: sends what the socket takes now and leaves the rest as a tail for the
    /// connection's task, so that one slow reader does not hold up the worker.
    pub(super) fn send_file_or_defer(
        &mut self,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        let fail = |this: &mut Self, e: io::Error| {
            this.abort();
            Err(e)
        };
        let attempt = if self.blocked {
            // The head waits for the client: the whole file follows it.
            Ok(sio::Sent::Some(0))
        } else {
            sio::try_sendfile(self.set.fd, file, offset, count)
        };
        let sent = match attempt {
            Ok(sio::Sent::Some(n)) => n,
            Ok(sio::Sent::FileEnded(_)) => {
                return fail(
                    self,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than its size"),
                )
            }
            Err(e) => return fail(self, e),
        };
        if sent < count {
            // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor the file wrapper holds open; the
            // copy is owned by the tail alone.
            let dup = unsafe { libc::fcntl(file, libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                return fail(self, io::Error::last_os_error());
            }
            self.tail = Some(sio::FileTail {
                // SAFETY: `dup` was just created and nothing else owns it.
                file: unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) },
                offset: offset + sent,
                count: count - sent,
            });
        }
        if let Framing::Length(left) = self.framing {
            self.framing = Framing::Length(left - count.min(left));
        }
        Ok(())
    }

    /// Sends a file's bytes through `send` (FastCGI records cannot carry sendfile's output).
    pub(super) fn send_file_copied(
        &mut self,
        gil: Gil<'_>,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut done = 0u64;
        while done < count {
            let want = (count - done).min(buf.len() as u64) as usize;
            let at = offset + done;
            let dst = &mut buf[..want];
            // SAFETY: pread into our own buffer of `want` bytes, from a descriptor the file
            // wrapper keeps open for the call.
            let n = gil.unlocked(|| unsafe {
                libc::pread(file, dst.as_mut_ptr().cast(), dst.len(), at as libc::off_t)
            });
            if n <= 0 {
                self.abort();
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its size",
                ));
            }
            let n = n as usize;
            self.send(gil, &[&buf[..n]])?;
            done += n as u64;
        }
        Ok(())
    }
}
