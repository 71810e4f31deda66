//! Flow control: when a model's pool is saturated, requests wait in Envoy (headers and body
//! buffered, the client connected) instead of queueing on a GPU or being refused, and go on in
//! priority and fairness order as capacity frees.
//!
//! - `policy`: the validated `flow_control` configuration, and how a request finds its band
//!   and fairness id.
//! - `capacity`: how many requests a pool serves at once without queueing (saturation).
//! - `queue`: one pool's queue discipline (priority bands with minimum shares, token-weighted
//!   fair sharing, time to live, bounds), as plain data every worker of a process shares.
//!
//! The exchange (`exchange::flow`) drives it through the `exchange::FlowQueues` port: the native
//! host keeps each pool's state behind a lock in process memory, the proxy-wasm host in Envoy's
//! shared data, updated by compare-and-swap; each wakes a released request on its own worker.

mod capacity;
mod policy;
mod queue;

#[cfg(test)]
mod tests;

pub use capacity::{Capacity, capacity, endpoint_room};
pub(crate) use policy::fingerprint_of;
pub use policy::{Band, Fairness, FlowControl, FlowTenant, MAX_BAND_CAPACITY, MAX_BANDS};
pub use queue::{
    Arrival, Arrived, FlowState, Held, MAX_ENTRY_BYTES, MAX_OWNERS, MAX_TAGS, OWNER_LEASE_MS,
    Outcome, Woken,
};

/// The header naming a request's objective, mapped to a band (`flow_control.objectives`), as
/// the Gateway API Inference Extension names it.
pub const OBJECTIVE_HEADER: &str = "x-gateway-inference-objective";
/// The header naming a request's fairness id, in `fairness: header` mode.
pub const FAIRNESS_HEADER: &str = "x-gateway-inference-fairness-id";

/// Hash of a fairness id, as the queue state keeps it.
pub fn fairness_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}
