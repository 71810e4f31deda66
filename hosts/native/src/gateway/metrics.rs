//! The gateway's metrics as the module's own labelled Envoy metrics: the same metric names and
//! label names as the proxy-wasm build (`sluice_core::telemetry::table` for the request
//! metrics; the Wasm host's names for the rest), so a dashboard differs only by Envoy's prefix
//! (`dynamicmodulescustom.` here, `wasmcustom.` there) and not at all in Prometheus, where the
//! Wasm build's labels come from `stats_tags` rules and these are real labels.
//!
//! Each metric is defined once with every label name it can have. Where the Wasm build leaves
//! an attribute out of a series' name (no error, no response model), the label's value here is
//! empty, which Prometheus treats as the label being absent.
//!
//! The exchange reports through `TelemetrySink` while a phase borrows the stream, so a
//! `Recorder` gathers what one phase reported and `flush` hands it to Envoy right after. Label
//! values are bounded per configuration as in the Wasm build: `MAX_MODEL_LABELS` models (then
//! `other`), `MAX_TENANT_LABELS` tenants on the remaining-budget gauges (later ones are not
//! shown), rule ids from the configuration, bands from the configuration and
//! `MAX_FAIRNESS_LABELS` fairness ids (then `other`) on the flow-control gauge and histogram.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use sluice_core::exchange::{Event, TelemetrySink};
use sluice_core::guardrails::{Direction, Guardrails, Hits};
use sluice_core::quota::Standing;
use sluice_core::telemetry::labels::model_label;
use sluice_core::telemetry::table::LabelValues;
use sluice_core::telemetry::{
    ApiLabel, Instrument, METRICS, Metric, Observation, StatusClass, label_value,
};

use crate::host_api::{ConfigContext, ConfigInit, CounterId, GaugeId, HistogramId, Stream};
use crate::state::lock;

const MAX_MODEL_LABELS: usize = 64;
const MAX_TENANT_LABELS: usize = 256;
/// Fairness ids with their own flow-control series; later ones share `other`.
const MAX_FAIRNESS_LABELS: usize = 64;

/// Quota refusal reasons (`quota::Reason::label`, `unauthenticated`, and `model_not_allowed`
/// for a model outside the run-time tenancy's allowed ones).
const REJECT_REASONS: [&str; 7] = [
    "requests",
    "tokens",
    "concurrency",
    "budget",
    "unknown",
    "unauthenticated",
    "model_not_allowed",
];

/// Every metric of one configuration, defined in `config_new`.
pub struct Metrics {
    pub internal_headers_removed: CounterId,
    pub rejected: CounterId,
    pub failed_closed: CounterId,
    pub picked: CounterId,
    pub pick_fallbacks: CounterId,
    pub shed: CounterId,
    pub picker_fetch_failures: CounterId,
    pub quota_admitted: CounterId,
    pub quota_uncounted: CounterId,
    pub quota_rejected: CounterId,
    pub quota_sync_failures: CounterId,
    pub quota_write_failures: CounterId,
    pub quota_cluster_synced: GaugeId,
    /// Tenancy snapshot fetches that failed or were refused (the last one stays in force).
    pub tenancy_fetch_failures: CounterId,
    /// The version of the tenancy snapshot in force.
    pub tenancy_version: GaugeId,
    /// Spend rows that went to their slot's overflow row.
    pub spend_overflow: CounterId,
    pub quota_shared_slots: GaugeId,
    pub quota_remaining_requests: GaugeId,
    pub quota_remaining_tokens: GaugeId,
    pub guardrail_hits: CounterId,
    pub guardrail_block_failures: CounterId,
    pub flow_held: CounterId,
    pub chain_rerouted: CounterId,
    pub flow_released: CounterId,
    pub flow_expired: CounterId,
    pub flow_overflow: CounterId,
    pub flow_abandoned: CounterId,
    /// Requests held now, per band and fairness id.
    pub flow_waiting: GaugeId,
    /// How long held requests waited (released, expired or gone), per band and fairness id.
    pub flow_wait_time: HistogramId,
    /// The request metrics of `telemetry::METRICS`, in its order.
    table: Vec<(Metric, TableId)>,
    models: Mutex<HashSet<String>>,
    tenants: Mutex<HashSet<String>>,
    fairness: Mutex<HashSet<String>>,
    /// The `flow_waiting` gauge's values: every held request counted in when it is held and
    /// out when it leaves the queue (one entry per band and fairness label: bounded).
    waiting: Mutex<HashMap<(String, String), u64>>,
}

#[derive(Clone, Copy)]
enum TableId {
    Counter(CounterId),
    Histogram(HistogramId),
}

