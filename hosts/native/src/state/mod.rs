//! The exchange's shared-state ports over plain process memory: one `State` per accepted
//! gateway configuration, shared by every Envoy worker thread (`Send + Sync`) and by the
//! configuration's main-thread callbacks (the picker fetch, the quota sync).
//!
//! Exact across workers without compare-and-swap loops: each quota slot, each pool's in-flight
//! map and each prefix slot sits behind its own lock, held only for one read-modify-write.
//! Memory is bounded as in the Wasm host: `quotas.slots` quota slots, `spend::SLOTS` spend
//! slots (with `quotas.tenancy`; each bounded by the ledger), one in-flight map per configured
//! pool (`InFlight` bounds its entries), `picking::SLOTS` prefix slots, one snapshot, one
//! tenancy snapshot (`tenancy`'s bounds), one flow-control state per configured pool and one
//! registry entry per held stream (`flow`), and one targets' health table for the whole process
//! (`health`).

mod flow;
mod health;
mod slots;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::config::Config;
use sluice_core::exchange::{
    Clock, InFlightCounts, InFlightRead, Level, Log, Ports, PrefixAffinity, QuotaLedger,
    SnapshotSource, TelemetrySink, TenancySource,
};
use sluice_core::flow::{FlowState, Woken};
use sluice_core::picking::{InFlight, PrefixEntry};
use sluice_core::quota::{Change, Store};
use sluice_core::tenancy::Tenancy;
use sluice_wire::Snapshot;

use crate::host_api::LogLevel;
pub use flow::{EXPIRED_EVENT, Flow, RELEASED_EVENT, outcome_of};
pub use health::{TARGET_HEALTH, TargetHealth};
use slots::{QUOTA_PREFIX, SPEND_PREFIX, Slots};

/// Everything the requests of one configuration share across workers.
pub struct State {
    quota: Slots,
    /// The spend ledger's slots (none without `quotas.tenancy`).
    spend: Slots,
    /// One map per configured pool; a pool not configured has none (nothing is routed to it).
    in_flight: HashMap<String, Mutex<InFlight>>,
    prefixes: Vec<Mutex<Option<PrefixEntry>>>,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// The last tenancy snapshot accepted, swapped whole.
    tenancy: RwLock<Option<Arc<Tenancy>>>,
    /// Flow control's queues and the held streams' way back to their workers.
    pub flow: Flow,
    /// Cluster mode: Unix ms of the last successful quota sync (0: never).
    synced_ms: AtomicU64,
    /// Cluster mode: how old the last sync may be for the view to count as fresh.
    stale_after_ms: u64,
    log: fn(LogLevel, &str),
}

impl State {
    /// The state for `config`: its quota slots, its pools' in-flight maps, the prefix table.
    /// `log` is where the `Log` port writes (Envoy's log in the module).
    pub fn new(config: &Config, log: fn(LogLevel, &str)) -> Self {
        let slots = config.quotas.as_ref().map_or(0, |q| q.slots);
        let spend_slots = config
            .quotas
            .as_ref()
            .filter(|q| q.tenancy.is_some())
            .map_or(0, |_| sluice_core::spend::SLOTS);
        let in_flight = config
            .catalog
            .pools()
            .into_iter()
            .map(|pool| (pool.to_owned(), Mutex::new(InFlight::default())))
            .collect();
        let prefix_slots = usize::try_from(sluice_core::picking::PREFIX_SLOTS).unwrap_or(0);
        Self {
            quota: Slots::new(QUOTA_PREFIX, slots),
            spend: Slots::new(SPEND_PREFIX, spend_slots),
            in_flight,
            prefixes: (0..prefix_slots).map(|_| Mutex::new(None)).collect(),
            snapshot: RwLock::new(None),
            tenancy: RwLock::new(None),
            flow: Flow::new(config.catalog.pools()),
            synced_ms: AtomicU64::new(0),
            stale_after_ms: config
                .quotas
                .as_ref()
                .and_then(|q| q.cluster.as_ref())
                .map_or(0, |c| c.stale_after_ms),
            log,
        }
    }

    /// Publishes the picker's latest snapshot to every worker at once.
    /// Every port of a phase call: this process state, and `telemetry` for what the call
    /// counts (a recorder the caller flushes to Envoy).
    pub fn ports<'a>(&'a self, telemetry: &'a dyn TelemetrySink) -> Ports<'a> {
        Ports {
            clock: self,
            quota: self,
            in_flight: self,
            prefixes: self,
            snapshot: self,
            tenancy: self,
            flow: self,
            health: &TARGET_HEALTH,
            telemetry,
            log: self,
        }
    }

