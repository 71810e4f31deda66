//! One `GatewayFilter` per HTTP stream: Envoy's phase callbacks drive the stream's `Exchange`
//! exactly as the proxy-wasm adapter (`hosts/wasm/src/http.rs`) does, and the effects it
//! returns are applied through the `Stream` seam in the order `sluice_core::exchange::effects`
//! documents. Every decision is the exchange's.
//!
//! Flow control: a request the exchange holds (`RequestNext::Hold`) stays stopped in its body
//! callback (`StopIterationAndBuffer`: headers and body buffered, its edits applied) and
//! registers its ticket with a scheduler made on its worker (`state::Flow`). The wake-up comes
//! back as `on_scheduled` on that worker, where the exchange's answer is applied as the
//! body-complete phase's would be, then `continue_decoding` resumes the request (or the reply
//! answers it). A stream that ends while held unregisters before its scheduler is deleted.

use std::sync::Arc;

use sluice_core::exchange::{
    BodyNext, Exchange, HostError, Ports, Record, Reply, RequestEffects, RequestNext, RequestWrite,
    ResponseEffects, ResponseNext,
};

use super::Shared;
use super::metrics::Recorder;
use super::views::{
    EnvoyResponse, Info, REPLY_DETAILS, RequestHeaders, ResponseBody, ResponseHeaders,
};
use crate::host_api::{BodyStatus, HeadersStatus, LogLevel, Stream, StreamFilter, TrailersStatus};
use crate::state::outcome_of;

/// The request header the cluster's `override_host` load-balancing policy reads.
pub use sluice_core::config::DESTINATION_ENDPOINT_HEADER;

pub struct GatewayFilter {
    exchange: Exchange,
    shared: Arc<Shared>,
    /// The response is held until its body is read whole (a guarded JSON response, the usage
    /// header): its body callbacks then see every byte so far.
    holding_response: bool,
    /// The `:status` of the response headers that went by.
    status: Option<u16>,
    /// The flow-control ticket this stream is registered under while held.
    held: Option<u64>,
}

/// What a request phase ends with.
enum Then {
    Continue,
    ReadBody,
    /// Held by flow control: stay stopped until woken (`on_scheduled`).
    Held,
    Replied,
}

impl GatewayFilter {
    pub fn new(shared: Arc<Shared>, tie_breaker: u64) -> Self {
        Self {
            exchange: Exchange::new(shared.configured.clone(), tie_breaker),
            shared,
            holding_response: false,
            status: None,
            held: None,
        }
    }

