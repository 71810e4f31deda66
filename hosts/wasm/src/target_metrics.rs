//! `sluice_target_attempts_total` per target and outcome: what the upstream role counts for
//! each attempt (`AttemptOutcome::label`). Envoy stat names carry no labels: they are in the
//! name (`.outcome.<outcome>.target.<target>`, the target last because its name may hold dots)
//! and `envoy.wasm.yaml`'s `stats_tags` turn them into labels. Counters are defined on first
//! use and gathered in guest memory until the root tick.

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use sluice_core::telemetry::labels::model_label;

/// Distinct (target, outcome) counters at most: targets come from the configuration
/// (`targets::MAX_TARGETS`), outcomes are six; this only guards the bound.
const MAX_COUNTERS: usize = 512;

#[derive(Debug, Default)]
pub struct TargetMetrics {
    ids: RefCell<HashMap<(String, &'static str), Option<u32>>>,
    pending: RefCell<HashMap<u32, u64>>,
}

impl TargetMetrics {
    pub fn count(&self, target: &str, outcome: &'static str) {
        let (Ok(mut ids), Ok(mut pending)) =
            (self.ids.try_borrow_mut(), self.pending.try_borrow_mut())
        else {
            return;
        };
        let key = (model_label(target), outcome);
        if !ids.contains_key(&key) && ids.len() >= MAX_COUNTERS {
            return;
        }
        let id = *ids.entry(key).or_insert_with_key(|(target, outcome)| {
            let name = format!("sluice_target_attempts_total.outcome.{outcome}.target.{target}");
            hostcalls::define_metric(MetricType::Counter, &name).ok()
        });
        if let Some(id) = id {
            let slot = pending.entry(id).or_default();
            *slot = slot.saturating_add(1);
        }
    }

    /// Hands what gathered to Envoy; called on the root tick.
    pub fn flush(&self) {
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            for (id, value) in pending.drain() {
                let _ = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }
}
