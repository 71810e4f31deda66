//! Provider mode over HTTP: key checking, models and routes, rate limits and their headers, usage
//! with cached tokens, and scripted answers in each provider's shapes.

mod common;

use std::net::SocketAddr;

use common::{ADAPTER, MODEL, call_with, openai_chunks, post_with, sse_events, start_with};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const OPENAI_KEY: &str = "sk-test-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789";
const OTHER_MODEL: &str = "test/other-model";

const OPENAI_AUTH: (&str, &str) = ("authorization", "Bearer sk-test-openai-0123456789");
const ANTHROPIC_AUTH: [(&str, &str); 2] = [
    ("x-api-key", ANTHROPIC_KEY),
    ("anthropic-version", "2023-06-01"),
];

async fn openai(flags: &[&str]) -> SocketAddr {
    let base = ["--provider", "openai", "--api-key", OPENAI_KEY];
    let base = base
        .iter()
        .chain(["--model", MODEL, "--model", OTHER_MODEL].iter());
    start_with(&base.chain(flags).copied().collect::<Vec<_>>()).await
}

async fn anthropic(flags: &[&str]) -> SocketAddr {
    let base = ["--provider", "anthropic", "--api-key", ANTHROPIC_KEY];
    let base = base
        .iter()
        .chain(["--model", MODEL, "--model", OTHER_MODEL].iter());
    start_with(&base.chain(flags).copied().collect::<Vec<_>>()).await
}

fn chat(model: &str, text: &str, extra: Value) -> Value {
    let mut request = json!({
        "model": model,
        "messages": [{ "role": "user", "content": text }],
        "max_tokens": 3,
    });
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    request
}

fn message(model: &str, text: &str, extra: Value) -> Value {
    let mut request = json!({
        "model": model,
        "max_tokens": 3,
        "messages": [{ "role": "user", "content": text }],
    });
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    request
}

async fn chat_call(address: SocketAddr, body: Value) -> common::Reply {
    post_with(address, "/v1/chat/completions", body, &[OPENAI_AUTH]).await
}

async fn messages_call(address: SocketAddr, body: Value) -> common::Reply {
    post_with(address, "/v1/messages", body, &ANTHROPIC_AUTH).await
}

