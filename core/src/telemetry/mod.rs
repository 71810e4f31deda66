//! What the filter exports about requests, model by model: the mapping from OpenTelemetry's
//! GenAI metric conventions to Envoy stats (`table`), the bounded label values (`labels`) and
//! the latency arithmetic (`timing`), and what a finished request reports (`observation`). Plain
//! Rust over numbers and strings; a host's telemetry sink (`exchange::TelemetrySink`) hands
//! the results to Envoy.

pub mod labels;
mod observation;
pub mod table;
pub mod timing;

pub use labels::{ApiLabel, ErrorType, Operation, Provider, StatusClass, TokenType};
pub use observation::{Observation, Sample};
pub use table::{Attribute, Instrument, METRICS, Metric, MetricSpec, label_value, stat_name};
pub use timing::{Delivery, Latencies, Timeline, latencies};
