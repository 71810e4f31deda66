//! The HTTP API end to end: a server on a loopback port in this process, a plain HTTP client.

mod common;

use std::net::SocketAddr;

use common::{ADAPTER, MODEL, call, openai_chunks, post, send, sse_events, start, start_with};
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

fn chat_request(stream: bool, extra: Value) -> Value {
    let mut request = json!({
        "model": MODEL,
        // "user" + "Hello there!" = 16 bytes = 4 prompt tokens
        "messages": [{ "role": "user", "content": "Hello there!" }],
        "max_tokens": 3,
        "stream": stream,
    });
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    request
}

#[tokio::test]
async fn chat_completion_json() {
    let address = start().await;
    let reply = post(
        address,
        "/v1/chat/completions",
        chat_request(false, json!({})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(reply.simulator_id, address.to_string());

    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], MODEL);
    assert_eq!(
        body["choices"],
        json!([{
            "index": 0,
            "message": { "role": "assistant", "content": " the quick brown" },
            "logprobs": null,
            "finish_reason": "length",
        }])
    );
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 })
    );
}

#[tokio::test]
async fn chat_without_a_limit_stops_at_the_default_length_and_counts_content_parts() {
    let address = start().await;
    let request = json!({
        "model": ADAPTER,
        "max_completion_tokens": null,
        "messages": [
            { "role": "system", "content": [{ "type": "text", "text": "Be brief." }] },
            { "role": "user", "content": [
                { "type": "text", "text": "Look:" },
                { "type": "image_url", "image_url": { "url": "data:," } },
            ] },
        ],
    });
    let body = post(address, "/v1/chat/completions", request).await.json();
    assert_eq!(body["model"], ADAPTER, "the requested name is echoed");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "system" "Be brief." "user" "Look:" = 24 bytes = 6 tokens; --fast generates 8.
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 6, "completion_tokens": 8, "total_tokens": 14 })
    );
}

#[tokio::test]
async fn chat_stream_without_usage() {
    let address = start().await;
    let reply = post(
        address,
        "/v1/chat/completions",
        chat_request(true, json!({})),
    )
    .await;
    assert_eq!(reply.simulator_id, address.to_string());
    let chunks = openai_chunks(&reply);
    assert_eq!(chunks.len(), 4, "role chunk and one chunk per token");

    let id = chunks[0]["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], MODEL);
        assert!(chunk.get("usage").is_none());
    }
    let choices: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]).collect();
    assert_eq!(
        choices[0]["delta"],
        json!({ "role": "assistant", "content": "" })
    );
    let deltas: Vec<&str> = choices[1..]
        .iter()
        .map(|c| c["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, [" the", " quick", " brown"]);
    let reasons: Vec<&Value> = choices.iter().map(|c| &c["finish_reason"]).collect();
    assert_eq!(
        reasons,
        [&Value::Null, &Value::Null, &Value::Null, &json!("length")]
    );
}

#[tokio::test]
async fn chat_stream_with_usage() {
    let address = start().await;
    let request = chat_request(true, json!({ "stream_options": { "include_usage": true } }));
    let chunks = openai_chunks(&post(address, "/v1/chat/completions", request).await);
    assert_eq!(chunks.len(), 5);
    let (usage_chunk, token_chunks) = chunks.split_last().unwrap();
    for chunk in token_chunks {
        assert_eq!(chunk["usage"], Value::Null);
        assert!(chunk.get("usage").is_some());
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(usage_chunk["object"], "chat.completion.chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({ "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 })
    );
}

#[tokio::test]
async fn completions_json_and_stream() {
    let address = start().await;
    let request = json!({ "model": MODEL, "prompt": [1, 2, 3, 4, 5], "max_tokens": 2 });
    let body = post(address, "/v1/completions", request).await.json();
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], " the quick");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 5);

    let request = json!({
        "model": MODEL,
        "prompt": "Once upon a time",
        "max_tokens": 2,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let chunks = openai_chunks(&post(address, "/v1/completions", request).await);
    let texts: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["text"]).collect();
    assert_eq!(texts, [&json!(" the"), &json!(" quick"), &Value::Null]);
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[2]["usage"]["total_tokens"], 6);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
}

