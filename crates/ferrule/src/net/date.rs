//! The `Date` header value, formatted once per second per thread.
use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate (`Sun, 22 Nov 2026 09:15:07 GMT`).
pub const LEN: usize = 29;

thread_local! {
    static CACHE: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
}

/// Calls `f` with the current date as an HTTP header value.
pub fn with<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let secs = coarse_secs();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            if text.len() == LEN {
                c.1.copy_from_slice(text.as_bytes());
                c.0 = secs;
            }
        }
        f(&c.1)
    })
}

/// Seconds since the epoch from the kernel's coarse clock (updated every tick, a few
/// milliseconds; read without the time-stamp counter), on every request.
fn coarse_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_REALTIME_COARSE exists
    // on every Linux the server supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &raw mut ts) };
    if rc == 0 {
        u64::try_from(ts.tv_sec).unwrap_or(0)
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
