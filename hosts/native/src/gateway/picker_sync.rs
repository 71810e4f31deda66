//! The configuration's periodic work with the picker, on Envoy's main thread: the snapshot
//! fetch (every `picking.refresh_ms`), the tenancy snapshot's (every `quotas.tenancy.refresh_ms`)
//! and the quota sync (cluster mode's counters every `quotas.cluster.sync_ms`; with the tenancy
//! on, the spend ledger's rows too, or alone every `refresh_ms`). A `Ticker` thread commits to
//! the configuration's scheduler; each event sends what is due as a configuration-level HTTP
//! callout, and the answer comes back to `on_callout_done`. One per process and configuration:
//! no lease (the Wasm build needs one to elect a worker), one call of each kind in flight at a
//! time.
//!
//! What is sent and read mirrors the Wasm build's `picker_sync.rs`, `tenancy_sync.rs` and
//! `quota.rs`: `GET sluice_wire::PATH` answered by a postcard snapshot; `GET tenancy::PATH` with
//! `if-none-match` answered by a JSON tenancy snapshot or `304`; `POST QUOTA_SYNC_PATH` with the
//! slots' unreported consumption and the spend rows (JSON `SyncRequest`, answered by
//! `SyncResponse`). A tenancy fetch that fails or brings a snapshot that is refused leaves the
//! last snapshot in force; spend rows of a sync that was not stored go back into the ledger.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sluice_core::config::Config;
use sluice_core::config::quotas::{Cluster, QUOTA_SYNC_PATH, TenancyConfig};
use sluice_core::picking::Picking;
use sluice_core::quota::sync::{self, Pushed, SyncRequest, SyncResponse};
use sluice_core::quota::{SlotState, Store, slot_key};
use sluice_core::spend::{self, Row};
use sluice_core::tenancy::{self, Tenancy};
use sluice_wire::Snapshot;

use super::metrics::Metrics;
use crate::host_api::{CalloutOutcome, CalloutResponse, ConfigContext, LogLevel};
use crate::state::{State, lock, now_us};

/// The configuration scheduler's event: run what is due.
pub const TICK_EVENT: u64 = 1;
/// The ticker's period when only the quota gauges need it.
const IDLE_PERIOD_MS: u64 = 1000;

pub struct PickerSync {
    picking: Option<Picking>,
    cluster: Option<Cluster>,
    tenancy: Option<TenancyConfig>,
    /// Where the quota sync goes and how often (cluster mode's, else the tenancy's).
    sync: Option<SyncTarget>,
    slots: u32,
    calls: Mutex<Calls>,
}

struct SyncTarget {
    cluster: String,
    authority: String,
    period_ms: u64,
}

/// The sync under way: what it took out of the quota slots and the spend ledger.
struct SyncCall {
    id: u64,
    pushed: Vec<Pushed>,
    rows: Vec<Row>,
}

#[derive(Default)]
struct Calls {
    snapshot: Option<u64>,
    snapshot_due_ms: u64,
    tenancy: Option<u64>,
    tenancy_due_ms: u64,
    /// The version of the tenancy snapshot in force, for `if-none-match`.
    tenancy_version: Option<u64>,
    sync: Option<SyncCall>,
    sync_due_ms: u64,
    /// The slot the next report starts at.
    cursor: u32,
    /// The quota store's epoch at the last sync (0: unknown).
    epoch: u64,
}

fn now_ms() -> u64 {
    now_us() / 1000
}

impl PickerSync {
    /// `None` when the configuration has nothing periodic to do.
    pub fn new(config: &Config) -> Option<Self> {
        let quotas = config.quotas.as_ref();
        if config.picking.is_none() && quotas.is_none() {
            return None;
        }
        let sync = quotas.and_then(|q| q.sync_target()).map(|t| SyncTarget {
            cluster: t.picker_cluster.to_owned(),
            authority: t.picker_authority.to_owned(),
            period_ms: t.period_ms,
        });
        Some(Self {
            picking: config.picking.clone(),
            cluster: quotas.and_then(|q| q.cluster.clone()),
            tenancy: quotas.and_then(|q| q.tenancy.clone()),
            sync,
            slots: quotas.map_or(0, |q| q.slots),
            calls: Mutex::new(Calls::default()),
        })
    }

