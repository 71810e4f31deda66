//! Every decision visible per request (issue 17), through a real Envoy on both hosts: the
//! shipped configs' JSON access log, OpenTelemetry access logger and tracer, with a small
//! OTLP/gRPC receiver (`sluice_e2e::otlp`) in place of a collector.
//!
//! One gateway per host serves a request of each kind: a streamed chat from a known tenant and
//! project whose prompt a guardrail redacts, a chat that fails over from one provider to the
//! other, a request held by flow control, and a request with an unknown key. Each must leave
//! its decisions, with the right values, in the JSON log line, the OTLP log record and the
//! span (and its cost on `sluice_cost_nano_usd_total`); no prompt text, no client key and no
//! provider key may appear in anything the receiver got or in the JSON log. A collector that accepts connections and never answers
//! must not fail requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, PoolOptions, QWEN, client};
use sluice_e2e::host::Host;
use sluice_e2e::otlp::{self, OtlpReceiver};
use sluice_e2e::prometheus;

const GPT: &str = "gpt-4.1";
const CLAUDE: &str = "claude-sonnet-4-5";
const OPENAI_KEY: &str = "sk-standin-openai";
const ANTHROPIC_KEY: &str = "sk-standin-anthropic";
/// The client's key: tenant `acme`, project `search`.
const CLIENT_KEY: &str = "sk-observability-acme-7f3e2a91";
/// Its SHA-256 (`printf %s KEY | sha256sum`), which is all the configuration holds.
const CLIENT_KEY_SHA256: &str = "e0a734ccdf3ed41d3c9a02443a8bbb0ea08f2a4f9fa173cbe9af88c34a7493ba";
/// A key no one was given.
const UNKNOWN_KEY: &str = "sk-observability-nobody-0b1c";
/// Text that is in prompts only: it must not reach any log or span.
const PROMPT_MARK: &str = "Lighthouse keepers of Skerryvore";
/// A value the guardrails redact (the default rule set's e-mail rule).
const EMAIL: &str = "keeper@skerryvore.example";
/// How long the receiver may take to get what Envoy batches (the logger flushes every second,
/// the tracer every five): a deadline for waiting, not a claim about speed.
const OTLP_WAIT: Duration = Duration::from_secs(30);

/// One Llama replica (flow control: one seat), one Qwen replica, and a stand-in of each
/// provider behind the shipped chains' clusters; the picker (flow control needs its
/// snapshot); Envoy's OpenTelemetry output to `collector`.
fn options(collector: std::net::SocketAddr) -> GatewayOptions {
    let mut options = GatewayOptions::default()
        .with_replicas("llama_8b", 1)
        .with_simulator_args(&["--decode-ms-per-step", "20"])
        .with_picker()
        .with_otel_collector(collector)
        // Every request traced (the shipped configs trace one in ten).
        .with_envoy_replacement(
            "random_sampling: { value: 10 }",
            "random_sampling: { value: 100 }",
        );
    for (cluster, provider, model, key) in [
        ("openai_api", "openai", GPT, OPENAI_KEY),
        ("anthropic_api", "anthropic", CLAUDE, ANTHROPIC_KEY),
    ] {
        options.pools.push(PoolOptions {
            cluster,
            model,
            replicas: 1,
            args: ["--provider", provider, "--api-key", key, "--model", model]
                .map(String::from)
                .to_vec(),
        });
    }
    let config = json!({
        "routing": {
            "model_header": "x-sluice-model",
            "base_model_header": "x-sluice-base-model",
            "unhandled_paths": "reject"
        },
        "models": {
            LLAMA: {"pool": "llama_8b", "context_window": 131072},
            QWEN: {"pool": "qwen_7b"},
            GPT: {"chains": [
                {"cluster": "gpt41_openai_first", "targets": ["openai", "anthropic"]}
            ]}
        },
        "targets": {
            "openai": {"provider": "openai", "model": GPT, "api_key": OPENAI_KEY},
            "anthropic": {"provider": "anthropic", "model": CLAUDE, "api_key": ANTHROPIC_KEY}
        },
        "quotas": {
            "keys": [{"sha256": CLIENT_KEY_SHA256, "tenant": "acme", "project": "search"}],
            "tenants": {"acme": {"limits": {"requests_per_minute": 1000}}},
            "prices": {
                LLAMA: {"input": 2, "output": 4},
                GPT: {"input": 2, "output": 8},
                CLAUDE: {"input": 3, "output": 15}
            }
        },
        "guardrails": {},
        "picking": {"refresh_ms": 50},
        "flow_control": {"endpoint_capacity": 1}
    });
    options.with_filter_configuration(&config.to_string())
}

