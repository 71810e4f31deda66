//! Sluice's upstream role (issue 16) in a real Envoy, both hosts: the shipped config (its chain
//! route, attempt counts, failover record and upstream filter: native filter name
//! `sluice.upstream`; Wasm root id `sluice.upstream`, sharing the gateway's VM) with a model
//! served by a chain of two targets, the composite cluster of their clusters.
//!
//! - A chain whose first target's cluster refuses connections and whose second is the Llama
//!   pool: each attempt is rewritten for its target, recorded in `sluice.failover` and counted
//!   per target and outcome, and the targets' health is shared between the two filters: once
//!   the first target is ejected, the downstream filter sends the model to its standby chain.
//! - The shipped chain that starts at the Anthropic-shaped provider stand-in: an OpenAI client
//!   gets that target's answers translated (JSON and stream), and when it answers 429 with
//!   `retry-after`, the OpenAI-shaped one's; the next request takes the standby chain.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;
use sluice_e2e::simulator::Simulator;

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
        // The refused attempt gets no callback but its end, where Envoy 1.40 refuses filter
        // state to a dynamic module (docs/envoy-notes.md): its entry, written when it was
        // sent, says `no_response` on both hosts.
        assert_eq!(attempts[0]["target"], "primary", "{record}");
        assert_eq!(attempts[0]["outcome"], "no_response", "{record}");
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

/// The shipped providers' stand-ins (`sluice-simulator --provider`), with the shipped keys.
struct Providers {
    openai: Simulator,
    anthropic: Simulator,
}

impl Providers {
    async fn start(dir: &Path) -> Self {
        let args = |api: &str, model: &str, key: &str| {
            ["--provider", api, "--model", model, "--api-key", key].map(String::from)
        };
        let openai_args = args("openai", "gpt-4.1", "sk-standin-openai");
        let anthropic_args = args("anthropic", "claude-sonnet-4-5", "sk-standin-anthropic");
        let (openai, anthropic) = tokio::join!(
            Simulator::start(dir, "openai", &openai_args),
            Simulator::start(dir, "anthropic", &anthropic_args),
        );
        Self { openai, anthropic }
    }
}

/// The shipped gateway with its provider clusters on `providers`, and `gpt-4.1` on the shipped
/// chain that starts at the Anthropic-shaped target (an OpenAI client's requests are translated
/// there and back, and fail over to the OpenAI-shaped one), the other chain as its standby.
async fn anthropic_first(host: Host, providers: &Providers) -> Gateway {
    let config = json!({
        "routing": {
            "model_header": "x-sluice-model",
            "base_model_header": "x-sluice-base-model",
            "unhandled_paths": "reject"
        },
        "models": {
            "gpt-4.1": {"chains": [
                {"cluster": "gpt41_anthropic_first", "targets": ["anthropic", "openai"]},
                {"cluster": "gpt41_openai_first", "targets": ["openai", "anthropic"], "weight": 0}
            ]}
        },
        "targets": {
            "openai": {"provider": "openai", "model": "gpt-4.1", "api_key": "sk-standin-openai"},
            "anthropic": {
                "provider": "anthropic", "model": "claude-sonnet-4-5",
                "api_key": "sk-standin-anthropic"
            }
        }
    });
    let port = |s: &Simulator| format!("port_value: {} }}", s.addr.port());
    let options = GatewayOptions::default()
        .with_replicas("llama_8b", 1)
        .with_filter_configuration(&serde_json::to_string_pretty(&config).unwrap())
        .with_envoy_replacement("port_value: 8101 }", &port(&providers.openai))
        .with_envoy_replacement("port_value: 8102 }", &port(&providers.anthropic));
    Gateway::start(host, options).await
}

#[both_hosts]
async fn an_openai_client_is_answered_through_an_anthropic_target_and_fails_over_on_its_429(
    host: Host,
) {
    let dir = tempfile::tempdir().unwrap();
    let providers = Providers::start(dir.path()).await;
    let gateway = anthropic_first(host, &providers).await;
    let chat = |stream: bool| {
        json!({
            "model": "gpt-4.1",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "stream": stream,
            "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        })
    };
    // JSON: the Anthropic target's answer, in the OpenAI client's shape.
    let response = gateway
        .post_json("/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    assert_eq!(answer["model"], "claude-sonnet-4-5", "{answer}");
    assert!(
        answer["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{answer}"
    );
    // A stream: OpenAI chunks, the usage chunk, then [DONE].
    let response = gateway.post_json("/v1/chat/completions", &chat(true)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#""object":"chat.completion.chunk""#),
        "{text}"
    );
    assert!(text.contains(r#""completion_tokens":"#), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The Anthropic target rate-limits: the request fails over to the OpenAI target, and the
    // next one takes the standby chain at once (the Anthropic target is out of rotation for
    // the retry-after, in the table both filters share).
    providers
        .anthropic
        .set_fault(json!({"status": 429, "retry_after_s": 30}))
        .await;
    let response = gateway
        .post_json("/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "gpt-4.1", "{answer}");
    let records = failover_records(&gateway, 3).await;
    let attempts = &records[2]["attempts"];
    assert_eq!(attempts[0]["target"], "anthropic", "{records:?}");
    assert_eq!(attempts[0]["outcome"], "rate_limited", "{records:?}");
    assert_eq!(attempts[0]["took_out"], "out_of_rotation", "{records:?}");
    assert_eq!(attempts[1]["target"], "openai", "{records:?}");
    assert_eq!(attempts[1]["outcome"], "ok", "{records:?}");
    let asked = providers.anthropic.stats().await["received"].clone();
    let response = gateway
        .post_json("/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(response.status(), 200);
    let records = failover_records(&gateway, 4).await;
    assert_eq!(records[3]["chain"], "gpt41_openai_first", "{records:?}");
    assert_eq!(records[3]["choice"], "rerouted", "{records:?}");
    assert_eq!(providers.anthropic.stats().await["received"], asked);
}
