//! The run-time tenancy (`quotas.tenancy`): keys from the snapshot beside the configuration's,
//! its tenants' limits in place of the configuration's, project and key scopes, allowed models,
//! and the spend ledger fed at settle.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::sync::Arc;

use serde_json::{Value, json};

use super::{CHAT, Client, Fakes, KEY, MESSAGES, chat, configured, quotas};
use crate::config::quotas::Window;
use crate::exchange::{Configured, Event};
use crate::quota::identity::{config_key_id, sha256};
use crate::tenancy::Tenancy;

const RUN_TIME_KEY: &str = "sk-sluice-run-time";

fn hex(key: &str) -> String {
    sha256(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// `acme` with 100 requests per minute in the configuration, its key `KEY`, tenancy on, and a
/// price for `m`: $1 per million input tokens, $2 per million output tokens.
fn with_tenancy() -> Arc<Configured> {
    configured(&quotas(
        r#"{"requests_per_minute":100}"#,
        r#","tenancy":{"refresh_ms":500},"prices":{"m":{"input":1.0,"output":2.0}}"#,
    ))
}

/// A snapshot with `tenants` and the run-time key of tenant `acme`, project `web`, with `key`'s
/// fields added.
fn tenancy(fakes: &Fakes, tenants: Value, key: Value) {
    let mut entry = json!({"id": "key_1", "sha256": hex(RUN_TIME_KEY), "tenant": "acme",
                           "project": "web"});
    if let (Some(entry), Some(more)) = (entry.as_object_mut(), key.as_object()) {
        entry.extend(more.clone());
    }
    let snapshot = json!({"version": 1, "tenants": tenants, "keys": [entry]});
    let decoded = Tenancy::decode(snapshot.to_string().as_bytes()).unwrap();
    *fakes.tenancy.borrow_mut() = Some(Arc::new(decoded));
}

fn send<'f>(fakes: &'f Fakes, configured: &Arc<Configured>, key: &str, body: &str) -> Client<'f> {
    let mut client = Client::new(fakes, Some(Arc::clone(configured)));
    let auth = format!("Bearer {key}");
    client.post(CHAT, &[("authorization", &auth)], body);
    client
}

fn status(client: &Client<'_>) -> u16 {
    client.reply.as_ref().map_or(200, |reply| reply.status)
}

const USAGE: &str = r#"{"model":"m","choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"prompt_tokens_details":{"cached_tokens":200}}}"#;

#[test]
fn run_time_keys_work_beside_the_configurations_until_the_snapshot_drops_them() {
    let fakes = Fakes::default();
    let config = with_tenancy();
    // No snapshot yet: only the configuration's key.
    assert_eq!(
        status(&send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""))),
        401
    );
    assert_eq!(status(&send(&fakes, &config, KEY, &chat("Hi", ""))), 200);
    tenancy(&fakes, json!([]), json!({}));
    assert_eq!(
        status(&send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""))),
        200
    );
    assert_eq!(status(&send(&fakes, &config, KEY, &chat("Hi", ""))), 200);
    // Revoked: the next snapshot leaves it out, and it is refused as unknown.
    let empty = json!({"version": 2, "tenants": [], "keys": []});
    *fakes.tenancy.borrow_mut() = Some(Arc::new(
        Tenancy::decode(empty.to_string().as_bytes()).unwrap(),
    ));
    let refused = send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""));
    assert_eq!(status(&refused), 401);
    let body = refused.reply.clone().unwrap().body;
    assert!(body.contains("invalid_api_key") && !body.contains(RUN_TIME_KEY));
    assert_eq!(status(&send(&fakes, &config, KEY, &chat("Hi", ""))), 200);
    // Expired: refused from its expiry on.
    let now = fakes.now_ms.get();
    tenancy(&fakes, json!([]), json!({"expires_at_ms": now + 1}));
    assert_eq!(
        status(&send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""))),
        200
    );
    fakes.now_ms.set(now + 1);
    assert_eq!(
        status(&send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""))),
        401
    );
}

#[test]
fn a_snapshot_without_tenancy_configured_is_ignored() {
    let fakes = Fakes::default();
    tenancy(&fakes, json!([]), json!({}));
    let config = configured(&quotas(r#"{"requests_per_minute":100}"#, ""));
    assert_eq!(
        status(&send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""))),
        401
    );
    let mut client = send(&fakes, &config, KEY, &chat("Hi", ""));
    client.respond(200, "application/json", &[USAGE]);
    client.end(Some(200));
    assert!(fakes.spend().is_empty(), "no spend ledger without tenancy");
}

