//! Quotas on the host side: the per-tenant metrics, the slot keys created at configure time
//! (the quota slots, and the spend ledger's with the run-time tenancy), and the sync that one
//! worker per Envoy runs on the root tick: cluster mode's counters and the spend ledger's rows.
//! The per-request part (identify, reserve, rate-limit headers, settle, spend) is the
//! exchange's (`sluice_core::exchange`), over the slots in shared data (`ports.rs`).
//!
//! A sync write that fails is logged and counted in `sluice_quota_write_failures_total`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use super::metrics::Counter;
use super::shared::SharedStore;
use super::{clock, log, shared};
use sluice_core::config::quotas::{Cluster, QUOTA_SYNC_PATH, Quotas};
use sluice_core::quota::sync::{self, Pushed, SyncRequest, SyncResponse};
use sluice_core::quota::{self, SlotState, Standing};
use sluice_core::spend::{self, Row};

const LEASE_KEY: &str = "sluice.quota.lease";
/// Unix ms of the last successful cluster sync of this Envoy.
const SYNCED_KEY: &str = "sluice.quota.synced";
/// The store's epoch at the last sync: a change means Redis lost its counts.
const EPOCH_KEY: &str = "sluice.quota.epoch";
/// Distinct tenant labels on the remaining-budget gauges; later tenants are not shown.
const MAX_TENANT_LABELS: usize = 256;

thread_local! {
    /// Whether this Envoy's view of the cluster is fresh, as of the last tick. Not before the
    /// first sync: until then the other instances' consumption is unknown.
    static CLUSTER_FRESH: Cell<bool> = const { Cell::new(false) };
}

/// Whether this Envoy's view of the cluster is fresh, as of the last tick.
pub fn cluster_fresh() -> bool {
    CLUSTER_FRESH.with(Cell::get)
}

/// Quota metrics, gathered in guest memory and handed to Envoy on the tick.
#[derive(Debug)]
pub struct QuotaMetrics {
    pub admitted: Counter,
    rejected: Vec<(&'static str, Counter)>,
    /// Admitted without counting in some scope: no slot or unknown state (fail-open).
    pub uncounted: Counter,
    pub sync_failures: Counter,
    /// Counts that could not be written to shared data once the request had gone (a settle,
    /// a failed report put back, a sync's answer): the limits may be off by them.
    pub write_failures: Counter,
    /// Spend rows that went to their slot's overflow row.
    pub spend_overflow: Counter,
    synced: Option<u32>,
    slots: Option<u32>,
    remaining: RefCell<HashMap<String, TenantGauges>>,
}

/// A tenant's remaining-budget gauges, each defined when its first value comes, and the values
/// to hand to Envoy on the next tick.
#[derive(Debug, Default)]
struct TenantGauges {
    requests_id: Option<u32>,
    tokens_id: Option<u32>,
    requests: Option<u64>,
    tokens: Option<u64>,
}

impl QuotaMetrics {
    pub fn define() -> Self {
        let rejected = [
            "requests",
            "tokens",
            "concurrency",
            "budget",
            "unknown",
            "unauthenticated",
            "model_not_allowed",
        ]
        .into_iter()
        .map(|r| {
            (
                r,
                Counter::define(&format!("sluice_quota_rejected_total.reason.{r}")),
            )
        })
        .collect();
        Self {
            admitted: Counter::define("sluice_quota_admitted_total"),
            rejected,
            uncounted: Counter::define("sluice_quota_uncounted_total"),
            sync_failures: Counter::define("sluice_quota_sync_failures_total"),
            write_failures: Counter::define("sluice_quota_write_failures_total"),
            spend_overflow: Counter::define("sluice_spend_overflow_total"),
            synced: hostcalls::define_metric(MetricType::Gauge, "sluice_quota_cluster_synced").ok(),
            slots: hostcalls::define_metric(MetricType::Gauge, "sluice_quota_shared_slots").ok(),
            remaining: RefCell::new(HashMap::new()),
        }
    }

    pub fn reject(&self, reason: &str) {
        if let Some((_, counter)) = self.rejected.iter().find(|(r, _)| *r == reason) {
            counter.increment();
        }
    }

