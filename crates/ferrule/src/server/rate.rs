//! `--body-min-rate`: the slowest a request body may arrive, as bytes per second over windows
//! of [`WINDOW`] spent waiting for the client (Apache mod_reqtimeout's `MinRate`, counted per
//! window rather than by extending a deadline, so that a body dripped in bursts cannot bank
//! time). Only time spent waiting on the socket counts: an app that reads a streamed body
//! slowly is not taken for a slow client. The check runs as bytes arrive, so a drip is caught
//! at its first byte past a window (a client that sends nothing at all is the client
//! timeout's); reads keep the client timeout's deadline and no timer is armed for the rate.
//! A window that ends below the rate ends the body: buffered reads answer 408, a streaming
//! `wsgi.input` read fails.
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

/// One read under the client timeout, then `rate`'s check of what it brought (a drip is
/// caught at its first byte past a window; silence is the client timeout's). A body below the
/// rate is [`BodyError::TooSlow`]; end of file is `Ok(0)`.
pub fn paced(
    timeout: Duration,
    rate: &mut Option<MinRate>,
    mut read: impl FnMut(Duration) -> io::Result<usize>,
) -> Result<usize, BodyError> {
    let began = rate.is_some().then(Instant::now);
    let n = read(timeout).map_err(|e| BodyError::Io(e.kind()))?;
    if let (Some(r), Some(began)) = (rate.as_mut(), began) {
        if !r.record(n, began.elapsed()) {
            return Err(BodyError::TooSlow);
        }
    }
    Ok(n)
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
    fn zero_is_no_minimum() {
        assert!(MinRate::start(0).is_none());
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
