//! What filter logic implements per filter configuration, and what the host offers it there.

use super::filter::StreamFilter;
use super::stream::{CounterId, GaugeId, HistogramId, LogLevel, Scheduler};

/// Builds the factory for one filter configuration: `name` is the configured filter name and
/// `config` the raw `filter_config` bytes. An `Err` makes Envoy reject the configuration, with
/// the message in its log.
pub type NewFactory =
    fn(&mut dyn ConfigInit, &str, &[u8]) -> Result<Box<dyn HttpFilterFactory>, String>;

/// One loaded filter configuration. Shared by every worker thread (streams are created on
/// them); its config-level callbacks run on Envoy's main thread.
pub trait HttpFilterFactory: Send + Sync {
    fn new_filter(&self) -> Box<dyn StreamFilter>;

    /// An event committed on the scheduler from `ConfigInit::scheduler` came back (main thread).
    fn on_scheduled(&self, _context: &mut dyn ConfigContext, _event_id: u64) {}

    /// The answer to `ConfigContext::http_callout` (main thread).
    fn on_http_callout_done(
        &self,
        _context: &mut dyn ConfigContext,
        _callout_id: u64,
        _response: &CalloutResponse<'_>,
    ) {
    }
}

/// What a configuration can do while it is created: metrics can only be defined now.
pub trait ConfigInit {
    fn define_counter(&mut self, name: &str, labels: &[&str]) -> Result<CounterId, MetricError>;
    fn define_gauge(&mut self, name: &str, labels: &[&str]) -> Result<GaugeId, MetricError>;
    fn define_histogram(&mut self, name: &str, labels: &[&str])
    -> Result<HistogramId, MetricError>;
    /// A scheduler whose events run `HttpFilterFactory::on_scheduled` on the main thread (a
    /// timer thread commits to it, say). `None` if the host cannot make one.
    fn scheduler(&mut self) -> Option<Box<dyn Scheduler>>;
    fn log(&self, level: LogLevel, message: &str);
}

/// What a configuration can do in its own callbacks, outside any stream.
pub trait ConfigContext {
    /// Sends a request to an Envoy cluster; the answer comes to
    /// `HttpFilterFactory::on_http_callout_done` with the id returned here. `headers` must
    /// include `:method`, `:path` and `host`.
    fn http_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutInitError>;
    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool;
    fn set_gauge(&mut self, id: GaugeId, labels: &[&str], value: u64) -> bool;
    fn log(&self, level: LogLevel, message: &str);
}

/// Why a metric could not be defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricError {
    /// Metrics can only be defined while the configuration is created.
    Frozen,
    InvalidLabels,
    /// Any other refusal, with the host's code.
    Other(u32),
}

/// Why a callout could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutInitError {
    MissingRequiredHeaders,
    ClusterNotFound,
    DuplicateCalloutId,
    /// No healthy host in the cluster, say.
    CannotCreateRequest,
    Other(u32),
}

/// How a callout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutOutcome {
    /// An answer arrived (any status).
    Success,
    /// The connection failed or was reset, or the timeout passed.
    Reset,
    /// The answer was larger than the callout's buffer limit.
    TooLarge,
    Other(u32),
}

/// A callout's answer, lent for the length of `on_http_callout_done`.
#[derive(Debug, Clone)]
pub struct CalloutResponse<'a> {
    pub outcome: CalloutOutcome,
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    pub body: Vec<&'a [u8]>,
}

impl CalloutResponse<'_> {
    /// The `:status` of the answer, if it parsed.
    pub fn status(&self) -> Option<u16> {
        let (_, value) = self.headers.iter().find(|(name, _)| *name == b":status")?;
        std::str::from_utf8(value).ok()?.parse().ok()
    }

    pub fn body_len(&self) -> usize {
        self.body
            .iter()
            .fold(0usize, |total, chunk| total.saturating_add(chunk.len()))
    }
}
