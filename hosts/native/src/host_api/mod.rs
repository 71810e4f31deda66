//! The seam between a host and the filter logic it drives. A host (today `abi`, the Envoy dynamic
//! module bindings; the unit tests' fakes too) implements `Stream`, `ConfigInit` and
//! `ConfigContext`; filter logic implements `HttpFilterFactory` and `StreamFilter`, reads what the
//! host shows it and asks for effects (header edits, local replies, routing hints, counts). It
//! never sees a pointer, a thread or an ABI status code.
//!
//! Scaffolding for issue 14's core: `preview` is the only filter behind it for now.

mod factory;
mod filter;
pub mod reply;
mod stream;

#[cfg(test)]
pub mod fake;

pub use factory::{
    CalloutInitError, CalloutOutcome, CalloutResponse, ConfigContext, ConfigInit,
    HttpFilterFactory, MetricError, NewFactory,
};
pub use filter::{BodyStatus, HeadersStatus, StreamFilter, TrailersStatus};
pub use stream::{
    BodyBuffer, CounterId, EndingStream, GaugeId, HistogramId, LogLevel, Scheduler, Stream,
};
