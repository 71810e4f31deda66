//! The tenancy snapshot the companion service serves and every Envoy pulls on its tick
//! (`GET PATH`, JSON): the virtual keys (hashed) and the tenants, projects and keys' limits and
//! budgets that the admin API manages at run time. One definition, compiled into both.
//!
//! The filter asks with `if-none-match: "<version>"` and gets `304 Not Modified` while nothing
//! changed, so an idle fleet costs one small exchange per Envoy and interval. The snapshot never
//! holds a key's secret: only its SHA-256, as the filter's own configuration does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// HTTP path of the snapshot on the companion service's filter-facing listener.
pub const PATH: &str = "/tenancy/snapshot";

/// Most keys, tenants, and projects per tenant a snapshot may hold: the admin API refuses to
/// create more and the filter refuses a snapshot with more (it keeps the one it has). Bounds
/// what every worker holds (about 200 bytes per key).
pub const MAX_KEYS: usize = 50_000;
pub const MAX_TENANTS: usize = 10_000;
pub const MAX_PROJECTS_PER_TENANT: usize = 256;
/// Largest encoded snapshot the filter accepts.
pub const MAX_ENCODED_BYTES: usize = 16 << 20;
/// Longest name (tenant, project, model) or key id.
pub const MAX_NAME_BYTES: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancySnapshot {
    /// Grows with every change made through the admin API; the `etag` of the response.
    pub version: u64,
    pub tenants: Vec<Tenant>,
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: String,
    #[serde(default)]
    pub limits: Limits,
    /// Limits of this tenant on one model.
    #[serde(default)]
    pub models: BTreeMap<String, Limits>,
    /// The models this tenant may call (the names clients send, aliases included); absent:
    /// every model.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub projects: Vec<Project>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub name: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

/// A virtual key as the filter sees it: who it is and what it may do. Revoked keys are not in
/// the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// Stable id (`key_...`), in spend reports and the access log; never the secret.
    pub id: String,
    /// SHA-256 of the secret a client sends, 64 hex digits.
    pub sha256: String,
    pub tenant: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Unix ms after which the key no longer works; absent: never.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// The limits and budgets of one scope (a tenant, a project, a key, a tenant on a model).
/// Every field is optional: absent, the scope is not limited by it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Which tokens `tokens_per_minute` counts: `total` (absent), `input` or `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute_counts: Option<TokenKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Total,
    Input,
    Output,
}

/// A budget over a calendar period (UTC): requests, tokens and/or USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub period: Period,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Hour,
    Day,
    Month,
}
