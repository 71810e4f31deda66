//! The exchange's decisions, natively, against fake ports and a fake host (`host.rs`) that
//! applies effects the way the proxy-wasm adapter does and can refuse any of them.
//!
//! - `phases.rs`: phases in every order a stream allows.
//! - `fail_closed.rs`: host calls that fail where a policy depends on them.
//! - `settling.rs`: reservations, usage and in-flight counts at the end.
//! - `pairs.rs`: the same answer as JSON and as a stream.
//! - `flow.rs`: holding, releasing, expiring and leaving under flow control.
//! - `chains.rs`: models served by chains of targets (weights, stickiness, rotation).
//! - `decisions.rs`: the decision fields left for the access log and traces.
//! - `tenancy.rs`: keys, limits and allowed models managed at run time, and the spend ledger.

mod chains;
mod decisions;
mod fail_closed;
mod flow;
mod host;
mod pairs;
mod phases;
mod settling;
mod tenancy;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use sluice_wire::{Endpoint, FORMAT, Lora, Pool, Snapshot};

use super::{
    BodyView, Clock, Configured, Event, FlowQueues, HostError, InFlightCounts, InFlightRead, Level,
    Log, Ports, PrefixAffinity, QuotaLedger, SnapshotSource, StreamInfo, TelemetrySink,
    TenancySource,
};
use crate::config::Config;
use crate::flow::{FlowState, Woken};
use crate::guardrails::{Direction, Guardrails, Hits};
use crate::picking::{InFlight, PrefixEntry};
use crate::quota::{SlotState, Standing, Store};
use crate::telemetry::{ApiLabel, ErrorType, Observation};
use crate::tenancy::Tenancy;
use crate::usage::Counts;

pub use host::Client;

pub const CHAT: &str = "/v1/chat/completions";
pub const MESSAGES: &str = "/v1/messages";
/// The API key of tenant `acme` in `QUOTAS`.
pub const KEY: &str = "sk-acme";

/// A configuration: one model `m` in pool `p`, plus `extra` top-level fields.
pub fn configured(extra: &str) -> Arc<Configured> {
    let json = format!(r#"{{"models":{{"m":{{"pool":"p","context_window":100000}}}}{extra}}}"#);
    let config = Config::from_json(json.as_bytes()).unwrap();
    Arc::new(Configured::new(config, 0))
}

/// `quotas` for tenant `acme` (key `KEY`) with `limits`, and `fields` more.
pub fn quotas(limits: &str, fields: &str) -> String {
    let key = crate::quota::identity::sha256(KEY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    format!(
        r#","quotas":{{"keys":[{{"sha256":"{key}","tenant":"acme"}}],"tenants":{{"acme":{{"limits":{limits}}}}}{fields}}}"#
    )
}

/// A chat body for model `m`.
pub fn chat(content: &str, extra: &str) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":{}}}],"max_tokens":20{extra}}}"#,
        serde_json::to_string(content).unwrap()
    )
}

/// A picker snapshot of pool `p` with three healthy replicas, taken at `now_ms`.
pub fn snapshot(now_ms: u64) -> Arc<Snapshot> {
    let endpoint = |address: &str, waiting| Endpoint {
        address: address.into(),
        healthy: true,
        waiting,
        running: 1,
        kv_cache_usage: 0.2,
        block_size: 16,
        lora: Lora::default(),
        metrics_age_ms: 10,
    };
    Arc::new(Snapshot {
        format: FORMAT,
        version: 1,
        taken_at_unix_ms: now_ms,
        scrape_interval_ms: 50,
        pools: vec![Pool {
            name: "p".into(),
            model: "m".into(),
            endpoints: vec![
                endpoint("10.0.0.1:80", 0),
                endpoint("10.0.0.2:80", 3),
                endpoint("10.0.0.3:80", 6),
            ],
        }],
    })
}

/// Stream attributes: no route name; Envoy sent a 503.
pub struct NoInfo;

impl StreamInfo for NoInfo {
    fn route_name(&self) -> Result<Option<String>, HostError> {
        Ok(None)
    }

    fn response_code(&self) -> Option<u16> {
        Some(503)
    }
}

/// A body that must not be read.
pub struct Unread;

impl BodyView for Unread {
    fn size(&self) -> usize {
        3
    }

