//! The hooks driven as Envoy drives them, against `fake_envoy`: the handshake, a request through
//! the preview filter, and what happens when filter code panics or a local reply re-enters the
//! filter.
//!
//! In the test build, `crate::NEW_FACTORY` is `new_factory` below: the filter name picks the
//! preview filter or one of the misbehaving filters defined here.

use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fake_envoy::{FakeEnvoyConfig, FakeEnvoyStream, logged};
use super::hooks::*;
use super::sys;
use crate::host_api::{ConfigInit, HeadersStatus, HttpFilterFactory, Stream, StreamFilter, reply};

/// `crate::NEW_FACTORY` in tests.
pub(crate) fn new_factory(
    init: &mut dyn ConfigInit,
    name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterFactory>, String> {
    match name {
        "replier" | "panicky-body" | "panicky-drop" | "ender" | "panicky-end" => {
            Ok(Box::new(Misbehaving(name.to_owned())))
        }
        "panicky-config" => panic!("a factory that panics"),
        _ => crate::preview::new_factory(init, name, config),
    }
}

struct Misbehaving(String);

impl HttpFilterFactory for Misbehaving {
    fn new_filter(&self) -> Box<dyn StreamFilter> {
        Box::new(MisbehavingFilter(self.0.clone()))
    }
}

struct MisbehavingFilter(String);

/// How often a `MisbehavingFilter` saw response headers (only the re-entrancy test makes any).
static RESPONSE_HEADERS_SEEN: AtomicUsize = AtomicUsize::new(0);

impl StreamFilter for MisbehavingFilter {
    fn on_request_headers(&mut self, stream: &mut dyn Stream, _end: bool) -> HeadersStatus {
        if self.0 == "replier" {
            stream.send_response(403, &[], b"no", "test_reply");
            return HeadersStatus::StopIteration;
        }
        HeadersStatus::StopIteration
    }

    fn on_request_body(
        &mut self,
        _stream: &mut dyn Stream,
        _end: bool,
    ) -> crate::host_api::BodyStatus {
        assert_ne!(self.0, "panicky-body", "a body callback that panics");
        crate::host_api::BodyStatus::Continue
    }

    fn on_response_headers(&mut self, _stream: &mut dyn Stream, _end: bool) -> HeadersStatus {
        RESPONSE_HEADERS_SEEN.fetch_add(1, Ordering::SeqCst);
        HeadersStatus::Continue
    }

    fn on_destroy(&mut self, stream: &mut dyn crate::host_api::EndingStream) {
        assert_ne!(self.0, "panicky-end", "an on_destroy that panics");
        if self.0 == "ender" {
            stream.increment_counter(crate::host_api::CounterId(7), &["ended"], 1);
        }
    }
}

impl Drop for MisbehavingFilter {
    fn drop(&mut self) {
        if self.0 == "panicky-drop" && !std::thread::panicking() {
            panic!("a filter whose drop panics");
        }
    }
}

/// A configuration loaded through the hooks, destroyed when dropped.
struct Loaded {
    envoy: Box<FakeEnvoyConfig>,
    module: sys::ConfigModulePtr,
}

fn load(name: &str, config: &str) -> Option<Loaded> {
    let mut envoy = Box::new(FakeEnvoyConfig::default());
    let module = envoy_dynamic_module_on_http_filter_config_new(
        std::ptr::from_mut(envoy.as_mut()).cast(),
        sys::EnvoyBuffer {
            ptr: name.as_ptr().cast(),
            length: name.len(),
        },
        sys::EnvoyBuffer {
            ptr: config.as_ptr().cast(),
            length: config.len(),
        },
    );
    (!module.is_null()).then_some(Loaded { envoy, module })
}

impl Drop for Loaded {
    fn drop(&mut self) {
        envoy_dynamic_module_on_http_filter_config_destroy(self.module);
    }
}

/// One stream of a loaded configuration, destroyed when dropped.
struct Request {
    envoy: Box<FakeEnvoyStream>,
    module: sys::FilterModulePtr,
}

impl Request {
    fn start(loaded: &Loaded, path: &str) -> Self {
        let mut envoy = Box::new(FakeEnvoyStream::request(path));
        let module = envoy_dynamic_module_on_http_filter_new(
            loaded.module,
            std::ptr::from_mut(envoy.as_mut()).cast(),
        );
        assert!(!module.is_null());
        envoy.module = module;
        Self { envoy, module }
    }

    fn ptr(&mut self) -> sys::FilterEnvoyPtr {
        std::ptr::from_mut(self.envoy.as_mut()).cast()
    }

    fn headers(&mut self, end_of_stream: bool) -> u32 {
        let ptr = self.ptr();
        envoy_dynamic_module_on_http_filter_request_headers(ptr, self.module, end_of_stream)
    }

    fn body(&mut self, chunk: &[u8], end_of_stream: bool) -> u32 {
        let previous = std::mem::take(&mut self.envoy.received_request);
        self.envoy.buffered_request.extend(previous);
        self.envoy.received_request.push(chunk.to_vec());
        let ptr = self.ptr();
        envoy_dynamic_module_on_http_filter_request_body(ptr, self.module, end_of_stream)
    }

    fn response_headers(&mut self) -> u32 {
        let ptr = self.ptr();
        envoy_dynamic_module_on_http_filter_response_headers(ptr, self.module, false)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        envoy_dynamic_module_on_http_filter_destroy(self.module);
    }
}

#[test]
fn program_init_returns_the_pinned_abi_version() {
    let version = envoy_dynamic_module_on_program_init();
    // SAFETY: the hook returns a pointer to a static C string.
    let version = unsafe { CStr::from_ptr(version) };
    assert_eq!(version.to_str(), Ok("v0.2.0"));
}

#[test]
fn a_request_through_the_preview_filter() {
    let loaded = load("preview", "{}").unwrap();
    let mut request = Request::start(&loaded, "/v1/chat/completions");
    assert_eq!(request.headers(false), sys::headers_status::STOP_ITERATION);
    assert_eq!(
        request.body(b"hello", false),
        sys::body_status::STOP_ITERATION_AND_BUFFER
    );
    assert_eq!(request.body(b" world", true), sys::body_status::CONTINUE);
    assert_eq!(request.envoy.header("x-sluice-native"), Some(&b"11"[..]));
    assert_eq!(request.envoy.route_cache_clears, 1);
    assert!(request.envoy.metadata.contains(&(
        b"sluice.native".to_vec(),
        b"route".to_vec(),
        b"fake-route".to_vec()
    )));
    let requests = loaded
        .envoy
        .metrics
        .iter()
        .find(|(name, _)| name == b"sluice_native_requests")
        .map(|(_, id)| *id)
        .unwrap();
    // Every metric call is recorded: the request counted once, then its body size recorded in
    // the histogram and the largest-body gauge.
    assert_eq!(
        request.envoy.counters.first(),
        Some(&(requests, vec![b"openai".to_vec()], 1))
    );
}

#[test]
fn the_attempt_probe_reads_host_metadata_and_filter_state_through_the_bindings() {
    let loaded = load("preview", r#"{"attempt_probe": {"label": "up"}}"#).unwrap();
    let mut request = Request::start(&loaded, "/v1/chat/completions");
    request
        .envoy
        .request_headers
        .push((b"x-envoy-attempt-count".to_vec(), b"2".to_vec()));
    request
        .envoy
        .host_metadata
        .push((b"sluice".to_vec(), b"target".to_vec(), b"b".to_vec()));
    request
        .envoy
        .filter_state
        .push((b"sluice.probe.attempts".to_vec(), b"up:a:1;".to_vec()));
    assert_eq!(request.headers(true), sys::headers_status::CONTINUE);
    let trace = String::from_utf8(request.envoy.header("x-probe-up").unwrap().to_vec()).unwrap();
    assert!(
        trace.contains("target=b attempt=2 seen=up:a:1; written=true after=up:a:1;up:b:2;"),
        "{trace}"
    );
}

#[test]
fn a_filter_envoy_destroys_can_still_count_through_the_pointer_it_was_created_with() {
    let loaded = load("ender", "").unwrap();
    let mut request = Request::start(&loaded, "/v1/chat/completions");
    request.headers(true);
    let module = request.module;
    // What `Drop for Request` does, with the fake stream kept to read back.
    envoy_dynamic_module_on_http_filter_destroy(module);
    assert_eq!(
        request.envoy.counters,
        vec![(7, vec![b"ended".to_vec()], 1)]
    );
    request.module = std::ptr::null();
}

#[test]
fn a_panic_in_on_destroy_is_caught_and_the_filter_still_freed() {
    let loaded = load("panicky-end", "").unwrap();
    let mut request = Request::start(&loaded, "/v1/chat/completions");
    request.headers(true);
    drop(request);
    assert!(logged("caught a panic in on_http_filter_destroy"));
    assert!(logged("an on_destroy that panics"));
}

#[test]
fn a_rejected_configuration_is_refused_and_logged() {
    assert!(load("preview", r#"{"panic_on_path": "no-slash"}"#).is_none());
    assert!(logged("rejected: panic_on_path"));
}

#[test]
fn a_panicking_factory_refuses_the_configuration() {
    assert!(load("panicky-config", "").is_none());
    assert!(logged(
        "caught a panic in on_http_filter_config_new (a factory that panics)"
    ));
}

#[test]
fn a_panic_in_request_headers_answers_500_in_the_openai_format() {
    let loaded = load("preview", r#"{"panic_on_path": "/__panic"}"#).unwrap();
    let mut request = Request::start(&loaded, "/__panic");
    assert_eq!(request.headers(false), sys::headers_status::STOP_ITERATION);
    let (status, headers, body, details) = &request.envoy.replies[0];
    assert_eq!(*status, 500);
    assert_eq!(body.as_slice(), reply::OPENAI_INTERNAL_ERROR.as_bytes());
    assert!(headers.contains(&(b"content-type".to_vec(), b"application/json".to_vec())));
    assert_eq!(details.as_slice(), b"sluice_internal_error");
    assert!(logged(
        "caught a panic in on_http_filter_request_headers (injected by panic_on_path (test-only configuration)); answered 500"
    ));
    // The reply re-entered the filter's response hook, which passed; so do later callbacks.
    assert_eq!(
        request.envoy.nested_response_statuses,
        vec![sys::headers_status::CONTINUE]
    );
    let counted = request.envoy.counters.len();
    assert_eq!(request.body(b"x", true), sys::body_status::CONTINUE);
    assert_eq!(request.envoy.counters.len(), counted);
    assert_eq!(request.envoy.replies.len(), 1);
}

#[test]
fn a_panic_on_an_anthropic_path_answers_in_anthropic_format() {
    let loaded = load("preview", r#"{"panic_on_path": "/v1/messages"}"#).unwrap();
    let mut request = Request::start(&loaded, "/v1/messages");
    request.headers(false);
    let (status, _, body, _) = &request.envoy.replies[0];
    assert_eq!(*status, 500);
    assert_eq!(body.as_slice(), reply::ANTHROPIC_INTERNAL_ERROR.as_bytes());
}

#[test]
fn a_panic_in_a_body_callback_answers_500_too() {
    let loaded = load("panicky-body", "").unwrap();
    let mut request = Request::start(&loaded, "/v1/completions");
    request.headers(false);
    assert_eq!(
        request.body(b"{}", true),
        sys::body_status::STOP_ITERATION_NO_BUFFER
    );
    assert_eq!(request.envoy.replies[0].0, 500);
    assert!(logged("caught a panic in on_http_filter_request_body"));
}

#[test]
fn hooks_nested_in_a_local_reply_leave_the_busy_filter_alone() {
    let loaded = load("replier", "").unwrap();
    let mut request = Request::start(&loaded, "/v1/models");
    let before = RESPONSE_HEADERS_SEEN.load(Ordering::SeqCst);
    assert_eq!(request.headers(true), sys::headers_status::STOP_ITERATION);
    assert_eq!(request.envoy.replies[0].0, 403);
    assert_eq!(
        request.envoy.nested_response_statuses,
        vec![sys::headers_status::CONTINUE]
    );
    assert_eq!(
        RESPONSE_HEADERS_SEEN.load(Ordering::SeqCst),
        before,
        "nested call reached the filter"
    );
    // Once the first hook has returned, the response phase reaches the filter again.
    assert_eq!(request.response_headers(), sys::headers_status::CONTINUE);
    assert_eq!(RESPONSE_HEADERS_SEEN.load(Ordering::SeqCst), before + 1);
}

#[test]
fn a_filter_whose_drop_panics_is_contained() {
    let loaded = load("panicky-drop", "").unwrap();
    let request = Request::start(&loaded, "/v1/models");
    drop(request);
    assert!(logged(
        "caught a panic in on_http_filter_destroy (a filter whose drop panics)"
    ));
}

#[test]
fn null_pointers_from_envoy_are_passed_over() {
    assert_eq!(
        envoy_dynamic_module_on_http_filter_request_headers(
            std::ptr::null_mut(),
            std::ptr::null(),
            true
        ),
        sys::headers_status::CONTINUE
    );
    assert!(
        envoy_dynamic_module_on_http_filter_new(std::ptr::null(), std::ptr::null_mut()).is_null()
    );
    envoy_dynamic_module_on_http_filter_destroy(std::ptr::null());
    envoy_dynamic_module_on_http_filter_config_destroy(std::ptr::null());
}
