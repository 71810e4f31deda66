//! OpenAI's Responses API through a real Envoy against the simulator's `/v1/responses`, JSON and
//! streamed: the response reaches the client as the server sent it, and the filter reads its
//! usage (`response.completed` in a stream) into the token record.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;
use sluice_e2e::sse;

fn request(stream: bool) -> Value {
    json!({
        "model": LLAMA,
        "instructions": "Answer briefly.",
        "input": [{"role": "user", "content": "Count to five, please."}],
        "max_output_tokens": 6,
        "stream": stream,
    })
}

/// The token record the access log printed for the `n`th request to `/v1/responses` (0-based),
/// once it is there.
async fn token_record(gateway: &Gateway, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = gateway.envoy.process.log();
        let record = log
            .lines()
            .filter(|line| line.contains("\"POST /v1/responses\""))
            .nth(n)
            .and_then(|line| {
                line.split_once(" tokens=")?
                    .1
                    .split_once(" guardrails=")
                    .map(|(t, _)| t.to_owned())
            });
        if let Some(record) = record.filter(|r| r.starts_with('{')) {
            return serde_json::from_str(&record).expect("token record JSON");
        }
        assert!(
            Instant::now() < deadline,
            "no token record for request {n}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[both_hosts]
async fn responses_json_and_stream_pass_through_with_their_usage_read(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default()).await;

    let response = gateway.post_json("/v1/responses", &request(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["object"], "response");
    assert_eq!(body["model"], LLAMA);
    let usage = &body["usage"];
    let (input, output) = (
        usage["input_tokens"].as_u64().expect("input_tokens"),
        usage["output_tokens"].as_u64().expect("output_tokens"),
    );
    assert_eq!(output, 6, "max_output_tokens reached: {body}");
    let record = token_record(&gateway, 0).await;
    assert_eq!(record["input"], input, "{record}");
    assert_eq!(record["output"], output, "{record}");
    assert_eq!(record["source"], "reported", "{record}");

    let response = client()
        .post(gateway.url("/v1/responses"))
        .json(&request(true))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse::parse(&response.text().await.expect("stream"));
    let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names.first(), Some(&"response.created"), "{names:?}");
    assert!(names.contains(&"response.output_text.delta"), "{names:?}");
    // Reaching max_output_tokens ends the response as incomplete, with its usage.
    let last = events.last().expect("events");
    let last_data: Value = serde_json::from_str(&last.data).expect("last event JSON");
    let usage = &last_data["response"]["usage"];
    assert_eq!(usage["output_tokens"], 6, "{last_data}");
    let text: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.output_text.delta"))
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data).expect("delta JSON");
            data["delta"].as_str().expect("delta").to_owned()
        })
        .collect();
    assert!(!text.is_empty());
    let record = token_record(&gateway, 1).await;
    assert_eq!(record["input"], usage["input_tokens"], "{record}");
    assert_eq!(record["output"], usage["output_tokens"], "{record}");
    assert_eq!(record["source"], "reported", "{record}");
}
