//! The exchange's views over the stream Envoy lends one callback, and the response writes a
//! guard needs (`ResponseHost`), over the `host_api::Stream` seam. Header values are read in
//! place (zero-copy in Envoy); only values that are not UTF-8 are copied, with U+FFFD.

use std::borrow::Cow;

use sluice_core::exchange::{BodyView, HeaderView, HostError, StreamInfo};
use sluice_core::guardrails::fail_closed::ResponseHost;

use crate::host_api::{BodyBuffer, Stream, reply};

/// Short reason Envoy shows as `%RESPONSE_CODE_DETAILS%` for the gateway's own replies.
pub const REPLY_DETAILS: &str = "sluice_reply";
/// The same for a guarded response the gateway ended because its write did not take.
pub const CLOSED_DETAILS: &str = "sluice_guard_failed_closed";

pub struct RequestHeaders<'s>(pub &'s dyn Stream);

impl HeaderView for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.request_header(name).map(String::from_utf8_lossy)
    }
}

pub struct ResponseHeaders<'s>(pub &'s dyn Stream);

impl HeaderView for ResponseHeaders<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.response_header(name).map(String::from_utf8_lossy)
    }
}

/// The response body Envoy holds in this callback: this chunk, or with the response held, the
/// whole body (what earlier callbacks buffered, then this one's data).
pub struct ResponseBody<'s>(pub &'s dyn Stream);

impl BodyView for ResponseBody<'_> {
    fn size(&self) -> usize {
        self.0
            .response_body()
            .iter()
            .fold(0usize, |total, chunk| total.saturating_add(chunk.len()))
    }

    fn read(&mut self) -> Result<Vec<u8>, HostError> {
        Ok(self.0.response_body().concat())
    }
}

/// What Envoy knows about the stream: the matched route's name, and the response status the
/// filter saw go by (`response_headers`' `:status`: the upstream's, or an Envoy reply's).
pub struct Info<'s> {
    pub stream: &'s dyn Stream,
    pub status: Option<u16>,
}

impl StreamInfo for Info<'_> {
    fn route_name(&self) -> Result<Option<String>, HostError> {
        Ok(self
            .stream
            .route_name()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .filter(|name| !name.is_empty()))
    }

    fn response_code(&self) -> Option<u16> {
        self.status
    }
}

/// A guard's writes on the response of this callback. `held`: the headers are still held and
/// the body was buffered whole (both buffers hold it); otherwise only this chunk is replaced.
pub struct EnvoyResponse<'s> {
    pub stream: &'s mut dyn Stream,
    pub held: bool,
}

impl ResponseHost for EnvoyResponse<'_> {
    fn replace_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        let drained_buffered = !self.held
            || self
                .stream
                .drain_body(BodyBuffer::BufferedResponse, usize::MAX);
        let replaced = drained_buffered
            && self
                .stream
                .drain_body(BodyBuffer::ReceivedResponse, usize::MAX)
            && self.stream.append_body(BodyBuffer::ReceivedResponse, body);
        replaced.then_some(()).ok_or(HostError)
    }

    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.stream
            .set_response_header(name, value.as_bytes())
            .then_some(())
            .ok_or(HostError)
    }

    /// Envoy replaces the response while its headers are held, and resets the stream once
    /// they have left.
    fn local_reply(&mut self, status: u16, body: &str) -> Result<(), HostError> {
        self.stream.send_response(
            status,
            &[("content-type", b"application/json")],
            body.as_bytes(),
            CLOSED_DETAILS,
        );
        Ok(())
    }

    /// The ABI has no reset call: a local reply on a response whose headers have left is how
    /// a module makes Envoy reset the stream.
    fn reset(&mut self) -> Result<(), HostError> {
        let body = reply::internal_error_body(self.stream.request_header(":path"));
        self.stream.send_response(
            reply::INTERNAL_ERROR_STATUS,
            &[("content-type", b"application/json")],
            body.as_bytes(),
            CLOSED_DETAILS,
        );
        Ok(())
    }
}
