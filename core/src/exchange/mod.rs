//! One request through the gateway, for every host: the per-request state machine that was the
//! proxy-wasm filter's phase callbacks, as plain Rust.
//!
//! An `Exchange` lives as long as its HTTP stream (in the spirit of pingora's per-request
//! `CTX`). A host creates one per stream and calls its phase methods as Envoy drives the
//! stream:
//!
//! | phase | method | returns |
//! |---|---|---|
//! | request headers | `on_request_headers` | `RequestEffects`: header removals, then forward, read the body, or reply |
//! | each request body callback | `on_request_body` (or `on_request_trailers`) | `BodyNext`: pass, keep buffering, complete, or reply |
//! | the whole body is in | `on_request_body_complete` | `RequestEffects`: credential, body, routing headers, destination, records, then forward, hold (flow control) or reply |
//! | response headers | `on_response_headers` | `ResponseEffects`: rate-limit headers, `content-length` removal, hold or continue |
//! | each response body callback | `on_response_body` | `ResponseEffects`: a (guarded) body write, the usage header, records, continue/hold/stop |
//! | flow control woke a held request | `on_flow_woken` | `RequestEffects`: destination and forward, or a reply |
//! | the stream is over | `on_log` | the records of a response that never finished, or of a request that left while held |
//!
//! Phase methods read what they need through views (`views`: header maps, the response body,
//! stream attributes), read only when a decision needs the value, and return effects
//! (`effects`): plain data the host applies in the documented order. They make no host calls
//! of their own: shared state and host services (quota slots, in-flight counts, prefix table,
//! the picker's snapshot, clock, metrics, log) are ports (`ports`) the host implements once.
//! When the host cannot apply an effect it reports back (`on_request_write_failed`,
//! `on_response_write_failed`, `on_reply_failed`) and the exchange decides what that means:
//! a policy that cannot be applied fails closed, logged and counted.
//!
//! Phases may come in any order a stream allows (no body, a response before the body was read,
//! trailers ending a body, a local reply running the response phase): each method does nothing
//! when the exchange is not in a state where its phase means anything.

mod accounting;
mod chain;
mod decision;
mod effects;
mod flow;
mod pick;
mod ports;
mod quota;
mod records;
mod request;
mod response;
mod response_guard;
mod views;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use decision::{Field as DecisionField, QuotaDecision, fallback_record, usd};
pub use effects::{
    BodyNext, Destination, Guarded, Record, RecordKey, Reply, RequestEffects, RequestNext,
    RequestWrite, ResponseEffects, ResponseNext, Write,
};
pub use flow::flow_tick;
pub use ports::{
    Clock, Event, FlowQueues, InFlightCounts, InFlightRead, Level, Log, Ports, PrefixAffinity,
    QuotaLedger, SnapshotSource, TelemetrySink, TenancySource,
};
pub use views::{BodyView, HeaderView, HostError, StreamInfo};

use crate::canonical::ApiKind;
use crate::config::Config;
use crate::error::ApiFlavor;
use crate::guardrails::Hits;
use crate::pipeline::ModelsList;
use crate::telemetry::ApiLabel;
use accounting::Accounting;
use decision::Decision;
use flow::{FlowHeaders, Seat};
use pick::InFlightTicket;
use quota::QuotaState;

/// Everything derived from one accepted configuration, shared by the exchanges that started
/// under it.
#[derive(Debug)]
pub struct Configured {
    pub config: Config,
    /// The `/v1/models` answer, rendered once.
    pub models: ModelsList,
}

impl Configured {
    /// `now_s`: when the configuration was loaded (Unix seconds), shown as the models' creation
    /// time.
    pub fn new(config: Config, now_s: u64) -> Self {
        let models = ModelsList::new(&config.catalog, now_s);
        Self { config, models }
    }
}

/// One request's state, from its headers to the end of its stream.
pub struct Exchange {
    /// `None`: no configuration was accepted; every request is refused (fail closed).
    configured: Option<Arc<Configured>>,
    /// Varies per live request; rotates ties between equally good replicas.
    tie_breaker: u64,
    /// The error format of the API called, as known so far.
    flavor: ApiFlavor,
    /// Set while the body of an inference request is being read.
    reading_body: Option<ApiKind>,
    /// Bytes of request body buffered so far, as the host last reported.
    body_size: usize,
    /// The picked replica's in-flight count this request holds, released when it ends.
    ticket: Option<InFlightTicket>,
    /// When the inference request started (µs), for its duration and time to first token.
    started_us: u64,
    /// Token accounting (and the response guard) of a routed inference request.
    accounting: Option<Accounting>,
    /// The response headers are held until the body is read.
    holding_response: bool,
    /// Who is calling and what the request reserved.
    quota: QuotaState,
    /// Guardrail policy and request hits of a routed request, when guardrails are on.
    guard: Option<(Option<usize>, Hits)>,
    /// The API the request called, for the request counter.
    api_label: ApiLabel,
    /// The status of the local reply the filter sent, if it sent one.
    reply_status: Option<u16>,
    /// The flow-control headers the request carried (read only with flow control on).
    flow_headers: FlowHeaders,
    /// The request's place in flow control, while it has one.
    seat: Option<Seat>,
    /// Tokens the response used (input + output), once known: what flow control charges.
    used_tokens: Option<u64>,
    /// The values of the request headers models are sticky by (`targets.sticky_headers`).
    sticky_values: Vec<(String, String)>,
    /// The request went to a chain of targets: only then does the response's
    /// `targets::SERVED_BY_HEADER` (set by the upstream filter) count.
    on_chain: bool,
    /// The decisions made so far, for the access log and traces (written when the stream ends).
    decision: Decision,
}

impl Exchange {
    /// A new stream under `configured`; `tie_breaker` should differ between live requests (the
    /// proxy-wasm host passes its context id).
    pub fn new(configured: Option<Arc<Configured>>, tie_breaker: u64) -> Self {
        Self {
            configured,
            tie_breaker,
            flavor: ApiFlavor::OpenAi,
            reading_body: None,
            body_size: 0,
            ticket: None,
            started_us: 0,
            accounting: None,
            holding_response: false,
            quota: QuotaState::default(),
            guard: None,
            api_label: ApiLabel::Other,
            reply_status: None,
            flow_headers: FlowHeaders::default(),
            seat: None,
            used_tokens: None,
            sticky_values: Vec::new(),
            on_chain: false,
            decision: Decision::default(),
        }
    }
}