    /// Runs one phase with the ports, then hands what it counted to Envoy.
    fn phase<R>(
        &mut self,
        stream: &mut dyn Stream,
        run: impl FnOnce(&mut Exchange, &Ports<'_>, &dyn Stream) -> R,
    ) -> R {
        let shared = Arc::clone(&self.shared);
        let recorder = Recorder::new(&shared.metrics);
        let result = run(&mut self.exchange, &shared.state.ports(&recorder), &*stream);
        recorder.flush(stream);
        result
    }

    /// Applies a request phase's effects: records, then each edit in order (a failed edit
    /// fails the request closed with the reply the exchange gives), then `next`.
    fn request(&mut self, stream: &mut dyn Stream, effects: RequestEffects) -> Then {
        write_records(stream, &effects.records);
        if let Err(write) = apply_request(stream, &effects) {
            let reply = self.phase(stream, |exchange, ports, _| {
                exchange.on_request_write_failed(ports, write)
            });
            self.send(stream, &reply);
            return Then::Replied;
        }
        match effects.next {
            RequestNext::Continue => Then::Continue,
            RequestNext::ReadBody => Then::ReadBody,
            RequestNext::Reply(reply) => {
                self.send(stream, &reply);
                Then::Replied
            }
            RequestNext::Hold => self.hold(stream),
        }
    }

    /// Flow control holds the request: registers its ticket with a scheduler on this stream's
    /// worker, and stays stopped. Without a scheduler it could never be woken: it is answered
    /// with a 500 instead (and leaves the queue when the stream ends).
    fn hold(&mut self, stream: &mut dyn Stream) -> Then {
        let Some(ticket) = self.exchange.held_ticket() else {
            // Not held after all: nothing would wake it, so it must not wait.
            return self.fail_closed(stream);
        };
        self.held = Some(ticket);
        match stream.scheduler() {
            Some(scheduler) => {
                self.shared.state.flow.register(ticket, scheduler);
                Then::Held
            }
            None => {
                stream.log(
                    LogLevel::Error,
                    "flow control: Envoy gave the stream no scheduler; answering instead of holding",
                );
                self.fail_closed(stream)
            }
        }
    }

    /// Answers the request with the exchange's internal error (500 in its API's format).
    fn fail_closed(&mut self, stream: &mut dyn Stream) -> Then {
        let reply = self.phase(stream, |exchange, ports, _| {
            exchange.on_request_write_failed(ports, RequestWrite::Destination)
        });
        self.send(stream, &reply);
        Then::Replied
    }

    /// Takes this stream out of the held registry: no wake-up reaches its scheduler after this,
    /// and the scheduler is deleted here, on the stream's worker.
    fn unregister(&mut self) {
        if let Some(ticket) = self.held.take() {
            drop(self.shared.state.flow.unregister(ticket));
        }
    }

    /// Sends the exchange's reply; the request goes no further. (The ABI's `send_response`
    /// reports no failure.)
    fn send(&self, stream: &mut dyn Stream, reply: &Reply) {
        let headers: Vec<(&str, &[u8])> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .collect();
        stream.send_response(reply.status, &headers, reply.body.as_bytes(), REPLY_DETAILS);
    }

    /// The whole request body is in: read it and let the exchange route the request.
    fn complete(&mut self, stream: &mut dyn Stream) -> Then {
        let effects = self.phase(stream, |exchange, ports, stream| {
            // Envoy lends its buffer's slices: a body in one slice (a 1 KB chat, most bodies)
            // is read in place; only a body in several is joined.
            let chunks = stream.request_body();
            let joined;
            let body: &[u8] = match chunks.as_slice() {
                [] => &[],
                [one] => one,
                many => {
                    joined = many.concat();
                    &joined
                }
            };
            let info = Info {
                stream,
                status: None,
            };
            exchange.on_request_body_complete(ports, &info, Ok::<_, HostError>(body))
        });
        self.request(stream, effects)
    }

    fn body_next(&mut self, stream: &mut dyn Stream, next: BodyNext) -> Then {
        match next {
            BodyNext::Pass => Then::Continue,
            BodyNext::Buffer => Then::ReadBody,
            BodyNext::Complete { .. } => self.complete(stream),
            BodyNext::Reply(reply) => {
                self.send(stream, &reply);
                Then::Replied
            }
        }
    }

    /// Applies a response phase's effects: the write through `Write::apply` (a failure goes
    /// back to the exchange, whose answer replaces `next`), then unless stopped the header
    /// edits, then the records, then `next`.
    fn response(&mut self, stream: &mut dyn Stream, effects: &ResponseEffects) -> ResponseNext {
        let mut next = effects.next;
        if let Some(write) = &effects.write {
            let outcome = write.apply(&mut EnvoyResponse {
                stream: &mut *stream,
                held: self.holding_response,
            });
            if outcome.failed() {
                next = self.phase(stream, |exchange, ports, _| {
                    exchange.on_response_write_failed(ports, outcome)
                });
            }
        }
        if next != ResponseNext::Stop {
            for name in &effects.remove_headers {
                if !stream.remove_response_header(name) {
                    stream.log(
                        LogLevel::Warn,
                        &format!("cannot remove response header {name}"),
                    );
                }
            }
            for (name, value) in &effects.set_headers {
                if !stream.set_response_header(name, value.as_bytes()) {
                    stream.log(
                        LogLevel::Warn,
                        &format!("cannot set response header {name}"),
                    );
                }
            }
        }
        write_records(stream, &effects.records);
        next
    }
}

/// The request edits of `effects` in order; returns the first that did not take.
fn apply_request(stream: &mut dyn Stream, effects: &RequestEffects) -> Result<(), RequestWrite> {
    let take = |done: bool, what| if done { Ok(()) } else { Err(what) };
    for name in &effects.remove_headers {
        take(
            stream.remove_request_header(name),
            RequestWrite::RemoveHeader,
        )?;
    }
    if let Some((name, value)) = &effects.credential {
        take(
            stream.set_request_header(name, value.as_bytes()),
            RequestWrite::Credential,
        )?;
    }
    if let Some(body) = &effects.body {
        let length = body.len().to_string();
        take(stream.replace_request_body(body), RequestWrite::Body)?;
        take(
            stream.set_request_header("content-length", length.as_bytes()),
            RequestWrite::Body,
        )?;
    }
    for (name, value) in &effects.route_headers {
        take(
            stream.set_request_header(name, value.as_bytes()),
            RequestWrite::RouteHeader,
        )?;
    }
    if let Some(destination) = &effects.destination {
        // The first choice through the ABI: Envoy sends the first attempt there (not strict:
        // if it is gone from the cluster, the load balancer picks). Envoy's router gives the
        // override host to the first attempt only, so retries go through the cluster's load
        // balancer, which with the `override_host` policy reads the ranked list in this header
        // and keeps retries on the fallbacks.
        take(
            stream.set_request_header(
                DESTINATION_ENDPOINT_HEADER,
                destination.header_value().as_bytes(),
            ),
            RequestWrite::Destination,
        )?;
        // Not a policy: if Envoy refuses the address, the header still steers the request.
        let first = destination.endpoints.first();
        if first.is_some_and(|first| !stream.set_upstream_override_host(first, false)) {
            stream.log(
                LogLevel::Warn,
                "the picked replica is not an ip:port: left to the header",
            );
        }
    }
    if !effects.route_headers.is_empty() {
        stream.clear_route_cache();
    }
    Ok(())
}

/// Filter state `<key>` (`%FILTER_STATE(sluice.tokens:PLAIN)%`); a failure loses the record,
/// not the request.
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

impl StreamFilter for GatewayFilter {
    /// `Continue` forwards the request as it now is; `StopIteration` holds the headers while
    /// the body is read, or ends a request answered locally.
    fn on_request_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        let effects = self.phase(stream, |exchange, ports, stream| {
            let headers = RequestHeaders(stream);
            exchange.on_request_headers(ports, Ok(&headers), end_of_stream)
        });
        match self.request(stream, effects) {
            Then::Continue => HeadersStatus::Continue,
            Then::ReadBody | Then::Held | Then::Replied => HeadersStatus::StopIteration,
        }
    }

