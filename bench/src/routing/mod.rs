//! The routing benchmark: does Sluice's replica picking serve LLM traffic better than Envoy's
//! own load balancing? Simulated vLLM replicas behind three Envoys (round robin, least-request,
//! and the Sluice filter with the picker), two workloads (tenants sharing long system prompts and
//! multi-turn histories; independent prompts), open-loop Poisson arrivals at rates up to
//! overload; TTFT, end-to-end latency, output throughput and the replicas' prefix-cache hits.
//!
//! The replicas, the Envoys in front of them and the open-loop driver are `crate::pool`'s. Pure
//! parts (workload generation, the figures and the report) are unit-tested; the run needs the
//! `orchestrator` feature.

#[cfg(feature = "orchestrator")]
pub mod cache;
pub mod report;
pub mod results;
#[cfg(feature = "orchestrator")]
pub mod run;
pub mod settings;
pub mod workload;
