//! The raw C ABI: the types and the callbacks (functions Envoy exports and the module calls) that
//! Sluice uses, declared by hand from Envoy's `source/extensions/dynamic_modules/abi/abi.h` at ABI
//! version `v0.2.0` (Envoy 1.40). Only what Sluice needs is here; the hooks (functions the module
//! exports) are defined in `hooks.rs`.
//!
//! Conventions of the header that these declarations rely on:
//! - C enums are passed as 32-bit integers. Values Envoy hands us are taken as `u32` and matched
//!   against the constants below, never transmuted into a Rust enum (an unknown value would be
//!   undefined behaviour).
//! - A "module buffer" is memory the module owns and lends for the duration of the call; an
//!   "Envoy buffer" is memory Envoy owns, valid until the end of the current hook or until the
//!   module calls a setter on the same map or buffer.
//! - `bool` is C's `_Bool` (one byte), `size_t` is `usize`.
//!
//! `tests/tests/native_module.rs` checks that every callback declared in this file is exported by
//! the pinned Envoy binary, and that the module exports every HTTP-filter hook that binary looks
//! up; signatures cannot be checked mechanically, so each one used is exercised in a real Envoy
//! by that test file.

use std::ffi::{c_char, c_void};

/// Envoy's `DynamicModuleHttpFilterConfig`, opaque to the module.
pub type ConfigEnvoyPtr = *mut c_void;
/// The module's per-config state, opaque to Envoy.
pub type ConfigModulePtr = *const c_void;
/// Envoy's `DynamicModuleHttpFilter` for one stream, opaque to the module.
pub type FilterEnvoyPtr = *mut c_void;
/// The module's per-stream state, opaque to Envoy.
pub type FilterModulePtr = *const c_void;
/// A scheduler Envoy allocates and the module deletes.
pub type SchedulerPtr = *mut c_void;
/// Per-route configuration; Sluice has none (`per_route_config_new` refuses it).
pub type PerRouteConfigModulePtr = *const c_void;

/// Bytes Envoy owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

/// Bytes the module owns and lends to Envoy for one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

/// One header as a name and a value the module owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

/// One header as a name and a value inside Envoy's header map.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

impl EnvoyHttpHeader {
    pub const EMPTY: Self = Self {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
}

impl ModuleBuffer {
    /// Lends `bytes` for one call; the borrow must outlive the call, which every caller here
    /// ensures by passing a local or a parameter.
    pub fn lend(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }

    /// The null buffer: "no value" (a header set to it is removed).
    pub const NULL: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

impl ModuleHttpHeader {
    pub fn lend(name: &[u8], value: &[u8]) -> Self {
        Self {
            key_ptr: name.as_ptr().cast(),
            key_length: name.len(),
            value_ptr: value.as_ptr().cast(),
            value_length: value.len(),
        }
    }
}

/// `envoy_dynamic_module_type_http_header_type`: which header map a header call reads or writes.
pub mod header_map {
    pub const REQUEST_HEADERS: u32 = 0;
    // 1: request trailers (not read by Sluice).
    pub const RESPONSE_HEADERS: u32 = 2;
    // 3: response trailers (not read by Sluice).
}

/// `envoy_dynamic_module_type_http_body_type`: the body a body call reads or writes. "Received"
/// is the data of the current body hook only; "buffered" is what earlier hooks held back.
pub mod body_buffer {
    pub const RECEIVED_REQUEST: u32 = 0;
    pub const BUFFERED_REQUEST: u32 = 1;
    pub const RECEIVED_RESPONSE: u32 = 2;
    pub const BUFFERED_RESPONSE: u32 = 3;
}

/// `envoy_dynamic_module_type_log_level` (spdlog's order).
pub mod log_level {
    pub const TRACE: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const INFO: u32 = 2;
    pub const WARN: u32 = 3;
    pub const ERROR: u32 = 4;
    pub const CRITICAL: u32 = 5;
}

/// `envoy_dynamic_module_type_metrics_result`.
pub mod metrics_result {
    pub const SUCCESS: u32 = 0;
    // 1: metric not found (an id this module did not get from a define).
    pub const INVALID_LABELS: u32 = 2;
    pub const FROZEN: u32 = 3;
}

/// `envoy_dynamic_module_type_http_callout_init_result`.
pub mod callout_init {
    pub const SUCCESS: u32 = 0;
    pub const MISSING_REQUIRED_HEADERS: u32 = 1;
    pub const CLUSTER_NOT_FOUND: u32 = 2;
    pub const DUPLICATE_CALLOUT_ID: u32 = 3;
    pub const CANNOT_CREATE_REQUEST: u32 = 4;
}

/// `envoy_dynamic_module_type_http_callout_result`.
pub mod callout_result {
    pub const SUCCESS: u32 = 0;
    pub const RESET: u32 = 1;
    pub const EXCEED_RESPONSE_BUFFER_LIMIT: u32 = 2;
}

/// `envoy_dynamic_module_type_attribute_id`: only the attributes Sluice reads. The value is the
/// position in the header's enum (request.path is 0, and so on).
pub mod attribute {
    /// `xds.route_name`: the route Envoy matched.
    pub const XDS_ROUTE_NAME: u32 = 61;
}

/// `envoy_dynamic_module_type_metadata_source`: whose metadata a metadata read looks in.
pub mod metadata_source {
    // 0: the stream's dynamic metadata, 1: the route's, 2: the cluster's (not read by Sluice).
    /// The upstream host's (`LbEndpoint.metadata`): in an upstream filter, the endpoint this
    /// attempt goes to.
    pub const HOST: u32 = 3;
}

/// Status values the request- and response-headers hooks return (`FilterHeadersStatus`).
pub mod headers_status {
    pub const CONTINUE: u32 = 0;
    pub const STOP_ITERATION: u32 = 1;
}

/// Status values the body hooks return (`FilterDataStatus`).
pub mod body_status {
    pub const CONTINUE: u32 = 0;
    pub const STOP_ITERATION_AND_BUFFER: u32 = 1;
    pub const STOP_ITERATION_NO_BUFFER: u32 = 3;
}

/// Status values the trailers hooks return (`FilterTrailersStatus`).
pub mod trailers_status {
    pub const CONTINUE: u32 = 0;
    pub const STOP_ITERATION: u32 = 1;
}

/// Status values the local-reply hook returns (`LocalErrorStatus`).
pub mod local_reply_status {
    pub const CONTINUE: u32 = 0;
}

// Callbacks Envoy exports. Every pointer argument follows the header's ownership rules above;
// the safe wrappers in `stream.rs`, `config.rs` and `log.rs` are the only callers.
unsafe extern "C" {
    // ---- logging (any thread) ----
    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);

