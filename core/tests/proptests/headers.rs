//! Header views: `pipeline::RequestHeaders` over arbitrary names and values (non-UTF-8 values
//! made text as the proxy-wasm host hands them: invalid sequences become U+FFFD), the
//! headers-phase decision they feed, and caller identity from arbitrary `Authorization`,
//! `x-api-key` and tenant header values.

use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use sluice_core::config::Config;
use sluice_core::config::quotas::{Identity, Principal};
use sluice_core::pipeline::{HeadersDecision, ModelsList, RequestHeaders, decide_on_headers};
use sluice_core::quota::identity::{AuthError, identify, presented_key, sha256};

use crate::support::check;

/// A header value as the host gives it to core: bytes, made text lossily.
fn host_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            ":method", ":path", "content-type", "Content-Type", "content-length",
            "anthropic-version", "authorization", "x-api-key", "x-tenant", "X-API-KEY",
        ])
        .prop_map(str::to_owned),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| host_text(&b)),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "POST", "GET", "HEAD", "/v1/chat/completions", "/v1/messages?beta=true",
            "/v1/models", "/v1/embeddings/", "/tokenize", "/tokenize/../metrics", "/%2e%2e/x",
            "application/json", "application/json; charset=utf-8", "text/plain",
            "application/vnd.api+json", "0", "12", " 42 ", "-1", "99999999999999999999999",
            "Bearer sk-acme", "bearer  sk-acme ", "Basic abc", "Bearer ", "", "acme", "a b",
        ])
        .prop_map(str::to_owned),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| host_text(&b)),
        1 => "\\PC{0,200}",
    ]
}

fn config() -> &'static (Config, ModelsList) {
    static CONFIG: OnceLock<(Config, ModelsList)> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let config = Config::from_json(
            br#"{"models": {"m": {}}, "limits": {"max_request_body_bytes": 1000},
                 "routing": {"passthrough_paths": ["/tokenize", "/health/"]}}"#,
        )
        .unwrap();
        let models = ModelsList::new(&config.catalog, 0);
        (config, models)
    })
}

#[test]
fn request_headers_and_the_headers_decision_never_panic() {
    let strategy = (
        prop::collection::vec((name(), value()), 0..12),
        any::<bool>(),
    );
    check(
        "pipeline::RequestHeaders + decide_on_headers",
        1.0,
        strategy,
        |(pairs, end)| {
            let map = RequestHeaders::new(pairs.clone());
            for (name, _) in &pairs {
                // The first value of a name, whatever its case.
                let first = pairs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str());
                prop_assert_eq!(map.get(name), first);
                prop_assert_eq!(map.get(&name.to_ascii_uppercase()), first);
            }
            let head = map.head(end);
            let (config, models) = config();
            match decide_on_headers(config, models, &head) {
                HeadersDecision::Reply(reply) => {
                    prop_assert!((200..500).contains(&reply.status), "{}", reply.status);
                    let body: Value = serde_json::from_str(&reply.body)
                        .map_err(|e| TestCaseError::fail(format!("reply body not JSON: {e}")))?;
                    prop_assert!(body.is_object());
                    // A client-supplied path or type is echoed at most truncated.
                    prop_assert!(reply.body.chars().count() < 1200, "{}", reply.body);
                    for (name, value) in reply.headers_with(&[]) {
                        prop_assert!(!name.is_empty() && !value.contains(['\r', '\n']));
                    }
                }
                HeadersDecision::ReadBody(api) => {
                    prop_assert_eq!(head.method, "POST");
                    prop_assert!(!end);
                    let _ = api;
                }
                HeadersDecision::Passthrough => {
                    prop_assert!(
                        head.path.starts_with("/tokenize") || head.path.starts_with("/health"),
                        "{}",
                        head.path
                    );
                    let path = head.path.split(['?', '#']).next().unwrap_or_default();
                    prop_assert!(
                        !path
                            .split('/')
                            .any(|segment| segment == ".." || segment == "."),
                        "{}",
                        head.path
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn identity_from_arbitrary_credentials() {
    let key = prop_oneof![
        Just("sk-acme".to_owned()),
        "\\PC{0,40}",
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| host_text(&b)),
    ];
    let header = prop::option::of(prop_oneof![
        key.clone().prop_map(|k| format!("Bearer {k}")),
        key.clone().prop_map(|k| format!("  bEaReR\t{k}  ")),
        key.clone(),
    ]);
    let strategy = (header, prop::option::of(key.clone()), prop::option::of(key));
    check(
        "quota::identity",
        1.0,
        strategy,
        |(authorization, x_api_key, tenant)| {
            let lookup = |name: &str| match name {
                "authorization" => authorization.as_deref(),
                "x-api-key" => x_api_key.as_deref(),
                "x-tenant" => tenant.as_deref(),
                _ => None,
            };
            let presented = presented_key(authorization.as_deref(), x_api_key.as_deref());
            if let Some(key) = presented {
                prop_assert!(!key.is_empty() && key.trim() == key);
            }
            let mut keys = HashMap::new();
            keys.insert(
                sha256("sk-acme"),
                Principal {
                    tenant: "acme".into(),
                    project: None,
                    key_id: "config:00000000".into(),
                },
            );
            match identify(&Identity::ApiKeys(keys), None, 0, lookup) {
                Ok(caller) => {
                    prop_assert_eq!(presented, Some("sk-acme"));
                    prop_assert_eq!(caller.tenant, "acme");
                }
                Err(AuthError::Missing) => prop_assert_eq!(presented, None),
                Err(AuthError::Invalid) => prop_assert!(presented.is_some_and(|k| k != "sk-acme")),
            }
            let by_header =
                Identity::Header(sluice_core::config::HeaderName::parse("x-tenant").unwrap());
            if let Ok(caller) = identify(&by_header, None, 0, lookup) {
                prop_assert!(!caller.tenant.is_empty() && caller.tenant.len() <= 128);
                prop_assert!(caller.tenant.bytes().all(|b| b.is_ascii_graphic()));
            }
            Ok(())
        },
    );
}
