//! systemd's service notifications (`sd_notify`, `Type=notify` and `Type=notify-reload`): with
//! `NOTIFY_SOCKET` set, the master says `READY=1` once the first worker accepts, `RELOADING=1`
//! then `READY=1` around a HUP, `STOPPING=1` on TERM, and `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` when systemd's watchdog is on. Without `NOTIFY_SOCKET` nothing is sent.
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::log::debug;

/// The notification socket and the watchdog's period, read once at start.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Instant,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace) and
    /// `WATCHDOG_USEC`/`WATCHDOG_PID`.
    #[must_use]
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let addr = address(path.as_encoded_bytes())?;
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && ours && socket.is_some())
            .map(|u| Duration::from_micros(u / 2));
        Self {
            socket,
            watchdog,
            last_ping: Instant::now(),
        }
    }

    fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                debug!("cannot notify systemd ({state:?}): {e}");
            }
        }
    }

    /// The server accepts connections.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// A reload starts (`Type=notify-reload` wants the monotonic time with it).
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// The server stops.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Called from the master's loop: `WATCHDOG=1` when half the watchdog period passed.
    pub fn tick(&mut self) {
        if let Some(every) = self.watchdog {
            if self.last_ping.elapsed() >= every {
                self.last_ping = Instant::now();
                self.send("WATCHDOG=1");
            }
        }
    }
}

/// `NOTIFY_SOCKET`'s address: a filesystem path, or `@name` for the abstract namespace.
fn address(raw: &[u8]) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match raw.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name).ok(),
        None if raw.first() == Some(&b'/') => {
            use std::os::unix::ffi::OsStrExt;
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(raw));
            std::os::unix::net::SocketAddr::from_pathname(path).ok()
        }
        None => None,
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the valid timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000
}
