//! One `AttemptFilter` per upstream attempt: the proxy-wasm callbacks of the upstream role (the
//! same `.wasm` and JSON configuration as the gateway, in a chain's cluster's upstream HTTP
//! filters, with root id `sluice.upstream`). Each reads what Envoy gives, calls the attempt's
//! `sluice_core::attempt::Attempt` and applies the effects it returns, in the order that module
//! documents. Every decision is the attempt's.
//!
//! What an upstream filter sees in Envoy 1.40 (`docs/envoy-notes.md`, "Upstream filters and
//! composite clusters"): the attempt's host metadata (`sluice.target`), the request's own
//! header map (an attempt's edits are still there for the next one), the request's filter state
//! (`wasm.sluice.failover`, written by the downstream filter and every earlier attempt), and no
//! `on_log`: an attempt ends with `on_done`, the only callback after one that got no response.
//! Filter state written there still reaches the access log.
//!
//! Bodies: the request is held until whole (`Pause`; the plugin needs
//! `allow_on_headers_stop_iteration: true`, as the gateway's does), then replaced. A response
//! translated whole is held likewise; a stream passes chunk by chunk, each replaced by its
//! translation. The attempt is told the whole body only at its end: Envoy's buffer limit bounds
//! what is held before that.

use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::effects::write_records;
use super::ports::Host;
use super::views::{RequestHeaderValues, ResponseHeaders};
use super::{ffi, log};
use sluice_core::attempt::{
    Attempt, AttemptInfo, AttemptNext, AttemptPorts, AttemptRequestEffects, AttemptResponseEffects,
    AttemptResponseNext,
};
use sluice_core::exchange::{Configured, RecordKey, Reply};

/// The plugin root id that selects the upstream role.
pub const UPSTREAM_ROOT_ID: &str = "sluice.upstream";
/// The property path of the attempt's target: its upstream host's `filter_metadata.sluice.target`.
const TARGET_METADATA: [&str; 5] = [
    "xds",
    "upstream_host_metadata",
    "filter_metadata",
    "sluice",
    "target",
];

pub struct AttemptFilter {
    /// `None` until a configuration was accepted: attempts then pass untouched.
    attempt: Option<Attempt>,
    host: Rc<Host>,
    /// The request is held until its body is whole.
    reading_request: bool,
    /// The response is held until its body is whole.
    reading_response: bool,
    /// The attempt answered itself (its request could not be put to its target, or an edit
    /// did not take): no target was asked, so its end records nothing against one.
    replied: bool,
}

/// What a request phase ends with.
enum Then {
    Continue,
    ReadBody,
    Replied,
}

impl AttemptFilter {
    pub fn new(configured: Option<Arc<Configured>>, host: Rc<Host>) -> Self {
        Self {
            attempt: configured.map(Attempt::new),
            host,
            reading_request: false,
            reading_response: false,
            replied: false,
        }
    }

    fn ports(host: &Host) -> AttemptPorts<'_> {
        AttemptPorts {
            clock: host,
            health: host,
            telemetry: host,
            log: host,
        }
    }

    /// Applies a request phase's effects: records, the edits in order (one that does not take
    /// answers the attempt 500: a half-rewritten request must not reach a provider), then
    /// `next`. `body_size`: the body Envoy holds, which a new body replaces.
    fn request(&mut self, effects: AttemptRequestEffects, body_size: usize) -> Then {
        write_records(&effects.records);
        if !apply_request(&effects, body_size) {
            let Some(attempt) = &mut self.attempt else {
                return Then::Continue;
            };
            let reply = attempt.write_failed(&Self::ports(&self.host));
            self.replied = true;
            send(&reply);
            return Then::Replied;
        }
        match effects.next {
            AttemptNext::Continue => Then::Continue,
            AttemptNext::ReadBody => Then::ReadBody,
            AttemptNext::Reply(reply) => {
                self.replied = true;
                send(&reply);
                Then::Replied
            }
        }
    }

    /// The request's whole body (`body_size` bytes Envoy holds) for the target.
    fn request_body_complete(&mut self, body_size: usize) -> Then {
        self.reading_request = false;
        let body = if body_size == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(status) => {
                    log::error(&format!(
                        "attempt: cannot read the request body: {status:?}"
                    ));
                    return self.fail();
                }
            }
        };
        let Some(attempt) = &mut self.attempt else {
            return Then::Continue;
        };
        let effects = attempt.on_request_body(&Self::ports(&self.host), &body, true);
        self.request(effects, body_size)
    }

    /// Answers the attempt 500 in the client's format (a host call it needed failed).
    fn fail(&mut self) -> Then {
        if let Some(attempt) = &mut self.attempt {
            let reply = attempt.write_failed(&Self::ports(&self.host));
            self.replied = true;
            send(&reply);
        }
        Then::Replied
    }

    /// Applies a response phase's records and header edits, then its body over the `size`
    /// bytes Envoy holds; returns whether the body (if any) took.
    fn response(effects: &AttemptResponseEffects, size: usize) -> bool {
        write_records(&effects.records);
        for name in &effects.remove_headers {
            if let Err(status) = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name) {
                log::warn(&format!(
                    "attempt: cannot remove response header {name}: {status:?}"
                ));
            }
        }
        for (name, value) in &effects.set_headers {
            if let Err(status) = ffi::set_response_header(name, value) {
                log::warn(&format!(
                    "attempt: cannot set response header {name}: {status:?}"
                ));
            }
        }
        match &effects.body {
            Some(body) => ffi::set_response_body(0, size, body).is_ok(),
            None => true,
        }
    }
}

