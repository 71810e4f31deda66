//! Guardrail metrics: hits per rule, action and direction, and the guard decisions the host did
//! not take. Counters are gathered in guest memory until the root tick. (Guarding itself is the
//! exchange's, `sluice_core::exchange`; its writes are applied in `effects.rs`.)

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use super::metrics::Counter;
use sluice_core::guardrails::{Action, Direction, Guardrails, Hits};

/// Distinct (rule, action, direction) counters at most; rules come from the configuration, so
/// this only guards against a configuration with very many deny rules.
const MAX_COUNTERS: usize = 512;

/// `sluice_guardrail_hits_total` per rule, action and direction. Envoy stat names carry no
/// labels: they are in the name (`.guardrail_rule.<id>.guardrail_action.<a>
/// .guardrail_direction.<d>`) and `envoy.yaml`'s `stats_tags` turn them into labels.
#[derive(Debug)]
pub struct GuardrailMetrics {
    ids: RefCell<HashMap<(String, Action, Direction), Option<u32>>>,
    pending: RefCell<HashMap<u32, u64>>,
    /// Guard decisions (a redaction or a block) the host did not take: each response was
    /// ended instead, or could not be.
    pub block_failures: Counter,
}

impl GuardrailMetrics {
    pub fn define() -> Self {
        Self {
            ids: RefCell::default(),
            pending: RefCell::default(),
            block_failures: Counter::define("sluice_guardrail_block_failures_total"),
        }
    }

    pub fn count(&self, guardrails: &Guardrails, direction: Direction, hits: &Hits) {
        let (Ok(mut ids), Ok(mut pending)) =
            (self.ids.try_borrow_mut(), self.pending.try_borrow_mut())
        else {
            return;
        };
        for ((rule, action), count) in &hits.0 {
            let key = (guardrails.rule_id(*rule).to_owned(), *action, direction);
            if !ids.contains_key(&key) && ids.len() >= MAX_COUNTERS {
                continue;
            }
            let id = *ids.entry(key).or_insert_with_key(|(rule, action, direction)| {
                let name = format!(
                    "sluice_guardrail_hits_total.guardrail_rule.{rule}.guardrail_action.{}.guardrail_direction.{}",
                    action.as_str(),
                    direction.as_str()
                );
                hostcalls::define_metric(MetricType::Counter, &name).ok()
            });
            if let Some(id) = id {
                let slot = pending.entry(id).or_default();
                *slot = slot.saturating_add(u64::from(*count));
            }
        }
    }

    /// Hands what gathered to Envoy; called on the root tick.
    pub fn flush(&self) {
        self.block_failures.flush();
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            for (id, value) in pending.drain() {
                let _ = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }
}
