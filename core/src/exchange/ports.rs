//! The exchange's domain ports: everything a request needs that is shared state or a host
//! service. A host implements each trait once (per Wasm VM, or per process) and hands the
//! exchange a `Ports` of references on every phase call.
//!
//! The proxy-wasm host implements them over Envoy's shared data (quota slots, in-flight counts,
//! the prefix table), a per-VM copy of the picker's snapshot, a clock cached per root tick,
//! counters gathered in guest memory until the tick, and Envoy's log. A native host shares one
//! implementation across its worker threads over process memory (locks or atomics, an
//! atomically swapped snapshot): its types are then `Send + Sync`, which these traits leave to
//! the implementation so that the Wasm host's single-threaded ones fit too.
//!
//! Every port has the same fixed memory bound whatever the host: quota slots
//! (`quotas.slots`) and spend slots (`spend::SLOTS`), in-flight counts (one map per pool,
//! `InFlight`'s bound), prefix slots (`picking::PrefixEntry` keys), one snapshot and one tenancy
//! snapshot (`tenancy`'s bounds). A port never fails a request by itself: a read
//! it cannot do reads as "nothing there", and a write it cannot do returns false where the
//! exchange must know (quota slots).

use std::sync::Arc;

use sluice_wire::Snapshot;

use crate::flow::{FlowState, Woken};
use crate::guardrails::{Direction, Guardrails, Hits};
use crate::picking::{InFlight, PrefixEntry};
use crate::quota::{self, Standing};
use crate::telemetry::{ApiLabel, Observation};
use crate::tenancy::Tenancy;

/// The ports of one phase call.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub clock: &'a dyn Clock,
    pub quota: &'a dyn QuotaLedger,
    pub in_flight: &'a dyn InFlightCounts,
    pub prefixes: &'a dyn PrefixAffinity,
    pub snapshot: &'a dyn SnapshotSource,
    pub tenancy: &'a dyn TenancySource,
    pub flow: &'a dyn FlowQueues,
    pub health: &'a dyn crate::attempt::TargetHealthStore,
    pub telemetry: &'a dyn TelemetrySink,
    pub log: &'a dyn Log,
}

impl<'a> Ports<'a> {
    /// Every port served by one value (the proxy-wasm host's, and the tests' fakes).
    pub fn of<H>(host: &'a H) -> Self
    where
        H: Clock
            + QuotaLedger
            + InFlightCounts
            + PrefixAffinity
            + SnapshotSource
            + TenancySource
            + FlowQueues
            + crate::attempt::TargetHealthStore
            + TelemetrySink
            + Log,
    {
        Self {
            clock: host,
            quota: host,
            in_flight: host,
            prefixes: host,
            snapshot: host,
            tenancy: host,
            flow: host,
            health: host,
            telemetry: host,
            log: host,
        }
    }
}

/// Time.
pub trait Clock {
    /// Unix milliseconds, as coarse as `lag_ms`: for windows, ages and staleness, which are
    /// hundreds of milliseconds or more (the Wasm host caches it per root tick: no host call).
    fn now_ms(&self) -> u64;
    /// Unix microseconds, read now: for a request's timings (one host call in Wasm).
    fn now_us(&self) -> u64;
    /// How far `now_ms` may lag behind the real time (Wasm: one root tick; 0 when read live).
    fn lag_ms(&self) -> u64;
}

/// The quota ledger: the slot store every worker shares (`quota::Store`; compare-and-swap on
/// each slot, or `Store::update` under a lock) and the cluster view's freshness.
pub trait QuotaLedger: quota::Store {
    /// Cluster mode: whether this Envoy's view of the other instances' consumption is fresh
    /// (false before the first sync). Unused without cluster mode.
    fn cluster_view_fresh(&self) -> bool;
}

/// A pool's in-flight counts as read, with the version they were read at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlightRead {
    pub counts: InFlight,
    /// The store's version of the map when read (a compare-and-swap token), if it has one.
    pub version: Option<u32>,
}

/// Requests this Envoy has in flight to each endpoint, per pool, across every worker.
pub trait InFlightCounts {
    /// `pool`'s counts now.
    fn read(&self, pool: &str) -> InFlightRead;
    /// Adds `delta` to `address`'s count in `pool` at `now_ms` (counts stop at 0;
    /// `InFlight::add` keeps the map bounded). `read` is what the caller read just before, if
    /// anything: a store with versions may write it changed without reading again, when
    /// nobody wrote since. Best effort: a count lost here expires as leaked.
    fn add(&self, pool: &str, address: &str, delta: i64, now_ms: u64, read: Option<InFlightRead>);
}

/// Which endpoint last served a prompt prefix: a fixed number of slots indexed by the hash.
pub trait PrefixAffinity {
    /// The entry in `hash`'s slot, whatever prefix it is for (the caller checks).
    fn entry(&self, hash: u64) -> Option<PrefixEntry>;
    /// Puts `entry` in its slot, replacing whatever was there. Best effort.
    fn record(&self, entry: &PrefixEntry);
}

