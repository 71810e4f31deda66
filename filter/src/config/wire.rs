//! The configuration exactly as users write it. Unknown fields are errors, so a typo never
//! silently falls back to a default.

use serde::Deserialize;

use super::runtime::DEFAULT_MODEL_HEADER;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireConfig {
    pub routing: WireRouting,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireRouting {
    /// Request header the filter sets to the request's model, for Envoy routes to match on.
    pub model_header: String,
}

impl Default for WireRouting {
    fn default() -> Self {
        Self {
            model_header: DEFAULT_MODEL_HEADER.to_owned(),
        }
    }
}
