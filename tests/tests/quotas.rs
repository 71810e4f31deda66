//! Quotas through a real Envoy with two workers: exact admission counts under hundreds of
//! concurrent requests, streams that settle with their real usage, 401s and 429s in each API's
//! format with the rate-limit headers (each once, with values that agree), the official SDKs
//! waiting the `retry-after` they are sent, passthrough paths authenticated and counted,
//! remaining gauges only for what is limited, and a shared-data key space that stays fixed
//! however many tenants are seen.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;
use sluice_e2e::prometheus;

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

#[both_hosts]
async fn exactly_n_requests_are_admitted_across_workers(host: Host) {
    let config = header_tenants(r#"{ "requests_per_minute": 50 }"#, "");
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
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
                &host.stat("sluice_quota_rejected_total.reason.requests"),
                350
            )
            .await,
        350
    );
    assert_eq!(
        gateway
            .envoy
            .stat_at_least(&host.stat("sluice_quota_admitted_total"), 50)
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

#[both_hosts]
async fn exactly_n_tokens_and_n_concurrent_are_admitted(host: Host) {
    // Long requests (2 tokens at 1.5 s a step): nothing settles while the burst is decided.
    let config = header_tenants(
        r#"{ "max_concurrent": 7, "budgets": [{ "period": "day", "tokens": 100000 }] }"#,
        "",
    );
    let gateway = Gateway::start(
        host,
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
        host,
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

#[both_hosts]
async fn streams_never_overshoot_a_small_budget(host: Host) {
    let config = header_tenants(r#"{ "budgets": [{ "period": "day", "tokens": 500 }] }"#, "");
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
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

#[both_hosts]
async fn keys_are_checked_and_errors_follow_the_api(host: Host) {
    let config = format!(
        r#"{{ {}, "quotas": {{ "keys": [{{ "sha256": "{ACME_KEY_SHA256}", "tenant": "acme" }}],
            "tenants": {{ "acme": {{ "limits": {{ "requests_per_minute": 1000 }} }} }},
            "upstream_credentials": {{ "llama_8b": {{ "value": "upstream-secret", "prefix": "Bearer " }} }} }} }}"#,
        models()
    );
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
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
                &host.stat("sluice_quota_rejected_total.reason.unauthenticated"),
                2
            )
            .await,
        2
    );
}

#[both_hosts]
async fn many_tenants_leave_the_key_space_fixed(host: Host) {
    let config = header_tenants(r#"{ "requests_per_minute": 1000 }"#, r#", "slots": 64"#);
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
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
            .stat_at_least(&host.stat("sluice_quota_shared_slots"), 64)
            .await,
        64
    );
    let admitted = gateway
        .envoy
        .stat_at_least(&host.stat("sluice_quota_admitted_total"), tenants as u64)
        .await;
    // Counted with the admissions, so handed to Envoy with them.
    let uncounted = gateway
        .envoy
        .stat_now(&host.stat("sluice_quota_uncounted_total"))
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

/// Every copy of `name` in `response`.
fn copies(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The one value of `name`: fails when it is missing or repeated.
fn once(response: &reqwest::Response, name: &str) -> String {
    let values = copies(response, name);
    assert_eq!(values.len(), 1, "{name}: {values:?}");
    values.into_iter().next().unwrap()
}

/// Milliseconds of a Go duration as OpenAI writes resets (`0s`, `12ms`, `1.5s`, `6m0s`,
/// `1h2m3s`).
fn go_duration_ms(text: &str) -> u64 {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().unwrap();
    }
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3_600_000.0,
                    'm' => 60_000.0,
                    _ => 1000.0,
                };
                total += number.parse::<f64>().unwrap() * unit;
                number.clear();
            }
            _ => panic!("not a Go duration: {text}"),
        }
    }
    assert!(number.is_empty(), "not a Go duration: {text}");
    total.round() as u64
}

