//! The cluster quota benchmark: several Envoys share one tenant's requests-per-minute limit
//! through the picker and Redis (docs/quotas.md); each is offered paced requests at once, and
//! what the cluster admitted past the limit is set beside the bound docs/quotas.md derives,
//! `(k − 1) · r · (2·S + RTT)`. The end-to-end test (`tests/tests/quota_cluster.rs`) checks how
//! sharing behaves; how far it over-admits under load is measured here.
//!
//! The settings, the bound and the report are plain code; the processes and the load need the
//! `orchestrator` feature.

pub mod report;
#[cfg(feature = "orchestrator")]
pub mod run;

use crate::bodies::MODEL;

/// The shared limit: requests per minute of every tenant.
pub const LIMIT: u64 = 100;
/// How often each Envoy syncs with the picker (`quotas.cluster.sync_ms`).
pub const SYNC_MS: u64 = 100;
pub const STALE_AFTER_MS: u64 = 500;
/// Each instance is offered one request every `PACE_MS` (an open loop: 50 per second each).
pub const PACE_MS: u64 = 20;
/// Requests offered to each instance: together well past the limit.
pub const PER_ENVOY: u64 = 80;
/// Allowed for a sync's round trip (Envoy → picker → Redis and back) and a late tick, on top of
/// the two sync intervals of the bound.
pub const RTT_ALLOWANCE_MS: u64 = 50;
/// Cluster sizes measured, and runs of each (`--quick`: one).
pub const INSTANCES: [(usize, usize); 2] = [(3, 5), (2, 3)];

/// The most the cluster may admit past the limit with `instances` Envoys: each instance's view
/// of the others lags by at most `2·S + RTT`, in which each other instance admits at most one
/// request per `PACE_MS`.
pub fn bound(instances: usize) -> u64 {
    let lag_ms = 2 * SYNC_MS + RTT_ALLOWANCE_MS;
    (instances as u64).saturating_sub(1) * lag_ms.div_ceil(PACE_MS)
}

/// The filter configuration of every Envoy: the tenant from the `x-tenant` header, one limit
/// for every tenant, shared through the picker; closed, so that a stale view would show as 503s.
pub fn filter_configuration() -> String {
    let config = serde_json::json!({
        "models": { MODEL: { "pool": "llama_8b" } },
        "quotas": {
            "identity": { "source": "header", "tenant_header": "x-tenant" },
            "default_tenant": { "limits": { "requests_per_minute": LIMIT } },
            "fail_policy": "closed",
            "cluster": { "sync_ms": SYNC_MS, "stale_after_ms": STALE_AFTER_MS }
        }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_what_the_others_admit_in_two_syncs_and_a_round_trip() {
        // 250 ms at one request per 20 ms: 13 from each other instance.
        assert_eq!(bound(1), 0);
        assert_eq!(bound(2), 13);
        assert_eq!(bound(3), 26);
    }

    #[test]
    fn the_configuration_is_one_the_filter_takes() {
        let text = filter_configuration();
        sluice_core::config::Config::from_json(text.as_bytes()).expect("valid");
        assert!(text.contains("\"sync_ms\": 100"), "{text}");
    }
}
