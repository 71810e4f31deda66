//! The functions Envoy calls (`envoy_dynamic_module_on_*`): the program-init handshake and every
//! HTTP-filter hook Envoy 1.40 looks up, optional ones included, so that no hook is silently
//! missing.
//!
//! Each hook with a body runs it inside `catch_unwind`: an unwinding panic must not cross into
//! Envoy, where it would abort the whole proxy (Rust aborts at an `extern "C"` boundary). A panic
//! in a stream's filter answers that request with a 500 in its API's error format, is logged with
//! its message, and the filter gets no more callbacks; Envoy and every other stream carry on.
//! (In the response phase Envoy's local-reply rules decide whether that 500 can still replace the
//! response; only request-phase panics are exercised in Envoy so far.) A panic while a configuration
//! is created rejects that configuration. Hooks for things the module never starts (stream-level
//! callouts and streams) have empty bodies: there is nothing in them that could panic.
//!
//! Re-entrancy: a local reply sent from inside a hook re-enters the module before
//! `send_response` returns. Envoy 1.40 calls this stream's `local_reply` hook there (seen with a
//! reply sent from the request-headers hook, which did not run this filter's response hooks; a
//! reply sent elsewhere may). Any nested stream hook sees the stream busy and passes without
//! calling the filter, which the outer call is borrowing: a filter never sees the response phase
//! of its own local reply, so a reply must carry every header it needs itself.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::config::{EnvoyConfigContext, EnvoyConfigInit};
use super::stream::{EndingEnvoyStream, EnvoyStream, envoy_slice};
use super::{log, sys, version};
use crate::host_api::{
    self, BodyStatus, CalloutOutcome, CalloutResponse, HeadersStatus, HttpFilterFactory, LogLevel,
    Stream, StreamFilter, TrailersStatus,
};

/// What `config_new` gives Envoy as the module's config pointer. Only ever shared: the factory
/// is `Sync` and used from every worker and the main thread at once.
struct ConfigState {
    factory: Box<dyn HttpFilterFactory>,
}

/// What `filter_new` gives Envoy as the module's filter pointer. Reached only through shared
/// references (hooks can nest, see the module comment); the filter itself is behind an
/// `UnsafeCell` that `busy` guards.
struct StreamState {
    filter: UnsafeCell<Box<dyn StreamFilter>>,
    /// The pointer `filter_new` got: the destroy hook has none of its own (`on_destroy`).
    envoy: sys::FilterEnvoyPtr,
    /// A hook is running the filter now.
    busy: Cell<bool>,
    /// A callback panicked: the filter may be half-updated, so it gets no more callbacks.
    failed: Cell<bool>,
    /// A local reply went out (so a panic does not send a second one).
    replied: Cell<bool>,
}

// ---------------------------------------------------------------------------------------------
// Program and configuration
// ---------------------------------------------------------------------------------------------