/// What a refusal says about the wait: `retry-after` is `retry-after-ms` in whole seconds,
/// rounded up, and the wait is the requests limit's reset plus how far the host's clock may lag
/// (the Wasm build reads it once per tick, at most 100 ms apart; the native module live).
fn assert_refusal_headers_agree(host: Host, response: &reqwest::Response, reset_ms: u64) {
    let retry_after_ms: u64 = once(response, "retry-after-ms").parse().unwrap();
    let retry_after: u64 = once(response, "retry-after").parse().unwrap();
    assert_eq!(retry_after, retry_after_ms.div_ceil(1000));
    assert!(reset_ms > 0, "a refused request's limit is in use");
    assert_eq!(
        retry_after_ms,
        reset_ms + host.clock_lag_ms(),
        "reset {reset_ms} ms"
    );
}

const OPENAI_RATE_LIMIT_HEADERS: [&str; 6] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];

#[both_hosts]
async fn every_rate_limit_header_appears_once_with_consistent_values(host: Host) {
    let config = header_tenants(
        r#"{ "requests_per_minute": 3, "tokens_per_minute": 100000 }"#,
        "",
    );
    // The upstream sends rate-limit headers of its own (the provider's view of the gateway's
    // credential): the gateway's values replace them.
    let upstream_headers = format!(
        r#"- match:
    prefix: "/"
    headers:
    - name: x-sluice-base-model
      string_match: {{ exact: {LLAMA} }}
  route: {{ cluster: llama_8b, timeout: 600s }}
  response_headers_to_add:
  - header: {{ key: x-ratelimit-limit-requests, value: "999" }}
  - header: {{ key: x-ratelimit-remaining-tokens, value: "5" }}
  - header: {{ key: anthropic-ratelimit-requests-remaining, value: "998" }}
"#
    );
    let gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_filter_configuration(&config)
            .with_routes_first(&upstream_headers),
    )
    .await;
    away_from_a_minute_boundary().await;
    // OpenAI JSON, OpenAI stream: three requests fit.
    for (i, body) in [chat(2, false), chat(2, true), chat(2, false)]
        .iter()
        .enumerate()
    {
        let response = send(&gateway, "acme", body).await;
        assert_eq!(response.status(), 200);
        for name in OPENAI_RATE_LIMIT_HEADERS {
            once(&response, name);
        }
        assert_eq!(once(&response, "x-ratelimit-limit-requests"), "3");
        let remaining: u64 = once(&response, "x-ratelimit-remaining-requests")
            .parse()
            .unwrap();
        assert_eq!(remaining, 2 - i as u64);
        assert_eq!(once(&response, "x-ratelimit-limit-tokens"), "100000");
        assert_ne!(once(&response, "x-ratelimit-remaining-tokens"), "5");
        let reset = go_duration_ms(&once(&response, "x-ratelimit-reset-requests"));
        assert!(reset > 0, "something is counted: it will slide out");
        assert!(copies(&response, "retry-after").is_empty());
        assert!(copies(&response, "retry-after-ms").is_empty());
        response.text().await.unwrap();
    }
    // The fourth is refused: every header once, `remaining` 0, the reset and the wait agree.
    let refused = send(&gateway, "acme", &chat(2, false)).await;
    assert_eq!(refused.status(), 429);
    for name in OPENAI_RATE_LIMIT_HEADERS {
        once(&refused, name);
    }
    assert_eq!(once(&refused, "x-ratelimit-remaining-requests"), "0");
    let reset = go_duration_ms(&once(&refused, "x-ratelimit-reset-requests"));
    assert_refusal_headers_agree(host, &refused, reset);

    // Anthropic's Messages API: its own header set, the reset as a time.
    let message =
        json!({"model": LLAMA, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]});
    let anthropic = |tenant: &'static str| {
        client()
            .post(gateway.url("/v1/messages"))
            .header("x-tenant", tenant)
            .json(&message)
            .send()
    };
    let names = [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ];
    for expected in [2, 1, 0] {
        let response = anthropic("initech").await.unwrap();
        assert_eq!(response.status(), 200);
        for name in names {
            once(&response, name);
        }
        assert_eq!(
            once(&response, "anthropic-ratelimit-requests-remaining"),
            expected.to_string()
        );
    }
    let refused = anthropic("initech").await.unwrap();
    assert_eq!(refused.status(), 429);
    for name in names {
        once(&refused, name);
    }
    let reset =
        humantime::parse_rfc3339(&once(&refused, "anthropic-ratelimit-requests-reset")).unwrap();
    let date = refused.headers()["date"].to_str().unwrap();
    let date = parse_http_date(date);
    // Both in whole seconds: the reset is `retry-after` seconds after the response, give or
    // take the rounding of each.
    let retry_after: u64 = once(&refused, "retry-after").parse().unwrap();
    let after = reset.duration_since(date).unwrap_or_default().as_secs();
    assert!(
        after <= retry_after + 1 && after + 2 >= retry_after,
        "reset {after} s after the response, retry-after {retry_after} s"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) as a time.