impl Metrics {
    pub fn define(init: &mut dyn ConfigInit) -> Result<Self, String> {
        let mut counter = |name: &str, labels: &[&str]| {
            init.define_counter(name, labels)
                .map_err(|error| format!("cannot define metric {name}: {error:?}"))
        };
        let internal_headers_removed = counter("sluice_internal_headers_removed_total", &[])?;
        let rejected = counter("sluice_requests_rejected_total", &[])?;
        let failed_closed = counter("sluice_requests_failed_closed_total", &[])?;
        let picked = counter("sluice_picks_total", &[])?;
        let pick_fallbacks = counter("sluice_pick_fallbacks_total", &[])?;
        let shed = counter("sluice_requests_shed_total", &[])?;
        let picker_fetch_failures = counter("sluice_picker_fetch_failures_total", &[])?;
        let quota_admitted = counter("sluice_quota_admitted_total", &[])?;
        let quota_uncounted = counter("sluice_quota_uncounted_total", &[])?;
        let quota_rejected = counter("sluice_quota_rejected_total", &["reason"])?;
        let quota_sync_failures = counter("sluice_quota_sync_failures_total", &[])?;
        let quota_write_failures = counter("sluice_quota_write_failures_total", &[])?;
        let tenancy_fetch_failures = counter("sluice_tenancy_fetch_failures_total", &[])?;
        let spend_overflow = counter("sluice_spend_overflow_total", &[])?;
        let guardrail_hits = counter(
            "sluice_guardrail_hits_total",
            &["guardrail_rule", "guardrail_action", "guardrail_direction"],
        )?;
        let guardrail_block_failures = counter("sluice_guardrail_block_failures_total", &[])?;
        let flow_held = counter("sluice_flow_held_total", &[])?;
        let chain_rerouted = counter("sluice_chain_rerouted_total", &[])?;
        let flow_released = counter("sluice_flow_released_total", &[])?;
        let flow_expired = counter("sluice_flow_expired_total", &[])?;
        let flow_overflow = counter("sluice_flow_overflow_total", &[])?;
        let flow_abandoned = counter("sluice_flow_abandoned_total", &[])?;
        let mut gauge = |name: &str, labels: &[&str]| {
            init.define_gauge(name, labels)
                .map_err(|error| format!("cannot define metric {name}: {error:?}"))
        };
        let quota_cluster_synced = gauge("sluice_quota_cluster_synced", &[])?;
        let quota_shared_slots = gauge("sluice_quota_shared_slots", &[])?;
        let tenancy_version = gauge("sluice_tenancy_version", &[])?;
        let quota_remaining_requests = gauge("sluice_quota_remaining_requests", &["tenant"])?;
        let quota_remaining_tokens = gauge("sluice_quota_remaining_tokens", &["tenant"])?;
        let flow_waiting = gauge("sluice_flow_waiting", &["band", "fairness_id"])?;
        let flow_wait_time = init
            .define_histogram(
                "sluice_flow_wait_time_microseconds",
                &["band", "fairness_id"],
            )
            .map_err(|error| {
                format!("cannot define metric sluice_flow_wait_time_microseconds: {error:?}")
            })?;
        let mut table = Vec::new();
        for spec in METRICS {
            let labels: Vec<&str> = spec.attributes.iter().map(|a| a.tag()).collect();
            let name = spec.envoy_name;
            let id = match spec.instrument {
                Instrument::Counter => init.define_counter(name, &labels).map(TableId::Counter),
                Instrument::Histogram => {
                    init.define_histogram(name, &labels).map(TableId::Histogram)
                }
            }
            .map_err(|error| format!("cannot define metric {name}: {error:?}"))?;
            table.push((spec.metric, id));
        }
        Ok(Self {
            internal_headers_removed,
            rejected,
            failed_closed,
            picked,
            pick_fallbacks,
            shed,
            picker_fetch_failures,
            quota_admitted,
            quota_uncounted,
            quota_rejected,
            quota_sync_failures,
            quota_write_failures,
            quota_cluster_synced,
            tenancy_fetch_failures,
            tenancy_version,
            spend_overflow,
            quota_shared_slots,
            quota_remaining_requests,
            quota_remaining_tokens,
            guardrail_hits,
            guardrail_block_failures,
            flow_held,
            chain_rerouted,
            flow_released,
            flow_expired,
            flow_overflow,
            flow_abandoned,
            flow_waiting,
            flow_wait_time,
            table,
            models: Mutex::new(HashSet::new()),
            tenants: Mutex::new(HashSet::new()),
            fairness: Mutex::new(HashSet::new()),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// `model` as a label: itself (made label-safe) while fewer than `MAX_MODEL_LABELS`
    /// models were seen, else `other`.
    fn model(&self, model: &str) -> String {
        let label = model_label(model);
        let mut models = lock(&self.models);
        if models.contains(&label) {
            return label;
        }
        if models.len() >= MAX_MODEL_LABELS {
            return "other".to_owned();
        }
        models.insert(label.clone());
        label
    }

    /// Whether `tenant` may have remaining-budget gauges.
    fn tenant_shown(&self, tenant: &str) -> bool {
        let mut tenants = lock(&self.tenants);
        if tenants.contains(tenant) {
            return true;
        }
        if tenants.len() >= MAX_TENANT_LABELS {
            return false;
        }
        tenants.insert(tenant.to_owned())
    }

    /// `fairness` as a label: itself (made label-safe) while fewer than `MAX_FAIRNESS_LABELS`
    /// ids were seen, else `other`.
    fn fairness(&self, fairness: &str) -> String {
        let label = model_label(fairness);
        let mut seen = lock(&self.fairness);
        if seen.contains(&label) {
            return label;
        }
        if seen.len() >= MAX_FAIRNESS_LABELS {
            return "other".to_owned();
        }
        seen.insert(label.clone());
        label
    }

    /// Moves the waiting count of (`band`, `fairness`) by one; returns the new count.
    fn move_waiting(&self, band: &str, fairness: &str, up: bool) -> u64 {
        let mut waiting = lock(&self.waiting);
        let count = waiting
            .entry((band.to_owned(), fairness.to_owned()))
            .or_default();
        *count = if up {
            count.saturating_add(1)
        } else {
            count.saturating_sub(1)
        };
        *count
    }

    fn table_id(&self, metric: Metric) -> Option<TableId> {
        self.table
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, id)| *id)
    }

    /// Counts on a configuration-level counter (main thread).
    pub fn count_in_config(&self, context: &mut dyn ConfigContext, id: CounterId) {
        context.increment_counter(id, &[], 1);
    }
}

/// One metric update, waiting for the stream.
enum Update {
    Count(CounterId, Vec<String>, u64),
    Gauge(GaugeId, Vec<String>, u64),
    Histogram(HistogramId, Vec<String>, u64),
}

/// What one phase reported, until `flush` hands it to Envoy on the stream.
pub struct Recorder<'m> {
    metrics: &'m Metrics,
    updates: RefCell<Vec<Update>>,
}

