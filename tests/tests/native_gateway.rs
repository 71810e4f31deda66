//! Sluice's gateway with every feature at once in a real Envoy 1.40 with the shipped config of
//! each host (`envoy.yaml`: the native module; `envoy.wasm.yaml`: the `.wasm`), against simulator
//! replicas and the picker: a chat completion with its usage, a streamed one, the replica picked
//! from the picker's snapshot, a 429 from a quota, a redaction, the access log's filter state and
//! the metrics under the same names and labels on both hosts.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;

/// The shipped models and picking, plus a quota on tenant `trial` and the default guardrails.
fn configuration() -> String {
    json!({
        "routing": { "unhandled_paths": "reject" },
        "models": {
            "meta-llama/Llama-3.1-8B-Instruct": { "pool": "llama_8b", "context_window": 131072 },
            "Qwen/Qwen2.5-7B-Instruct": { "pool": "qwen_7b", "context_window": 32768 }
        },
        "aliases": { "gpt-4o": "meta-llama/Llama-3.1-8B-Instruct" },
        "picking": { "picker_cluster": "sluice_picker", "refresh_ms": 50, "fallbacks": 1 },
        "quotas": {
            "identity": { "source": "header", "tenant_header": "x-tenant" },
            "tenants": { "trial": { "limits": { "requests_per_minute": 2 } } },
            "default_tenant": { "limits": { "requests_per_minute": 10000 } }
        },
        "guardrails": {}
    })
    .to_string()
}

async fn start(host: Host) -> Gateway {
    let options = GatewayOptions::default()
        .with_picker()
        .with_filter_configuration(&configuration());
    Gateway::start(host, options).await
}

async fn chat(gateway: &Gateway, tenant: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gateway.url("/v1/chat/completions"))
        .header("x-tenant", tenant)
        .json(body)
        .send()
        .await
        .expect("POST through Envoy")
}

/// Polls the admin `/stats/prometheus` until a line of the filter's `metric` holds every one of
/// `labels`; returns it.
async fn wait_for_prometheus(gateway: &Gateway, metric: &str, labels: &[&str]) -> String {
    let series = format!("{}{{", gateway.host().prometheus(metric));
    let parts: Vec<&str> = std::iter::once(series.as_str())
        .chain(labels.iter().copied())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = client()
            .get(format!("http://{}/stats/prometheus", gateway.envoy.admin))
            .send()
            .await
            .expect("GET /stats/prometheus")
            .text()
            .await
            .expect("stats text");
        if let Some(line) = text
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?} in /stats/prometheus:\n{}",
            text.lines()
                .filter(|l| l.contains("sluice_"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls Envoy's log until a line contains every one of `parts`; returns that line.
async fn wait_for_log_line(gateway: &Gateway, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = gateway.envoy.process.log();
        if let Some(line) = log
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[both_hosts(flavor = "multi_thread")]
async fn the_gateway_routes_picks_limits_and_redacts(host: Host) {
    let gateway = start(host).await;

    // The picker's snapshot reaches the module: requests go to the replica it picked.
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway
        .envoy
        .stat_now(&host.stat("sluice_picks_total"))
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "no pick:\n{}",
            gateway.envoy.process.log()
        );
        let body = json!({"model": LLAMA, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2});
        let response = chat(&gateway, "acme", &body).await;
        assert_eq!(response.status(), 200, "warming up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A chat completion through an alias, with its usage; the access log reads the host's
    // filter state.
    let body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Tell me about lighthouses."}],
        "max_tokens": 8
    });
    let response = chat(&gateway, "acme", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 8, "{answer}");
    let line = wait_for_log_line(
        &gateway,
        &["model=meta-llama/Llama-3.1-8B-Instruct", "\"output\":8"],
    )
    .await;
    assert!(line.contains("\"source\":\"reported\""), "{line}");
    assert!(line.contains("\"tenant\":\"acme\""), "{line}");
    assert!(line.contains("endpoint=127.0.0.1:"), "{line}");

    // Streamed, with the usage the client asked for at the end.
    let body = json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": 6,
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let response = chat(&gateway, "acme", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let usage: Value = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|event| event["usage"].is_object())
        .unwrap_or_else(|| panic!("no usage event in {text}"));
    assert_eq!(usage["usage"]["completion_tokens"], 6, "{usage}");

    // A quota: the trial tenant's third request within the minute gets 429.
    let small =
        json!({"model": LLAMA, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1});
    for _ in 0..2 {
        assert_eq!(chat(&gateway, "trial", &small).await.status(), 200);
    }
    let refused = chat(&gateway, "trial", &small).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");

    // A redaction: the simulated model echoes the prompt it received.
    let body = json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "[[echo]]Card 4111 1111 1111 1111, mail jane@example.com"}],
        "max_tokens": 64
    });
    let response = chat(&gateway, "acme", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("4111 1111"), "{text}");
    assert!(!text.contains("jane@example.com"), "{text}");
    wait_for_log_line(
        &gateway,
        &["\"policy\":\"default\"", "\"credit_card\":{\"redact\":1}"],
    )
    .await;

    // The metrics: the same names and labels on both hosts, under each host's prefix.
    let line = wait_for_prometheus(
        &gateway,
        "sluice_quota_rejected_total",
        &["reason=\"requests\""],
    )
    .await;
    assert!(line.ends_with(" 1"), "{line}");
    wait_for_prometheus(
        &gateway,
        "sluice_requests_total",
        &["sluice_api=\"chat\"", "sluice_http_status_class=\"4xx\""],
    )
    .await;
    wait_for_prometheus(
        &gateway,
        "sluice_tokens_total",
        &[
            "gen_ai_token_type=\"output\"",
            "gen_ai_request_model=\"meta-llama/Llama-3.1-8B-Instruct\"",
        ],
    )
    .await;
    wait_for_prometheus(
        &gateway,
        "sluice_guardrail_hits_total",
        &["guardrail_direction=\"request\""],
    )
    .await;
}