    pub fn period(&self) -> Duration {
        let ms = [
            self.picking.as_ref().map(|p| p.refresh_ms),
            self.sync.as_ref().map(|s| s.period_ms),
            self.tenancy.as_ref().map(|t| t.refresh_ms),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(IDLE_PERIOD_MS)
        .max(1);
        Duration::from_millis(ms)
    }

    /// Makes everything due on the next tick (tests: no waiting for the clock).
    #[cfg(test)]
    pub fn due_now(&self) {
        let mut calls = lock(&self.calls);
        calls.snapshot_due_ms = 0;
        calls.tenancy_due_ms = 0;
        calls.sync_due_ms = 0;
    }

    /// A tick: sends what is due.
    pub fn on_tick(&self, context: &mut dyn ConfigContext, state: &State, metrics: &Metrics) {
        let now = now_ms();
        if self.slots > 0 {
            context.set_gauge(metrics.quota_shared_slots, &[], u64::from(self.slots));
        }
        let mut calls = lock(&self.calls);
        if let Some(picking) = &self.picking {
            if calls.snapshot.is_none() && now >= calls.snapshot_due_ms {
                calls.snapshot_due_ms = now.saturating_add(picking.refresh_ms);
                let headers: [(&str, &[u8]); 3] = [
                    (":method", b"GET"),
                    (":path", sluice_wire::PATH.as_bytes()),
                    ("host", picking.picker_authority.as_bytes()),
                ];
                let timeout = picking.refresh_ms.saturating_mul(5);
                match context.http_callout(&picking.picker_cluster, &headers, b"", timeout) {
                    Ok(id) => calls.snapshot = Some(id),
                    Err(error) => {
                        metrics.count_in_config(context, metrics.picker_fetch_failures);
                        context.log(
                            LogLevel::Warn,
                            &format!(
                                "cannot call picker cluster {}: {error:?}",
                                picking.picker_cluster
                            ),
                        );
                    }
                }
            }
        }
        if let Some(tenancy) = &self.tenancy {
            if calls.tenancy.is_none() && now >= calls.tenancy_due_ms {
                calls.tenancy_due_ms = now.saturating_add(tenancy.refresh_ms);
                self.fetch_tenancy(context, metrics, tenancy, &mut calls);
            }
        }
        if self.cluster.is_some() {
            let fresh = sluice_core::exchange::QuotaLedger::cluster_view_fresh(state);
            context.set_gauge(metrics.quota_cluster_synced, &[], u64::from(fresh));
        }
        if let Some(target) = &self.sync {
            if calls.sync.is_none() && now >= calls.sync_due_ms {
                // A tick that comes a millisecond early must not push the sync to the next.
                let slack = target.period_ms / 8;
                calls.sync_due_ms = now.saturating_add(target.period_ms.saturating_sub(slack));
                self.send_sync(context, state, metrics, target, &mut calls, now);
            }
        }
    }

    /// Asks for the tenancy snapshot, `if-none-match` the version in force.
    fn fetch_tenancy(
        &self,
        context: &mut dyn ConfigContext,
        metrics: &Metrics,
        tenancy: &TenancyConfig,
        calls: &mut Calls,
    ) {
        let etag = calls.tenancy_version.map(|v| format!("\"{v}\""));
        let mut headers: Vec<(&str, &[u8])> = vec![
            (":method", b"GET"),
            (":path", tenancy::PATH.as_bytes()),
            ("host", tenancy.picker_authority.as_bytes()),
        ];
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag.as_bytes()));
        }
        let timeout = tenancy.refresh_ms.saturating_mul(5);
        match context.http_callout(&tenancy.picker_cluster, &headers, b"", timeout) {
            Ok(id) => calls.tenancy = Some(id),
            Err(error) => {
                metrics.count_in_config(context, metrics.tenancy_fetch_failures);
                context.log(
                    LogLevel::Warn,
                    &format!(
                        "cannot call picker cluster {} for the tenancy snapshot: {error:?}",
                        tenancy.picker_cluster
                    ),
                );
            }
        }
    }

    /// Reports the quota slots' unreported consumption (cluster mode) and the spend ledger's
    /// rows (tenancy). Without cluster mode a tick with no rows sends nothing.
    fn send_sync(
        &self,
        context: &mut dyn ConfigContext,
        state: &State,
        metrics: &Metrics,
        target: &SyncTarget,
        calls: &mut Calls,
        now: u64,
    ) {
        let (mut request, pushed) = if self.cluster.is_some() {
            self.collect(calls, state, now)
        } else {
            (SyncRequest::default(), Vec::new())
        };
        let rows = if self.tenancy.is_some() {
            spend::take(state)
        } else {
            Vec::new()
        };
        if self.cluster.is_none() && rows.is_empty() {
            return;
        }
        request.spend = rows.iter().map(Row::entry).collect();
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let headers: [(&str, &[u8]); 4] = [
            (":method", b"POST"),
            (":path", QUOTA_SYNC_PATH.as_bytes()),
            ("host", target.authority.as_bytes()),
            ("content-type", b"application/json"),
        ];
        let timeout = target.period_ms.saturating_mul(5);
        match context.http_callout(&target.cluster, &headers, &body, timeout) {
            Ok(id) => calls.sync = Some(SyncCall { id, pushed, rows }),
            Err(error) => {
                restore(context, state, metrics, &pushed, &rows);
                metrics.count_in_config(context, metrics.quota_sync_failures);
                context.log(
                    LogLevel::Warn,
                    &format!(
                        "cannot call picker cluster {} for quota sync: {error:?}",
                        target.cluster
                    ),
                );
            }
        }
    }

    /// Takes every live slot's unreported consumption, at most `MAX_ENTRIES` entries, starting
    /// where the last report stopped; each slot under its lock, once.
    fn collect(&self, calls: &mut Calls, state: &State, now: u64) -> (SyncRequest, Vec<Pushed>) {
        let mut request = SyncRequest::default();
        let mut pushed = Vec::new();
        let start = calls.cursor.min(self.slots.saturating_sub(1));
        calls.cursor = 0;
        for i in 0..self.slots {
            let slot = start.saturating_add(i).checked_rem(self.slots).unwrap_or(0);
            let mut full = false;
            state.update(&slot_key(slot), &mut |current| {
                let bytes = current.filter(|b| !b.is_empty())?;
                let mut slot_state = SlotState::decode(bytes);
                let (before_entries, before_pushed) = (request.entries.len(), pushed.len());
                sync::collect(
                    &mut slot_state,
                    slot,
                    now,
                    &mut request.entries,
                    &mut pushed,
                );
                if request.entries.len() > sync::MAX_ENTRIES {
                    request.entries.truncate(before_entries);
                    pushed.truncate(before_pushed);
                    // Full: this slot goes first in the next report, untouched now. (A scope
                    // with more counters than a whole report stays local.)
                    full = before_entries > 0;
                    return None;
                }
                let moved = pushed
                    .get(before_pushed..)
                    .is_some_and(|p| p.iter().any(|p| p.delta != 0 || p.prev_delta != 0));
                moved.then(|| slot_state.encode())
            });
            if full {
                calls.cursor = slot;
                break;
            }
        }
        (request, pushed)
    }

    /// An answer to one of this configuration's callouts.
    pub fn on_callout_done(
        &self,
        context: &mut dyn ConfigContext,
        state: &State,
        metrics: &Metrics,
        id: u64,
        response: &CalloutResponse<'_>,
    ) {
        let mut calls = lock(&self.calls);
        let success = response.outcome == CalloutOutcome::Success;
        let ok = success && response.status() == Some(200);
        if calls.snapshot == Some(id) {
            calls.snapshot = None;
            drop(calls);
            let decoded = ok.then(|| Snapshot::decode(&response.body.concat()));
            match decoded {
                Some(Ok(snapshot)) => state.set_snapshot(snapshot),
                Some(Err(error)) => {
                    metrics.count_in_config(context, metrics.picker_fetch_failures);
                    context.log(
                        LogLevel::Warn,
                        &format!("picker sent an unusable snapshot: {error}"),
                    );
                }
                None => metrics.count_in_config(context, metrics.picker_fetch_failures),
            }
            return;
        }
        if calls.tenancy == Some(id) {
            calls.tenancy = None;
            let unchanged = success && response.status() == Some(304);
            if unchanged {
                return;
            }
            let decoded = ok.then(|| Tenancy::decode(&response.body.concat()));
            match decoded {
                Some(Ok(tenancy)) => {
                    let version = tenancy.version();
                    if calls.tenancy_version != Some(version) {
                        context.log(
                            LogLevel::Info,
                            &format!(
                                "tenancy snapshot version {version}: {} keys",
                                tenancy.key_count()
                            ),
                        );
                    }
                    calls.tenancy_version = Some(version);
                    drop(calls);
                    state.set_tenancy(tenancy);
                    context.set_gauge(metrics.tenancy_version, &[], version);
                }
                Some(Err(error)) => {
                    drop(calls);
                    metrics.count_in_config(context, metrics.tenancy_fetch_failures);
                    context.log(
                        LogLevel::Warn,
                        &format!("keeping the last tenancy snapshot: {error}"),
                    );
                }
                None => {
                    drop(calls);
                    metrics.count_in_config(context, metrics.tenancy_fetch_failures);
                }
            }
            return;
        }
        let Some(call) = calls.sync.take() else {
            return;
        };
        if call.id != id {
            calls.sync = Some(call);
            return;
        }
        let answer = ok
            .then(|| serde_json::from_slice::<SyncResponse>(&response.body.concat()).ok())
            .flatten()
            .filter(|answer| answer.totals.len() == call.pushed.len());
        let Some(answer) = answer else {
            drop(calls);
            restore(context, state, metrics, &call.pushed, &call.rows);
            metrics.count_in_config(context, metrics.quota_sync_failures);
            return;
        };
        let lost = answer.epoch != 0 && calls.epoch != 0 && calls.epoch != answer.epoch;
        if answer.epoch != 0 {
            calls.epoch = answer.epoch;
        }
        drop(calls);
        if !answer.spend_stored && !call.rows.is_empty() {
            // The counters were applied, the spend was not: report those rows again.
            put_back(context, state, metrics, &call.rows);
        }
        if self.cluster.is_none() {
            return;
        }
        if lost {
            context.log(
                LogLevel::Warn,
                "quota store lost its counts (Redis restarted?): reporting them again",
            );
        }
        let now = now_ms();
        let mut by_slot: HashMap<u32, Vec<(&Pushed, [i64; 2])>> = HashMap::new();
        for (p, totals) in call.pushed.iter().zip(answer.totals) {
            by_slot.entry(p.slot).or_default().push((p, totals));
        }
        for (slot, entries) in by_slot {
            // Under the slot's lock: cannot fail for a slot that exists.
            state.update(&slot_key(slot), &mut |current| {
                let mut slot_state = current.map(SlotState::decode).unwrap_or_default();
                for (p, totals) in &entries {
                    sync::apply(&mut slot_state, p, *totals, now, lost);
                }
                Some(slot_state.encode())
            });
        }
        state.cluster_synced(now);
        context.set_gauge(metrics.quota_cluster_synced, &[], 1);
    }
}

