//! The flow-control benchmark (issue 15): on a pool of simulated replicas overloaded 2×, does
//! Sluice with flow control serve a high band first, share a band fairly between tenants by the
//! tokens they consume, and keep a low band's minimum share, while keeping the replicas busy but
//! not queueing? Three setups side by side: plain Envoy with least-request, Sluice today (picking,
//! shedding) and Sluice with flow control; five steps: the interactive class alone (the idle
//! reference), priority, starvation, fairness between eight tenants, and a tenant with long
//! prompts.
//!
//! The replicas, Envoys and driver are `crate::pool`'s. Pure parts (settings, workload
//! generation, fair shares and Jain's index, the figures and the report) are unit-tested; the run
//! needs the `orchestrator` feature.

pub mod fairness;
pub mod report;
pub mod results;
#[cfg(feature = "orchestrator")]
pub mod run;
pub mod settings;
pub mod workload;
