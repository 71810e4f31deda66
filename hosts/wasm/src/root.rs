//! The per-VM root context: owns the validated configuration and creates one `HttpFilter` per
//! request; on its tick, the periodic work (metrics, the picker fetch, the tenancy fetch, the
//! quota sync, flow control's expiry, release and check of held requests); on its wake-up
//! queue, the requests flow control released or expired.
//!
//! A root whose plugin `root_id` is `sluice.upstream` (`attempt::UPSTREAM_ROOT_ID`) serves the
//! upstream role instead: the same configuration, one `AttemptFilter` per upstream attempt, and
//! none of the gateway's periodic work (its tick only refreshes the clock and hands the
//! counters to Envoy). Sharing the gateway's `vm_id`, it shares its VM and shared data (the
//! targets' health).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::attempt::{AttemptFilter, UPSTREAM_ROOT_ID};
use super::flow::FlowHub;
use super::http::HttpFilter;
use super::metrics::Metrics;
use super::picker_sync::PickerSync;
use super::ports::Host;
use super::quota::{self, QuotaSync};
use super::tenancy_sync::TenancySync;
use super::{clock, log};
use sluice_core::config::Config;
use sluice_core::exchange::{Configured, flow_tick};
use sluice_core::picking::InFlight;

/// The longest the root waits between ticks: it bounds how late counters reach Envoy and how
/// old the cached clock gets.
const MAX_TICK: Duration = Duration::from_millis(clock::MAX_AGE_MS);

#[derive(Default)]
pub struct Root {
    /// `None` until a configuration was accepted.
    configured: Option<Arc<Configured>>,
    /// The ports requests use: this VM's snapshot copy and metrics.
    host: Rc<Host>,
    metrics: Option<Rc<Metrics>>,
    /// Present when replica picking is configured.
    picker: Option<PickerSync>,
    /// Present when quotas run in cluster mode or with the run-time tenancy.
    quota_sync: Option<QuotaSync>,
    /// Present with the run-time tenancy (`quotas.tenancy`).
    tenancy: Option<TenancySync>,
    /// Flow control's side of this VM: kept across configurations, since requests held under
    /// one are woken under the next.
    flow: Rc<FlowHub>,
    /// This root serves the upstream role (its root id says so).
    upstream: bool,
}

impl Context for Root {
    /// The picker answered a request made on a tick (a sync, a tenancy or picker snapshot).
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let metrics = self.metrics.as_deref().map(|m| &m.quota);
        if let Some(sync) = &mut self.quota_sync {
            if sync.on_response(token_id, body_size, metrics) {
                return;
            }
        }
        if let Some(tenancy) = &mut self.tenancy {
            if tenancy.on_response(token_id, body_size) {
                return;
            }
        }
        if let Some(picker) = &mut self.picker {
            picker.on_response(token_id, body_size);
        }
    }
}

impl Root {
    /// Flow control's share of the tick: expiry, and release where capacity freed without a
    /// request ending (a fresh snapshot), over every pool; the updates it makes show what is
    /// held, from which this VM finds held requests whose wake-up was lost and sets the gauges.
    fn flow_pass(&self) {
        if self.upstream {
            return;
        }
        let Some(configured) = &self.configured else {
            return;
        };
        let Some(flow) = &configured.config.flow_control else {
            return;
        };
        self.flow.begin_pass();
        flow_tick(&self.host.ports(), configured);
        let waiting = self.flow.end_pass(flow);
        if let (Some(waiting), Some(metrics)) = (waiting, &self.metrics) {
            metrics.flow.refresh(flow, &waiting);
        }
    }

    /// The upstream role's configuration: the targets and their health, metrics, the clock.
    fn configure_upstream(&mut self, config: Config, now_s: u64) -> bool {
        let targets = config.targets.as_ref().map_or(0, |t| t.targets.len());
        log::info(&format!("upstream filter configured; {targets} targets"));
        if let Err(status) = hostcalls::set_tick_period(MAX_TICK) {
            log::error(&format!("cannot schedule the root tick: {status:?}"));
            return false;
        }
        self.picker = None;
        self.quota_sync = None;
        self.tenancy = None;
        self.host = Rc::new(Host {
            metrics: self.metrics.clone(),
            flow: Rc::clone(&self.flow),
            ..Host::default()
        });
        self.configured = Some(Arc::new(Configured::new(config, now_s)));
        true
    }
}