/// Puts what a failed report took out of the slots and the ledger back into them.
fn restore(
    context: &mut dyn ConfigContext,
    state: &State,
    metrics: &Metrics,
    pushed: &[Pushed],
    rows: &[Row],
) {
    let now = now_ms();
    let mut lost = 0usize;
    for p in pushed.iter().filter(|p| p.delta != 0 || p.prev_delta != 0) {
        let written = state.update(&slot_key(p.slot), &mut |current| {
            let mut slot_state = current.map(SlotState::decode).unwrap_or_default();
            sync::restore(&mut slot_state, p, now);
            Some(slot_state.encode())
        });
        if !written {
            lost = lost.saturating_add(1);
        }
    }
    if lost > 0 {
        context.log(
            LogLevel::Warn,
            &format!("quota sync: {lost} unreported counts could not be put back and are lost"),
        );
        metrics.count_in_config(context, metrics.quota_write_failures);
    }
    put_back(context, state, metrics, rows);
}

/// Puts spend rows a report took back into the ledger, to be reported again.
fn put_back(context: &mut dyn ConfigContext, state: &State, metrics: &Metrics, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let back = spend::put_back(state, rows);
    if back.overflowed > 0 {
        context.increment_counter(metrics.spend_overflow, &[], back.overflowed);
    }
    if back.lost > 0 {
        context.log(
            LogLevel::Warn,
            &format!(
                "spend: {} rows of a report that was not stored could not be put back",
                back.lost
            ),
        );
        metrics.count_in_config(context, metrics.quota_write_failures);
    }
}
