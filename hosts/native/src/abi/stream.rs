//! `EnvoyStream`: `host_api::Stream` over the per-stream callbacks.

use std::cell::Cell;

use super::{log, sys};
use crate::host_api::{
    BodyBuffer, CounterId, EndingStream, GaugeId, HistogramId, LogLevel, Scheduler, Stream,
};

/// One stream's view for one hook call. Built by `hooks` from the pointer Envoy passed to that
/// hook and dropped before it returns; not `Send` (the raw pointer makes sure), since the
/// callbacks must run on the stream's worker thread.
pub struct EnvoyStream<'hook> {
    filter: sys::FilterEnvoyPtr,
    /// Set when a local reply went out, so the panic guard does not send a second one. Borrowed
    /// from the stream's state for the hook call, which ties the view to it.
    replied: &'hook Cell<bool>,
}

impl<'hook> EnvoyStream<'hook> {
    /// `filter` must be the filter pointer Envoy passed to the hook that is running now.
    pub fn new(filter: sys::FilterEnvoyPtr, replied: &'hook Cell<bool>) -> Self {
        Self { filter, replied }
    }

    fn header(&self, map: u32, name: &str) -> Option<&[u8]> {
        let mut value = sys::EnvoyBuffer::EMPTY;
        // SAFETY: `self.filter` is the live stream of the running hook; `name` is lent for the
        // call; `value` is a valid out-pointer and `count` may be null per the header.
        let found = unsafe {
            sys::envoy_dynamic_module_callback_http_get_header(
                self.filter,
                map,
                sys::ModuleBuffer::lend(name.as_bytes()),
                &mut value,
                0,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: Envoy filled `value` with a pointer into its header map, valid until this hook
        // returns or a setter runs; the slice borrows `self`, and setters need `&mut self`.
        found.then(|| unsafe { envoy_slice(value.ptr, value.length) })?
    }

    fn headers(&self, map: u32) -> Vec<(&[u8], &[u8])> {
        // SAFETY: live stream of the running hook; no pointers passed.
        let count =
            unsafe { sys::envoy_dynamic_module_callback_http_get_headers_size(self.filter, map) };
        if count == 0 {
            return Vec::new();
        }
        let mut raw = vec![sys::EnvoyHttpHeader::EMPTY; count];
        // SAFETY: `raw` has room for the `count` entries Envoy just reported for this map, and
        // nothing changes the map between the two calls (same thread, no setter in between).
        let filled = unsafe {
            sys::envoy_dynamic_module_callback_http_get_headers(self.filter, map, raw.as_mut_ptr())
        };
        if !filled {
            return Vec::new();
        }
        raw.iter()
            .filter_map(|header| {
                // SAFETY: as in `header`: pointers into Envoy's map, valid while `self` is
                // borrowed and no setter runs.
                let name = unsafe { envoy_slice(header.key_ptr, header.key_length) }?;
                // SAFETY: likewise.
                let value = unsafe { envoy_slice(header.value_ptr, header.value_length) }
                    .unwrap_or_default();
                Some((name, value))
            })
            .collect()
    }

    fn set_header(&mut self, map: u32, name: &str, value: Option<&[u8]>) -> bool {
        let value = value.map_or(sys::ModuleBuffer::NULL, sys::ModuleBuffer::lend);
        // SAFETY: live stream; `name` and `value` are lent for the call (Envoy copies them).
        // A null value removes the header, as the header documents.
        unsafe {
            sys::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                map,
                sys::ModuleBuffer::lend(name.as_bytes()),
                value,
            )
        }
    }

    fn body_chunks(&self, buffer: u32) -> Vec<&[u8]> {
        // SAFETY: live stream; no pointers passed.
        let count = unsafe {
            sys::envoy_dynamic_module_callback_http_get_body_chunks_size(self.filter, buffer)
        };
        if count == 0 {
            return Vec::new();
        }
        let mut raw = vec![sys::EnvoyBuffer::EMPTY; count];
        // SAFETY: `raw` has room for the `count` chunks Envoy just reported for this buffer.
        let filled = unsafe {
            sys::envoy_dynamic_module_callback_http_get_body_chunks(
                self.filter,
                buffer,
                raw.as_mut_ptr(),
            )
        };
        if !filled {
            return Vec::new();
        }
        raw.iter()
            // SAFETY: slices of Envoy's body buffer, valid until this hook returns or the
            // buffer is changed (drain/append need `&mut self`).
            .filter_map(|chunk| unsafe { envoy_slice(chunk.ptr, chunk.length) })
            .filter(|chunk| !chunk.is_empty())
            .collect()
    }

    fn metric(
        &mut self,
        call: unsafe extern "C" fn(
            sys::FilterEnvoyPtr,
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
        // SAFETY: `call` is one of the per-stream metric callbacks, all with this signature;
        // live stream; the label buffers are lent for the call (Envoy reads, never writes them).
        let result = unsafe { call(self.filter, id, labels.as_mut_ptr(), labels.len(), value) };
        result == sys::metrics_result::SUCCESS
    }
}

impl Stream for EnvoyStream<'_> {
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        self.header(sys::header_map::REQUEST_HEADERS, name)
    }

