//! The `quotas` section: who may call (virtual API keys or a trusted tenant header), the limits
//! per tenant, per tenant + model and per model, prices, upstream credentials and cluster mode.
//! Wire form (as written, unknown fields are errors) and the validated runtime form.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::error::ConfigError;
use super::header_name::HeaderName;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireQuotas {
    pub identity: WireIdentity,
    /// Virtual API keys, as SHA-256 hashes (hex) of the key a client sends.
    pub keys: Vec<WireKey>,
    pub tenants: BTreeMap<String, WireTenant>,
    /// Limits of a tenant not listed in `tenants` (each such tenant gets its own counters).
    pub default_tenant: Option<WireTenant>,
    /// Limits over every tenant, per model (the model the request is routed to).
    pub models: BTreeMap<String, WireLimits>,
    /// USD per million tokens, per model, for cost budgets.
    pub prices: BTreeMap<String, WirePrice>,
    /// Most output tokens one request reserves at admission (its `max_tokens`, capped).
    pub max_reserved_output_tokens: u64,
    /// Shared-data slots holding the counters; the key space never grows past it.
    pub slots: u32,
    /// What happens when a scope's state is unknown (cluster view stale, no free slot).
    pub fail_policy: WireFailPolicy,
    /// Shares the counters with other Envoy instances through the picker and Redis.
    pub cluster: Option<WireCluster>,
    /// Keys, tenants, projects and their limits managed at run time through the companion
    /// service's admin API: pulled as a snapshot on the tick, and spend reported back.
    pub tenancy: Option<WireTenancy>,
    /// Per backend pool: the credential that replaces the client's key.
    pub upstream_credentials: BTreeMap<String, WireCredential>,
}

