//! What the tenancy store keeps: tenants (each with its projects) and virtual keys, as the records
//! both stores write (JSON), and the whole state a picker holds in memory to answer the admin API
//! and build the snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_wire::admin::{KeyView, ProjectSpec, TenantView};
use sluice_wire::tenancy::{self, Limits};

/// A tenant as stored: its settings and projects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub models: BTreeMap<String, Limits>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSpec>,
    #[serde(default)]
    pub updated_at_ms: u64,
}

/// A virtual key as stored: the SHA-256 of its secret, never the secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
    pub tenant: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub rotated_at_ms: u64,
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
}

impl TenantRecord {
    pub fn view(&self) -> TenantView {
        TenantView {
            name: self.name.clone(),
            limits: self.limits.clone(),
            models: self.models.clone(),
            allowed_models: self.allowed_models.clone(),
            projects: self.projects.clone(),
            updated_at_ms: self.updated_at_ms,
        }
    }

    /// The tenant as the snapshot carries it.
    pub fn wire(&self) -> tenancy::Tenant {
        tenancy::Tenant {
            name: self.name.clone(),
            limits: self.limits.clone(),
            models: self.models.clone(),
            allowed_models: self.allowed_models.clone(),
            projects: self
                .projects
                .iter()
                .map(|(name, spec)| tenancy::Project {
                    name: name.clone(),
                    limits: spec.limits.clone(),
                    allowed_models: spec.allowed_models.clone(),
                })
                .collect(),
        }
    }
}

impl KeyRecord {
    /// What every answer shows of a key: everything but the digest.
    pub fn view(&self) -> KeyView {
        KeyView {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            project: self.project.clone(),
            name: self.name.clone(),
            limits: self.limits.clone(),
            allowed_models: self.allowed_models.clone(),
            expires_at_ms: self.expires_at_ms,
            created_at_ms: self.created_at_ms,
            rotated_at_ms: self.rotated_at_ms,
            revoked_at_ms: self.revoked_at_ms,
        }
    }

    /// Not revoked (an expired key is still live: it may be given a new expiry).
    pub fn is_live(&self) -> bool {
        self.revoked_at_ms.is_none()
    }

    /// Whether the snapshot of `now_ms` carries it: live and not expired.
    pub fn in_snapshot(&self, now_ms: u64) -> bool {
        self.is_live() && self.expires_at_ms.is_none_or(|at| at > now_ms)
    }

    /// The key as the snapshot carries it.
    pub fn wire(&self) -> tenancy::Key {
        tenancy::Key {
            id: self.id.clone(),
            sha256: self.sha256.clone(),
            tenant: self.tenant.clone(),
            project: self.project.clone(),
            limits: self.limits.clone(),
            allowed_models: self.allowed_models.clone(),
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// One change made through the admin API: records written (`Some`) or deleted (`None`), and
/// what it was, for the log (never a secret).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub tenants: Vec<(String, Option<TenantRecord>)>,
    pub keys: Vec<(String, Option<KeyRecord>)>,
    pub what: String,
}

/// Everything the store holds about tenancy, at one version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenancyState {
    /// 0 for a store nothing was ever written to.
    pub version: u64,
    pub tenants: BTreeMap<String, TenantRecord>,
    pub keys: BTreeMap<String, KeyRecord>,
    /// Upper estimate of the encoded snapshot (every live key, expired ones included).
    snapshot_bytes: usize,
}

/// JSON around the tenants and keys of a snapshot: `{"version":...,"tenants":[],"keys":[]}`.
const SNAPSHOT_OVERHEAD_BYTES: usize = 64;

impl TenancyState {
    pub fn new(
        version: u64,
        tenants: BTreeMap<String, TenantRecord>,
        keys: BTreeMap<String, KeyRecord>,
    ) -> Self {
        let snapshot_bytes = tenants
            .values()
            .map(tenant_bytes)
            .chain(keys.values().map(key_bytes))
            .fold(SNAPSHOT_OVERHEAD_BYTES, usize::saturating_add);
        Self {
            version,
            tenants,
            keys,
            snapshot_bytes,
        }
    }

