//! What `make run` shows works as its banner says: the demo configuration
//! (`scripts/run_config.py`, the shipped `envoy.yaml` plus demo keys, limits and guardrails)
//! loaded into a real Envoy, and the banner's requests answered as described: 401 without a key,
//! the trial key's 4th request in a minute refused with 429 and `retry-after`, a card number and
//! an e-mail address redacted before the model sees them.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, client};
use sluice_e2e::host::Host;
use sluice_e2e::paths;

/// The filter configuration `make run` loads (`--cluster` for `SLUICE_CLUSTER=1`).
fn demo_configuration(cluster: bool) -> String {
    let mut command = Command::new("python3");
    command
        .current_dir(paths::repo_root())
        .arg("scripts/run_config.py")
        .arg("--filter-json");
    if cluster {
        command.arg("--cluster");
    }
    let output = command.output().expect("run scripts/run_config.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 config")
}

async fn chat(gateway: &Gateway, key: Option<&str>, content: &str) -> reqwest::Response {
    let mut request = client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 4,
        }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("POST through Envoy")
}

#[both_hosts]
async fn the_banner_shows_keys_a_429_and_a_redaction(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&demo_configuration(false)),
    )
    .await;

    let anonymous = chat(&gateway, None, "Hi").await;
    assert_eq!(anonymous.status(), 401);

    // The trial key: 3 requests per minute, the 4th refused.
    sluice_e2e::minute::stay_inside_one(Duration::from_secs(10)).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let response = chat(&gateway, Some("sk-sluice-trial"), "Hi").await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // A per-minute limit is a sliding window over this minute and the last one, so the wait
    // for room can run into the minute after next (3 requests at second 10 of a minute leave
    // room at second 20 of the next: 70 s).
    assert!(
        retry_after.is_some_and(|s| (1..=120).contains(&s)),
        "{retry_after:?}"
    );

    // The demo key, and the default guardrails: the simulated model echoes what it received.
    let echoed = chat(
        &gateway,
        Some("sk-sluice-demo"),
        "[[echo]]Card 4111 1111 1111 1111, mail jane@example.com",
    )
    .await;
    assert_eq!(echoed.status(), 200);
    let body: serde_json::Value = echoed.json().await.expect("JSON");
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(!text.contains("4111"), "{text}");
    assert!(!text.contains("jane@example.com"), "{text}");
    assert!(text.contains('[') && text.contains(']'), "{text}");

    let models = client()
        .get(gateway.url("/v1/models"))
        .bearer_auth("sk-sluice-demo")
        .send()
        .await
        .expect("GET /v1/models");
    assert_eq!(models.status(), 200);
}

/// `SLUICE_CLUSTER=1 make run`'s configuration loads, and its banner's key is accepted.
#[both_hosts]
async fn the_cluster_demo_configuration_loads_and_takes_the_demo_key(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_picker()
            .with_filter_configuration(&demo_configuration(true)),
    )
    .await;
    assert_eq!(chat(&gateway, None, "Hi").await.status(), 401);
    // Until its first sync the instance's view of the cluster is unknown; `open` admits.
    let response = chat(&gateway, Some("sk-sluice-demo"), "Hi").await;
    assert_eq!(response.status(), 200);
}