impl Context for AttemptFilter {
    /// The attempt is over: one that got no response is recorded as a failure of its target
    /// (health, metrics, `sluice.failover`), unless the filter answered it itself (that never
    /// reached the target). Returns true: the context may go.
    fn on_done(&mut self) -> bool {
        if self.replied {
            return true;
        }
        if let Some(attempt) = &mut self.attempt {
            let records = attempt.on_complete(&Self::ports(&self.host));
            write_records(&records);
        }
        true
    }
}

impl HttpContext for AttemptFilter {
    /// `Continue` for an attempt Sluice does not manage, `Pause` while the body is read (or
    /// after a reply).
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(attempt) = &mut self.attempt else {
            return Action::Continue;
        };
        let host_target = property_text(TARGET_METADATA.to_vec());
        let previous = property_text(vec![RecordKey::Failover.name()]);
        let info = AttemptInfo {
            host_target: host_target.as_deref(),
            previous_record: previous.as_deref(),
        };
        let effects =
            attempt.on_request_headers(&Self::ports(&self.host), &RequestHeaderValues, &info);
        let then = match self.request(effects, 0) {
            // No body callback will come: the body is empty.
            Then::ReadBody if end_of_stream => self.request_body_complete(0),
            then => then,
        };
        match then {
            Then::Continue => Action::Continue,
            Then::ReadBody => {
                self.reading_request = true;
                Action::Pause
            }
            Then::Replied => Action::Pause,
        }
    }

    /// `Pause` (buffering) until the body is whole, then `Continue` with the target's body, or
    /// `Pause` after a reply.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.reading_request {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        match self.request_body_complete(body_size) {
            Then::Continue | Then::ReadBody => Action::Continue,
            Then::Replied => Action::Pause,
        }
    }

    /// Records the outcome and names the target; `Pause` while a body to translate whole is
    /// read, else `Continue`. The status is never changed: Envoy's retry decision reads it
    /// after this filter.
    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(attempt) = &mut self.attempt else {
            return Action::Continue;
        };
        let Some(status) = super::headers::get(MapType::HttpResponseHeaders, ":status")
            .and_then(|s| s.trim().parse::<u16>().ok())
        else {
            // Not a response the attempt can read: `on_done` records it as none.
            log::warn("attempt: a response without a readable :status");
            return Action::Continue;
        };
        let ports = Self::ports(&self.host);
        let effects = attempt.on_response_headers(&ports, status, &ResponseHeaders);
        Self::response(&effects, 0);
        match effects.next {
            AttemptResponseNext::Continue => Action::Continue,
            AttemptResponseNext::ReadBody if end_of_stream => {
                // No body callback will come, and none can be added here.
                let effects = attempt.on_response_body(&ports, b"", true);
                if !Self::response(&effects, 0) {
                    log::warn("attempt: an empty response's translation could not be added");
                }
                Action::Continue
            }
            AttemptResponseNext::ReadBody => {
                self.reading_response = true;
                Action::Pause
            }
        }
    }

    /// A body held whole is buffered (`Pause`) until its end, then replaced by its
    /// translation; a stream's chunks are replaced as they pass (`Continue`).
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(attempt) = &mut self.attempt else {
            return Action::Continue;
        };
        if self.reading_response && !end_of_stream {
            return Action::Pause;
        }
        self.reading_response = false;
        // Held: the whole body; passing: this callback's chunk.
        let body = if body_size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let ports = Self::ports(&self.host);
        let effects = attempt.on_response_body(&ports, &body, end_of_stream);
        if !Self::response(&effects, body_size) {
            // The client would get the target's own bytes in the wrong API: end it instead.
            log::error("attempt: the translated response body could not be written");
            let reply = attempt.write_failed(&ports);
            self.replied = true;
            send(&reply);
            return Action::Pause;
        }
        Action::Continue
    }
}

/// A property as text, if it is set and not empty.
fn property_text(path: Vec<&str>) -> Option<String> {
    let bytes = hostcalls::get_property(path).ok().flatten()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.is_empty())
}

/// The request edits in order; false as soon as one does not take.
fn apply_request(effects: &AttemptRequestEffects, body_size: usize) -> bool {
    for name in &effects.remove_headers {
        if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
            return false;
        }
    }
    for (name, value) in &effects.set_headers {
        if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_err() {
            return false;
        }
    }
    match &effects.body {
        Some(body) => {
            hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, body).is_ok()
                && hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    "content-length",
                    Some(&body.len().to_string()),
                )
                .is_ok()
        }
        None => true,
    }
}

/// Sends the attempt's reply (Envoy does not retry it); if it cannot be sent, resets the
/// attempt rather than let it go on.
fn send(reply: &Reply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if let Err(status) = ffi::send_local_response(reply.status, &headers, reply.body.as_bytes()) {
        log::error(&format!("attempt: cannot send its reply: {status:?}"));
        if let Err(status) = hostcalls::reset_http_request() {
            log::error(&format!("attempt: resetting it failed too: {status:?}"));
        }
    }
}
