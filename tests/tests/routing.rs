//! Model routing through a real Envoy: the filter reads the model from the body, sets the model
//! headers, and Envoy's routes (matched again) send each model to the pool that serves it.

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, QWEN, client};
use sluice_e2e::host::Host;
use sluice_e2e::sse;

fn chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Which pool are you?"}],
        "max_tokens": 3
    })
}

async fn post(gateway: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    gateway.post_json(path, body).await
}

#[both_hosts]
async fn each_model_goes_to_its_own_cluster(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    for _ in 0..3 {
        let llama = post(gateway, "/v1/chat/completions", &chat(LLAMA)).await;
        assert_eq!(gateway.cluster_of(&llama), "llama_8b");
        let qwen = post(gateway, "/v1/chat/completions", &chat(QWEN)).await;
        assert_eq!(gateway.cluster_of(&qwen), "qwen_7b");
        let body: Value = qwen.json().await.unwrap();
        assert_eq!(body["model"], QWEN);
    }
}

#[both_hosts]
async fn aliases_are_rewritten_before_the_upstream_sees_them(host: Host) {
    let gateway = Gateway::shared_default(host).await;

    let response = post(gateway, "/v1/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.cluster_of(&response), "qwen_7b");
    // The simulator echoes the model it was asked for: the rewritten one.
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], QWEN);

    // A prefix alias, on the Anthropic API, streamed.
    let message = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 3,
        "stream": true,
        "messages": [{"role": "user", "content": "hi"}]
    });
    let response = post(gateway, "/v1/messages", &message).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.cluster_of(&response), "llama_8b");
    let events = sse::parse(&response.text().await.unwrap());
    let start: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(start["message"]["model"], LLAMA);
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
}

#[both_hosts]
async fn lora_adapters_route_to_their_base_model_pool(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    let response = post(
        gateway,
        "/v1/completions",
        &json!({"model": "sql-lora", "prompt": "SELECT", "max_tokens": 2}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.cluster_of(&response), "llama_8b");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "sql-lora");
}

#[both_hosts]
async fn a_client_cannot_steer_routing_with_the_model_headers(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    for _ in 0..3 {
        let response = client()
            .post(gateway.url("/v1/chat/completions"))
            .header("x-sluice-model", LLAMA)
            .header("x-sluice-base-model", LLAMA)
            .json(&chat(QWEN))
            .send()
            .await
            .unwrap();
        assert_eq!(gateway.cluster_of(&response), "qwen_7b");
    }
}

#[both_hosts]
async fn the_gateway_lists_its_models(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    let openai: Value = client()
        .get(gateway.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = openai["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [QWEN, "gpt-4.1", "gpt-4o", "gpt-4o-mini", LLAMA, "sql-lora"]
    );
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["owned_by"], "qwen_7b");

    let anthropic: Value = client()
        .get(gateway.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["last_id"], "sql-lora");
    assert_eq!(anthropic["has_more"], false);
}

#[both_hosts]
async fn paths_the_filter_does_not_handle_reach_no_replica_unless_listed(host: Host) {
    // The shipped configuration: the model servers' own endpoints are not reachable.
    let shared = Gateway::shared_default(host).await;
    for path in ["/health", "/metrics", "/tokenize"] {
        let response = client().get(shared.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(!response.headers().contains_key("x-simulator-id"), "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unknown_url", "{path}");
    }
    // Listed, a path goes to the replicas; only its whole segments match.
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&format!(
            r#"{{"routing": {{"passthrough_paths": ["/health"]}}, "models": {{"{LLAMA}": {{}}}}}}"#
        )),
    )
    .await;
    let response = client().get(gateway.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-simulator-id"));
    for path in ["/healthz", "/metrics"] {
        let response = client().get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(!response.headers().contains_key("x-simulator-id"), "{path}");
    }
}
