//! The tenancy managed at run time: the virtual keys, tenants and projects, with their limits
//! and allowed models, that the companion service's admin API changes and every Envoy pulls as
//! a versioned snapshot (`sluice_wire::tenancy`) on its tick. Built once per snapshot version
//! from the snapshot, validated and bounded as a whole: a snapshot that breaks a bound or holds
//! a limit that does not validate is refused whole, and the host keeps the one it has.
//!
//! Keys are looked up by the SHA-256 of what the client sent, as the configuration's are; the
//! snapshot never holds a secret. Limits are converted to the quota's runtime types by the same
//! function as the configuration's (`config::quotas::snapshot_limits`).

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::config::ConfigError;
use crate::config::quotas::{ScopeLimits, TenantLimits, parse_sha256, snapshot_limits};
pub use sluice_wire::tenancy::{
    MAX_ENCODED_BYTES, MAX_KEYS, MAX_NAME_BYTES, MAX_PROJECTS_PER_TENANT, MAX_TENANTS, PATH,
    TenancySnapshot,
};

/// Shared-data keys of the proxy-wasm host: the last accepted snapshot as the companion service
/// sent it (JSON), and its version (8 bytes, little-endian), written after it.
pub const SNAPSHOT_KEY: &str = "sluice.tenancy";
pub const VERSION_KEY: &str = "sluice.tenancy.version";
/// Lease of the worker that fetches the snapshot for its Envoy (proxy-wasm host).
pub const LEASE_KEY: &str = "sluice.tenancy.lease";

/// Most models in an allowed-model list, and most per-model limits of one tenant.
pub const MAX_MODELS: usize = 256;

/// One snapshot, ready for the request path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tenancy {
    version: u64,
    keys: Vec<VirtualKey>,
    by_hash: HashMap<[u8; 32], usize>,
    by_id: HashMap<String, usize>,
    tenants: HashMap<String, Tenant>,
}

/// A virtual key of the snapshot: whom it stands for and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualKey {
    /// `key_...`: in spend rows and the access log, never the secret.
    pub id: String,
    pub tenant: String,
    pub project: Option<String>,
    pub limits: ScopeLimits,
    pub allowed_models: Option<AllowedModels>,
    /// Unix ms from which the key no longer works.
    pub expires_at_ms: Option<u64>,
}

impl VirtualKey {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A tenant of the snapshot: it replaces the configuration's entry of the same name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tenant {
    pub limits: TenantLimits,
    pub allowed_models: Option<AllowedModels>,
    pub projects: HashMap<String, Project>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Project {
    pub limits: ScopeLimits,
    pub allowed_models: Option<AllowedModels>,
}

/// The models a key, project or tenant may call, by the name a client sends (an alias) or the
/// name it is routed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedModels(HashSet<String>);

impl AllowedModels {
    pub fn allows(&self, requested: &str, routed: &str) -> bool {
        self.0.contains(requested) || self.0.contains(routed)
    }
}

/// Why a snapshot was refused (the host keeps the one it has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenancyError {
    /// Larger than `MAX_ENCODED_BYTES`.
    TooLarge(usize),
    /// Not a snapshot.
    Unreadable(String),
    /// Past a bound of `sluice_wire::tenancy`, or malformed; the field and why.
    Invalid(ConfigError),
}

impl fmt::Display for TenancyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(size) => write!(
                f,
                "the snapshot is {size} bytes, more than {MAX_ENCODED_BYTES}"
            ),
            Self::Unreadable(why) => write!(f, "the snapshot is not readable: {why}"),
            Self::Invalid(error) => write!(f, "the snapshot is refused: {error}"),
        }
    }
}

impl std::error::Error for TenancyError {}

impl From<ConfigError> for TenancyError {
    fn from(error: ConfigError) -> Self {
        Self::Invalid(error)
    }
}

impl Tenancy {
    /// Reads and validates an encoded snapshot (JSON, as the companion service serves it).
    pub fn decode(bytes: &[u8]) -> Result<Self, TenancyError> {
        if bytes.len() > MAX_ENCODED_BYTES {
            return Err(TenancyError::TooLarge(bytes.len()));
        }
        let snapshot: TenancySnapshot = serde_json::from_slice(bytes)
            .map_err(|error| TenancyError::Unreadable(error.to_string()))?;
        Self::from_snapshot(snapshot)
    }

    /// Validates `snapshot` whole: bounds first (before any work proportional to what is past
    /// them), then every name and limit.
    pub fn from_snapshot(snapshot: TenancySnapshot) -> Result<Self, TenancyError> {
        bound("keys", snapshot.keys.len(), MAX_KEYS)?;
        bound("tenants", snapshot.tenants.len(), MAX_TENANTS)?;
        let mut tenants = HashMap::with_capacity(snapshot.tenants.len());
        for tenant in snapshot.tenants {
            let field = format!("tenants.{}", shown(&tenant.name));
            check_name(&field, &tenant.name)?;
            let name = tenant.name.clone();
            let built = build_tenant(tenant, &field)?;
            if tenants.insert(name, built).is_some() {
                return Err(invalid(field, "the tenant is listed twice").into());
            }
        }
        let mut tenancy = Self {
            version: snapshot.version,
            keys: Vec::with_capacity(snapshot.keys.len()),
            by_hash: HashMap::with_capacity(snapshot.keys.len()),
            by_id: HashMap::with_capacity(snapshot.keys.len()),
            tenants,
        };
        for key in snapshot.keys {
            let field = format!("keys.{}", shown(&key.id));
            check_name(&format!("{field}.id"), &key.id)?;
            check_name(&format!("{field}.tenant"), &key.tenant)?;
            if let Some(project) = &key.project {
                check_name(&format!("{field}.project"), project)?;
            }
            let hash = parse_sha256(&key.sha256)
                .map_err(|message| invalid(format!("{field}.sha256"), message))?;
            let index = tenancy.keys.len();
            if tenancy.by_hash.insert(hash, index).is_some() {
                return Err(invalid(format!("{field}.sha256"), "another key has it").into());
            }
            if tenancy.by_id.insert(key.id.clone(), index).is_some() {
                return Err(invalid(field, "the key is listed twice").into());
            }
            tenancy.keys.push(VirtualKey {
                limits: snapshot_limits(&key.limits, &format!("{field}.limits"))?,
                allowed_models: allowed(key.allowed_models, &field)?,
                id: key.id,
                tenant: key.tenant,
                project: key.project,
                expires_at_ms: key.expires_at_ms,
            });
        }
        Ok(tenancy)
    }

