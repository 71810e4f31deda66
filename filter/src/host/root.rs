//! The per-VM root context: owns the validated configuration and creates one `HttpFilter` per
//! request.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::HttpFilter;
use super::log;
use super::metrics::Metrics;
use crate::config::Config;
use crate::pipeline::ModelsList;

/// Everything derived from one accepted configuration, shared by the requests of this VM.
pub struct Configured {
    pub config: Config,
    pub models: ModelsList,
}

#[derive(Default)]
pub struct Root {
    /// `None` until a configuration was accepted.
    configured: Option<Rc<Configured>>,
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
        let config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error(&format!("invalid plugin configuration: {err}"));
                return false;
            }
        };
        let now = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let models = ModelsList::new(&config.catalog, now);
        log::info(&format!(
            "configured; model header {}, base model header {}",
            config.routing.model_header, config.routing.base_model_header
        ));
        self.configured = Some(Rc::new(Configured { config, models }));
        if self.metrics.is_none() {
            self.metrics = Some(Metrics::define());
        }
        true
    }

    /// Must return a context: the SDK panics when the root offers none.
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter::new(
            self.configured.clone(),
            self.metrics,
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
