//! Headers that steer routing are the gateway's own: copies sent by a client never reach the
//! router or the upstream.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, QWEN, client};
use sluice_e2e::host::Host;

#[both_hosts]
async fn client_sent_routing_headers_are_removed(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    let response = client()
        .post(gateway.url("/v1/chat/completions?probe=spoofed"))
        .header("x-sluice-model", "some-other-model")
        .header("x-sluice-base-model", QWEN)
        .header("x-gateway-destination-endpoint", "10.9.9.9:80")
        .json(&json!({
            "model": LLAMA,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.cluster_of(&response), "llama_8b");

    // The access log prints the request headers as they left the filter chain.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = gateway.envoy.process.log();
        if let Some(line) = log.lines().find(|l| l.contains("probe=spoofed")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no access log line:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        line.contains(&format!(" model={LLAMA} base={LLAMA} endpoint=- ")),
        "{line}"
    );
    assert!(!line.contains("10.9.9.9"), "{line}");

    assert_eq!(
        gateway
            .envoy
            .stat_at_least(&host.stat("sluice_internal_headers_removed_total"), 3)
            .await,
        3
    );
    // The request counter's labels are in the /stats name on both hosts (the Wasm config's
    // stats_tags take them out for Prometheus; the native module's labels are real ones).
    let requests = host.stat(&format!(
        "sluice_requests_total.sluice_api.chat.sluice_http_status_class.2xx.gen_ai_request_model.{LLAMA}"
    ));
    // Counted when the request ends, on the filter's next tick.
    assert_eq!(gateway.envoy.stat_at_least(&requests, 1).await, 1);
}
