//! Replica picking through a real Envoy, filter and picker: requests go where the scores say,
//! away from a replica whose queue grows or that died, and keep flowing without the picker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};

fn chat(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens
    })
}

/// Which replica of `llama_8b` served each of `n` sequential requests with distinct prompts.
async fn served_by(gateway: &Gateway, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let response = gateway
            .post_json(
                "/v1/chat/completions",
                &chat(&format!("question number {i}"), 1),
            )
            .await;
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-simulator-id"]
            .to_str()
            .unwrap()
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Waits until the filter has used the snapshot for at least one request.
async fn wait_for_picking(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.envoy.stat("wasmcustom.sluice_picks_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the filter never picked a replica"
        );
        let _ = client()
            .post(gateway.url("/v1/chat/completions"))
            .json(&chat("warm up", 1))
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_queue_grows_stops_receiving_traffic() {
    let gateway = Gateway::start(
        GatewayOptions::default()
            .with_picker()
            .with_simulator_args(&["--max-num-seqs", "1", "--decode-ms-per-step", "20"]),
    )
    .await;
    wait_for_picking(&gateway).await;
    let pool = gateway.pool("llama_8b");
    let (busy, idle) = (&pool[0], &pool[1]);

    // Load one replica directly, behind the gateway's back: only its metrics can tell.
    let http = client();
    let load: Vec<_> = (0..6)
        .map(|i| {
            http.post(busy.url("/v1/chat/completions"))
                .json(&chat(&format!("long job {i}"), 150))
                .send()
        })
        .collect();
    let load = tokio::spawn(join_all(load));
    let deadline = Instant::now() + Duration::from_secs(5);
    while busy.metric("vllm:num_requests_waiting").await < 3.0 {
        assert!(Instant::now() < deadline, "the busy replica never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few scrape intervals for the picker and the filter to see it.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let counts = served_by(&gateway, 10).await;
    assert_eq!(counts.get(&idle.addr.to_string()), Some(&10), "{counts:?}");
    load.abort();
}

#[tokio::test]
async fn a_killed_replica_is_avoided_within_a_few_scrape_intervals() {
    let mut gateway = Gateway::start(GatewayOptions::default().with_picker()).await;
    wait_for_picking(&gateway).await;
    let survivor = gateway.pool("llama_8b")[1].addr.to_string();
    gateway.pools[0].1[0].process.kill();
    // unhealthy_after = 2 scrapes at 50 ms, plus a snapshot refresh.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = served_by(&gateway, 10).await;
    assert_eq!(counts.get(&survivor), Some(&10), "{counts:?}");
}

#[tokio::test]
async fn requests_right_after_a_replica_dies_are_retried_on_a_fallback() {
    let mut gateway = Gateway::start(GatewayOptions::default().with_picker()).await;
    wait_for_picking(&gateway).await;
    gateway.pools[0].1[0].process.kill();
    // No waiting: the snapshot still says the dead replica is healthy. Envoy's retry on connect
    // failure goes to the next endpoint the filter named.
    let counts = served_by(&gateway, 6).await;
    assert_eq!(counts.values().sum::<usize>(), 6, "{counts:?}");
}

#[tokio::test]
async fn traffic_flows_with_the_picker_stopped() {
    let mut gateway = Gateway::start(GatewayOptions::default().with_picker()).await;
    wait_for_picking(&gateway).await;
    gateway.picker.as_mut().unwrap().process.kill();
    // envoy.yaml's stale_after_ms is 2000: after that the snapshot is not used any more.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let fallbacks_before = gateway
        .envoy
        .stat("wasmcustom.sluice_pick_fallbacks_total")
        .await;
    let counts = served_by(&gateway, 6).await;
    assert_eq!(counts.values().sum::<usize>(), 6);
    assert_eq!(
        counts.len(),
        2,
        "Envoy's round robin spreads them: {counts:?}"
    );
    let fallbacks = gateway
        .envoy
        .stat("wasmcustom.sluice_pick_fallbacks_total")
        .await;
    assert_eq!(fallbacks - fallbacks_before, 6);
    assert!(
        gateway
            .envoy
            .stat("wasmcustom.sluice_picker_fetch_failures_total")
            .await
            > 0
    );
}

#[tokio::test]
async fn a_shared_prompt_prefix_sticks_to_one_replica() {
    let gateway = Gateway::start(GatewayOptions::default().with_picker()).await;
    wait_for_picking(&gateway).await;
    let system = "You are the support assistant of a large store. ".repeat(40);
    let mut replicas = HashMap::new();
    for i in 0..8 {
        let body = json!({
            "model": LLAMA,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": format!("customer question {i}")}
            ],
            "max_tokens": 1
        });
        let response = gateway.post_json("/v1/chat/completions", &body).await;
        let id = response.headers()["x-simulator-id"]
            .to_str()
            .unwrap()
            .to_owned();
        *replicas.entry(id).or_insert(0) += 1;
    }
    assert_eq!(replicas.len(), 1, "{replicas:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_sheds_with_429_in_the_apis_format() {
    let config = format!(
        r#"{{"models": {{"{LLAMA}": {{"pool": "llama_8b"}}}},
            "picking": {{"refresh_ms": 50, "max_waiting_per_endpoint": 2}}}}"#
    );
    let gateway = Gateway::start(
        GatewayOptions::default()
            .with_picker()
            .with_filter_configuration(&config)
            .with_simulator_args(&["--max-num-seqs", "1", "--decode-ms-per-step", "20"]),
    )
    .await;
    wait_for_picking(&gateway).await;
    let http = client();
    let mut load = Vec::new();
    for replica in gateway.pool("llama_8b") {
        for i in 0..5 {
            load.push(
                http.post(replica.url("/v1/chat/completions"))
                    .json(&chat(&format!("long job {i}"), 150))
                    .send(),
            );
        }
    }
    let load = tokio::spawn(join_all(load));
    for replica in gateway.pool("llama_8b") {
        let deadline = Instant::now() + Duration::from_secs(5);
        while replica.metric("vllm:num_requests_waiting").await < 3.0 {
            assert!(Instant::now() < deadline, "replica never queued");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    let response = http
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("one more", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":{"message":"Every replica serving this model is at capacity; retry shortly.","type":"server_error","param":null,"code":"overloaded"}}"#
    );
    let message =
        json!({"model": LLAMA, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]});
    let response = http
        .post(gateway.url("/v1/messages"))
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Every replica serving this model is at capacity; retry shortly."}}"#
    );
    assert_eq!(
        gateway
            .envoy
            .stat("wasmcustom.sluice_requests_shed_total")
            .await,
        2
    );
    load.abort();
}

#[tokio::test]
async fn a_pool_without_healthy_replicas_answers_503() {
    let mut gateway = Gateway::start(GatewayOptions::default().with_picker()).await;
    wait_for_picking(&gateway).await;
    for replica in &mut gateway.pools[0].1 {
        replica.process.kill();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = gateway
        .post_json("/v1/chat/completions", &chat("anyone there?", 1))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":{"message":"No healthy replica serves this model right now.","type":"server_error","param":null,"code":"no_healthy_upstream"}}"#
    );
}
