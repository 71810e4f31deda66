//! TEST ONLY: the attempt probe (`attempt_probe` in the preview's configuration), which showed
//! how Envoy 1.40 runs a dynamic-module filter as an upstream HTTP filter (issue 16; the
//! findings are in `docs/envoy-notes.md`, "Upstream filters and composite clusters").
//!
//! As an upstream filter (a cluster's `HttpProtocolOptions.http_filters`), each attempt:
//! - reads the attempt's upstream host metadata `sluice.target`, `x-envoy-attempt-count` and the
//!   filter state `sluice.probe.attempts`, appends `<label>:<target>:<attempt>;` to that filter
//!   state and reads it back;
//! - sends that trace upstream as `x-probe-<label>` and back to the client as the response
//!   header `x-probe-<label>` (with the status it saw);
//! - optionally rewrites `:path`, sets and removes request headers, replaces the request body,
//!   replaces the response body (held whole), appends to every response chunk as it passes, or
//!   answers a given attempt with a local 503.
//!
//! As a downstream filter with `report`, it records what it can see of the upstream filter's
//! work: in its response-headers phase (header `x-probe-report`) and when the stream completes
//! (filter state `sluice.probe.report`, read by the access log).
//!
//! It calls `clear_route_cache` and `set_upstream_override_host` only when asked
//! (`downstream_only_calls`): they are meant for downstream filters.

use serde::Deserialize;

use crate::host_api::{
    BodyBuffer, BodyStatus, EndingStream, HeadersStatus, LogLevel, Stream, StreamFilter,
};

/// The filter state every attempt appends its trace to.
pub const ATTEMPTS_KEY: &str = "sluice.probe.attempts";
/// What a downstream probe saw when the stream completed.
pub const REPORT_KEY: &str = "sluice.probe.report";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptProbe {
    /// Names this instance in headers and traces.
    pub label: String,
    #[serde(default)]
    pub rewrite_path: Option<String>,
    /// A request header set to the label.
    #[serde(default)]
    pub set_request_header: Option<String>,
    #[serde(default)]
    pub remove_request_header: Option<String>,
    /// The whole request body is replaced by this (headers held until the body is in).
    #[serde(default)]
    pub request_body: Option<String>,
    /// The whole response body is replaced by this (headers and body held).
    #[serde(default)]
    pub response_body: Option<String>,
    /// Appended to every response body chunk as it passes.
    #[serde(default)]
    pub chunk_suffix: Option<String>,
    /// The attempt (`x-envoy-attempt-count`) answered with a local 503.
    #[serde(default)]
    pub local_reply_on_attempt: Option<u32>,
    /// Calls `clear_route_cache` and `set_upstream_override_host` (to this `ip:port`) in the
    /// request-headers phase, to see what they do in an upstream filter.
    #[serde(default)]
    pub downstream_only_calls: Option<String>,
    /// Downstream: report what the upstream filters left.
    #[serde(default)]
    pub report: bool,
}

pub struct ProbeFilter {
    probe: AttemptProbe,
    name: String,
    trace: String,
    response_held: bool,
}

impl ProbeFilter {
    pub fn new(probe: AttemptProbe, name: &str) -> Self {
        Self {
            probe,
            name: name.to_owned(),
            trace: String::new(),
            response_held: false,
        }
    }

    fn header_name(&self) -> String {
        format!("x-probe-{}", self.probe.label)
    }
}

fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(
        || "-".to_owned(),
        |bytes| String::from_utf8_lossy(bytes).into_owned(),
    )
}

