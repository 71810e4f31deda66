//! What one request reports when it ends, handed to the host's telemetry sink
//! (`exchange::TelemetrySink::observe`), which turns it into the metrics of `table`.

use super::{ErrorType, Latencies};
use crate::canonical::ApiKind;
use crate::usage::Counts;

/// What one request that went upstream reports when it ends.
#[derive(Debug)]
pub struct Observation<'a> {
    pub api: ApiKind,
    /// The model it was routed to.
    pub model: &'a str,
    /// Its counts; `None` when the upstream answered with an error.
    pub counts: Option<&'a Counts>,
    pub latencies: Latencies,
    pub error: Option<ErrorType>,
}
