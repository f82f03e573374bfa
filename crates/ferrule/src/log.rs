//! The one logging module: the error log (stderr by default, `--error-logfile`) and the access
//! log (`--access-logfile`, `-` for stdout), in gunicorn's formats.
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
#[repr(u8)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Critical = 4,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
        }
    }
}

struct Sinks {
    error_path: Option<String>,
    error: Box<dyn Write + Send>,
    /// The descriptor behind `error`, for writers outside this module (stack dumps).
    error_fd: RawFd,
    access_path: Option<String>,
    access: Option<Box<dyn Write + Send>>,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// `--log-json`: error-log records as JSON objects.
static JSON: AtomicBool = AtomicBool::new(false);
/// Whether an access log is open (read on every request, so not behind the mutex).
static ACCESS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SINKS: OnceLock<Mutex<Sinks>> = OnceLock::new();
/// A stable duplicate of the error log's descriptor for `faulthandler`; -1 until asked for.
/// Reopening the log points it at the new file.
static DUMP_FD: AtomicI32 = AtomicI32::new(-1);

/// Opens the error log: stderr, or a file appended to. Returns the writer and its descriptor.
fn open_error(path: Option<&str>) -> io::Result<(Box<dyn Write + Send>, RawFd)> {
    Ok(match path {
        None | Some("-" | "stderr") => (Box::new(io::stderr()), libc::STDERR_FILENO),
        Some(p) => {
            let f = OpenOptions::new().create(true).append(true).open(p)?;
            let fd = f.as_raw_fd();
            (Box::new(f), fd)
        }
    })
}

fn open_sink(path: &str) -> io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        "-" => Box::new(io::stdout()),
        "stderr" => Box::new(io::stderr()),
        p => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
    })
}

/// Opens the log files. `error`: None or `-`... for the error log, None means stderr.
pub fn init(level: Level, error: Option<&str>, access: Option<&str>) -> io::Result<()> {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let (error_sink, error_fd) = open_error(error)?;
    let access_sink = access.map(open_sink).transpose()?;
    ACCESS_ON.store(access_sink.is_some(), Ordering::Release);
    let sinks = Sinks {
        error_path: error.map(str::to_owned),
        error: error_sink,
        error_fd,
        access_path: access.map(str::to_owned),
        access: access_sink,
    };
    if let Err(m) = SINKS.set(Mutex::new(sinks)) {
        // Already initialised (a second serve() in one process): replace the sinks.
        if let (Some(cur), Ok(new)) = (SINKS.get(), m.into_inner()) {
            *cur.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        }
    }
    Ok(())
}

/// `--capture-output`: whether fds 1 and 2 point at the error log file.
static CAPTURED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Points stdout and stderr (fds 1 and 2: the app's print() and tracebacks, in the master and
/// the workers it forks) at the error log, when that is a file; reopening the log does so
/// again. With the error log on stderr it changes nothing.
pub fn capture_output() {
    let Some(sinks) = SINKS.get() else { return };
    let s = sinks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if s.error_fd != libc::STDERR_FILENO {
        CAPTURED.store(true, Ordering::Release);
        capture_onto(s.error_fd);
    }
}

fn capture_onto(fd: RawFd) {
    // SAFETY: dup2 of the open error log file onto the standard descriptors.
    unsafe {
        libc::dup2(fd, libc::STDOUT_FILENO);
        libc::dup2(fd, libc::STDERR_FILENO);
    }
}

/// Reopens the log files (after rotation).
pub fn reopen() {
    let Some(sinks) = SINKS.get() else { return };
    let mut s = sinks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = s.error_path.clone().filter(|p| p != "-" && p != "stderr") {
        if let Ok((w, fd)) = open_error(Some(&p)) {
            s.error = w;
            s.error_fd = fd;
            if CAPTURED.load(Ordering::Acquire) {
                capture_onto(fd);
            }
            let dump = DUMP_FD.load(Ordering::Acquire);
            if dump >= 0 {
                // SAFETY: dup2 onto our own duplicate descriptor, from the open log file.
                unsafe { libc::dup2(fd, dump) };
            }
        }
    }
    if let Some(p) = s.access_path.clone() {
        if let Ok(w) = open_sink(&p) {
            s.access = Some(w);
        }
    }
}

#[must_use]
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// `--log-json`: error-log records are written as JSON objects from now on (in this process
/// and those it forks).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Writes one error-log record: `[time] [pid] [LEVEL] message`, or with `--log-json`
/// `{"time":...,"level":...,"pid":...,"message":...}`.
pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let line = if JSON.load(Ordering::Relaxed) {
        let mut line = String::with_capacity(msg.len() + 80);
        line.push_str("{\"time\":\"");
        line.push_str(&iso_timestamp());
        let _ = write!(
            line,
            "\",\"level\":\"{}\",\"pid\":{},\"message\":",
            level.label(),
            std::process::id()
        );
        push_json_str(&mut line, msg.trim_end().as_bytes());
        line.push_str("}\n");
        line
    } else {
        format!(
            "[{}] [{}] [{}] {}\n",
            timestamp(false),
            std::process::id(),
            level.label(),
            msg.trim_end()
        )
    };
    write_error_raw(line.as_bytes());
}

