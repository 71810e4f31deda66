//! Token accounting on the response path: reads usage from the response as it passes (JSON
//! copied up to a limit, SSE through the incremental reader), times the request, and at the end
//! writes the record to filter state and the metrics.
//!
//! Host calls per request: two response-header reads, one body read per chunk (plus a write
//! only for chunks that change), three clock reads (start, first token, end) and one filter-state
//! write. Metric updates are gathered in guest memory and handed to Envoy on the root tick.
//!
//! With a response guard, a body read or write that fails must not let the upstream's bytes
//! through: `guardrails::fail_closed` ends the response instead (`halted`), and the guard logs
//! and counts it. Without one, a failed write only leaves the usage chunk the gateway asked
//! for in the stream (logged).

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use super::guardrails::{EnvoyResponse, JsonOutcome, ResponseGuard};
use crate::guardrails::fail_closed::{self, Closure, Step};
use crate::pipeline::RoutedRequest;
use crate::tokens::Family;
use crate::usage::{
    ChunkAction, Counts, StreamReader, TokenRecord, output_estimate_json, usage_from_json,
};

/// Distinct model labels at most; more models share the label `other`.
const MAX_MODEL_LABELS: usize = 64;

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
    family: Family,
    input_estimate: u64,
    strip_usage: bool,
    started_us: u64,
    first_token_us: Option<u64>,
    body: Body,
    finished: bool,
    /// The response was ended because its guard could not be applied: nothing more of it is
    /// read or passed on.
    halted: bool,
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
            family: routed.family,
            input_estimate: routed.estimate.prompt_tokens,
            strip_usage: routed.strip_usage,
            started_us,
            first_token_us: None,
            body: Body::Ignored,
            finished: false,
            halted: false,
            guard: None,
            tenant: None,
        }
    }

    /// Response headers: decides how the body will be read.
    pub fn on_headers(&mut self, max_json_bytes: u64, usage_header: bool) -> HeadersPlan {
        let header = |name| super::headers::get(MapType::HttpResponseHeaders, name);
        let ok = header(":status").is_some_and(|s| s.starts_with('2'));
        if !ok {
            // The upstream refused or failed: nothing was generated; no usage to read.
            self.finished = true;
            return HeadersPlan::Continue;
        }
        let content_type = header("content-type").unwrap_or_default();
        if content_type.starts_with("text/event-stream") {
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
                if self.first_token_us.is_none() && !chunk.is_empty() {
                    self.first_token_us = Some(now_us());
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

    pub fn is_finished(&self) -> bool {
        self.finished
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
    pub fn report(&self, record: &TokenRecord, metrics: Option<&TokenMetrics>) {
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
        let end_us = now_us();
        let duration_us = end_us.saturating_sub(self.started_us);
        let ttft_us = self
            .first_token_us
            .map(|t| t.saturating_sub(self.started_us));
        // Time per output token: from the first token to the end, over the tokens after it.
        let tpot_us = match (self.first_token_us, c.output) {
            (Some(first), output) if output > 1 => end_us
                .saturating_sub(first)
                .checked_div(output.saturating_sub(1)),
            _ => None,
        };
        metrics.observe(&record.model, c, duration_us, ttft_us, tpot_us);
    }
}

/// Metric ids of one model label.
#[derive(Debug)]
struct ModelMetrics {
    input: Option<u32>,
    output: Option<u32>,
    input_total: Option<u32>,
    output_total: Option<u32>,
    cached_total: Option<u32>,
    estimated_total: Option<u32>,
    duration: Option<u32>,
    ttft: Option<u32>,
    tpot: Option<u32>,
}

/// Token and latency metrics, named after the OpenTelemetry GenAI conventions. Envoy stat names
/// carry no labels, so the label values are in the name (`<metric>.gen_ai_token_type.<type>
/// .gen_ai_request_model.<model>`) and `envoy.yaml`'s `stats_tags` turn them into Prometheus
/// labels. Updates wait in guest memory until the root tick.
#[derive(Debug, Default)]
pub struct TokenMetrics {
    models: RefCell<HashMap<String, ModelMetrics>>,
    /// `(metric id, value)`: histogram observations and counter increments to hand to Envoy.
    pending_histograms: RefCell<Vec<(u32, u64)>>,
    pending_counters: RefCell<HashMap<u32, u64>>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

impl ModelMetrics {
    fn define(model: &str) -> Self {
        let tagged = |metric: &str, token_type: Option<&str>| match token_type {
            Some(t) => format!("{metric}.gen_ai_token_type.{t}.gen_ai_request_model.{model}"),
            None => format!("{metric}.gen_ai_request_model.{model}"),
        };
        let histogram = |metric, t| define(MetricType::Histogram, &tagged(metric, t));
        let counter = |metric, t| define(MetricType::Counter, &tagged(metric, t));
        Self {
            input: histogram("gen_ai_client_token_usage", Some("input")),
            output: histogram("gen_ai_client_token_usage", Some("output")),
            input_total: counter("sluice_tokens_total", Some("input")),
            output_total: counter("sluice_tokens_total", Some("output")),
            cached_total: counter("sluice_tokens_total", Some("cached")),
            estimated_total: counter("sluice_token_counts_estimated_total", None),
            duration: histogram("gen_ai_server_request_duration_ms", None),
            ttft: histogram("gen_ai_server_time_to_first_token_ms", None),
            tpot: histogram("gen_ai_server_time_per_output_token_us", None),
        }
    }
}

/// Model names become part of stat names: keep them to characters Envoy and Prometheus take.
fn label(model: &str) -> String {
    model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | ':' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl TokenMetrics {
    fn observe(
        &self,
        model: &str,
        counts: &Counts,
        duration_us: u64,
        ttft_us: Option<u64>,
        tpot_us: Option<u64>,
    ) {
        let Ok(mut models) = self.models.try_borrow_mut() else {
            return;
        };
        let mut key = label(model);
        if !models.contains_key(&key) && models.len() >= MAX_MODEL_LABELS {
            key = "other".to_owned();
        }
        let ids = models
            .entry(key)
            .or_insert_with_key(|key| ModelMetrics::define(key));
        let (Ok(mut histograms), Ok(mut counters)) = (
            self.pending_histograms.try_borrow_mut(),
            self.pending_counters.try_borrow_mut(),
        ) else {
            return;
        };
        let mut observe = |id: Option<u32>, value: Option<u64>| {
            if let (Some(id), Some(value)) = (id, value) {
                histograms.push((id, value));
            }
        };
        observe(ids.input, Some(counts.input));
        observe(ids.output, Some(counts.output));
        observe(ids.duration, duration_us.checked_div(1000));
        observe(ids.ttft, ttft_us.and_then(|t| t.checked_div(1000)));
        observe(ids.tpot, tpot_us);
        let mut add = |id: Option<u32>, value: u64| {
            if let (Some(id), true) = (id, value > 0) {
                let slot = counters.entry(id).or_default();
                *slot = slot.saturating_add(value);
            }
        };
        add(ids.input_total, counts.input);
        add(ids.output_total, counts.output);
        add(ids.cached_total, counts.cached);
        add(ids.estimated_total, u64::from(counts.estimated));
    }

    /// Hands what gathered to Envoy; called on the root tick.
    pub fn flush(&self) {
        if let Ok(mut histograms) = self.pending_histograms.try_borrow_mut() {
            for (id, value) in histograms.drain(..) {
                let _ = hostcalls::record_metric(id, value);
            }
        }
        if let Ok(mut counters) = self.pending_counters.try_borrow_mut() {
            for (id, value) in counters.drain() {
                let _ = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }
}
