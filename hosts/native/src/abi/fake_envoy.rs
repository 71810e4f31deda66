//! A fake Envoy for the unit tests: the callbacks `sys.rs` declares, defined over plain Rust
//! data, so the tests can call the exported hooks exactly as Envoy does (pointers included) and
//! read back what the module asked for. The filter pointer Envoy passes is a `*mut FakeEnvoyStream`
//! here, the config pointer a `*mut FakeEnvoyConfig`.
//!
//! Like Envoy, `send_response` runs the reply through the filter at once: the fake calls the
//! module's `local_reply` and `response_headers` hooks from inside the callback, which is how the
//! tests check that nested hooks leave a busy filter alone.

use std::ffi::c_char;
use std::sync::Mutex;

use super::hooks;
use super::sys::{self, EnvoyBuffer, EnvoyHttpHeader, ModuleBuffer, ModuleHttpHeader};

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything logged through `envoy_dynamic_module_callback_log`, process-wide.
pub static LOGS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

pub fn logged(text: &str) -> bool {
    LOGS.lock()
        .unwrap()
        .iter()
        .any(|(_, line)| line.contains(text))
}

#[derive(Default)]
pub struct FakeEnvoyStream {
    pub request_headers: Headers,
    pub response_headers: Headers,
    pub buffered_request: Vec<Vec<u8>>,
    pub received_request: Vec<Vec<u8>>,
    pub replies: Vec<(u32, Headers, Vec<u8>, Vec<u8>)>,
    pub route_cache_clears: usize,
    pub override_host: Option<(String, bool)>,
    pub decoding_continued: usize,
    pub filter_state: Vec<(Vec<u8>, Vec<u8>)>,
    pub metadata: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// The upstream host's metadata: namespace, key, value.
    pub host_metadata: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    pub counters: Vec<(usize, Vec<Vec<u8>>, u64)>,
    /// The module's filter pointer, for the hooks a local reply re-enters.
    pub module: sys::FilterModulePtr,
    /// What those nested `response_headers` calls returned.
    pub nested_response_statuses: Vec<u32>,
}

impl FakeEnvoyStream {
    pub fn request(path: &str) -> Self {
        Self {
            request_headers: vec![
                (b":method".to_vec(), b"POST".to_vec()),
                (b":path".to_vec(), path.as_bytes().to_vec()),
            ],
            module: std::ptr::null(),
            ..Self::default()
        }
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.request_headers
            .iter()
            .find(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| value.as_slice())
    }
}

#[derive(Default)]
pub struct FakeEnvoyConfig {
    pub metrics: Vec<(Vec<u8>, usize)>,
    pub callouts: Vec<(Vec<u8>, Headers)>,
    pub counters: Vec<(usize, Vec<Vec<u8>>, u64)>,
}

/// A scheduler allocated by `scheduler_new`, freed by `scheduler_delete`.
pub struct FakeScheduler {
    pub committed: Mutex<Vec<u64>>,
}

fn stream<'a>(filter: sys::FilterEnvoyPtr) -> &'a mut FakeEnvoyStream {
    // SAFETY: the tests pass a `*mut FakeEnvoyStream` they own and do not touch during the call.
    unsafe { &mut *filter.cast::<FakeEnvoyStream>() }
}

fn config<'a>(config: sys::ConfigEnvoyPtr) -> &'a mut FakeEnvoyConfig {
    // SAFETY: as for `stream`, with a `*mut FakeEnvoyConfig`.
    unsafe { &mut *config.cast::<FakeEnvoyConfig>() }
}

fn bytes(buffer: ModuleBuffer) -> Option<Vec<u8>> {
    if buffer.ptr.is_null() {
        return None;
    }
    // SAFETY: the module lends `length` bytes for the call.
    Some(unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }.to_vec())
}

fn many(buffers: *mut ModuleBuffer, count: usize) -> Vec<Vec<u8>> {
    if count == 0 {
        return Vec::new();
    }
    // SAFETY: the module lends `count` buffers for the call.
    unsafe { std::slice::from_raw_parts(buffers, count) }
        .iter()
        .map(|buffer| bytes(*buffer).unwrap_or_default())
        .collect()
}

fn lend(value: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: value.as_ptr().cast::<c_char>(),
        length: value.len(),
    }
}

