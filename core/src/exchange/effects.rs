//! What a phase asks the host to do: plain data the host applies in the order documented on
//! each type. Applying an effect is the host's only job; when one does not take, the host tells
//! the exchange (`Exchange::on_request_write_failed`, `on_response_write_failed`,
//! `on_reply_failed`), which decides what that means for the request.

use crate::guardrails::fail_closed::{self, Closure, Fallback, Outcome, ResponseHost, Step};

/// A response the filter sends itself. Each header name appears once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Where the access log reads what the exchange recorded (filter state; the proxy-wasm host
/// writes `wasm.<key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: RecordKey,
    /// One JSON value.
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKey {
    /// The token record: counts, their source, model and tenant.
    Tokens,
    /// The guardrails' audit record: policy, blocking rule, hits per rule (never the text).
    Guardrails,
    /// Flow control's record: band, outcome, time held.
    Flow,
    /// The upstream attempts: each one's target and outcome (written by the upstream filter).
    Failover,
    /// One flat field of the request's decisions (`decision`).
    Decision(super::decision::Field),
}

impl RecordKey {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tokens => "sluice.tokens",
            Self::Guardrails => "sluice.guardrails",
            Self::Flow => "sluice.flow",
            Self::Failover => "sluice.failover",
            Self::Decision(field) => field.key(),
        }
    }
}

/// The replicas a request goes to, best first: the first choice, then the fallbacks for
/// Envoy's retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub endpoints: Vec<String>,
}

impl Destination {
    /// The `x-gateway-destination-endpoint` value (`ip:port,ip:port`), which Envoy's
    /// `override_host` load-balancing policy reads.
    pub fn header_value(&self) -> String {
        self.endpoints.join(",")
    }
}

/// What happens to the request after a request phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RequestNext {
    /// Send it on as it now is (proxy-wasm `Continue`).
    #[default]
    Continue,
    /// Hold the headers and buffer the body; the body phase decides (proxy-wasm `Pause`).
    ReadBody,
    /// Answer with this reply; the request goes no further.
    Reply(Reply),
    /// Keep the request held, headers and body buffered, its edits applied: flow control
    /// queued it. The host waits for the wake-up (`FlowQueues::wake`) and then applies what
    /// `Exchange::on_flow_woken` returns.
    Hold,
}

/// What a request phase asks for: `records` first (best effort), then the edits in field
/// order, then `next`. Every edit must take: when one fails, the host stops, calls
/// `Exchange::on_request_write_failed` with what failed and sends the reply it returns instead
/// of `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestEffects {
    /// Filter state to write.
    pub records: Vec<Record>,
    /// Request headers to remove (each is in the view the phase read).
    pub remove_headers: Vec<String>,
    /// The pool's own credential, in place of the client's key: (header, value).
    pub credential: Option<(String, String)>,
    /// A new request body, replacing the whole buffered one; the host sets `content-length` to
    /// its length.
    pub body: Option<Vec<u8>>,
    /// The routing headers: the model header, then the base-model header. Changing them must
    /// make Envoy match routes again (proxy-wasm ABI 0.2.1 clears the route cache on any
    /// request header change; elsewhere clear it explicitly).
    pub route_headers: Vec<(String, String)>,
    /// The picked replicas (proxy-wasm: the `x-gateway-destination-endpoint` header).
    pub destination: Option<Destination>,
    pub next: RequestNext,
}

/// Which request edit did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestWrite {
    RemoveHeader,
    Credential,
    Body,
    RouteHeader,
    Destination,
}

impl RequestWrite {
    /// The step that failed, as the log line and the 500's message name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::RemoveHeader => "removing a request header failed",
            Self::Credential => "setting the upstream credential failed",
            Self::Body | Self::RouteHeader | Self::Destination => "updating the request failed",
        }
    }
}

/// What the host does with the request body so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyNext {
    /// Not a body the exchange reads: let it pass (proxy-wasm `Continue`).
    Pass,
    /// Keep buffering; headers and body stay held (proxy-wasm `Pause`).
    Buffer,
    /// The whole body is in: read its `size` bytes and call
    /// `Exchange::on_request_body_complete`.
    Complete { size: usize },
    /// Answer with this reply (the body is too large).
    Reply(Reply),
}

/// What happens to the response after a response phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseNext {
    /// Let it pass as it now is.
    #[default]
    Continue,
    /// Hold the headers and buffer the body to its end (the guard or the usage header needs
    /// the whole body first).
    Hold,
    /// The filter ended the response (a local reply or a reset): pass nothing more of it, and
    /// do not buffer it.
    Stop,
}

/// A body write for the current response callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Replace the bytes Envoy holds for this callback. Nothing is protected by it (the usage
    /// chunk the gateway asked for): a failure is only logged.
    Plain(Vec<u8>),
    /// A guardrail's decision: a failure ends the response (fail closed).
    Guarded(Guarded),
}

/// A guardrail decision on the response and how to end the response if the host does not take
/// it (see `guardrails::fail_closed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded {
    /// Replace a held JSON response: body, `content-length`, then with a `status` (a block)
    /// `:status` and `content-type`. On a failure: a local reply with `fallback`, else a reset.
    ReplaceHeld {
        body: Vec<u8>,
        status: Option<u16>,
        fallback: Fallback,
    },
    /// Replace a chunk of a stream whose headers have left. On a failure: a reset, else a
    /// local reply.
    ReplaceChunk { bytes: Vec<u8>, fallback: Fallback },
    /// A read failed: end the response, `first` then the other closure.
    Close {
        failed: Step,
        first: Closure,
        fallback: Fallback,
    },
}

impl Write {
    /// Carries the write out through `host`. Every host applies it this way; the outcome goes
    /// back to `Exchange::on_response_write_failed` when it is not `Applied`.
    pub fn apply<H: ResponseHost>(&self, host: &mut H) -> Outcome {
        match self {
            Self::Plain(bytes) => match host.replace_body(bytes) {
                Ok(()) => Outcome::Applied,
                Err(_) => Outcome::Open {
                    failed: Step::WriteBody,
                },
            },
            Self::Guarded(Guarded::ReplaceHeld {
                body,
                status,
                fallback,
            }) => fail_closed::replace_held(host, body, *status, fallback),
            Self::Guarded(Guarded::ReplaceChunk { bytes, fallback }) => {
                fail_closed::replace_chunk(host, bytes, fallback)
            }
            Self::Guarded(Guarded::Close {
                failed,
                first,
                fallback,
            }) => fail_closed::close(host, *failed, *first, fallback),
        }
    }
}

/// What a response phase asks for: `write` first (through `Write::apply`); if its outcome is
/// not `Applied` the host calls `Exchange::on_response_write_failed`, whose answer replaces
/// `next`. Then, unless `next` is `Stop`, `remove_headers` and `set_headers` (best effort: a
/// failure is logged); then `records` (best effort, always); then `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseEffects {
    pub write: Option<Write>,
    pub remove_headers: Vec<&'static str>,
    /// Response headers to set, replacing any the upstream sent under the same name.
    pub set_headers: Vec<(&'static str, String)>,
    pub records: Vec<Record>,
    pub next: ResponseNext,
}
