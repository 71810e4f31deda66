//! Quotas through a real Envoy with two workers: exact admission counts under hundreds of
//! concurrent requests, streams that settle with their real usage, 401s and 429s in each API's
//! format with the rate-limit headers, and a shared-data key space that stays fixed however many
//! tenants are seen.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};

/// SHA-256 of "sk-acme" (`printf %s sk-acme | sha256sum`).
const ACME_KEY_SHA256: &str = "5f8eee912cd7c0ccb238560e8a22e7f78909e6dac18288188f7f4ea35112700d";

fn models() -> &'static str {
    r#""models": {
        "meta-llama/Llama-3.1-8B-Instruct": { "pool": "llama_8b", "context_window": 131072 },
        "Qwen/Qwen2.5-7B-Instruct": { "pool": "qwen_7b" }
      }"#
}

/// Quotas with the tenant taken from `x-tenant` and the given limits for every tenant.
fn header_tenants(limits: &str, extra: &str) -> String {
    format!(
        r#"{{ {}, "quotas": {{ "identity": {{ "source": "header", "tenant_header": "x-tenant" }},
            "default_tenant": {{ "limits": {limits} }} {extra} }} }}"#,
        models()
    )
}

fn chat(max_tokens: u64, stream: bool) -> Value {
    json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Tell me a story about a lighthouse keeper."}],
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    })
}

