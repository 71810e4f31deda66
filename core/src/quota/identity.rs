//! Who is calling: a virtual API key (`Authorization: Bearer <key>` as OpenAI clients send it,
//! `x-api-key` as Anthropic clients do) looked up by its SHA-256, or the tenant named by a header
//! an earlier Envoy filter set. Keys are hashed at once and never stored, logged or echoed.

use sha2::{Digest, Sha256};

use crate::config::quotas::{Identity, Principal};

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

/// Identifies the caller from the request headers (`header` looks one up by name).
pub fn identify<'h>(
    identity: &Identity,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<Caller, AuthError> {
    match identity {
        Identity::ApiKeys(keys) => {
            let key = presented_key(header("authorization"), header("x-api-key"))
                .ok_or(AuthError::Missing)?;
            let Principal { tenant, project } = keys.get(&sha256(key)).ok_or(AuthError::Invalid)?;
            Ok(Caller {
                tenant: tenant.clone(),
                project: project.clone(),
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
            },
        );
        let identity = Identity::ApiKeys(keys);
        let headers =
            |auth: &'static str| move |name: &str| (name == "authorization").then_some(auth);
        assert_eq!(
            identify(&identity, headers("Bearer sk-acme"))
                .unwrap()
                .tenant,
            "acme"
        );
        assert_eq!(
            identify(&identity, headers("Bearer sk-other")),
            Err(AuthError::Invalid)
        );
        assert_eq!(identify(&identity, |_| None), Err(AuthError::Missing));
        // The SHA-256 of "abc", as `sha256sum` prints it.
        let hex: String = sha256("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tenant_headers() {
        let identity = Identity::Header(HeaderName::parse("x-tenant").unwrap());
        let ok = identify(&identity, |n| (n == "x-tenant").then_some("acme")).unwrap();
        assert_eq!(ok.tenant, "acme");
        assert_eq!(identify(&identity, |_| None), Err(AuthError::Missing));
        assert_eq!(
            identify(&identity, |_| Some("a b")),
            Err(AuthError::Invalid)
        );
    }
}