impl RootContext for Root {
    /// Called with the plugin's `configuration`, at load and on every config update. Returning
    /// false makes Envoy reject the plugin (the listener fails to load or the update is refused),
    /// so a bad configuration never serves traffic; the reason, naming the field, is logged.
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error(&format!("cannot read the plugin configuration: {status:?}"));
                return false;
            }
        };
        let config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error(&format!("invalid plugin configuration: {err}"));
                return false;
            }
        };
        let now_s = clock::refresh() / 1000;
        if self.metrics.is_none() {
            self.metrics = Some(Rc::new(Metrics::define()));
        }
        if config.targets.is_some() {
            super::ports::create_target_health();
        }
        self.upstream = hostcalls::get_property(vec!["plugin_root_id"])
            .ok()
            .flatten()
            .is_some_and(|id| id == UPSTREAM_ROOT_ID.as_bytes());
        if self.upstream {
            return self.configure_upstream(config, now_s);
        }
        log::info(&format!(
            "configured; model header {}, base model header {}",
            config.routing.model_header, config.routing.base_model_header
        ));
        let host = Host {
            metrics: self.metrics.clone(),
            flow: Rc::clone(&self.flow),
            fresh_clock: config.flow_control.is_some(),
            ..Host::default()
        };
        if config.flow_control.is_some() && config.picking.is_some() {
            if self.flow.start() {
                for pool in config.catalog.pools() {
                    FlowHub::create_state(pool);
                }
            } else {
                // Every request that would take a seat fails closed (500), logged and counted.
                log::error("flow control cannot run in this VM: requests it applies to fail");
            }
        }
        let snapshot = Rc::clone(&host.snapshot);
        self.picker = config.picking.clone().map(|picking| {
            // Create each pool's in-flight map now, so that later updates can always use
            // compare-and-swap (a missing key has no token to compare against).
            for pool in config.catalog.pools() {
                let key = InFlight::key(pool);
                if super::shared::get(&key).0.is_none() {
                    super::shared::set(&key, &InFlight::default().encode(), None);
                }
            }
            PickerSync::new(picking, Rc::clone(&snapshot), self.metrics.clone())
        });
        if let Some(quotas) = &config.quotas {
            if !quota::create_slots(quotas) {
                log::error("cannot create the quota slots in shared data");
                return false;
            }
            if let Some(metrics) = &self.metrics {
                metrics.quota.set_slots(quotas.slots);
            }
        }
        self.quota_sync = config.quotas.as_ref().and_then(QuotaSync::new);
        self.tenancy = config
            .quotas
            .as_ref()
            .and_then(|q| q.tenancy.clone())
            .map(|tenancy| {
                let mut sync =
                    TenancySync::new(tenancy, Rc::clone(&host.tenancy), self.metrics.clone());
                sync.refresh_local();
                sync
            });
        let sync_period = self
            .quota_sync
            .as_ref()
            .map_or(MAX_TICK, |s| Duration::from_millis(s.tick_ms()));
        let tenancy_period = self
            .tenancy
            .as_ref()
            .map_or(MAX_TICK, TenancySync::tick_period);
        let period = self
            .picker
            .as_ref()
            .map_or(MAX_TICK, |picker| picker.tick_period().min(MAX_TICK))
            .min(sync_period)
            .min(tenancy_period);
        if let Err(status) = hostcalls::set_tick_period(period) {
            log::error(&format!("cannot schedule the root tick: {status:?}"));
            return false;
        }
        self.configured = Some(Arc::new(Configured::new(config, now_s)));
        self.host = Rc::new(host);
        true
    }

    /// Advances the cached clock, hands the counters to Envoy and keeps the snapshot fresh.
    fn on_tick(&mut self) {
        clock::refresh();
        if let Some(metrics) = &self.metrics {
            metrics.flush();
        }
        if let Some(picker) = &mut self.picker {
            picker.on_tick();
        }
        if let Some(tenancy) = &mut self.tenancy {
            tenancy.on_tick();
        }
        if let Some(sync) = &mut self.quota_sync {
            sync.on_tick(self.metrics.as_deref().map(|m| &m.quota));
        }
        self.flow_pass();
    }

    /// Wake-ups for the requests this VM holds (another worker, or this one, released or
    /// expired them). Envoy calls the root of the VM that registered the queue, on that VM's
    /// own worker thread.
    fn on_queue_ready(&mut self, queue_id: u32) {
        self.flow.on_queue_ready(queue_id);
    }

    /// Must return a context: the SDK panics when the root offers none.
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.upstream {
            return Some(Box::new(AttemptFilter::new(
                self.configured.clone(),
                Rc::clone(&self.host),
            )));
        }
        Some(Box::new(HttpFilter::new(
            context_id,
            self.configured.clone(),
            Rc::clone(&self.host),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
