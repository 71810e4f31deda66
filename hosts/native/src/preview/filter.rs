//! The preview filter's factory and per-stream filter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::config::{PreviewConfig, Probe};
use crate::host_api::{
    BodyStatus, CalloutOutcome, CalloutResponse, ConfigContext, ConfigInit, CounterId, GaugeId,
    HeadersStatus, HistogramId, HttpFilterFactory, LogLevel, Scheduler, Stream, StreamFilter,
    reply,
};
use crate::ticker::Ticker;

/// The request header the filter sets to the body's size.
pub const SIZE_HEADER: &str = "x-sluice-native";
/// Client headers with this prefix are removed: they are the gateway's to set.
pub const INTERNAL_HEADER_PREFIX: &str = "x-sluice-";
/// Filter state and metadata keys the filter writes.
pub const FILTER_STATE_KEY: &str = "sluice.native.body_bytes";
pub const RESPONSE_STATE_KEY: &str = "sluice.native.response_bytes";
pub const METADATA_NAMESPACE: &str = "sluice.native";

const REQUESTS_COUNTER: &str = "sluice_native_requests";
const BODY_HISTOGRAM: &str = "sluice_native_request_body_bytes";
const LARGEST_BODY_GAUGE: &str = "sluice_native_largest_request_body_bytes";
const PROBE_COUNTER: &str = "sluice_native_probe_responses";
const PROBE_STATUS_GAUGE: &str = "sluice_native_probe_last_status";

/// The configuration's scheduler event that fires the probe.
const PROBE_EVENT: u64 = 1;
/// The stream's scheduler event that finishes a held request.
const RESUME_EVENT: u64 = 1;