fn chat(model: &str, content: &str, max_tokens: u64, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn post(gateway: &Gateway, key: &str, body: &Value, id: &str) -> (u16, String) {
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", request_id(id))
        .json(body)
        .send()
        .await
        .expect("POST through Envoy");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Sends short requests until the filter has picked a replica for one (it has the picker's
/// snapshot, which flow control needs), and the replica is idle again.
async fn warm_up(gateway: &Gateway) {
    let picks = gateway.host().stat("sluice_picks_total");
    let deadline = Instant::now() + Duration::from_secs(15);
    while gateway.envoy.stat_now(&picks).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the filter never picked a replica"
        );
        let (status, body) = post(
            gateway,
            CLIENT_KEY,
            &chat(LLAMA, "warm up", 1, false),
            "warm-up",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last group of the request id of the request a test calls `name`.
fn id_tail(name: &str) -> String {
    let mut hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    hex.truncate(12);
    format!("{hex:0>12}")
}

/// A request id for the request a test calls `name`: a version 4 UUID, which Envoy's tracing
/// needs (it marks its sampling decision in the version digit, so only the tail is compared).
fn request_id(name: &str) -> String {
    format!("00000000-0000-4000-8000-{}", id_tail(name))
}

/// Whether `value` is the request id of the request a test calls `name`.
fn is_request(value: Option<String>, name: &str) -> bool {
    value.is_some_and(|v| v.ends_with(&format!("-{}", id_tail(name))))
}

/// The JSON access log line of the request `id`, once Envoy wrote it.
async fn json_line(gateway: &Gateway, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = gateway
            .access_json()
            .into_iter()
            .find(|line| is_request(line["request_id"].as_str().map(str::to_owned), id))
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON access log line for {id}: {:#?}",
            gateway.access_json()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The OTLP log record of the request `id` (its `sluice.request_id` attribute).
async fn log_record(receiver: &OtlpReceiver, id: &str) -> HashMap<String, otlp::Value> {
    receiver
        .wait_for(&format!("log record of {id}"), OTLP_WAIT, |r| {
            r.logs()
                .into_iter()
                .find(|l| {
                    is_request(
                        l.attributes.get("sluice.request_id").map(otlp::Value::text),
                        id,
                    )
                })
                .map(|l| l.attributes)
        })
        .await
}

/// The span of the request `id` (Envoy's own `guid:x-request-id` tag).
async fn span(receiver: &OtlpReceiver, id: &str) -> HashMap<String, otlp::Value> {
    receiver
        .wait_for(&format!("span of {id}"), OTLP_WAIT, |r| {
            r.spans()
                .into_iter()
                .find(|s| {
                    is_request(
                        s.attributes.get("guid:x-request-id").map(otlp::Value::text),
                        id,
                    )
                })
                .map(|s| s.attributes)
        })
        .await
}

/// `expected` (attribute, value) pairs, each in the JSON line (under the member the shipped
/// config gives it), the log record and the span.
fn assert_everywhere(
    what: &str,
    line: &Value,
    record: &HashMap<String, otlp::Value>,
    span: &HashMap<String, otlp::Value>,
    expected: &[(&str, &str, &str)],
) {
    for (member, attribute, value) in expected {
        assert_eq!(
            line[member].as_str(),
            Some(*value),
            "{what}: JSON member {member}: {line:#}"
        );
        assert_eq!(
            record.get(*attribute).map(otlp::Value::text).as_deref(),
            Some(*value),
            "{what}: log record attribute {attribute}: {record:#?}"
        );
        assert_eq!(
            span.get(*attribute).map(otlp::Value::text).as_deref(),
            Some(*value),
            "{what}: span tag {attribute}: {span:#?}"
        );
    }
}

#[both_hosts]
async fn every_decision_reaches_the_json_log_the_otlp_logs_and_the_spans(host: Host) {
    let receiver = OtlpReceiver::start().await;
    let gateway = Gateway::start(host, options(receiver.addr)).await;
    warm_up(&gateway).await;

    // 1. A stream from tenant acme, project search, whose e-mail the guardrails redact.
    let prompt = format!("{PROMPT_MARK}: write to {EMAIL} about the lamp.");
    let (status, body) = post(
        &gateway,
        CLIENT_KEY,
        &chat(LLAMA, &prompt, 8, true),
        "obs-stream",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let line = json_line(&gateway, "obs-stream").await;
    let record = log_record(&receiver, "obs-stream").await;
    let tags = span(&receiver, "obs-stream").await;
    assert_everywhere(
        "stream",
        &line,
        &record,
        &tags,
        &[
            ("tenant", "sluice.tenant", "acme"),
            ("project", "sluice.project", "search"),
            ("quota", "sluice.quota", "admitted"),
            ("operation", "gen_ai.operation.name", "chat"),
            ("provider", "gen_ai.provider.name", "openai"),
            ("request_model", "gen_ai.request.model", LLAMA),
            ("response_model", "gen_ai.response.model", LLAMA),
            ("target", "sluice.target", "llama_8b"),
            (
                "guardrail_actions",
                "sluice.guardrail_actions",
                "email:redact",
            ),
            ("output_tokens", "gen_ai.usage.output_tokens", "8"),
        ],
    );
    // Flow control seated it (the warm-up may have held the seat a moment).
    assert!(
        line["queue_wait_ms"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok(),
        "{line}"
    );
    let input: u64 = line["input_tokens"].as_str().unwrap().parse().unwrap();
    assert!(input > 0, "{line}");
    assert!(
        line["ttft_ms"].as_str().unwrap().parse::<u64>().is_ok(),
        "{line}"
    );
    let cost: f64 = line["cost_usd"].as_str().unwrap().parse().unwrap();
    let expected = (input as f64 * 2.0 + 8.0 * 4.0) / 1e6;
    assert!(
        (cost - expected).abs() < 1e-12,
        "cost {cost}, expected {expected}: {line}"
    );
    assert_eq!(line["status"], 200, "{line}");

    assert_eq!(line["attempts"], 1, "{line}");
    assert!(
        line["replica"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );

    // 2. A chat that fails over: the OpenAI-shaped provider answers 500, the Anthropic-shaped
    // one answers, translated back.
    gateway.pool("openai_api")[0]
        .set_fault(json!({"status": 500}))
        .await;
    let (status, body) = post(
        &gateway,
        CLIENT_KEY,
        &chat(GPT, PROMPT_MARK, 5, false),
        "obs-failover",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    gateway.pool("openai_api")[0].clear_fault().await;
    let line = json_line(&gateway, "obs-failover").await;
    let record = log_record(&receiver, "obs-failover").await;
    let tags = span(&receiver, "obs-failover").await;
    assert_everywhere(
        "failover",
        &line,
        &record,
        &tags,
        &[
            ("tenant", "sluice.tenant", "acme"),
            ("request_model", "gen_ai.request.model", GPT),
            ("response_model", "gen_ai.response.model", CLAUDE),
            ("target", "sluice.target", "anthropic"),
            ("fallback", "sluice.fallback", "openai:server_error"),
            ("output_tokens", "gen_ai.usage.output_tokens", "5"),
        ],
    );
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(
        line["queue_wait_ms"],
        Value::Null,
        "a provider has no queue: {line}"
    );
    // At the price of the target that answered: 3 and 15 USD per million tokens.
    let input: f64 = line["input_tokens"].as_str().unwrap().parse().unwrap();
    let cost: f64 = line["cost_usd"].as_str().unwrap().parse().unwrap();
    let expected = (input * 3.0 + 5.0 * 15.0) / 1e6;
    assert!(
        (cost - expected).abs() < 1e-12,
        "cost {cost}, expected {expected}: {line}"
    );
    // The same cost on the dashboard's metric, under the model the request was routed to.
    prometheus::wait_for(
        &gateway,
        "sluice_cost_nano_usd_total",
        &[&format!("gen_ai_request_model=\"{GPT}\"")],
        (cost * 1e9).round(),
    )
    .await;

    // 3. A request held by flow control: the replica's one seat is taken by a long generation.
    let long = tokio::spawn({
        let url = gateway.url("/v1/chat/completions");
        let body = chat(LLAMA, PROMPT_MARK, 60, false);
        async move {
            client()
                .post(url)
                .bearer_auth(CLIENT_KEY)
                .json(&body)
                .send()
                .await
                .expect("POST through Envoy")
                .status()
        }
    });
    let replica = &gateway.pool("llama_8b")[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica.metric("vllm:num_requests_running").await < 1.0 {
        assert!(Instant::now() < deadline, "the long request never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = post(
        &gateway,
        CLIENT_KEY,
        &chat(LLAMA, PROMPT_MARK, 2, false),
        "obs-held",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(long.await.unwrap(), 200);
    let line = json_line(&gateway, "obs-held").await;
    let record = log_record(&receiver, "obs-held").await;
    let tags = span(&receiver, "obs-held").await;
    let waited: u64 = line["queue_wait_ms"].as_str().unwrap().parse().unwrap();
    assert!(waited > 0, "held behind the long generation: {line}");
    let waited = waited.to_string();
    assert_everywhere(
        "held",
        &line,
        &record,
        &tags,
        &[
            ("queue_wait_ms", "sluice.queue_wait_ms", &waited),
            ("quota", "sluice.quota", "admitted"),
        ],
    );

    // 4. A key no one was given: refused before anything else.
    let (status, _) = post(
        &gateway,
        UNKNOWN_KEY,
        &chat(LLAMA, PROMPT_MARK, 2, false),
        "obs-nokey",
    )
    .await;
    assert_eq!(status, 401);
    let line = json_line(&gateway, "obs-nokey").await;
    let record = log_record(&receiver, "obs-nokey").await;
    let tags = span(&receiver, "obs-nokey").await;
    assert_everywhere(
        "unknown key",
        &line,
        &record,
        &tags,
        &[
            ("quota", "sluice.quota", "unauthenticated"),
            ("api", "sluice.api", "chat"),
        ],
    );
    assert_eq!(line["tenant"], Value::Null, "{line}");
    assert_eq!(line["status"], 401, "{line}");
    // Absent fields: null in the JSON log, "-" in a log record, no tag on the span.
    assert_eq!(
        record
            .get("sluice.tenant")
            .map(otlp::Value::text)
            .as_deref(),
        Some("-")
    );
    assert!(!tags.contains_key("sluice.tenant"), "{tags:#?}");

    // Nothing secret anywhere: not the prompt, not the e-mail, not a key (the client's, the
    // unknown one, the providers').
    let json_log = std::fs::read_to_string(gateway.dir.path().join("envoy-access.json")).unwrap();
    let received = String::from_utf8_lossy(&receiver.raw()).into_owned();
    for secret in [
        PROMPT_MARK,
        EMAIL,
        CLIENT_KEY,
        UNKNOWN_KEY,
        OPENAI_KEY,
        ANTHROPIC_KEY,
        CLIENT_KEY_SHA256,
    ] {
        assert!(
            !json_log.contains(secret),
            "{secret} in the JSON access log"
        );
        assert!(
            !received.contains(secret),
            "{secret} in what the OTLP receiver got"
        );
    }
    // Every request left a log record and a span, and the resource says who sent them.
    let logs = receiver.logs();
    assert!(logs.iter().all(|l| {
        l.resource
            .get("service.name")
            .map(otlp::Value::text)
            .as_deref()
            == Some("sluice")
    }));
    let spans = receiver.spans();
    assert!(spans.iter().all(|s| {
        s.resource
            .get("service.name")
            .map(otlp::Value::text)
            .as_deref()
            == Some("sluice")
    }));
}

/// A collector that accepts connections and never answers (a hung or overloaded one): requests
/// are answered as without one, and the JSON log still has every one. (Every other test runs
/// with the collector's address closed: refused connections.)
#[both_hosts]
async fn a_collector_that_never_answers_fails_no_request(host: Host) {
    // Accepts and holds every connection, reading nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            connections.push(socket);
        }
    });
    let gateway = Gateway::start(host, GatewayOptions::default().with_otel_collector(addr)).await;
    for i in 0..20 {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(LLAMA, "hello", 2, i % 2 == 0))
            .await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    // Envoy did connect to it (the logger and tracer tried to send there).
    gateway
        .envoy
        .stat_at_least("cluster.otel_collector.upstream_cx_total", 1)
        .await;
    // And the JSON log every request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.access_json().len() < 20 {
        assert!(Instant::now() < deadline, "{:#?}", gateway.access_json());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    held.abort();
}
