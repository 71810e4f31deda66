//! The filter lets inference traffic through untouched: JSON and SSE, OpenAI and Anthropic,
//! through a real Envoy to real simulator replicas.

use std::collections::HashSet;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA as MODEL, client};
use sluice_e2e::host::Host;
use sluice_e2e::sse;

fn chat(stream: bool, include_usage: Option<bool>) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello."}
        ],
        "max_tokens": 5,
        "stream": stream,
    });
    if let Some(include) = include_usage {
        body["stream_options"] = json!({ "include_usage": include });
    }
    body
}

#[both_hosts]
async fn chat_completion_json(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    let response = gateway
        .post_json("/v1/chat/completions", &chat(false, None))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-simulator-id"));
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(body["usage"]["completion_tokens"], 5);
}

#[both_hosts]
async fn chat_completion_stream_with_and_without_usage(host: Host) {
    let gateway = Gateway::shared_default(host).await;

    for include_usage in [Some(true), Some(false), None] {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(true, include_usage))
            .await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let events = sse::parse(&response.text().await.unwrap());

        let (done, chunks) = events.split_last().unwrap();
        assert_eq!(done.data, "[DONE]");
        let chunks: Vec<Value> = chunks
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        if include_usage == Some(true) {
            let (usage_chunk, rest) = chunks.split_last().unwrap();
            assert_eq!(usage_chunk["choices"], json!([]));
            assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
            assert!(rest.iter().all(|c| c["usage"].is_null()));
        } else {
            assert!(
                chunks.iter().all(|c| c.get("usage").is_none()),
                "{chunks:?}"
            );
        }
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(!text.is_empty());
    }
}

/// Tokens reach the client as the replica produces them: the gateway does not buffer streams.
#[both_hosts]
async fn streams_are_not_buffered(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_replicas("llama_8b", 1)
            .with_simulator_args(&["--decode-ms-per-step", "40"]),
    )
    .await;
    let response = gateway
        .post_json("/v1/chat/completions", &chat(true, None))
        .await;
    assert_eq!(response.status(), 200);
    let mut reads = 0;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        reads += 1;
        body.extend_from_slice(&piece.unwrap());
    }
    // One event per token, 40 ms apart: a buffering proxy would deliver them in one read.
    assert!(reads >= 3, "{reads} reads");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}

#[both_hosts]
async fn completions_and_anthropic_messages(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    let http = client();

    let completion: Value = http
        .post(gateway.url("/v1/completions"))
        .json(&json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(completion["object"], "text_completion");
    assert_eq!(completion["usage"]["completion_tokens"], 3);

    let message = json!({
        "model": MODEL,
        "max_tokens": 4,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
    });
    let reply: Value = http
        .post(gateway.url("/v1/messages"))
        .json(&message)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["usage"]["output_tokens"], 4);

    let mut streaming = message.clone();
    streaming["stream"] = json!(true);
    let response = http
        .post(gateway.url("/v1/messages"))
        .json(&streaming)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = sse::parse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "content_block_delta")
            .count(),
        4
    );
}

#[both_hosts]
async fn requests_are_spread_over_the_pool(host: Host) {
    // Envoy's round robin alternates; other tests' requests on the shared gateway may fall in
    // between, so allow a few more than two.
    let gateway = Gateway::shared_default(host).await;
    let mut served_by = HashSet::new();
    for _ in 0..20 {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(false, None))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(gateway.cluster_of(&response), "llama_8b");
        served_by.insert(
            response.headers()["x-simulator-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        if served_by.len() == 2 {
            break;
        }
    }
    assert_eq!(served_by.len(), 2, "{served_by:?}");
}