impl<'m> Recorder<'m> {
    pub fn new(metrics: &'m Metrics) -> Self {
        Self {
            metrics,
            updates: RefCell::new(Vec::new()),
        }
    }

    fn push(&self, update: Update) {
        if let Ok(mut updates) = self.updates.try_borrow_mut() {
            updates.push(update);
        }
    }

    fn count_plain(&self, id: CounterId) {
        self.push(Update::Count(id, Vec::new(), 1));
    }

    fn table(&self, metric: Metric, values: &LabelValues<'_>, value: Option<u64>) {
        let (Some(value), Some(id)) = (value, self.metrics.table_id(metric)) else {
            return;
        };
        let labels: Vec<String> = metric
            .spec()
            .attributes
            .iter()
            .map(|a| label_value(*a, values).map(Into::into).unwrap_or_default())
            .collect();
        match id {
            TableId::Counter(id) if value > 0 => self.push(Update::Count(id, labels, value)),
            TableId::Counter(_) => {}
            TableId::Histogram(id) => self.push(Update::Histogram(id, labels, value)),
        }
    }

    /// Hands every update to Envoy; a refused one is lost, not the request.
    pub fn flush(&self, stream: &mut dyn Stream) {
        let Ok(mut updates) = self.updates.try_borrow_mut() else {
            return;
        };
        for update in updates.drain(..) {
            match update {
                Update::Count(id, labels, by) => {
                    stream.increment_counter(id, &as_strs(&labels), by);
                }
                Update::Gauge(id, labels, value) => {
                    stream.set_gauge(id, &as_strs(&labels), value);
                }
                Update::Histogram(id, labels, value) => {
                    stream.record_histogram(id, &as_strs(&labels), value);
                }
            }
        }
    }
}

impl Recorder<'_> {
    /// Hands the counters and gauges to Envoy from a configuration callback (main thread),
    /// where no histogram can be recorded; a refused update is lost.
    pub fn flush_config(&self, context: &mut dyn ConfigContext) {
        let Ok(mut updates) = self.updates.try_borrow_mut() else {
            return;
        };
        for update in updates.drain(..) {
            match update {
                Update::Count(id, labels, by) => {
                    context.increment_counter(id, &as_strs(&labels), by);
                }
                Update::Gauge(id, labels, value) => {
                    context.set_gauge(id, &as_strs(&labels), value);
                }
                Update::Histogram(..) => {}
            }
        }
    }
}

