//! The routing benchmark: does Sluice's replica picking serve LLM traffic better than Envoy's
//! own load balancing? Simulated vLLM replicas behind three Envoys (round robin, least-request,
//! and the Sluice filter with the picker), two workloads (tenants sharing long system prompts and
//! multi-turn histories; independent prompts), open-loop Poisson arrivals at rates up to
//! overload; TTFT, end-to-end latency, output throughput and the replicas' prefix-cache hits.
//!
//! Pure parts (workload generation, stream reading, the figures and the report) are unit-tested;
//! the processes and the load driver need the `orchestrator` feature.

#[cfg(feature = "orchestrator")]
pub mod driver;
#[cfg(feature = "orchestrator")]
pub mod gateways;
#[cfg(feature = "orchestrator")]
pub mod processes;
#[cfg(feature = "orchestrator")]
pub mod replicas;
pub mod report;
pub mod results;
pub mod rng;
#[cfg(feature = "orchestrator")]
pub mod run;
pub mod settings;
pub mod stream;
pub mod workload;
