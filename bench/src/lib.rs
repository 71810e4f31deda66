//! `make bench`: what Sluice costs on the request path, measured side by side with no gateway,
//! plain Envoy and LiteLLM against one fast mock upstream (the `bench` binary), plus criterion
//! micro-benchmarks of the filter's hot paths (`benches/hot_path.rs`); then how well its replica
//! picking routes LLM traffic against Envoy's own load balancing (`routing`); then how far
//! Envoys sharing a quota through the picker and Redis over-admit (`quota_cluster`); then how flow
//! control holds, prioritizes and shares a saturated pool (`flow_control`); and, on request
//! (`--only providers`), what translating for a hosted provider costs and how a chain of
//! providers fails over (`providers`).
//!
//! The library holds what both share and what can be unit-tested without processes: the request
//! bodies, the Sluice configuration under test, the statistics and the report; with the
//! `orchestrator` feature (default) also the process and load-generator code of `bench`.

pub mod bodies;
pub mod figures;
pub mod flow_control;
#[cfg(feature = "orchestrator")]
pub mod load;
#[cfg(feature = "orchestrator")]
pub mod machine;
pub mod pool;
#[cfg(feature = "orchestrator")]
pub mod procs;
pub mod providers;
pub mod quota_cluster;
pub mod report;
pub mod routing;
pub mod sections;
pub mod sluice_config;
pub mod stats;