fn parse_http_date(text: &str) -> std::time::SystemTime {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])
    .unwrap()
        + 1;
    let rfc3339 = format!("{}-{month:02}-{:0>2}T{}Z", parts[3], parts[1], parts[4]);
    humantime::parse_rfc3339(&rfc3339).unwrap()
}

/// SHA-256 of "sk-openai-retry" and of "sk-anthropic-retry".
const OPENAI_RETRY_KEY_SHA256: &str =
    "c35cddba7ecbefec3c70ecf3b0a5eb1aec1d64bac4d8cc26823e535fe51c281f";
const ANTHROPIC_RETRY_KEY_SHA256: &str =
    "6713f9e6191b95572d31c73e06fe65246bc772a014efee974c852ca9000ba00b";

/// When each request for `path` reached the gateway and its status, in arrival order, from
/// Envoy's access log (`[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)%" %RESPONSE_CODE% ...`).
fn arrivals(log: &str, path: &str) -> Vec<(std::time::SystemTime, u16)> {
    let mut out: Vec<(std::time::SystemTime, u16)> = log
        .lines()
        .filter_map(|line| {
            let (start, rest) = line.strip_prefix('[')?.split_once("] \"")?;
            let (request, rest) = rest.split_once("\" ")?;
            let (_, request_path) = request.split_once(' ')?;
            if request_path != path {
                return None;
            }
            let status = rest.split_whitespace().next()?.parse().ok()?;
            Some((humantime::parse_rfc3339(start).ok()?, status))
        })
        .collect();
    out.sort();
    out
}

