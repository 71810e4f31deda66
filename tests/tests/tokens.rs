//! Token accounting through a real Envoy and simulator replicas: usage read from JSON bodies and
//! streams, the stream a client gets is the one it asked for (with or without usage), metrics
//! in `/stats/prometheus`, the record in the access log, and an estimate for a stream the
//! upstream cut off.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA};
use sluice_e2e::host::Host;
use sluice_e2e::prometheus::{sample, wait_for};
use sluice_e2e::sse;

fn chat(stream: bool, include_usage: Option<bool>) -> Value {
    let mut body = json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Count to five, please."}],
        "max_tokens": 5,
        "stream": stream,
    });
    if let Some(include) = include_usage {
        body["stream_options"] = json!({ "include_usage": include });
    }
    body
}

const MODEL_LABEL: &str = "gen_ai_request_model=\"meta-llama/Llama-3.1-8B-Instruct\"";

#[both_hosts]
async fn json_usage_is_counted_and_logged(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    let response = gateway
        .post_json("/v1/chat/completions", &chat(false, None))
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        !response.headers().contains_key("x-sluice-usage"),
        "off by default"
    );
    let body: Value = response.json().await.unwrap();
    let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap() as f64;
    let page = wait_for(
        &gateway,
        "sluice_tokens_total",
        &[MODEL_LABEL, "gen_ai_token_type=\"output\""],
        5.0,
    )
    .await;
    let input = sample(
        &page,
        "sluice_tokens_total",
        &[MODEL_LABEL, "gen_ai_token_type=\"input\""],
    );
    assert_eq!(input, prompt, "{page}");
    let output_type = "gen_ai_token_type=\"output\"";
    wait_for(
        &gateway,
        "gen_ai_client_token_usage_count",
        &[MODEL_LABEL, output_type],
        1.0,
    )
    .await;
    // (Envoy's histogram sums are approximate; the exact totals are the counters above.)
    // A JSON response shows no first token: its duration is recorded, not its time to first
    // token (tests/tests/telemetry.rs checks the values).
    let page = wait_for(
        &gateway,
        "gen_ai_server_request_duration_microseconds_count",
        &[MODEL_LABEL],
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &page,
            "gen_ai_server_time_to_first_token_microseconds_count",
            &[MODEL_LABEL]
        ),
        0.0
    );
    assert_eq!(
        sample(&page, "sluice_token_counts_estimated_total", &[MODEL_LABEL]),
        0.0
    );
    // The record is in filter state, printed by the access log.
    let expected = format!("\"input\":{prompt},");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = gateway.envoy.process.log();
        let reported = log.contains("\"output\":5,") && log.contains("\"source\":\"reported\"");
        if log.contains(&expected) && reported {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no token record in the access log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[both_hosts]
async fn streams_carry_usage_only_when_the_client_asked(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    for (round, include_usage) in [None, Some(false), Some(true)].into_iter().enumerate() {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(true, include_usage))
            .await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let events = sse::parse(&text);
        let (done, chunks) = events.split_last().unwrap();
        assert_eq!(done.data, "[DONE]");
        let chunks: Vec<Value> = chunks
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        if include_usage == Some(true) {
            let (last, rest) = chunks.split_last().unwrap();
            assert_eq!(last["choices"], json!([]));
            assert_eq!(last["usage"]["completion_tokens"], 5);
            assert!(rest.iter().all(|c| c["usage"].is_null()));
        } else {
            // Exactly the stream without usage: no usage chunk, no `usage` member.
            assert!(!text.contains("usage"), "{text}");
            assert!(
                chunks
                    .iter()
                    .all(|c| !c["choices"].as_array().unwrap().is_empty())
            );
        }
        let page = wait_for(
            &gateway,
            "sluice_tokens_total",
            &[MODEL_LABEL, "gen_ai_token_type=\"output\""],
            5.0 * (round + 1) as f64,
        )
        .await;
        assert_eq!(
            sample(&page, "sluice_token_counts_estimated_total", &[MODEL_LABEL]),
            0.0
        );
    }
    wait_for(
        &gateway,
        "gen_ai_server_time_per_output_token_microseconds_count",
        &[MODEL_LABEL],
        3.0,
    )
    .await;
}