/// How often a [`Repeated`] message is written at most.
pub const REPEAT_EVERY: Duration = Duration::from_secs(10);

/// A message that may come many times a second (an accept that keeps failing, a full disk,
/// an overloaded worker): written the first time, then at most once every
/// [`REPEAT_EVERY`], saying how many times it came in between.
pub struct Repeated {
    /// When it was last written, and how many times it came since.
    state: Mutex<Option<(Instant, u64)>>,
}

impl Repeated {
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }

    /// Logs `msg()` at `level`, or counts it when it was written less than
    /// [`REPEAT_EVERY`] ago.
    pub fn log(&self, level: Level, msg: impl FnOnce() -> String) {
        if !enabled(level) {
            return;
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let since = match *state {
            Some((at, count)) if now.duration_since(at) < REPEAT_EVERY => {
                *state = Some((at, count + 1));
                return;
            }
            Some((at, count)) => (count > 0).then(|| (count, now.duration_since(at))),
            None => None,
        };
        *state = Some((now, 0));
        drop(state);
        let mut text = msg();
        if let Some((count, over)) = since {
            let _ = write!(
                text,
                " (and {count} more like it in the {} s before)",
                over.as_secs()
            );
        }
        log(level, &text);
    }
}

impl Default for Repeated {
    fn default() -> Self {
        Self::new()
    }
}

/// A JSON string of `v`: UTF-8 as it is, a value that is not UTF-8 read as latin-1 (each
/// byte above 0x7f `\u00XX`); quotes, backslashes and control characters escaped.
pub fn push_json_str(out: &mut String, v: &[u8]) {
    out.push('"');
    match std::str::from_utf8(v) {
        Ok(text) => text.chars().for_each(|c| push_json_char(out, c)),
        Err(_) => {
            for &b in v {
                if b.is_ascii() {
                    push_json_char(out, char::from(b));
                } else {
                    let _ = write!(out, "\\u{b:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn push_json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Writes bytes as they are to the error log (`wsgi.errors`).
pub fn write_error_raw(data: &[u8]) {
    match SINKS.get() {
        Some(s) => {
            let mut s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = s.error.write_all(data);
            let _ = s.error.flush();
        }
        None => {
            let _ = io::stderr().write_all(data);
        }
    }
}

pub fn flush() {
    if let Some(s) = SINKS.get() {
        let mut s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = s.error.flush();
        if let Some(a) = s.access.as_mut() {
            let _ = a.flush();
        }
    }
}

/// A descriptor that stays the error log's across reopening, for `faulthandler` stack dumps.
pub fn dump_fd() -> RawFd {
    let cur = DUMP_FD.load(Ordering::Acquire);
    if cur >= 0 {
        return cur;
    }
    let src = SINKS.get().map_or(libc::STDERR_FILENO, |s| {
        s.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .error_fd
    });
    // SAFETY: dup of a descriptor the log owns; the copy is ours and never closed.
    let fd = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return src;
    }
    match DUMP_FD.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fd,
        Err(other) => {
            // SAFETY: closing the duplicate we just made and nobody else saw.
            unsafe { libc::close(fd) };
            other
        }
    }
}

#[must_use]
pub fn access_enabled() -> bool {
    ACCESS_ON.load(Ordering::Acquire)
}

/// Writes one access-log line (already formatted, without the newline).
pub fn access(line: &str) {
    if let Some(s) = SINKS.get() {
        let mut s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = s.access.as_mut() {
            let _ = a.write_all(line.as_bytes());
            let _ = a.write_all(b"\n");
            let _ = a.flush();
        }
    }
}

macro_rules! info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) } }
macro_rules! warning { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($t)*)) } }
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($t)*)) } }
macro_rules! debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) } } }
pub(crate) use {debug, error, info, warning};

/// `2026-11-22 09:15:07 +0000` for the error log, or `22/Nov/2026:09:15:07 +0000` for the
/// access log (Apache's `%t` without brackets).
#[must_use]
pub fn timestamp(apache: bool) -> String {
    let (y, mo, d, h, mi, s) = now_parts();
    if apache {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let m = MONTHS.get((mo as usize).wrapping_sub(1)).unwrap_or(&"Jan");
        format!("{d:02}/{m}/{y}:{h:02}:{mi:02}:{s:02} +0000")
    } else {
        format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000")
    }
}

/// `2026-11-22T09:15:07Z` (RFC 3339, UTC), for JSON lines.
#[must_use]
pub fn iso_timestamp() -> String {
    let (y, mo, d, h, mi, s) = now_parts();
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The current UTC time: year, month, day, hour, minute, second.
fn now_parts() -> (i64, u32, u32, u64, u64, u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
