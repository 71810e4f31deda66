//! The tenancy managed at run time: the virtual keys, tenants and projects, with their limits
//! and allowed models, that the companion service's admin API changes and every Envoy pulls as
//! a versioned snapshot (`sluice_wire::tenancy`) on its tick. Built once per snapshot version
//! from the snapshot, validated and bounded as a whole: a snapshot that breaks a bound or holds
//! a limit that does not validate is refused whole, and the host keeps the one it has.
//!
//! Keys are looked up by the SHA-256 of what the client sent, as the configuration's are; the
//! snapshot never holds a secret. Limits are converted to the quota's runtime types by the same
//! function as the configuration's (`config::quotas::snapshot_limits`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// Where each name is in a table: every table of a snapshot is a vector with one of these,
/// built once per snapshot and read by every request.
type Index = HashMap<String, usize>;

/// One snapshot, ready for the request path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tenancy {
    version: u64,
    keys: Vec<VirtualKey>,
    /// Key ids → `keys`.
    by_id: Index,
    /// SHA-256 of each key's secret → `keys`.
    by_hash: HashMap<[u8; 32], usize>,
    tenants: Vec<Tenant>,
    /// Tenant names → `tenants`.
    tenant_index: Index,
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
    projects: Vec<Project>,
    /// Project names → `projects`.
    project_index: Index,
}