    pub fn set_snapshot(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut current) => *current = Some(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Some(snapshot),
        }
    }

    /// Publishes a tenancy snapshot to every worker at once (requests under way keep the one
    /// they were identified under).
    pub fn set_tenancy(&self, tenancy: Tenancy) {
        let tenancy = Arc::new(tenancy);
        match self.tenancy.write() {
            Ok(mut current) => *current = Some(tenancy),
            Err(poisoned) => *poisoned.into_inner() = Some(tenancy),
        }
    }

    /// Cluster mode: a sync with the picker succeeded at `now_ms`.
    pub fn cluster_synced(&self, now_ms: u64) {
        self.synced_ms.store(now_ms, Ordering::Relaxed);
    }

    fn prefix_slot(&self, hash: u64) -> Option<&Mutex<Option<PrefixEntry>>> {
        let len = u64::try_from(self.prefixes.len()).ok()?;
        let index = usize::try_from(hash.checked_rem(len)?).ok()?;
        self.prefixes.get(index)
    }
}

/// Unix microseconds, read now (0 if the system clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_micros()).ok())
        .unwrap_or(0)
}

/// A lock that survives a panic elsewhere: every value behind these locks is whole between
/// statements (a panic cannot leave one half-written).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read live: a native host call costs nothing worth caching.
impl Clock for State {
    fn now_ms(&self) -> u64 {
        now_us() / 1000
    }

    fn now_us(&self) -> u64 {
        now_us()
    }

    fn lag_ms(&self) -> u64 {
        0
    }
}

impl State {
    /// The slots `key` belongs to: the spend ledger's (`sluice.spend.<n>`) or the quota's.
    fn slots_of(&self, key: &str) -> &Slots {
        if self.spend.holds(key) {
            &self.spend
        } else {
            &self.quota
        }
    }
}

/// The quota slots and the spend ledger's, each a fixed set of keys: anything else reads as
/// nothing there and cannot be written.
impl Store for State {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.slots_of(key).get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.slots_of(key).set(key, value, cas)
    }

    fn update(&self, key: &str, change: &mut Change<'_>) -> bool {
        self.slots_of(key).update(key, change)
    }
}

impl QuotaLedger for State {
    fn cluster_view_fresh(&self) -> bool {
        let synced = self.synced_ms.load(Ordering::Relaxed);
        synced > 0 && self.now_ms().saturating_sub(synced) <= self.stale_after_ms
    }
}

impl InFlightCounts for State {
    fn read(&self, pool: &str) -> InFlightRead {
        InFlightRead {
            counts: self
                .in_flight
                .get(pool)
                .map(|map| lock(map).clone())
                .unwrap_or_default(),
            version: None,
        }
    }

    /// Under the pool's lock: exact, whatever `read` says.
    fn add(&self, pool: &str, address: &str, delta: i64, now_ms: u64, _read: Option<InFlightRead>) {
        if let Some(map) = self.in_flight.get(pool) {
            lock(map).add(address, delta, now_ms);
        }
    }
}

impl PrefixAffinity for State {
    fn entry(&self, hash: u64) -> Option<PrefixEntry> {
        lock(self.prefix_slot(hash)?).clone()
    }

    fn record(&self, entry: &PrefixEntry) {
        if let Some(slot) = self.prefix_slot(entry.hash) {
            *lock(slot) = Some(entry.clone());
        }
    }
}

impl SnapshotSource for State {
    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        match self.snapshot.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl TenancySource for State {
    fn tenancy(&self) -> Option<Arc<Tenancy>> {
        match self.tenancy.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// One lock per pool: exact across workers, no retries.
impl sluice_core::exchange::FlowQueues for State {
    fn update(&self, pool: &str, change: &mut dyn FnMut(&mut FlowState)) -> bool {
        self.flow.update(pool, change)
    }

    fn new_ticket(&self) -> u64 {
        self.flow.new_ticket()
    }

    /// Unused: the registry finds a held stream by its ticket, whatever its worker.
    fn owner(&self) -> u32 {
        0
    }

    fn wake(&self, woken: &Woken) {
        self.flow.wake(woken);
    }
}

impl Log for State {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        (self.log)(level, message);
    }
}

#[cfg(test)]
mod tests;
