//! What a phase reads from the host: views over what Envoy holds for the current callback. A
//! view is read only when a decision needs the value, so a request that does not need it costs
//! the host nothing (in the proxy-wasm host every read is a host call that copies into the VM;
//! see `docs/host-cost.md`). Views only read: everything a phase changes comes back as effects.

use std::borrow::Cow;

pub use crate::guardrails::fail_closed::HostError;
use crate::pipeline::RequestHeaders;

/// One header map (the request's or the response's).
pub trait HeaderView {
    /// The first value of `name` (given in lower case), if the map holds it. Values that are
    /// not UTF-8 come with U+FFFD in place of what is not, which matches nothing Sluice looks
    /// for.
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// The request headers as read in one host call (the proxy-wasm host reads the whole map at
/// once: cheaper than a call per header).
impl HeaderView for RequestHeaders {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        RequestHeaders::get(self, name).map(Cow::Borrowed)
    }
}

/// The body bytes Envoy holds for one response body callback.
pub trait BodyView {
    /// How many bytes Envoy holds: this chunk's, or the whole body when it was held.
    fn size(&self) -> usize;
    /// Those bytes. `Err`: the host holds them and did not give them (a guard must then end
    /// the response rather than let them pass unread).
    fn read(&mut self) -> Result<Vec<u8>, HostError>;
}

/// What Envoy knows about the stream beyond its headers and body.
pub trait StreamInfo {
    /// The name of the route Envoy matched on the request as the client sent it
    /// (`xds.route_name`); `None` when the route has no name. Read only when a guardrail policy
    /// is chosen by route. `Err`: the host could not tell (the request then fails closed: it
    /// would otherwise get a weaker policy than its route's).
    fn route_name(&self) -> Result<Option<String>, HostError>;
    /// The status of the response sent to the client (`response.code`), if one was sent. Read
    /// when the request ends, unless the filter answered it itself.
    fn response_code(&self) -> Option<u16>;
}