impl Tenant {
    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects.get(*self.project_index.get(name)?)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Project {
    pub limits: ScopeLimits,
    pub allowed_models: Option<AllowedModels>,
}

/// The models a key, project or tenant may call, by the name a client sends (an alias) or the
/// name it is routed to (each model → its place in the list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedModels(Index);

impl AllowedModels {
    pub fn allows(&self, requested: &str, routed: &str) -> bool {
        self.0.contains_key(requested) || self.0.contains_key(routed)
    }
}

/// Adds `name` at `at` to `index`; false when it is there already.
fn index_new(index: &mut Index, name: &str, at: usize) -> bool {
    match index.entry(name.to_owned()) {
        Entry::Occupied(_) => false,
        Entry::Vacant(slot) => {
            slot.insert(at);
            true
        }
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
    /// them), then every name and limit. Field paths name the entry (`keys.key_1.limits`), and
    /// are only written for an error.
    pub fn from_snapshot(snapshot: TenancySnapshot) -> Result<Self, TenancyError> {
        bound(|| "keys".to_owned(), snapshot.keys.len(), MAX_KEYS)?;
        bound(|| "tenants".to_owned(), snapshot.tenants.len(), MAX_TENANTS)?;
        let mut tenancy = Self {
            version: snapshot.version,
            keys: Vec::with_capacity(snapshot.keys.len()),
            by_id: Index::with_capacity(snapshot.keys.len()),
            by_hash: HashMap::with_capacity(snapshot.keys.len()),
            tenants: Vec::with_capacity(snapshot.tenants.len()),
            tenant_index: Index::with_capacity(snapshot.tenants.len()),
        };
        for tenant in snapshot.tenants {
            let name = tenant.name.clone();
            let field = || format!("tenants.{}", shown(&name));
            check_name(&field, "", &name)?;
            if !index_new(&mut tenancy.tenant_index, &name, tenancy.tenants.len()) {
                return Err(invalid(field(), "the tenant is listed twice").into());
            }
            tenancy.tenants.push(build_tenant(tenant, &field)?);
        }
        for key in snapshot.keys {
            let field = || format!("keys.{}", shown(&key.id));
            check_name(&field, ".id", &key.id)?;
            check_name(&field, ".tenant", &key.tenant)?;
            if let Some(project) = &key.project {
                check_name(&field, ".project", project)?;
            }
            let hash = parse_sha256(&key.sha256)
                .map_err(|message| invalid(format!("{}.sha256", field()), message))?;
            let at = tenancy.keys.len();
            if !index_new(&mut tenancy.by_id, &key.id, at) {
                return Err(invalid(field(), "the key is listed twice").into());
            }
            if tenancy.by_hash.insert(hash, at).is_some() {
                return Err(invalid(format!("{}.sha256", field()), "another key has it").into());
            }
            tenancy.keys.push(VirtualKey {
                limits: limits_of(&key.limits, &field)?,
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
        self.tenants.get(*self.tenant_index.get(name)?)
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
                .and_then(|(t, p)| t.project(p))
                .and_then(|p| p.allowed_models.as_ref()),
            tenant_entry.and_then(|t| t.allowed_models.as_ref()),
        ];
        lists
            .into_iter()
            .flatten()
            .all(|list| list.allows(requested, routed))
    }
}

fn build_tenant(
    tenant: sluice_wire::tenancy::Tenant,
    field: &dyn Fn() -> String,
) -> Result<Tenant, TenancyError> {
    let with = |suffix: &str| format!("{}{suffix}", field());
    bound(
        || with(".projects"),
        tenant.projects.len(),
        MAX_PROJECTS_PER_TENANT,
    )?;
    bound(|| with(".models"), tenant.models.len(), MAX_MODELS)?;
    let own = limits_of(&tenant.limits, field)?;
    let mut models = HashMap::with_capacity(tenant.models.len());
    for (model, limits) in &tenant.models {
        let f = || format!("{}.models.{}", field(), shown(model));
        check_model(&f, model)?;
        models.insert(model.clone(), limits_of_model(limits, &f)?);
    }
    let mut projects = Vec::with_capacity(tenant.projects.len());
    let mut project_index = Index::with_capacity(tenant.projects.len());
    for project in tenant.projects {
        let name = project.name;
        let f = || format!("{}.projects.{}", field(), shown(&name));
        check_name(&f, "", &name)?;
        if !index_new(&mut project_index, &name, projects.len()) {
            return Err(invalid(f(), "the project is listed twice").into());
        }
        projects.push(Project {
            limits: limits_of(&project.limits, &f)?,
            allowed_models: allowed(project.allowed_models, &f)?,
        });
    }
    Ok(Tenant {
        limits: TenantLimits { own, models },
        allowed_models: allowed(tenant.allowed_models, field)?,
        projects,
        project_index,
    })
}

/// The `limits` of the entry `field` names, converted as the configuration's are.
fn limits_of(
    limits: &sluice_wire::tenancy::Limits,
    field: &dyn Fn() -> String,
) -> Result<ScopeLimits, TenancyError> {
    snapshot_limits(limits, "limits").map_err(|error| prefixed(error, field))
}

/// A tenant's limits on one model (`field` names the model's entry).
fn limits_of_model(
    limits: &sluice_wire::tenancy::Limits,
    field: &dyn Fn() -> String,
) -> Result<ScopeLimits, TenancyError> {
    snapshot_limits(limits, "").map_err(|error| prefixed(error, field))
}

/// The conversion's error with the entry's path in front of its field: built only on error.
fn prefixed(mut error: ConfigError, field: &dyn Fn() -> String) -> TenancyError {
    error.field = match error.field.strip_prefix('.') {
        Some(rest) => format!("{}.{rest}", field()),
        None if error.field.is_empty() => field(),
        None => format!("{}.{}", field(), error.field),
    };
    TenancyError::Invalid(error)
}

fn allowed(
    models: Option<Vec<String>>,
    field: &dyn Fn() -> String,
) -> Result<Option<AllowedModels>, TenancyError> {
    let Some(models) = models else {
        return Ok(None);
    };
    let field = || format!("{}.allowed_models", field());
    bound(field, models.len(), MAX_MODELS)?;
    let mut index = Index::with_capacity(models.len());
    for (at, model) in models.iter().enumerate() {
        check_model(&field, model)?;
        index_new(&mut index, model, at);
    }
    Ok(Some(AllowedModels(index)))
}

fn bound(field: impl Fn() -> String, count: usize, max: usize) -> Result<(), TenancyError> {
    if count > max {
        return Err(invalid(field(), format!("{count} entries, more than {max}")).into());
    }
    Ok(())
}

/// A tenant, project or key id: it becomes part of a quota scope (`p|tenant|project`), a spend
/// row and a metrics label, so it is short, visible ASCII and never holds the scopes' `|`.
/// `field` and `suffix` name it in the error.
fn check_name(field: &dyn Fn() -> String, suffix: &str, name: &str) -> Result<(), TenancyError> {
    let fits = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'|');
    if !fits {
        return Err(invalid(
            format!("{}{suffix}", field()),
            format!("must be 1 to {MAX_NAME_BYTES} visible ASCII characters other than '|'"),
        )
        .into());
    }
    Ok(())
}

/// A model name as clients send it (`meta-llama/Llama-3.1-8B-Instruct`), as the admin API
/// takes it: 1 to `MAX_NAME_BYTES` bytes without control characters.
fn check_model(field: &dyn Fn() -> String, model: &str) -> Result<(), TenancyError> {
    let fits =
        !model.is_empty() && model.len() <= MAX_NAME_BYTES && !model.chars().any(char::is_control);
    if !fits {
        return Err(invalid(
            field(),
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
