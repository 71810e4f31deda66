//! The exchange's ports over what this VM has: Envoy's shared data (quota slots, in-flight
//! counts, the prefix table, the spend ledger; one process-wide map shared by every worker's
//! VM, written with compare-and-swap), this VM's copies of the picker's snapshot and of the
//! tenancy snapshot, the clock cached per root tick,
//! the metrics gathered in guest memory until the tick, and Envoy's log. One `Host` per
//! accepted configuration, shared by the VM's requests (a VM runs on one worker thread).
//!
//! Host calls per request, as before the exchange moved to `sluice_core`: a shared-data read
//! and a compare-and-swap write per quota scope to reserve and again to settle; with picking, a
//! read of the prefix slot and of the pool's in-flight map, a write of the map (read again only
//! when another worker wrote in between), a prefix write when it moved or aged, and a read and
//! a write of the map to release. With flow control, a read and a compare-and-swap write of the
//! pool's queue state to take a seat and again to give it back, and a clock read. With the
//! run-time tenancy, a read and a compare-and-swap write of a spend slot at settle. The clock
//! and the metrics cost none per request otherwise.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::flow::FlowHub;
use super::metrics::Metrics;
use super::{clock, log, quota, shared};
use sluice_core::attempt::TargetHealthStore;
use sluice_core::exchange::{
    Clock, Event, FlowQueues, InFlightCounts, InFlightRead, Level, Log, Ports, PrefixAffinity,
    QuotaLedger, SnapshotSource, TelemetrySink, TenancySource,
};
use sluice_core::flow::{FlowState, Woken};
use sluice_core::guardrails::{Direction, Guardrails, Hits};
use sluice_core::picking::{InFlight, LocalSnapshot, PrefixEntry};
use sluice_core::quota::{Standing, Store};
use sluice_core::targets::{HealthTable, MAX_TARGETS};
use sluice_core::telemetry::{ApiLabel, Observation};
use sluice_core::tenancy::Tenancy;
use sluice_wire::Snapshot;

#[derive(Default)]
pub struct Host {
    /// This worker's copy of the picker's snapshot, kept fresh by the root's tick.
    pub snapshot: Rc<RefCell<LocalSnapshot>>,
    /// This worker's copy of the tenancy snapshot (`quotas.tenancy`), kept fresh by the root's
    /// tick.
    pub tenancy: super::tenancy_sync::SharedTenancy,
    /// `None` until a configuration was accepted: nothing is counted.
    pub metrics: Option<Rc<Metrics>>,
    /// Flow control's queues in shared data and this VM's held requests (one per VM, whatever
    /// the configuration).
    pub flow: Rc<FlowHub>,
    /// Flow control is on: a request's body phase reads the clock afresh first, so that the
    /// time it starts waiting is exact and expiry (on the tick, with a fresh clock) never
    /// comes before its band's time to live (one host call per routed request).
    pub fresh_clock: bool,
}

impl Host {
    pub fn ports(&self) -> Ports<'_> {
        Ports::of(self)
    }
}

impl Clock for Host {
    fn now_ms(&self) -> u64 {
        clock::now_ms()
    }

    fn now_us(&self) -> u64 {
        clock::read_us()
    }

    fn lag_ms(&self) -> u64 {
        clock::MAX_AGE_MS
    }
}

impl Store for Host {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        shared::get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        shared::set(key, value, cas)
    }
}

impl QuotaLedger for Host {
    fn cluster_view_fresh(&self) -> bool {
        quota::cluster_fresh()
    }
}

impl InFlightCounts for Host {
    fn read(&self, pool: &str) -> InFlightRead {
        let (bytes, version) = shared::get(&InFlight::key(pool));
        InFlightRead {
            counts: bytes.map(|b| InFlight::decode(&b)).unwrap_or_default(),
            version,
        }
    }

    fn add(&self, pool: &str, address: &str, delta: i64, now_ms: u64, read: Option<InFlightRead>) {
        let key = InFlight::key(pool);
        // With the map just read: one write, unless another worker wrote in between.
        if let Some(mut read) = read {
            read.counts.add(address, delta, now_ms);
            if shared::set(&key, &read.counts.encode(), read.version) {
                return;
            }
        }
        shared::update(&key, |current| {
            let mut map = current.map(InFlight::decode).unwrap_or_default();
            map.add(address, delta, now_ms);
            map.encode()
        });
    }
}

impl PrefixAffinity for Host {
    fn entry(&self, hash: u64) -> Option<PrefixEntry> {
        shared::get(&PrefixEntry::key(hash))
            .0
            .and_then(|slot| PrefixEntry::decode(&slot))
    }

    fn record(&self, entry: &PrefixEntry) {
        shared::set(&PrefixEntry::key(entry.hash), &entry.encode(), None);
    }
}

impl SnapshotSource for Host {
    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.try_borrow().ok()?.current()
    }
}

impl TenancySource for Host {
    fn tenancy(&self) -> Option<Arc<Tenancy>> {
        self.tenancy.try_borrow().ok()?.clone()
    }
}

