//! The upstream role's metric: attempts per target and outcome
//! (`sluice_target_attempts_total{target, outcome}`), under the Wasm build's name and labels
//! (its `stats_tags` make labels of what its names carry). Target names come from the
//! configuration (`targets::MAX_TARGETS` at most), outcomes from `AttemptOutcome::label`: the
//! series are bounded.
//!
//! An attempt reports while a phase borrows the stream, so a `Recorder` gathers what one phase
//! reported and hands it to Envoy right after (`flush`, or `flush_ending` when Envoy destroys
//! the filter).

use std::cell::RefCell;

use sluice_core::exchange::{Event, TelemetrySink};
use sluice_core::guardrails::{Direction, Guardrails, Hits};
use sluice_core::quota::Standing;
use sluice_core::telemetry::labels::model_label;
use sluice_core::telemetry::{ApiLabel, Observation};

use crate::host_api::{ConfigInit, CounterId, EndingStream, Stream};

pub const TARGET_ATTEMPTS: &str = "sluice_target_attempts_total";

pub struct Metrics {
    pub target_attempts: CounterId,
}

impl Metrics {
    /// Defines the metric; only possible while the configuration is created.
    pub fn define(init: &mut dyn ConfigInit) -> Result<Self, String> {
        let target_attempts = init
            .define_counter(TARGET_ATTEMPTS, &["target", "outcome"])
            .map_err(|error| format!("cannot define {TARGET_ATTEMPTS}: {error:?}"))?;
        Ok(Self { target_attempts })
    }
}

/// What one phase counted: (target label, outcome) per attempt recorded.
pub struct Recorder<'m> {
    metrics: &'m Metrics,
    attempts: RefCell<Vec<(String, &'static str)>>,
}

impl<'m> Recorder<'m> {
    pub fn new(metrics: &'m Metrics) -> Self {
        Self {
            metrics,
            attempts: RefCell::new(Vec::new()),
        }
    }

    fn drain(&self) -> Vec<(String, &'static str)> {
        self.attempts
            .try_borrow_mut()
            .map(|mut attempts| std::mem::take(&mut *attempts))
            .unwrap_or_default()
    }

    /// Hands the counts to Envoy; a refused one is lost, not the request.
    pub fn flush(&self, stream: &mut dyn Stream) {
        for (target, outcome) in self.drain() {
            stream.increment_counter(self.metrics.target_attempts, &[&target, outcome], 1);
        }
    }

    /// The same while Envoy destroys the filter.
    pub fn flush_ending(&self, stream: &mut dyn EndingStream) {
        for (target, outcome) in self.drain() {
            stream.increment_counter(self.metrics.target_attempts, &[&target, outcome], 1);
        }
    }
}

/// The attempt reports only `target_attempt`; the rest is the downstream filter's.
impl TelemetrySink for Recorder<'_> {
    fn count(&self, _event: Event) {}
    fn quota_standing(&self, _tenant: &str, _standing: &Standing) {}
    fn guardrail_hits(&self, _guardrails: &Guardrails, _direction: Direction, _hits: &Hits) {}
    fn observe(&self, _observation: &Observation<'_>) {}
    fn flow_held(&self, _band: &str, _fairness: &str) {}
    fn flow_waited(&self, _band: &str, _fairness: &str, _waited_us: u64) {}
    fn count_request(&self, _api: ApiLabel, _status: Option<u16>, _model: Option<&str>) {}

    fn target_attempt(&self, target: &str, outcome: &'static str) {
        if let Ok(mut attempts) = self.attempts.try_borrow_mut() {
            attempts.push((model_label(target), outcome));
        }
    }
}