async fn send(gateway: &Gateway, tenant: impl AsRef<str>, body: &Value) -> reqwest::Response {
    client()
        .post(gateway.url("/v1/chat/completions"))
        .header("x-tenant", tenant.as_ref())
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `count` requests at once; returns the statuses and the 429 bodies.
async fn burst(gateway: &Gateway, tenant: &str, body: &Value, count: usize) -> (usize, Vec<Value>) {
    let responses = join_all((0..count).map(|_| send(gateway, tenant, body))).await;
    let mut ok = 0;
    let mut refused = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                assert!(response.headers().contains_key("retry-after-ms"));
                refused.push(response.json().await.unwrap());
            }
            other => panic!(
                "unexpected status {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    (ok, refused)
}

/// Sliding minutes start at whole minutes: keep a short burst inside one.
async fn away_from_a_minute_boundary() {
    sluice_e2e::minute::stay_inside_one(Duration::from_secs(10)).await;
}

fn header(response: &reqwest::Response, name: &str) -> u64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn exactly_n_requests_are_admitted_across_workers() {
    let config = header_tenants(r#"{ "requests_per_minute": 50 }"#, "");
    let gateway =
        Gateway::start(GatewayOptions::default().with_filter_configuration(&config)).await;
    away_from_a_minute_boundary().await;
    let (ok, refused) = burst(&gateway, "acme", &chat(2, false), 400).await;
    assert_eq!(ok, 50, "admitted out of 400 concurrent requests");
    assert_eq!(refused.len(), 350);
    assert_eq!(refused[0]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(refused[0]["error"]["type"], "requests");
    assert_eq!(
        gateway
            .envoy
            .stat_at_least(
                "wasmcustom.sluice_quota_rejected_total.reason.requests",
                350
            )
            .await,
        350
    );
    assert_eq!(
        gateway
            .envoy
            .stat_at_least("wasmcustom.sluice_quota_admitted_total", 50)
            .await,
        50
    );
    // Another tenant has its own limit; its responses carry the rate-limit headers.
    let response = send(&gateway, "globex", &chat(2, false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), 50);
    assert_eq!(header(&response, "x-ratelimit-remaining-requests"), 49);
    assert!(
        response
            .headers()
            .contains_key("x-ratelimit-reset-requests")
    );
}

#[tokio::test]
async fn exactly_n_tokens_and_n_concurrent_are_admitted() {
    // Long requests (2 tokens at 1.5 s a step): nothing settles while the burst is decided.
    let config = header_tenants(
        r#"{ "max_concurrent": 7, "budgets": [{ "period": "day", "tokens": 100000 }] }"#,
        "",
    );
    let gateway = Gateway::start(
        GatewayOptions::default()
            .with_filter_configuration(&config)
            .with_simulator_args(&["--decode-ms-per-step", "1500"]),
    )
    .await;
    let (ok, refused) = burst(&gateway, "concurrent", &chat(2, false), 200).await;
    assert_eq!(ok, 7, "admitted out of 200 concurrent requests");
    assert!(refused.iter().all(|b| b["error"]["type"] == "requests"));

    drop(gateway);

    // Tokens alone: a tenant without a concurrency cap.
    let config = header_tenants(
        r#"{ "budgets": [{ "period": "day", "tokens": 20000 }] }"#,
        "",
    );
    let gateway2 = Gateway::start(
        GatewayOptions::default()
            .with_filter_configuration(&config)
            .with_simulator_args(&["--decode-ms-per-step", "1500"]),
    )
    .await;
    // A long prompt; its reservation (prompt estimate + max_tokens) from the headers.
    let mut body = chat(2, false);
    body["messages"][0]["content"] = json!("The lighthouse keeper counted the waves. ".repeat(150));
    let probe = send(&gateway2, "probe", &body).await;
    let reservation = 20_000 - header(&probe, "x-ratelimit-remaining-tokens");
    let expected = 20_000 / reservation;
    let (ok, refused) = burst(&gateway2, "tokens", &body, 300).await;
    assert_eq!(
        ok as u64, expected,
        "admitted out of 300 concurrent requests reserving {reservation} tokens each (budget 20000)"
    );
    assert!(
        refused
            .iter()
            .all(|b| b["error"]["code"] == "insufficient_quota")
    );
    println!("tokens: {ok} of 300 admitted, {reservation} tokens reserved each, budget 20000");
}

/// Reads a stream to its end; returns the usage chunk's total tokens.
async fn stream_total(response: reqwest::Response) -> u64 {
    let text = response.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["total_tokens"].as_u64())
        .expect("usage chunk")
}

#[tokio::test]
async fn streams_never_overshoot_a_small_budget() {
    let config = header_tenants(r#"{ "budgets": [{ "period": "day", "tokens": 500 }] }"#, "");
    let gateway =
        Gateway::start(GatewayOptions::default().with_filter_configuration(&config)).await;
    // Ten long streams at once (200 tokens each): a gateway that checks before and charges
    // after admits them all (~2,200 tokens). Reserve-then-settle admits what fits.
    let long = chat(200, true);
    let responses = join_all((0..10).map(|_| send(&gateway, "small", &long))).await;
    let mut used = 0;
    let mut admitted = 0;
    for response in responses {
        if response.status() == 200 {
            admitted += 1;
            used += stream_total(response).await;
        } else {
            assert_eq!(response.status(), 429);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "insufficient_quota");
        }
    }
    assert!(admitted >= 1, "at least one stream fits");
    assert!(used <= 500, "streams used {used} tokens of a 500 budget");
    // Settled with the real usage: the budget shows exactly what the streams used.
    let after = send(&gateway, "small", &chat(200, true)).await;
    assert_eq!(after.status(), 429);
    assert_eq!(header(&after, "x-ratelimit-remaining-tokens"), 500 - used);
    println!("streams: {admitted} of 10 admitted, {used} of 500 tokens used");
}

#[tokio::test]
async fn keys_are_checked_and_errors_follow_the_api() {
    let config = format!(
        r#"{{ {}, "quotas": {{ "keys": [{{ "sha256": "{ACME_KEY_SHA256}", "tenant": "acme" }}],
            "tenants": {{ "acme": {{ "limits": {{ "requests_per_minute": 1000 }} }} }},
            "upstream_credentials": {{ "llama_8b": {{ "value": "upstream-secret", "prefix": "Bearer " }} }} }} }}"#,
        models()
    );
    let gateway =
        Gateway::start(GatewayOptions::default().with_filter_configuration(&config)).await;
    let missing = gateway
        .post_json("/v1/chat/completions", &chat(2, false))
        .await;
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let wrong = client()
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", "sk-wrong-secret")
        .json(&json!({"model": LLAMA, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let text = wrong.text().await.unwrap();
    assert!(!text.contains("sk-wrong-secret"), "the key is never echoed");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let key = std::env::var("SLUICE_TEST_KEY").unwrap_or_else(|_| "sk-acme".into());
    let ok = client()
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", &key)
        .json(&json!({"model": LLAMA, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    assert_eq!(header(&ok, "anthropic-ratelimit-requests-limit"), 1000);
    assert!(
        ok.headers()
            .contains_key("anthropic-ratelimit-requests-reset")
    );
    let log = gateway.envoy.process.log();
    assert!(!log.contains(&key), "the key is never logged");
    assert_eq!(
        gateway
            .envoy
            .stat_at_least(
                "wasmcustom.sluice_quota_rejected_total.reason.unauthenticated",
                2
            )
            .await,
        2
    );
}

#[tokio::test]
async fn many_tenants_leave_the_key_space_fixed() {
    let config = header_tenants(r#"{ "requests_per_minute": 1000 }"#, r#", "slots": 64"#);
    let gateway =
        Gateway::start(GatewayOptions::default().with_filter_configuration(&config)).await;
    let tenants: usize = std::env::var("SLUICE_QUOTA_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let body = chat(1, false);
    let started = std::time::Instant::now();
    let mut heap_after_first_wave = 0;
    for wave in 0..tenants / 100 {
        let responses =
            join_all((0..100).map(|i| send(&gateway, format!("tenant-{}", wave * 100 + i), &body)))
                .await;
        for r in responses {
            assert_eq!(r.status(), 200);
        }
        if wave == 9 {
            heap_after_first_wave = envoy_heap_bytes(&gateway).await;
        }
    }
    println!("{tenants} tenants in {:?}", started.elapsed());
    assert_eq!(
        gateway
            .envoy
            .stat_at_least("wasmcustom.sluice_quota_shared_slots", 64)
            .await,
        64
    );
    let admitted = gateway
        .envoy
        .stat_at_least("wasmcustom.sluice_quota_admitted_total", tenants as u64)
        .await;
    // Counted with the admissions, so handed to Envoy with them.
    let uncounted = gateway
        .envoy
        .stat_now("wasmcustom.sluice_quota_uncounted_total")
        .await;
    assert_eq!(admitted, tenants as u64);
    // 64 slots cannot count thousands of live tenants at once: the rest pass uncounted
    // (fail-open), and shared data holds 64 slots however many tenants came.
    assert!(
        uncounted > 0 && uncounted < admitted,
        "{uncounted} of {admitted}"
    );
    println!("{uncounted} of {admitted} requests found no free slot (fail-open)");
    // Shared data lives in Envoy's heap. Once the slots are all in use (after the first 1,000
    // tenants), more tenants must not grow it: a key or value per tenant would add megabytes at
    // 100,000 tenants (SLUICE_QUOTA_TENANTS=100000). 4 MiB leaves room for the allocator's and
    // the stats' own churn.
    let heap = envoy_heap_bytes(&gateway).await;
    let growth = heap.saturating_sub(heap_after_first_wave);
    println!(
        "Envoy heap after 1,000 tenants {heap_after_first_wave} B, after {tenants}: {heap} B (+{growth} B)"
    );
    assert!(growth < 4 << 20, "heap grew by {growth} bytes");
}

/// Bytes allocated on Envoy's heap (admin `/memory`), where proxy-wasm shared data is kept.
async fn envoy_heap_bytes(gateway: &Gateway) -> u64 {
    let memory: Value = client()
        .get(format!("http://{}/memory", gateway.envoy.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    memory["allocated"].as_str().unwrap().parse().unwrap()
}
