//! Host calls that report every status instead of panicking.
//!
//! The SDK's `hostcalls::set_buffer`, `set_map_value`, `send_http_response`,
//! `reset_http_response` and `resume_http_request` return `Result` but panic on any status other
//! than `Ok` (proxy-wasm 0.2.5; `set_effective_context` on any but `Ok` and `BadArgument`), and a
//! panic traps the VM. Where the filter must act on a failed call (a guardrail decision the host
//! did not take fails closed, logged and counted; a held stream that is gone when woken) it
//! calls the ABI through these, which hand the status back.
#![allow(unsafe_code)]

mod abi {
    // The proxy-wasm ABI 0.2.1 imports, with enums as their `u32` values so that any status the
    // host returns is a valid value.
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn proxy_set_buffer_bytes(
            buffer_type: u32,
            start: usize,
            size: usize,
            data: *const u8,
            data_size: usize,
        ) -> u32;
        pub fn proxy_replace_header_map_value(
            map_type: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        #[allow(clippy::too_many_arguments)]
        pub fn proxy_send_local_response(
            status_code: u32,
            details: *const u8,
            details_size: usize,
            body: *const u8,
            body_size: usize,
            headers: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        pub fn proxy_close_stream(stream_type: u32) -> u32;
        pub fn proxy_continue_stream(stream_type: u32) -> u32;
        pub fn proxy_set_effective_context(context_id: u32) -> u32;
    }
}

/// `BufferType::HttpResponseBody`.
const RESPONSE_BODY: u32 = 1;
/// `MapType::HttpResponseHeaders`.
const RESPONSE_HEADERS: u32 = 2;
/// `StreamType::HttpRequest`.
const REQUEST_STREAM: u32 = 0;
/// `StreamType::HttpResponse`.
const RESPONSE_STREAM: u32 = 1;

/// A status other than `Ok` from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

fn check(status: u32) -> Result<(), Status> {
    if status == 0 {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Replaces `size` bytes of the response body from `start` with `body`.
pub fn set_response_body(start: usize, size: usize, body: &[u8]) -> Result<(), Status> {
    // SAFETY: the pointers and lengths describe live slices for the duration of the call; the
    // host copies from them and keeps no reference.
    check(unsafe {
        abi::proxy_set_buffer_bytes(RESPONSE_BODY, start, size, body.as_ptr(), body.len())
    })
}

/// Sets (replaces) a response header.
pub fn set_response_header(name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: as above.
    check(unsafe {
        abi::proxy_replace_header_map_value(
            RESPONSE_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Answers with a local reply (Envoy resets the stream instead once the response headers have
/// left).
pub fn send_local_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Status> {
    let headers = serialize_headers(headers).ok_or(Status(u32::MAX))?;
    // SAFETY: as above; `details` is empty.
    check(unsafe {
        abi::proxy_send_local_response(
            u32::from(status),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Resets the response stream.
pub fn reset_response() -> Result<(), Status> {
    // SAFETY: no memory is passed.
    check(unsafe { abi::proxy_close_stream(RESPONSE_STREAM) })
}

/// Makes `context_id` (an HTTP stream of this VM) the context later host calls act on, until
/// the current callback returns: how the root context resumes a held request.
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: no memory is passed.
    check(unsafe { abi::proxy_set_effective_context(context_id) })
}

/// Lets the effective context's request go on (Envoy does it once the current callback has
/// returned).
pub fn continue_request() -> Result<(), Status> {
    // SAFETY: no memory is passed.
    check(unsafe { abi::proxy_continue_stream(REQUEST_STREAM) })
}

/// A header map in the ABI's form: the pair count, each pair's name and value lengths (32-bit
/// little-endian), then each name and value followed by a NUL byte.
fn serialize_headers(headers: &[(&str, &str)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(headers.len()).ok()?.to_le_bytes());
    for (name, value) in headers {
        out.extend_from_slice(&u32::try_from(name.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    Some(out)
}