    /// Records the tenant's remaining requests and tokens for its gauges. Only what is limited
    /// gets a gauge: a tenant without a tokens limit has no tokens gauge (a gauge reading 0
    /// would say it has none left), and a tenant without any limit takes no label.
    pub fn remaining(&self, tenant: &str, standing: &Standing) {
        let requests = standing.requests.map(|r| r.remaining);
        let tokens = standing.tokens.map(|r| r.remaining);
        if requests.is_none() && tokens.is_none() {
            return;
        }
        let Ok(mut map) = self.remaining.try_borrow_mut() else {
            return;
        };
        if !map.contains_key(tenant) && map.len() >= MAX_TENANT_LABELS {
            return;
        }
        let entry = map.entry(tenant.to_owned()).or_default();
        let gauge = |what: &str| {
            let label: String = tenant
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            hostcalls::define_metric(
                MetricType::Gauge,
                &format!("sluice_quota_remaining_{what}.sluice_tenant.{label}"),
            )
            .ok()
        };
        if requests.is_some() && entry.requests_id.is_none() {
            entry.requests_id = gauge("requests");
        }
        if tokens.is_some() && entry.tokens_id.is_none() {
            entry.tokens_id = gauge("tokens");
        }
        entry.requests = requests.or(entry.requests);
        entry.tokens = tokens.or(entry.tokens);
    }

    pub fn flush(&self) {
        for (_, counter) in &self.rejected {
            counter.flush();
        }
        for counter in [
            &self.admitted,
            &self.uncounted,
            &self.sync_failures,
            &self.write_failures,
            &self.spend_overflow,
        ] {
            counter.flush();
        }
        if let Ok(mut map) = self.remaining.try_borrow_mut() {
            for g in map.values_mut() {
                if let (Some(id), Some(value)) = (g.requests_id, g.requests.take()) {
                    let _ = hostcalls::record_metric(id, value);
                }
                if let (Some(id), Some(value)) = (g.tokens_id, g.tokens.take()) {
                    let _ = hostcalls::record_metric(id, value);
                }
            }
        }
    }

    /// Cluster mode only: whether this Envoy's view of the cluster is fresh (1) or stale (0).
    fn set_synced(&self, fresh: bool) {
        if let Some(id) = self.synced {
            let _ = hostcalls::record_metric(id, u64::from(fresh));
        }
    }

    pub fn set_slots(&self, slots: u32) {
        if let Some(id) = self.slots {
            let _ = hostcalls::record_metric(id, u64::from(slots));
        }
    }
}

/// Creates every slot key now (the quota slots, and the spend ledger's with the run-time
/// tenancy), so that every later write is a compare-and-swap (and the key space is fixed from
/// the start). A key that exists (it has a CAS token) is left alone, even when empty: another
/// worker may be using it. Returns false when a key could not be created: a slot written
/// without compare-and-swap could lose another worker's counts, so the configuration is
/// refused.
pub fn create_slots(quotas: &Quotas) -> bool {
    let spend_slots = if quotas.tenancy.is_some() {
        spend::SLOTS
    } else {
        0
    };
    let create = |key: String| match shared::get(&key) {
        (None, None) => shared::set(&key, &[], None) || shared::get(&key).1.is_some(),
        _ => true,
    };
    (0..quotas.slots).all(|slot| create(quota::slot_key(slot)))
        && (0..spend_slots).all(|slot| create(spend::slot_key(slot)))
}

/// On the root tick, the worker holding the lease sends this Envoy's consumption (cluster mode)
/// and its spend rows (run-time tenancy) to the picker, and writes back what the other
/// instances consumed.
pub struct QuotaSync {
    /// Cluster mode's settings; `None` with the tenancy alone (spend rows only).
    cluster: Option<Cluster>,
    /// The spend ledger is on (`quotas.tenancy`).
    spend: bool,
    picker_cluster: String,
    picker_authority: String,
    period_ms: u64,
    slots: u32,
    me: u64,
    /// The sync under way: its token and what it took out of the slots and the ledger.
    call: Option<(u32, Vec<Pushed>, Vec<Row>)>,
    due_ms: u64,
    /// The slot the next report starts at.
    cursor: u32,
}

impl QuotaSync {
    /// `None` when there is nothing to sync (neither cluster mode nor the tenancy).
    pub fn new(quotas: &Quotas) -> Option<Self> {
        let target = quotas.sync_target()?;
        Some(Self {
            cluster: quotas.cluster.clone(),
            spend: quotas.tenancy.is_some(),
            picker_cluster: target.picker_cluster.to_owned(),
            picker_authority: target.picker_authority.to_owned(),
            period_ms: target.period_ms,
            slots: quotas.slots,
            me: RandomState::new().hash_one(1u8),
            call: None,
            due_ms: 0,
            cursor: 0,
        })
    }