    // ---- headers (the stream's worker thread, inside a hook) ----
    /// Value number `index` of header `key`; stores how many values it has in `count` if not null.
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        map: u32,
        key: ModuleBuffer,
        value: *mut EnvoyBuffer,
        index: usize,
        count: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        map: u32,
    ) -> usize;
    /// Fills `headers`, which must have room for `get_headers_size` entries.
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        map: u32,
        headers: *mut EnvoyHttpHeader,
    ) -> bool;
    /// Replaces every value of `key`; a null `value` removes the header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        map: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    // ---- local replies ----
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status: u32,
        headers: *mut ModuleHttpHeader,
        headers_count: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    // ---- bodies ----
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body: u32,
    ) -> usize;
    /// Fills `chunks`, which must have room for `get_body_chunks_size` entries.
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body: u32,
        chunks: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body: u32,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body: u32,
        bytes: usize,
    ) -> bool;
    /// Whether the "received" request body of this hook is the buffered one (an earlier filter
    /// held the body and let it go in one piece).
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: FilterEnvoyPtr,
    ) -> bool;

    // ---- stream info: metadata, filter state, attributes ----
    pub fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
        filter: FilterEnvoyPtr,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        value: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    /// A string value in `filter_metadata[namespace][key]` of the metadata `source` names.
    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        value: *mut EnvoyBuffer,
    ) -> bool;
    /// Filter state `key` as bytes (an object set by `set_filter_state_bytes`, or any object
    /// that serializes to a string).
    pub fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute: u32,
        value: *mut EnvoyBuffer,
    ) -> bool;

    // ---- routing and flow ----
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);
    /// `host` is `ip:port`; with `strict` the request fails if that host is not available,
    /// otherwise the cluster's load balancer picks another.
    pub fn envoy_dynamic_module_callback_http_set_upstream_override_host(
        filter: FilterEnvoyPtr,
        host: ModuleBuffer,
        strict: bool,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);

    // ---- per-stream scheduler: back onto the stream's worker thread ----
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(
        filter: FilterEnvoyPtr,
    ) -> SchedulerPtr;
    /// Any thread; a no-op once the stream's filter is destroyed.
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: SchedulerPtr);

    // ---- metrics: defined on the config (only while it is created), used per stream ----
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_count: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_count: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_count: usize,
        id: *mut usize,
    ) -> u32;
    /// `label_count` must equal the number of label names the metric was defined with.
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    /// The same from the config, outside any stream (a scheduled event, a callout's answer).
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;

    // ---- config-level scheduler and callouts: the main thread ----
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: ConfigEnvoyPtr,
    ) -> SchedulerPtr;
    /// Any thread; the event runs `on_http_filter_config_scheduled` on the main thread.
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: SchedulerPtr,
    );
    /// `headers` must hold `:method`, `:path` and `host`; the answer arrives in
    /// `on_http_filter_config_http_callout_done` with the id stored in `callout_id`.
    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: ConfigEnvoyPtr,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_count: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;
}
