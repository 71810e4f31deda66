//! What a filter can see and do on one HTTP stream, inside one phase callback.

/// A view of one stream, lent to a filter for the length of one phase callback.
///
/// Reads are zero-copy where the host can lend its own memory (Envoy's header map and body
/// buffers): the slices borrow the view, so they cannot outlive the callback, and every write
/// takes `&mut self`, so no slice is still held when a write could move what it points at.
/// Header names are lowercase (`:path`, `content-type`); values are bytes, not necessarily UTF-8.
pub trait Stream {
    /// The first value of a request header.
    fn request_header(&self, name: &str) -> Option<&[u8]>;
    /// Every request header, in the map's order (pseudo-headers first).
    fn request_headers(&self) -> Vec<(&[u8], &[u8])>;
    /// Replaces every value of a request header; false if the host refused (wrong phase).
    fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool;
    /// Removes a request header; true also when it was absent.
    fn remove_request_header(&mut self, name: &str) -> bool;

    fn response_header(&self, name: &str) -> Option<&[u8]>;
    fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool;
    fn remove_response_header(&mut self, name: &str) -> bool;

    /// The request body so far, as the host's own chunks: what earlier body callbacks held back
    /// plus this callback's data. Empty outside the request phase.
    fn request_body(&self) -> Vec<&[u8]>;
    /// The response body so far, likewise.
    fn response_body(&self) -> Vec<&[u8]>;
    /// Removes `bytes` from the front of a body buffer (all of it if it is shorter).
    fn drain_body(&mut self, buffer: BodyBuffer, bytes: usize) -> bool;
    /// Appends to a body buffer.
    fn append_body(&mut self, buffer: BodyBuffer, data: &[u8]) -> bool;
    /// Replaces the whole request body, in the request's last body callback (with the earlier
    /// chunks held back by `StopIterationAndBuffer`). The caller fixes `content-length`.
    fn replace_request_body(&mut self, body: &[u8]) -> bool {
        // Envoy passes on what was buffered followed by this callback's data: empty both, then
        // put the new body where this callback's data was. A stream may have no buffered body
        // at all (an upstream filter's retry gets the whole body in one callback), where
        // draining it reports false: what counts is that nothing is left.
        self.drain_body(BodyBuffer::BufferedRequest, usize::MAX);
        self.drain_body(BodyBuffer::ReceivedRequest, usize::MAX);
        self.request_body().iter().all(|chunk| chunk.is_empty())
            && self.append_body(BodyBuffer::ReceivedRequest, body)
    }

    /// Answers the client directly; the upstream is not called (or, in the response phase, its
    /// answer is replaced, or the stream reset if the response has started). `details` is the
    /// short reason Envoy shows as `%RESPONSE_CODE_DETAILS%` (no spaces). The filter's own
    /// response callbacks do not see this reply: it must carry every header it needs.
    fn send_response(&mut self, status: u16, headers: &[(&str, &[u8])], body: &[u8], details: &str);

    /// Makes Envoy match the route again (after a header the routes read has changed).
    fn clear_route_cache(&mut self);
    /// Sends the request to `host` (`ip:port`, a member of the routed cluster). With `strict`,
    /// the request fails when that host is unavailable; otherwise the cluster's load balancer
    /// picks another.
    fn set_upstream_override_host(&mut self, host: &str, strict: bool) -> bool;
    /// Resumes a request that a callback stopped (after a scheduled event, say).
    fn continue_decoding(&mut self);

    /// The name of the route Envoy matched, if any.
    fn route_name(&self) -> Option<&[u8]>;
    /// The upstream host's metadata string `filter_metadata[namespace][key]`: in an upstream
    /// filter, the endpoint this attempt goes to. `None` when absent or not a string (and in a
    /// downstream filter before a host is chosen).
    fn host_metadata(&self, namespace: &str, key: &str) -> Option<&[u8]>;
    /// Filter state `key` as bytes, if set (by this module or any other filter).
    fn filter_state(&self, key: &str) -> Option<&[u8]>;
    /// Sets filter state `key` (an access log reads it with `%FILTER_STATE(key:PLAIN)%`).
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool;
    /// Sets dynamic metadata `namespace.key` (`%DYNAMIC_METADATA(namespace:key)%`).
    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str);

    /// Counts on a counter defined with as many label names as `labels` has values.
    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool;
    fn set_gauge(&mut self, id: GaugeId, labels: &[&str], value: u64) -> bool;
    fn record_histogram(&mut self, id: HistogramId, labels: &[&str], value: u64) -> bool;

    /// A scheduler whose events come back to `StreamFilter::on_scheduled` on this stream's
    /// thread; `None` if the host cannot make one. Committing after the stream ended is a no-op.
    fn scheduler(&mut self) -> Option<Box<dyn Scheduler>>;

    fn log(&self, level: LogLevel, message: &str);
}

/// What a filter can still do while Envoy destroys it (`StreamFilter::on_destroy`): count and
/// log. The ABI hands the destroy hook no stream; the host calls back through the pointer it
/// got when the filter was created, which names the very object being destroyed, and Envoy
/// 1.40 serves a counter through it. Filter state it refuses by then (the call returns false:
/// `docs/envoy-notes.md`), so it is not offered.
pub trait EndingStream {
    /// Counts on a counter, as `Stream::increment_counter`.
    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool;
    fn log(&self, level: LogLevel, message: &str);
}

/// Posts events back to the thread that owns a stream or a configuration. Safe from any thread.
pub trait Scheduler: Send + Sync {
    fn commit(&self, event_id: u64);
}

/// Which body buffer a write goes to. "Received" is the data of the current body callback;
/// "buffered" is what earlier callbacks held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyBuffer {
    ReceivedRequest,
    BufferedRequest,
    ReceivedResponse,
    BufferedResponse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// A counter defined by the configuration (see `ConfigInit::define_counter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterId(pub(crate) usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GaugeId(pub(crate) usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistogramId(pub(crate) usize);