#[both_hosts]
async fn anthropic_streams_and_the_optional_header(host: Host) {
    let configuration = r#"{
      "models": {
        "meta-llama/Llama-3.1-8B-Instruct": {"pool": "llama_8b", "adapters": ["sql-lora"]},
        "Qwen/Qwen2.5-7B-Instruct": {"pool": "qwen_7b"}
      },
      "aliases": {"claude-*": "meta-llama/Llama-3.1-8B-Instruct"},
      "tokens": {"usage_header": true}
    }"#;
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(configuration),
    )
    .await;
    let message = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 4, "stream": true,
        "messages": [{"role": "user", "content": "Hi"}],
    });
    let response = gateway.post_json("/v1/messages", &message).await;
    assert_eq!(response.status(), 200);
    let events = sse::parse(&response.text().await.unwrap());
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    wait_for(
        &gateway,
        "sluice_tokens_total",
        &[MODEL_LABEL, "gen_ai_token_type=\"output\""],
        4.0,
    )
    .await;

    let response = gateway
        .post_json("/v1/chat/completions", &chat(false, None))
        .await;
    assert_eq!(response.status(), 200);
    let header = response.headers()["x-sluice-usage"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(
        header,
        format!(
            "input={prompt}; output=5; cached=0; total={}; source=reported",
            prompt + 5
        )
    );
}

#[both_hosts]
async fn a_stream_cut_off_upstream_is_estimated(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_simulator_args(&["--cut-streams-after", "3"]),
    )
    .await;
    let mut body = chat(true, None);
    body["max_tokens"] = json!(20);
    let response = gateway.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    // The body ends early (an error or a truncated stream, as the client sees it).
    let text: String = response.text().await.unwrap_or_default();
    assert!(!text.contains("[DONE]"), "{text}");
    let page = wait_for(
        &gateway,
        "sluice_token_counts_estimated_total",
        &[MODEL_LABEL],
        1.0,
    )
    .await;
    let output = sample(
        &page,
        "sluice_tokens_total",
        &[MODEL_LABEL, "gen_ai_token_type=\"output\""],
    );
    assert!(
        (1.0..=8.0).contains(&output),
        "3 tokens streamed, estimated {output}"
    );
    assert!(
        sample(
            &page,
            "sluice_tokens_total",
            &[MODEL_LABEL, "gen_ai_token_type=\"input\""]
        ) > 0.0
    );
    // Not a successful response: a duration with its error type, no first token.
    let page = wait_for(
        &gateway,
        "gen_ai_server_request_duration_microseconds_count",
        &[MODEL_LABEL, "error_type=\"incomplete\""],
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &page,
            "gen_ai_server_time_to_first_token_microseconds_count",
            &[MODEL_LABEL]
        ),
        0.0,
        "{page}"
    );
}

#[both_hosts]
async fn a_fifty_thousand_message_prompt_is_refused_before_the_model_server(host: Host) {
    // 50,000 messages "ok": their text is 100 KB, but Llama 3.1's chat template makes them
    // 300,030 tokens (see core/src/tokens/request.rs), past the model's 131,072.
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    let messages: Vec<Value> = (0..50_000)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": "ok"})
        })
        .collect();
    let body = json!({"model": LLAMA, "messages": messages, "max_tokens": 16});
    let response = gateway.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 400);
    assert!(
        !response.headers().contains_key("x-simulator-id"),
        "answered by the gateway, not a replica"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "context_length_exceeded");
    let message = error["error"]["message"].as_str().unwrap();
    let prompt: u64 = message
        .split(" tokens (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(prompt >= 300_030, "{message}");
}
