//! Keeping every worker's copy of the picker's snapshot fresh. Runs on the root context's tick:
//! each worker re-reads the snapshot from shared data when its version changed, and the worker
//! holding the lease fetches a new one from the picker cluster.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::metrics::Metrics;
use super::{clock, log, shared};
use sluice_core::picking::{
    LEASE_KEY, LocalSnapshot, Picking, SNAPSHOT_KEY, VERSION_KEY, decode_version, encode_version,
};

pub struct PickerSync {
    picking: Picking,
    /// Random id of this VM, for the lease.
    me: u64,
    /// Token of the snapshot request under way, if any.
    call: Option<u32>,
    local: Rc<RefCell<LocalSnapshot>>,
    metrics: Option<Rc<Metrics>>,
    /// Unix ms from which the next tick refreshes: the root ticks more often than `refresh_ms`
    /// when that is long, to flush its counters.
    due_ms: u64,
}

impl PickerSync {
    pub fn new(
        picking: Picking,
        local: Rc<RefCell<LocalSnapshot>>,
        metrics: Option<Rc<Metrics>>,
    ) -> Self {
        // std seeds RandomState from the host's random source (WASI random_get).
        let me = RandomState::new().hash_one(0u8);
        Self {
            picking,
            me,
            call: None,
            local,
            metrics,
            due_ms: 0,
        }
    }

    pub fn tick_period(&self) -> Duration {
        Duration::from_millis(self.picking.refresh_ms)
    }

    pub fn on_tick(&mut self) {
        let now = clock::now_ms();
        if now < self.due_ms {
            return;
        }
        self.due_ms = now.saturating_add(self.picking.refresh_ms);
        self.refresh_local();
        let ttl = self.picking.refresh_ms.saturating_mul(3);
        if !shared::hold_lease(LEASE_KEY, self.me, now, ttl) || self.call.is_some() {
            return;
        }
        let headers = vec![
            (":method", "GET"),
            (":path", sluice_wire::PATH),
            (":authority", self.picking.picker_authority.as_str()),
        ];
        match hostcalls::dispatch_http_call(
            &self.picking.picker_cluster,
            headers,
            None,
            Vec::new(),
            self.tick_period().saturating_mul(5),
        ) {
            Ok(token) => self.call = Some(token),
            Err(status) => {
                self.count_failure();
                log::warn(&format!(
                    "cannot call picker cluster {}: {status:?}",
                    self.picking.picker_cluster
                ));
            }
        }
    }

    /// The picker answered (or the call failed: no status, no body).
    pub fn on_response(&mut self, token: u32, body_size: usize) {
        if self.call != Some(token) {
            return;
        }
        self.call = None;
        let status = super::headers::get(MapType::HttpCallResponseHeaders, ":status");
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten();
        let (Some("200"), Some(body)) = (status.as_deref(), body) else {
            self.count_failure();
            return;
        };
        let version = match sluice_wire::Snapshot::decode(&body) {
            Ok(snapshot) => snapshot.version,
            Err(err) => {
                self.count_failure();
                log::warn(&format!("picker sent an unusable snapshot: {err}"));
                return;
            }
        };
        // Snapshot first, then its version: a reader that sees the new version finds the new
        // snapshot (or a newer one). If either write fails the workers keep the snapshot they
        // have until it is stale, then leave the choice to Envoy: counted as a failed fetch.
        if !(shared::set(SNAPSHOT_KEY, &body, None)
            && shared::set(VERSION_KEY, &encode_version(version), None))
        {
            self.count_failure();
            log::warn("cannot store the picker's snapshot in shared data");
        }
        self.refresh_local();
    }

    /// Re-decodes the shared snapshot when its version moved on.
    fn refresh_local(&self) {
        let Some(version) = shared::get(VERSION_KEY)
            .0
            .as_deref()
            .and_then(decode_version)
        else {
            return;
        };
        let Ok(mut local) = self.local.try_borrow_mut() else {
            return;
        };
        if !local.is_behind(version) {
            return;
        }
        if let Some(encoded) = shared::get(SNAPSHOT_KEY).0 {
            if let Err(err) = local.replace(&encoded) {
                log::warn(&format!("cannot read the shared snapshot: {err}"));
            }
        }
    }

    fn count_failure(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.picker_fetch_failures.increment();
        }
    }
}
