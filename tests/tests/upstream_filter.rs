//! Sluice's upstream role (issue 16) in a real Envoy, both hosts: the shipped config (its chain
//! route, attempt counts, failover record and upstream filter: native filter name
//! `sluice.upstream`; Wasm root id `sluice.upstream`, sharing the gateway's VM) with a model
//! served by a chain of two targets, the composite cluster of their clusters.
//!
//! The first target's cluster refuses connections; the second is the Llama pool. Each attempt
//! is rewritten for its target, recorded in `sluice.failover` and counted per target and
//! outcome, and the targets' health is shared between the two filters: once the first target
//! is ejected, the downstream filter sends the model to its standby chain instead.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;

/// The gateway's configuration: the Llama model on the chain `gpt_chain` (the provider target
/// `primary`, then the pool target `secondary`), with the chain of `secondary` alone (the Llama
/// pool's own cluster, which has no upstream filter) as its standby.
fn configuration() -> String {
    json!({
        "routing": {
            "model_header": "x-sluice-model",
            "base_model_header": "x-sluice-base-model",
            "unhandled_paths": "reject"
        },
        "models": {
            LLAMA: {"chains": [
                {"cluster": "gpt_chain", "targets": ["primary", "secondary"]},
                {"cluster": "llama_8b", "targets": ["secondary"], "weight": 0}
            ]}
        },
        "targets": {
            "primary": {"provider": "openai", "model": "gpt-4o", "api_key": "sk-primary"},
            "secondary": {"pool": "llama_8b"}
        },
        "failover": {"eject_after_failures": 2, "ejection_ms": 60000}
    })
    .to_string()
}

/// The chain's composite cluster, with the shipped upstream filter (`*provider_http`: the
/// gateway's module and configuration in the upstream role), and the first target's cluster.
/// They go after the shipped provider clusters, which define that anchor.
const CLUSTERS: &str = r#"  - name: gpt_chain
    connect_timeout: 1s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.composite
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.composite.v3.ClusterConfig
        clusters: [{ name: primary }, { name: llama_8b }]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions: *provider_http
  - name: primary
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: primary
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } }
          metadata: { filter_metadata: { sluice: { target: primary } } }
"#;

async fn gateway(host: Host) -> Gateway {
    // The line that follows the provider clusters in both shipped configs.
    let picker = match host {
        Host::Native => "  # The picker service the filter fetches its snapshot from.\n",
        Host::Wasm => {
            "  # The picker service the filter fetches its snapshot from (dispatch_http_call).\n"
        }
    };
    let options = GatewayOptions::default()
        .with_replicas("llama_8b", 1)
        .with_filter_configuration(&configuration())
        .with_envoy_replacement(picker, &format!("{CLUSTERS}{picker}"));
    Gateway::start(host, options).await
}

/// The `failover=` records of the access log, once there are `count`.
async fn failover_records(gateway: &Gateway, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = gateway.envoy.process.log();
        let records: Vec<Value> = log
            .lines()
            .filter_map(|line| {
                let record = line.split_once(" failover=")?.1.split_once(" flags=")?.0;
                serde_json::from_str(record).ok()
            })
            .collect();
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{} failover records, not {count}:\n{log}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin `/stats` name of the attempts counter for `target` and `outcome`. The native
/// upstream filter's metrics live in the chain cluster's stats scope.
fn attempts_stat(host: Host, target: &str, outcome: &str) -> String {
    match host {
        Host::Native => format!(
            "cluster.gpt_chain.dynamicmodulescustom.sluice_target_attempts_total.target.{target}.outcome.{outcome}"
        ),
        Host::Wasm => {
            format!("wasmcustom.sluice_target_attempts_total.outcome.{outcome}.target.{target}")
        }
    }
}

async fn ask(gateway: &Gateway) -> reqwest::Response {
    client()
        .post(gateway.url("/v1/chat/completions"))
        .header("authorization", "Bearer a-client-key")
        .json(&json!({
            "model": LLAMA,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3,
        }))
        .send()
        .await
        .unwrap()
}

#[both_hosts]
async fn a_refused_target_fails_over_and_is_ejected_for_both_filters(host: Host) {
    let gateway = gateway(host).await;
    // Two requests: each tries `primary` (refused), then `secondary` answers.
    for _ in 0..2 {
        let response = ask(&gateway).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        assert!(
            response.headers().get("x-sluice-target").is_none(),
            "the downstream filter removes the upstream filter's header"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["model"], LLAMA, "{answer}");
    }
    let records = failover_records(&gateway, 2).await;
    for record in &records[..2] {
        assert_eq!(record["chain"], "gpt_chain", "{record}");
        let attempts = record["attempts"].as_array().unwrap();
        let last = attempts.last().unwrap();
        assert_eq!(last["target"], "secondary", "{record}");
        assert_eq!(last["outcome"], "ok", "{record}");
        // The refused attempt gets no callback but its end; the Wasm host still writes filter
        // state there, Envoy 1.40 refuses it to a dynamic module (docs/envoy-notes.md).
        if host == Host::Wasm {
            assert_eq!(attempts[0]["target"], "primary", "{record}");
            assert_eq!(attempts[0]["outcome"], "no_response", "{record}");
        }
    }
    // Both attempts of both requests were counted per target and outcome.
    let envoy = &gateway.envoy;
    let refused = attempts_stat(host, "primary", "no_response");
    assert_eq!(envoy.stat_at_least(&refused, 2).await, 2);
    let answered = attempts_stat(host, "secondary", "ok");
    assert_eq!(envoy.stat_at_least(&answered, 2).await, 2);
    // Two failures in a row ejected `primary` (the upstream filter's record), so the downstream
    // filter sends the model to its standby chain, which starts at `secondary`.
    if host == Host::Wasm {
        assert_eq!(
            records[1]["attempts"][0]["took_out"], "ejected",
            "{records:?}"
        );
    }
    let response = ask(&gateway).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let records = failover_records(&gateway, 3).await;
    assert_eq!(records[2]["chain"], "llama_8b", "{records:?}");
    assert_eq!(records[2]["choice"], "rerouted", "{records:?}");
    assert_eq!(envoy.stat_now(&refused).await, 2, "primary was not tried");
}