/// `host_api::NewFactory` for the preview filter.
pub fn new_factory(
    init: &mut dyn ConfigInit,
    name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterFactory>, String> {
    let config = PreviewConfig::parse(config)?;
    let metrics = Metrics {
        requests: init
            .define_counter(REQUESTS_COUNTER, &["api"])
            .map_err(|error| format!("cannot define {REQUESTS_COUNTER}: {error:?}"))?,
        body_bytes: init
            .define_histogram(BODY_HISTOGRAM, &["api"])
            .map_err(|error| format!("cannot define {BODY_HISTOGRAM}: {error:?}"))?,
        largest_body: init
            .define_gauge(LARGEST_BODY_GAUGE, &[])
            .map_err(|error| format!("cannot define {LARGEST_BODY_GAUGE}: {error:?}"))?,
    };
    let probe = config
        .probe
        .clone()
        .map(|probe| Prober::start(init, probe))
        .transpose()?;
    Ok(Box::new(PreviewFactory {
        shared: Arc::new(Shared {
            config,
            metrics,
            largest_body: AtomicU64::new(0),
        }),
        prober: probe,
        name: name.to_owned(),
    }))
}

struct PreviewFactory {
    shared: Arc<Shared>,
    prober: Option<Prober>,
    /// The filter name Envoy passed (`sluice_native_preview`, or a name that starts with it).
    name: String,
}

/// What every stream of one configuration shares, on every worker thread.
struct Shared {
    config: PreviewConfig,
    metrics: Metrics,
    /// The largest request body seen by any worker (process memory, shared by all of them).
    largest_body: AtomicU64,
}

struct Metrics {
    requests: CounterId,
    body_bytes: HistogramId,
    largest_body: GaugeId,
}

impl HttpFilterFactory for PreviewFactory {
    fn new_filter(&self) -> Box<dyn StreamFilter> {
        if let Some(probe) = &self.shared.config.attempt_probe {
            return Box::new(super::probe::ProbeFilter::new(probe.clone(), &self.name));
        }
        Box::new(PreviewFilter {
            shared: Arc::clone(&self.shared),
            api: "other",
            held: None,
            response_bytes: 0,
        })
    }

    fn on_scheduled(&self, context: &mut dyn ConfigContext, event_id: u64) {
        if let (PROBE_EVENT, Some(prober)) = (event_id, &self.prober) {
            prober.fire(context);
        }
    }

    fn on_http_callout_done(
        &self,
        context: &mut dyn ConfigContext,
        callout_id: u64,
        response: &CalloutResponse<'_>,
    ) {
        if let Some(prober) = &self.prober {
            prober.done(context, callout_id, response);
        }
    }
}

struct PreviewFilter {
    shared: Arc<Shared>,
    /// The request's API label.
    api: &'static str,
    /// A request held until its scheduler event comes back (`resume_from_scheduler`): the
    /// scheduler (kept alive until then) and the body size.
    held: Option<(Box<dyn Scheduler>, usize)>,
    /// Response body bytes so far.
    response_bytes: usize,
}

impl StreamFilter for PreviewFilter {
    /// Counts the request, then holds its headers until the body is read (`StopIteration`), or
    /// lets them go at once when there is no body (`Continue`).
    fn on_request_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        let path = stream.request_header(":path");
        self.api = api_label(path);
        let panics = matches!(
            (&self.shared.config.panic_on_path, path),
            (Some(panic_path), Some(path)) if panic_path.as_bytes() == path
        );
        stream.increment_counter(self.shared.metrics.requests, &[self.api], 1);
        if panics {
            injected_panic();
        }
        remove_internal_headers(stream);
        if let Some(header) = &self.shared.config.override_host_header {
            steer(stream, header);
        }
        if end_of_stream {
            self.finish(stream, 0);
            return HeadersStatus::Continue;
        }
        HeadersStatus::StopIteration
    }

    /// Buffers until the end of the body, then sets the size header and lets the request go
    /// (`Continue`), or keeps holding it for a scheduler event (`StopIterationAndBuffer`).
    fn on_request_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        let mut bytes = total_len(&stream.request_body());
        if let Some((from, to)) = &self.shared.config.replace_in_body {
            if let Some(replaced) = replace_all(&stream.request_body().concat(), from, to) {
                let length = replaced.len().to_string();
                if !(stream.replace_request_body(&replaced)
                    && stream.set_request_header("content-length", length.as_bytes()))
                {
                    // A rewrite that did not apply must not go upstream half done.
                    stream.log(
                        LogLevel::Error,
                        "sluice-native preview: the request body could not be rewritten",
                    );
                    let body = reply::internal_error_body(stream.request_header(":path"));
                    stream.send_response(
                        reply::INTERNAL_ERROR_STATUS,
                        &[("content-type", b"application/json")],
                        body.as_bytes(),
                        "sluice_body_rewrite_failed",
                    );
                    return BodyStatus::StopIterationNoBuffer;
                }
                bytes = replaced.len();
            }
        }
        if self.shared.config.resume_from_scheduler {
            if let Some(scheduler) = stream.scheduler() {
                scheduler.commit(RESUME_EVENT);
                self.held = Some((scheduler, bytes));
                return BodyStatus::StopIterationAndBuffer;
            }
            stream.log(
                LogLevel::Warn,
                "sluice-native preview: no stream scheduler; finishing at once",
            );
        }
        self.finish(stream, bytes);
        BodyStatus::Continue
    }

    fn on_scheduled(&mut self, stream: &mut dyn Stream, event_id: u64) {
        if event_id != RESUME_EVENT {
            return;
        }
        if let Some((_scheduler, bytes)) = self.held.take() {
            self.finish(stream, bytes);
            stream.continue_decoding();
        }
    }

    /// Lets every response through (`Continue`), recording its body size at the end.
    fn on_response_headers(
        &mut self,
        stream: &mut dyn Stream,
        end_of_stream: bool,
    ) -> HeadersStatus {
        if end_of_stream {
            stream.set_filter_state(RESPONSE_STATE_KEY, b"0");
        }
        HeadersStatus::Continue
    }

    fn on_response_body(&mut self, stream: &mut dyn Stream, end_of_stream: bool) -> BodyStatus {
        // Nothing is held back, so each callback shows only its own chunks.
        self.response_bytes = self
            .response_bytes
            .saturating_add(total_len(&stream.response_body()));
        if end_of_stream {
            let bytes = self.response_bytes.to_string();
            stream.set_filter_state(RESPONSE_STATE_KEY, bytes.as_bytes());
        }
        BodyStatus::Continue
    }
}

