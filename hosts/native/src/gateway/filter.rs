//! One `GatewayFilter` per HTTP stream: Envoy's phase callbacks drive the stream's `Exchange`
//! exactly as the proxy-wasm adapter (`hosts/wasm/src/http.rs`) does, and the effects it
//! returns are applied through the `Stream` seam in the order `sluice_core::exchange::effects`
//! documents. Every decision is the exchange's.

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
}

/// What a request phase ends with.
enum Then {
    Continue,
    ReadBody,
    Replied,
}

impl GatewayFilter {
    pub fn new(shared: Arc<Shared>, tie_breaker: u64) -> Self {
        Self {
            exchange: Exchange::new(shared.configured.clone(), tie_breaker),
            shared,
            holding_response: false,
            status: None,
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
        let state = shared.state.as_ref();
        let ports = Ports {
            clock: state,
            quota: state,
            in_flight: state,
            prefixes: state,
            snapshot: state,
            flow: state,
            telemetry: &recorder,
            log: state,
        };
        let result = run(&mut self.exchange, &ports, &*stream);
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
            // Not reached yet: this host's `FlowQueues` refuses every update (flow control is
            // not wired here yet), so the exchange never holds a request.
            RequestNext::Hold => Then::ReadBody,
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
            Then::ReadBody | Then::Replied => HeadersStatus::StopIteration,
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
            Then::ReadBody => BodyStatus::StopIterationAndBuffer,
            Then::Replied => BodyStatus::StopIterationNoBuffer,
        }
    }

    /// Trailers end a body that did not end on its own.
    fn on_request_trailers(&mut self, stream: &mut dyn Stream) -> TrailersStatus {
        let next = self.exchange.on_request_trailers();
        match self.body_next(stream, next) {
            Then::Continue => TrailersStatus::Continue,
            Then::ReadBody | Then::Replied => TrailersStatus::StopIteration,
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

    /// The stream is over (completed, reset or answered locally); runs before the access log.
    fn on_stream_complete(&mut self, stream: &mut dyn Stream) {
        let status = self.status;
        let records = self.phase(stream, |exchange, ports, stream| {
            exchange.on_log(ports, &Info { stream, status })
        });
        write_records(stream, &records);
    }
}