/// Called once when Envoy loads the module. Returns the ABI version it was built against.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    // Installing a hook cannot panic; the version is a `'static` C string, valid for as long as
    // Envoy wants to read it.
    log::install_panic_hook();
    version::ABI_VERSION.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: sys::ConfigEnvoyPtr,
    name: sys::EnvoyBuffer,
    config: sys::EnvoyBuffer,
) -> sys::ConfigModulePtr {
    guard("on_http_filter_config_new", std::ptr::null, || {
        // SAFETY: Envoy lends the filter name and configuration for the duration of this hook,
        // which outlives both slices (they are not kept: the factory copies what it needs).
        let name = unsafe { envoy_slice(name.ptr, name.length) }.unwrap_or_default();
        // SAFETY: as above.
        let config = unsafe { envoy_slice(config.ptr, config.length) }.unwrap_or_default();
        let name = String::from_utf8_lossy(name);
        let mut init = EnvoyConfigInit::new(config_envoy);
        match (crate::NEW_FACTORY)(&mut init, &name, config) {
            Ok(factory) => Box::into_raw(Box::new(ConfigState { factory }))
                .cast_const()
                .cast(),
            Err(message) => {
                log::log(
                    LogLevel::Error,
                    &format!("sluice-native: filter configuration {name:?} rejected: {message}"),
                );
                std::ptr::null()
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    config_module: sys::ConfigModulePtr,
) {
    guard(
        "on_http_filter_config_destroy",
        || (),
        || {
            if config_module.is_null() {
                return;
            }
            // SAFETY: the pointer came from `Box::into_raw` in `config_new`, Envoy destroys each
            // configuration once, and only after every stream it created is gone, so nothing else
            // refers to it any more.
            drop(unsafe { Box::from_raw(config_module.cast::<ConfigState>().cast_mut()) });
        },
    );
}

/// Sluice has no per-route configuration: refusing it makes Envoy reject such a route config
/// instead of silently ignoring it.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: sys::EnvoyBuffer,
    _config: sys::EnvoyBuffer,
) -> sys::PerRouteConfigModulePtr {
    guard(
        "on_http_filter_per_route_config_new",
        std::ptr::null,
        || {
            log::log(
                LogLevel::Error,
                "sluice-native: per-route configuration is not supported",
            );
            std::ptr::null()
        },
    )
}

/// Never called with anything but null (`per_route_config_new` never creates one).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: sys::PerRouteConfigModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: sys::ConfigEnvoyPtr,
    config_module: sys::ConfigModulePtr,
    event_id: u64,
) {
    guard(
        "on_http_filter_config_scheduled",
        || (),
        || {
            // SAFETY: see `config_state`; Envoy passes the pointer `config_new` returned.
            let Some(state) = (unsafe { config_state(config_module) }) else {
                return;
            };
            let mut context = EnvoyConfigContext::new(config_envoy);
            state.factory.on_scheduled(&mut context, event_id);
        },
    );
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    config_envoy: sys::ConfigEnvoyPtr,
    config_module: sys::ConfigModulePtr,
    callout_id: u64,
    result: u32,
    headers: *mut sys::EnvoyHttpHeader,
    headers_count: usize,
    body_chunks: *mut sys::EnvoyBuffer,
    body_chunks_count: usize,
) {
    guard(
        "on_http_filter_config_http_callout_done",
        || (),
        || {
            // SAFETY: see `config_state`.
            let Some(state) = (unsafe { config_state(config_module) }) else {
                return;
            };
            // SAFETY: Envoy lends the answer's headers and body for the duration of this hook (or
            // passes nulls); the response is dropped before the hook returns.
            let response = unsafe {
                callout_response(
                    result,
                    headers,
                    headers_count,
                    body_chunks,
                    body_chunks_count,
                )
            };
            let mut context = EnvoyConfigContext::new(config_envoy);
            state
                .factory
                .on_http_callout_done(&mut context, callout_id, &response);
        },
    );
}

// Config-level streamed callouts: never started by this module.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _config_envoy: sys::ConfigEnvoyPtr,
    _config_module: sys::ConfigModulePtr,
    _stream_id: u64,
    _headers: *mut sys::EnvoyHttpHeader,
    _headers_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _config_envoy: sys::ConfigEnvoyPtr,
    _config_module: sys::ConfigModulePtr,
    _stream_id: u64,
    _data: *const sys::EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _config_envoy: sys::ConfigEnvoyPtr,
    _config_module: sys::ConfigModulePtr,
    _stream_id: u64,
    _trailers: *mut sys::EnvoyHttpHeader,
    _trailers_count: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _config_envoy: sys::ConfigEnvoyPtr,
    _config_module: sys::ConfigModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _config_envoy: sys::ConfigEnvoyPtr,
    _config_module: sys::ConfigModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_module: sys::ConfigModulePtr,
    filter_envoy: sys::FilterEnvoyPtr,
) -> sys::FilterModulePtr {
    // A null filter makes Envoy close the stream.
    guard("on_http_filter_new", std::ptr::null, || {
        // SAFETY: see `config_state`.
        let Some(config) = (unsafe { config_state(config_module) }) else {
            return std::ptr::null();
        };
        let state = StreamState {
            filter: UnsafeCell::new(config.factory.new_filter()),
            envoy: filter_envoy,
            busy: Cell::new(false),
            failed: Cell::new(false),
            replied: Cell::new(false),
        };
        Box::into_raw(Box::new(state)).cast_const().cast()
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_module: sys::FilterModulePtr) {
    guard(
        "on_http_filter_destroy",
        || (),
        || {
            // SAFETY: see `stream_state`.
            let Some(state) = (unsafe { stream_state(filter_module) }) else {
                return;
            };
            if state.busy.get() {
                // Never seen: Envoy destroys filters after their hooks return. Freeing the state
                // under a running hook would be a use-after-free, so it is leaked instead.
                log::log(
                    LogLevel::Error,
                    "sluice-native: a stream was destroyed inside one of its own hooks; its state is leaked",
                );
                return;
            }
            if !state.failed.get() && !state.envoy.is_null() {
                let _busy = Busy::enter(&state.busy);
                // SAFETY: `busy` was false (checked above) and stays true until `_busy` drops:
                // this is the only reference to the filter.
                let filter = unsafe { &mut *state.filter.get() };
                let ended = catch_unwind(AssertUnwindSafe(|| {
                    let mut stream = EndingEnvoyStream::new(state.envoy);
                    filter.on_destroy(&mut stream);
                }));
                if let Err(payload) = ended {
                    let message = panic_message(payload.as_ref());
                    discard(payload);
                    log_caught("on_http_filter_destroy", &message, "nothing left to answer");
                }
            }
            // SAFETY: the pointer came from `Box::into_raw` in `filter_new`; Envoy destroys each
            // filter once, no hook of this stream is running (`busy` is false again: `_busy`
            // dropped) and none runs after.
            drop(unsafe { Box::from_raw(filter_module.cast::<StreamState>().cast_mut()) });
        },
    );
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    let status = stream_hook(
        "on_http_filter_request_headers",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(HeadersStatus::StopIteration),
        HeadersStatus::Continue,
        |filter, stream| filter.on_request_headers(stream, end_of_stream),
    );
    headers_status(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    let status = stream_hook(
        "on_http_filter_request_body",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(BodyStatus::StopIterationNoBuffer),
        BodyStatus::Continue,
        |filter, stream| filter.on_request_body(stream, end_of_stream),
    );
    body_status(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
) -> u32 {
    let status = stream_hook(
        "on_http_filter_request_trailers",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(TrailersStatus::StopIteration),
        TrailersStatus::Continue,
        |filter, stream| filter.on_request_trailers(stream),
    );
    trailers_status(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    let status = stream_hook(
        "on_http_filter_response_headers",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(HeadersStatus::StopIteration),
        HeadersStatus::Continue,
        |filter, stream| filter.on_response_headers(stream, end_of_stream),
    );
    headers_status(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    let status = stream_hook(
        "on_http_filter_response_body",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(BodyStatus::StopIterationNoBuffer),
        BodyStatus::Continue,
        |filter, stream| filter.on_response_body(stream, end_of_stream),
    );
    body_status(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
) -> u32 {
    let status = stream_hook(
        "on_http_filter_response_trailers",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(TrailersStatus::StopIteration),
        TrailersStatus::Continue,
        |filter, stream| filter.on_response_trailers(stream),
    );
    trailers_status(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
    event_id: u64,
) {
    // A stream can be waiting for this event with its request held: answer it if it panics.
    stream_hook(
        "on_http_filter_scheduled",
        filter_envoy,
        filter_module,
        AfterPanic::Reply(()),
        (),
        |filter, stream| filter.on_scheduled(stream, event_id),
    );
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
) {
    stream_hook(
        "on_http_filter_stream_complete",
        filter_envoy,
        filter_module,
        AfterPanic::Log,
        (),
        |filter, stream| filter.on_stream_complete(stream),
    );
}

/// Envoy is about to send a local reply on this stream (ours included). Sluice lets it go.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _status: u32,
    _details: sys::EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    sys::local_reply_status::CONTINUE
}

// Stream-level callouts and streams: never started by this module.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *mut sys::EnvoyHttpHeader,
    _headers_count: usize,
    _body_chunks: *mut sys::EnvoyBuffer,
    _body_chunks_count: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _stream_id: u64,
    _headers: *mut sys::EnvoyHttpHeader,
    _headers_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _stream_id: u64,
    _data: *const sys::EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _stream_id: u64,
    _trailers: *mut sys::EnvoyHttpHeader,
    _trailers_count: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

// Flow control for terminal filters; Sluice is never one.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: sys::FilterEnvoyPtr,
    _filter_module: sys::FilterModulePtr,
) {
}

// ---------------------------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------------------------

/// What a stream hook does when its filter panicked.
enum AfterPanic<R> {
    /// Answer the request with a 500 (unless a reply already went out) and return this status.
    Reply(R),
    /// Only log (the stream is over).
    Log,
}

/// Runs a stream hook's body against the stream's filter, unless the filter already failed or
/// the call is nested inside another hook of the same stream (then `pass` is returned).
fn stream_hook<R>(
    hook: &'static str,
    filter_envoy: sys::FilterEnvoyPtr,
    filter_module: sys::FilterModulePtr,
    after_panic: AfterPanic<R>,
    pass: R,
    run: impl FnOnce(&mut dyn StreamFilter, &mut dyn Stream) -> R,
) -> R {
    // SAFETY: see `stream_state`.
    let Some(state) = (unsafe { stream_state(filter_module) }) else {
        return pass;
    };
    if state.failed.get() || state.busy.get() {
        return pass;
    }
    let outcome = {
        let _busy = Busy::enter(&state.busy);
        // SAFETY: `busy` was false and stays true until `_busy` drops, so no other hook of this
        // stream touches the filter meanwhile (nested ones return above): this is the only
        // reference to it.
        let filter = unsafe { &mut *state.filter.get() };
        catch_unwind(AssertUnwindSafe(|| {
            let mut stream = EnvoyStream::new(filter_envoy, &state.replied);
            run(filter.as_mut(), &mut stream)
        }))
    };
    match outcome {
        Ok(status) => status,
        Err(payload) => {
            // First, so the hooks our own reply re-enters leave the filter alone.
            state.failed.set(true);
            let message = panic_message(payload.as_ref());
            discard(payload);
            match after_panic {
                AfterPanic::Reply(stopped) => {
                    let action = if state.replied.get() {
                        "its local reply stands"
                    } else if reply_internal_error(filter_envoy, &state.replied) {
                        "answered 500"
                    } else {
                        "could not answer it"
                    };
                    log_caught(hook, &message, action);
                    stopped
                }
                AfterPanic::Log => {
                    log_caught(hook, &message, "nothing left to answer");
                    pass
                }
            }
        }
    }
}

/// Sets a stream's `busy` flag for as long as it lives, unwinding included.
struct Busy<'a>(&'a Cell<bool>);

impl<'a> Busy<'a> {
    fn enter(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        Self(flag)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Sends the internal-error answer in the format of the API the request called. False if
/// building or sending it panicked.
fn reply_internal_error(filter_envoy: sys::FilterEnvoyPtr, replied: &Cell<bool>) -> bool {
    let sent = catch_unwind(AssertUnwindSafe(|| {
        let mut stream = EnvoyStream::new(filter_envoy, replied);
        let body = host_api::reply::internal_error_body(stream.request_header(":path"));
        stream.send_response(
            host_api::reply::INTERNAL_ERROR_STATUS,
            &[("content-type", b"application/json")],
            body.as_bytes(),
            "sluice_internal_error",
        );
    }));
    match sent {
        Ok(()) => true,
        Err(payload) => {
            discard(payload);
            false
        }
    }
}

/// Runs a hook body that has no stream to answer; `fallback` is returned if it panicked.
fn guard<R>(hook: &'static str, fallback: impl FnOnce() -> R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            discard(payload);
            log_caught(hook, &message, "the hook did nothing");
            fallback()
        }
    }
}

fn log_caught(hook: &str, message: &str, action: &str) {
    // Formatting cannot panic here (plain strings); logging never panics.
    log::log(
        LogLevel::Error,
        &format!("sluice-native: caught a panic in {hook} ({message}); {action}"),
    );
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Drops a panic's payload; if dropping it panics too, that is caught and the second payload
/// leaked (a payload that panics on drop is a pathological case `catch_unwind` leaves to us).
fn discard(payload: Box<dyn Any + Send>) {
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(second);
    }
}

// ---------------------------------------------------------------------------------------------
// Pointer casts
// ---------------------------------------------------------------------------------------------

/// The configuration behind Envoy's config pointer.
///
/// # Safety
/// `ptr` is null or a pointer `config_new` returned that `config_destroy` has not freed. Envoy
/// guarantees that for every hook it passes it to.
unsafe fn config_state<'a>(ptr: sys::ConfigModulePtr) -> Option<&'a ConfigState> {
    // SAFETY: per the contract, a valid `ConfigState` or null; only shared references are made.
    unsafe { ptr.cast::<ConfigState>().as_ref() }
}

/// The stream state behind Envoy's filter pointer.
///
/// # Safety
/// `ptr` is null or a pointer `filter_new` returned that `destroy` has not freed. Envoy
/// guarantees that for every hook it passes it to; the reference is shared, and the filter
/// inside is only reached under `busy`.
unsafe fn stream_state<'a>(ptr: sys::FilterModulePtr) -> Option<&'a StreamState> {
    // SAFETY: per the contract, a valid `StreamState` or null.
    unsafe { ptr.cast::<StreamState>().as_ref() }
}

/// A callout's answer as lent slices.
///
/// # Safety
/// Each pointer is null or points to `count` valid entries whose bytes stay valid for `'a`.
unsafe fn callout_response<'a>(
    result: u32,
    headers: *const sys::EnvoyHttpHeader,
    headers_count: usize,
    body: *const sys::EnvoyBuffer,
    body_count: usize,
) -> CalloutResponse<'a> {
    let outcome = match result {
        sys::callout_result::SUCCESS => CalloutOutcome::Success,
        sys::callout_result::RESET => CalloutOutcome::Reset,
        sys::callout_result::EXCEED_RESPONSE_BUFFER_LIMIT => CalloutOutcome::TooLarge,
        other => CalloutOutcome::Other(other),
    };
    let headers: &[sys::EnvoyHttpHeader] = if headers.is_null() {
        &[]
    } else {
        // SAFETY: per the contract, `headers_count` valid entries.
        unsafe { std::slice::from_raw_parts(headers, headers_count) }
    };
    let body: &[sys::EnvoyBuffer] = if body.is_null() {
        &[]
    } else {
        // SAFETY: per the contract, `body_count` valid entries.
        unsafe { std::slice::from_raw_parts(body, body_count) }
    };
    CalloutResponse {
        outcome,
        headers: headers
            .iter()
            .filter_map(|header| {
                // SAFETY: per the contract, the header's bytes are valid for `'a`.
                let name = unsafe { envoy_slice(header.key_ptr, header.key_length) }?;
                // SAFETY: likewise.
                let value = unsafe { envoy_slice(header.value_ptr, header.value_length) };
                Some((name, value.unwrap_or_default()))
            })
            .collect(),
        body: body
            .iter()
            // SAFETY: per the contract, each chunk's bytes are valid for `'a`.
            .filter_map(|chunk| unsafe { envoy_slice(chunk.ptr, chunk.length) })
            .collect(),
    }
}

fn headers_status(status: HeadersStatus) -> u32 {
    match status {
        HeadersStatus::Continue => sys::headers_status::CONTINUE,
        HeadersStatus::StopIteration => sys::headers_status::STOP_ITERATION,
    }
}

fn body_status(status: BodyStatus) -> u32 {
    match status {
        BodyStatus::Continue => sys::body_status::CONTINUE,
        BodyStatus::StopIterationAndBuffer => sys::body_status::STOP_ITERATION_AND_BUFFER,
        BodyStatus::StopIterationNoBuffer => sys::body_status::STOP_ITERATION_NO_BUFFER,
    }
}

fn trailers_status(status: TrailersStatus) -> u32 {
    match status {
        TrailersStatus::Continue => sys::trailers_status::CONTINUE,
        TrailersStatus::StopIteration => sys::trailers_status::STOP_ITERATION,
    }
}
