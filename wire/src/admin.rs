//! The admin API's bodies (`/admin/v1/...` on the companion service's admin listeners, JSON),
//! shared by the service and the `sluice-admin` command-line client. docs/admin-api.md lists the
//! routes; the limits are `tenancy::Limits`, as the filter receives them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tenancy::{Limits, Period};

/// Route prefix of every admin call.
pub const PREFIX: &str = "/admin/v1";

/// `PUT /tenants/{tenant}`: creates or replaces a tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub models: BTreeMap<String, Limits>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

/// `PUT /tenants/{tenant}/projects/{project}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

/// A tenant as `GET /tenants` and `GET /tenants/{tenant}` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantView {
    pub name: String,
    pub limits: Limits,
    pub models: BTreeMap<String, Limits>,
    pub allowed_models: Option<Vec<String>>,
    pub projects: BTreeMap<String, ProjectSpec>,
    pub updated_at_ms: u64,
}

/// `POST /keys`: a new virtual key for a tenant (and project, which must exist).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    pub tenant: String,
    #[serde(default)]
    pub project: Option<String>,
    /// A label for people (`ci-bot`); not unique, not secret.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// `PATCH /keys/{id}`: what to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// `Some(None)` (JSON `null`) lifts the restriction.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub expires_at_ms: Option<Option<u64>>,
}

/// A key as every call shows it: never its secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub project: Option<String>,
    pub name: Option<String>,
    pub limits: Limits,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
    /// When the secret last changed (creation or rotation).
    pub rotated_at_ms: u64,
    /// Set once the key is revoked: it no longer works and cannot be rotated.
    pub revoked_at_ms: Option<u64>,
}

/// `POST /keys` and `POST /keys/{id}/rotate`: the only answers that carry the secret. The
/// service keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub key: KeyView,
    pub secret: String,
}

/// `GET /spend?...`: usage and cost per period and the chosen dimensions, and where the budgets
/// of the matching tenants, projects and keys stand in their current periods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendReport {
    pub granularity: Granularity,
    /// The dimensions rows are grouped by, in the order asked.
    pub group_by: Vec<Dimension>,
    pub rows: Vec<SpendRow>,
    pub budgets: Vec<BudgetStanding>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    #[default]
    Hour,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Tenant,
    Key,
    Project,
    Model,
}

/// One period's sums for one combination of the grouped dimensions (a dimension not grouped
/// by is absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendRow {
    /// Start of the hour or day (UTC), RFC 3339: `2026-12-06T08:00:00Z`.
    pub period_start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: f64,
}

/// One budget of a tenant, project or key in its current period: the limit, what the spend
/// store holds for the period, and what is left (never below 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStanding {
    pub scope: BudgetScope,
    pub tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub period: Period,
    pub period_start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<f64>,
    pub spent_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    pub spent_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u64>,
    pub spent_requests: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_requests: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    Tenant,
    Project,
    Key,
}

/// Every admin error: `{"error": {"code": "...", "message": "..."}}` with the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `unauthenticated`, `not_found`, `conflict`, `invalid`, `limit_reached`, `unavailable`.
    pub code: String,
    pub message: String,
}

/// `Option<Option<T>>` for PATCH bodies: an absent field is `None`, `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}