/// The official SDKs, with their default retry settings, wait at least the `retry-after` the
/// gateway sends before they retry. (With each header sent twice, `retry-after: 17, 17`, they
/// could not read it and retried after 0.5-1 s.) The arrival times are the gateway's own.
///
/// A new tenant's minute window counts its requests in full until the minute ends, then lets
/// them slide out: the first refusal waits for the rest of the current minute plus 3 s (60 s /
/// 20 requests), at most 63 s, which both SDKs honour (OpenAI's up to 120 s).
#[both_hosts]
async fn sdks_wait_the_retry_after_the_gateway_sends(host: Host) {
    const LIMIT: u64 = 20;
    let config = format!(
        r#"{{ {}, "quotas": {{ "keys": [
            {{ "sha256": "{OPENAI_RETRY_KEY_SHA256}", "tenant": "openai-sdk" }},
            {{ "sha256": "{ANTHROPIC_RETRY_KEY_SHA256}", "tenant": "anthropic-sdk" }} ],
            "default_tenant": {{ "limits": {{ "requests_per_minute": {LIMIT} }} }} }} }}"#,
        models()
    );
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
    let attempts = (LIMIT + 1).to_string();
    let stdout = sluice_e2e::sdk::run(
        &gateway,
        "rate_limit_retries.py",
        &[&attempts, "sk-openai-retry", "sk-anthropic-retry"],
    )
    .await;
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    for (sdk, path) in [
        ("openai", "/v1/chat/completions"),
        ("anthropic", "/v1/messages"),
    ] {
        let records = seen[sdk].as_array().unwrap();
        let statuses: Vec<u64> = records
            .iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect();
        // LIMIT admitted, then the last call refused at least once and finally admitted.
        assert!(
            statuses.len() > LIMIT as usize + 1
                && statuses[..LIMIT as usize].iter().all(|s| *s == 200)
                && statuses[LIMIT as usize] == 429
                && statuses.last() == Some(&200),
            "{sdk}: {statuses:?}"
        );
        // Every rate-limit header the SDK received came once.
        for record in records {
            for (name, values) in record["headers"].as_object().unwrap() {
                assert_eq!(
                    values.as_array().unwrap().len(),
                    1,
                    "{sdk}: {name}: {values}"
                );
            }
        }
        // Envoy writes its access log in batches: wait until every request is in it.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let arrived = loop {
            let arrived = arrivals(&gateway.envoy.process.log(), path);
            if arrived.len() >= records.len() || std::time::Instant::now() > deadline {
                break arrived;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let logged: Vec<u64> = arrived.iter().map(|(_, s)| u64::from(*s)).collect();
        assert_eq!(
            logged, statuses,
            "{sdk}: the gateway saw what the SDK received"
        );
        for (i, record) in records.iter().enumerate() {
            if record["status"] != 429 {
                continue;
            }
            let wait_ms: u64 = record["headers"]["retry-after-ms"][0]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let gap = arrived[i + 1].0.duration_since(arrived[i].0).unwrap();
            assert!(
                gap >= Duration::from_millis(wait_ms),
                "{sdk}: retried {gap:?} after a 429 that asked for {wait_ms} ms"
            );
            println!("{sdk}: asked to wait {wait_ms} ms, retried {gap:?} later");
        }
    }
}

