//! One `HttpFilter` per request: the phase callbacks Envoy drives.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::log;
use super::metrics::Metrics;
use crate::config::Config;
use crate::error::{ApiFlavor, GatewayError};

pub struct HttpFilter {
    config: Option<Rc<Config>>,
    metrics: Option<Metrics>,
}

impl HttpFilter {
    pub fn new(config: Option<Rc<Config>>, metrics: Option<Metrics>) -> Self {
        Self { config, metrics }
    }

    /// Removes every client-sent copy of a header only the gateway may set.
    fn remove_internal_headers(&self, config: &Config) -> Result<(), GatewayError> {
        for name in config.routing.internal_headers() {
            let present = hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
                .map_err(|_| GatewayError::Internal("reading request headers failed"))?
                .is_some();
            if present {
                hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
                    .map_err(|_| GatewayError::Internal("removing a request header failed"))?;
                if let Some(metrics) = self.metrics {
                    metrics.internal_headers_removed.increment();
                }
            }
        }
        Ok(())
    }

    /// Ends the request with `error`, in the error format of the API the client called. Returns
    /// the action for the current phase.
    fn reject(&self, error: &GatewayError) -> Action {
        let path = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path")
            .ok()
            .flatten()
            .unwrap_or_default();
        let body = error.body(ApiFlavor::from_path(&path));
        let sent = hostcalls::send_http_response(
            u32::from(error.status()),
            vec![("content-type", "application/json")],
            Some(body.as_bytes()),
        );
        if let Err(status) = sent {
            log::warn(&format!("sending a local reply failed: {status:?}"));
        }
        Action::Pause
    }
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    /// Request headers, before any routing decision. Headers may still be changed here; Envoy
    /// matches the route after this phase. `Continue` forwards the request as it now is;
    /// `Pause` after a local reply ends it.
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(metrics) = self.metrics {
            metrics.requests.increment();
        }
        let Some(config) = self.config.clone() else {
            return self.reject(&GatewayError::NotConfigured);
        };
        match self.remove_internal_headers(&config) {
            Ok(()) => Action::Continue,
            Err(error) => self.reject(&error),
        }
    }
}
