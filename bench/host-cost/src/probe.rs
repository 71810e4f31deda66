use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

/// One host interaction per bit of the configuration mask.
#[derive(Clone, Copy)]
enum Step {
    /// Five `get_map_value` calls for headers present in every request.
    GetHeaders = 0,
    /// One `get_map` call for all request headers.
    GetHeaderMap = 1,
    /// Hold the headers and buffer the whole body (`Pause` until end of stream).
    PauseForBody = 2,
    /// Read the buffered body (needs `PauseForBody`).
    ReadBody = 3,
    /// One `set_map_value` once the body is in (needs `PauseForBody`).
    SetHeader = 4,
    /// Two more `set_map_value` calls (needs `PauseForBody`).
    SetTwoMoreHeaders = 5,
    /// `clear_route_cache` through `call_foreign_function` (needs `PauseForBody`).
    ClearRouteCache = 6,
    /// Three `get_map_value` calls for headers that are absent.
    GetAbsentHeaders = 7,
    /// Three `remove_map_value` calls for headers that are absent.
    RemoveAbsentHeaders = 8,
    /// One `increment_metric`.
    IncrementCounter = 9,
    /// One `get_current_time`.
    ReadClock = 10,
    /// One `get_shared_data` and one `set_shared_data`.
    SharedDataReadWrite = 11,
    /// Seventeen `set_property` calls (filter state `wasm.sluice.<field>`): the decision fields
    /// a served request leaves for the access log and traces.
    SetFilterState = 12,
}

/// The decision fields a served request writes (`sluice_core::exchange::DecisionField`), with
/// values of their usual size.
const FILTER_STATE: [(&str, &[u8]); 17] = [
    ("sluice.operation", b"chat"),
    ("sluice.provider", b"openai"),
    ("sluice.api", b"chat"),
    ("sluice.tenant", b"acme"),
    ("sluice.project", b"search"),
    ("sluice.key_id", b"key_0123456789abcdef"),
    ("sluice.request_model", b"meta-llama/Llama-3.1-8B-Instruct"),
    ("sluice.response_model", b"meta-llama/Llama-3.1-8B-Instruct"),
    ("sluice.target", b"llama_8b"),
    ("sluice.queue_wait_ms", b"0"),
    ("sluice.guardrail_actions", b"email:redact"),
    ("sluice.quota", b"admitted"),
    ("sluice.input_tokens", b"187"),
    ("sluice.output_tokens", b"64"),
    ("sluice.cached_tokens", b"0"),
    ("sluice.cost_usd", b"0.00063"),
    ("sluice.ttft_ms", b"41"),
];

const PRESENT: [&str; 5] = [
    ":method",
    ":path",
    "content-type",
    "content-length",
    "user-agent",
];
const ABSENT: [&str; 3] = ["x-probe-a", "x-probe-b", "x-probe-c"];

// The SDK's entry-point macro expands to an exported `#[no_mangle]` function.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Warn);
        proxy_wasm::set_root_context(|_| Box::new(super::Root::default()));
    }}
}

#[derive(Default)]
struct Root {
    mask: u32,
    counter: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let Ok(mask) = String::from_utf8_lossy(&config).trim().parse() else {
            let _ = hostcalls::log(LogLevel::Error, "the configuration must be a bit mask");
            return false;
        };
        self.mask = mask;
        self.counter = hostcalls::define_metric(MetricType::Counter, "probe_total").unwrap_or(0);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            mask: self.mask,
            counter: self.counter,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    mask: u32,
    counter: u32,
}

impl Probe {
    fn does(&self, step: Step) -> bool {
        self.mask & (1 << step as u32) != 0
    }
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = MapType::HttpRequestHeaders;
        if self.does(Step::GetHeaders) {
            for name in PRESENT {
                std::hint::black_box(hostcalls::get_map_value(headers, name).ok());
            }
        }
        if self.does(Step::GetHeaderMap) {
            std::hint::black_box(hostcalls::get_map(headers).ok());
        }
        if self.does(Step::GetAbsentHeaders) {
            for name in ABSENT {
                std::hint::black_box(hostcalls::get_map_value(headers, name).ok());
            }
        }
        if self.does(Step::RemoveAbsentHeaders) {
            for name in ABSENT {
                let _ = hostcalls::remove_map_value(headers, name);
            }
        }
        if self.does(Step::IncrementCounter) {
            let _ = hostcalls::increment_metric(self.counter, 1);
        }
        if self.does(Step::ReadClock) {
            std::hint::black_box(hostcalls::get_current_time().ok());
        }
        if self.does(Step::SharedDataReadWrite) {
            let (_, cas) = hostcalls::get_shared_data("probe").unwrap_or((None, None));
            let _ = hostcalls::set_shared_data("probe", Some(b"12345678"), cas);
        }
        if self.does(Step::SetFilterState) {
            for (key, value) in FILTER_STATE {
                let _ = hostcalls::set_property(vec![key], Some(value));
            }
        }
        if self.does(Step::PauseForBody) {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.does(Step::PauseForBody) {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let headers = MapType::HttpRequestHeaders;
        if self.does(Step::ReadBody) {
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
            std::hint::black_box(body.ok());
        }
        if self.does(Step::SetHeader) {
            let _ = hostcalls::set_map_value(headers, "x-probe-model", Some("probe-model"));
        }
        if self.does(Step::SetTwoMoreHeaders) {
            let _ = hostcalls::set_map_value(headers, "x-probe-base", Some("probe-model"));
            let _ = hostcalls::set_map_value(headers, "x-probe-endpoint", Some("127.0.0.1:1"));
        }
        if self.does(Step::ClearRouteCache) {
            let _ = hostcalls::call_foreign_function("clear_route_cache", None);
        }
        Action::Continue
    }
}
