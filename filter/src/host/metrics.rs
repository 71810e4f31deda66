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
}

impl Metrics {
    pub fn define() -> Self {
        Self {
            requests: Counter::define("sluice_requests_total"),
            internal_headers_removed: Counter::define("sluice_internal_headers_removed_total"),
            rejected: Counter::define("sluice_requests_rejected_total"),
        }
    }
}