/// The picker's latest snapshot as this host holds it.
pub trait SnapshotSource {
    fn snapshot(&self) -> Option<Arc<Snapshot>>;
}

/// The run-time tenancy (keys, tenants, projects and their limits from the companion
/// service's admin API) as this host last accepted it: `None` before the first snapshot, or
/// without `quotas.tenancy`. A snapshot that could not be fetched or was refused leaves the
/// last one in force.
pub trait TenancySource {
    fn tenancy(&self) -> Option<Arc<Tenancy>>;
}

/// The process's flow-control queues, one `FlowState` per pool, shared by every worker, and
/// the way back to a held request's own worker.
pub trait FlowQueues {
    /// Applies `change` to `pool`'s state as one atomic step and returns true. It may run
    /// `change` more than once (a compare-and-swap retry), so `change` sets its outputs afresh
    /// each run; a host may skip the write when `change` left the state as it was. Returns
    /// false when the state could not be read or written: flow control then fails closed.
    fn update(&self, pool: &str, change: &mut dyn FnMut(&mut FlowState)) -> bool;
    /// A ticket no other request held in this process has.
    fn new_ticket(&self) -> u64;
    /// This worker's token, kept with the requests it holds and handed back in `Woken`.
    fn owner(&self) -> u32;
    /// Hands `woken` to the worker holding its request, which then calls
    /// `Exchange::on_flow_woken` on that stream, on that worker. Best effort: a wake-up lost
    /// here leaves the request to the host's own check of its held requests.
    fn wake(&self, woken: &Woken);
}

/// A counted event (a counter in the host's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A client-sent copy of a header only the gateway sets was removed.
    InternalHeaderRemoved,
    /// The filter answered a request with an error itself.
    Rejected,
    /// A request failed closed: a host call a policy step needed failed (500 in its API's
    /// format, or a reset).
    FailedClosed,
    /// A request was sent to the replica the filter picked.
    Picked,
    /// No fresh snapshot: Envoy's load balancing chose.
    PickFallback,
    /// Every replica of the pool was saturated: the request was shed.
    Shed,
    QuotaAdmitted,
    /// Admitted without being counted in some scope (no slot, or unknown state, fail-open).
    QuotaUncounted,
    /// Refused by quotas; the reason's label (`quota::Reason::label`, or `unauthenticated`).
    QuotaRejected(&'static str),
    /// Counts that could not be written once the request had gone (a settle, a spend row).
    QuotaWriteFailure,
    /// A spend row went to its slot's overflow row: the ledger's slot was full.
    SpendOverflow,
    /// A guardrail decision the host did not take (the response was ended instead, or could
    /// not be).
    GuardrailBlockFailure,
    /// Flow control held a request: its pool was saturated.
    FlowHeld,
    /// A model's weighted chain started at a target out of rotation: another chain was taken
    /// (or, every chain being out, the weighted one anyway).
    ChainRerouted,
    /// A held request was released to go on.
    FlowReleased,
    /// A held request waited its band's time to live and was answered.
    FlowExpired,
    /// A request found its band's queue (or the held bytes) full and was answered.
    FlowOverflow,
    /// A held request's stream ended while it waited (the client went away).
    FlowAbandoned,
}

/// Where metrics go. Each call is bounded by the host (label sets, series); none may fail the
/// request.
pub trait TelemetrySink {
    fn count(&self, event: Event);
    /// The tenant's remaining requests and tokens after a quota decision (gauges).
    fn quota_standing(&self, tenant: &str, standing: &Standing);
    /// What the guardrails found, per rule and action.
    fn guardrail_hits(&self, guardrails: &Guardrails, direction: Direction, hits: &Hits);
    /// A request that went upstream ended: token usage and latencies.
    fn observe(&self, observation: &Observation<'_>);
    /// Flow control held a request of `fairness` in `band`: one more waiting there, until its
    /// `flow_waited` (each held request gets exactly one).
    fn flow_held(&self, band: &str, fairness: &str);
    /// A held request left the queue (released, expired or gone) after `waited_us`.
    fn flow_waited(&self, band: &str, fairness: &str, waited_us: u64);
    /// A request ended (any the filter saw): `status` is what the client got, `model` the
    /// model it was routed to.
    fn count_request(&self, api: ApiLabel, status: Option<u16>, model: Option<&str>);
    /// An upstream attempt to `target` ended with `outcome` (`AttemptOutcome::label`: `ok`,
    /// `client_error`, `rate_limited`, `overloaded`, `server_error`, `no_response`). Counted
    /// by the upstream filter; the default counts nothing (a host without that role).
    fn target_attempt(&self, target: &str, outcome: &'static str) {
        let _ = (target, outcome);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The host's log. Lines name steps, policies and rule ids; never a key or a matched text.
pub trait Log {
    fn log(&self, level: Level, message: &str);
}
