//! Token accounting on the response path: reads usage from the response as it passes (JSON
//! copied up to a limit, SSE through the incremental reader), times the request, and at the end
//! makes the token record and the observation for the telemetry sink. The response is read
//! once for the guard and the accounting (`response_read`): a guarded JSON body's one read
//! gives its usage too, and a stream is split and each event read once for both.
//!
//! What it costs the proxy-wasm host per request: two response-header reads (`:status`,
//! `content-type`), one body read per chunk (plus a write only for chunks that change), three
//! clock reads for a stream (start, first token, end; two for a JSON body) and one filter-state
//! write.
//!
//! With a response guard, a body read or write that fails must not let the upstream's bytes
//! through: the write is `Guarded` and the host ends the response when it does not take
//! (`halt`). Without one, a failed write only leaves the usage chunk the gateway asked for in
//! the stream.

use super::effects::{Guarded, Write};
use super::ports::{Clock, TelemetrySink};
use super::response_guard::{JsonOutcome, ResponseGuard};
use super::views::{BodyView, HeaderView};
use crate::canonical::ApiKind;
use crate::guardrails::fail_closed::Step;
use crate::pipeline::RoutedRequest;
use crate::response_read::StreamRead;
use crate::response_text::BodyRead;
use crate::telemetry::{Delivery, ErrorType, Observation, Timeline, latencies};
use crate::tokens::Family;
use crate::usage::{Counts, StreamReader, TokenRecord, body_counts};

/// How the response body is read.
enum Body {
    /// Not read: an error status, or not an inference response.
    Ignored,
    /// A JSON body, copied as it passes (up to the configured limit).
    Json {
        copy: Vec<u8>,
        limit: usize,
        over: bool,
        /// The body's one read, when the guard read it whole (else read at the end).
        read: Option<BodyRead>,
        /// The texts the guard's redaction changed (index in `read`'s sites, new text).
        replaced: Vec<(usize, String)>,
    },
    /// Server-sent events, read once for the guard and accounting.
    Stream(Box<StreamRead>),
}

/// One request's accounting, from the routing decision to the end of the response.
pub(super) struct Accounting {
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
    pub(super) guard: Option<ResponseGuard>,
    /// The caller's tenant, when quotas identified one.
    tenant: Option<String>,
}

/// What the response-headers phase must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadersPlan {
    Continue,
    /// Remove `content-length`: the body will change length.
    DropContentLength,
    /// Hold the headers until the body is read (the guard or the usage header needs it whole).
    Hold,
}

/// What one response body callback read.
#[derive(Default)]
pub(super) struct CallbackRead {
    /// The write for this callback, if it changes anything.
    pub write: Option<Write>,
    /// The counts, when the response is complete.
    pub counts: Option<Counts>,
}