impl StreamFilter for ProbeFilter {
    fn on_request_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        if self.probe.report {
            return HeadersStatus::Continue;
        }
        let entry = format!(
            "path={} content-length={} set-header={} removed-header={}",
            text(stream.request_header(":path")),
            text(stream.request_header("content-length")),
            text(
                self.probe
                    .set_request_header
                    .as_deref()
                    .and_then(|name| stream.request_header(name))
            ),
            text(
                self.probe
                    .remove_request_header
                    .as_deref()
                    .and_then(|name| stream.request_header(name))
            ),
        );
        stream.log(
            LogLevel::Info,
            &format!(
                "attempt probe {} request headers on entry: {entry}",
                self.probe.label
            ),
        );
        let target = text(stream.host_metadata("sluice", "target"));
        let attempt = text(stream.request_header("x-envoy-attempt-count"));
        let seen = text(stream.filter_state(ATTEMPTS_KEY));
        let mut appended = if seen == "-" {
            String::new()
        } else {
            seen.clone()
        };
        appended.push_str(&format!("{}:{target}:{attempt};", self.probe.label));
        let written = stream.set_filter_state(ATTEMPTS_KEY, appended.as_bytes());
        let after = text(stream.filter_state(ATTEMPTS_KEY));
        self.trace = format!(
            "name={} target={target} attempt={attempt} seen={seen} written={written} after={after}",
            self.name
        );
        stream.log(LogLevel::Info, &format!("attempt probe: {}", self.trace));
        let header = self.header_name();
        stream.set_request_header(&header, self.trace.as_bytes());
        if let Some(host) = &self.probe.downstream_only_calls {
            stream.clear_route_cache();
            let overridden = stream.set_upstream_override_host(host, true);
            stream.log(
                LogLevel::Info,
                &format!(
                    "attempt probe: clear_route_cache returned; override host {host}: {overridden}"
                ),
            );
        }
        if let Some(path) = &self.probe.rewrite_path {
            stream.set_request_header(":path", path.as_bytes());
        }
        if let Some(name) = &self.probe.set_request_header {
            stream.set_request_header(name, self.probe.label.as_bytes());
        }
        if let Some(name) = &self.probe.remove_request_header {
            stream.remove_request_header(name);
        }
        if self.probe.local_reply_on_attempt.map(|n| n.to_string()) == Some(attempt) {
            let trace = self.trace.clone();
            stream.send_response(
                503,
                &[
                    ("content-type", b"application/json"),
                    (&header, trace.as_bytes()),
                ],
                br#"{"error":"local reply from the upstream probe"}"#,
                "probe_local_reply",
            );
            return HeadersStatus::StopIteration;
        }
        if self.probe.request_body.is_some() && !end_of_stream {
            return HeadersStatus::StopIteration;
        }
        HeadersStatus::Continue
    }

    fn on_request_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        let Some(body) = &self.probe.request_body else {
            return BodyStatus::Continue;
        };
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        let length = body.len().to_string();
        let sizes: Vec<usize> = stream.request_body().iter().map(|c| c.len()).collect();
        let buffered = stream.drain_body(BodyBuffer::BufferedRequest, usize::MAX);
        let received = stream.drain_body(BodyBuffer::ReceivedRequest, usize::MAX);
        let appended = stream.append_body(BodyBuffer::ReceivedRequest, body.as_bytes());
        let header = stream.set_request_header("content-length", length.as_bytes());
        stream.log(
            LogLevel::Info,
            &format!(
                "attempt probe: request body replaced: chunks {sizes:?} drain buffered {buffered} \
                 drain received {received} append {appended} content-length {header}"
            ),
        );
        BodyStatus::Continue
    }

    fn on_response_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        if self.probe.report {
            let fs = text(stream.filter_state(ATTEMPTS_KEY));
            let up: Vec<String> = ["x-probe-up", "x-probe-a", "x-probe-b", "x-probe-c"]
                .iter()
                .filter_map(|name| {
                    stream
                        .response_header(name)
                        .map(|value| format!("{name}=[{}]", String::from_utf8_lossy(value)))
                })
                .collect();
            let report = format!("fs=[{fs}] headers={}", up.join(","));
            stream.set_response_header("x-probe-report", report.as_bytes());
            return HeadersStatus::Continue;
        }
        let status = text(stream.response_header(":status"));
        stream.log(
            LogLevel::Info,
            &format!(
                "attempt probe {} response headers: status={status} ({})",
                self.probe.label, self.trace
            ),
        );
        let value = format!("{} status={status}", self.trace);
        let header = self.header_name();
        stream.set_response_header(&header, value.as_bytes());
        if self.probe.chunk_suffix.is_some() {
            stream.remove_response_header("content-length");
        }
        if self.probe.response_body.is_some() && !end_of_stream {
            self.response_held = true;
            return HeadersStatus::StopIteration;
        }
        HeadersStatus::Continue
    }

    fn on_response_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        if let (Some(body), true) = (&self.probe.response_body, self.response_held) {
            if !end_of_stream {
                return BodyStatus::StopIterationAndBuffer;
            }
            let length = body.len().to_string();
            let replaced = stream.drain_body(BodyBuffer::BufferedResponse, usize::MAX)
                && stream.drain_body(BodyBuffer::ReceivedResponse, usize::MAX)
                && stream.append_body(BodyBuffer::ReceivedResponse, body.as_bytes())
                && stream.set_response_header("content-length", length.as_bytes());
            stream.log(
                LogLevel::Info,
                &format!("attempt probe: response body replaced: {replaced}"),
            );
            return BodyStatus::Continue;
        }
        if let Some(suffix) = &self.probe.chunk_suffix {
            let chunk: Vec<u8> = stream.response_body().concat();
            if !chunk.is_empty() {
                let mut rewritten = chunk;
                rewritten.extend_from_slice(suffix.as_bytes());
                stream.drain_body(BodyBuffer::ReceivedResponse, usize::MAX);
                stream.append_body(BodyBuffer::ReceivedResponse, &rewritten);
            }
        }
        BodyStatus::Continue
    }

    /// Logs what the attempt was: an upstream attempt that got no response gets no other
    /// callback.
    fn on_destroy(&mut self, stream: &mut dyn EndingStream) {
        if !self.probe.report {
            stream.log(
                LogLevel::Info,
                &format!(
                    "attempt probe {} destroyed ({})",
                    self.probe.label, self.trace
                ),
            );
        }
    }

    fn on_stream_complete(&mut self, stream: &mut dyn Stream) {
        if self.probe.report {
            let fs = text(stream.filter_state(ATTEMPTS_KEY));
            stream.set_filter_state(REPORT_KEY, fs.as_bytes());
            stream.log(
                LogLevel::Info,
                &format!("attempt probe report at stream complete: fs=[{fs}]"),
            );
        } else {
            stream.log(
                LogLevel::Info,
                &format!("attempt probe {} stream complete", self.probe.label),
            );
        }
    }
}
