//! Replica picking: which model-server replica should serve a request, from the picker's
//! snapshot (queue, KV cache, LoRA adapters of every endpoint) and what this Envoy knows that the
//! snapshot cannot (its own in-flight requests, which prompt prefixes went where).
//!
//! The shared state is bounded by design: one in-flight map per pool (`InFlight`, at most
//! `in_flight::MAX_ENTRIES` endpoints), `prefix_table::SLOTS` prefix slots, one snapshot. A
//! request reaches it through the exchange's ports (`exchange::InFlightCounts`,
//! `PrefixAffinity`, `SnapshotSource`); the proxy-wasm host keeps it in Envoy's shared data under
//! a fixed set of keys (keys are never freed there), with a lease that makes one worker the
//! snapshot fetcher.

use serde::Deserialize;

mod in_flight;
mod lease;
mod local_snapshot;
mod prefix_table;
mod score;

pub use in_flight::InFlight;
pub use lease::{LEASE_KEY, Lease};
pub use local_snapshot::{
    LocalSnapshot, SNAPSHOT_KEY, Unavailable, VERSION_KEY, decode_version, encode_version,
    fresh_pool,
};
pub use prefix_table::{PrefixEntry, SLOTS as PREFIX_SLOTS};
pub use score::{Pick, PickRequest, destination, rank};

/// The `picking` configuration, read straight from JSON; `validate` checks it once at configure
/// time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Picking {
    /// Envoy cluster of the picker service.
    pub picker_cluster: String,
    /// `:authority` of snapshot requests.
    pub picker_authority: String,
    /// How often the snapshot is fetched (by one worker) and re-read (by every worker).
    pub refresh_ms: u64,
    /// A snapshot older than this is not used: requests fall back to Envoy's load balancing.
    pub stale_after_ms: u64,
    /// Fallback endpoints named after the first choice, for Envoy's retries.
    pub fallbacks: u32,
    /// How long a prompt prefix stays associated with the endpoint that served it.
    pub prefix_ttl_ms: u64,
    /// An endpoint with at least this many waiting requests is saturated; when every endpoint
    /// of a pool is, requests are shed with 429. Absent: never shed.
    pub max_waiting_per_endpoint: Option<u32>,
    pub weights: Weights,
}

impl Default for Picking {
    fn default() -> Self {
        Self {
            picker_cluster: "sluice_picker".to_owned(),
            picker_authority: "sluice-picker".to_owned(),
            refresh_ms: 100,
            stale_after_ms: 2000,
            fallbacks: 2,
            prefix_ttl_ms: 600_000,
            max_waiting_per_endpoint: None,
            weights: Weights::default(),
        }
    }
}

/// How much each signal counts in an endpoint's score. Read straight from the configuration
/// (`picking.weights`); validation only checks the values.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub queue: f64,
    pub kv_cache: f64,
    pub running: f64,
    pub in_flight: f64,
    pub prefix: f64,
    pub lora: f64,
}

impl Default for Weights {
    /// Queue and KV cache as the Gateway API Inference Extension weighs them; prefix affinity
    /// above both, since a cached prefix saves the most; the gateway's own in-flight count as
    /// much as the queue, because it is fresher than any scrape.
    ///
    /// Checked with `make bench`'s routing section (one run per variant, docs/routing-tuning.md):
    /// prefix 1.5 lets load differences scatter tenants (fewer cache hits, 2× the p90 time to
    /// first token at high load), prefix 5 keeps tenants on overloaded replicas (3× the p90), and
    /// in-flight 4 costs prefix hits without helping unshared prompts. These values did best of
    /// those tried on both workloads.
    fn default() -> Self {
        Self {
            queue: 2.0,
            kv_cache: 2.0,
            running: 1.0,
            in_flight: 2.0,
            prefix: 3.0,
            lora: 2.0,
        }
    }
}
