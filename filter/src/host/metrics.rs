//! Counters the filter exports. Envoy shows them as `wasmcustom.<name>` in `/stats` and
//! `/stats/prometheus`, summed over every worker's VM.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A counter that never fails the request that bumps it: if the host refused to define or
/// update it, the count is lost and the request goes on.
#[derive(Debug, Clone, Copy)]
pub struct Counter(Option<u32>);

impl Counter {
    fn define(name: &str) -> Self {
        Self(hostcalls::define_metric(MetricType::Counter, name).ok())
    }

    pub fn increment(self) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    /// Requests the filter saw.
    pub requests: Counter,
    /// Client-sent copies of internal routing headers that were removed: a client trying to
    /// steer routing, or a misconfigured proxy in front of the gateway.
    pub internal_headers_removed: Counter,
    /// Requests the filter answered with an error itself.
    pub rejected: Counter,
    /// Requests sent to the replica the filter picked.
    pub picked: Counter,
    /// Requests left to Envoy's load balancing because no fresh snapshot was at hand.
    pub pick_fallbacks: Counter,
    /// Requests shed because every replica of their pool was saturated.
    pub shed: Counter,
    /// Snapshot fetches from the picker that failed.
    pub picker_fetch_failures: Counter,
}

impl Metrics {
    pub fn define() -> Self {
        Self {
            requests: Counter::define("sluice_requests_total"),
            internal_headers_removed: Counter::define("sluice_internal_headers_removed_total"),
            rejected: Counter::define("sluice_requests_rejected_total"),
            picked: Counter::define("sluice_picks_total"),
            pick_fallbacks: Counter::define("sluice_pick_fallbacks_total"),
            shed: Counter::define("sluice_requests_shed_total"),
            picker_fetch_failures: Counter::define("sluice_picker_fetch_failures_total"),
        }
    }
}