impl TelemetrySink for Host {
    fn count(&self, event: Event) {
        let Some(m) = &self.metrics else {
            return;
        };
        let counter = match event {
            Event::InternalHeaderRemoved => &m.internal_headers_removed,
            Event::Rejected => &m.rejected,
            Event::FailedClosed => &m.failed_closed,
            Event::Picked => &m.picked,
            Event::PickFallback => &m.pick_fallbacks,
            Event::Shed => &m.shed,
            Event::QuotaAdmitted => &m.quota.admitted,
            Event::QuotaUncounted => &m.quota.uncounted,
            Event::QuotaWriteFailure => &m.quota.write_failures,
            Event::SpendOverflow => &m.quota.spend_overflow,
            Event::GuardrailBlockFailure => &m.guardrails.block_failures,
            Event::FlowHeld => &m.flow_held,
            Event::ChainRerouted => &m.chain_rerouted,
            Event::FlowReleased => &m.flow_released,
            Event::FlowExpired => &m.flow_expired,
            Event::FlowOverflow => &m.flow_overflow,
            Event::FlowAbandoned => &m.flow_abandoned,
            Event::QuotaRejected(reason) => {
                m.quota.reject(reason);
                return;
            }
        };
        counter.increment();
    }

    /// The gauge is set on the root tick from the whole process's queues (`flow_metrics`):
    /// `waiting`, one pool's count, only names the series.
    fn flow_held(&self, band: &str, fairness: &str) {
        if let Some(m) = &self.metrics {
            m.flow.waiting(band, fairness);
        }
    }

    fn flow_waited(&self, band: &str, fairness: &str, waited_us: u64) {
        if let Some(m) = &self.metrics {
            m.flow.waited(band, fairness, waited_us);
        }
    }

    fn quota_standing(&self, tenant: &str, standing: &Standing) {
        if let Some(m) = &self.metrics {
            m.quota.remaining(tenant, standing);
        }
    }

    fn guardrail_hits(&self, guardrails: &Guardrails, direction: Direction, hits: &Hits) {
        if let Some(m) = &self.metrics {
            m.guardrails.count(guardrails, direction, hits);
        }
    }

    fn observe(&self, observation: &Observation<'_>) {
        if let Some(m) = &self.metrics {
            m.telemetry.observe(observation);
        }
    }

    fn count_request(&self, api: ApiLabel, status: Option<u16>, model: Option<&str>) {
        if let Some(m) = &self.metrics {
            m.telemetry.count_request(api, status, model);
        }
    }

    fn target_attempt(&self, target: &str, outcome: &'static str) {
        if let Some(m) = &self.metrics {
            m.targets.count(target, outcome);
        }
    }
}

/// Flow control over shared data and this VM's wake-up queue (`flow.rs`).
impl FlowQueues for Host {
    fn update(&self, pool: &str, change: &mut dyn FnMut(&mut FlowState)) -> bool {
        self.flow.update(pool, change)
    }

    fn new_ticket(&self) -> u64 {
        self.flow.new_ticket()
    }

    fn owner(&self) -> u32 {
        self.flow.owner()
    }

    fn wake(&self, woken: &Woken) {
        self.flow.wake(woken);
    }
}

impl Log for Host {
    fn log(&self, level: Level, message: &str) {
        match level {
            Level::Info => log::info(message),
            Level::Warn => log::warn(message),
            Level::Error => log::error(message),
        }
    }
}

/// The targets' health lives under one shared-data key of the VM id: the downstream filter
/// (choosing chains) and the upstream filter (recording attempts) read and write the same
/// table when they share the VM id. Bounded: one entry per target of the configuration that
/// last wrote it (`HealthTable::align`), and a table past `targets::MAX_TARGETS` entries
/// (which only a change that never aligned could leave) starts over.
pub const TARGET_HEALTH_KEY: &str = "sluice.targets.health";

/// Creates the table's key if it is missing, so that every later update is a
/// compare-and-swap (a missing key has no token to compare against).
pub fn create_target_health() {
    if shared::get(TARGET_HEALTH_KEY).0.is_none() {
        shared::set(TARGET_HEALTH_KEY, &HealthTable::default().encode(), None);
    }
}

/// Whether `table` holds more entries than any configuration may have targets.
fn oversized(table: &HealthTable) -> bool {
    table.entry(MAX_TARGETS).is_some()
}

/// Read, change and compare-and-swap, retried a bounded number of times against writers on
/// other workers (`shared::update`).
impl TargetHealthStore for Host {
    fn update(&self, change: &mut dyn FnMut(&mut HealthTable)) -> bool {
        shared::update(TARGET_HEALTH_KEY, |current| {
            let mut table = current.map(HealthTable::decode).unwrap_or_default();
            change(&mut table);
            if oversized(&table) {
                table = HealthTable::default();
            }
            table.encode()
        })
    }

    /// One shared-data read; a missing or unreadable table reads as empty.
    fn read(&self) -> Option<HealthTable> {
        let table = shared::get(TARGET_HEALTH_KEY)
            .0
            .map(|bytes| HealthTable::decode(&bytes))
            .unwrap_or_default();
        Some(if oversized(&table) {
            HealthTable::default()
        } else {
            table
        })
    }
}
