//! Token accounting on the response path: reads usage from the response as it passes (JSON
//! copied up to a limit, SSE through the incremental reader), times the request, and at the end
//! writes the record to filter state and the metrics (`telemetry`).
//!
//! Host calls per request: two response-header reads, one body read per chunk (plus a write
//! only for chunks that change), three clock reads for a stream (start, first token, end; two
//! for a JSON body) and one filter-state write. Metric updates are gathered in guest memory and
//! handed to Envoy on the root tick.
//!
//! With a response guard, a body read or write that fails must not let the upstream's bytes
//! through: `guardrails::fail_closed` ends the response instead (`halted`), and the guard logs
//! and counts it. Without one, a failed write only leaves the usage chunk the gateway asked
//! for in the stream (logged).

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::guardrails::{EnvoyResponse, JsonOutcome, ResponseGuard};
use super::telemetry::{Observation, Telemetry};
use sluice_core::canonical::ApiKind;
use sluice_core::guardrails::fail_closed::{self, Closure, Step};
use sluice_core::pipeline::RoutedRequest;
use sluice_core::telemetry::{Delivery, ErrorType, Timeline, latencies};
use sluice_core::tokens::Family;
use sluice_core::usage::{
    ChunkAction, Counts, StreamReader, TokenRecord, output_estimate_json, usage_from_json,
};

/// Microseconds since the Unix epoch from the host clock (0 if it cannot tell).
pub fn now_us() -> u64 {
    super::clock::read_us()
}

/// How the response body is read.
enum Body {
    /// Not read: an error status, or not an inference response.
    Ignored,
    /// A JSON body, copied as it passes (up to the configured limit).
    Json {
        copy: Vec<u8>,
        limit: usize,
        over: bool,
    },
    /// Server-sent events.
    Stream(Box<StreamReader>),
}

/// One request's accounting, from the routing decision to the end of the response.
pub struct Accounting {
    model: String,
    api: ApiKind,
    family: Family,
    input_estimate: u64,
    strip_usage: bool,
    started_us: u64,
    /// When the first chunk with generated output passed (streams only).
    first_token_us: Option<u64>,
    body: Body,
    /// The body is SSE (set from the response headers).
    streamed: bool,
    finished: bool,
    /// The response was ended because its guard could not be applied: nothing more of it is
    /// read or passed on.
    halted: bool,
    /// The response ended before its end (see `finish_cut`).
    cut: bool,
    /// The upstream answered with an error status.
    upstream_error: Option<ErrorType>,
    /// Guardrails on the response, when its policy scans responses.
    pub guard: Option<ResponseGuard>,
    /// The caller's tenant, when quotas identified one.
    pub tenant: Option<String>,
}

/// What the response-headers phase must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersPlan {
    Continue,
    /// Remove `content-length`: the body will change length.
    DropContentLength,
    /// Hold the headers until the body is read, to add the usage header.
    Hold,
}

impl Accounting {
    pub fn new(routed: &RoutedRequest, started_us: u64) -> Self {
        Self {
            model: routed.model.clone(),
            api: routed.api,
            family: routed.family,
            input_estimate: routed.estimate.prompt_tokens,
            strip_usage: routed.strip_usage,
            started_us,
            first_token_us: None,
            body: Body::Ignored,
            streamed: false,
            finished: false,
            halted: false,
            cut: false,
            upstream_error: None,
            guard: None,
            tenant: None,
        }
    }

    /// Response headers: decides how the body will be read.
    pub fn on_headers(&mut self, max_json_bytes: u64, usage_header: bool) -> HeadersPlan {
        let header = |name| super::headers::get(MapType::HttpResponseHeaders, name);
        let status = header(":status").and_then(|s| s.parse::<u16>().ok());
        if let Some(error) = ErrorType::of_status(status.unwrap_or(0)) {
            // The upstream refused or failed: nothing was generated; no usage to read.
            self.upstream_error = Some(error);
            self.finished = true;
            return HeadersPlan::Continue;
        }
        let content_type = header("content-type").unwrap_or_default();
        if content_type.starts_with("text/event-stream") {
            self.streamed = true;
            self.body = Body::Stream(Box::new(StreamReader::new(self.family, self.strip_usage)));
            if let Some(guard) = self.guard.as_mut() {
                guard.start_stream();
            }
            if self.strip_usage || self.guard.is_some() {
                return HeadersPlan::DropContentLength;
            }
        } else {
            self.body = Body::Json {
                copy: Vec::new(),
                limit: usize::try_from(max_json_bytes).unwrap_or(usize::MAX),
                over: false,
            };
            // The guard rewrites the whole body: hold it (and the headers) to the end.
            if usage_header || self.guard.is_some() {
                return HeadersPlan::Hold;
            }
        }
        HeadersPlan::Continue
    }

