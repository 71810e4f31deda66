//! Errors Envoy itself answers (no healthy upstream, a replica that cannot be reached, 413 past
//! the buffer limit, 431, 426) reach the client in the error format of the API it called, as
//! `envoy.yaml`'s `local_reply_config` maps them, and the filter's own errors pass through it
//! unchanged. Timeouts (408, 504) are in `timeouts.rs`.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_e2e::api_error;
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, QWEN, client};
use sluice_e2e::host::Host;
use sluice_e2e::raw_http;

const CHAT: &str = "/v1/chat/completions";
const MESSAGES: &str = "/v1/messages";

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
}

/// Status, content type and body.
async fn outcome(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[both_hosts]
async fn request_errors_envoy_answers_are_in_the_apis_format(host: Host) {
    // A 1 MiB buffer limit, under the filter's own limit (8 MiB), so that Envoy answers 413
    // while the filter buffers the body.
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_envoy_replacement(
            "request_body_buffer_limit: 9437184",
            "request_body_buffer_limit: 1048576",
        ),
    )
    .await;
    let http = client();

    // 413 from Envoy's buffer limit, in each API's format by path.
    let big = "x".repeat(2 << 20);
    for (path, model) in [(CHAT, LLAMA), (MESSAGES, "claude-sonnet-4-5")] {
        let body = json!({"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": big}]});
        let (status, content_type, text) = outcome(
            http.post(gateway.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, content_type.as_str()),
            (413, "application/json"),
            "{path}: {text}"
        );
        if path == CHAT {
            api_error::openai(&text, "invalid_request_error", Some("request_too_large"));
        } else {
            api_error::anthropic(&text, "request_too_large");
        }
    }

    // The filter's own 413 (a declared length over its limit, refused before any body is read)
    // passes through the mappers byte for byte.
    let request = format!(
        "POST {MESSAGES} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: 9000000\r\n\r\n"
    );
    let response = raw_http::exchange(
        gateway.envoy.listener,
        request.into_bytes(),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.body,
        r#"{"type":"error","error":{"type":"request_too_large","message":"The request body is larger than the gateway's limit of 8388608 bytes."}}"#
    );
    // So do its other errors (tests/tests/errors.rs checks each body exactly).
    let (status, content_type, text) = outcome(gateway.post_json(CHAT, &chat("gpt-9")).await).await;
    assert_eq!((status, content_type.as_str()), (404, "application/json"));
    assert_eq!(
        text,
        r#"{"error":{"message":"The model 'gpt-9' does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#
    );

    // 431: Envoy refuses the headers before it has a path, so every client gets OpenAI's format,
    // Anthropic's API included.
    for path in [CHAT, MESSAGES] {
        let response = http
            .post(gateway.url(path))
            .header("x-padding", "x".repeat(70 * 1024))
            .json(&chat(LLAMA))
            .send()
            .await
            .unwrap();
        let (status, content_type, text) = outcome(response).await;
        assert_eq!(
            (status, content_type.as_str()),
            (431, "application/json"),
            "{text}"
        );
        api_error::openai(
            &text,
            "invalid_request_error",
            Some("request_header_fields_too_large"),
        );
    }

    // 426: an HTTP/1.0 request, refused by the codec (no path either).
    let body = serde_json::to_string(&chat(LLAMA)).unwrap();
    let request = format!(
        "POST {MESSAGES} HTTP/1.0\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = raw_http::exchange(
        gateway.envoy.listener,
        request.into_bytes(),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(response.status, 426, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    api_error::openai(
        &response.body,
        "invalid_request_error",
        Some("upgrade_required"),
    );
}

/// Polls Envoy's admin `/clusters` until the health checks have marked `replica` unhealthy.
async fn wait_until_unhealthy(gateway: &Gateway, cluster: &str, replica: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = format!("{cluster}::{replica}::health_flags::");
    loop {
        let text = client()
            .get(format!("http://{}/clusters", gateway.envoy.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let flags = text
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_default();
        if flags.contains("failed_active_hc") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{replica} never failed its health checks: {flags}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[both_hosts]
async fn a_dead_pool_answers_503_in_the_apis_format(host: Host) {
    // No panic threshold on the Qwen pool, so that with its only replica unhealthy Envoy answers
    // "no healthy upstream" instead of trying it anyway (the shipped config keeps Envoy's
    // default: see envoy.yaml).
    let mut gateway = Gateway::start(
        host,
        GatewayOptions::default().with_envoy_replacement(
            "  - name: qwen_7b\n",
            "  - name: qwen_7b\n    common_lb_config: { healthy_panic_threshold: { value: 0 } }\n",
        ),
    )
    .await;
    let replica = gateway.pool("qwen_7b")[0].addr;
    gateway.pools[1].1[0].process.kill();

    // At once: the replica refuses connections (retried, then given up). The health checks need
    // two failures in a row, a second or more apart, before they call it unhealthy.
    let (status, content_type, text) = outcome(gateway.post_json(CHAT, &chat(QWEN)).await).await;
    assert_eq!(
        (status, content_type.as_str()),
        (503, "application/json"),
        "{text}"
    );
    api_error::openai(&text, "server_error", Some("upstream_unavailable"));
    let (status, _, text) = outcome(gateway.post_json(MESSAGES, &chat(QWEN)).await).await;
    assert_eq!(status, 503, "{text}");
    api_error::anthropic(&text, "api_error");

    // Once the health checks fail: no healthy upstream.
    wait_until_unhealthy(&gateway, "qwen_7b", replica).await;
    let (status, content_type, text) = outcome(gateway.post_json(CHAT, &chat(QWEN)).await).await;
    assert_eq!(
        (status, content_type.as_str()),
        (503, "application/json"),
        "{text}"
    );
    api_error::openai(&text, "server_error", Some("no_healthy_upstream"));
    let (status, _, text) = outcome(gateway.post_json(MESSAGES, &chat(QWEN)).await).await;
    assert_eq!(status, 503, "{text}");
    api_error::anthropic(&text, "api_error");

    // The official SDKs raise their own server-error types with the code and type readable.
    let stdout = sluice_e2e::sdk::run(&gateway, "check_envoy_errors.py", &[QWEN]).await;
    for check in [
        "openai 503 no_healthy_upstream ok",
        "anthropic 503 api_error ok",
    ] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
}