#[tokio::test]
async fn anthropic_messages_json() {
    let address = start().await;
    let request = json!({
        "model": MODEL,
        "max_tokens": 2,
        "system": [{ "type": "text", "text": "Be nice" }],
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Hi" }] }],
    });
    let reply = post(address, "/v1/messages", request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.simulator_id, address.to_string());
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], MODEL);
    assert_eq!(
        body["content"],
        json!([{ "type": "text", "text": " the quick" }])
    );
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["stop_sequence"], Value::Null);
    // "Be nice" "user" "Hi" = 13 bytes = 4 tokens.
    assert_eq!(
        body["usage"],
        json!({ "input_tokens": 4, "output_tokens": 2 })
    );
}

#[tokio::test]
async fn anthropic_messages_stream() {
    let address = start().await;
    let request = json!({
        "model": MODEL,
        "max_tokens": 2,
        "system": "Be nice",
        "messages": [{ "role": "user", "content": "Hi" }],
        "stream": true,
    });
    let reply = post(address, "/v1/messages", request).await;
    assert_eq!(reply.content_type, "text/event-stream");
    let events = sse_events(&reply.body);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let data: Vec<Value> = events
        .iter()
        .map(|(name, data)| {
            let value: Value = serde_json::from_str(data).unwrap();
            assert_eq!(
                value["type"],
                name.as_str(),
                "data type matches the event name"
            );
            value
        })
        .collect();
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 4);
    assert_eq!(data[0]["message"]["model"], MODEL);
    assert_eq!(
        data[3]["delta"],
        json!({ "type": "text_delta", "text": " the" })
    );
    assert_eq!(data[4]["delta"]["text"], " quick");
    assert_eq!(
        data[6]["delta"],
        json!({ "stop_reason": "max_tokens", "stop_sequence": null })
    );
    assert_eq!(data[6]["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn models_health_and_unknown_routes() {
    let address = start().await;
    let reply = call(address, Method::GET, "/v1/models", "").await;
    let body = reply.json();
    assert_eq!(body["object"], "list");
    let models = body["data"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["id"], MODEL);
    assert_eq!(models[0]["object"], "model");
    assert_eq!(models[0]["owned_by"], "sluice-simulator");
    assert_eq!(models[0]["parent"], Value::Null);
    assert_eq!(models[1]["id"], ADAPTER);
    assert_eq!(models[1]["parent"], MODEL);

    let health = call(address, Method::GET, "/health", "").await;
    assert_eq!((health.status, health.body.as_str()), (StatusCode::OK, ""));
    assert_eq!(health.simulator_id, address.to_string());

    let missing = call(address, Method::GET, "/nowhere", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.simulator_id, address.to_string());
}

#[tokio::test]
async fn openai_errors() {
    let address = start().await;
    let unknown = post(
        address,
        "/v1/chat/completions",
        json!({
            "model": "nope",
            "messages": [{ "role": "user", "content": "hi" }],
        }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.simulator_id, address.to_string());
    let error = &unknown.json()["error"];
    assert_eq!(error["type"], "NotFoundError");
    assert_eq!(error["code"], 404);
    assert_eq!(error["param"], Value::Null);
    assert!(error["message"].as_str().unwrap().contains("nope"));

    let malformed = call(address, Method::POST, "/v1/chat/completions", "{not json").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["error"]["type"], "BadRequestError");

    let no_messages = post(address, "/v1/chat/completions", json!({ "model": MODEL })).await;
    assert_eq!(no_messages.status, StatusCode::BAD_REQUEST);
    assert!(
        no_messages.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );

    // 35,000 prompt tokens cannot fit 2047 blocks of 16 tokens.
    let too_long = post(
        address,
        "/v1/completions",
        json!({ "model": MODEL, "prompt": "x".repeat(140_000) }),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    let message = too_long.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("maximum context length is 32752 tokens"),
        "{message}"
    );

    let zero = post(
        address,
        "/v1/completions",
        json!({
            "model": MODEL, "prompt": "x", "max_tokens": 0,
        }),
    )
    .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn anthropic_errors() {
    let address = start().await;
    let unknown = post(
        address,
        "/v1/messages",
        json!({
            "model": "nope",
            "max_tokens": 5,
            "messages": [{ "role": "user", "content": "hi" }],
        }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.json(),
        json!({
            "type": "error",
            "error": { "type": "not_found_error", "message": "The model `nope` does not exist." },
        })
    );

    let no_max_tokens = post(
        address,
        "/v1/messages",
        json!({
            "model": MODEL,
            "messages": [{ "role": "user", "content": "hi" }],
        }),
    )
    .await;
    assert_eq!(no_max_tokens.status, StatusCode::BAD_REQUEST);
    let body = no_max_tokens.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn metrics_parse_and_count_requests() {
    let address = start().await;
    post(
        address,
        "/v1/chat/completions",
        chat_request(false, json!({})),
    )
    .await;
    let reply = call(address, Method::GET, "/metrics", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"));

    let mut samples = Vec::new();
    for line in reply.body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        // name{labels} value, where label values may hold spaces but not `"} `.
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value.parse().expect("a numeric value");
        let (name, labels) = series.split_once('{').expect("labels");
        assert!(labels.ends_with('}'), "{line}");
        assert!(
            labels.starts_with(&format!("model_name=\"{MODEL}\"")),
            "{line}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        );
        samples.push((series.to_owned(), value));
    }
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .unwrap_or_else(|| panic!("no {series}"))
            .1
    };
    let model = format!("model_name=\"{MODEL}\"");
    assert_eq!(value(&format!("vllm:num_requests_running{{{model}}}")), 0.0);
    assert_eq!(value(&format!("vllm:num_requests_waiting{{{model}}}")), 0.0);
    assert_eq!(value(&format!("vllm:kv_cache_usage_perc{{{model}}}")), 0.0);
    assert_eq!(
        value(&format!(
            "vllm:request_success_total{{{model},finished_reason=\"length\"}}"
        )),
        1.0
    );
    assert_eq!(value(&format!("vllm:prompt_tokens_total{{{model}}}")), 4.0);
    assert_eq!(
        value(&format!("vllm:generation_tokens_total{{{model}}}")),
        3.0
    );
    assert_eq!(
        value(&format!(
            "vllm:time_to_first_token_seconds_count{{{model}}}"
        )),
        1.0
    );
    assert!(
        value(&format!(
            "vllm:lora_requests_info{{{model},max_lora=\"2\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"}}"
        )) > 1_600_000_000.0
    );
}

/// The value of one metric series of this server's model, e.g. `vllm:num_requests_running`.
async fn metric(address: SocketAddr, series: &str) -> f64 {
    let text = call(address, Method::GET, "/metrics", "").await.body;
    let prefix = format!("{series}{{model_name=\"{MODEL}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {series}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn load_shows_in_metrics_and_a_disconnect_frees_the_server() {
    let address = start_with(&["--decode-ms-per-step", "5", "--max-num-seqs", "2"]).await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let request = chat_request(true, json!({ "max_tokens": 2000 }));
        let mut response = send(
            address,
            Method::POST,
            "/v1/chat/completions",
            &request.to_string(),
        )
        .await;
        // Nothing is sent before the first token, so a frame means the request is running.
        if streams.len() < 2 {
            response.body_mut().frame().await.unwrap().unwrap();
        }
        streams.push(response);
    }
    assert_eq!(metric(address, "vllm:num_requests_running").await, 2.0);
    assert_eq!(metric(address, "vllm:num_requests_waiting").await, 2.0);
    assert!(metric(address, "vllm:kv_cache_usage_perc").await > 0.0);

    drop(streams);
    let mut running = f64::NAN;
    for _ in 0..200 {
        running = metric(address, "vllm:num_requests_running").await
            + metric(address, "vllm:num_requests_waiting").await;
        if running == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(running, 0.0, "the dropped requests were aborted");
    assert_eq!(metric(address, "vllm:kv_cache_usage_perc").await, 0.0);
}
