//! Saturation: how many requests a pool can serve at once without any of them queueing on a
//! GPU, from the picker's snapshot corrected by this Envoy's own in-flight counts, or from
//! configuration alone when there is no fresh snapshot.

use sluice_wire::{Endpoint, Snapshot};

use super::policy::FlowControl;
use crate::picking::{InFlight, Unavailable, fresh_pool};

/// What the pool can take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Requests this Envoy may have admitted to the pool at once.
    pub slots: u32,
    /// A fresh snapshot lists no healthy replica: holding would only delay the 503.
    pub dead: bool,
}

/// `pool`'s capacity for this Envoy.
///
/// With a snapshot younger than `stale_after_ms`, each healthy replica takes
/// `endpoint_capacity + max_waiting_per_endpoint` requests, less what others are making it
/// serve: its scraped running and waiting requests beyond this Envoy's own in flight to it
/// (`in_flight`), i.e. other Envoys' requests. The scrape lags by up to an interval while the
/// in-flight counts do not, so this Envoy's own requests are counted from the latter: a replica's
/// transient queue of requests just sent (waiting for the next step) is not taken for
/// saturation. A replica whose KV cache is at least `max_kv_cache_usage` full takes no more than
/// it has.
///
/// Without a fresh snapshot, `endpoint_capacity` for each replica the last snapshot named (or
/// `fallback_endpoints` before any).
pub fn capacity(
    flow: &FlowControl,
    snapshot: Option<&Snapshot>,
    pool: &str,
    now_ms: u64,
    stale_after_ms: u64,
    in_flight: &InFlight,
) -> Capacity {
    match fresh_pool(snapshot, pool, now_ms, stale_after_ms) {
        Ok(pool) => {
            let mut any_healthy = false;
            let mut slots = 0u32;
            for endpoint in pool.endpoints.iter().filter(|e| e.healthy) {
                any_healthy = true;
                slots = slots.saturating_add(endpoint_room(
                    flow,
                    endpoint,
                    in_flight.get(&endpoint.address),
                ));
            }
            Capacity {
                slots,
                dead: !any_healthy,
            }
        }
        Err(Unavailable::Stale | Unavailable::NoSnapshot | Unavailable::UnknownPool) => {
            let known = snapshot
                .and_then(|s| s.pool(pool))
                .map(|p| p.endpoints.iter().filter(|e| e.healthy).count())
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(flow.fallback_endpoints);
            Capacity {
                slots: known.saturating_mul(flow.endpoint_capacity),
                dead: false,
            }
        }
    }
}

/// The requests this Envoy may have at `endpoint`, which has `ours` of them in flight.
pub fn endpoint_room(flow: &FlowControl, endpoint: &Endpoint, ours: u32) -> u32 {
    let full = flow
        .endpoint_capacity
        .saturating_add(flow.max_waiting_per_endpoint);
    if f64::from(endpoint.kv_cache_usage) >= flow.max_kv_cache_usage {
        // No room for more: what it has, at most its share.
        return ours.min(full);
    }
    let serving = endpoint.running.saturating_add(endpoint.waiting);
    let others = serving.saturating_sub(ours);
    full.saturating_sub(others)
}
