//! Sluice's upstream role as a native Envoy filter: the same module and the same JSON
//! configuration as the gateway, loaded a second time as an upstream HTTP filter of a chain's
//! cluster (`HttpProtocolOptions.http_filters`, before `envoy.filters.http.upstream_codec`)
//! under the filter name `sluice.upstream` (`UPSTREAM_FILTER_NAME`). Envoy runs it once per
//! attempt, with the attempt's host already chosen; each stream drives one
//! `sluice_core::attempt::Attempt` (`filter.rs`) and applies the effects it returns.
//!
//! - `filter.rs`: the phase callbacks and how effects are applied.
//! - `metrics.rs`: attempts per target and outcome, a labelled counter.
//!
//! What an upstream filter sees in Envoy 1.40 (`docs/envoy-notes.md`, "Upstream filters and
//! composite clusters"): the attempt's host metadata (`sluice.target`), the request's own
//! header map (an attempt's edits are still there for the next one), the request's filter
//! state (`sluice.failover`, written by the downstream filter and every earlier attempt), and
//! no `on_stream_complete`: an attempt ends with `on_destroy`, the only callback after one that
//! got no response.
//!
//! The targets' health is the process's (`state::TARGET_HEALTH`), shared with the downstream
//! filter's configuration, which reads it to choose chains.

mod filter;
mod metrics;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::attempt::AttemptPorts;
use sluice_core::config::Config;
use sluice_core::exchange::{Clock, Configured, Level, Log, TelemetrySink};

use crate::host_api::{ConfigInit, HttpFilterFactory, LogLevel, StreamFilter};
use crate::state::{TARGET_HEALTH, now_us};
pub use filter::UpstreamFilter;
use metrics::Metrics;

/// The filter name that selects the upstream role.
pub const UPSTREAM_FILTER_NAME: &str = "sluice.upstream";

/// What every attempt of one configuration shares, on every worker thread.
pub struct Shared {
    configured: Arc<Configured>,
    metrics: Metrics,
    log: ProcessLog,
}

pub struct UpstreamFactory {
    shared: Arc<Shared>,
}

/// `host_api::NewFactory` for the upstream role: `config` is the gateway's JSON configuration.
pub fn new_factory(
    init: &mut dyn ConfigInit,
    _name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterFactory>, String> {
    new_upstream(init, config, crate::process_log).map(|factory| Box::new(factory) as _)
}

/// The factory, logging through `log` (Envoy's log in the module, nothing in tests). A
/// configuration without targets is accepted: its attempts pass untouched.
pub fn new_upstream(
    init: &mut dyn ConfigInit,
    config: &[u8],
    log: fn(LogLevel, &str),
) -> Result<UpstreamFactory, String> {
    let config =
        Config::from_json(config).map_err(|err| format!("invalid plugin configuration: {err}"))?;
    let metrics = Metrics::define(init)?;
    let targets = config.targets.as_ref().map_or(0, |t| t.targets.len());
    init.log(
        LogLevel::Info,
        &format!("sluice-native: upstream filter configured; {targets} targets"),
    );
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(UpstreamFactory {
        shared: Arc::new(Shared {
            configured: Arc::new(Configured::new(config, now_s)),
            metrics,
            log: ProcessLog(log),
        }),
    })
}

impl UpstreamFactory {
    pub fn upstream_filter(&self) -> UpstreamFilter {
        UpstreamFilter::new(Arc::clone(&self.shared))
    }
}

impl HttpFilterFactory for UpstreamFactory {
    fn new_filter(&self) -> Box<dyn StreamFilter> {
        Box::new(self.upstream_filter())
    }
}

impl Shared {
    /// The ports of one attempt phase: the live clock, the process's target health, `telemetry`
    /// for what the phase counts (flushed by the caller) and Envoy's log.
    fn ports<'a>(&'a self, telemetry: &'a dyn TelemetrySink) -> AttemptPorts<'a> {
        AttemptPorts {
            clock: &LiveClock,
            health: &TARGET_HEALTH,
            telemetry,
            log: &self.log,
        }
    }
}

/// Read live: a native host call costs nothing worth caching.
struct LiveClock;

impl Clock for LiveClock {
    fn now_ms(&self) -> u64 {
        now_us() / 1000
    }

    fn now_us(&self) -> u64 {
        now_us()
    }

    fn lag_ms(&self) -> u64 {
        0
    }
}

/// The `Log` port over Envoy's log (or a test's sink).
struct ProcessLog(fn(LogLevel, &str));

impl Log for ProcessLog {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        (self.0)(level, message);
    }
}
