//! A host made of plain data for unit tests: filter logic runs against it exactly as against
//! Envoy, and the test reads back what it did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{
    BodyBuffer, CalloutInitError, ConfigContext, ConfigInit, CounterId, EndingStream, GaugeId,
    HistogramId, LogLevel, MetricError, Scheduler, Stream,
};

type Labels = Vec<String>;
type OwnedHeaders = Vec<(String, Vec<u8>)>;

/// One stream. Header names are stored lowercase, in insertion order.
#[derive(Default)]
pub struct FakeStream {
    pub request_headers: OwnedHeaders,
    pub response_headers: OwnedHeaders,
    pub buffered_request: Vec<Vec<u8>>,
    pub received_request: Vec<Vec<u8>>,
    pub buffered_response: Vec<Vec<u8>>,
    pub received_response: Vec<Vec<u8>>,
    /// Local replies: status, headers, body, details.
    pub replies: Vec<(u16, OwnedHeaders, Vec<u8>, String)>,
    pub route_cache_clears: usize,
    pub override_host: Option<(String, bool)>,
    pub decoding_continued: usize,
    pub route: Option<Vec<u8>>,
    pub filter_state: HashMap<String, Vec<u8>>,
    /// The upstream host's metadata, `(namespace, key) -> value`.
    pub host_metadata: HashMap<(String, String), Vec<u8>>,
    pub metadata: HashMap<(String, String), String>,
    pub counters: HashMap<(usize, Labels), u64>,
    pub gauges: HashMap<(usize, Labels), u64>,
    pub histograms: HashMap<(usize, Labels), Vec<u64>>,
    pub logs: Vec<(LogLevel, String)>,
    /// Writes to refuse, as a host whose call fails: `"set_request_header"`,
    /// `"response_body"` (drains and appends on the response buffers).
    pub refuse: Vec<&'static str>,
    scheduled: Arc<Mutex<Vec<u64>>>,
}

impl FakeStream {
    pub fn request(method: &str, path: &str) -> Self {
        let mut stream = Self::default();
        stream.set_request_header(":method", method.as_bytes());
        stream.set_request_header(":path", path.as_bytes());
        stream
    }

    /// A body callback's data: what the previous callback received is now buffered.
    pub fn receive_request_body(&mut self, chunk: &[u8]) {
        let previous = std::mem::take(&mut self.received_request);
        self.buffered_request.extend(previous);
        self.received_request.push(chunk.to_vec());
    }

    pub fn counted(&self, id: CounterId, labels: &[&str]) -> u64 {
        self.counters
            .get(&(id.0, to_labels(labels)))
            .copied()
            .unwrap_or(0)
    }

    /// Events committed on this stream's schedulers.
    pub fn scheduled(&self) -> Vec<u64> {
        self.scheduled.lock().unwrap().clone()
    }
}

/// The same stream as Envoy lends it to a filter it destroys.
impl EndingStream for FakeStream {
    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        Stream::increment_counter(self, id, labels, by)
    }

    fn log(&self, level: LogLevel, message: &str) {
        Stream::log(self, level, message);
    }
}

fn to_labels(labels: &[&str]) -> Labels {
    labels.iter().map(|label| (*label).to_owned()).collect()
}

fn get<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_slice())
}

fn set(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: Option<&[u8]>) {
    headers.retain(|(key, _)| key != name);
    if let Some(value) = value {
        headers.push((name.to_owned(), value.to_vec()));
    }
}

