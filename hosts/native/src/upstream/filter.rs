//! One `UpstreamFilter` per attempt: Envoy's phase callbacks drive the attempt's `Attempt` and
//! the effects it returns are applied through the `Stream` seam in the order
//! `sluice_core::attempt` documents (records, header removals, header sets, the body, then
//! what comes next). Every decision is the attempt's.
//!
//! Bodies: a planned attempt's request is held until its body is whole, then replaced by the
//! target's (a retry gets the client's body again, in one callback, however an earlier attempt
//! rewrote it). A response the attempt translates whole is held likewise; a stream passes
//! chunk by chunk, each replaced by its translation. The attempt is told the whole body only
//! at its end: Envoy's buffer limit bounds what is held before that.
//!
//! The attempt ends in `on_destroy`: Envoy calls no `on_stream_complete` for an upstream
//! filter, and for an attempt that got no response (a refused connection, a reset, a per-try
//! timeout) nothing else. What it records there reaches the targets' health and the metrics;
//! Envoy 1.40 refuses filter state by then, so such an attempt is missing from
//! `sluice.failover` (`docs/envoy-notes.md`; the Wasm host's `on_done` can write it).

use std::sync::Arc;

use sluice_core::attempt::{
    Attempt, AttemptInfo, AttemptNext, AttemptPorts, AttemptRequestEffects, AttemptResponseEffects,
    AttemptResponseNext,
};
use sluice_core::exchange::{Record, RecordKey, Reply};

use super::Shared;
use super::metrics::Recorder;
use crate::gateway::views::{RequestHeaders, ResponseHeaders};
use crate::host_api::{
    BodyBuffer, BodyStatus, EndingStream, HeadersStatus, LogLevel, Stream, StreamFilter,
};

/// Short reason Envoy shows as `%RESPONSE_CODE_DETAILS%` for the attempt's own replies.
pub const REPLY_DETAILS: &str = "sluice_attempt_reply";
/// The upstream host metadata that names the attempt's target: `filter_metadata.sluice.target`.
pub const TARGET_METADATA: (&str, &str) = ("sluice", "target");

pub struct UpstreamFilter {
    attempt: Attempt,
    shared: Arc<Shared>,
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

impl UpstreamFilter {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            attempt: Attempt::new(Arc::clone(&shared.configured)),
            shared,
            reading_request: false,
            reading_response: false,
            replied: false,
        }
    }

    /// Runs one attempt phase with the ports, then hands what it counted to Envoy.
    fn phase<R>(
        &mut self,
        stream: &mut dyn Stream,
        run: impl FnOnce(&mut Attempt, &AttemptPorts<'_>, &dyn Stream) -> R,
    ) -> R {
        let shared = Arc::clone(&self.shared);
        let recorder = Recorder::new(&shared.metrics);
        let result = run(&mut self.attempt, &shared.ports(&recorder), &*stream);
        recorder.flush(stream);
        result
    }

    /// Applies a request phase's effects: records, the edits in order (one that does not take
    /// answers the attempt 500: a half-rewritten request must not reach a provider), then
    /// `next`.
    fn request(&mut self, stream: &mut dyn Stream, effects: AttemptRequestEffects) -> Then {
        write_records(stream, &effects.records);
        if !apply_request(stream, &effects) {
            let reply = self.phase(stream, |attempt, ports, _| attempt.write_failed(ports));
            self.send(stream, &reply);
            return Then::Replied;
        }
        match effects.next {
            AttemptNext::Continue => Then::Continue,
            AttemptNext::ReadBody => Then::ReadBody,
            AttemptNext::Reply(reply) => {
                self.send(stream, &reply);
                Then::Replied
            }
        }
    }

    /// The request's whole body (`body`; empty for a request without one) for the target.
    fn request_body_complete(&mut self, stream: &mut dyn Stream, body: &[u8]) -> Then {
        self.reading_request = false;
        let effects = self.phase(stream, |attempt, ports, _| {
            attempt.on_request_body(ports, body, true)
        });
        self.request(stream, effects)
    }

    /// Sends the attempt's reply; Envoy does not retry it.
    fn send(&mut self, stream: &mut dyn Stream, reply: &Reply) {
        self.replied = true;
        let headers: Vec<(&str, &[u8])> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .collect();
        stream.send_response(reply.status, &headers, reply.body.as_bytes(), REPLY_DETAILS);
    }

    /// Applies a response phase's records and header edits; returns whether the body (if any)
    /// took.
    fn response(&mut self, stream: &mut dyn Stream, effects: &AttemptResponseEffects) -> bool {
        write_records(stream, &effects.records);
        for name in &effects.remove_headers {
            stream.remove_response_header(name);
        }
        for (name, value) in &effects.set_headers {
            if !stream.set_response_header(name, value.as_bytes()) {
                stream.log(
                    LogLevel::Warn,
                    &format!("attempt: cannot set the response header {name}"),
                );
            }
        }
        match &effects.body {
            Some(body) => replace_response_body(stream, body),
            None => true,
        }
    }
}