    pub fn tick_ms(&self) -> u64 {
        self.period_ms
    }

    pub fn on_tick(&mut self, metrics: Option<&QuotaMetrics>) {
        let now = clock::now_ms();
        if let Some(cluster) = &self.cluster {
            // Every worker: is this Envoy's view fresh?
            let synced = shared::get(SYNCED_KEY)
                .0
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map_or(0, u64::from_le_bytes);
            let fresh = now.saturating_sub(synced) <= cluster.stale_after_ms;
            CLUSTER_FRESH.with(|c| c.set(fresh));
            if let Some(m) = metrics {
                m.set_synced(fresh);
            }
        }
        if now < self.due_ms {
            return;
        }
        // A tick that comes a millisecond early must not push the sync to the tick after.
        let slack = self.period_ms / 8;
        self.due_ms = now.saturating_add(self.period_ms.saturating_sub(slack));
        let ttl = self.period_ms.saturating_mul(3);
        if !shared::hold_lease(LEASE_KEY, self.me, now, ttl) || self.call.is_some() {
            return;
        }
        let (mut request, pushed) = if self.cluster.is_some() {
            self.collect(now)
        } else {
            (SyncRequest::default(), Vec::new())
        };
        let rows = if self.spend {
            spend::take(&SharedStore)
        } else {
            Vec::new()
        };
        if self.cluster.is_none() && rows.is_empty() {
            return;
        }
        request.spend = rows.iter().map(Row::entry).collect();
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let headers = vec![
            (":method", "POST"),
            (":path", QUOTA_SYNC_PATH),
            (":authority", self.picker_authority.as_str()),
            ("content-type", "application/json"),
        ];
        let timeout = std::time::Duration::from_millis(self.period_ms.saturating_mul(5));
        match hostcalls::dispatch_http_call(
            &self.picker_cluster,
            headers,
            Some(&body),
            Vec::new(),
            timeout,
        ) {
            Ok(token) => self.call = Some((token, pushed, rows)),
            Err(status) => {
                restore(&pushed, &rows, metrics);
                if let Some(m) = metrics {
                    m.sync_failures.increment();
                }
                log::warn(&format!(
                    "cannot call picker cluster {} for quota sync: {status:?}",
                    self.picker_cluster
                ));
            }
        }
    }

    /// Takes every live slot's unreported consumption, at most `MAX_ENTRIES` entries, starting
    /// where the last report stopped (so that with more live counters than one report holds,
    /// every slot still gets its turn).
    fn collect(&mut self, now: u64) -> (SyncRequest, Vec<Pushed>) {
        let mut request = SyncRequest::default();
        let mut pushed = Vec::new();
        let start = self.cursor.min(self.slots.saturating_sub(1));
        self.cursor = 0;
        for i in 0..self.slots {
            let slot = start.saturating_add(i).checked_rem(self.slots).unwrap_or(0);
            let key = quota::slot_key(slot);
            for _ in 0..8 {
                let (bytes, cas) = shared::get(&key);
                let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
                    break;
                };
                let mut state = SlotState::decode(&bytes);
                let (before_entries, before_pushed) = (request.entries.len(), pushed.len());
                sync::collect(&mut state, slot, now, &mut request.entries, &mut pushed);
                if request.entries.len() > sync::MAX_ENTRIES {
                    request.entries.truncate(before_entries);
                    pushed.truncate(before_pushed);
                    if before_entries > 0 {
                        // Full: this slot goes first in the next report, untouched now.
                        self.cursor = slot;
                        return (request, pushed);
                    }
                    // A scope with more counters than a whole report (thousands of budgets)
                    // stays local rather than blocking every other slot's report.
                    break;
                }
                let moved = pushed
                    .get(before_pushed..)
                    .is_some_and(|p| p.iter().any(|p| p.delta != 0 || p.prev_delta != 0));
                if !moved || shared::set(&key, &state.encode(), cas) {
                    break;
                }
                request.entries.truncate(before_entries);
                pushed.truncate(before_pushed);
            }
        }
        (request, pushed)
    }