fn map(stream: &mut FakeEnvoyStream, which: u32) -> &mut Headers {
    match which {
        sys::header_map::REQUEST_HEADERS => &mut stream.request_headers,
        sys::header_map::RESPONSE_HEADERS => &mut stream.response_headers,
        other => panic!("fake envoy: header map {other}"),
    }
}

fn body(stream: &mut FakeEnvoyStream, which: u32) -> &mut Vec<Vec<u8>> {
    match which {
        sys::body_buffer::RECEIVED_REQUEST => &mut stream.received_request,
        sys::body_buffer::BUFFERED_REQUEST => &mut stream.buffered_request,
        other => panic!("fake envoy: body buffer {other}"),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer) {
    let message = String::from_utf8_lossy(&bytes(message).unwrap_or_default()).into_owned();
    LOGS.lock().unwrap().push((level, message));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_header(
    filter: sys::FilterEnvoyPtr,
    which: u32,
    key: ModuleBuffer,
    value: *mut EnvoyBuffer,
    index: usize,
    count: *mut usize,
) -> bool {
    let key = bytes(key).unwrap();
    let values: Vec<&Vec<u8>> = map(stream(filter), which)
        .iter()
        .filter(|(name, _)| *name == key)
        .map(|(_, value)| value)
        .collect();
    if !count.is_null() {
        // SAFETY: a valid out-pointer from the module.
        unsafe { *count = values.len() };
    }
    let found = values.get(index).map_or(EnvoyBuffer::EMPTY, |v| lend(v));
    // SAFETY: a valid out-pointer from the module.
    unsafe { *value = found };
    !found.ptr.is_null()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_headers_size(
    filter: sys::FilterEnvoyPtr,
    which: u32,
) -> usize {
    map(stream(filter), which).len()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_headers(
    filter: sys::FilterEnvoyPtr,
    which: u32,
    headers: *mut EnvoyHttpHeader,
) -> bool {
    for (i, (name, value)) in map(stream(filter), which).iter().enumerate() {
        // SAFETY: the module sized the array with `get_headers_size`.
        unsafe {
            *headers.add(i) = EnvoyHttpHeader {
                key_ptr: name.as_ptr().cast(),
                key_length: name.len(),
                value_ptr: value.as_ptr().cast(),
                value_length: value.len(),
            }
        };
    }
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_set_header(
    filter: sys::FilterEnvoyPtr,
    which: u32,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    let key = bytes(key).unwrap();
    let headers = map(stream(filter), which);
    headers.retain(|(name, _)| *name != key);
    if let Some(value) = bytes(value) {
        headers.push((key, value));
    }
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_send_response(
    filter: sys::FilterEnvoyPtr,
    status: u32,
    headers: *mut ModuleHttpHeader,
    headers_count: usize,
    body: ModuleBuffer,
    details: ModuleBuffer,
) {
    // SAFETY: the module lends `headers_count` headers for the call.
    let headers = unsafe { std::slice::from_raw_parts(headers, headers_count) }
        .iter()
        .map(|h| {
            let name = bytes(ModuleBuffer {
                ptr: h.key_ptr,
                length: h.key_length,
            });
            let value = bytes(ModuleBuffer {
                ptr: h.value_ptr,
                length: h.value_length,
            });
            (name.unwrap_or_default(), value.unwrap_or_default())
        })
        .collect();
    let module = {
        let stream = stream(filter);
        stream.replies.push((
            status,
            headers,
            bytes(body).unwrap_or_default(),
            bytes(details).unwrap_or_default(),
        ));
        stream.module
    };
    // Like Envoy: the reply goes through this filter's local-reply and encoder hooks at once.
    if !module.is_null() {
        hooks::envoy_dynamic_module_on_http_filter_local_reply(
            filter,
            module,
            status,
            EnvoyBuffer::EMPTY,
            false,
        );
        let status =
            hooks::envoy_dynamic_module_on_http_filter_response_headers(filter, module, false);
        stream(filter).nested_response_statuses.push(status);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks_size(
    filter: sys::FilterEnvoyPtr,
    which: u32,
) -> usize {
    body(stream(filter), which).len()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks(
    filter: sys::FilterEnvoyPtr,
    which: u32,
    chunks: *mut EnvoyBuffer,
) -> bool {
    for (i, chunk) in body(stream(filter), which).iter().enumerate() {
        // SAFETY: the module sized the array with `get_body_chunks_size`.
        unsafe { *chunks.add(i) = lend(chunk) };
    }
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_append_body(
    filter: sys::FilterEnvoyPtr,
    which: u32,
    data: ModuleBuffer,
) -> bool {
    body(stream(filter), which).push(bytes(data).unwrap_or_default());
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_drain_body(
    filter: sys::FilterEnvoyPtr,
    which: u32,
    count: usize,
) -> bool {
    let chunks = body(stream(filter), which);
    let mut all = chunks.concat();
    all.drain(..count.min(all.len()));
    *chunks = vec![all];
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_received_buffered_request_body(
    _filter: sys::FilterEnvoyPtr,
) -> bool {
    false
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_received_buffered_response_body(
    _filter: sys::FilterEnvoyPtr,
) -> bool {
    false
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
    filter: sys::FilterEnvoyPtr,
    namespace: ModuleBuffer,
    key: ModuleBuffer,
    value: ModuleBuffer,
) {
    stream(filter).metadata.push((
        bytes(namespace).unwrap(),
        bytes(key).unwrap(),
        bytes(value).unwrap(),
    ));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
    filter: sys::FilterEnvoyPtr,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    stream(filter)
        .filter_state
        .push((bytes(key).unwrap(), bytes(value).unwrap()));
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
    filter: sys::FilterEnvoyPtr,
    key: ModuleBuffer,
    value: *mut EnvoyBuffer,
) -> bool {
    let key = bytes(key).unwrap();
    let stream = stream(filter);
    let Some((_, found)) = stream
        .filter_state
        .iter()
        .rev()
        .find(|(name, _)| *name == key)
    else {
        return false;
    };
    // SAFETY: a valid out-pointer; the value lives in the stream the test owns.
    unsafe { *value = lend(found) };
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_metadata_string(
    filter: sys::FilterEnvoyPtr,
    source: u32,
    namespace: ModuleBuffer,
    key: ModuleBuffer,
    value: *mut EnvoyBuffer,
) -> bool {
    assert_eq!(source, sys::metadata_source::HOST);
    let wanted = (bytes(namespace).unwrap(), bytes(key).unwrap());
    let stream = stream(filter);
    let Some((_, _, found)) = stream
        .host_metadata
        .iter()
        .find(|(namespace, key, _)| (namespace, key) == (&wanted.0, &wanted.1))
    else {
        return false;
    };
    // SAFETY: a valid out-pointer; the value lives in the stream the test owns.
    unsafe { *value = lend(found) };
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
    _filter: sys::FilterEnvoyPtr,
    attribute: u32,
    value: *mut EnvoyBuffer,
) -> bool {
    assert_eq!(attribute, sys::attribute::XDS_ROUTE_NAME);
    // SAFETY: a valid out-pointer; the name is a static.
    unsafe { *value = lend(b"fake-route") };
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_clear_route_cache(
    filter: sys::FilterEnvoyPtr,
) {
    stream(filter).route_cache_clears += 1;
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_set_upstream_override_host(
    filter: sys::FilterEnvoyPtr,
    host: ModuleBuffer,
    strict: bool,
) -> bool {
    let host = String::from_utf8(bytes(host).unwrap()).unwrap();
    let valid = host.parse::<std::net::SocketAddr>().is_ok();
    stream(filter).override_host = Some((host, strict));
    valid
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_continue_decoding(
    filter: sys::FilterEnvoyPtr,
) {
    stream(filter).decoding_continued += 1;
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_scheduler_new(
    _filter: sys::FilterEnvoyPtr,
) -> sys::SchedulerPtr {
    let scheduler = FakeScheduler {
        committed: Mutex::new(Vec::new()),
    };
    Box::into_raw(Box::new(scheduler)).cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
    scheduler: sys::SchedulerPtr,
    event_id: u64,
) {
    // SAFETY: a pointer `scheduler_new` made and `scheduler_delete` has not freed.
    let scheduler = unsafe { &*scheduler.cast::<FakeScheduler>() };
    scheduler.committed.lock().unwrap().push(event_id);
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_scheduler_delete(
    scheduler: sys::SchedulerPtr,
) {
    // SAFETY: a pointer `scheduler_new` made, freed once.
    drop(unsafe { Box::from_raw(scheduler.cast::<FakeScheduler>()) });
}

fn define(config_ptr: sys::ConfigEnvoyPtr, name: ModuleBuffer, id: *mut usize) -> u32 {
    let config = config(config_ptr);
    let next = config.metrics.len();
    config.metrics.push((bytes(name).unwrap(), next));
    // SAFETY: a valid out-pointer from the module.
    unsafe { *id = next };
    sys::metrics_result::SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_counter(
    config: sys::ConfigEnvoyPtr,
    name: ModuleBuffer,
    _label_names: *mut ModuleBuffer,
    _label_count: usize,
    id: *mut usize,
) -> u32 {
    define(config, name, id)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
    config: sys::ConfigEnvoyPtr,
    name: ModuleBuffer,
    _label_names: *mut ModuleBuffer,
    _label_count: usize,
    id: *mut usize,
) -> u32 {
    define(config, name, id)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
    config: sys::ConfigEnvoyPtr,
    name: ModuleBuffer,
    _label_names: *mut ModuleBuffer,
    _label_count: usize,
    id: *mut usize,
) -> u32 {
    define(config, name, id)
}

fn count(
    filter: sys::FilterEnvoyPtr,
    id: usize,
    labels: *mut ModuleBuffer,
    n: usize,
    value: u64,
) -> u32 {
    stream(filter).counters.push((id, many(labels, n), value));
    sys::metrics_result::SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_increment_counter(
    filter: sys::FilterEnvoyPtr,
    id: usize,
    labels: *mut ModuleBuffer,
    label_count: usize,
    value: u64,
) -> u32 {
    count(filter, id, labels, label_count, value)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_set_gauge(
    filter: sys::FilterEnvoyPtr,
    id: usize,
    labels: *mut ModuleBuffer,
    label_count: usize,
    value: u64,
) -> u32 {
    count(filter, id, labels, label_count, value)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
    filter: sys::FilterEnvoyPtr,
    id: usize,
    labels: *mut ModuleBuffer,
    label_count: usize,
    value: u64,
) -> u32 {
    count(filter, id, labels, label_count, value)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
    config_ptr: sys::ConfigEnvoyPtr,
    id: usize,
    labels: *mut ModuleBuffer,
    label_count: usize,
    value: u64,
) -> u32 {
    config(config_ptr)
        .counters
        .push((id, many(labels, label_count), value));
    sys::metrics_result::SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
    config_ptr: sys::ConfigEnvoyPtr,
    id: usize,
    labels: *mut ModuleBuffer,
    label_count: usize,
    value: u64,
) -> u32 {
    envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config_ptr,
        id,
        labels,
        label_count,
        value,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
    _config: sys::ConfigEnvoyPtr,
) -> sys::SchedulerPtr {
    envoy_dynamic_module_callback_http_filter_scheduler_new(std::ptr::null_mut())
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
    scheduler: sys::SchedulerPtr,
    event_id: u64,
) {
    envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler, event_id);
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
    scheduler: sys::SchedulerPtr,
) {
    envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler);
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_http_callout(
    config_ptr: sys::ConfigEnvoyPtr,
    callout_id: *mut u64,
    cluster: ModuleBuffer,
    headers: *mut ModuleHttpHeader,
    headers_count: usize,
    _body: ModuleBuffer,
    _timeout_ms: u64,
) -> u32 {
    // SAFETY: the module lends `headers_count` headers for the call.
    let headers = unsafe { std::slice::from_raw_parts(headers, headers_count) }
        .iter()
        .map(|h| {
            let name = bytes(ModuleBuffer {
                ptr: h.key_ptr,
                length: h.key_length,
            });
            let value = bytes(ModuleBuffer {
                ptr: h.value_ptr,
                length: h.value_length,
            });
            (name.unwrap_or_default(), value.unwrap_or_default())
        })
        .collect();
    let config = config(config_ptr);
    config.callouts.push((bytes(cluster).unwrap(), headers));
    // SAFETY: a valid out-pointer from the module.
    unsafe { *callout_id = config.callouts.len() as u64 };
    sys::callout_init::SUCCESS
}
