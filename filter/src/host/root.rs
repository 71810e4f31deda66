//! The per-VM root context: owns the validated configuration and creates one `HttpFilter` per
//! request.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::HttpFilter;
use super::log;
use super::metrics::Metrics;
use crate::config::Config;

#[derive(Default)]
pub struct Root {
    /// `None` until a configuration was accepted.
    config: Option<Rc<Config>>,
    metrics: Option<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    /// Called with the plugin's `configuration`, at load and on every config update. Returning
    /// false makes Envoy reject the plugin (the listener fails to load or the update is refused),
    /// so a bad configuration never serves traffic; the reason, naming the field, is logged.
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error(&format!("cannot read the plugin configuration: {status:?}"));
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                log::info(&format!(
                    "configured; model header {}",
                    config.routing.model_header
                ));
                self.config = Some(Rc::new(config));
                if self.metrics.is_none() {
                    self.metrics = Some(Metrics::define());
                }
                true
            }
            Err(err) => {
                log::error(&format!("invalid plugin configuration: {err}"));
                false
            }
        }
    }

    /// Must return a context: the SDK panics when the root offers none.
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter::new(self.config.clone(), self.metrics)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