    /// The picker answered the sync (or the call failed). Returns whether `token` was ours.
    pub fn on_response(
        &mut self,
        token: u32,
        body_size: usize,
        metrics: Option<&QuotaMetrics>,
    ) -> bool {
        let Some((ours, pushed, rows)) = self.call.take() else {
            return false;
        };
        if ours != token {
            self.call = Some((ours, pushed, rows));
            return false;
        }
        let status = super::headers::get(MapType::HttpCallResponseHeaders, ":status");
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten();
        let response = match (status.as_deref(), body) {
            (Some("200"), Some(body)) => serde_json::from_slice::<SyncResponse>(&body).ok(),
            _ => None,
        };
        let Some(response) = response.filter(|r| r.totals.len() == pushed.len()) else {
            restore(&pushed, &rows, metrics);
            if let Some(m) = metrics {
                m.sync_failures.increment();
            }
            return true;
        };
        if !response.spend_stored && !rows.is_empty() {
            // The counters were applied, the spend was not: report those rows again.
            put_back(&rows, metrics);
        }
        if self.cluster.is_none() {
            return true;
        }
        let now = clock::now_ms();
        let lost = epoch_changed(response.epoch);
        if lost {
            log::warn("quota store lost its counts (Redis restarted?): reporting them again");
        }
        let mut by_slot: HashMap<u32, Vec<(&Pushed, [i64; 2])>> = HashMap::new();
        for (p, totals) in pushed.iter().zip(response.totals) {
            by_slot.entry(p.slot).or_default().push((p, totals));
        }
        let mut unwritten = 0usize;
        for (slot, entries) in by_slot {
            let written = shared::update(&quota::slot_key(slot), |current| {
                let mut state = current.map(SlotState::decode).unwrap_or_default();
                for (p, totals) in &entries {
                    sync::apply(&mut state, p, *totals, now, lost);
                }
                state.encode()
            });
            if !written {
                unwritten = unwritten.saturating_add(1);
            }
        }
        if unwritten > 0 {
            // Those slots keep their older view of the other instances: this sync does not
            // count as fresh, so that a view that stays unwritten goes stale and the fail
            // policy decides, as when the picker is down.
            log::warn(&format!(
                "quota sync: {unwritten} slots could not be updated; the view is not refreshed"
            ));
            if let Some(m) = metrics {
                m.write_failures.increment();
                m.sync_failures.increment();
            }
            return true;
        }
        let fresh = shared::set(SYNCED_KEY, &now.to_le_bytes(), None);
        CLUSTER_FRESH.with(|c| c.set(fresh));
        if let Some(m) = metrics {
            m.set_synced(fresh);
        }
        true
    }
}

/// Records the store's `epoch`; true when it differs from the one recorded before (0 is
/// unknown and never a change). When the record cannot be written, the store counts as having
/// lost its counts unless another worker recorded the same epoch meanwhile: reporting again
/// makes the totals high, never low.
fn epoch_changed(epoch: u64) -> bool {
    if epoch == 0 {
        return false;
    }
    let read = |bytes: Option<Vec<u8>>| {
        bytes
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let (bytes, cas) = shared::get(EPOCH_KEY);
    let known = read(bytes);
    if known == epoch {
        return false;
    }
    if shared::set(EPOCH_KEY, &epoch.to_le_bytes(), cas) {
        return known != 0;
    }
    known != 0 && read(shared::get(EPOCH_KEY).0) != epoch
}

/// Puts what a failed report took out of the slots and the spend ledger back into them. What
/// cannot be put back is lost to the cluster's totals (the limits may then admit that much
/// more) or to the spend reports: logged and counted.
fn restore(pushed: &[Pushed], rows: &[Row], metrics: Option<&QuotaMetrics>) {
    put_back(rows, metrics);
    let now = clock::now_ms();
    let mut lost = 0usize;
    for p in pushed.iter().filter(|p| p.delta != 0 || p.prev_delta != 0) {
        let written = shared::update(&quota::slot_key(p.slot), |current| {
            let mut state = current.map(SlotState::decode).unwrap_or_default();
            sync::restore(&mut state, p, now);
            state.encode()
        });
        if !written {
            lost = lost.saturating_add(1);
        }
    }
    if lost > 0 {
        log::warn(&format!(
            "quota sync: {lost} unreported counts could not be put back and are lost"
        ));
        if let Some(m) = metrics {
            m.write_failures.increment();
        }
    }
}

/// Puts spend rows a report took back into the ledger, to be reported again.
fn put_back(rows: &[Row], metrics: Option<&QuotaMetrics>) {
    if rows.is_empty() {
        return;
    }
    let back = spend::put_back(&SharedStore, rows);
    if let Some(m) = metrics {
        m.spend_overflow.add(back.overflowed);
    }
    if back.lost > 0 {
        log::warn(&format!(
            "spend: {} rows of a report that was not stored could not be put back",
            back.lost
        ));
        if let Some(m) = metrics {
            m.write_failures.increment();
        }
    }
}
