//! Under concurrent load through the gateway, the replicas' queue and KV-cache metrics rise, and
//! they fall back to zero once the load is gone: routing and benchmarks depend on that signal.
//!
//! One host only: this tests the simulator, and Envoy is only the way the load reaches it
//! (nothing here depends on the filter's build). It runs the shipped `envoy.yaml` (native).

use futures_util::future::join_all;
use serde_json::json;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_kv_cache_metrics_follow_the_load() {
    let gateway = Gateway::start(
        Host::Native,
        GatewayOptions::default().with_simulator_args(&[
            "--max-num-seqs",
            "2",
            "--decode-ms-per-step",
            "25",
        ]),
    )
    .await;
    let pool = gateway.pool("llama_8b");

    for replica in pool {
        assert_eq!(replica.metric("vllm:num_requests_waiting").await, 0.0);
        assert_eq!(replica.metric("vllm:kv_cache_usage_perc").await, 0.0);
    }

    let http = client();
    let requests = (0..16).map(|i| {
        let http = http.clone();
        let url = gateway.url("/v1/chat/completions");
        async move {
            http.post(url)
                .json(&json!({
                    "model": LLAMA,
                    "messages": [{"role": "user", "content": format!("request {i}: {}", "lorem ipsum ".repeat(40))}],
                    "max_tokens": 16
                }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let load = tokio::spawn(join_all(requests));

    // 16 requests, 2 Llama replicas, 2 running each: most must wait. Watch until both signals show it.
    let mut max_waiting: f64 = 0.0;
    let mut max_kv: f64 = 0.0;
    while !load.is_finished() {
        for replica in pool {
            max_waiting = max_waiting.max(replica.metric("vllm:num_requests_waiting").await);
            max_kv = max_kv.max(replica.metric("vllm:kv_cache_usage_perc").await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{statuses:?}"
    );
    assert!(
        max_waiting >= 2.0,
        "waiting queue never grew: {max_waiting}"
    );
    assert!(max_kv > 0.0, "KV cache use never rose: {max_kv}");

    let mut served = 0.0;
    for replica in pool {
        assert_eq!(replica.metric("vllm:num_requests_waiting").await, 0.0);
        assert_eq!(replica.metric("vllm:num_requests_running").await, 0.0);
        assert_eq!(replica.metric("vllm:kv_cache_usage_perc").await, 0.0);
        served += replica.metric("vllm:request_success_total").await;
    }
    assert_eq!(served, 16.0);
}