    /// One chunk of the response body as it passes (`size` bytes, the whole buffer when the
    /// body was held). Returns the counts when the response is complete. After it, `halted`
    /// says whether the response was ended (the callback must stop it).
    pub fn on_body(&mut self, size: usize, end: bool) -> Option<Counts> {
        if self.finished || self.halted {
            return None;
        }
        if self.guard.is_none() && matches!(self.body, Body::Json { over: true, .. }) {
            // Past `max_response_bytes` nothing more is read for usage: spare the host call.
            return end.then(|| self.finish());
        }
        let read = if size > 0 {
            hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        } else {
            Ok(Some(Vec::new()))
        };
        let mut chunk = match read {
            Ok(Some(bytes)) => bytes,
            // The host has `size` bytes and gave none: a guard cannot let them pass unread.
            _ if self.guard.is_some() && !matches!(self.body, Body::Ignored) => {
                self.fail_closed(Step::ReadBody, size);
                return None;
            }
            _ => Vec::new(),
        };
        let mut envoy = EnvoyResponse { size };
        match &mut self.body {
            Body::Ignored => {}
            Body::Json { copy, limit, over } => {
                // Held to the end: `chunk` is the whole body.
                let guarded = self
                    .guard
                    .as_mut()
                    .filter(|_| end)
                    .map_or(JsonOutcome::Unchanged, |g| g.json(&chunk));
                // Verified on Envoy 1.40: with the response headers held (the headers callback
                // returned Pause/StopIteration), the body callback at the end of the stream can
                // still change `:status` and the other headers, and replace the body; the
                // client gets the new status, headers and body. Usage is still read from the
                // upstream's body (`chunk` is left as it was for a block).
                let replacement = match guarded {
                    JsonOutcome::Unchanged => None,
                    JsonOutcome::Redacted(body) => Some((body, None)),
                    JsonOutcome::Blocked { status, body } => {
                        Some((body.into_bytes(), Some(status)))
                    }
                };
                if let (Some((body, status)), Some(guard)) = (replacement, self.guard.as_mut()) {
                    let fallback = guard.fallback();
                    let outcome = fail_closed::replace_held(&mut envoy, &body, status, &fallback);
                    guard.failed(outcome);
                    self.halted = outcome.stops();
                    if status.is_none() {
                        chunk = body;
                    }
                }
                if !*over {
                    if copy.len().saturating_add(chunk.len()) > *limit {
                        *over = true;
                        *copy = Vec::new();
                    } else if copy.is_empty() {
                        // A held body arrives whole: keep it rather than copy it.
                        *copy = std::mem::take(&mut chunk);
                    } else {
                        copy.extend_from_slice(&chunk);
                    }
                }
            }
            Body::Stream(reader) => {
                let guarded = self.guard.as_mut().map(|g| g.stream_chunk(&chunk, end));
                let blocked = self
                    .guard
                    .as_ref()
                    .is_some_and(ResponseGuard::stream_blocked);
                // A block rule ended the stream for the client: it gets what the guard let out
                // (then nothing); usage is still read from the upstream's events.
                let input = guarded.as_deref().unwrap_or(&chunk);
                let read = reader.chunk(if blocked { &chunk } else { input }, end);
                let write = match read {
                    _ if blocked => Some(input.to_vec()),
                    ChunkAction::Replace(bytes) => Some(bytes),
                    ChunkAction::Pass if input != chunk.as_slice() => Some(input.to_vec()),
                    ChunkAction::Pass => None,
                };
                if self.first_token_us.is_none() && reader.saw_output {
                    self.first_token_us = Some(now_us());
                }
                match (write, self.guard.as_mut()) {
                    (None, _) => {}
                    // Guarded bytes: the upstream's must not go through in their place.
                    (Some(bytes), Some(guard)) => {
                        let fallback = guard.fallback();
                        let outcome = fail_closed::replace_chunk(&mut envoy, &bytes, &fallback);
                        guard.failed(outcome);
                        self.halted = outcome.stops();
                    }
                    (Some(bytes), None) => {
                        if super::ffi::set_response_body(0, size, &bytes).is_err() {
                            super::log::warn(
                                "removing the usage chunk the gateway asked for failed: the client gets it",
                            );
                        }
                    }
                }
            }
        }
        if end { Some(self.finish()) } else { None }
    }