#[tokio::test]
async fn openai_checks_the_bearer_key_and_never_echoes_it() {
    let address = openai(&[]).await;
    let request = chat(MODEL, "Hello there!", json!({}));
    let wrong = "sk-wrong-secret-key";
    let bearer = format!("Bearer {wrong}");
    for headers in [
        vec![],
        vec![("authorization", bearer.as_str())],
        vec![("x-api-key", OPENAI_KEY)],
    ] {
        let reply = post_with(address, "/v1/chat/completions", request.clone(), &headers).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], "invalid_api_key");
        assert!(!reply.body.contains(wrong), "{}", reply.body);
        assert!(!reply.body.contains(OPENAI_KEY), "{}", reply.body);
    }
    let ok = chat_call(address, request).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn anthropic_checks_the_key_then_the_version_header() {
    let address = anthropic(&[]).await;
    let request = message(MODEL, "Hi", json!({}));
    let missing = post_with(address, "/v1/messages", request.clone(), &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json()["type"], "error");
    assert_eq!(missing.json()["error"]["type"], "authentication_error");

    let wrong = "sk-ant-wrong-secret";
    let reply = post_with(
        address,
        "/v1/messages",
        request.clone(),
        &[("x-api-key", wrong), ("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.body.contains(wrong), "{}", reply.body);

    let bearer = format!("Bearer {ANTHROPIC_KEY}");
    let reply = post_with(
        address,
        "/v1/messages",
        request.clone(),
        &[
            ("authorization", &bearer),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "the official SDK's way");

    let unversioned = post_with(
        address,
        "/v1/messages",
        request.clone(),
        &[("x-api-key", ANTHROPIC_KEY)],
    )
    .await;
    assert_eq!(unversioned.status, StatusCode::BAD_REQUEST);
    assert_eq!(unversioned.json()["error"]["type"], "invalid_request_error");

    let ok = messages_call(address, request).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn without_keys_any_key_passes() {
    let address = start_with(&["--provider", "openai"]).await;
    let reply = post_with(
        address,
        "/v1/chat/completions",
        chat(MODEL, "Hi", json!({})),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn openai_serves_its_models_and_only_its_routes() {
    let address = openai(&[]).await;
    let other = chat_call(address, chat(OTHER_MODEL, "Hi", json!({}))).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.json()["model"], OTHER_MODEL, "the requested name");

    let unknown = chat_call(address, chat("gpt-nope", "Hi", json!({}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let error = &unknown.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], Value::Null);

    for path in ["/v1/messages", "/v1/completions", "/v1/responses"] {
        let reply = post_with(address, path, json!({}), &[OPENAI_AUTH]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "invalid_request_error", "{path}");
        assert!(error["message"].as_str().unwrap().contains(path));
    }

    let models = call_with(address, Method::GET, "/v1/models", "", &[OPENAI_AUTH]).await;
    let data = models.json()["data"].clone();
    let ids: Vec<&str> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [MODEL, OTHER_MODEL, ADAPTER]);
    assert_eq!(data[0]["object"], "model");
    assert!(data[0].get("max_model_len").is_none(), "no vLLM fields");
    let unauthorized = call_with(address, Method::GET, "/v1/models", "", &[]).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn anthropic_serves_its_models_and_only_its_route() {
    let address = anthropic(&[]).await;
    let other = messages_call(address, message(OTHER_MODEL, "Hi", json!({}))).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.json()["model"], OTHER_MODEL);

    let unknown = messages_call(address, message("claude-nope", "Hi", json!({}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");

    for path in ["/v1/chat/completions", "/v1/models", "/v1/responses"] {
        let method = if path == "/v1/models" {
            Method::GET
        } else {
            Method::POST
        };
        let reply = call_with(address, method, path, "{}", &ANTHROPIC_AUTH).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.json()["type"], "error");
        assert_eq!(reply.json()["error"]["type"], "not_found_error", "{path}");
    }
    let bad = messages_call(address, json!({ "model": MODEL, "messages": [] })).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn openai_rate_limit_headers_count_requests_and_tokens_then_429() {
    let address = openai(&["--rpm", "2", "--tpm", "100"]).await;
    // "user" + "Hello there!" = 4 prompt tokens, 3 output tokens.
    let first = chat_call(address, chat(MODEL, "Hello there!", json!({}))).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-limit-requests"), "2");
    assert_eq!(first.header("x-ratelimit-remaining-requests"), "1");
    assert_eq!(first.header("x-ratelimit-limit-tokens"), "100");
    assert_eq!(first.header("x-ratelimit-remaining-tokens"), "93");
    for name in ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"] {
        let reset = first.header(name);
        assert!(reset.ends_with('s') && reset.len() > 1, "{name}: {reset:?}");
    }

    // 4 + 95 tokens is more than the 93 left.
    let too_many_tokens = chat_call(
        address,
        chat(MODEL, "Hello there!", json!({ "max_tokens": 95 })),
    )
    .await;
    assert_eq!(too_many_tokens.status, StatusCode::TOO_MANY_REQUESTS);
    let error = &too_many_tokens.json()["error"];
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("tokens"), &json!("rate_limit_exceeded"))
    );
    assert!(
        too_many_tokens
            .header("retry-after")
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        too_many_tokens
            .header("retry-after-ms")
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        too_many_tokens.header("x-ratelimit-remaining-requests"),
        "1"
    );

    let second = chat_call(address, chat(MODEL, "Hello there!", json!({}))).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("x-ratelimit-remaining-requests"), "0");
    let third = chat_call(address, chat(MODEL, "Hello there!", json!({}))).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.json()["error"]["type"], "requests");
    // One request comes back every 30 s at 2 per minute.
    let wait: u64 = third.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let wait_ms: u64 = third.header("retry-after-ms").parse().unwrap();
    assert!((1..=30_000).contains(&wait_ms), "{wait_ms}");
}

#[tokio::test]
async fn anthropic_rate_limit_headers_and_429() {
    let address = anthropic(&["--rpm", "1", "--tpm", "1000"]).await;
    let first = messages_call(address, message(MODEL, "Hi", json!({}))).await;
    assert_eq!(first.status, StatusCode::OK);
    for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
        let limit = first.header(&format!("anthropic-ratelimit-{kind}-limit"));
        assert_eq!(limit, if kind == "requests" { "1" } else { "1000" });
        let reset = first.header(&format!("anthropic-ratelimit-{kind}-reset"));
        // RFC 3339, e.g. 2025-01-01T00:00:00Z
        assert!(
            reset.len() == 20 && reset.as_bytes()[10] == b'T' && reset.ends_with('Z'),
            "{kind}: {reset:?}"
        );
    }
    assert_eq!(first.header("anthropic-ratelimit-requests-remaining"), "0");
    // "user" "Hi" = 2 input tokens, 3 output tokens.
    assert_eq!(first.header("anthropic-ratelimit-tokens-remaining"), "995");

    let limited = messages_call(address, message(MODEL, "Hi", json!({}))).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["type"], "error");
    assert_eq!(limited.json()["error"]["type"], "rate_limit_error");
    let wait: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(limited.header("retry-after-ms"), "", "OpenAI's header only");
    assert_eq!(
        limited.header("anthropic-ratelimit-requests-remaining"),
        "0"
    );
}

/// 300 bytes of text: with "user", 304 bytes = 76 prompt tokens, of which 64 fill four whole
/// 16-token blocks that a repeat finds in the prefix cache.
fn long_text(seed: char) -> String {
    std::iter::repeat_n(seed, 300).collect()
}

#[tokio::test]
async fn openai_usage_reports_a_repeated_prefix_as_cached() {
    let address = openai(&[]).await;
    let text = long_text('a');
    let first = chat_call(address, chat(MODEL, &text, json!({})))
        .await
        .json();
    assert_eq!(
        first["usage"],
        json!({
            "prompt_tokens": 76,
            "completion_tokens": 3,
            "total_tokens": 79,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    );
    let again = chat_call(address, chat(MODEL, &text, json!({})))
        .await
        .json();
    assert_eq!(again["usage"]["prompt_tokens"], 76);
    assert_eq!(again["usage"]["prompt_tokens_details"]["cached_tokens"], 64);

    let streamed = chat_call(
        address,
        chat(
            MODEL,
            &text,
            json!({ "stream": true, "stream_options": { "include_usage": true } }),
        ),
    )
    .await;
    let chunks = openai_chunks(&streamed);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 64);
    assert_eq!(usage["completion_tokens"], 3);
}

#[tokio::test]
async fn anthropic_usage_splits_input_into_cache_reads_writes_and_the_rest() {
    let address = anthropic(&[]).await;
    let plain = long_text('b');
    let first = messages_call(address, message(MODEL, &plain, json!({})))
        .await
        .json();
    assert_eq!(
        first["usage"],
        json!({
            "input_tokens": 76,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        })
    );
    let again = messages_call(address, message(MODEL, &plain, json!({})))
        .await
        .json();
    assert_eq!(again["usage"]["cache_read_input_tokens"], 64);
    assert_eq!(again["usage"]["input_tokens"], 12);

    // Asking for caching (cache_control) reports the whole blocks it computes as cache writes.
    let marked = |text: &str| {
        json!({
            "model": MODEL,
            "max_tokens": 3,
            "messages": [{ "role": "user", "content": [
                { "type": "text", "text": text, "cache_control": { "type": "ephemeral" } },
            ] }],
        })
    };
    let text = long_text('c');
    let write = messages_call(address, marked(&text)).await.json();
    assert_eq!(write["usage"]["cache_creation_input_tokens"], 64);
    assert_eq!(write["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(write["usage"]["input_tokens"], 12);
    let mut stream_request = marked(&text);
    stream_request["stream"] = json!(true);
    let streamed = messages_call(address, stream_request).await;
    let events = sse_events(&streamed.body);
    let start: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(
        start["message"]["usage"],
        json!({
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 64,
            "output_tokens": 0,
        })
    );
    let (_, last_delta) = events
        .iter()
        .rev()
        .find(|(name, _)| name == "message_delta")
        .unwrap();
    let last_delta: Value = serde_json::from_str(last_delta).unwrap();
    assert_eq!(last_delta["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn scripts_and_tool_calls_keep_working_in_openai_shape() {
    let address = openai(&[]).await;
    let tools = json!([{ "type": "function", "function": { "name": "lookup", "parameters": {} } }]);
    let script = "[[reasoning]]Think.[[echo]]Done.[[tool]]{\"q\":1}";
    let body = chat_call(address, chat(MODEL, script, json!({ "tools": tools })))
        .await
        .json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Done.");
    assert_eq!(choice["message"]["reasoning_content"], "Think.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(
        call["function"],
        json!({ "name": "lookup", "arguments": "{\"q\":1}" })
    );
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2
    );

    let streamed = chat_call(
        address,
        chat(MODEL, script, json!({ "tools": tools, "stream": true })),
    )
    .await;
    let chunks = openai_chunks(&streamed);
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"q\":1}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn scripts_and_tool_calls_keep_working_in_anthropic_shape() {
    let address = anthropic(&[]).await;
    let tools = json!([{ "name": "lookup", "input_schema": { "type": "object" } }]);
    let script = "[[echo]]Done.[[tool]]{\"q\":1}";
    let body = messages_call(address, message(MODEL, script, json!({ "tools": tools })))
        .await
        .json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(
        body["content"][0],
        json!({ "type": "text", "text": "Done." })
    );
    assert_eq!(body["content"][1]["type"], "tool_use");
    assert_eq!(body["content"][1]["name"], "lookup");
    assert_eq!(body["content"][1]["input"], json!({ "q": 1 }));

    let streamed = messages_call(
        address,
        message(MODEL, script, json!({ "tools": tools, "stream": true })),
    )
    .await;
    let data: Vec<Value> = sse_events(&streamed.body)
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    let partial: String = data
        .iter()
        .filter(|d| d["delta"]["type"] == "input_json_delta")
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(partial, "{\"q\":1}");
    let stop = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
}