impl Accounting {
    pub(super) fn new(
        routed: &RoutedRequest,
        started_us: u64,
        guard: Option<ResponseGuard>,
        tenant: Option<String>,
    ) -> Self {
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
            guard,
            tenant,
        }
    }

    /// Response headers: decides how the body will be read.
    pub(super) fn on_headers(
        &mut self,
        headers: &dyn HeaderView,
        max_json_bytes: u64,
        usage_header: bool,
    ) -> HeadersPlan {
        let status = headers.get(":status").and_then(|s| s.parse::<u16>().ok());
        if let Some(error) = ErrorType::of_status(status.unwrap_or(0)) {
            // The upstream refused or failed: nothing was generated; no usage to read.
            self.upstream_error = Some(error);
            self.finished = true;
            return HeadersPlan::Continue;
        }
        let streamed = headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if streamed {
            self.streamed = true;
            let read = StreamRead::new(StreamReader::new(self.family, self.strip_usage));
            if let Some(guard) = self.guard.as_mut() {
                guard.start_stream(&read);
            }
            self.body = Body::Stream(Box::new(read));
            if self.strip_usage || self.guard.is_some() {
                return HeadersPlan::DropContentLength;
            }
        } else {
            self.body = Body::Json {
                copy: Vec::new(),
                limit: usize::try_from(max_json_bytes).unwrap_or(usize::MAX),
                over: false,
                read: None,
                replaced: Vec::new(),
            };
            // The guard rewrites the whole body: hold it (and the headers) to the end.
            if usage_header || self.guard.is_some() {
                return HeadersPlan::Hold;
            }
        }
        HeadersPlan::Continue
    }

    /// One body callback (`body` holds the chunk, or the whole body when it was held). Returns
    /// the write it calls for and, when the response is complete, the counts.
    pub(super) fn on_body(
        &mut self,
        clock: &dyn Clock,
        body: &mut dyn BodyView,
        end: bool,
    ) -> CallbackRead {
        if self.finished || self.halted {
            return CallbackRead::default();
        }
        if self.guard.is_none() && matches!(self.body, Body::Json { over: true, .. }) {
            // Past `max_response_bytes` nothing more is read for usage: spare the host call.
            return CallbackRead {
                write: None,
                counts: end.then(|| self.finish()),
            };
        }
        let size = body.size();
        let read = if size > 0 {
            body.read()
        } else {
            Ok(Vec::new())
        };
        let mut chunk = match read {
            Ok(bytes) => bytes,
            // The host holds bytes and gave none: a guard cannot let them pass unread.
            Err(_) if !matches!(self.body, Body::Ignored) => {
                if let Some(guard) = &self.guard {
                    let held = matches!(self.body, Body::Json { .. });
                    return CallbackRead {
                        write: Some(Write::Guarded(guard.close(Step::ReadBody, held))),
                        counts: None,
                    };
                }
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let mut write = None;
        match &mut self.body {
            Body::Ignored => {}
            Body::Json {
                copy,
                limit,
                over,
                read,
                replaced,
            } => {
                // Held to the end: `chunk` is the whole body, read once here for the guard
                // and for the usage.
                let guarded = match self.guard.as_mut().filter(|_| end) {
                    Some(guard) => {
                        let body_read = BodyRead::new(&chunk);
                        let (outcome, texts) = guard.json(&chunk, &body_read);
                        // The usage is read from this read when it is of the whole copy.
                        if copy.is_empty() {
                            *read = Some(body_read);
                            *replaced = texts;
                        }
                        outcome
                    }
                    None => JsonOutcome::Unchanged,
                };
                // Verified on Envoy 1.40: with the response headers held, the body callback at
                // the end of the stream can still change `:status` and the other headers, and
                // replace the body; the client gets the new status, headers and body. Usage is
                // read from the upstream's body, with a redaction's texts for the estimate (the
                // redacted body differs only inside them).
                let replacement = match guarded {
                    JsonOutcome::Unchanged => None,
                    JsonOutcome::Redacted(body) => Some((body, None)),
                    JsonOutcome::Blocked { status, body } => {
                        Some((body.into_bytes(), Some(status)))
                    }
                };
                if !*over {
                    // The limit is on what would be read: the redacted body for a redaction.
                    let size = match &replacement {
                        Some((body, None)) => body.len(),
                        _ => chunk.len(),
                    };
                    if copy.len().saturating_add(size) > *limit {
                        *over = true;
                        *copy = Vec::new();
                    } else if copy.is_empty() {
                        // A held body arrives whole: keep it rather than copy it.
                        *copy = std::mem::take(&mut chunk);
                    } else {
                        copy.extend_from_slice(&chunk);
                    }
                }
                if let (Some((body, status)), Some(guard)) = (replacement, self.guard.as_ref()) {
                    write = Some(Write::Guarded(Guarded::ReplaceHeld {
                        body,
                        status,
                        fallback: guard.fallback(),
                    }));
                }
            }
            Body::Stream(read) => {
                let guard = self.guard.as_mut().and_then(ResponseGuard::stream_parts);
                let bytes = read.chunk(guard, &chunk, end);
                if end && let Some(guard) = self.guard.as_mut() {
                    guard.end_stream();
                }
                if self.first_token_us.is_none() && read.reader().saw_output {
                    self.first_token_us = Some(clock.now_us());
                }
                write = bytes.map(|bytes| match &self.guard {
                    // Guarded bytes: the upstream's must not go through in their place.
                    Some(guard) => Write::Guarded(Guarded::ReplaceChunk {
                        bytes,
                        fallback: guard.fallback(),
                    }),
                    None => Write::Plain(bytes),
                });
            }
        }
        CallbackRead {
            write,
            counts: end.then(|| self.finish()),
        }
    }

    /// The host could not carry out a guarded write and ended the response.
    pub(super) fn halt(&mut self) {
        self.halted = true;
    }

    /// Whether the response was ended because its guard could not be applied.
    pub(super) fn halted(&self) -> bool {
        self.halted
    }

    /// The counts now: at the end of the body, or when the request ends without one (the
    /// upstream cut the stream, the client went away).
    pub(super) fn finish(&mut self) -> Counts {
        self.finished = true;
        match std::mem::replace(&mut self.body, Body::Ignored) {
            Body::Ignored => Counts::from_parts(None, self.input_estimate, 0),
            Body::Json {
                copy,
                over,
                read,
                replaced,
                ..
            } => {
                if over {
                    return Counts::from_parts(None, self.input_estimate, 0);
                }
                let read = read.unwrap_or_else(|| BodyRead::new(&copy));
                body_counts(self.family, &copy, &read, &replaced, self.input_estimate)
            }
            Body::Stream(reader) => reader.finish(self.input_estimate),
        }
    }

    /// The counts of a response that ended before its end (the upstream cut the stream, the
    /// client went away): from what was seen.
    pub(super) fn finish_cut(&mut self) -> Counts {
        self.cut = true;
        self.finish()
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The model the request was routed to.
    pub(super) fn model(&self) -> &str {
        &self.model
    }

    pub(super) fn record(&self, counts: Counts) -> TokenRecord {
        TokenRecord {
            counts,
            model: self.model.clone(),
            tenant: self.tenant.clone(),
        }
    }

    /// From the request's start to the first generated text of a stream, in milliseconds.
    pub(super) fn time_to_first_token_ms(&self) -> Option<u64> {
        self.first_token_us
            .map(|first| first.saturating_sub(self.started_us) / 1000)
    }

    /// Hands the finished request's usage, latencies and cost (nano-USD, when priced) to the
    /// telemetry sink (one clock read).
    pub(super) fn observe(
        &self,
        clock: &dyn Clock,
        sink: &dyn TelemetrySink,
        record: &TokenRecord,
        cost_nano_usd: Option<u64>,
    ) {
        let c = &record.counts;
        let timeline = Timeline {
            started_us: self.started_us,
            first_output_us: self.first_token_us,
            ended_us: clock.now_us(),
        };
        let delivery = if self.streamed {
            Delivery::Streamed
        } else {
            Delivery::Whole
        };
        sink.observe(&Observation {
            api: self.api,
            model: &record.model,
            counts: Some(c),
            latencies: latencies(timeline, delivery, !self.cut, c.output),
            error: self.cut.then_some(ErrorType::Incomplete),
            cost_nano_usd,
        });
    }

    /// The upstream answered with an error status: its duration, with `error.type`. Called
    /// when the request ends; does nothing for a request that did not fail upstream.
    pub(super) fn observe_upstream_error(&self, clock: &dyn Clock, sink: &dyn TelemetrySink) {
        let Some(error) = self.upstream_error else {
            return;
        };
        let timeline = Timeline {
            started_us: self.started_us,
            first_output_us: None,
            ended_us: clock.now_us(),
        };
        sink.observe(&Observation {
            api: self.api,
            model: &self.model,
            counts: None,
            latencies: latencies(timeline, Delivery::Whole, false, 0),
            error: Some(error),
            cost_nano_usd: None,
        });
    }
}