/// A raw HTTP/1.1 GET of `path` as written (an HTTP client library would resolve its dot
/// segments first): the response's status line and headers.
async fn raw_get(gateway: &Gateway, path: &str, key: &str) -> String {
    use std::io::{Read, Write};
    let (addr, request) = (
        gateway.envoy.listener,
        format!(
            "GET {path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {key}\r\n\
             connection: close\r\n\r\n"
        ),
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap()
}

/// Paths the filter does not handle reach a model server only when listed, and then only for
/// an authenticated caller within its request limits, each counted.
#[both_hosts]
async fn passthrough_paths_are_authenticated_and_counted(host: Host) {
    let config = format!(
        r#"{{ {}, "routing": {{ "passthrough_paths": ["/health", "/tokenize"] }},
            "quotas": {{ "keys": [{{ "sha256": "{ACME_KEY_SHA256}", "tenant": "acme" }}],
            "tenants": {{ "acme": {{ "limits": {{ "requests_per_minute": 3,
                "tokens_per_minute": 5, "max_concurrent": 10 }} }} }} }} }}"#,
        models()
    );
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
    away_from_a_minute_boundary().await;
    let get = |path: &'static str, key: Option<&'static str>| {
        let mut request = client().get(gateway.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    // No key: 401, in the API's format, and nothing reaches a replica.
    let anonymous = get("/health", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(!anonymous.headers().contains_key("x-simulator-id"));
    // An inference request needs more tokens than the tenant has a minute.
    let inference = client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth("sk-acme")
        .json(&chat(2, false))
        .send()
        .await
        .unwrap();
    assert_eq!(inference.status(), 429);
    let body: Value = inference.json().await.unwrap();
    assert_eq!(body["error"]["type"], "tokens");
    // A passthrough request's tokens are unknown: it is held to the request limits only, and
    // each counts against them (GET and POST alike, whatever the replica answers).
    let first = get("/health", Some("sk-acme")).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().contains_key("x-simulator-id"));
    assert_eq!(once(&first, "x-ratelimit-remaining-requests"), "2");
    assert!(copies(&first, "x-ratelimit-remaining-tokens").is_empty());
    let tokenize = client()
        .post(gateway.url("/tokenize"))
        .bearer_auth("sk-acme")
        .json(&json!({"model": LLAMA, "prompt": "Hi"}))
        .send()
        .await
        .unwrap();
    assert!(tokenize.headers().contains_key("x-simulator-id"));
    assert_eq!(once(&tokenize, "x-ratelimit-remaining-requests"), "1");
    let third = get("/health?probe=1", Some("sk-acme")).await.unwrap();
    assert_eq!(third.status(), 200);
    assert_eq!(once(&third, "x-ratelimit-remaining-requests"), "0");
    // The limit is spent: passthrough and inference requests alike are refused.
    let refused = get("/health", Some("sk-acme")).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(!refused.headers().contains_key("x-simulator-id"));
    once(&refused, "retry-after");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    let mut short = chat(1, false);
    short["messages"][0]["content"] = json!("Hi");
    let inference = client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth("sk-acme")
        .json(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(inference.status(), 429);
    // Unlisted paths, the model server's own endpoints among them, get 404 before any
    // admission; so does a listed prefix walked out of with dot segments.
    for path in ["/metrics", "/tokenizer", "/v1/files"] {
        let response = get(path, Some("sk-acme")).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(!response.headers().contains_key("x-simulator-id"), "{path}");
    }
    for path in [
        "/health/../metrics",
        "/tokenize/%2e%2e/metrics",
        "//metrics",
    ] {
        let response = raw_get(&gateway, path, "sk-acme").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{path}: {response}");
        assert!(!response.contains("x-simulator-id"), "{path}: {response}");
    }
    assert_eq!(
        gateway
            .envoy
            .stat_at_least(&host.stat("sluice_quota_admitted_total"), 3)
            .await,
        3
    );
}

/// Names of the remaining-budget gauges Envoy has now, for tenant `tenant`.
/// The remaining-budget gauges Envoy has for `tenant`, as `<metric>=<value>`, read from the
/// Prometheus page: both hosts label them `tenant` there (the Wasm build's /stats names spell
/// the label `sluice_tenant`, which its stats_tags rule turns into `tenant`; the native module's
/// label is a real one).
async fn remaining_gauges(gateway: &Gateway, tenant: &str) -> Vec<String> {
    let page = prometheus::page(gateway).await;
    let label = format!("tenant=\"{tenant}\"");
    [
        "sluice_quota_remaining_requests",
        "sluice_quota_remaining_tokens",
    ]
    .into_iter()
    .filter_map(|metric| {
        prometheus::find(&page, metric, &[&label]).map(|value| format!("{metric}={value}"))
    })
    .collect()
}

#[both_hosts]
async fn remaining_gauges_report_only_what_is_limited(host: Host) {
    let config = format!(
        r#"{{ {}, "quotas": {{ "identity": {{ "source": "header", "tenant_header": "x-tenant" }},
            "tenants": {{ "tokens-only": {{ "limits": {{ "tokens_per_minute": 100000 }} }},
                "unlimited": {{}} }},
            "default_tenant": {{ "limits": {{ "requests_per_minute": 10 }} }} }} }}"#,
        models()
    );
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&config),
    )
    .await;
    away_from_a_minute_boundary().await;
    for tenant in ["requests-only", "tokens-only", "unlimited"] {
        let response = send(&gateway, tenant, &chat(2, false)).await;
        assert_eq!(response.status(), 200, "{tenant}");
    }
    // Each worker hands its gauges to Envoy on the tick that hands over its admissions.
    gateway
        .envoy
        .stat_at_least(&host.stat("sluice_quota_admitted_total"), 3)
        .await;
    assert_eq!(
        remaining_gauges(&gateway, "requests-only").await,
        ["sluice_quota_remaining_requests=9"]
    );
    let tokens = remaining_gauges(&gateway, "tokens-only").await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(
        tokens[0].starts_with("sluice_quota_remaining_tokens="),
        "{tokens:?}"
    );
    assert_eq!(
        remaining_gauges(&gateway, "unlimited").await,
        Vec::<String>::new()
    );
}