    /// The guard could not read this chunk: end the response (a 500 while the headers are
    /// held, a reset once they have left).
    fn fail_closed(&mut self, step: Step, size: usize) {
        let held = matches!(self.body, Body::Json { .. });
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        let fallback = guard.fallback();
        let first = if held {
            Closure::LocalReply
        } else {
            Closure::Reset
        };
        let outcome = fail_closed::close(&mut EnvoyResponse { size }, step, first, &fallback);
        guard.failed(outcome);
        self.halted = outcome.stops();
    }

    /// Whether the response was ended because its guard could not be applied.
    pub fn halted(&self) -> bool {
        self.halted
    }

    /// The counts now: at the end of the body, or when the request ends without one (the
    /// upstream cut the stream, the client went away).
    pub fn finish(&mut self) -> Counts {
        self.finished = true;
        match std::mem::replace(&mut self.body, Body::Ignored) {
            Body::Ignored => Counts::from_parts(None, self.input_estimate, 0),
            Body::Json { copy, over, .. } => {
                let reported = if over { None } else { usage_from_json(&copy) };
                let (usage, model) = reported.map_or((None, None), |(u, m)| (Some(u), m));
                // No output count reported: estimate it from the body's texts.
                let output_estimate = if usage.is_some_and(|u| u.output.is_some()) {
                    0
                } else {
                    output_estimate_json(self.family, &copy)
                };
                let mut counts = Counts::from_parts(usage, self.input_estimate, output_estimate);
                counts.response_model = model;
                counts
            }
            Body::Stream(reader) => reader.finish(self.input_estimate),
        }
    }

    /// The counts of a response that ended before its end (the upstream cut the stream, the
    /// client went away): from what was seen.
    pub fn finish_cut(&mut self) -> Counts {
        self.cut = true;
        self.finish()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The model the request was routed to.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn record(&self, counts: Counts) -> TokenRecord {
        TokenRecord {
            counts,
            model: self.model.clone(),
            tenant: self.tenant.clone(),
        }
    }

    /// Writes the record to filter state (`wasm.sluice.tokens`, one JSON value, one host call)
    /// and the metrics.
    pub fn report(&self, record: &TokenRecord, metrics: Option<&Telemetry>) {
        let c = &record.counts;
        let value = serde_json::json!({
            "input": c.input,
            "output": c.output,
            "cached": c.cached,
            "reasoning": c.reasoning,
            "total": c.total(),
            "source": c.source(),
            "model": record.model,
            "tenant": record.tenant,
        })
        .to_string();
        let _ = hostcalls::set_property(vec!["sluice.tokens"], Some(value.as_bytes()));
        let Some(metrics) = metrics else {
            return;
        };
        let timeline = Timeline {
            started_us: self.started_us,
            first_output_us: self.first_token_us,
            ended_us: now_us(),
        };
        let delivery = if self.streamed {
            Delivery::Streamed
        } else {
            Delivery::Whole
        };
        let latencies = latencies(timeline, delivery, !self.cut, c.output);
        metrics.observe(&Observation {
            api: self.api,
            model: &record.model,
            counts: Some(c),
            latencies,
            error: self.cut.then_some(ErrorType::Incomplete),
        });
    }

    /// The upstream answered with an error status: its duration, with `error.type`. Called
    /// when the request ends; does nothing for a request that did not fail upstream.
    pub fn report_upstream_error(&self, metrics: Option<&Telemetry>) {
        let (Some(metrics), Some(error)) = (metrics, self.upstream_error) else {
            return;
        };
        let timeline = Timeline {
            started_us: self.started_us,
            first_output_us: None,
            ended_us: now_us(),
        };
        metrics.observe(&Observation {
            api: self.api,
            model: &self.model,
            counts: None,
            latencies: latencies(timeline, Delivery::Whole, false, 0),
            error: Some(error),
        });
    }
}
