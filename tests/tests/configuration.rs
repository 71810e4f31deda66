//! The filter's configuration is validated when Envoy loads it.

use std::time::Duration;

use serde_json::json;
use sluice_e2e::both_hosts;
use sluice_e2e::envoy::{Envoy, EnvoyOptions};
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;

/// A bad configuration is refused at load, with the offending field in Envoy's log; it never
/// serves traffic.
#[both_hosts]
async fn envoy_refuses_an_invalid_filter_configuration(host: Host) {
    let dir = tempfile::tempdir().unwrap();
    let options = EnvoyOptions {
        clusters: Vec::new(),
        filter_configuration: Some(r#"{"routing": {"modle_header": "x-model"}}"#.into()),
        ..EnvoyOptions::default()
    };
    let mut envoy = Envoy::spawn(host, dir.path(), &options);
    let status = envoy.wait_exit(Duration::from_secs(30)).await;
    let log = envoy.log();
    assert!(
        matches!(status, Some(s) if !s.success()),
        "{status:?}\n{log}"
    );
    assert!(
        log.contains("invalid plugin configuration: routing.modle_header: unknown field"),
        "{log}"
    );
}

/// A valid non-default configuration is applied: the custom model header is the one removed
/// (the old default name is then an ordinary header).
#[both_hosts]
async fn custom_model_header_is_applied(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&format!(
            r#"{{"routing": {{"model_header": "X-Route-Model"}}, "models": {{"{LLAMA}": {{}}}}}}"#
        )),
    )
    .await;
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .header("x-route-model", "spoofed")
        .header("x-sluice-model", "not-internal-here")
        .json(&json!({
            "model": LLAMA,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        gateway
            .envoy
            .stat_at_least(&host.stat("sluice_internal_headers_removed_total"), 1)
            .await,
        1
    );
    assert!(
        gateway.envoy.process.log().contains(
            "configured; model header x-route-model, base model header x-sluice-base-model"
        )
    );
}
