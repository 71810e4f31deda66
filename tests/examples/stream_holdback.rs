//! How much the response guard's stream hold-back delays text, through real Envoy and a
//! simulator replica decoding one token per 10 ms (as the routing benchmark does):
//!
//! ```sh
//! make build && cargo run --release -p sluice-e2e --example stream_holdback [native|wasm]
//! ```
//!
//! (the native module by default; `wasm` measures the proxy-wasm build).
//!
//! Streams the same chat completion `ROUNDS` times with response scanning off and on (the
//! default rule set, `stream_holdback_bytes` 256) and prints the medians of the time to the
//! first content byte, to the first letter or digit (a word has begun to arrive) and to the end
//! of the stream. A measurement tool, not a test: nothing here asserts on time.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA};
use sluice_e2e::host::Host;

const ROUNDS: usize = 100;

fn configuration(responses: bool) -> String {
    format!(
        r#"{{"models": {{"{LLAMA}": {{}}}},
            "guardrails": {{"policies": {{"default": {{"responses": {responses}}}}}}}}}"#
    )
}

#[derive(Debug, Default)]
struct Timing {
    first_content: Duration,
    first_word: Duration,
    end: Duration,
    text: String,
}

async fn stream_once(gateway: &Gateway) -> Timing {
    let body = json!({"model": LLAMA, "stream": true, "max_tokens": 48,
                      "messages": [{"role": "user", "content": "Tell me a story."}]});
    let started = Instant::now();
    let response = gateway.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status().as_u16(), 200);
    let mut timing = Timing::default();
    let mut buffer = String::new();
    let mut bytes = response.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.expect("stream chunk");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let Some(piece) = value["choices"][0]["delta"]["content"].as_str() else {
                continue;
            };
            if !piece.is_empty() && timing.text.is_empty() {
                timing.first_content = started.elapsed();
            }
            if piece.chars().any(char::is_alphanumeric)
                && !timing.text.chars().any(char::is_alphanumeric)
            {
                timing.first_word = started.elapsed();
            }
            timing.text.push_str(piece);
        }
    }
    timing.end = started.elapsed();
    timing
}

fn quantile(values: &[Duration], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort();
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let host = match std::env::args().nth(1).as_deref() {
        None | Some("native") => Host::Native,
        Some("wasm") => Host::Wasm,
        Some(other) => panic!("the host is native or wasm, not {other}"),
    };
    let mut gateways = Vec::new();
    for responses in [false, true] {
        let gateway = Gateway::start(
            host,
            GatewayOptions::default()
                .with_replicas("llama_8b", 1)
                .with_simulator_args(&["--decode-ms-per-step", "10", "--prefill-us-per-token", "0"])
                .with_filter_configuration(&configuration(responses)),
        )
        .await;
        // Warm up Envoy's connections (and, on Wasm, the VMs).
        for _ in 0..4 {
            stream_once(&gateway).await;
        }
        gateways.push((responses, gateway, Vec::new()));
    }
    // Alternate between the two, so that whatever else the machine does hits both alike.
    for _ in 0..ROUNDS {
        for (_, gateway, runs) in &mut gateways {
            runs.push(stream_once(gateway).await);
        }
    }
    let mut texts = Vec::new();
    for (responses, _, runs) in &gateways {
        let column =
            |pick: fn(&Timing) -> Duration| -> Vec<Duration> { runs.iter().map(pick).collect() };
        let first_content = column(|r| r.first_content);
        let first_word = column(|r| r.first_word);
        let end = column(|r| r.end);
        println!(
            "response scanning {:>3}: first content byte p50 {:5.1} ms p90 {:5.1} ms | first letter p50 {:5.1} ms p90 {:5.1} ms | end p50 {:6.1} ms ({ROUNDS} streams of 48 tokens)",
            if *responses { "on" } else { "off" },
            quantile(&first_content, 0.5),
            quantile(&first_content, 0.9),
            quantile(&first_word, 0.5),
            quantile(&first_word, 0.9),
            quantile(&end, 0.5),
        );
        texts.push(runs.last().map(|r| r.text.clone()).unwrap_or_default());
    }
    assert_eq!(texts[0], texts[1], "the guard changed clean text");
}
