//! Flow control's labelled metrics, with the native module's names: the gauge
//! `sluice_flow_waiting` (requests held now) and the histogram
//! `sluice_flow_wait_time_microseconds` (how long a request was held, however it left), both
//! per `band` and `fairness_id`. Proxy-wasm stat names carry no labels: the values are written
//! into the name (`<metric>.band.<band>.fairness_id.<id>`) and `envoy.wasm.yaml`'s `stats_tags`
//! take them out again (the fairness id last, since it may hold dots).
//!
//! The gauge counts the whole process's queues (shared data), so whichever VM sets it last
//! sets the same value: each VM sets the series it knows on its tick, from the counts its flow
//! pass saw, when they changed. Bounded per VM: the first `MAX_FAIRNESS_LABELS` fairness ids
//! it sees are labels, later ones share `other` (its gauge is the rest of the band's count, as
//! this VM's labels leave it: VMs that saw different first ids may disagree on it).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use sluice_core::flow::{FlowControl, fairness_hash};
use sluice_core::telemetry::labels::model_label;

/// Distinct fairness ids labelled per VM; more share `other`.
const MAX_FAIRNESS_LABELS: usize = 64;
/// The label of the fairness ids past the bound.
const OTHER: &str = "other";
/// Wait times waiting for the tick at most; past it one is handed to Envoy at once.
const MAX_PENDING: usize = 4096;

const WAITING: &str = "sluice_flow_waiting";
const WAIT_TIME: &str = "sluice_flow_wait_time_microseconds";

/// A gauge series: its Envoy id and the value this VM set last.
#[derive(Debug, Default)]
struct Gauge {
    id: Option<u32>,
    last: Option<u64>,
}

#[derive(Debug, Default)]
pub struct FlowMetrics {
    /// Fairness id label → the hash the queue state keeps (`None` for `other`).
    labels: RefCell<HashMap<String, Option<u64>>>,
    /// (band name, fairness label) → gauge.
    gauges: RefCell<BTreeMap<(String, String), Gauge>>,
    /// (band name, fairness label) → histogram id.
    histograms: RefCell<HashMap<(String, String), Option<u32>>>,
    pending: RefCell<Vec<(u32, u64)>>,
}

fn stat_name(metric: &str, band: &str, fairness: &str) -> String {
    format!("{metric}.band.{band}.fairness_id.{fairness}")
}

impl FlowMetrics {
    /// `fairness` as a label: itself (made label-safe) among the VM's first ids, else `other`.
    fn label(&self, fairness: &str) -> String {
        let label = model_label(fairness);
        let Ok(mut labels) = self.labels.try_borrow_mut() else {
            return OTHER.to_owned();
        };
        if labels.contains_key(&label) {
            return label;
        }
        if labels.len() >= MAX_FAIRNESS_LABELS || label == OTHER {
            labels.entry(OTHER.to_owned()).or_insert(None);
            return OTHER.to_owned();
        }
        labels.insert(label.clone(), Some(fairness_hash(fairness)));
        label
    }

    /// A request was held in `band` for `fairness`: its series is set from the next tick on.
    pub fn waiting(&self, band: &str, fairness: &str) {
        let key = (model_label(band), self.label(fairness));
        if let Ok(mut gauges) = self.gauges.try_borrow_mut() {
            gauges.entry(key).or_default();
        }
    }

    /// A held request left its queue after `waited_us`.
    pub fn waited(&self, band: &str, fairness: &str, waited_us: u64) {
        let key = (model_label(band), self.label(fairness));
        let Ok(mut histograms) = self.histograms.try_borrow_mut() else {
            return;
        };
        let id = *histograms
            .entry(key)
            .or_insert_with_key(|(band, fairness)| {
                hostcalls::define_metric(
                    MetricType::Histogram,
                    &stat_name(WAIT_TIME, band, fairness),
                )
                .ok()
            });
        let Some(id) = id else {
            return;
        };
        let Ok(mut pending) = self.pending.try_borrow_mut() else {
            return;
        };
        if pending.len() >= MAX_PENDING {
            let _ = hostcalls::record_metric(id, waited_us);
        } else {
            pending.push((id, waited_us));
        }
    }

    /// Sets every gauge this VM knows from `waiting` (requests held per band index and
    /// fairness hash, in the whole process), where it changed.
    pub fn refresh(&self, flow: &FlowControl, waiting: &HashMap<(usize, u64), u64>) {
        let (Ok(labels), Ok(mut gauges)) = (self.labels.try_borrow(), self.gauges.try_borrow_mut())
        else {
            return;
        };
        let band_index: HashMap<String, usize> = flow
            .bands
            .iter()
            .enumerate()
            .map(|(index, band)| (model_label(&band.name), index))
            .collect();
        for ((band, fairness), gauge) in gauges.iter_mut() {
            let Some(index) = band_index.get(band).copied() else {
                continue;
            };
            let value = match labels.get(fairness).copied().flatten() {
                Some(hash) => waiting.get(&(index, hash)).copied().unwrap_or(0),
                None => {
                    // `other`: the band's requests no label of this VM names.
                    let named: Vec<u64> = labels.values().filter_map(|h| *h).collect();
                    waiting
                        .iter()
                        .filter(|((b, hash), _)| *b == index && !named.contains(hash))
                        .map(|(_, count)| *count)
                        .sum()
                }
            };
            if gauge.last == Some(value) {
                continue;
            }
            if gauge.id.is_none() {
                gauge.id = hostcalls::define_metric(
                    MetricType::Gauge,
                    &stat_name(WAITING, band, fairness),
                )
                .ok();
            }
            if let Some(id) = gauge.id {
                if hostcalls::record_metric(id, value).is_ok() {
                    gauge.last = Some(value);
                }
            }
        }
    }

    /// Hands the wait times gathered to Envoy; called on the root tick.
    pub fn flush(&self) {
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            for (id, value) in pending.drain(..) {
                let _ = hostcalls::record_metric(id, value);
            }
        }
    }
}
