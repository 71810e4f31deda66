//! Counters the filter exports. Envoy shows them as `wasmcustom.<name>` in `/stats` and
//! `/stats/prometheus`, summed over every worker's VM. The per-request metrics with labels
//! (requests, tokens, latencies) follow the table in `sluice_core::telemetry` (see `telemetry.rs`).
//!
//! Requests only bump a number in guest memory; the root context adds what gathered to Envoy's
//! counters on its tick. An `increment_metric` per request would cost a host call each, and
//! counters that reach Envoy a tick (at most 100 ms) later lose nothing an operator needs.

use std::cell::Cell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A counter that never fails the request that bumps it: if the host refused to define or
/// update it, the count is lost and the request goes on.
#[derive(Debug)]
pub struct Counter {
    id: Option<u32>,
    /// Increments not yet handed to Envoy.
    pending: Cell<u64>,
}

impl Counter {
    pub(super) fn define(name: &str) -> Self {
        Self {
            id: hostcalls::define_metric(MetricType::Counter, name).ok(),
            pending: Cell::new(0),
        }
    }

    pub fn increment(&self) {
        self.add(1);
    }

    pub fn add(&self, by: u64) {
        self.pending.set(self.pending.get().saturating_add(by));
    }

    pub(super) fn flush(&self) {
        let pending = self.pending.replace(0);
        if let (Some(id), true) = (self.id, pending > 0) {
            let _ = hostcalls::increment_metric(id, i64::try_from(pending).unwrap_or(i64::MAX));
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    /// Client-sent copies of internal routing headers that were removed: a client trying to
    /// steer routing, or a misconfigured proxy in front of the gateway.
    pub internal_headers_removed: Counter,
    /// Requests the filter answered with an error itself.
    pub rejected: Counter,
    /// Requests failed closed (500 in their API's format, or reset) because a host call that a
    /// policy step needed failed: removing a header, setting the credential, reading what a
    /// decision depends on.
    pub failed_closed: Counter,
    /// Requests sent to the replica the filter picked.
    pub picked: Counter,
    /// Requests left to Envoy's load balancing because no fresh snapshot was at hand.
    pub pick_fallbacks: Counter,
    /// Requests shed because every replica of their pool was saturated.
    pub shed: Counter,
    /// Snapshot fetches from the picker that failed.
    pub picker_fetch_failures: Counter,
    /// Flow control: requests held because their pool was saturated, released, answered
    /// after waiting their band's time to live, turned away from a full band, and gone while
    /// held (their client left).
    pub flow_held: Counter,
    pub chain_rerouted: Counter,
    pub flow_released: Counter,
    pub flow_expired: Counter,
    pub flow_overflow: Counter,
    pub flow_abandoned: Counter,
    /// Requests held and their wait times, per band and fairness id.
    pub flow: super::flow_metrics::FlowMetrics,
    /// Requests by API, status class and model; token usage and latencies per model.
    pub telemetry: super::telemetry::Telemetry,
    /// Admissions, refusals by reason, remaining budgets per tenant, cluster sync, spend.
    pub quota: super::quota::QuotaMetrics,
    /// The run-time tenancy's snapshot: failed fetches, the version in force.
    pub tenancy: super::tenancy_sync::TenancyMetrics,
    /// Guardrail hits per rule, action and direction.
    pub guardrails: super::guardrails::GuardrailMetrics,
    /// Upstream attempts per target and outcome (the upstream role counts them).
    pub targets: super::target_metrics::TargetMetrics,
}

impl Metrics {
    pub fn define() -> Self {
        Self {
            internal_headers_removed: Counter::define("sluice_internal_headers_removed_total"),
            rejected: Counter::define("sluice_requests_rejected_total"),
            failed_closed: Counter::define("sluice_requests_failed_closed_total"),
            picked: Counter::define("sluice_picks_total"),
            pick_fallbacks: Counter::define("sluice_pick_fallbacks_total"),
            shed: Counter::define("sluice_requests_shed_total"),
            picker_fetch_failures: Counter::define("sluice_picker_fetch_failures_total"),
            flow_held: Counter::define("sluice_flow_held_total"),
            chain_rerouted: Counter::define("sluice_chain_rerouted_total"),
            flow_released: Counter::define("sluice_flow_released_total"),
            flow_expired: Counter::define("sluice_flow_expired_total"),
            flow_overflow: Counter::define("sluice_flow_overflow_total"),
            flow_abandoned: Counter::define("sluice_flow_abandoned_total"),
            flow: super::flow_metrics::FlowMetrics::default(),
            telemetry: super::telemetry::Telemetry::default(),
            quota: super::quota::QuotaMetrics::define(),
            tenancy: super::tenancy_sync::TenancyMetrics::define(),
            guardrails: super::guardrails::GuardrailMetrics::define(),
            targets: super::target_metrics::TargetMetrics::default(),
        }
    }

    /// Hands every pending increment to Envoy; called on the root's tick.
    pub fn flush(&self) {
        for counter in [
            &self.internal_headers_removed,
            &self.rejected,
            &self.failed_closed,
            &self.picked,
            &self.pick_fallbacks,
            &self.shed,
            &self.picker_fetch_failures,
            &self.flow_held,
            &self.chain_rerouted,
            &self.flow_released,
            &self.flow_expired,
            &self.flow_overflow,
            &self.flow_abandoned,
        ] {
            counter.flush();
        }
        self.flow.flush();
        self.telemetry.flush();
        self.quota.flush();
        self.tenancy.flush();
        self.guardrails.flush();
        self.targets.flush();
    }
}
