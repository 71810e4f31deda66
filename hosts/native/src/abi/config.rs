//! `host_api::ConfigInit` and `host_api::ConfigContext` over the config-level callbacks.

use super::{log, sys};
use crate::host_api::{
    CalloutInitError, ConfigContext, ConfigInit, CounterId, GaugeId, HistogramId, LogLevel,
    MetricError, Scheduler,
};

/// The view `on_http_filter_config_new` lends while a configuration is created (main thread).
pub struct EnvoyConfigInit {
    config: sys::ConfigEnvoyPtr,
}

impl EnvoyConfigInit {
    /// `config` must be the pointer Envoy passed to the running `config_new` hook.
    pub fn new(config: sys::ConfigEnvoyPtr) -> Self {
        Self { config }
    }

    fn define(
        &mut self,
        call: unsafe extern "C" fn(
            sys::ConfigEnvoyPtr,
            sys::ModuleBuffer,
            *mut sys::ModuleBuffer,
            usize,
            *mut usize,
        ) -> u32,
        name: &str,
        labels: &[&str],
    ) -> Result<usize, MetricError> {
        let mut labels: Vec<sys::ModuleBuffer> = labels
            .iter()
            .map(|label| sys::ModuleBuffer::lend(label.as_bytes()))
            .collect();
        let mut id = 0usize;
        // SAFETY: `call` is one of the define callbacks, all with this signature; the config
        // pointer is live during `config_new`; name and labels are lent for the call (Envoy
        // copies them) and `id` is a valid out-pointer.
        let result = unsafe {
            call(
                self.config,
                sys::ModuleBuffer::lend(name.as_bytes()),
                labels.as_mut_ptr(),
                labels.len(),
                &mut id,
            )
        };
        match result {
            sys::metrics_result::SUCCESS => Ok(id),
            sys::metrics_result::FROZEN => Err(MetricError::Frozen),
            sys::metrics_result::INVALID_LABELS => Err(MetricError::InvalidLabels),
            other => Err(MetricError::Other(other)),
        }
    }
}

impl ConfigInit for EnvoyConfigInit {
    fn define_counter(&mut self, name: &str, labels: &[&str]) -> Result<CounterId, MetricError> {
        self.define(
            sys::envoy_dynamic_module_callback_http_filter_config_define_counter,
            name,
            labels,
        )
        .map(CounterId)
    }

    fn define_gauge(&mut self, name: &str, labels: &[&str]) -> Result<GaugeId, MetricError> {
        self.define(
            sys::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            name,
            labels,
        )
        .map(GaugeId)
    }

    fn define_histogram(
        &mut self,
        name: &str,
        labels: &[&str],
    ) -> Result<HistogramId, MetricError> {
        self.define(
            sys::envoy_dynamic_module_callback_http_filter_config_define_histogram,
            name,
            labels,
        )
        .map(HistogramId)
    }

    fn scheduler(&mut self) -> Option<Box<dyn Scheduler>> {
        // SAFETY: the config pointer is live during `config_new`; Envoy allocates the scheduler
        // and hands its ownership to us.
        let scheduler = unsafe {
            sys::envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.config)
        };
        if scheduler.is_null() {
            return None;
        }
        Some(Box::new(ConfigScheduler(scheduler)))
    }

    fn log(&self, level: LogLevel, message: &str) {
        log::log(level, message);
    }
}

/// The view lent to a configuration's own hooks (`scheduled`, `http_callout_done`), on the main
/// thread.
pub struct EnvoyConfigContext {
    config: sys::ConfigEnvoyPtr,
}

impl EnvoyConfigContext {
    /// `config` must be the pointer Envoy passed to the running config-level hook.
    pub fn new(config: sys::ConfigEnvoyPtr) -> Self {
        Self { config }
    }

    fn metric(
        &mut self,
        call: unsafe extern "C" fn(
            sys::ConfigEnvoyPtr,
            usize,
            *mut sys::ModuleBuffer,
            usize,
            u64,
        ) -> u32,
        id: usize,
        labels: &[&str],
        value: u64,
    ) -> bool {
        let mut labels: Vec<sys::ModuleBuffer> = labels
            .iter()
            .map(|label| sys::ModuleBuffer::lend(label.as_bytes()))
            .collect();
        // SAFETY: `call` is a config-level metric callback with this signature; live config
        // pointer; label buffers lent for the call.
        let result = unsafe { call(self.config, id, labels.as_mut_ptr(), labels.len(), value) };
        result == sys::metrics_result::SUCCESS
    }
}

impl ConfigContext for EnvoyConfigContext {
    fn http_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutInitError> {
        let mut headers: Vec<sys::ModuleHttpHeader> = headers
            .iter()
            .map(|(name, value)| sys::ModuleHttpHeader::lend(name.as_bytes(), value))
            .collect();
        let mut callout_id = 0u64;
        // SAFETY: live config pointer on the main thread; cluster, headers and body are lent
        // for the call (Envoy copies them into the request); `callout_id` is a valid out-pointer.
        let result = unsafe {
            sys::envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.config,
                &mut callout_id,
                sys::ModuleBuffer::lend(cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                sys::ModuleBuffer::lend(body),
                timeout_ms,
            )
        };
        match result {
            sys::callout_init::SUCCESS => Ok(callout_id),
            sys::callout_init::MISSING_REQUIRED_HEADERS => {
                Err(CalloutInitError::MissingRequiredHeaders)
            }
            sys::callout_init::CLUSTER_NOT_FOUND => Err(CalloutInitError::ClusterNotFound),
            sys::callout_init::DUPLICATE_CALLOUT_ID => Err(CalloutInitError::DuplicateCalloutId),
            sys::callout_init::CANNOT_CREATE_REQUEST => Err(CalloutInitError::CannotCreateRequest),
            other => Err(CalloutInitError::Other(other)),
        }
    }

    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        self.metric(
            sys::envoy_dynamic_module_callback_http_filter_config_increment_counter,
            id.0,
            labels,
            by,
        )
    }

    fn set_gauge(&mut self, id: GaugeId, labels: &[&str], value: u64) -> bool {
        self.metric(
            sys::envoy_dynamic_module_callback_http_filter_config_set_gauge,
            id.0,
            labels,
            value,
        )
    }

    fn log(&self, level: LogLevel, message: &str) {
        log::log(level, message);
    }
}

/// A config-level scheduler, deleted when dropped.
struct ConfigScheduler(sys::SchedulerPtr);

// SAFETY: the header makes `commit` safe from any thread; `delete` runs once, from `Drop`.
unsafe impl Send for ConfigScheduler {}
// SAFETY: only `commit` is reachable through `&self`, and it is thread-safe.
unsafe impl Sync for ConfigScheduler {}

impl Scheduler for ConfigScheduler {
    fn commit(&self, event_id: u64) {
        // SAFETY: the pointer came from `config_scheduler_new` and is deleted only in `Drop`.
        unsafe {
            sys::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id)
        }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: the module owns the scheduler and deletes it exactly once, here.
        unsafe { sys::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}