    /// Grows with every change made through the admin API.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The key whose secret has this SHA-256.
    pub fn key(&self, sha256: &[u8; 32]) -> Option<&VirtualKey> {
        self.keys.get(*self.by_hash.get(sha256)?)
    }

    pub fn key_by_id(&self, id: &str) -> Option<&VirtualKey> {
        self.keys.get(*self.by_id.get(id)?)
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    /// Keys in the snapshot (expired ones included).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether the caller (`tenant`, its `project` and `key`) may call the model the client
    /// asked for as `requested`, routed to `routed`: every list that applies (the key's, the
    /// project's, the tenant's; absent: every model) must name one of the two.
    pub fn model_allowed(
        &self,
        tenant: &str,
        project: Option<&str>,
        key: Option<&str>,
        requested: &str,
        routed: &str,
    ) -> bool {
        let tenant_entry = self.tenant(tenant);
        let lists = [
            key.and_then(|id| self.key_by_id(id))
                .and_then(|k| k.allowed_models.as_ref()),
            tenant_entry
                .zip(project)
                .and_then(|(t, p)| t.projects.get(p))
                .and_then(|p| p.allowed_models.as_ref()),
            tenant_entry.and_then(|t| t.allowed_models.as_ref()),
        ];
        lists
            .into_iter()
            .flatten()
            .all(|list| list.allows(requested, routed))
    }
}

fn build_tenant(tenant: sluice_wire::tenancy::Tenant, field: &str) -> Result<Tenant, TenancyError> {
    bound(
        &format!("{field}.projects"),
        tenant.projects.len(),
        MAX_PROJECTS_PER_TENANT,
    )?;
    bound(&format!("{field}.models"), tenant.models.len(), MAX_MODELS)?;
    let own = snapshot_limits(&tenant.limits, &format!("{field}.limits"))?;
    let mut models = HashMap::with_capacity(tenant.models.len());
    for (model, limits) in &tenant.models {
        let f = format!("{field}.models.{}", shown(model));
        check_model(&f, model)?;
        models.insert(model.clone(), snapshot_limits(limits, &f)?);
    }
    let mut projects = HashMap::with_capacity(tenant.projects.len());
    for project in tenant.projects {
        let f = format!("{field}.projects.{}", shown(&project.name));
        check_name(&f, &project.name)?;
        let built = Project {
            limits: snapshot_limits(&project.limits, &format!("{f}.limits"))?,
            allowed_models: allowed(project.allowed_models, &f)?,
        };
        if projects.insert(project.name, built).is_some() {
            return Err(invalid(f, "the project is listed twice").into());
        }
    }
    Ok(Tenant {
        limits: TenantLimits { own, models },
        allowed_models: allowed(tenant.allowed_models, field)?,
        projects,
    })
}

fn allowed(
    models: Option<Vec<String>>,
    field: &str,
) -> Result<Option<AllowedModels>, TenancyError> {
    let Some(models) = models else {
        return Ok(None);
    };
    let field = format!("{field}.allowed_models");
    bound(&field, models.len(), MAX_MODELS)?;
    for model in &models {
        check_model(&field, model)?;
    }
    Ok(Some(AllowedModels(models.into_iter().collect())))
}

fn bound(field: &str, count: usize, max: usize) -> Result<(), TenancyError> {
    if count > max {
        return Err(invalid(field, format!("{count} entries, more than {max}")).into());
    }
    Ok(())
}

/// A tenant, project or key id: it becomes part of a quota scope (`p|tenant|project`), a spend
/// row and a metrics label, so it is short, visible ASCII and never holds the scopes' `|`.
fn check_name(field: &str, name: &str) -> Result<(), TenancyError> {
    let fits = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'|');
    if !fits {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_NAME_BYTES} visible ASCII characters other than '|'"),
        )
        .into());
    }
    Ok(())
}

/// A model name as clients send it (`meta-llama/Llama-3.1-8B-Instruct`), as the admin API
/// takes it: 1 to `MAX_NAME_BYTES` bytes without control characters.
fn check_model(field: &str, model: &str) -> Result<(), TenancyError> {
    let fits =
        !model.is_empty() && model.len() <= MAX_NAME_BYTES && !model.chars().any(char::is_control);
    if !fits {
        return Err(invalid(
            field,
            format!("model names must be 1 to {MAX_NAME_BYTES} bytes without control characters"),
        )
        .into());
    }
    Ok(())
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(field, message)
}

/// A name as an error's field path shows it: at most `MAX_NAME_BYTES` bytes of it.
fn shown(name: &str) -> String {
    name.chars()
        .scan(0usize, |bytes, c| {
            *bytes = bytes.saturating_add(c.len_utf8());
            (*bytes <= MAX_NAME_BYTES).then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests;
