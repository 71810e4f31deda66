//! The per-request metrics through a real Envoy and simulator replicas with known timings:
//! time to first token, time per output token and duration as the OpenTelemetry GenAI
//! conventions define them (streamed and non-streamed), in microseconds as the metric table
//! says, and the request counter's bounded labels.
//!
//! Timings are checked as ratios to what the simulator was told to take (generous bands: the
//! machine may be busy), never as limits on how long the test itself takes.

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, QWEN, client};
use sluice_e2e::host::Host;
use sluice_e2e::prometheus::{histogram, page, sample, sample_exact, wait_for};
use sluice_e2e::sse;

/// Prefill cost per prompt token and decode step, as the simulator is told.
const PREFILL_US_PER_TOKEN: f64 = 1000.0;
const DECODE_MS: f64 = 20.0;
/// Output tokens per request.
const OUTPUT_TOKENS: u64 = 8;
const ROUNDS: usize = 3;

fn timed_gateway_options() -> GatewayOptions {
    GatewayOptions::default().with_simulator_args(&[
        "--prefill-us-per-token",
        &PREFILL_US_PER_TOKEN.to_string(),
        "--decode-ms-per-step",
        &DECODE_MS.to_string(),
        // Every request pays its whole prefill.
        "--no-prefix-cache",
    ])
}

fn chat(model: &str, stream: bool, round: usize) -> Value {
    // About 100 simulated prompt tokens: a prefill of about 100 ms, five decode steps.
    let text = format!("round {round}: {}", "tell me more ".repeat(32));
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": OUTPUT_TOKENS,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn model_label(model: &str) -> String {
    format!("gen_ai_request_model=\"{model}\"")
}

/// `measured / expected` lies in `[low, high]`.
fn assert_ratio(what: &str, measured: f64, expected: f64, low: f64, high: f64) {
    let ratio = measured / expected;
    eprintln!("{what}: measured {measured:.0} µs, expected about {expected:.0} µs");
    assert!(
        (low..=high).contains(&ratio),
        "{what}: measured {measured:.0} µs, expected about {expected:.0} µs (ratio {ratio:.2})"
    );
}

#[both_hosts]
async fn latencies_follow_the_simulators_timings_streamed_and_not(host: Host) {
    let gateway = Gateway::start(host, timed_gateway_options()).await;

    // Streamed, to the Llama pool: the prompt's size comes back in the usage chunk.
    let mut prompt_tokens = 0u64;
    for round in 0..ROUNDS {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(LLAMA, true, round))
            .await;
        assert_eq!(response.status(), 200);
        let events = sse::parse(&response.text().await.unwrap());
        let usage = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .find(|v| v["usage"].is_object())
            .expect("usage chunk")["usage"]
            .clone();
        assert_eq!(usage["completion_tokens"], OUTPUT_TOKENS);
        prompt_tokens += usage["prompt_tokens"].as_u64().unwrap();
    }
    // Non-streamed, to the Qwen pool (the same timings).
    let mut qwen_prompt_tokens = 0u64;
    for round in 0..ROUNDS {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(QWEN, false, round))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["usage"]["completion_tokens"], OUTPUT_TOKENS);
        qwen_prompt_tokens += body["usage"]["prompt_tokens"].as_u64().unwrap();
    }

    let llama = model_label(LLAMA);
    let qwen = model_label(QWEN);
    let rounds = ROUNDS as f64;
    wait_for(
        &gateway,
        "gen_ai_server_request_duration_microseconds_count",
        &[&qwen],
        rounds,
    )
    .await;
    let page = wait_for(
        &gateway,
        "gen_ai_server_time_to_first_token_microseconds_count",
        &[&llama],
        rounds,
    )
    .await;
    let decode_us = DECODE_MS * 1000.0;
    let mean = |metric: &str, labels: &[&str]| {
        let (count, sum) = histogram(&page, metric, labels);
        assert_eq!(count, rounds, "{metric} {labels:?}:\n{page}");
        sum / count
    };

    // The first token comes after the prefill and one decode step; each later one a decode
    // step apart.
    let prefill_us = PREFILL_US_PER_TOKEN * prompt_tokens as f64 / rounds;
    let first_token_us = prefill_us + decode_us;
    let streamed_us = first_token_us + (OUTPUT_TOKENS - 1) as f64 * decode_us;
    let labels = [llama.as_str(), "gen_ai_operation_name=\"chat\""];
    assert_ratio(
        "time to first token",
        mean("gen_ai_server_time_to_first_token_microseconds", &labels),
        first_token_us,
        0.8,
        2.5,
    );
    assert_ratio(
        "time per output token",
        mean("gen_ai_server_time_per_output_token_microseconds", &labels),
        decode_us,
        0.8,
        2.5,
    );
    assert_ratio(
        "streamed duration",
        mean("gen_ai_server_request_duration_microseconds", &labels),
        streamed_us,
        0.8,
        2.5,
    );

    // A whole (JSON) response shows no first token: neither time to first token nor time per
    // output token is recorded for it, only its duration (and its tokens).
    for metric in [
        "gen_ai_server_time_to_first_token_microseconds_count",
        "gen_ai_server_time_per_output_token_microseconds_count",
    ] {
        assert_eq!(sample(&page, metric, &[&qwen]), 0.0, "{metric}:\n{page}");
    }
    let whole_us = PREFILL_US_PER_TOKEN * qwen_prompt_tokens as f64 / rounds
        + OUTPUT_TOKENS as f64 * decode_us;
    assert_ratio(
        "non-streamed duration",
        mean("gen_ai_server_request_duration_microseconds", &[&qwen]),
        whole_us,
        0.8,
        2.5,
    );
    let (count, _) = histogram(
        &page,
        "gen_ai_client_token_usage",
        &[&qwen, "gen_ai_token_type=\"output\""],
    );
    assert_eq!(count, rounds);
    // Every series carries the conventions' attributes.
    let response_model = format!("gen_ai_response_model=\"{QWEN}\"");
    assert!(
        sample(
            &page,
            "gen_ai_server_request_duration_microseconds_count",
            &["gen_ai_provider_name=\"openai\"", &response_model]
        ) > 0.0,
        "{page}"
    );
}