impl PreviewFilter {
    /// Sets the size header, makes Envoy match routes again, and records the size.
    fn finish(&self, stream: &mut dyn Stream, bytes: usize) {
        let size = bytes.to_string();
        stream.set_request_header(SIZE_HEADER, size.as_bytes());
        stream.clear_route_cache();
        stream.set_filter_state(FILTER_STATE_KEY, size.as_bytes());
        stream.set_metadata(METADATA_NAMESPACE, "body_bytes", &size);
        if let Some(route) = stream
            .route_name()
            .map(|r| String::from_utf8_lossy(r).into_owned())
        {
            stream.set_metadata(METADATA_NAMESPACE, "route", &route);
        }
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let metrics = &self.shared.metrics;
        stream.record_histogram(metrics.body_bytes, &[self.api], bytes);
        let largest = self
            .shared
            .largest_body
            .fetch_max(bytes, Ordering::Relaxed)
            .max(bytes);
        stream.set_gauge(metrics.largest_body, &[], largest);
    }
}

fn total_len(chunks: &[&[u8]]) -> usize {
    chunks
        .iter()
        .fold(0usize, |total, chunk| total.saturating_add(chunk.len()))
}

/// `body` with every `from` replaced by `to`; `None` when `from` does not occur.
fn replace_all(body: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    let mut replaced = false;
    while let Some(at) = rest.windows(from.len()).position(|window| window == from) {
        let (before, after) = rest.split_at(at);
        out.extend_from_slice(before);
        out.extend_from_slice(to.as_bytes());
        rest = after.get(from.len()..).unwrap_or_default();
        replaced = true;
    }
    out.extend_from_slice(rest);
    replaced.then_some(out)
}

/// Removes every client-sent `x-sluice-*` request header.
fn remove_internal_headers(stream: &mut dyn Stream) {
    let internal: Vec<String> = stream
        .request_headers()
        .iter()
        .filter(|(name, _)| name.starts_with(INTERNAL_HEADER_PREFIX.as_bytes()))
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
        .collect();
    for name in internal {
        stream.remove_request_header(&name);
    }
}

/// `openai`, `anthropic` or `other`, from the request path.
fn api_label(path: Option<&[u8]>) -> &'static str {
    match path {
        Some(path) if path.starts_with(b"/v1/messages") => "anthropic",
        Some(path) if path.starts_with(b"/v1/") => "openai",
        _ => "other",
    }
}

/// Test-only behaviour (`panic_on_path`): the host must turn this into a 500 for the request.
#[allow(clippy::panic)]
fn injected_panic() -> ! {
    panic!("injected by panic_on_path (test-only configuration)");
}

/// Sends the request to the host its override header names, and removes the header.
fn steer(stream: &mut dyn Stream, header: &str) {
    let Some(value) = stream.request_header(header) else {
        return;
    };
    let host = String::from_utf8_lossy(value).trim().to_owned();
    stream.remove_request_header(header);
    if !stream.set_upstream_override_host(&host, false) {
        stream.log(
            LogLevel::Warn,
            "sluice-native preview: the override host is not an ip:port; ignored",
        );
    }
}

/// The test-only periodic callout: one in flight at a time, each answer counted by status.
struct Prober {
    probe: Probe,
    responses: CounterId,
    last_status: GaugeId,
    in_flight: Mutex<Option<u64>>,
    /// Joined when the configuration goes away (field order: dropped after nothing else needs
    /// it, and before the scheduler it owns is deleted).
    _ticker: Ticker,
}

