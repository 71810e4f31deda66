//! Sluice's gateway as a native Envoy filter: the factory that accepts the same configuration
//! JSON as the proxy-wasm filter (`sluice_core::config::Config`), and one `GatewayFilter` per
//! stream driving a `sluice_core::exchange::Exchange`, over ports in process memory
//! (`crate::state`) shared by every worker.
//!
//! - `filter.rs`: the phase callbacks and how effects are applied.
//! - `views.rs`: what the exchange reads through the stream, and the guard's response writes.
//! - `metrics.rs`: the module's labelled metrics, with the Wasm build's names.
//! - `picker_sync.rs`: the snapshot fetch, the tenancy snapshot's and the quota sync (cluster
//!   counters, spend rows), on a timer.
//!
//! Filter state the access log reads: `sluice.tokens`, `sluice.guardrails` and `sluice.flow`
//! (`%FILTER_STATE(sluice.tokens:PLAIN)%`; the Wasm build's are `wasm.sluice.*`).

mod filter;
mod metrics;
mod picker_sync;
pub(crate) mod views;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::config::Config;
use sluice_core::exchange::{Configured, flow_tick};

use crate::host_api::{
    CalloutResponse, ConfigContext, ConfigInit, HttpFilterFactory, LogLevel, StreamFilter,
};
use crate::state::State;
use crate::ticker::Ticker;
pub use filter::GatewayFilter;
use metrics::{Metrics, Recorder};
use picker_sync::{PickerSync, TICK_EVENT};

/// What every stream of one configuration shares, on every worker thread.
pub struct Shared {
    configured: Option<Arc<Configured>>,
    state: Arc<State>,
    metrics: Metrics,
}

pub struct GatewayFactory {
    shared: Arc<Shared>,
    sync: Option<PickerSync>,
    /// Varies per stream: rotates ties between equally good replicas.
    streams: AtomicU64,
    /// Stopped and joined when the configuration goes away, before its scheduler is deleted.
    _ticker: Option<Ticker>,
}

/// `host_api::NewFactory` for the gateway: `config` is the filter's JSON configuration, the
/// same the Wasm filter takes. A rejected configuration returns the error naming its field
/// (Envoy then refuses to load it).
pub fn new_factory(
    init: &mut dyn ConfigInit,
    _name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterFactory>, String> {
    new_gateway(init, config, crate::process_log).map(|factory| Box::new(factory) as _)
}

/// The factory, logging through `log` (Envoy's log in the module, nothing in tests).
pub fn new_gateway(
    init: &mut dyn ConfigInit,
    config: &[u8],
    log: fn(LogLevel, &str),
) -> Result<GatewayFactory, String> {
    let config =
        Config::from_json(config).map_err(|err| format!("invalid plugin configuration: {err}"))?;
    let metrics = Metrics::define(init)?;
    let state = Arc::new(State::new(&config, log));
    let sync = PickerSync::new(&config);
    let ticker = match &sync {
        Some(sync) => {
            let scheduler = init
                .scheduler()
                .ok_or("Envoy gave the configuration no scheduler")?;
            let ticker = Ticker::start("sluice-picker-sync", sync.period(), scheduler, TICK_EVENT)
                .map_err(|error| format!("cannot start the picker sync's timer: {error}"))?;
            Some(ticker)
        }
        None => None,
    };
    init.log(
        LogLevel::Info,
        &format!(
            "sluice-native: configured; model header {}, base model header {}",
            config.routing.model_header, config.routing.base_model_header
        ),
    );
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(GatewayFactory {
        shared: Arc::new(Shared {
            configured: Some(Arc::new(Configured::new(config, now_s))),
            state,
            metrics,
        }),
        sync,
        streams: AtomicU64::new(0),
        _ticker: ticker,
    })
}

impl GatewayFactory {
    pub fn gateway_filter(&self) -> GatewayFilter {
        let tie_breaker = self.streams.fetch_add(1, Ordering::Relaxed);
        GatewayFilter::new(Arc::clone(&self.shared), tie_breaker)
    }
}

impl HttpFilterFactory for GatewayFactory {
    fn new_filter(&self) -> Box<dyn StreamFilter> {
        Box::new(self.gateway_filter())
    }

    /// The ticker: the picker sync's due work, then flow control's expiry and releases.
    fn on_scheduled(&self, context: &mut dyn ConfigContext, event_id: u64) {
        if let (TICK_EVENT, Some(sync)) = (event_id, &self.sync) {
            sync.on_tick(context, &self.shared.state, &self.shared.metrics);
            self.shared.flow_tick(context);
        }
    }

    fn on_http_callout_done(
        &self,
        context: &mut dyn ConfigContext,
        callout_id: u64,
        response: &CalloutResponse<'_>,
    ) {
        if let Some(sync) = &self.sync {
            let shared = &self.shared;
            sync.on_callout_done(
                context,
                &shared.state,
                &shared.metrics,
                callout_id,
                response,
            );
            // A fresh snapshot may free capacity at once.
            shared.flow_tick(context);
        }
    }
}

impl Shared {
    /// Flow control's timer work (main thread): expires what waited too long and releases
    /// what capacity allows; the held streams are woken on their own workers.
    fn flow_tick(&self, context: &mut dyn ConfigContext) {
        let Some(configured) = &self.configured else {
            return;
        };
        if configured.config.flow_control.is_none() {
            return;
        }
        let recorder = Recorder::new(&self.metrics);
        flow_tick(&self.state.ports(&recorder), configured);
        recorder.flush_config(context);
    }
}
