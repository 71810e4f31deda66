//! The timeouts in `envoy.yaml`, shortened for the test: a client that stalls is cut with 408,
//! an upstream that stays silent with 504, each in the API's error format; a stream that keeps
//! producing tokens is never cut, however long it runs.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::api_error;
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;
use sluice_e2e::raw_http;
use sluice_e2e::sse;

/// How long a raw exchange may wait for Envoy's answer: far longer than the shortened timeouts.
const PATIENCE: Duration = Duration::from_secs(30);

#[both_hosts]
async fn a_client_that_stalls_is_cut_with_408_in_its_apis_format(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_envoy_replacement("request_timeout: 30s", "request_timeout: 1s")
            .with_envoy_replacement(
                "request_headers_timeout: 10s",
                "request_headers_timeout: 1s",
            ),
    )
    .await;
    let addr = gateway.envoy.listener;

    // Headers and half a body, then nothing: the whole request never arrives.
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"model\": \"{LLAMA}\", "
        );
        let response = raw_http::exchange(addr, request.into_bytes(), PATIENCE).await;
        assert_eq!(response.status, 408, "{path}: {response:?}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.header("connection"), Some("close"));
        if path == "/v1/messages" {
            api_error::anthropic(&response.body, "invalid_request_error");
        } else {
            api_error::openai(
                &response.body,
                "invalid_request_error",
                Some("request_timeout"),
            );
        }
    }

    // Half the headers: Envoy has no path yet, so OpenAI's format.
    let request = b"POST /v1/messages HTTP/1.1\r\nhost: gateway\r\ncontent-type: app".to_vec();
    let response = raw_http::exchange(addr, request, PATIENCE).await;
    assert_eq!(response.status, 408, "{response:?}");
    api_error::openai(
        &response.body,
        "invalid_request_error",
        Some("request_timeout"),
    );

    // A client that sends its request whole is not affected.
    let response = gateway
        .post_json(
            "/v1/chat/completions",
            &json!({"model": LLAMA, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// A generation of `TOKENS` tokens at 100 ms each lasts several stream idle timeouts (1 s here).
const TOKENS: u32 = 25;

fn slow_gateway() -> GatewayOptions {
    GatewayOptions::default()
        .with_simulator_args(&["--decode-ms-per-step", "100"])
        .with_envoy_replacement("stream_idle_timeout: 600s", "stream_idle_timeout: 1s")
}

#[both_hosts]
async fn a_silent_upstream_gets_504_but_a_producing_stream_runs_to_its_end(host: Host) {
    let gateway = Gateway::start(host, slow_gateway()).await;
    let http = client();
    let chat = |stream: bool| {
        json!({
            "model": LLAMA, "max_tokens": TOKENS, "stream": stream,
            "messages": [{"role": "user", "content": "Tell me a long story"}]
        })
    };
    let message = |stream: bool| {
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": TOKENS, "stream": stream,
            "messages": [{"role": "user", "content": "Tell me a long story"}]
        })
    };

    // Not streamed, the answer comes whole at the end: the silence before it outlasts the idle
    // timeout, and the client gets 504 in its API's format.
    let response = gateway
        .post_json("/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(response.status(), 504);
    api_error::openai(
        &response.text().await.unwrap(),
        "server_error",
        Some("upstream_timeout"),
    );
    let response = gateway.post_json("/v1/messages", &message(false)).await;
    assert_eq!(response.status(), 504);
    api_error::anthropic(&response.text().await.unwrap(), "api_error");

    // The same generations streamed: a token every 100 ms keeps them alive to the end.
    let response = http
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = sse::parse(&response.text().await.unwrap());
    assert_eq!(
        events.last().map(|e| e.data.as_str()),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count();
    assert_eq!(content_chunks, TOKENS as usize, "{chunks:?}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "length"),
        "{chunks:?}"
    );

    let response = http
        .post(gateway.url("/v1/messages"))
        .json(&message(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = sse::parse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "content_block_delta")
            .count(),
        TOKENS as usize,
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
}