    /// `StopIterationAndBuffer` keeps buffering (headers held); `Continue` at the end sends
    /// headers and body on; `StopIterationNoBuffer` after a local reply.
    fn on_request_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        let next = self.phase(stream, |exchange, ports, stream| {
            let buffered = stream
                .request_body()
                .iter()
                .fold(0usize, |total, chunk| total.saturating_add(chunk.len()));
            exchange.on_request_body(ports, buffered, end_of_stream)
        });
        match self.body_next(stream, next) {
            Then::Continue => BodyStatus::Continue,
            // Held: the whole body stays buffered, the headers stopped, until `on_scheduled`.
            Then::ReadBody | Then::Held => BodyStatus::StopIterationAndBuffer,
            Then::Replied => BodyStatus::StopIterationNoBuffer,
        }
    }

    /// Trailers end a body that did not end on its own.
    fn on_request_trailers(&mut self, stream: &mut dyn Stream) -> TrailersStatus {
        let next = self.exchange.on_request_trailers();
        match self.body_next(stream, next) {
            Then::Continue => TrailersStatus::Continue,
            Then::ReadBody | Then::Held | Then::Replied => TrailersStatus::StopIteration,
        }
    }

    /// The rate-limit headers, and whether the body is read whole before the headers go
    /// (`StopIteration`).
    fn on_response_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        self.status = stream
            .response_header(":status")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok());
        let effects = self.phase(stream, |exchange, ports, stream| {
            exchange.on_response_headers(ports, &ResponseHeaders(stream), end_of_stream)
        });
        match self.response(stream, &effects) {
            ResponseNext::Continue => HeadersStatus::Continue,
            ResponseNext::Hold => {
                self.holding_response = true;
                HeadersStatus::StopIteration
            }
            ResponseNext::Stop => HeadersStatus::StopIteration,
        }
    }

    /// Read for usage and guarded as it passes (or, held, at its end).
    fn on_response_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        let effects = self.phase(stream, |exchange, ports, stream| {
            exchange.on_response_body(ports, &mut ResponseBody(stream), end_of_stream)
        });
        let next = self.response(stream, &effects);
        if end_of_stream {
            self.holding_response = false;
        }
        match next {
            ResponseNext::Continue => BodyStatus::Continue,
            ResponseNext::Hold => BodyStatus::StopIterationAndBuffer,
            ResponseNext::Stop => BodyStatus::StopIterationNoBuffer,
        }
    }

    /// Flow control woke the held request (on this stream's worker): the exchange's answer is
    /// applied as the body-complete phase's is, then the request resumes, or the reply went.
    fn on_scheduled(&mut self, stream: &mut dyn Stream, event_id: u64) {
        let Some(outcome) = outcome_of(event_id) else {
            return;
        };
        if self.held.is_none() {
            return;
        }
        self.unregister();
        let Some(effects) = self.phase(stream, |exchange, ports, _| {
            exchange.on_flow_woken(ports, outcome)
        }) else {
            return;
        };
        match self.request(stream, effects) {
            Then::Continue => stream.continue_decoding(),
            // A reply went out (expired, or picking refused it), or held again.
            Then::Replied | Then::Held => {}
            // Not an answer to a wake-up: nothing would resume the request.
            Then::ReadBody => {
                self.fail_closed(stream);
            }
        }
    }

    /// The stream is over (completed, reset or answered locally); runs before the access log.
    /// A held stream unregisters first; the exchange then takes it out of the queue.
    fn on_stream_complete(&mut self, stream: &mut dyn Stream) {
        self.unregister();
        let status = self.status;
        let records = self.phase(stream, |exchange, ports, stream| {
            exchange.on_log(ports, &Info { stream, status })
        });
        write_records(stream, &records);
    }
}

/// A stream destroyed without completing (never seen, but the registry must not keep a
/// scheduler Envoy is about to invalidate).
impl Drop for GatewayFilter {
    fn drop(&mut self) {
        self.unregister();
    }
}
