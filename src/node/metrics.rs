//! node.ini `[metrics] listen`: a Prometheus text endpoint, `GET /metrics`, on a loopback
//! address (off by default). Counters are kept where things happen (`metrics::counter!` —
//! no-ops in a process that serves no metrics); gauges are read from the node at each scrape.
//! One recorder per process: the daemon is one node.

use super::Shared;
use crate::lock::Locked;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds an API request took: the histogram's buckets.
const REQUEST_SECONDS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The process's recorder, installed on first use (`None` if another one is).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("cod_api_request_duration_seconds".into()),
                    &REQUEST_SECONDS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "cod_records_applied_total",
        "Records applied to the ledger."
    );
    describe_counter!(
        "cod_api_requests_total",
        "Requests answered on the public port, by route and status."
    );
    describe_histogram!(
        "cod_api_request_duration_seconds",
        "Time to answer a request on the public port, by route."
    );
    describe_counter!("cod_api_body_bytes_total", "Request body bytes read.");
    describe_counter!("cod_dht_lookups_total", "Mainline DHT lookups made.");
    describe_counter!(
        "cod_seeded_bytes_total",
        "Bytes served to BitTorrent peers (packages, configs, archives)."
    );
    describe_counter!(
        "cod_sync_rounds_total",
        "Anti-entropy rounds with a peer, by outcome."
    );
    describe_gauge!("cod_peers", "Peers in the table, by state (up, trying).");
    describe_gauge!(
        "cod_clock_offset_seconds",
        "The median of the confirmed peers' clocks less this node's (positive: this one is behind)."
    );
    describe_gauge!(
        "cod_records",
        "Records held, by state (applied, pending, awaiting_key)."
    );
    describe_gauge!("cod_accounts", "Accounts with an applied record.");
    describe_gauge!("cod_forks", "Slots this node holds double-spend proofs of.");
    describe_gauge!(
        "cod_sync_lag_records",
        "Records the best confirmed peer applied beyond this node."
    );
    describe_gauge!(
        "cod_signature_requests",
        "Signature requests held, by state."
    );
    describe_gauge!(
        "cod_last_distributed_period",
        "The period the last regular distribution closed."
    );
    describe_gauge!("cod_uptime_seconds", "Seconds since the daemon started.");
    describe_counter!(
        "cod_records_checked_total",
        "Records received from peers and clients and checked (form, signatures, rules), sync's log replay among them; imports are not counted."
    );
    describe_counter!(
        "cod_records_refused_total",
        "Records checked and refused by the rules."
    );
    describe_counter!(
        "cod_api_response_bytes_total",
        "Response body bytes sent on the public port (those of a known length)."
    );
    // Counters without labels exist from the start, at 0: a dashboard's rate() has a series
    // before the first event.
    for name in [
        "cod_records_applied_total",
        "cod_records_checked_total",
        "cod_records_refused_total",
        "cod_api_body_bytes_total",
        "cod_api_response_bytes_total",
        "cod_dht_lookups_total",
        "cod_seeded_bytes_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// Serves `GET /metrics` on `listener` until the node stops.
pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    if handle().is_none() {
        shared.log(
            "warn",
            "metrics: another recorder is installed in this process; /metrics serves nothing",
        );
    }
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(shared.clone());
    let stop = shared.shutdown.clone();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        shared.log("warn", format!("metrics: the endpoint stopped: {e}"));
    }
    shared.shutdown.cancelled().await;
}

async fn scrape(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let s = shared.clone();
    // (The chain's summary reads the store: off the async threads.)
    let _ = tokio::task::spawn_blocking(move || gauges(&s)).await;
    let text = handle().map(PrometheusHandle::render).unwrap_or_default();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// Sets the gauges from the node as it is now.
fn gauges(shared: &Shared) {
    use metrics::gauge;
    let (peers, clock) = {
        let table = shared.peers.locked();
        (table.all(), table.clock_offset())
    };
    if let Some(c) = clock {
        gauge!("cod_clock_offset_seconds").set(c.median as f64);
    }
    let up = peers.iter().filter(|p| p.confirmed).count();
    gauge!("cod_peers", "state" => "up").set(up as f64);
    gauge!("cod_peers", "state" => "trying").set((peers.len() - up) as f64);
    let l = shared.view();
    let c = crate::views::chain_summary(&l, shared.now());
    gauge!("cod_records", "state" => "applied").set(c.applied as f64);
    gauge!("cod_records", "state" => "pending").set(c.pending as f64);
    gauge!("cod_records", "state" => "awaiting_key").set(c.awaiting_key as f64);
    gauge!("cod_accounts").set(c.accounts as f64);
    gauge!("cod_forks").set(c.forks as f64);
    let best = peers
        .iter()
        .filter(|p| p.confirmed)
        .filter_map(|p| p.applied)
        .max();
    gauge!("cod_sync_lag_records").set(best.map_or(0, |b| b.saturating_sub(c.applied)) as f64);
    if let Some(p) = l.state().last_period {
        gauge!("cod_last_distributed_period").set(p as f64);
    }
    drop(l);
    let mut by_state = std::collections::BTreeMap::<&str, usize>::new();
    for state in [
        "pending",
        "approved",
        "rejected",
        "final",
        "expired",
        "superseded",
    ] {
        by_state.insert(state, 0);
    }
    for r in shared.requests.locked().iter() {
        *by_state.entry(r.state.name()).or_default() += 1;
    }
    for (state, n) in by_state {
        gauge!("cod_signature_requests", "state" => state).set(n as f64);
    }
    gauge!("cod_uptime_seconds").set(shared.now().saturating_sub(shared.started) as f64);
}

/// Counts a request on the public port: its route (the pattern, not the path: ids would
/// make a series each), status and time.
pub async fn track(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    if let Some(n) = axum::body::HttpBody::size_hint(resp.body()).exact() {
        metrics::counter!("cod_api_response_bytes_total").increment(n);
    }
    let status = resp.status().as_u16().to_string();
    metrics::counter!("cod_api_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("cod_api_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
