//! A [`Snapshot`] as Prometheus' text exposition format (0.0.4) or OpenMetrics 1.0.
use std::fmt::Write as _;

use super::master::{Snapshot, REASONS};
use super::{parts, BUCKETS_US, METHODS, PROTOCOLS};

/// Which text a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, the default.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, when the Accept field names it.
    OpenMetrics,
}

impl Format {
    /// The format for a request's Accept field.
    #[must_use]
    pub fn for_accept(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A bucket bound or a sum in seconds, as Prometheus writes floats.
fn seconds(us: u64) -> String {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a duration in seconds as a float"
    )]
    let s = us as f64 / 1e6;
    format!("{s}")
}

struct Out {
    text: String,
    format: Format,
}

impl Out {
    /// `# HELP` and `# TYPE` for a family; a counter's samples end in `_total`, named so in
    /// 0.0.4's TYPE line (as `prometheus_client` writes it) and without it in OpenMetrics'.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let name = if kind == "counter" && self.format == Format::Prometheus {
            format!("{name}_total")
        } else {
            name.to_owned()
        };
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, "", value);
    }

    /// A family of labelled samples (`sample` is the sample's name: a counter's ends in
    /// `_total`).
    fn labelled(
        &mut self,
        (name, sample, kind): (&str, &str, &str),
        help: &str,
        rows: impl IntoIterator<Item = (String, u64)>,
    ) {
        self.family(name, kind, help);
        for (labels, value) in rows {
            self.sample(sample, &labels, value);
        }
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(&format!("{name}_total"), "", value);
    }
}

/// A label value escaped (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text of a scrape.
#[must_use]
pub fn render(snap: &Snapshot, format: Format) -> String {
    let mut o = Out {
        text: String::with_capacity(4096),
        format,
    };
    let hist = "http_server_request_duration_seconds";
    o.family(hist, "histogram", "Duration of HTTP server requests.");
    for (&key, h) in &snap.totals.series {
        let (m, p, status) = parts(key);
        let labels = format!(
            "http_request_method=\"{}\",http_response_status_code=\"{status}\",\
             network_protocol_version=\"{}\"",
            METHODS.get(m).unwrap_or(&"_OTHER"),
            PROTOCOLS.get(p).unwrap_or(&"unknown"),
        );
        let mut cumulative = 0;
        for (bound, c) in BUCKETS_US.iter().zip(&h.buckets) {
            cumulative += c;
            let le = format!("{labels},le=\"{}\"", seconds(*bound));
            o.sample(&format!("{hist}_bucket"), &le, cumulative);
        }
        o.sample(
            &format!("{hist}_bucket"),
            &format!("{labels},le=\"+Inf\""),
            h.count,
        );
        o.sample(&format!("{hist}_sum"), &labels, seconds(h.sum_us));
        o.sample(&format!("{hist}_count"), &labels, h.count);
    }
    o.gauge(
        "http_server_active_requests",
        "Number of active HTTP server requests.",
        snap.active,
    );
    o.counter(
        "ferrule_request_body_bytes",
        "Request body bytes received (as declared by Content-Length).",
        snap.totals.request_bytes,
    );
    o.counter(
        "ferrule_response_body_bytes",
        "Response body bytes sent.",
        snap.totals.response_bytes,
    );
    o.gauge(
        "ferrule_connections_open",
        "Client connections open now.",
        snap.open,
    );
    o.counter(
        "ferrule_connections_accepted",
        "Client connections accepted.",
        snap.totals.accepted,
    );
    o.gauge(
        "ferrule_app_threads_busy",
        "App threads running a request.",
        snap.busy,
    );
    o.gauge(
        "ferrule_app_threads_idle",
        "App threads waiting for a request.",
        snap.threads.saturating_sub(snap.busy),
    );
    o.gauge(
        "ferrule_requests_queued",
        "Requests waiting for an app thread.",
        snap.queued,
    );
    o.family(
        "ferrule_queue_wait_longest_seconds",
        "gauge",
        "The longest wait for an app thread in the last 10 to 20 seconds.",
    );
    o.sample(
        "ferrule_queue_wait_longest_seconds",
        "",
        seconds(snap.wait_max_us),
    );
    let listener = |b: &super::master::Backlog| format!("listener=\"{}\"", escape(&b.listener));
    let backlog = "ferrule_listen_backlog";
    o.labelled(
        (backlog, backlog, "gauge"),
        "Connections waiting in a listening socket's accept queue.",
        snap.backlog.iter().map(|b| (listener(b), b.queued)),
    );
    let limit = "ferrule_listen_backlog_limit";
    o.labelled(
        (limit, limit, "gauge"),
        "The accept queue's limit.",
        snap.backlog.iter().map(|b| (listener(b), b.limit)),
    );
    o.labelled(
        (
            "ferrule_worker_restarts",
            "ferrule_worker_restarts_total",
            "counter",
        ),
        "Workers replaced, by reason.",
        REASONS
            .iter()
            .zip(snap.restarts)
            .map(|(r, n)| (format!("reason=\"{r}\""), n)),
    );
    o.gauge(
        "ferrule_workers",
        "Live worker processes.",
        snap.workers.len() as u64,
    );
    let rss = "ferrule_worker_resident_memory_bytes";
    o.labelled(
        (rss, rss, "gauge"),
        "Resident memory of each worker.",
        snap.workers
            .iter()
            .filter_map(|(pid, rss)| Some((format!("pid=\"{pid}\""), (*rss)?))),
    );
    o.counter(
        "ferrule_metrics_series_dropped",
        "Requests not counted in the histogram: a worker's series table was full.",
        snap.totals.dropped,
    );
    if format == Format::OpenMetrics {
        o.text.push_str("# EOF\n");
    }
    o.text
}