    fn read(&mut self) -> Result<Vec<u8>, HostError> {
        panic!("a body nobody reads was read")
    }
}

/// What the telemetry sink got for one finished request: (model, counts, error).
pub type Observed = (String, Option<Counts>, Option<ErrorType>);
/// One request counted: (API, status, model).
pub type Counted = (ApiLabel, Option<u16>, Option<String>);

/// Every port, in memory, recording what the exchange did with it.
pub struct Fakes {
    pub now_ms: Cell<u64>,
    now_us: Cell<u64>,
    slots: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    versions: Cell<u32>,
    /// Quota slot writes fail (the ledger cannot be written).
    pub refuse_slot_writes: Cell<bool>,
    pub cluster_fresh: Cell<bool>,
    pub in_flight: RefCell<HashMap<String, InFlight>>,
    pub prefixes: RefCell<HashMap<u64, PrefixEntry>>,
    pub snapshot: RefCell<Option<Arc<Snapshot>>>,
    pub tenancy: RefCell<Option<Arc<Tenancy>>>,
    pub events: RefCell<Vec<Event>>,
    pub observed: RefCell<Vec<Observed>>,
    pub requests: RefCell<Vec<Counted>>,
    pub hits: RefCell<Vec<(Direction, Hits)>>,
    pub standings: RefCell<Vec<(String, Standing)>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub flow: RefCell<HashMap<String, FlowState>>,
    /// Flow-control updates fail (the queue state cannot be written).
    pub refuse_flow_updates: Cell<bool>,
    tickets: Cell<u64>,
    /// Every wake-up handed to the host, in order.
    pub woken: RefCell<Vec<Woken>>,
    /// Requests waiting per (band, fairness id), from `flow_held` and `flow_waited`, and each
    /// wait observed.
    pub flow_gauges: RefCell<HashMap<(String, String), i64>>,
    pub flow_waits: RefCell<Vec<(String, String, u64)>>,
    pub health: RefCell<crate::targets::HealthTable>,
}

impl Default for Fakes {
    fn default() -> Self {
        Self {
            now_ms: Cell::new(1_700_000_000_000),
            now_us: Cell::new(1_700_000_000_000_000),
            slots: RefCell::default(),
            versions: Cell::new(0),
            refuse_slot_writes: Cell::new(false),
            cluster_fresh: Cell::new(true),
            in_flight: RefCell::default(),
            prefixes: RefCell::default(),
            snapshot: RefCell::default(),
            tenancy: RefCell::default(),
            events: RefCell::default(),
            observed: RefCell::default(),
            requests: RefCell::default(),
            hits: RefCell::default(),
            standings: RefCell::default(),
            logs: RefCell::default(),
            flow: RefCell::default(),
            refuse_flow_updates: Cell::new(false),
            tickets: Cell::new(0),
            woken: RefCell::default(),
            flow_gauges: RefCell::default(),
            flow_waits: RefCell::default(),
            health: RefCell::default(),
        }
    }
}

impl crate::attempt::TargetHealthStore for Fakes {
    fn update(&self, change: &mut dyn FnMut(&mut crate::targets::HealthTable)) -> bool {
        change(&mut self.health.borrow_mut());
        true
    }

    fn read(&self) -> Option<crate::targets::HealthTable> {
        Some(self.health.borrow().clone())
    }
}

impl Fakes {
    pub fn ports(&self) -> Ports<'_> {
        Ports::of(self)
    }

    /// How many times `event` was counted.
    pub fn counted(&self, event: Event) -> usize {
        self.events.borrow().iter().filter(|e| **e == event).count()
    }

    /// The quota slot of `scope` (`t|acme`, `m|m`...).
    pub fn slot(&self, scope: &str) -> Option<SlotState> {
        self.slots
            .borrow()
            .values()
            .map(|(bytes, _)| SlotState::decode(bytes))
            .find(|state| state.scope == scope)
    }

    /// Every row of the spend ledger.
    pub fn spend(&self) -> Vec<crate::spend::Row> {
        crate::spend::take(self)
    }

    pub fn logged(&self, text: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(_, line)| line.contains(text))
    }
}

