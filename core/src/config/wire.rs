//! The configuration exactly as users write it. Unknown fields are errors, so a typo never
//! silently falls back to a default.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::picking::Picking;

use super::runtime::{
    DEFAULT_BASE_MODEL_HEADER, DEFAULT_MAX_REQUEST_BODY_BYTES, DEFAULT_MODEL_HEADER,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireConfig {
    pub routing: WireRouting,
    pub limits: WireLimits,
    /// Models the gateway serves, by exact name, `prefix*` family or `*` (any model).
    pub models: BTreeMap<String, WireModel>,
    /// Names clients may use for a model: exact, `prefix*` or `*`, each mapped to an exact model
    /// (or adapter) name from `models`. The body's `model` is rewritten to the target.
    pub aliases: BTreeMap<String, String>,
    /// Replica picking from the picker's snapshot; off when absent.
    pub picking: Option<Picking>,
    /// Holding requests while their pool is saturated (needs `picking`); off when absent.
    pub flow_control: Option<super::flow_control::WireFlowControl>,
    /// Token accounting.
    pub tokens: WireTokens,
    /// Identity, limits and budgets; off when absent.
    pub quotas: Option<super::quotas::WireQuotas>,
    /// Guardrails on requests and responses; off when absent.
    pub guardrails: Option<super::guardrails::WireGuardrails>,
    /// Self-hosted pools and hosted providers that models' `chains` name.
    pub targets: BTreeMap<String, super::targets::WireTarget>,
    /// Taking targets out of rotation (`retry-after`) and ejecting failing ones.
    pub failover: super::targets::WireFailover,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireTokens {
    /// Output budget of a request that sets no `max_tokens` (or equivalent), unless its model
    /// sets its own.
    pub default_max_output_tokens: u64,
    /// Ask streaming upstreams for usage (`stream_options.include_usage`) when the client did
    /// not, and remove it from what the client gets.
    pub stream_usage: bool,
    /// Add `x-sluice-usage` with the counts to JSON responses (held until the body is read).
    pub usage_header: bool,
    /// Largest JSON response body read for usage; larger ones are estimated.
    pub max_response_bytes: u64,
}

impl Default for WireTokens {
    fn default() -> Self {
        Self {
            default_max_output_tokens: 4096,
            stream_usage: true,
            usage_header: false,
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireRouting {
    /// Request header the filter sets to the model the upstream will serve.
    pub model_header: String,
    /// Request header the filter sets to the base model (differs from the model for LoRA
    /// adapters), so adapters can be routed to the pool that serves their base model.
    pub base_model_header: String,
    /// What to do with requests to paths the filter does not handle and
    /// `passthrough_paths` does not list.
    pub unhandled_paths: WireUnhandledPaths,
    /// Path prefixes (whole segments) forwarded to the upstream unread, after the caller is
    /// authenticated and admitted against its request limits.
    pub passthrough_paths: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireUnhandledPaths {
    Pass,
    #[default]
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireLimits {
    pub max_request_body_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireModel {
    /// The backend or replica pool that serves the model (defaults to the model's name).
    pub pool: Option<String>,
    /// Prompt plus output tokens the model accepts; requests that cannot fit are rejected.
    pub context_window: Option<u64>,
    /// LoRA adapters served on top of this model, addressed by name in `model`.
    pub adapters: Vec<String>,
    /// Tokenizer family for token estimates: o200k, cl100k, llama3, qwen or claude (default:
    /// guessed from the model's name).
    pub tokenizer: Option<String>,
    /// Output budget when a request sets none (default: `tokens.default_max_output_tokens`).
    pub default_max_output_tokens: Option<u64>,
    /// The chains of targets serving this model (instead of `pool`), with their weights.
    pub chains: Vec<super::targets::WireChain>,
    /// Keeps a user's (`"user"`) or a session's (`{"header": ...}`) requests on one chain.
    pub sticky: Option<super::targets::WireSticky>,
}

impl Default for WireRouting {
    fn default() -> Self {
        Self {
            model_header: DEFAULT_MODEL_HEADER.to_owned(),
            base_model_header: DEFAULT_BASE_MODEL_HEADER.to_owned(),
            unhandled_paths: WireUnhandledPaths::default(),
            passthrough_paths: Vec::new(),
        }
    }
}

impl Default for WireLimits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
        }
    }
}
