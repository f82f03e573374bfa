//! `--metrics-bind` and `--statsd-host` in the master: the shared blocks are mapped before
//! the first fork, then the scrape and statsd threads start (see [`crate::metrics`]).
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use crate::config::Config;
use crate::log::{error, info};
use crate::metrics::serve;
use crate::server::listener::Listener;

/// Starts what the options ask for; false (after logging why) if it cannot.
pub(super) fn start(cfg: &Config, listeners: &[Listener]) -> bool {
    let cli = &cfg.cli;
    if cli.metrics_bind.is_none() && cli.statsd_host.is_none() {
        return true;
    }
    if let Err(e) = crate::metrics::map() {
        error!("cannot map the metrics blocks: {e}");
        return false;
    }
    let fds: serve::Listeners = listeners
        .iter()
        .map(|l| (l.display.clone(), l.socket.as_raw_fd()))
        .collect();
    if let Some(addr) = cli.metrics_bind {
        let listener = match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                error!("--metrics-bind {addr}: cannot bind: {e}");
                return false;
            }
        };
        let shown = listener.local_addr().unwrap_or(addr);
        info!(
            "Metrics at: http://{shown}/metrics ({})",
            std::process::id()
        );
        if let Err(e) = serve::start_scrapes(listener, fds.clone()) {
            error!("--metrics-bind: cannot start the metrics thread: {e}");
            return false;
        }
    }
    if let Some(host) = cli.statsd_host {
        let statsd = serve::Statsd {
            host,
            prefix: serve::normalize_prefix(&cli.statsd_prefix),
            interval: Duration::from_secs_f64(cli.statsd_interval),
        };
        if let Err(e) = serve::start_statsd(statsd, fds) {
            error!("--statsd-host {host}: {e}");
            return false;
        }
        info!("Sending statsd lines to {host}");
    }
    true
}