#[test]
fn the_snapshots_tenant_replaces_the_configurations_and_adds_project_and_key_scopes() {
    let fakes = Fakes::default();
    let config = with_tenancy();
    tenancy(
        &fakes,
        json!([{"name": "acme", "limits": {"requests_per_minute": 2},
                "projects": [{"name": "web", "limits": {"max_concurrent": 5}}]}]),
        json!({"limits": {"budgets": [{"period": "day", "requests": 10}]}}),
    );
    assert_eq!(status(&send(&fakes, &config, KEY, &chat("Hi", ""))), 200);
    assert_eq!(
        status(&send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""))),
        200
    );
    // The configuration's 100 per minute no longer holds: the snapshot's 2 do, for both keys.
    let refused = send(&fakes, &config, KEY, &chat("Hi", ""));
    assert_eq!(status(&refused), 429);
    assert_eq!(fakes.slot("t|acme").unwrap().counters[0].cur, 2);
    let project = fakes.slot("p|acme|web").unwrap();
    assert_eq!(
        project.in_flight, 1,
        "the run-time key's request is in flight"
    );
    let key = fakes.slot("k|key_1").unwrap();
    assert_eq!(key.counters[0].used(Window::Day, fakes.now_ms.get()), 1);
    // A tenant the snapshot does not name keeps the configuration's limits (here none).
}

#[test]
fn a_model_outside_the_allowed_ones_is_forbidden_in_each_apis_format() {
    let fakes = Fakes::default();
    let config = configured(&format!(
        r#","aliases":{{"alias":"m"}}{}"#,
        quotas(r#"{"requests_per_minute":100}"#, r#","tenancy":{}"#)
    ));
    // The key allows `m` only, its tenant `m` and `n` (absent from the catalog).
    tenancy(
        &fakes,
        json!([{"name": "acme", "limits": {"requests_per_minute": 100},
                "allowed_models": ["m", "n"]}]),
        json!({"allowed_models": ["alias"]}),
    );
    // By the alias it sends (the tenant lists the model it routes to).
    assert_eq!(
        status(&send(
            &fakes,
            &config,
            RUN_TIME_KEY,
            &chat("Hi", "").replace("\"m\"", "\"alias\"")
        )),
        200
    );
    let refused = send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""));
    let reply = refused.reply.clone().unwrap();
    assert_eq!(reply.status, 403);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(body["error"]["param"], "model");
    assert!(body["error"]["message"].as_str().unwrap().contains("'m'"));
    assert_eq!(fakes.counted(Event::QuotaRejected("model_not_allowed")), 1);
    let mut anthropic = Client::new(&fakes, Some(Arc::clone(&config)));
    let messages = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"Hi"}]}"#;
    assert!(!anthropic.post(MESSAGES, &[("x-api-key", RUN_TIME_KEY)], messages));
    let reply = anthropic.reply.clone().unwrap();
    assert_eq!(reply.status, 403);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(!reply.body.contains(RUN_TIME_KEY));
    // The configuration's key has no list of its own; its tenant's allows `m`.
    assert_eq!(status(&send(&fakes, &config, KEY, &chat("Hi", ""))), 200);
    // Nothing was reserved for the refused requests.
    assert_eq!(fakes.slot("t|acme").unwrap().counters[0].cur, 2);
}

#[test]
fn settled_requests_feed_the_spend_ledger_at_the_tickets_price() {
    let fakes = Fakes::default();
    let config = with_tenancy();
    tenancy(&fakes, json!([]), json!({}));
    for _ in 0..2 {
        let mut client = send(&fakes, &config, RUN_TIME_KEY, &chat("Hi", ""));
        client.respond(200, "application/json", &[USAGE]);
        client.end(Some(200));
    }
    let mut client = send(&fakes, &config, KEY, &chat("Hi", ""));
    client.respond(200, "application/json", &[USAGE]);
    client.end(Some(200));
    // Refused upstream: a request with no tokens.
    let mut client = send(&fakes, &config, KEY, &chat("Hi", ""));
    client.respond(503, "application/json", &[r#"{"error":"overloaded"}"#]);
    client.end(Some(503));
    // Refused by the gateway before it was admitted: nothing.
    assert_eq!(
        status(&send(&fakes, &config, "sk-unknown", &chat("Hi", ""))),
        401
    );

    let mut rows = fakes.spend();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (config_row, run_time) = (&rows[0], &rows[1]);
    assert_eq!(run_time.key.as_deref(), Some("key_1"));
    assert_eq!(
        (
            run_time.tenant.as_str(),
            run_time.project.as_deref(),
            run_time.model.as_str()
        ),
        ("acme", Some("web"), "m")
    );
    assert_eq!(run_time.hour, fakes.now_ms.get() / 3_600_000);
    assert_eq!(
        (
            run_time.requests,
            run_time.input_tokens,
            run_time.output_tokens,
            run_time.cached_tokens
        ),
        (2, 2000, 1000, 400)
    );
    // 1000 input at $1/M and 500 output at $2/M: $0.002 a request (cached input at the input
    // price, none being set).
    assert_eq!(run_time.cost_nano_usd, 2 * 2_000_000);
    assert_eq!(
        config_row.key.as_deref(),
        Some(config_key_id(&sha256(KEY)).as_str())
    );
    assert_eq!(config_row.project, None);
    assert_eq!((config_row.requests, config_row.input_tokens), (2, 1000));
    assert_eq!(config_row.cost_nano_usd, 2_000_000);
    assert_eq!(fakes.counted(Event::SpendOverflow), 0);
}
