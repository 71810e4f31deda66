//! What the sections that load simulated model servers share (routing, flow control): a pool of
//! `sluice-simulator` replicas (their settings, processes, metrics and the capacity their timings
//! give), the picker and the Envoys in front of them, and the open-loop load: seeded arrivals and
//! prompts, the driver that sends each request on schedule, and the reader that times the
//! streamed answer.
//!
//! Pure parts (settings, arrivals, prompts, stream reading, outcomes, occupancy) are unit-tested;
//! the processes and the driver need the `orchestrator` feature.

pub mod arrivals;
#[cfg(feature = "orchestrator")]
pub mod driver;
pub mod exchange;
#[cfg(feature = "orchestrator")]
pub mod gateways;
pub mod occupancy;
pub mod prompt;
#[cfg(feature = "orchestrator")]
pub mod replicas;
pub mod rng;
pub mod settings;
pub mod stream;
