#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{Value, json};

use super::*;
use crate::config::quotas::{Limit, Measure, TokenKind, Window};
use crate::quota::identity::sha256;

fn hex(key: &str) -> String {
    sha256(key).iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(snapshot: &Value) -> Result<Tenancy, TenancyError> {
    Tenancy::decode(snapshot.to_string().as_bytes())
}

fn snapshot() -> Value {
    json!({
        "version": 7,
        "tenants": [{
            "name": "acme",
            "limits": {"requests_per_minute": 10, "tokens_per_minute": 500,
                       "tokens_per_minute_counts": "output",
                       "budgets": [{"period": "day", "usd": 2.5, "requests": 100}]},
            "models": {"m": {"max_concurrent": 2}},
            "allowed_models": ["m", "alias"],
            "projects": [{"name": "web", "limits": {"requests_per_minute": 5},
                          "allowed_models": ["m"]}]
        }],
        "keys": [
            {"id": "key_a", "sha256": hex("sk-a"), "tenant": "acme", "project": "web",
             "limits": {"budgets": [{"period": "month", "tokens": 1000}]},
             "allowed_models": ["m", "n"]},
            {"id": "key_b", "sha256": hex("sk-b"), "tenant": "acme", "expires_at_ms": 50},
        ],
    })
}

#[test]
fn a_snapshot_becomes_runtime_limits_as_the_configuration_does() {
    let tenancy = decode(&snapshot()).unwrap();
    assert_eq!(tenancy.version(), 7);
    assert_eq!(tenancy.key_count(), 2);
    let acme = tenancy.tenant("acme").unwrap();
    assert_eq!(
        acme.limits.own.limits,
        [
            Limit {
                measure: Measure::Requests,
                window: Window::Minute,
                max: 10
            },
            Limit {
                measure: Measure::Tokens(TokenKind::Output),
                window: Window::Minute,
                max: 500
            },
            Limit {
                measure: Measure::Requests,
                window: Window::Day,
                max: 100
            },
            Limit {
                measure: Measure::Cost,
                window: Window::Day,
                max: 2_500_000_000
            },
        ]
    );
    assert_eq!(acme.limits.models["m"].max_concurrent, Some(2));
    assert_eq!(acme.project("web").unwrap().limits.limits[0].max, 5);
    let key = tenancy.key(&sha256("sk-a")).unwrap();
    assert_eq!(key.id, "key_a");
    assert_eq!(key.project.as_deref(), Some("web"));
    assert_eq!(key.limits.limits[0].window, Window::Month);
    assert_eq!(tenancy.key_by_id("key_a"), Some(key));
    assert!(tenancy.key(&sha256("sk-c")).is_none());
    let expiring = tenancy.key_by_id("key_b").unwrap();
    assert!(!expiring.expired(49) && expiring.expired(50));
    // The configuration's conversion, same answer: a tenant defined in both is the same.
    let config = crate::config::Config::from_json(
        json!({"models": {"m": {}}, "quotas": {"tenants": {"acme": {
            "limits": snapshot()["tenants"][0]["limits"].clone(),
            "models": {"m": {"max_concurrent": 2}}}}}})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(config.quotas.unwrap().tenants["acme"], acme.limits);
}

#[test]
fn allowed_models_are_the_intersection_of_key_project_and_tenant() {
    let tenancy = decode(&snapshot()).unwrap();
    let allowed = |key: Option<&str>, project: Option<&str>, requested: &str, routed: &str| {
        tenancy.model_allowed("acme", project, key, requested, routed)
    };
    // The key allows m and n, its project m, its tenant m and the alias.
    assert!(allowed(Some("key_a"), Some("web"), "m", "m"));
    assert!(!allowed(Some("key_a"), Some("web"), "n", "n"));
    // A name the client sends (an alias) or the model it routes to, either one.
    assert!(allowed(None, None, "alias", "routed-elsewhere"));
    assert!(allowed(None, None, "other-alias", "m"));
    assert!(!allowed(None, None, "x", "y"));
    // A tenant, project or key without a list allows every model.
    assert!(tenancy.model_allowed("unknown", Some("p"), Some("key_zz"), "x", "y"));
    assert!(allowed(Some("key_b"), None, "alias", "alias"));
}

#[test]
fn a_usd_budget_of_zero_is_a_budget() {
    let mut snapshot = snapshot();
    snapshot["keys"][0]["limits"] = json!({"budgets": [{"period": "hour", "usd": 0.0}]});
    let tenancy = decode(&snapshot).unwrap();
    let key = tenancy.key_by_id("key_a").unwrap();
    assert_eq!(
        key.limits.limits,
        [Limit {
            measure: Measure::Cost,
            window: Window::Hour,
            max: 0
        }]
    );
}

#[test]
fn a_snapshot_past_a_bound_or_invalid_is_refused_whole() {
    let refused = |change: &dyn Fn(&mut Value), field: &str| {
        let mut snapshot = snapshot();
        change(&mut snapshot);
        match decode(&snapshot) {
            Err(TenancyError::Invalid(error)) => assert!(
                error.field.starts_with(field),
                "{field}: refused for {error}"
            ),
            other => panic!("{field}: {other:?}"),
        }
    };
    refused(
        &|s| s["keys"][0]["sha256"] = json!("abc"),
        "keys.key_a.sha256",
    );
    refused(
        &|s| s["keys"][1]["sha256"] = json!(hex("sk-a")),
        "keys.key_b.sha256",
    );
    refused(&|s| s["keys"][1]["id"] = json!("key_a"), "keys.key_a");
    refused(
        &|s| s["keys"][0]["tenant"] = json!("a|b"),
        "keys.key_a.tenant",
    );
    refused(
        &|s| s["keys"][0]["limits"]["requests_per_minute"] = json!(0),
        "keys.key_a.limits.requests_per_minute",
    );
    refused(
        &|s| s["tenants"][0]["limits"]["budgets"][0]["usd"] = json!(-1.0),
        "tenants.acme.limits.budgets[0].usd",
    );
    refused(
        &|s| {
            let again = s["tenants"][0].clone();
            s["tenants"].as_array_mut().unwrap().push(again);
        },
        "tenants.acme",
    );
    refused(
        &|s| s["tenants"][0]["name"] = json!("x".repeat(MAX_NAME_BYTES + 1)),
        "tenants.",
    );
    refused(
        &|s| {
            let models: Vec<String> = (0..=MAX_MODELS).map(|i| format!("m{i}")).collect();
            s["tenants"][0]["projects"][0]["allowed_models"] = json!(models);
        },
        "tenants.acme.projects.web.allowed_models",
    );
    refused(
        &|s| {
            let projects: Vec<Value> = (0..=MAX_PROJECTS_PER_TENANT)
                .map(|i| json!({"name": format!("p{i}")}))
                .collect();
            s["tenants"][0]["projects"] = json!(projects);
        },
        "tenants.acme.projects",
    );
    refused(
        &|s| {
            let tenants: Vec<Value> = (0..=MAX_TENANTS)
                .map(|i| json!({"name": format!("t{i}")}))
                .collect();
            s["tenants"] = json!(tenants);
        },
        "tenants",
    );
    refused(
        &|s| {
            let key = s["keys"][1].clone();
            s["keys"] = json!(vec![key; MAX_KEYS + 1]);
        },
        "keys",
    );
    // Not a snapshot at all, or too large to read.
    assert!(matches!(
        Tenancy::decode(b"{\"version\":1}"),
        Err(TenancyError::Unreadable(_))
    ));
    assert!(matches!(
        Tenancy::decode(&vec![b' '; MAX_ENCODED_BYTES + 1]),
        Err(TenancyError::TooLarge(_))
    ));
}
