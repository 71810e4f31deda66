//! The tenancy snapshot every Envoy pulls (`GET /tenancy/snapshot`, JSON): the tenants and the
//! keys that work now (revoked and expired keys are left out), at the store's version.

use axum::body::Bytes;
use sluice_wire::tenancy::{self, TenancySnapshot};

use super::model::{KeyRecord, TenancyState, TenantRecord};

/// A built snapshot, encoded once and served to every Envoy until the version changes.
#[derive(Debug, Clone)]
pub struct SnapshotBody {
    pub version: u64,
    pub json: Bytes,
    /// When the first key it carries expires: the snapshot is built again after that, so that
    /// key is left out (same version: the filter refuses expired keys by itself meanwhile).
    pub valid_until_ms: Option<u64>,
}

impl SnapshotBody {
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        self.valid_until_ms.is_none_or(|until| now_ms < until)
    }
}

/// The snapshot of `state` at `now_ms`. Fails if it is over the bounds every Envoy accepts (the
/// admin API refuses changes that would get there, so this means a store written by hand).
pub fn build(state: &TenancyState, now_ms: u64) -> Result<SnapshotBody, String> {
    let keys: Vec<&KeyRecord> = state
        .keys
        .values()
        .filter(|key| key.in_snapshot(now_ms))
        .collect();
    if keys.len() > tenancy::MAX_KEYS || state.tenants.len() > tenancy::MAX_TENANTS {
        return Err(format!(
            "the tenancy snapshot would hold {} keys and {} tenants, more than every Envoy accepts ({} and {})",
            keys.len(),
            state.tenants.len(),
            tenancy::MAX_KEYS,
            tenancy::MAX_TENANTS
        ));
    }
    if let Some(tenant) = state
        .tenants
        .values()
        .find(|t| t.projects.len() > tenancy::MAX_PROJECTS_PER_TENANT)
    {
        return Err(format!(
            "tenant {} has {} projects, more than every Envoy accepts ({})",
            tenant.name,
            tenant.projects.len(),
            tenancy::MAX_PROJECTS_PER_TENANT
        ));
    }
    let valid_until_ms = keys.iter().filter_map(|key| key.expires_at_ms).min();
    let snapshot = TenancySnapshot {
        version: state.version,
        tenants: state.tenants.values().map(TenantRecord::wire).collect(),
        keys: keys.iter().map(|key| key.wire()).collect(),
    };
    let json = serde_json::to_vec(&snapshot)
        .map_err(|e| format!("cannot encode the tenancy snapshot: {e}"))?;
    if json.len() > tenancy::MAX_ENCODED_BYTES {
        return Err(format!(
            "the tenancy snapshot is {} bytes, more than every Envoy accepts ({})",
            json.len(),
            tenancy::MAX_ENCODED_BYTES
        ));
    }
    Ok(SnapshotBody {
        version: state.version,
        json: Bytes::from(json),
        valid_until_ms,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_wire::admin::ProjectSpec;

    use super::*;

    fn key(id: &str, expires: Option<u64>, revoked: Option<u64>) -> (String, KeyRecord) {
        (
            id.to_owned(),
            KeyRecord {
                id: id.to_owned(),
                sha256: "cd".repeat(32),
                tenant: "acme".to_owned(),
                expires_at_ms: expires,
                revoked_at_ms: revoked,
                ..KeyRecord::default()
            },
        )
    }

    #[test]
    fn carries_live_keys_hashed_and_every_tenant() {
        let tenants = BTreeMap::from([(
            "acme".to_owned(),
            TenantRecord {
                name: "acme".to_owned(),
                projects: BTreeMap::from([("web".to_owned(), ProjectSpec::default())]),
                ..TenantRecord::default()
            },
        )]);
        let keys = BTreeMap::from([
            key("key_a", None, None),
            key("key_b", Some(2_000), None),
            key("key_c", Some(500), None),
            key("key_d", None, Some(100)),
        ]);
        let state = TenancyState::new(42, tenants, keys);
        let body = build(&state, 1_000).unwrap();
        assert_eq!(body.version, 42);
        assert_eq!(body.valid_until_ms, Some(2_000));
        assert!(body.is_valid_at(1_999));
        assert!(!body.is_valid_at(2_000));
        let snapshot: TenancySnapshot = serde_json::from_slice(&body.json).unwrap();
        let ids: Vec<&str> = snapshot.keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["key_a", "key_b"]);
        assert_eq!(snapshot.keys[0].sha256, "cd".repeat(32));
        assert_eq!(snapshot.tenants[0].projects[0].name, "web");
        // Once key_b expired.
        let later: TenancySnapshot =
            serde_json::from_slice(&build(&state, 2_000).unwrap().json).unwrap();
        assert_eq!(later.keys.len(), 1);
    }

    #[test]
    fn an_empty_store_is_an_empty_snapshot() {
        let body = build(&TenancyState::default(), 1).unwrap();
        assert_eq!(&body.json[..], br#"{"version":0,"tenants":[],"keys":[]}"#);
    }
}