impl Clock for Fakes {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    /// Moves on 1 ms at every read, so that every timing is positive.
    fn now_us(&self) -> u64 {
        let now = self.now_us.get() + 1000;
        self.now_us.set(now);
        now
    }

    fn lag_ms(&self) -> u64 {
        100
    }
}

impl Store for Fakes {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.slots.borrow().get(key) {
            Some((bytes, version)) => (Some(bytes.clone()), Some(*version)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        if self.refuse_slot_writes.get() {
            return false;
        }
        let mut slots = self.slots.borrow_mut();
        let current = slots.get(key).map(|(_, v)| *v);
        if cas.is_some() && cas != current {
            return false;
        }
        self.versions.set(self.versions.get() + 1);
        slots.insert(key.to_owned(), (value.to_vec(), self.versions.get()));
        true
    }
}

impl QuotaLedger for Fakes {
    fn cluster_view_fresh(&self) -> bool {
        self.cluster_fresh.get()
    }
}

impl InFlightCounts for Fakes {
    fn read(&self, pool: &str) -> InFlightRead {
        InFlightRead {
            counts: self
                .in_flight
                .borrow()
                .get(pool)
                .cloned()
                .unwrap_or_default(),
            version: None,
        }
    }

    fn add(&self, pool: &str, address: &str, delta: i64, now_ms: u64, _read: Option<InFlightRead>) {
        self.in_flight
            .borrow_mut()
            .entry(pool.to_owned())
            .or_default()
            .add(address, delta, now_ms);
    }
}

impl PrefixAffinity for Fakes {
    fn entry(&self, hash: u64) -> Option<PrefixEntry> {
        self.prefixes.borrow().get(&hash).cloned()
    }

    fn record(&self, entry: &PrefixEntry) {
        self.prefixes.borrow_mut().insert(entry.hash, entry.clone());
    }
}

impl SnapshotSource for Fakes {
    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }
}

impl TenancySource for Fakes {
    fn tenancy(&self) -> Option<Arc<Tenancy>> {
        self.tenancy.borrow().clone()
    }
}

impl FlowQueues for Fakes {
    fn update(&self, pool: &str, change: &mut dyn FnMut(&mut FlowState)) -> bool {
        if self.refuse_flow_updates.get() {
            return false;
        }
        let mut states = self.flow.borrow_mut();
        let state = states.entry(pool.to_owned()).or_default();
        // Run twice on a copy first, as a compare-and-swap retry would: outputs must not pile up.
        let mut copy = state.clone();
        change(&mut copy);
        change(state);
        true
    }

    fn new_ticket(&self) -> u64 {
        self.tickets.set(self.tickets.get() + 1);
        self.tickets.get()
    }

    fn owner(&self) -> u32 {
        7
    }

    fn wake(&self, woken: &Woken) {
        self.woken.borrow_mut().push(*woken);
    }
}

impl TelemetrySink for Fakes {
    fn flow_held(&self, band: &str, fairness: &str) {
        *self
            .flow_gauges
            .borrow_mut()
            .entry((band.to_owned(), fairness.to_owned()))
            .or_default() += 1;
    }

    fn flow_waited(&self, band: &str, fairness: &str, waited_us: u64) {
        *self
            .flow_gauges
            .borrow_mut()
            .entry((band.to_owned(), fairness.to_owned()))
            .or_default() -= 1;
        self.flow_waits
            .borrow_mut()
            .push((band.to_owned(), fairness.to_owned(), waited_us));
    }

    fn count(&self, event: Event) {
        self.events.borrow_mut().push(event);
    }

    fn quota_standing(&self, tenant: &str, standing: &Standing) {
        self.standings
            .borrow_mut()
            .push((tenant.to_owned(), *standing));
    }

    fn guardrail_hits(&self, _guardrails: &Guardrails, direction: Direction, hits: &Hits) {
        self.hits.borrow_mut().push((direction, hits.clone()));
    }

    fn observe(&self, observation: &Observation<'_>) {
        self.observed.borrow_mut().push((
            observation.model.to_owned(),
            observation.counts.cloned(),
            observation.error,
        ));
    }

    fn count_request(&self, api: ApiLabel, status: Option<u16>, model: Option<&str>) {
        self.requests
            .borrow_mut()
            .push((api, status, model.map(str::to_owned)));
    }
}

impl Log for Fakes {
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}