impl Default for WireQuotas {
    fn default() -> Self {
        Self {
            identity: WireIdentity::default(),
            keys: Vec::new(),
            tenants: BTreeMap::new(),
            default_tenant: None,
            models: BTreeMap::new(),
            prices: BTreeMap::new(),
            max_reserved_output_tokens: 4096,
            slots: 1024,
            fail_policy: WireFailPolicy::Open,
            cluster: None,
            tenancy: None,
            upstream_credentials: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireIdentity {
    /// `api_key` (virtual keys) or `header` (the tenant named by a header an earlier Envoy
    /// filter sets).
    pub source: WireIdentitySource,
    pub tenant_header: String,
}

impl Default for WireIdentity {
    fn default() -> Self {
        Self {
            source: WireIdentitySource::ApiKey,
            tenant_header: "x-sluice-tenant".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireIdentitySource {
    ApiKey,
    Header,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireKey {
    pub sha256: String,
    pub tenant: String,
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireTenant {
    pub limits: WireLimits,
    /// Limits of this tenant on one model.
    pub models: BTreeMap<String, WireLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// Which tokens `tokens_per_minute` counts: `total` (default), `input` or `output`.
    pub tokens_per_minute_counts: WireTokenKind,
    pub max_concurrent: Option<u32>,
    pub budgets: Vec<WireBudget>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireTokenKind {
    #[default]
    Total,
    Input,
    Output,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireBudget {
    /// `hour`, `day` or `month` (calendar periods, UTC).
    pub period: WirePeriod,
    #[serde(default)]
    pub requests: Option<u64>,
    #[serde(default)]
    pub tokens: Option<u64>,
    #[serde(default)]
    pub usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WirePeriod {
    Hour,
    Day,
    Month,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WirePrice {
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireFailPolicy {
    #[default]
    Open,
    Closed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireCluster {
    pub picker_cluster: String,
    pub picker_authority: String,
    pub sync_ms: u64,
    /// The global view is unknown when the last successful sync is older than this.
    pub stale_after_ms: u64,
}

impl Default for WireCluster {
    fn default() -> Self {
        Self {
            picker_cluster: "sluice_picker".to_owned(),
            picker_authority: "sluice-picker".to_owned(),
            sync_ms: 100,
            stale_after_ms: 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireTenancy {
    pub picker_cluster: String,
    pub picker_authority: String,
    /// How often the snapshot is asked for (a `304` while nothing changed).
    pub refresh_ms: u64,
}

impl Default for WireTenancy {
    fn default() -> Self {
        Self {
            picker_cluster: "sluice_picker".to_owned(),
            picker_authority: "sluice-picker".to_owned(),
            refresh_ms: 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireCredential {
    #[serde(default = "default_credential_header")]
    pub header: String,
    /// Written before the key, e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub value: Option<String>,
    /// Name of an environment variable of the VM (`vm_config.environment_variables`).
    #[serde(default)]
    pub env: Option<String>,
}

fn default_credential_header() -> String {
    "authorization".to_owned()
}

// ---------------------------------------------------------------------------------------------
// Runtime form.

#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    pub identity: Identity,
    pub tenants: HashMap<String, TenantLimits>,
    pub default_tenant: Option<TenantLimits>,
    pub models: HashMap<String, ScopeLimits>,
    pub prices: HashMap<String, Price>,
    pub max_reserved_output_tokens: u64,
    pub slots: u32,
    pub fail_policy: FailPolicy,
    pub cluster: Option<Cluster>,
    pub tenancy: Option<TenancyConfig>,
    pub upstream_credentials: HashMap<String, Credential>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// SHA-256 of each key → who it is.
    ApiKeys(HashMap<[u8; 32], Principal>),
    /// The tenant is the value of this header (set by an earlier Envoy filter).
    Header(HeaderName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub project: Option<String>,
    /// The id the key goes by in spend rows and logs (`config_key_id`), made once here rather
    /// than on every request.
    pub key_id: String,
}

/// The id a key of the configuration goes by in spend rows and logs: `config:` and the first 8
/// hex digits of its SHA-256 (never the secret).
pub fn config_key_id(sha256: &[u8; 32]) -> String {
    let mut id = String::from("config:");
    for byte in sha256.iter().take(4) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantLimits {
    pub own: ScopeLimits,
    pub models: HashMap<String, ScopeLimits>,
}

/// The limits of one scope (a tenant, a tenant on a model, a model).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeLimits {
    pub limits: Vec<Limit>,
    pub max_concurrent: Option<u32>,
}

impl ScopeLimits {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.max_concurrent.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub measure: Measure,
    pub window: Window,
    pub max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Requests,
    Tokens(TokenKind),
    /// Nano-USD.
    Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Total,
    Input,
    Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Sliding one-minute window.
    Minute,
    Hour,
    Day,
    Month,
}

/// Nano-USD per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPolicy {
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub picker_cluster: String,
    pub picker_authority: String,
    pub sync_ms: u64,
    pub stale_after_ms: u64,
}

/// Where and how often the tenancy snapshot is pulled (`quotas.tenancy`). The spend ledger is
/// on with it, reported on the quota sync's tick (`cluster.sync_ms`, else `refresh_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenancyConfig {
    pub picker_cluster: String,
    pub picker_authority: String,
    pub refresh_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub header: String,
    pub value: String,
}

/// Where the quota sync endpoint of the picker is.
pub const QUOTA_SYNC_PATH: &str = sluice_wire::quota_sync::PATH;

impl WireQuotas {
    pub(crate) fn validate(self) -> Result<Quotas, ConfigError> {
        let identity = match self.identity.source {
            WireIdentitySource::ApiKey => {
                let mut keys = HashMap::new();
                for (i, key) in self.keys.into_iter().enumerate() {
                    let field = format!("quotas.keys[{i}].sha256");
                    let hash =
                        parse_sha256(&key.sha256).map_err(|m| ConfigError::new(&field, m))?;
                    if key.tenant.trim().is_empty() {
                        return Err(ConfigError::new(
                            format!("quotas.keys[{i}].tenant"),
                            "must not be empty",
                        ));
                    }
                    let principal = Principal {
                        tenant: key.tenant,
                        project: key.project,
                        key_id: config_key_id(&hash),
                    };
                    if keys.insert(hash, principal).is_some() {
                        return Err(ConfigError::new(field, "the same key is listed twice"));
                    }
                }
                Identity::ApiKeys(keys)
            }
            WireIdentitySource::Header => {
                if !self.keys.is_empty() {
                    return Err(ConfigError::new(
                        "quotas.keys",
                        "keys are only used with identity.source \"api_key\"",
                    ));
                }
                let name = HeaderName::parse(&self.identity.tenant_header)
                    .map_err(|m| ConfigError::new("quotas.identity.tenant_header", m))?;
                Identity::Header(name)
            }
        };
        let mut tenants = HashMap::new();
        for (name, tenant) in self.tenants {
            let field = format!("quotas.tenants.{name}");
            tenants.insert(name, tenant.validate(&field)?);
        }
        let default_tenant = self
            .default_tenant
            .map(|t| t.validate("quotas.default_tenant"))
            .transpose()?;
        let mut models = HashMap::new();
        for (name, limits) in self.models {
            let field = format!("quotas.models.{name}");
            models.insert(name, limits.validate(&field, ZeroUsd::Refused)?);
        }
        let mut prices = HashMap::new();
        for (name, price) in self.prices {
            let field = format!("quotas.prices.{name}");
            prices.insert(name, price.validate(&field)?);
        }
        if self.max_reserved_output_tokens == 0 {
            return Err(ConfigError::new(
                "quotas.max_reserved_output_tokens",
                "must be greater than 0",
            ));
        }
        if !(1..=65_536).contains(&self.slots) {
            return Err(ConfigError::new("quotas.slots", "must be 1 to 65536"));
        }
        let cluster = self.cluster.map(WireCluster::validate).transpose()?;
        let tenancy = self.tenancy.map(WireTenancy::validate).transpose()?;
        let mut upstream_credentials = HashMap::new();
        for (pool, credential) in self.upstream_credentials {
            let field = format!("quotas.upstream_credentials.{pool}");
            upstream_credentials.insert(pool, credential.validate(&field)?);
        }
        Ok(Quotas {
            identity,
            tenants,
            default_tenant,
            models,
            prices,
            max_reserved_output_tokens: self.max_reserved_output_tokens,
            slots: self.slots,
            fail_policy: match self.fail_policy {
                WireFailPolicy::Open => FailPolicy::Open,
                WireFailPolicy::Closed => FailPolicy::Closed,
            },
            cluster,
            tenancy,
            upstream_credentials,
        })
    }
}

pub(crate) fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err("must be 64 hex digits (the SHA-256 of the key)".to_owned());
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        let (Some(hi), Some(lo)) = (
            pair.first().copied().and_then(digit),
            pair.get(1).copied().and_then(digit),
        ) else {
            return Err("must be 64 hex digits (the SHA-256 of the key)".to_owned());
        };
        *slot = u8::try_from(hi.saturating_mul(16).saturating_add(lo)).unwrap_or(0);
    }
    Ok(out)
}

impl WireTenant {
    fn validate(self, field: &str) -> Result<TenantLimits, ConfigError> {
        let own = self
            .limits
            .validate(&format!("{field}.limits"), ZeroUsd::Refused)?;
        let mut models = HashMap::new();
        for (name, limits) in self.models {
            let f = format!("{field}.models.{name}");
            models.insert(name, limits.validate(&f, ZeroUsd::Refused)?);
        }
        Ok(TenantLimits { own, models })
    }
}

/// Whether a USD budget of 0 means something. In the plugin configuration it is a mistake
/// (leaving the budget out says "no budget"); the admin API allows it (nothing may be spent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZeroUsd {
    Refused,
    Allowed,
}

/// The limits of one scope of a tenancy snapshot, validated and converted as the
/// configuration's are (one conversion for both).
pub(crate) fn snapshot_limits(
    limits: &sluice_wire::tenancy::Limits,
    field: &str,
) -> Result<ScopeLimits, ConfigError> {
    WireLimits::from(limits).validate(field, ZeroUsd::Allowed)
}

impl From<&sluice_wire::tenancy::Limits> for WireLimits {
    fn from(limits: &sluice_wire::tenancy::Limits) -> Self {
        use sluice_wire::tenancy::{Period, TokenKind as Kind};
        Self {
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
            tokens_per_minute_counts: match limits.tokens_per_minute_counts {
                None | Some(Kind::Total) => WireTokenKind::Total,
                Some(Kind::Input) => WireTokenKind::Input,
                Some(Kind::Output) => WireTokenKind::Output,
            },
            max_concurrent: limits.max_concurrent,
            budgets: limits
                .budgets
                .iter()
                .map(|budget| WireBudget {
                    period: match budget.period {
                        Period::Hour => WirePeriod::Hour,
                        Period::Day => WirePeriod::Day,
                        Period::Month => WirePeriod::Month,
                    },
                    requests: budget.requests,
                    tokens: budget.tokens,
                    usd: budget.usd,
                })
                .collect(),
        }
    }
}

impl WireLimits {
    fn validate(self, field: &str, zero_usd: ZeroUsd) -> Result<ScopeLimits, ConfigError> {
        let positive = |name: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::new(
                    format!("{field}.{name}"),
                    "must be greater than 0",
                ))
            } else {
                Ok(value)
            }
        };
        let mut limits = Vec::new();
        if let Some(max) = self.requests_per_minute {
            limits.push(Limit {
                measure: Measure::Requests,
                window: Window::Minute,
                max: positive("requests_per_minute", max)?,
            });
        }
        if let Some(max) = self.tokens_per_minute {
            let kind = match self.tokens_per_minute_counts {
                WireTokenKind::Total => TokenKind::Total,
                WireTokenKind::Input => TokenKind::Input,
                WireTokenKind::Output => TokenKind::Output,
            };
            limits.push(Limit {
                measure: Measure::Tokens(kind),
                window: Window::Minute,
                max: positive("tokens_per_minute", max)?,
            });
        }
        if self.max_concurrent == Some(0) {
            return Err(ConfigError::new(
                format!("{field}.max_concurrent"),
                "must be greater than 0",
            ));
        }
        let mut periods = Vec::new();
        for (i, budget) in self.budgets.into_iter().enumerate() {
            let f = format!("{field}.budgets[{i}]");
            let window = match budget.period {
                WirePeriod::Hour => Window::Hour,
                WirePeriod::Day => Window::Day,
                WirePeriod::Month => Window::Month,
            };
            if periods.contains(&window) {
                return Err(ConfigError::new(
                    format!("{f}.period"),
                    "another budget has the same period",
                ));
            }
            periods.push(window);
            let before = limits.len();
            if let Some(max) = budget.requests {
                limits.push(Limit {
                    measure: Measure::Requests,
                    window,
                    max: positive(&format!("budgets[{i}].requests"), max)?,
                });
            }
            if let Some(max) = budget.tokens {
                limits.push(Limit {
                    measure: Measure::Tokens(TokenKind::Total),
                    window,
                    max: positive(&format!("budgets[{i}].tokens"), max)?,
                });
            }
            if let Some(usd) = budget.usd {
                let nano = usd_to_nano(usd)
                    .filter(|n| *n > 0 || zero_usd == ZeroUsd::Allowed)
                    .ok_or_else(|| {
                        let range = match zero_usd {
                            ZeroUsd::Refused => "must be 0 < usd <= 1e9",
                            ZeroUsd::Allowed => "must be 0 <= usd <= 1e9",
                        };
                        ConfigError::new(format!("{f}.usd"), range)
                    })?;
                limits.push(Limit {
                    measure: Measure::Cost,
                    window,
                    max: nano,
                });
            }
            if limits.len() == before {
                return Err(ConfigError::new(
                    f,
                    "set at least one of requests, tokens or usd",
                ));
            }
        }
        Ok(ScopeLimits {
            limits,
            max_concurrent: self.max_concurrent,
        })
    }
}

/// USD → nano-USD, for finite amounts from 0 to a billion.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn usd_to_nano(usd: f64) -> Option<u64> {
    if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
        return None;
    }
    // In range: at most 1e18, below u64::MAX.
    Some((usd * 1e9).round() as u64)
}

impl WirePrice {
    fn validate(self, field: &str) -> Result<Price, ConfigError> {
        // USD per million tokens → nano-USD per token: × 1e-6 × 1e9 = × 1000.
        let per_token = |name: &str, usd: f64| {
            usd_to_nano(usd / 1e6).ok_or_else(|| {
                ConfigError::new(
                    format!("{field}.{name}"),
                    "must be a finite price, 0 or more",
                )
            })
        };
        let input = per_token("input", self.input)?;
        Ok(Price {
            input,
            output: per_token("output", self.output)?,
            cached_input: match self.cached_input {
                Some(usd) => per_token("cached_input", usd)?,
                None => input,
            },
        })
    }
}

impl WireCluster {
    fn validate(self) -> Result<Cluster, ConfigError> {
        if self.picker_cluster.trim().is_empty() {
            return Err(ConfigError::new(
                "quotas.cluster.picker_cluster",
                "must not be empty",
            ));
        }
        if self.picker_authority.trim().is_empty() {
            return Err(ConfigError::new(
                "quotas.cluster.picker_authority",
                "must not be empty",
            ));
        }
        if !(10..=60_000).contains(&self.sync_ms) {
            return Err(ConfigError::new(
                "quotas.cluster.sync_ms",
                "must be 10 to 60000",
            ));
        }
        if self.stale_after_ms < self.sync_ms.saturating_mul(2) {
            return Err(ConfigError::new(
                "quotas.cluster.stale_after_ms",
                "must be at least twice sync_ms",
            ));
        }
        Ok(Cluster {
            picker_cluster: self.picker_cluster,
            picker_authority: self.picker_authority,
            sync_ms: self.sync_ms,
            stale_after_ms: self.stale_after_ms,
        })
    }
}

impl WireTenancy {
    fn validate(self) -> Result<TenancyConfig, ConfigError> {
        if self.picker_cluster.trim().is_empty() {
            return Err(ConfigError::new(
                "quotas.tenancy.picker_cluster",
                "must not be empty",
            ));
        }
        if self.picker_authority.trim().is_empty() {
            return Err(ConfigError::new(
                "quotas.tenancy.picker_authority",
                "must not be empty",
            ));
        }
        if !(100..=60_000).contains(&self.refresh_ms) {
            return Err(ConfigError::new(
                "quotas.tenancy.refresh_ms",
                "must be 100 to 60000",
            ));
        }
        Ok(TenancyConfig {
            picker_cluster: self.picker_cluster,
            picker_authority: self.picker_authority,
            refresh_ms: self.refresh_ms,
        })
    }
}

impl Quotas {
    /// The quota sync's target and period: cluster mode's, else the tenancy's (which reports
    /// only spend). `None` when neither is on: nothing to sync.
    pub fn sync_target(&self) -> Option<SyncTarget<'_>> {
        match (&self.cluster, &self.tenancy) {
            (Some(cluster), _) => Some(SyncTarget {
                picker_cluster: &cluster.picker_cluster,
                picker_authority: &cluster.picker_authority,
                period_ms: cluster.sync_ms,
            }),
            (None, Some(tenancy)) => Some(SyncTarget {
                picker_cluster: &tenancy.picker_cluster,
                picker_authority: &tenancy.picker_authority,
                period_ms: tenancy.refresh_ms,
            }),
            (None, None) => None,
        }
    }
}

/// Where the quota sync goes and how often (`Quotas::sync_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTarget<'a> {
    pub picker_cluster: &'a str,
    pub picker_authority: &'a str,
    pub period_ms: u64,
}

impl WireCredential {
    fn validate(self, field: &str) -> Result<Credential, ConfigError> {
        let header = HeaderName::parse_credential(&self.header)
            .map_err(|m| ConfigError::new(format!("{field}.header"), m))?;
        let secret = match (self.value, self.env) {
            (Some(value), None) => value,
            (None, Some(var)) => std::env::var(&var).map_err(|_| {
                ConfigError::new(
                    format!("{field}.env"),
                    format!("environment variable {var} is not set in the VM"),
                )
            })?,
            _ => {
                return Err(ConfigError::new(field, "set exactly one of value or env"));
            }
        };
        let value = format!("{}{secret}", self.prefix);
        if !value
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return Err(ConfigError::new(
                field,
                "the credential must be printable ASCII",
            ));
        }
        Ok(Credential { header, value })
    }
}
