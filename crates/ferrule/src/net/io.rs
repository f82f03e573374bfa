//! Blocking-style I/O on a non-blocking socket, for the part of a request that runs outside the
//! event loop (the app's body reads and the response writes): try the syscall, and on
//! `EWOULDBLOCK` wait in `poll(2)` up to a deadline. Callers release the GIL around anything
//! that may wait.
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

thread_local! {
    /// Response buffers already written, for this thread's next responses: a response's
    /// head (and small body) needs no allocation of its own.
    static SPARE_BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers [`give_back`] keeps per thread.
const SPARE_BUFS_MAX: usize = 64;
/// Largest buffer (capacity) [`give_back`] keeps: small responses, the ones an allocation
/// weighs on.
const SPARE_BUF_CAP: usize = 4096;

/// An empty buffer with room for `capacity` bytes, one given back earlier when there is one.
#[must_use]
pub fn take_buf(capacity: usize) -> Vec<u8> {
    let spare = SPARE_BUFS.with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()));
    match spare {
        Some(mut b) => {
            b.reserve(capacity);
            b
        }
        None => Vec::with_capacity(capacity),
    }
}

/// A response buffer that has been written, kept for [`take_buf`] if it is small.
pub fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_BUF_CAP {
        // Nothing to keep (an empty buffer would cost an allocation to the next taker), or
        // too large to keep.
        return;
    }
    buf.clear();
    SPARE_BUFS.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.len() < SPARE_BUFS_MAX {
                s.push(buf);
            }
        }
    });
}

/// Waits until `fd` is writable, or `deadline` passes.
pub fn wait_writable(fd: RawFd, deadline: Instant) -> io::Result<()> {
    wait(fd, true, deadline)
}