#[both_hosts]
async fn requests_are_counted_by_api_status_class_and_model(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    let ok = json!({"model": LLAMA, "max_tokens": 2,
        "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        gateway
            .post_json("/v1/chat/completions", &ok)
            .await
            .status(),
        200
    );
    assert_eq!(gateway.post_json("/v1/messages", &ok).await.status(), 200);
    // Refused by the filter: an unknown model (the client's name is never a label).
    let unknown = json!({"model": "gpt-9", "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        gateway
            .post_json("/v1/chat/completions", &unknown)
            .await
            .status(),
        404
    );
    // Refused by the model server: it serves at most 16 choices.
    let refused = json!({"model": LLAMA, "max_tokens": 2, "n": 17,
        "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        gateway
            .post_json("/v1/chat/completions", &refused)
            .await
            .status(),
        400
    );
    let models = client()
        .get(gateway.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);

    let page = page(&gateway).await;
    let llama = model_label(LLAMA);
    let requests = |labels: &[&str]| sample_exact(&page, "sluice_requests_total", labels);
    assert_eq!(
        requests(&[
            "sluice_api=\"chat\"",
            "sluice_http_status_class=\"2xx\"",
            &llama
        ]),
        1.0,
        "{page}"
    );
    assert_eq!(
        requests(&[
            "sluice_api=\"messages\"",
            "sluice_http_status_class=\"2xx\"",
            &llama
        ]),
        1.0,
        "{page}"
    );
    assert_eq!(
        requests(&["sluice_api=\"chat\"", "sluice_http_status_class=\"4xx\""]),
        1.0,
        "{page}"
    );
    assert_eq!(
        requests(&[
            "sluice_api=\"chat\"",
            "sluice_http_status_class=\"4xx\"",
            &llama
        ]),
        1.0,
        "{page}"
    );
    assert_eq!(
        requests(&["sluice_api=\"models\"", "sluice_http_status_class=\"2xx\""]),
        1.0,
        "{page}"
    );
    assert!(!page.text.contains("gpt-9"), "{page}");

    // The upstream's refusal has a duration with its error type, and no token usage.
    let failed = [llama.as_str(), "error_type=\"400\""];
    let page = wait_for(
        &gateway,
        "gen_ai_server_request_duration_microseconds_count",
        &failed,
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &page,
            "gen_ai_server_request_duration_microseconds_count",
            &[&llama, "gen_ai_provider_name=\"anthropic\""]
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "sluice_tokens_total",
            &[&llama, "gen_ai_token_type=\"output\""]
        ),
        4.0,
        "two requests of two tokens:\n{page}"
    );
}