impl Stream for FakeStream {
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        get(&self.request_headers, name)
    }

    fn request_headers(&self) -> Vec<(&[u8], &[u8])> {
        self.request_headers
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_slice()))
            .collect()
    }

    fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        if self.refuse.contains(&"set_request_header") {
            return false;
        }
        set(&mut self.request_headers, name, Some(value));
        true
    }

    fn remove_request_header(&mut self, name: &str) -> bool {
        set(&mut self.request_headers, name, None);
        true
    }

    fn response_header(&self, name: &str) -> Option<&[u8]> {
        get(&self.response_headers, name)
    }

    fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool {
        set(&mut self.response_headers, name, Some(value));
        true
    }

    fn remove_response_header(&mut self, name: &str) -> bool {
        set(&mut self.response_headers, name, None);
        true
    }

    fn request_body(&self) -> Vec<&[u8]> {
        self.buffered_request
            .iter()
            .chain(&self.received_request)
            .map(Vec::as_slice)
            .collect()
    }

    fn response_body(&self) -> Vec<&[u8]> {
        self.buffered_response
            .iter()
            .chain(&self.received_response)
            .map(Vec::as_slice)
            .collect()
    }

    fn drain_body(&mut self, buffer: BodyBuffer, bytes: usize) -> bool {
        if self.refuses(buffer) {
            return false;
        }
        let chunks = self.buffer(buffer);
        let mut all: Vec<u8> = chunks.concat();
        all.drain(..bytes.min(all.len()));
        *chunks = vec![all];
        true
    }

    fn append_body(&mut self, buffer: BodyBuffer, data: &[u8]) -> bool {
        if self.refuses(buffer) {
            return false;
        }
        self.buffer(buffer).push(data.to_vec());
        true
    }

    fn send_response(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        body: &[u8],
        details: &str,
    ) {
        let headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
            .collect();
        self.replies
            .push((status, headers, body.to_vec(), details.to_owned()));
    }

    fn clear_route_cache(&mut self) {
        self.route_cache_clears += 1;
    }

    fn set_upstream_override_host(&mut self, host: &str, strict: bool) -> bool {
        self.override_host = Some((host.to_owned(), strict));
        host.parse::<std::net::SocketAddr>().is_ok()
    }

    fn continue_decoding(&mut self) {
        self.decoding_continued += 1;
    }

    fn route_name(&self) -> Option<&[u8]> {
        self.route.as_deref()
    }

    fn host_metadata(&self, namespace: &str, key: &str) -> Option<&[u8]> {
        self.host_metadata
            .get(&(namespace.to_owned(), key.to_owned()))
            .map(Vec::as_slice)
    }

    fn filter_state(&self, key: &str) -> Option<&[u8]> {
        self.filter_state.get(key).map(Vec::as_slice)
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool {
        self.filter_state.insert(key.to_owned(), value.to_vec());
        true
    }

    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str) {
        self.metadata
            .insert((namespace.to_owned(), key.to_owned()), value.to_owned());
    }

    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        *self.counters.entry((id.0, to_labels(labels))).or_default() += by;
        true
    }

    fn set_gauge(&mut self, id: GaugeId, labels: &[&str], value: u64) -> bool {
        self.gauges.insert((id.0, to_labels(labels)), value);
        true
    }

    fn record_histogram(&mut self, id: HistogramId, labels: &[&str], value: u64) -> bool {
        self.histograms
            .entry((id.0, to_labels(labels)))
            .or_default()
            .push(value);
        true
    }

    fn scheduler(&mut self) -> Option<Box<dyn Scheduler>> {
        Some(Box::new(FakeScheduler(Arc::clone(&self.scheduled))))
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

impl FakeStream {
    fn refuses(&self, buffer: BodyBuffer) -> bool {
        matches!(
            buffer,
            BodyBuffer::ReceivedResponse | BodyBuffer::BufferedResponse
        ) && self.refuse.contains(&"response_body")
    }

    fn buffer(&mut self, buffer: BodyBuffer) -> &mut Vec<Vec<u8>> {
        match buffer {
            BodyBuffer::ReceivedRequest => &mut self.received_request,
            BodyBuffer::BufferedRequest => &mut self.buffered_request,
            BodyBuffer::ReceivedResponse => &mut self.received_response,
            BodyBuffer::BufferedResponse => &mut self.buffered_response,
        }
    }
}

/// Records what it is asked to commit.
pub struct FakeScheduler(pub Arc<Mutex<Vec<u64>>>);

impl Scheduler for FakeScheduler {
    fn commit(&self, event_id: u64) {
        self.0.lock().unwrap().push(event_id);
    }
}

/// A configuration: both while it is created (`ConfigInit`) and in its own callbacks
/// (`ConfigContext`).
#[derive(Default)]
pub struct FakeConfig {
    /// Every metric defined, by name: (kind, id, label names).
    pub metrics: HashMap<String, (&'static str, usize, Labels)>,
    /// Every callout sent: (id, cluster, headers).
    pub callouts: Vec<(u64, String, OwnedHeaders)>,
    /// The body of each callout, in the same order.
    pub callout_bodies: Vec<Vec<u8>>,
    pub counters: HashMap<(usize, Labels), u64>,
    pub gauges: HashMap<(usize, Labels), u64>,
    pub scheduled: Arc<Mutex<Vec<u64>>>,
    /// Makes the next `define_*` fail like a metric defined too late.
    pub frozen: bool,
}

impl FakeConfig {
    pub fn counter_id(&self, name: &str) -> CounterId {
        let (kind, id, _) = &self.metrics[name];
        assert_eq!(*kind, "counter", "{name}");
        CounterId(*id)
    }

    pub fn counted(&self, id: CounterId, labels: &[&str]) -> u64 {
        self.counters
            .get(&(id.0, to_labels(labels)))
            .copied()
            .unwrap_or(0)
    }

    fn define(
        &mut self,
        kind: &'static str,
        name: &str,
        labels: &[&str],
    ) -> Result<usize, MetricError> {
        if self.frozen {
            return Err(MetricError::Frozen);
        }
        let id = self.metrics.len();
        self.metrics
            .insert(name.to_owned(), (kind, id, to_labels(labels)));
        Ok(id)
    }
}

impl ConfigInit for FakeConfig {
    fn define_counter(&mut self, name: &str, labels: &[&str]) -> Result<CounterId, MetricError> {
        self.define("counter", name, labels).map(CounterId)
    }

    fn define_gauge(&mut self, name: &str, labels: &[&str]) -> Result<GaugeId, MetricError> {
        self.define("gauge", name, labels).map(GaugeId)
    }

    fn define_histogram(
        &mut self,
        name: &str,
        labels: &[&str],
    ) -> Result<HistogramId, MetricError> {
        self.define("histogram", name, labels).map(HistogramId)
    }

    fn scheduler(&mut self) -> Option<Box<dyn Scheduler>> {
        Some(Box::new(FakeScheduler(Arc::clone(&self.scheduled))))
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

impl ConfigContext for FakeConfig {
    fn http_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        _timeout_ms: u64,
    ) -> Result<u64, CalloutInitError> {
        if cluster.is_empty() {
            return Err(CalloutInitError::ClusterNotFound);
        }
        let id = self.callouts.len() as u64 + 1;
        let headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
            .collect();
        self.callouts.push((id, cluster.to_owned(), headers));
        self.callout_bodies.push(body.to_vec());
        Ok(id)
    }

    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        *self.counters.entry((id.0, to_labels(labels))).or_default() += by;
        true
    }

    fn set_gauge(&mut self, id: GaugeId, labels: &[&str], value: u64) -> bool {
        self.gauges.insert((id.0, to_labels(labels)), value);
        true
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}