/// Waits until `fd` is readable (`write` false) or writable, or `deadline` passes.
fn wait(fd: RawFd, write: bool, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "client timed out"));
        }
        let mut pfd = libc::pollfd {
            fd,
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: `pfd` is one valid pollfd on our stack, and we pass a count of 1.
        let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// One `read(2)` into `buf`'s spare capacity (reserving `want` bytes). `Ok(None)`: would block.
pub fn try_read(fd: RawFd, buf: &mut bytes::BytesMut, want: usize) -> io::Result<Option<usize>> {
    buf.reserve(want);
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`; recv(2)
        // writes at most that many and we only mark as initialised the `n` bytes it reports.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), 0) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: recv(2) initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(Some(n));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
}

/// Whether the client sent something (bytes, or its end) that nobody read yet, without taking
/// it: a one-byte `MSG_PEEK`. Err(WouldBlock) when nothing is there.
pub fn peek_pending(fd: RawFd) -> io::Result<()> {
    let mut byte = 0u8;
    loop {
        // SAFETY: recv(2) writes at most one byte into `byte`, a live local; MSG_PEEK leaves
        // it in the socket.
        let n = unsafe {
            libc::recv(
                fd,
                std::ptr::addr_of_mut!(byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads at least one byte (or EOF: 0) into `dst`, waiting up to `timeout`.
pub fn read_into(fd: RawFd, dst: &mut [u8], timeout: Duration) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: `dst` is writable memory of `dst.len()` bytes that recv(2) writes at most.
        let n = unsafe { libc::recv(fd, dst.as_mut_ptr().cast(), dst.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => wait(fd, false, deadline)?,
            io::ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
}

/// Reads at least one byte (or EOF: 0) into `buf`, waiting up to `timeout`.
pub fn read_some(
    fd: RawFd,
    buf: &mut bytes::BytesMut,
    want: usize,
    timeout: Duration,
) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(n) = try_read(fd, buf, want)? {
            return Ok(n);
        }
        wait(fd, false, deadline)?;
    }
}

/// Most parts one gathered write sends (the rest waits for the next write).
pub const MAX_IOVECS: usize = 64;

/// One non-blocking gathered write of at most [`MAX_IOVECS`] of `parts` to the socket `fd`
/// (`send(2)` for one part, which the kernel takes without copying in an iovec array, else
/// `sendmsg(2)`); returns bytes written (0 if it would block). The socket calls, not `write(2)`/`writev(2)`: they
/// skip the file layer's work (position lock, fsnotify) on every response. `MSG_NOSIGNAL`: a
/// peer gone is an `EPIPE` error, never a signal.
pub fn try_writev(fd: RawFd, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    loop {
        let n = if let [one] = parts {
            // SAFETY: the pointer and length describe `one`, which outlives the call.
            unsafe { libc::send(fd, one.as_ptr().cast(), one.len(), libc::MSG_NOSIGNAL) }
        } else {
            // SAFETY: an all-zero msghdr is valid (no address, no control data).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = parts.as_ptr().cast_mut().cast();
            msg.msg_iovlen = parts.len().min(MAX_IOVECS);
            // SAFETY: IoSlice is ABI-compatible with iovec (std guarantees it on Unix);
            // `parts` outlives the call, the kernel only reads the iovecs, and the count is at
            // most its length.
            unsafe { libc::sendmsg(fd, &raw const msg, libc::MSG_NOSIGNAL) }
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(0),
            io::ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
}

/// Pieces a write gathers on the stack; more are gathered in a Vec.
const STACK_IOV: usize = 8;

/// One non-blocking write of `parts` (gathered on the stack when they are few); returns the
/// bytes written (0 if the socket is full).
pub fn try_write_parts(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    if parts.len() <= STACK_IOV {
        // The usual few pieces: no allocation.
        let mut iov = [IoSlice::new(&[]); STACK_IOV];
        for (slot, p) in iov.iter_mut().zip(parts) {
            *slot = IoSlice::new(p);
        }
        try_writev(fd, &iov[..parts.len()])
    } else {
        let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        try_writev(fd, &iov)
    }
}

/// Writes all of `parts`, skipping the first `skip` bytes (already written), waiting for the
/// socket up to `timeout` each time it is full.
pub fn write_all(fd: RawFd, parts: &[&[u8]], mut skip: usize, timeout: Duration) -> io::Result<()> {
    let mut idx = 0;
    let mut rest: Vec<&[u8]> = Vec::new();
    while idx < parts.len() {
        // Drop parts already fully written.
        while idx < parts.len() && skip >= parts[idx].len() {
            skip -= parts[idx].len();
            idx += 1;
        }
        if idx == parts.len() {
            break;
        }
        let n = if skip == 0 {
            try_write_parts(fd, &parts[idx..])?
        } else {
            rest.clear();
            rest.push(&parts[idx][skip..]);
            rest.extend_from_slice(&parts[idx + 1..]);
            try_write_parts(fd, &rest)?
        };
        if n == 0 {
            wait(fd, true, Instant::now() + timeout)?;
        }
        skip += n;
    }
    Ok(())
}

/// The rest of a file response the socket could not take at once. The inline worker leaves it
/// to the connection's task, which sends it as the client reads, while the worker serves other
/// connections (instead of blocking in poll). The descriptor is a duplicate: the app's file
/// object is closed with its response.
#[derive(Debug)]
pub struct FileTail {
    pub file: std::os::fd::OwnedFd,
    pub offset: u64,
    pub count: u64,
}

/// Unsent bytes a TCP socket may hold while sendfile runs (`TCP_NOTSENT_LOWAT`), so that a
/// loopback receiver is not flooded; why 32 KiB: bench/README.md, "The cap on unsent file bytes".
pub const FILE_NOTSENT_LOWAT: u32 = 32 * 1024;

/// Caps (Some) or uncaps (None: the system's default) the unsent bytes of a TCP socket. On
/// another kind of socket it does nothing.
pub fn set_notsent_lowat(fd: RawFd, bytes: Option<u32>) {
    let value = libc::c_int::try_from(bytes.unwrap_or(0)).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads one int from a pointer valid for the call; an fd that is not a
    // TCP socket only makes it fail, which is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// What [`try_sendfile`] managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// This many bytes went out; the socket is full (or the file ended, if `n` is short and
    /// the next call sends 0).
    Some(u64),
    /// The file ended before `count` bytes.
    FileEnded(u64),
}

/// Sends what the socket takes now of `count` bytes of `file` from `offset`, without waiting.
pub fn try_sendfile(fd: RawFd, file: RawFd, mut offset: u64, count: u64) -> io::Result<Sent> {
    let mut sent = 0u64;
    while sent < count {
        let mut off = offset as libc::off_t;
        let chunk = (count - sent).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the duration of the call; `off` is a valid
        // pointer to our local offset.
        let n = unsafe { libc::sendfile(fd, file, &raw mut off, chunk) };
        if n > 0 {
            sent += n as u64;
            offset += n as u64;
            continue;
        }
        if n == 0 {
            return Ok(Sent::FileEnded(sent));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => break,
            io::ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
    Ok(Sent::Some(sent))
}

/// Sends `count` bytes of `file` from `offset` with sendfile(2); returns bytes sent (short only
/// if the file is shorter than expected).
pub fn sendfile(
    fd: RawFd,
    file: RawFd,
    mut offset: u64,
    count: u64,
    timeout: Duration,
) -> io::Result<u64> {
    let mut sent = 0u64;
    while sent < count {
        match try_sendfile(fd, file, offset, count - sent)? {
            Sent::FileEnded(n) => return Ok(sent + n),
            Sent::Some(0) => wait(fd, true, Instant::now() + timeout)?,
            Sent::Some(n) => {
                sent += n;
                offset += n;
            }
        }
    }
    Ok(sent)
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit, so that a worker's connections
/// are bounded by `--worker-connections` rather than by a soft limit left low (often 1024).
/// Returns the limit before and after (equal when it was already at the hard limit or could
/// not be raised); None if it cannot be read. A hard limit of "unlimited" is taken as the
/// kernel's ceiling, [`NOFILE_CEILING`], when the kernel refuses it as it stands.
pub fn raise_nofile() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return None;
    }
    let before = lim.rlim_cur;
    if before >= lim.rlim_max {
        return Some((before, before));
    }
    for want in [lim.rlim_max, NOFILE_CEILING.min(lim.rlim_max)] {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass; it changes only this process's limit.
        if want > before && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const new) } == 0 {
            return Some((before, want));
        }
    }
    Some((before, before))
}

/// The soft descriptor limit tried when the hard limit is "unlimited" and the kernel refuses
/// that (Linux caps it at `fs.nr_open`, 1,048,576 by default).
const NOFILE_CEILING: u64 = 1 << 20;

/// Most descriptors [`reserve_fd_table`] makes room for.
const FD_TABLE_RESERVE: u64 = 1 << 16;

/// Grows this process's descriptor table now, while the worker has a single thread, to what
/// RLIMIT_NOFILE allows (at most [`FD_TABLE_RESERVE`]). Linux grows the table by doubling as
/// descriptors are opened, and in a process with several threads each growth waits for an
/// RCU grace period (`expand_fdtable` calls `synchronize_rcu`): milliseconds during which the
/// whole event loop stands still. Without this, the first burst of 64 new connections on a
/// fresh worker took 16 ms instead of 1 (and again at 128, 256, ...). The table costs kernel
/// memory only (8 bytes a slot), never the process's RSS.
pub fn reserve_fd_table() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return;
    }
    let top = lim.rlim_cur.min(FD_TABLE_RESERVE);
    let Ok(target) = libc::c_int::try_from(top.saturating_sub(1)) else {
        return;
    };
    if target < 64 {
        return;
    }
    for src in 0..3 {
        // SAFETY: F_DUPFD copies a standard descriptor (or fails harmlessly if it is closed)
        // onto the lowest free descriptor at or above `target`; the copy is closed at once:
        // only the table's size remains.
        let fd = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, target) };
        if fd >= 0 {
            // SAFETY: `fd` is the copy just made, owned by nothing else.
            unsafe { libc::close(fd) };
            return;
        }
    }
}

/// Half-closes the write side, so the client sees EOF after everything sent.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor we own; errors (already closed peer) are ignored.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}