impl Prober {
    fn start(init: &mut dyn ConfigInit, probe: Probe) -> Result<Self, String> {
        let responses = init
            .define_counter(PROBE_COUNTER, &["result"])
            .map_err(|error| format!("cannot define {PROBE_COUNTER}: {error:?}"))?;
        let last_status = init
            .define_gauge(PROBE_STATUS_GAUGE, &[])
            .map_err(|error| format!("cannot define {PROBE_STATUS_GAUGE}: {error:?}"))?;
        let scheduler = init
            .scheduler()
            .ok_or("probe: Envoy gave the configuration no scheduler")?;
        let ticker = Ticker::start("sluice-probe", probe.interval, scheduler, PROBE_EVENT)
            .map_err(|error| format!("probe: cannot start its timer thread: {error}"))?;
        Ok(Self {
            probe,
            responses,
            last_status,
            in_flight: Mutex::new(None),
            _ticker: ticker,
        })
    }

    fn fire(&self, context: &mut dyn ConfigContext) {
        let mut in_flight = lock(&self.in_flight);
        if in_flight.is_some() {
            return;
        }
        let headers: [(&str, &[u8]); 3] = [
            (":method", b"GET"),
            (":path", self.probe.path.as_bytes()),
            ("host", self.probe.cluster.as_bytes()),
        ];
        match context.http_callout(&self.probe.cluster, &headers, b"", self.probe.timeout_ms) {
            Ok(id) => *in_flight = Some(id),
            Err(error) => {
                let label = format!("not_sent_{error:?}").to_ascii_lowercase();
                context.increment_counter(self.responses, &[&label], 1);
            }
        }
    }

