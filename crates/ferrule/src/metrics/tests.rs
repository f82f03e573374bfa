use std::sync::atomic::Ordering;

use super::master::{Hist, Snapshot, Totals};
use super::render::{render, Format};
use super::*;

#[test]
fn bucket_bounds_are_inclusive() {
    assert_eq!(bucket(0), 0);
    assert_eq!(bucket(5_000), 0);
    assert_eq!(bucket(5_001), 1);
    assert_eq!(bucket(10_000_000), BUCKETS_US.len() - 1);
    assert_eq!(bucket(10_000_001), BUCKETS_US.len());
}

#[test]
fn key_round_trips() {
    let k = key(method_index(b"PATCH"), protocol_index(b"HTTP/2"), 503);
    assert_eq!(parts(k), (8, 3, 503));
    assert_eq!(
        parts(key(method_index(b"BREW"), protocol_index(b"-"), 0)),
        (9, 0, 0)
    );
}

fn zeroed_block() -> Box<WorkerBlock> {
    // SAFETY: every field of WorkerBlock is an atomic integer, for which zero is valid.
    unsafe { Box::new_zeroed().assume_init() }
}

#[test]
fn series_are_claimed_once_and_table_overflow_is_reported() {
    let b = zeroed_block();
    let a = b.series(7).map(std::ptr::from_ref);
    assert!(a.is_some());
    assert_eq!(b.series(7).map(std::ptr::from_ref), a);
    for k in 100..100 + SERIES as u64 - 1 {
        assert!(b.series(k).is_some());
    }
    assert!(b.series(99_999).is_none());
    let mut t = Totals::default();
    t.add(&b);
    assert_eq!(t.series.len(), SERIES);
    b.clear();
    assert_eq!(b.series[0].key.load(Ordering::Relaxed), 0);
}

#[test]
fn prometheus_text_has_cumulative_buckets_and_openmetrics_ends_with_eof() {
    let mut snap = Snapshot::default();
    let mut h = hist(3, 1_200_000);
    h.buckets[0] = 1;
    h.buckets[9] = 1;
    snap.totals.series.insert(key(0, 2, 200), h);
    snap.totals.accepted = 4;
    snap.restarts[0] = 2;
    let text = render(&snap, Format::Prometheus);
    let labels = r#"http_request_method="GET",http_response_status_code="200",network_protocol_version="1.1""#;
    assert!(text.contains(&format!(
        "http_server_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "http_server_request_duration_seconds_bucket{{{labels},le=\"1\"}} 2\n"
    )));
    assert!(text.contains(&format!(
        "http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n"
    )));
    assert!(text.contains(&format!(
        "http_server_request_duration_seconds_sum{{{labels}}} 1.2\n"
    )));
    assert!(text.contains(
        "# TYPE ferrule_connections_accepted_total counter\nferrule_connections_accepted_total 4\n"
    ));
    assert!(text.contains("ferrule_worker_restarts_total{reason=\"crash\"} 2\n"));
    assert!(!text.contains("# EOF"));
    let om = render(&snap, Format::OpenMetrics);
    assert!(om.contains(
        "# TYPE ferrule_connections_accepted counter\nferrule_connections_accepted_total 4\n"
    ));
    assert!(om.ends_with("# EOF\n"));
}

fn hist(count: u64, sum_us: u64) -> Hist {
    Hist {
        count,
        sum_us,
        ..Hist::default()
    }
}

#[test]
fn statsd_lines_are_deltas_with_gunicorns_names() {
    let mut last = Snapshot::default();
    last.totals.series.insert(key(0, 2, 200), hist(2, 2_000));
    let mut now = last.clone();
    now.totals.series.insert(key(0, 2, 200), hist(5, 8_000));
    now.totals.series.insert(key(2, 2, 404), hist(1, 0));
    now.workers = vec![(10, Some(4096)), (11, None)];
    let lines = serve::statsd_lines("app.", &last, &now).join("\n");
    assert!(lines.contains("app.gunicorn.requests:4|c"));
    assert!(lines.contains("app.gunicorn.request.duration:1.500|ms"));
    assert!(lines.contains("app.gunicorn.request.status.200:3|c"));
    assert!(lines.contains("app.gunicorn.request.status.404:1|c"));
    assert!(lines.contains("app.gunicorn.workers:2|g"));
    assert!(lines.contains("app.ferrule.worker.10.rss_bytes:4096|g"));
    assert_eq!(serve::normalize_prefix("app..."), "app.");
    assert_eq!(serve::normalize_prefix(""), "");
}
