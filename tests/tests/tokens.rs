//! Token accounting through a real Envoy and simulator replicas: usage read from JSON bodies and
//! streams, the stream a client gets is the one it asked for (with or without usage), metrics
//! in `/stats/prometheus`, the record in the access log, and an estimate for a stream the
//! upstream cut off.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
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

/// The Prometheus page as Envoy has it now (the filter hands its counts over on its tick: wait
/// for the value expected with `wait_for`).
async fn prometheus(gateway: &Gateway) -> String {
    client()
        .get(format!("http://{}/stats/prometheus", gateway.envoy.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample of `metric` whose labels include all of `labels`, 0 when absent.
fn sample(page: &str, metric: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(name, _)| {
            (name.starts_with(&format!("{metric}{{")) || *name == metric)
                && labels.iter().all(|l| name.contains(l))
        })
        .map_or(0.0, |(_, value)| value.parse().unwrap())
}

/// Waits until `metric{labels}` reads `value` and returns that page. Counters reach it on the
/// filter's next tick, with every other count the same requests made before; histograms only
/// when Envoy flushes stats (every 5 s by default).
async fn wait_for(gateway: &Gateway, metric: &str, labels: &[&str], value: f64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = prometheus(gateway).await;
        let seen = sample(&page, metric, labels);
        if seen == value {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{metric} {labels:?} is {seen}, not {value}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const MODEL_LABEL: &str = "gen_ai_request_model=\"meta-llama/Llama-3.1-8B-Instruct\"";

#[tokio::test]
async fn json_usage_is_counted_and_logged() {
    let gateway = Gateway::start(GatewayOptions::default()).await;
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
    for histogram in [
        "gen_ai_server_request_duration_ms_count",
        "gen_ai_server_time_to_first_token_ms_count",
    ] {
        wait_for(&gateway, histogram, &[MODEL_LABEL], 1.0).await;
    }
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

#[tokio::test]
async fn streams_carry_usage_only_when_the_client_asked() {
    let gateway = Gateway::start(GatewayOptions::default()).await;
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
        "gen_ai_server_time_per_output_token_us_count",
        &[MODEL_LABEL],
        3.0,
    )
    .await;
}

#[tokio::test]
async fn anthropic_streams_and_the_optional_header() {
    let configuration = r#"{
      "models": {
        "meta-llama/Llama-3.1-8B-Instruct": {"pool": "llama_8b", "adapters": ["sql-lora"]},
        "Qwen/Qwen2.5-7B-Instruct": {"pool": "qwen_7b"}
      },
      "aliases": {"claude-*": "meta-llama/Llama-3.1-8B-Instruct"},
      "tokens": {"usage_header": true}
    }"#;
    let gateway =
        Gateway::start(GatewayOptions::default().with_filter_configuration(configuration)).await;
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

#[tokio::test]
async fn a_stream_cut_off_upstream_is_estimated() {
    let gateway = Gateway::start(
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
}
