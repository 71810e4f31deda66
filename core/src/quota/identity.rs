//! Who is calling: a virtual API key (`Authorization: Bearer <key>` as OpenAI clients send it,
//! `x-api-key` as Anthropic clients do) looked up by its SHA-256 among the configuration's keys
//! first, then the tenancy snapshot's (keys managed at run time), or the tenant named by a header
//! an earlier Envoy filter set. Keys are hashed at once and never stored, logged or echoed.

use sha2::{Digest, Sha256};

pub use crate::config::quotas::config_key_id;
use crate::config::quotas::{Identity, Principal};
use crate::tenancy::Tenancy;

/// Longest tenant name taken from a header.
const MAX_TENANT: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No key (or no tenant header).
    Missing,
    /// A key no one was given (or an unusable tenant header).
    Invalid,
}

/// Who the request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub project: Option<String>,
    /// The key's id: a run-time key's (`key_...`), or `config:<first 8 hex digits of its
    /// SHA-256>` for a key of the configuration; `None` for a tenant named by a header. Never
    /// the secret.
    pub key: Option<String>,
}

pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a client presented: `Authorization: Bearer <key>` first, then `x-api-key`.
pub fn presented_key<'h>(
    authorization: Option<&'h str>,
    x_api_key: Option<&'h str>,
) -> Option<&'h str> {
    let bearer = authorization.and_then(|value| {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    bearer
        .or(x_api_key.map(str::trim))
        .filter(|key| !key.is_empty())
}

/// Identifies the caller from the request headers (`header` looks one up by name). A key is
/// looked up in the configuration first, then in `tenancy` (the run-time keys, if any); a
/// run-time key past its expiry at `now_ms` is as unknown as one never given.
pub fn identify<'h>(
    identity: &Identity,
    tenancy: Option<&Tenancy>,
    now_ms: u64,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<Caller, AuthError> {
    match identity {
        Identity::ApiKeys(keys) => {
            let key = presented_key(header("authorization"), header("x-api-key"))
                .ok_or(AuthError::Missing)?;
            let hash = sha256(key);
            if let Some(Principal {
                tenant,
                project,
                key_id,
            }) = keys.get(&hash)
            {
                return Ok(Caller {
                    tenant: tenant.clone(),
                    project: project.clone(),
                    key: Some(key_id.clone()),
                });
            }
            let key = tenancy
                .and_then(|t| t.key(&hash))
                .filter(|k| !k.expired(now_ms))
                .ok_or(AuthError::Invalid)?;
            Ok(Caller {
                tenant: key.tenant.clone(),
                project: key.project.clone(),
                key: Some(key.id.clone()),
            })
        }
        Identity::Header(name) => {
            let tenant = header(name.as_str())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AuthError::Missing)?;
            if tenant.len() > MAX_TENANT || !tenant.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AuthError::Invalid);
            }
            Ok(Caller {
                tenant: tenant.to_owned(),
                project: None,
                key: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::collections::HashMap;

    use super::*;
    use crate::config::HeaderName;

    #[test]
    fn keys_from_either_header() {
        assert_eq!(presented_key(Some("Bearer sk-1"), None), Some("sk-1"));
        assert_eq!(
            presented_key(Some("bearer  sk-1 "), Some("x")),
            Some("sk-1")
        );
        assert_eq!(presented_key(None, Some("sk-ant")), Some("sk-ant"));
        assert_eq!(presented_key(Some("Basic abc"), None), None);
        assert_eq!(presented_key(Some("Bearer "), None), None);
        assert_eq!(presented_key(None, None), None);
    }

    #[test]
    fn hashed_keys_map_to_tenants() {
        let mut keys = HashMap::new();
        keys.insert(
            sha256("sk-acme"),
            Principal {
                tenant: "acme".into(),
                project: Some("web".into()),
                key_id: config_key_id(&sha256("sk-acme")),
            },
        );
        let identity = Identity::ApiKeys(keys);
        let headers =
            |auth: &'static str| move |name: &str| (name == "authorization").then_some(auth);
        assert_eq!(
            identify(&identity, None, 0, headers("Bearer sk-acme"))
                .unwrap()
                .tenant,
            "acme"
        );
        assert_eq!(
            identify(&identity, None, 0, headers("Bearer sk-other")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            identify(&identity, None, 0, |_| None),
            Err(AuthError::Missing)
        );
        // The SHA-256 of "abc", as `sha256sum` prints it.
        let hex: String = sha256("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn configured_keys_first_then_the_snapshots() {
        let hex =
            |key: &str| -> String { sha256(key).iter().map(|b| format!("{b:02x}")).collect() };
        let mut keys = HashMap::new();
        keys.insert(
            sha256("sk-both"),
            Principal {
                tenant: "from-config".into(),
                project: None,
                key_id: config_key_id(&sha256("sk-both")),
            },
        );
        let identity = Identity::ApiKeys(keys);
        let snapshot = serde_json::json!({
            "version": 3,
            "tenants": [],
            "keys": [
                {"id": "key_1", "sha256": hex("sk-both"), "tenant": "from-snapshot"},
                {"id": "key_2", "sha256": hex("sk-run"), "tenant": "t", "project": "p"},
                {"id": "key_3", "sha256": hex("sk-old"), "tenant": "t", "expires_at_ms": 1000},
            ],
        });
        let tenancy = Tenancy::decode(snapshot.to_string().as_bytes()).unwrap();
        let with = |key: &'static str, now_ms: u64| {
            let auth = format!("Bearer {key}");
            identify(&identity, Some(&tenancy), now_ms, |name| {
                (name == "authorization").then_some(auth.as_str())
            })
        };
        let both = with("sk-both", 0).unwrap();
        assert_eq!(both.tenant, "from-config");
        assert_eq!(
            both.key.as_deref(),
            Some(config_key_id(&sha256("sk-both")).as_str())
        );
        assert!(both.key.as_deref().unwrap().starts_with("config:"));
        assert_eq!(both.key.as_deref().unwrap().len(), "config:".len() + 8);
        assert_eq!(
            with("sk-run", 0),
            Ok(Caller {
                tenant: "t".into(),
                project: Some("p".into()),
                key: Some("key_2".into()),
            })
        );
        // An expired key is refused as an unknown one is, from its expiry on.
        assert_eq!(with("sk-old", 999).unwrap().key.as_deref(), Some("key_3"));
        assert_eq!(with("sk-old", 1000), Err(AuthError::Invalid));
        assert_eq!(with("sk-none", 0), Err(AuthError::Invalid));
        // Without a snapshot only the configuration's keys work.
        let alone = identify(&identity, None, 0, |name| {
            (name == "authorization").then_some("Bearer sk-run")
        });
        assert_eq!(alone, Err(AuthError::Invalid));
    }

    #[test]
    fn tenant_headers() {
        let identity = Identity::Header(HeaderName::parse("x-tenant").unwrap());
        let ok = identify(&identity, None, 0, |n| (n == "x-tenant").then_some("acme")).unwrap();
        assert_eq!(ok.tenant, "acme");
        assert_eq!(
            identify(&identity, None, 0, |_| None),
            Err(AuthError::Missing)
        );
        assert_eq!(
            identify(&identity, None, 0, |_| Some("a b")),
            Err(AuthError::Invalid)
        );
    }
}
