//! Prometheus metrics of the node (`[metrics]` in the config).
//!
//! The `metrics` facade is used everywhere (the scheduler counts routes and fallbacks, the
//! pipeline stage latencies); [`install`] registers the Prometheus exporter with its HTTP
//! listener. Without it the macros are no-ops. Names and labels are listed in
//! `docs/CONFIG.md`.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::error::{NodeError, Result};

/// Microsecond buckets of the stage-latency histograms (10 us .. 100 s).
pub const LATENCY_BUCKETS_US: &[f64] = &[
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    25_000.0,
    50_000.0,
    100_000.0,
    250_000.0,
    500_000.0,
    1_000_000.0,
    2_500_000.0,
    5_000_000.0,
    10_000_000.0,
    100_000_000.0,
];

pub const HEIGHT: &str = "supervm_height";
pub const TPS: &str = "supervm_tps";
pub const BLOCKS: &str = "supervm_blocks_total";
pub const TXS: &str = "supervm_txs_total";
pub const STAGE_LATENCY: &str = "supervm_stage_latency_us";
pub const REEXECUTIONS: &str = "supervm_reexecutions_total";
pub const ABORTS: &str = "supervm_aborts_total";
pub const SEQUENTIAL_FALLBACKS: &str = "supervm_sequential_fallbacks_total";
pub const STOPPED_PROBES: &str = "supervm_stopped_probes_total";
pub const COMMITTED_BYTES: &str = "supervm_committed_bytes_total";
pub const BLOCKS_REJECTED: &str = "supervm_blocks_rejected_total";

/// Starts the Prometheus endpoint on `listen` (serves `GET /metrics`).
pub fn install(listen: &str) -> Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| NodeError::Metrics(format!("bad listen address `{listen}`: {e}")))?;
    // Bind first so an address in use is a clear error, not a background-thread log line.
    std::net::TcpListener::bind(addr)
        .map_err(|e| NodeError::Metrics(format!("cannot listen on {addr}: {e}")))?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(STAGE_LATENCY.into()), LATENCY_BUCKETS_US)
        .map_err(|e| NodeError::Metrics(e.to_string()))?
        .install()
        .map_err(|e| NodeError::Metrics(e.to_string()))?;
    describe();
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(HEIGHT, "Height of the last committed block");
    describe_gauge!(TPS, "Transactions per second of the last block, end to end");
    describe_counter!(BLOCKS, "Blocks committed");
    describe_counter!(TXS, "Transactions committed");
    describe_histogram!(
        STAGE_LATENCY,
        Unit::Microseconds,
        "Latency of each block-pipeline stage, in microseconds"
    );
    describe_counter!("supervm_route_total", "Batches per task type and route");
    describe_counter!("supervm_route_items_total", "Items per task type and route");
    describe_counter!(
        "supervm_gpu_fallbacks_total",
        "GPU batches that failed and were redone on the CPU"
    );
    describe_counter!(REEXECUTIONS, "Block-STM re-executions");
    describe_counter!(ABORTS, "Block-STM aborted incarnations");
    describe_counter!(
        SEQUENTIAL_FALLBACKS,
        "Blocks re-run sequentially after a broken invariant"
    );
    describe_counter!(
        STOPPED_PROBES,
        "Blocks run sequentially after their Block-STM probe was stopped, by reason (slow, conflicts)"
    );
    describe_counter!(
        COMMITTED_BYTES,
        Unit::Bytes,
        "Bytes of state written by commits"
    );
    describe_counter!(BLOCKS_REJECTED, "Blocks rejected as invalid or malformed");
}

/// Records one stage latency.
pub fn stage(stage: &'static str, micros: f64) {
    metrics::histogram!(STAGE_LATENCY, "stage" => stage).record(micros);
}
