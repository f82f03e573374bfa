//! `--body-min-rate`: the slowest a request body may arrive, as bytes per second over windows
//! of [`WINDOW`] spent waiting for the client (Apache mod_reqtimeout's `MinRate`, counted per
//! window rather than by extending a deadline, so that a body dripped in bursts cannot bank
//! time). Only time spent waiting on the socket counts: an app that reads a streamed body
//! slowly is not taken for a slow client. A window that ends below the rate ends the body:
//! buffered reads answer 408, a streaming `wsgi.input` read fails.
use std::io;
use std::time::{Duration, Instant};

use crate::wsgi::sink::BodyError;

/// The waiting time the rate is counted over.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The rate check of one request body.
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    /// Bytes each window must bring.
    per_window: u64,
    /// Time waited for the client in the current window.
    waited: Duration,
    got: u64,
}

impl MinRate {
    /// A body that must arrive at `rate` bytes per second or faster. None for a rate of 0 (no
    /// minimum).
    #[must_use]
    pub fn start(rate: u64) -> Option<Self> {
        (rate > 0).then(|| Self {
            per_window: rate.saturating_mul(WINDOW.as_secs()),
            waited: Duration::ZERO,
            got: 0,
        })
    }

    /// How long the next read may wait: `idle` (the client timeout), but not past the
    /// window's end.
    #[must_use]
    pub fn wait(&self, idle: Duration) -> Duration {
        idle.min(WINDOW.saturating_sub(self.waited))
    }

    /// Counts a read that waited `took` and brought `n` bytes (0: it timed out). False: the
    /// window ended below the rate. A window that ended at or above it starts the next one.
    pub fn record(&mut self, n: usize, took: Duration) -> bool {
        self.got = self.got.saturating_add(n as u64);
        self.waited += took;
        if self.waited < WINDOW {
            return true;
        }
        if self.got < self.per_window {
            return false;
        }
        self.waited = Duration::ZERO;
        self.got = 0;
        true
    }
}

/// One read under the client timeout and `rate` (`read` given how long it may wait; it may
/// return `TimedOut` at the end of that time). A body below the rate is
/// [`BodyError::TooSlow`]; end of file is `Ok(0)`.
pub fn paced(
    timeout: Duration,
    rate: &mut Option<MinRate>,
    mut read: impl FnMut(Duration) -> io::Result<usize>,
) -> Result<usize, BodyError> {
    let Some(r) = rate else {
        return read(timeout).map_err(|e| BodyError::Io(e.kind()));
    };
    loop {
        let wait = r.wait(timeout);
        let began = Instant::now();
        let n = match read(wait) {
            Ok(n) => Some(n),
            // The window ended before the client timeout: checked below, then wait on.
            Err(e) if e.kind() == io::ErrorKind::TimedOut && wait < timeout => None,
            Err(e) => return Err(BodyError::Io(e.kind())),
        };
        if !r.record(n.unwrap_or(0), began.elapsed()) {
            return Err(BodyError::TooSlow);
        }
        if let Some(n) = n {
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_window_below_the_rate_fails_and_one_at_it_starts_another() {
        let mut r = MinRate::start(500).expect("a rate");
        assert!(r.record(2_000, SEC));
        assert!(!r.clone().record(0, 4 * SEC));
        assert!(r.record(500, SEC));
        assert!(r.record(0, 3 * SEC));
        // The new window starts from nothing: a drip fails it.
        assert!(r.record(10, 4 * SEC));
        assert!(!r.record(10, SEC));
    }

    #[test]
    fn zero_is_no_minimum_and_waits_stop_at_the_window_end() {
        assert!(MinRate::start(0).is_none());
        let mut r = MinRate::start(1).expect("a rate");
        assert_eq!(r.wait(60 * SEC), WINDOW);
        assert_eq!(r.wait(SEC), SEC);
        assert!(r.record(1, 2 * SEC));
        assert_eq!(r.wait(60 * SEC), 3 * SEC);
    }

    #[test]
    fn paced_reads_pass_a_steady_body_and_need_no_rate() {
        let mut rate = MinRate::start(100);
        assert_eq!(paced(60 * SEC, &mut rate, |_| Ok(4096)).ok(), Some(4096));
        let mut none = None;
        assert_eq!(
            paced(SEC, &mut none, |w| Ok(w.as_secs() as usize)).ok(),
            Some(1)
        );
    }
}
