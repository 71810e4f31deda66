//! The host side of `sluice_core::telemetry`: Envoy metrics for the label sets requests bring,
//! defined on first use, and the observations handed to Envoy on the root tick.
//!
//! Bounded per VM: at most `MAX_MODEL_LABELS` distinct model labels (later models share the
//! label `other`) and at most `MAX_SERIES` defined stats (past it a new label set is not
//! recorded). Observations wait in guest memory until the tick (at most `MAX_PENDING`; past
//! that a histogram value is handed to Envoy at once), as for every other counter: a host call
//! per request per metric would cost more than the request's own work.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use sluice_core::telemetry::labels::model_label;
use sluice_core::telemetry::table::LabelValues;
use sluice_core::telemetry::{ApiLabel, Instrument, Metric, Observation, StatusClass, stat_name};

/// Distinct model labels at most; more models share the label `other`.
const MAX_MODEL_LABELS: usize = 64;
/// Defined stats at most.
const MAX_SERIES: usize = 2048;
/// Histogram observations waiting for the tick at most.
const MAX_PENDING: usize = 4096;

#[derive(Debug, Default)]
pub struct Telemetry {
    models: RefCell<HashSet<String>>,
    series: RefCell<HashMap<String, Option<u32>>>,
    pending_histograms: RefCell<Vec<(u32, u64)>>,
    pending_counters: RefCell<HashMap<u32, u64>>,
}

impl Telemetry {
    /// `model` as a label: itself (made label-safe) while the VM has seen fewer than
    /// `MAX_MODEL_LABELS` models, else `other`.
    fn model(&self, model: &str) -> String {
        let label = model_label(model);
        let Ok(mut models) = self.models.try_borrow_mut() else {
            return "other".to_owned();
        };
        if models.contains(&label) {
            return label;
        }
        if models.len() >= MAX_MODEL_LABELS {
            return "other".to_owned();
        }
        models.insert(label.clone());
        label
    }

    /// The metric id of `metric` with `values`, defined on first use.
    fn id(&self, metric: Metric, values: &LabelValues<'_>) -> Option<u32> {
        let spec = metric.spec();
        let name = stat_name(spec, values);
        let mut series = self.series.try_borrow_mut().ok()?;
        if let Some(id) = series.get(&name) {
            return *id;
        }
        if series.len() >= MAX_SERIES {
            return None;
        }
        let kind = match spec.instrument {
            Instrument::Counter => MetricType::Counter,
            Instrument::Histogram => MetricType::Histogram,
        };
        let id = hostcalls::define_metric(kind, &name).ok();
        series.insert(name, id);
        id
    }

    fn record(&self, metric: Metric, values: &LabelValues<'_>, value: u64) {
        let Some(id) = self.id(metric, values) else {
            return;
        };
        let Ok(mut pending) = self.pending_histograms.try_borrow_mut() else {
            return;
        };
        if pending.len() >= MAX_PENDING {
            let _ = hostcalls::record_metric(id, value);
        } else {
            pending.push((id, value));
        }
    }

    fn add(&self, metric: Metric, values: &LabelValues<'_>, value: u64) {
        if value == 0 {
            return;
        }
        let Some(id) = self.id(metric, values) else {
            return;
        };
        if let Ok(mut pending) = self.pending_counters.try_borrow_mut() {
            let slot = pending.entry(id).or_default();
            *slot = slot.saturating_add(value);
        }
    }

    /// A request that went upstream ended: token usage, duration, time to first token and
    /// time per output token, and the exact token counters.
    pub fn observe(&self, observation: &Observation<'_>) {
        let request_model = self.model(observation.model);
        let response_model = observation
            .counts
            .and_then(|c| c.response_model.as_deref())
            .map(|m| self.model(m));
        for sample in observation.samples(&request_model, response_model.as_deref()) {
            match sample.metric.spec().instrument {
                Instrument::Histogram => self.record(sample.metric, &sample.labels, sample.value),
                Instrument::Counter => self.add(sample.metric, &sample.labels, sample.value),
            }
        }
    }

    /// A request ended (any request the filter saw): `status` is what the client got, `model`
    /// the model it was routed to.
    pub fn count_request(&self, api: ApiLabel, status: Option<u16>, model: Option<&str>) {
        let model = model.map(|m| self.model(m));
        let labels = LabelValues {
            api: Some(api),
            status_class: Some(StatusClass::of(status)),
            request_model: model.as_deref(),
            ..LabelValues::default()
        };
        self.add(Metric::Requests, &labels, 1);
    }

    /// Hands what gathered to Envoy; called on the root tick.
    pub fn flush(&self) {
        if let Ok(mut histograms) = self.pending_histograms.try_borrow_mut() {
            for (id, value) in histograms.drain(..) {
                let _ = hostcalls::record_metric(id, value);
            }
        }
        if let Ok(mut counters) = self.pending_counters.try_borrow_mut() {
            for (id, value) in counters.drain() {
                let _ = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }
}
