//! Keeping every worker's copy of the tenancy snapshot (`quotas.tenancy`) fresh, on the root
//! context's tick, as `picker_sync.rs` does for the picker's snapshot: the worker holding the
//! lease asks the companion service for `GET tenancy::PATH` with `if-none-match` the version
//! this Envoy holds, and stores an accepted snapshot in shared data (`tenancy::SNAPSHOT_KEY`,
//! then its version under `tenancy::VERSION_KEY`); every worker decodes it again when that
//! version changes. A `304`, a failed call or a snapshot that is refused (past a bound,
//! invalid) leaves the last one in force; failures are logged and counted
//! (`sluice_tenancy_fetch_failures_total`).
//!
//! A worker's decode validates the snapshot again and costs time proportional to its size, once
//! per change (the admin API's changes, not the traffic).

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use super::metrics::{Counter, Metrics};
use super::{clock, log, shared};
use sluice_core::config::quotas::TenancyConfig;
use sluice_core::picking::{decode_version, encode_version};
use sluice_core::tenancy::{self, LEASE_KEY, SNAPSHOT_KEY, Tenancy, VERSION_KEY};

/// The tenancy snapshot this worker's requests use: `None` until the first one arrives.
pub type SharedTenancy = Rc<RefCell<Option<Arc<Tenancy>>>>;

/// The tenancy's metrics, gathered in guest memory and handed to Envoy on the tick.
#[derive(Debug)]
pub struct TenancyMetrics {
    pub fetch_failures: Counter,
    version: Option<u32>,
}

impl TenancyMetrics {
    pub fn define() -> Self {
        Self {
            fetch_failures: Counter::define("sluice_tenancy_fetch_failures_total"),
            version: hostcalls::define_metric(MetricType::Gauge, "sluice_tenancy_version").ok(),
        }
    }

    pub fn flush(&self) {
        self.fetch_failures.flush();
    }

    fn set_version(&self, version: u64) {
        if let Some(id) = self.version {
            let _ = hostcalls::record_metric(id, version);
        }
    }
}

pub struct TenancySync {
    config: TenancyConfig,
    /// Random id of this VM, for the lease.
    me: u64,
    /// Token of the snapshot request under way, if any.
    call: Option<u32>,
    local: SharedTenancy,
    /// The version `local` holds.
    local_version: Option<u64>,
    metrics: Option<Rc<Metrics>>,
    due_ms: u64,
}

impl TenancySync {
    pub fn new(config: TenancyConfig, local: SharedTenancy, metrics: Option<Rc<Metrics>>) -> Self {
        // std seeds RandomState from the host's random source (WASI random_get).
        let me = RandomState::new().hash_one(2u8);
        Self {
            config,
            me,
            call: None,
            local,
            local_version: None,
            metrics,
            due_ms: 0,
        }
    }

    pub fn tick_period(&self) -> Duration {
        Duration::from_millis(self.config.refresh_ms)
    }

    /// Every tick (at most 100 ms apart), every worker checks the shared version (one small
    /// shared-data read), so that a snapshot the leader stored reaches every worker within a
    /// tick rather than a refresh interval; the leader fetches once per `refresh_ms`.
    pub fn on_tick(&mut self) {
        self.refresh_local();
        let now = clock::now_ms();
        if now < self.due_ms {
            return;
        }
        self.due_ms = now.saturating_add(self.config.refresh_ms);
        let ttl = self.config.refresh_ms.saturating_mul(3);
        if !shared::hold_lease(LEASE_KEY, self.me, now, ttl) || self.call.is_some() {
            return;
        }
        let held = shared::get(VERSION_KEY)
            .0
            .as_deref()
            .and_then(decode_version)
            .map(|v| format!("\"{v}\""));
        let mut headers = vec![
            (":method", "GET"),
            (":path", tenancy::PATH),
            (":authority", self.config.picker_authority.as_str()),
        ];
        if let Some(etag) = &held {
            headers.push(("if-none-match", etag.as_str()));
        }
        match hostcalls::dispatch_http_call(
            &self.config.picker_cluster,
            headers,
            None,
            Vec::new(),
            self.tick_period().saturating_mul(5),
        ) {
            Ok(token) => self.call = Some(token),
            Err(status) => {
                self.count_failure();
                log::warn(&format!(
                    "cannot call picker cluster {} for the tenancy snapshot: {status:?}",
                    self.config.picker_cluster
                ));
            }
        }
    }

    /// The companion service answered (or the call failed). Returns whether `token` was ours.
    pub fn on_response(&mut self, token: u32, body_size: usize) -> bool {
        if self.call != Some(token) {
            return false;
        }
        self.call = None;
        let status = super::headers::get(MapType::HttpCallResponseHeaders, ":status");
        if status.as_deref() == Some("304") {
            return true;
        }
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten();
        let (Some("200"), Some(body)) = (status.as_deref(), body) else {
            self.count_failure();
            return true;
        };
        let tenancy = match Tenancy::decode(&body) {
            Ok(tenancy) => tenancy,
            Err(error) => {
                self.count_failure();
                log::warn(&format!("keeping the last tenancy snapshot: {error}"));
                return true;
            }
        };
        let version = tenancy.version();
        // Snapshot first, then its version: a worker that sees the new version finds the new
        // snapshot (or a newer one).
        if !(shared::set(SNAPSHOT_KEY, &body, None)
            && shared::set(VERSION_KEY, &encode_version(version), None))
        {
            self.count_failure();
            log::warn("cannot store the tenancy snapshot in shared data");
            return true;
        }
        log::info(&format!(
            "tenancy snapshot version {version}: {} keys",
            tenancy.key_count()
        ));
        self.install(tenancy);
        true
    }

    /// Decodes the shared snapshot when its version is not the one this worker holds (at
    /// configuration too, so that a new configuration's requests need not wait for a tick).
    pub fn refresh_local(&mut self) {
        let Some(version) = shared::get(VERSION_KEY)
            .0
            .as_deref()
            .and_then(decode_version)
        else {
            return;
        };
        if self.local_version == Some(version) {
            return;
        }
        let Some(encoded) = shared::get(SNAPSHOT_KEY).0 else {
            return;
        };
        match Tenancy::decode(&encoded) {
            Ok(tenancy) => self.install(tenancy),
            Err(error) => log::warn(&format!("cannot read the shared tenancy snapshot: {error}")),
        }
    }

    fn install(&mut self, tenancy: Tenancy) {
        let version = tenancy.version();
        let Ok(mut local) = self.local.try_borrow_mut() else {
            return;
        };
        *local = Some(Arc::new(tenancy));
        self.local_version = Some(version);
        if let Some(metrics) = &self.metrics {
            metrics.tenancy.set_version(version);
        }
    }

    fn count_failure(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.tenancy.fetch_failures.increment();
        }
    }
}