    fn request_headers(&self) -> Vec<(&[u8], &[u8])> {
        self.headers(sys::header_map::REQUEST_HEADERS)
    }

    fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.set_header(sys::header_map::REQUEST_HEADERS, name, Some(value))
    }

    fn remove_request_header(&mut self, name: &str) -> bool {
        self.set_header(sys::header_map::REQUEST_HEADERS, name, None)
    }

    fn response_header(&self, name: &str) -> Option<&[u8]> {
        self.header(sys::header_map::RESPONSE_HEADERS, name)
    }

    fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.set_header(sys::header_map::RESPONSE_HEADERS, name, Some(value))
    }

    fn remove_response_header(&mut self, name: &str) -> bool {
        self.set_header(sys::header_map::RESPONSE_HEADERS, name, None)
    }

    fn request_body(&self) -> Vec<&[u8]> {
        let mut chunks = self.body_chunks(sys::body_buffer::BUFFERED_REQUEST);
        // SAFETY: live stream; no pointers passed.
        let received_is_buffered = unsafe {
            sys::envoy_dynamic_module_callback_http_received_buffered_request_body(self.filter)
        };
        if !received_is_buffered {
            chunks.extend(self.body_chunks(sys::body_buffer::RECEIVED_REQUEST));
        }
        chunks
    }

    fn response_body(&self) -> Vec<&[u8]> {
        let mut chunks = self.body_chunks(sys::body_buffer::BUFFERED_RESPONSE);
        // SAFETY: live stream; no pointers passed.
        let received_is_buffered = unsafe {
            sys::envoy_dynamic_module_callback_http_received_buffered_response_body(self.filter)
        };
        if !received_is_buffered {
            chunks.extend(self.body_chunks(sys::body_buffer::RECEIVED_RESPONSE));
        }
        chunks
    }

    fn drain_body(&mut self, buffer: BodyBuffer, bytes: usize) -> bool {
        // SAFETY: live stream; no pointers passed.
        unsafe {
            sys::envoy_dynamic_module_callback_http_drain_body(self.filter, abi_body(buffer), bytes)
        }
    }

    fn append_body(&mut self, buffer: BodyBuffer, data: &[u8]) -> bool {
        // SAFETY: live stream; `data` is lent for the call (Envoy copies it).
        unsafe {
            sys::envoy_dynamic_module_callback_http_append_body(
                self.filter,
                abi_body(buffer),
                sys::ModuleBuffer::lend(data),
            )
        }
    }

    fn send_response(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        body: &[u8],
        details: &str,
    ) {
        let mut headers: Vec<sys::ModuleHttpHeader> = headers
            .iter()
            .map(|(name, value)| sys::ModuleHttpHeader::lend(name.as_bytes(), value))
            .collect();
        // SAFETY: live stream; the header array, body and details are lent for the call (Envoy
        // copies them into the reply before returning).
        unsafe {
            sys::envoy_dynamic_module_callback_http_send_response(
                self.filter,
                u32::from(status),
                headers.as_mut_ptr(),
                headers.len(),
                sys::ModuleBuffer::lend(body),
                sys::ModuleBuffer::lend(details.as_bytes()),
            );
        }
        self.replied.set(true);
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: live stream; no pointers passed.
        unsafe { sys::envoy_dynamic_module_callback_http_clear_route_cache(self.filter) }
    }

    fn set_upstream_override_host(&mut self, host: &str, strict: bool) -> bool {
        // SAFETY: live stream; `host` is lent for the call (Envoy copies it).
        unsafe {
            sys::envoy_dynamic_module_callback_http_set_upstream_override_host(
                self.filter,
                sys::ModuleBuffer::lend(host.as_bytes()),
                strict,
            )
        }
    }

    fn continue_decoding(&mut self) {
        // SAFETY: live stream; no pointers passed.
        unsafe { sys::envoy_dynamic_module_callback_http_filter_continue_decoding(self.filter) }
    }

    fn route_name(&self) -> Option<&[u8]> {
        let mut value = sys::EnvoyBuffer::EMPTY;
        // SAFETY: live stream; `value` is a valid out-pointer.
        let found = unsafe {
            sys::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.filter,
                sys::attribute::XDS_ROUTE_NAME,
                &mut value,
            )
        };
        // SAFETY: Envoy lends the route's name (owned by the route, which outlives the hook);
        // the slice borrows `self` like a header value.
        found.then(|| unsafe { envoy_slice(value.ptr, value.length) })?
    }

    fn host_metadata(&self, namespace: &str, key: &str) -> Option<&[u8]> {
        let mut value = sys::EnvoyBuffer::EMPTY;
        // SAFETY: live stream; namespace and key are lent for the call; `value` is a valid
        // out-pointer.
        let found = unsafe {
            sys::envoy_dynamic_module_callback_http_get_metadata_string(
                self.filter,
                sys::metadata_source::HOST,
                sys::ModuleBuffer::lend(namespace.as_bytes()),
                sys::ModuleBuffer::lend(key.as_bytes()),
                &mut value,
            )
        };
        // SAFETY: Envoy lends the string inside the host's metadata, which the attempt's host
        // keeps alive past the hook; the slice borrows `self` like a header value.
        found.then(|| unsafe { envoy_slice(value.ptr, value.length) })?
    }

    fn filter_state(&self, key: &str) -> Option<&[u8]> {
        let mut value = sys::EnvoyBuffer::EMPTY;
        // SAFETY: live stream; `key` is lent for the call; `value` is a valid out-pointer.
        let found = unsafe {
            sys::envoy_dynamic_module_callback_http_get_filter_state_bytes(
                self.filter,
                sys::ModuleBuffer::lend(key.as_bytes()),
                &mut value,
            )
        };
        // SAFETY: Envoy lends the object's bytes, valid until this hook returns or filter state
        // is written (`set_filter_state` needs `&mut self`); the slice borrows `self`.
        found.then(|| unsafe { envoy_slice(value.ptr, value.length) })?
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool {
        // SAFETY: live stream; key and value are lent for the call (Envoy copies them).
        unsafe {
            sys::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.filter,
                sys::ModuleBuffer::lend(key.as_bytes()),
                sys::ModuleBuffer::lend(value),
            )
        }
    }

    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str) {
        // SAFETY: live stream; the three buffers are lent for the call (Envoy copies them).
        unsafe {
            sys::envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
                self.filter,
                sys::ModuleBuffer::lend(namespace.as_bytes()),
                sys::ModuleBuffer::lend(key.as_bytes()),
                sys::ModuleBuffer::lend(value.as_bytes()),
            );
        }
    }

    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        self.metric(
            sys::envoy_dynamic_module_callback_http_filter_increment_counter,
            id.0,
            labels,
            by,
        )
    }

    fn set_gauge(&mut self, id: GaugeId, labels: &[&str], value: u64) -> bool {
        self.metric(
            sys::envoy_dynamic_module_callback_http_filter_set_gauge,
            id.0,
            labels,
            value,
        )
    }

    fn record_histogram(&mut self, id: HistogramId, labels: &[&str], value: u64) -> bool {
        self.metric(
            sys::envoy_dynamic_module_callback_http_filter_record_histogram_value,
            id.0,
            labels,
            value,
        )
    }

    fn scheduler(&mut self) -> Option<Box<dyn Scheduler>> {
        // SAFETY: live stream; Envoy allocates the scheduler and hands its ownership to us.
        let scheduler =
            unsafe { sys::envoy_dynamic_module_callback_http_filter_scheduler_new(self.filter) };
        if scheduler.is_null() {
            return None;
        }
        Some(Box::new(StreamScheduler(scheduler)))
    }

    fn log(&self, level: LogLevel, message: &str) {
        log::log(level, message);
    }
}

