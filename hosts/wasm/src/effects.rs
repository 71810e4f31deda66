//! Applying the exchange's effects through proxy-wasm host calls, in the order
//! `sluice_core::exchange::effects` documents. A request edit that fails is reported to the
//! exchange, which answers with the reply to send instead (the request fails closed); a
//! response write goes through `ffi`, which reports every status instead of trapping the VM, so
//! that a guarded write the host does not take ends the response, logged and counted.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::{ffi, log};
use sluice_core::config::DESTINATION_ENDPOINT_HEADER;
use sluice_core::exchange::{Record, RequestEffects, RequestWrite, ResponseEffects};
use sluice_core::guardrails::fail_closed::{HostError, ResponseHost};

/// The request edits of `effects` (not `next`): records, then each edit in order. `body_size`
/// is the buffered body a new body replaces. Returns the first edit that did not take.
pub fn apply_request(effects: &RequestEffects, body_size: usize) -> Result<(), RequestWrite> {
    write_records(&effects.records);
    let set = |name: &str, value: &str, what| {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).map_err(|_| what)
    };
    for name in &effects.remove_headers {
        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
            .map_err(|_| RequestWrite::RemoveHeader)?;
    }
    if let Some((name, value)) = &effects.credential {
        set(name, value, RequestWrite::Credential)?;
    }
    if let Some(body) = &effects.body {
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, body)
            .map_err(|_| RequestWrite::Body)?;
        set(
            "content-length",
            &body.len().to_string(),
            RequestWrite::Body,
        )?;
    }
    // Envoy picks the route again: with the ABI this SDK speaks (proxy-wasm 0.2.1), changing a
    // request header clears the route cache, so no separate `clear_route_cache` call (a host
    // call per request) is needed; the routing e2e tests catch it if that ever changes.
    for (name, value) in &effects.route_headers {
        set(name, value, RequestWrite::RouteHeader)?;
    }
    if let Some(destination) = &effects.destination {
        set(
            DESTINATION_ENDPOINT_HEADER,
            &destination.header_value(),
            RequestWrite::Destination,
        )?;
    }
    Ok(())
}

/// The response header edits and records of `effects` (its write is applied before, by the
/// caller, which skips the header edits when the response stopped).
pub fn apply_response_headers(effects: &ResponseEffects) {
    for name in &effects.remove_headers {
        if let Err(status) = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name) {
            log::warn(&format!("cannot remove response header {name}: {status:?}"));
        }
    }
    for (name, value) in &effects.set_headers {
        if let Err(status) =
            hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value))
        {
            log::warn(&format!("cannot set response header {name}: {status:?}"));
        }
    }
}

/// Filter state `wasm.<key>` (readable in access logs as `%FILTER_STATE(wasm.<key>:PLAIN)%`).
/// One host call each; a failure loses the record, not the request.
pub fn write_records(records: &[Record]) {
    for record in records {
        let _ = hostcalls::set_property(vec![record.key.name()], Some(record.value.as_bytes()));
    }
}

/// The response as Envoy holds it in the current body callback (`size` bytes of body), written
/// through `ffi` so that every failure comes back as an error.
pub struct EnvoyResponse {
    pub size: usize,
}

impl ResponseHost for EnvoyResponse {
    fn replace_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        ffi::set_response_body(0, self.size, body).map_err(|_| HostError)
    }

    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        ffi::set_response_header(name, value).map_err(|_| HostError)
    }

    fn local_reply(&mut self, status: u16, body: &str) -> Result<(), HostError> {
        let headers = [("content-type", "application/json")];
        ffi::send_local_response(status, &headers, body.as_bytes()).map_err(|_| HostError)
    }

    fn reset(&mut self) -> Result<(), HostError> {
        ffi::reset_response().map_err(|_| HostError)
    }
}