    fn done(
        &self,
        context: &mut dyn ConfigContext,
        callout_id: u64,
        response: &CalloutResponse<'_>,
    ) {
        {
            let mut in_flight = lock(&self.in_flight);
            if *in_flight != Some(callout_id) {
                return;
            }
            *in_flight = None;
        }
        if let Some(status) = response.status() {
            context.set_gauge(self.last_status, &[], u64::from(status));
        }
        let label = match response.outcome {
            CalloutOutcome::Success => response
                .status()
                .map_or_else(|| "no_status".to_owned(), |status| status.to_string()),
            CalloutOutcome::Reset => "reset".to_owned(),
            CalloutOutcome::TooLarge => "too_large".to_owned(),
            CalloutOutcome::Other(_) => "other".to_owned(),
        };
        context.increment_counter(self.responses, &[&label], 1);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_api::fake::{FakeConfig, FakeStream};

    fn filter(config: &str) -> (Box<dyn HttpFilterFactory>, FakeConfig) {
        let mut init = FakeConfig::default();
        let factory = new_factory(&mut init, "sluice", config.as_bytes()).unwrap();
        (factory, init)
    }

    #[test]
    fn holds_the_headers_then_sets_the_body_size_and_clears_the_route_cache() {
        let (factory, config) = filter("{}");
        let mut filter = factory.new_filter();
        let mut stream = FakeStream::request("POST", "/v1/chat/completions");
        assert_eq!(
            filter.on_request_headers(&mut stream, false),
            HeadersStatus::StopIteration
        );
        stream.receive_request_body(b"{\"model\":");
        assert_eq!(
            filter.on_request_body(&mut stream, false),
            BodyStatus::StopIterationAndBuffer
        );
        stream.receive_request_body(b"\"m\"}");
        assert_eq!(
            filter.on_request_body(&mut stream, true),
            BodyStatus::Continue
        );
        assert_eq!(stream.request_header(SIZE_HEADER), Some(&b"13"[..]));
        assert_eq!(stream.route_cache_clears, 1);
        assert_eq!(
            stream.filter_state.get(FILTER_STATE_KEY).map(Vec::as_slice),
            Some(&b"13"[..])
        );
        assert_eq!(
            stream
                .metadata
                .get(&(METADATA_NAMESPACE.into(), "body_bytes".into())),
            Some(&"13".to_owned())
        );
        let requests = config.counter_id(REQUESTS_COUNTER);
        assert_eq!(stream.counted(requests, &["openai"]), 1);
        assert_eq!(stream.histograms.values().next(), Some(&vec![13]));
        assert_eq!(stream.gauges.values().next(), Some(&13));
    }

    #[test]
    fn client_sent_internal_headers_are_removed() {
        let (factory, _) = filter("{}");
        let mut stream = FakeStream::request("GET", "/v1/models");
        stream.set_request_header("x-sluice-model", b"spoofed");
        stream.set_request_header("x-sluice-native", b"999");
        stream.set_request_header("x-other", b"kept");
        factory.new_filter().on_request_headers(&mut stream, true);
        assert_eq!(stream.request_header("x-sluice-model"), None);
        assert_eq!(stream.request_header(SIZE_HEADER), Some(&b"0"[..]));
        assert_eq!(stream.request_header("x-other"), Some(&b"kept"[..]));
    }

    #[test]
    fn replace_in_body_rewrites_the_whole_body_and_its_length() {
        let (factory, _) = filter(r#"{"replace_in_body": {"from": "secret", "to": "[gone]"}}"#);
        let mut filter = factory.new_filter();
        let mut stream = FakeStream::request("POST", "/v1/chat/completions");
        filter.on_request_headers(&mut stream, false);
        stream.receive_request_body(b"a secret, ");
        filter.on_request_body(&mut stream, false);
        stream.receive_request_body(b"another secret");
        assert_eq!(
            filter.on_request_body(&mut stream, true),
            BodyStatus::Continue
        );
        let body = stream.request_body().concat();
        assert_eq!(body, b"a [gone], another [gone]");
        assert_eq!(stream.request_header("content-length"), Some(&b"24"[..]));
        assert_eq!(stream.request_header(SIZE_HEADER), Some(&b"24"[..]));
    }

    #[test]
    fn replace_all_finds_every_occurrence() {
        assert_eq!(replace_all(b"abcab", "ab", "X"), Some(b"XcX".to_vec()));
        assert_eq!(replace_all(b"aaa", "aa", "b"), Some(b"ba".to_vec()));
        assert_eq!(replace_all(b"abc", "x", "y"), None);
        assert_eq!(replace_all(b"", "x", "y"), None);
    }

    #[test]
    fn response_bytes_are_recorded_at_the_end_of_the_response() {
        let (factory, _) = filter("{}");
        let mut filter = factory.new_filter();
        let mut stream = FakeStream::request("GET", "/v1/models");
        filter.on_request_headers(&mut stream, true);
        filter.on_response_headers(&mut stream, false);
        stream.received_response = vec![b"12345".to_vec()];
        filter.on_response_body(&mut stream, false);
        stream.received_response = vec![b"678".to_vec()];
        filter.on_response_body(&mut stream, true);
        assert_eq!(
            stream
                .filter_state
                .get(RESPONSE_STATE_KEY)
                .map(Vec::as_slice),
            Some(&b"8"[..])
        );
    }

    #[test]
    fn a_request_without_body_goes_on_at_once_with_size_zero() {
        let (factory, _) = filter("");
        let mut filter = factory.new_filter();
        let mut stream = FakeStream::request("GET", "/v1/models");
        assert_eq!(
            filter.on_request_headers(&mut stream, true),
            HeadersStatus::Continue
        );
        assert_eq!(stream.request_header(SIZE_HEADER), Some(&b"0"[..]));
    }

    #[test]
    fn counts_each_api_under_its_label() {
        let (factory, config) = filter("{}");
        let requests = config.counter_id(REQUESTS_COUNTER);
        for (path, label) in [
            ("/v1/messages", "anthropic"),
            ("/v1/embeddings", "openai"),
            ("/health", "other"),
        ] {
            let mut stream = FakeStream::request("GET", path);
            factory.new_filter().on_request_headers(&mut stream, true);
            assert_eq!(stream.counted(requests, &[label]), 1, "{path}");
        }
    }

    #[test]
    #[should_panic(expected = "injected by panic_on_path")]
    fn panics_on_the_configured_path_only() {
        let (factory, _) = filter(r#"{"panic_on_path": "/__panic"}"#);
        let mut stream = FakeStream::request("GET", "/__panicky");
        factory.new_filter().on_request_headers(&mut stream, true);
        let mut stream = FakeStream::request("GET", "/__panic");
        factory.new_filter().on_request_headers(&mut stream, true);
    }

    #[test]
    fn the_override_header_picks_the_host_and_is_removed() {
        let (factory, _) = filter(r#"{"override_host_header": "x-test-override-host"}"#);
        let mut stream = FakeStream::request("GET", "/v1/models");
        stream.set_request_header("x-test-override-host", b" 127.0.0.1:8001 ");
        factory.new_filter().on_request_headers(&mut stream, true);
        assert_eq!(
            stream.override_host,
            Some(("127.0.0.1:8001".to_owned(), false))
        );
        assert_eq!(stream.request_header("x-test-override-host"), None);
    }

    #[test]
    fn resume_from_scheduler_holds_the_request_until_the_event() {
        let (factory, _) = filter(r#"{"resume_from_scheduler": true}"#);
        let mut filter = factory.new_filter();
        let mut stream = FakeStream::request("POST", "/v1/completions");
        filter.on_request_headers(&mut stream, false);
        stream.receive_request_body(b"abc");
        assert_eq!(
            filter.on_request_body(&mut stream, true),
            BodyStatus::StopIterationAndBuffer
        );
        assert_eq!(stream.request_header(SIZE_HEADER), None);
        assert_eq!(stream.scheduled(), vec![RESUME_EVENT]);
        filter.on_scheduled(&mut stream, RESUME_EVENT);
        assert_eq!(stream.request_header(SIZE_HEADER), Some(&b"3"[..]));
        assert_eq!(stream.decoding_continued, 1);
    }

    #[test]
    fn the_probe_sends_one_callout_at_a_time_and_counts_answers_by_status() {
        let (factory, mut config) = filter(
            r#"{"probe": {"cluster": "replicas", "path": "/health", "interval_ms": 3600000}}"#,
        );
        let responses = config.counter_id(PROBE_COUNTER);
        factory.on_scheduled(&mut config, PROBE_EVENT);
        factory.on_scheduled(&mut config, PROBE_EVENT);
        assert_eq!(
            config.callouts.len(),
            1,
            "a second callout while one is in flight"
        );
        let (id, cluster, headers) = config.callouts[0].clone();
        assert_eq!(cluster, "replicas");
        assert!(headers.contains(&(":path".to_owned(), b"/health".to_vec())));
        let answer = CalloutResponse {
            outcome: CalloutOutcome::Success,
            headers: vec![(&b":status"[..], &b"200"[..])],
            body: vec![&b"ok"[..]],
        };
        factory.on_http_callout_done(&mut config, id, &answer);
        assert_eq!(config.counted(responses, &["200"]), 1);
        assert_eq!(config.gauges.values().next(), Some(&200));
        factory.on_scheduled(&mut config, PROBE_EVENT);
        assert_eq!(config.callouts.len(), 2, "the next tick sends again");
        let (id, ..) = config.callouts[1].clone();
        let reset = CalloutResponse {
            outcome: CalloutOutcome::Reset,
            headers: vec![],
            body: vec![],
        };
        factory.on_http_callout_done(&mut config, id, &reset);
        assert_eq!(config.counted(responses, &["reset"]), 1);
    }
}