/// The view of a stream whose filter Envoy is destroying (`on_http_filter_destroy`, which gets
/// no stream pointer): built from the pointer `filter_new` got. Envoy 1.40 runs the module's
/// destroy hook from `DynamicModuleHttpFilter::destroy`, a method of the very object that
/// pointer names, and a counter increment reaches that object's configuration (which outlives
/// every filter it made). Nothing that needs the stream itself is offered: Envoy refuses
/// filter state there (`docs/envoy-notes.md`, "Upstream filters and composite clusters").
pub struct EndingEnvoyStream {
    filter: sys::FilterEnvoyPtr,
}

impl EndingEnvoyStream {
    /// `filter` must be the pointer Envoy passed to `filter_new` for the filter whose destroy
    /// hook is running now.
    pub fn new(filter: sys::FilterEnvoyPtr) -> Self {
        Self { filter }
    }
}

impl EndingStream for EndingEnvoyStream {
    fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        let mut labels: Vec<sys::ModuleBuffer> = labels
            .iter()
            .map(|label| sys::ModuleBuffer::lend(label.as_bytes()))
            .collect();
        // SAFETY: the filter object is alive for its destroy hook, and the counter lives in its
        // configuration, which outlives every filter it made; labels are lent for the call.
        let result = unsafe {
            sys::envoy_dynamic_module_callback_http_filter_increment_counter(
                self.filter,
                id.0,
                labels.as_mut_ptr(),
                labels.len(),
                by,
            )
        };
        result == sys::metrics_result::SUCCESS
    }

    fn log(&self, level: LogLevel, message: &str) {
        log::log(level, message);
    }
}