impl StreamFilter for UpstreamFilter {
    /// Returns `Continue` for an attempt Sluice does not manage or one that needs no body
    /// rewrite, `StopIteration` while the body is read (or after a reply).
    fn on_request_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        let host_target = stream
            .host_metadata(TARGET_METADATA.0, TARGET_METADATA.1)
            .map(|t| String::from_utf8_lossy(t).into_owned());
        let previous = stream
            .filter_state(RecordKey::Failover.name())
            .map(|r| String::from_utf8_lossy(r).into_owned());
        let info = AttemptInfo {
            host_target: host_target.as_deref(),
            previous_record: previous.as_deref(),
        };
        let effects = self.phase(stream, |attempt, ports, stream| {
            attempt.on_request_headers(ports, &RequestHeaders(stream), &info)
        });
        let then = match self.request(stream, effects) {
            // No body callback will come: the body is empty.
            Then::ReadBody if end_of_stream => self.request_body_complete(stream, b""),
            then => then,
        };
        match then {
            Then::Continue => HeadersStatus::Continue,
            Then::ReadBody => {
                self.reading_request = true;
                HeadersStatus::StopIteration
            }
            Then::Replied => HeadersStatus::StopIteration,
        }
    }

    /// Buffers until the body is whole (`StopIterationAndBuffer`), then lets the rewritten
    /// request go (`Continue`), or stops it after a reply (`StopIterationNoBuffer`).
    fn on_request_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        if !self.reading_request {
            return BodyStatus::Continue;
        }
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        let body = stream.request_body().concat();
        match self.request_body_complete(stream, &body) {
            Then::Continue | Then::ReadBody => BodyStatus::Continue,
            Then::Replied => BodyStatus::StopIterationNoBuffer,
        }
    }

    /// Records the outcome and names the target; returns `StopIteration` while a body to
    /// translate whole is read, else `Continue`. The status is never changed: Envoy's retry
    /// decision reads it after this filter.
    fn on_response_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        let Some(status) = stream
            .response_header(":status")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<u16>().ok())
        else {
            // Not a response the attempt can read: `on_destroy` records it as none.
            stream.log(
                LogLevel::Warn,
                "attempt: a response without a readable :status",
            );
            return HeadersStatus::Continue;
        };
        let effects = self.phase(stream, |attempt, ports, stream| {
            attempt.on_response_headers(ports, status, &ResponseHeaders(stream))
        });
        self.response(stream, &effects);
        match effects.next {
            AttemptResponseNext::Continue => HeadersStatus::Continue,
            AttemptResponseNext::ReadBody if end_of_stream => {
                // No body callback will come, and none can be added here.
                let effects = self.phase(stream, |attempt, ports, _| {
                    attempt.on_response_body(ports, b"", true)
                });
                if !self.response(stream, &effects) {
                    stream.log(
                        LogLevel::Warn,
                        "attempt: an empty response's translation could not be added",
                    );
                }
                HeadersStatus::Continue
            }
            AttemptResponseNext::ReadBody => {
                self.reading_response = true;
                HeadersStatus::StopIteration
            }
        }
    }

    /// A body held whole is buffered (`StopIterationAndBuffer`) until its end, then replaced
    /// by its translation; a stream's chunks are replaced as they pass (`Continue`).
    fn on_response_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        if self.reading_response && !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        // Held: the whole body; passing: this callback's chunk (nothing was held back).
        let body = stream.response_body().concat();
        let effects = self.phase(stream, |attempt, ports, _| {
            attempt.on_response_body(ports, &body, end_of_stream)
        });
        self.reading_response = false;
        if !self.response(stream, &effects) {
            // The client would get the target's own bytes in the wrong API: end it instead.
            stream.log(
                LogLevel::Error,
                "attempt: the translated response body could not be written",
            );
            let reply = self.phase(stream, |attempt, ports, _| attempt.write_failed(ports));
            self.send(stream, &reply);
            return BodyStatus::StopIterationNoBuffer;
        }
        BodyStatus::Continue
    }

    /// The attempt is over: an attempt that got no response is recorded as a failure of its
    /// target, in the health table and the metrics (not one the filter answered itself: that
    /// never reached the target). Its `sluice.failover` entry is lost: Envoy 1.40 refuses
    /// filter state here.
    fn on_destroy(&mut self, stream: &mut dyn EndingStream) {
        if self.replied {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let recorder = Recorder::new(&shared.metrics);
        let records = self.attempt.on_complete(&shared.ports(&recorder));
        recorder.flush_ending(stream);
        if !records.is_empty() {
            stream.log(
                LogLevel::Debug,
                "attempt: an attempt without a response is not in sluice.failover",
            );
        }
    }
}

/// Filter state per record; a failure loses the record, not the attempt.
fn write_records(stream: &mut dyn Stream, records: &[Record]) {
    for record in records {
        if !stream.set_filter_state(record.key.name(), record.value.as_bytes()) {
            stream.log(
                LogLevel::Warn,
                &format!("cannot record filter state {}", record.key.name()),
            );
        }
    }
}

/// The request edits in order; false as soon as one does not take.
fn apply_request(stream: &mut dyn Stream, effects: &AttemptRequestEffects) -> bool {
    for name in &effects.remove_headers {
        if !stream.remove_request_header(name) {
            return false;
        }
    }
    for (name, value) in &effects.set_headers {
        if !stream.set_request_header(name, value.as_bytes()) {
            return false;
        }
    }
    match &effects.body {
        Some(body) => {
            let length = body.len().to_string();
            stream.replace_request_body(body)
                && stream.set_request_header("content-length", length.as_bytes())
        }
        None => true,
    }
}

/// Replaces what the callback holds (the buffered body and this callback's data) by `body`.
fn replace_response_body(stream: &mut dyn Stream, body: &[u8]) -> bool {
    stream.drain_body(BodyBuffer::BufferedResponse, usize::MAX);
    stream.drain_body(BodyBuffer::ReceivedResponse, usize::MAX);
    stream.response_body().iter().all(|chunk| chunk.is_empty())
        && stream.append_body(BodyBuffer::ReceivedResponse, body)
}
