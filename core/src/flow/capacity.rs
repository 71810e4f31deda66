//! Saturation: how many requests a pool can serve at once without any of them queueing on a
//! GPU, from the picker's snapshot, or from configuration alone when there is no fresh one.

use sluice_wire::Snapshot;

use super::policy::FlowControl;
use crate::picking::{Unavailable, fresh_pool};

/// What the pool can take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Requests the pool serves at once (compared with the requests this Envoy admitted).
    pub slots: u32,
    /// A fresh snapshot lists no healthy replica: holding would only delay the 503.
    pub dead: bool,
}

/// `pool`'s capacity: `endpoint_capacity` for each healthy replica that has room (its scraped
/// waiting queue at most `max_waiting_per_endpoint`, its KV cache below `max_kv_cache_usage`)
/// in a snapshot younger than `stale_after_ms`. Without one, `endpoint_capacity` for each
/// replica the last snapshot named, or `fallback_endpoints` before any.
///
/// The gateway's own count of the requests it admitted is the correction the snapshot needs:
/// the scrape lags by up to an interval, while the admitted count changes with every request,
/// so saturation is "admitted ≥ slots" and the snapshot only decides which replicas count.
pub fn capacity(
    flow: &FlowControl,
    snapshot: Option<&Snapshot>,
    pool: &str,
    now_ms: u64,
    stale_after_ms: u64,
) -> Capacity {
    match fresh_pool(snapshot, pool, now_ms, stale_after_ms) {
        Ok(pool) => {
            let healthy = pool.endpoints.iter().filter(|e| e.healthy);
            let mut any_healthy = false;
            let mut roomy = 0u32;
            for endpoint in healthy {
                any_healthy = true;
                let room = endpoint.waiting <= flow.max_waiting_per_endpoint
                    && f64::from(endpoint.kv_cache_usage) < flow.max_kv_cache_usage;
                if room {
                    roomy = roomy.saturating_add(1);
                }
            }
            Capacity {
                slots: roomy.saturating_mul(flow.endpoint_capacity),
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