/// A per-stream scheduler, deleted when dropped.
struct StreamScheduler(sys::SchedulerPtr);

// SAFETY: the header makes `commit` safe from any thread (a no-op once the stream's filter is
// gone), and `delete` runs once, from `Drop`, when no other reference can exist.
unsafe impl Send for StreamScheduler {}
// SAFETY: `commit` through `&self` is thread-safe, as above; nothing else is reachable via `&`.
unsafe impl Sync for StreamScheduler {}

impl Scheduler for StreamScheduler {
    fn commit(&self, event_id: u64) {
        // SAFETY: the pointer came from `scheduler_new` and is deleted only in `Drop`.
        unsafe { sys::envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event_id) }
    }
}

impl Drop for StreamScheduler {
    fn drop(&mut self) {
        // SAFETY: the module owns the scheduler and deletes it exactly once, here.
        unsafe { sys::envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

fn abi_body(buffer: BodyBuffer) -> u32 {
    match buffer {
        BodyBuffer::ReceivedRequest => sys::body_buffer::RECEIVED_REQUEST,
        BodyBuffer::BufferedRequest => sys::body_buffer::BUFFERED_REQUEST,
        BodyBuffer::ReceivedResponse => sys::body_buffer::RECEIVED_RESPONSE,
        BodyBuffer::BufferedResponse => sys::body_buffer::BUFFERED_RESPONSE,
    }
}

/// Bytes Envoy lends; `None` for a null pointer.
///
/// # Safety
/// If `ptr` is not null it must point to `length` readable bytes that stay valid and unchanged
/// for `'a`.
pub(super) unsafe fn envoy_slice<'a>(
    ptr: *const std::ffi::c_char,
    length: usize,
) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `length` readable bytes at `ptr` for `'a`.
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), length) })
}
