//! What the filter exports about requests, model by model: the mapping from OpenTelemetry's
//! GenAI metric conventions to Envoy stats (`table`), the bounded label values (`labels`) and
//! the latency arithmetic (`timing`). Plain Rust over numbers and strings; `hosts/wasm/src/telemetry.rs`
//! hands the results to Envoy.

pub mod labels;
pub mod table;
pub mod timing;

pub use labels::{ApiLabel, ErrorType, Operation, Provider, StatusClass, TokenType};
pub use table::{Attribute, Instrument, METRICS, Metric, MetricSpec, stat_name};
pub use timing::{Delivery, Latencies, Timeline, latencies};