    /// Applies a committed change; `version` is the store's new version.
    pub fn apply(&mut self, change: &Change, version: u64) {
        for (name, record) in &change.tenants {
            let old = match record {
                Some(record) => self.tenants.insert(name.clone(), record.clone()),
                None => self.tenants.remove(name),
            };
            self.snapshot_bytes = self
                .snapshot_bytes
                .saturating_sub(old.as_ref().map_or(0, tenant_bytes))
                .saturating_add(record.as_ref().map_or(0, tenant_bytes));
        }
        for (id, record) in &change.keys {
            let old = match record {
                Some(record) => self.keys.insert(id.clone(), record.clone()),
                None => self.keys.remove(id),
            };
            self.snapshot_bytes = self
                .snapshot_bytes
                .saturating_sub(old.as_ref().map_or(0, key_bytes))
                .saturating_add(record.as_ref().map_or(0, key_bytes));
        }
        self.version = version;
    }

    /// Keys that are not revoked.
    pub fn live_keys(&self) -> usize {
        self.keys.values().filter(|key| key.is_live()).count()
    }

    /// Upper estimate of the encoded snapshot's size.
    pub fn snapshot_bytes(&self) -> usize {
        self.snapshot_bytes
    }

    /// The estimate after `change` (for refusing a change that would make the snapshot larger
    /// than the filter accepts).
    pub fn snapshot_bytes_after(&self, change: &Change) -> usize {
        let mut bytes = self.snapshot_bytes;
        for (name, record) in &change.tenants {
            bytes = bytes
                .saturating_sub(self.tenants.get(name).map_or(0, tenant_bytes))
                .saturating_add(record.as_ref().map_or(0, tenant_bytes));
        }
        for (id, record) in &change.keys {
            bytes = bytes
                .saturating_sub(self.keys.get(id).map_or(0, key_bytes))
                .saturating_add(record.as_ref().map_or(0, key_bytes));
        }
        bytes
    }
}

/// A tenant's share of the snapshot: its JSON and a comma.
fn tenant_bytes(record: &TenantRecord) -> usize {
    json_len(&record.wire()).saturating_add(1)
}

/// A key's share of the snapshot (none once revoked).
fn key_bytes(record: &KeyRecord) -> usize {
    if record.is_live() {
        json_len(&record.wire()).saturating_add(1)
    } else {
        0
    }
}

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, revoked: Option<u64>) -> KeyRecord {
        KeyRecord {
            id: id.to_owned(),
            sha256: "ab".repeat(32),
            tenant: "acme".to_owned(),
            created_at_ms: 1,
            rotated_at_ms: 1,
            revoked_at_ms: revoked,
            ..KeyRecord::default()
        }
    }

    #[test]
    fn the_snapshot_estimate_follows_changes() {
        let mut state = TenancyState::default();
        let empty = TenancyState::new(0, BTreeMap::new(), BTreeMap::new());
        let tenant = TenantRecord {
            name: "acme".to_owned(),
            ..TenantRecord::default()
        };
        let change = Change {
            tenants: vec![("acme".to_owned(), Some(tenant))],
            keys: vec![("key_1".to_owned(), Some(key("key_1", None)))],
            what: String::new(),
        };
        let after = empty.snapshot_bytes_after(&change);
        state = TenancyState::new(0, state.tenants, state.keys);
        state.apply(&change, 7);
        assert_eq!(state.version, 7);
        assert_eq!(state.snapshot_bytes(), after);
        // The same as counting from scratch.
        let rebuilt = TenancyState::new(7, state.tenants.clone(), state.keys.clone());
        assert_eq!(rebuilt.snapshot_bytes(), after);
        let snapshot = tenancy::TenancySnapshot {
            version: 7,
            tenants: state.tenants.values().map(TenantRecord::wire).collect(),
            keys: state.keys.values().map(KeyRecord::wire).collect(),
        };
        assert!(serde_json::to_vec(&snapshot).unwrap().len() <= after);
        // A revoked key no longer counts.
        state.apply(
            &Change {
                keys: vec![("key_1".to_owned(), Some(key("key_1", Some(9))))],
                ..Change::default()
            },
            8,
        );
        assert!(state.snapshot_bytes() < after);
        assert_eq!(state.live_keys(), 0);
    }

    #[test]
    fn expired_and_revoked_keys_are_left_out_of_the_snapshot() {
        let mut live = key("key_1", None);
        assert!(live.in_snapshot(100));
        live.expires_at_ms = Some(100);
        assert!(!live.in_snapshot(100));
        assert!(live.in_snapshot(99));
        assert!(live.is_live());
        assert!(!key("key_2", Some(5)).in_snapshot(1));
    }

    #[test]
    fn views_never_carry_the_digest() {
        let view = serde_json::to_string(&key("key_1", None).view()).unwrap();
        assert!(!view.contains(&"ab".repeat(32)), "{view}");
    }
}