fn as_strs(labels: &[String]) -> Vec<&str> {
    labels.iter().map(String::as_str).collect()
}

impl TelemetrySink for Recorder<'_> {
    fn count(&self, event: Event) {
        let m = self.metrics;
        let id = match event {
            Event::InternalHeaderRemoved => m.internal_headers_removed,
            Event::Rejected => m.rejected,
            Event::FailedClosed => m.failed_closed,
            Event::Picked => m.picked,
            Event::PickFallback => m.pick_fallbacks,
            Event::Shed => m.shed,
            Event::QuotaAdmitted => m.quota_admitted,
            Event::QuotaUncounted => m.quota_uncounted,
            Event::QuotaWriteFailure => m.quota_write_failures,
            Event::SpendOverflow => m.spend_overflow,
            Event::GuardrailBlockFailure => m.guardrail_block_failures,
            Event::FlowHeld => m.flow_held,
            Event::ChainRerouted => m.chain_rerouted,
            Event::FlowReleased => m.flow_released,
            Event::FlowExpired => m.flow_expired,
            Event::FlowOverflow => m.flow_overflow,
            Event::FlowAbandoned => m.flow_abandoned,
            Event::QuotaRejected(reason) => {
                if REJECT_REASONS.contains(&reason) {
                    self.push(Update::Count(m.quota_rejected, vec![reason.to_owned()], 1));
                }
                return;
            }
        };
        self.count_plain(id);
    }

    /// Called once for each request held (with `fairness`'s count in its pool, which is not
    /// the process's over every pool): the gauge counts it in instead, and `flow_waited`, called
    /// once when it leaves the queue, counts it out.
    fn flow_held(&self, band: &str, fairness: &str) {
        let label = self.metrics.fairness(fairness);
        let now = self.metrics.move_waiting(band, &label, true);
        let labels = vec![band.to_owned(), label];
        self.push(Update::Gauge(self.metrics.flow_waiting, labels, now));
    }

    fn flow_waited(&self, band: &str, fairness: &str, waited_us: u64) {
        let label = self.metrics.fairness(fairness);
        let now = self.metrics.move_waiting(band, &label, false);
        let labels = vec![band.to_owned(), label];
        self.push(Update::Gauge(
            self.metrics.flow_waiting,
            labels.clone(),
            now,
        ));
        self.push(Update::Histogram(
            self.metrics.flow_wait_time,
            labels,
            waited_us,
        ));
    }

    /// Only what is limited gets a gauge, as in the Wasm build.
    fn quota_standing(&self, tenant: &str, standing: &Standing) {
        let requests = standing.requests.map(|r| r.remaining);
        let tokens = standing.tokens.map(|r| r.remaining);
        if (requests.is_none() && tokens.is_none()) || !self.metrics.tenant_shown(tenant) {
            return;
        }
        let label = vec![tenant.to_owned()];
        if let Some(value) = requests {
            let id = self.metrics.quota_remaining_requests;
            self.push(Update::Gauge(id, label.clone(), value));
        }
        if let Some(value) = tokens {
            self.push(Update::Gauge(
                self.metrics.quota_remaining_tokens,
                label,
                value,
            ));
        }
    }

    fn guardrail_hits(&self, guardrails: &Guardrails, direction: Direction, hits: &Hits) {
        for ((rule, action), count) in &hits.0 {
            let labels = vec![
                guardrails.rule_id(*rule).to_owned(),
                action.as_str().to_owned(),
                direction.as_str().to_owned(),
            ];
            let id = self.metrics.guardrail_hits;
            self.push(Update::Count(id, labels, u64::from(*count)));
        }
    }

    fn observe(&self, observation: &Observation<'_>) {
        let request_model = self.metrics.model(observation.model);
        let response_model = observation
            .counts
            .and_then(|c| c.response_model.as_deref())
            .map(|m| self.metrics.model(m));
        for sample in observation.samples(&request_model, response_model.as_deref()) {
            self.table(sample.metric, &sample.labels, Some(sample.value));
        }
    }

    fn count_request(&self, api: ApiLabel, status: Option<u16>, model: Option<&str>) {
        let model = model.map(|m| self.metrics.model(m));
        let labels = LabelValues {
            api: Some(api),
            status_class: Some(StatusClass::of(status)),
            request_model: model.as_deref(),
            ..LabelValues::default()
        };
        self.table(Metric::Requests, &labels, Some(1));
    }
}
