//! Hosted providers and failover (issue 16) through a real Envoy, both hosts: the shipped
//! configs' provider clusters (`openai_api`, `anthropic_api`) and chains (composite clusters
//! `gpt41_openai_first`, `gpt41_anthropic_first`), with the simulator's provider stand-ins
//! behind them (`--provider openai|anthropic`, each checking its own key) and faults switched
//! on at run time.
//!
//! - The official `openai` and `anthropic` SDKs against a model served by a provider of the
//!   other API: text, tool calls, stop reasons, usage with cached tokens, JSON and streams.
//! - Failover: a primary that answers 429 with `retry-after` (then skipped until it ends), 500
//!   (not skipped), plays dead or is killed: the client gets the secondary's answer.
//! - A stream cut after its first byte is not retried.
//! - The shipped 90/10 split, sticky by user, over many users.
//! - Quotas across a failover: one request counted once, at the usage and price of the target
//!   that answered.
//! - Decisions visible in the access log's failover record and in per-target attempt counts.
//! - Client-sent chain headers steer nothing, and a provider only ever sees its own key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, PoolOptions, QWEN, client};
use sluice_e2e::host::Host;
use sluice_e2e::sdk;
use sluice_e2e::simulator::Simulator;
use sluice_e2e::sse;

/// The model the OpenAI stand-in serves, and the client-facing model of the shipped chains.
const GPT: &str = "gpt-4.1";
/// The model the Anthropic stand-in serves.
const CLAUDE: &str = "claude-sonnet-4-5";
/// The provider keys of the shipped configs' targets: each stand-in accepts only its own.
const OPENAI_KEY: &str = "sk-standin-openai";
const ANTHROPIC_KEY: &str = "sk-standin-anthropic";
/// A key a client of the gateway holds: no provider accepts it.
const CLIENT_KEY: &str = "sk-client-key-not-for-providers";

/// The shipped chains: attempt n goes to the n-th provider listed.
const OPENAI_FIRST: &str = "gpt41_openai_first";
const ANTHROPIC_FIRST: &str = "gpt41_anthropic_first";
const CHAINS: [&str; 2] = [OPENAI_FIRST, ANTHROPIC_FIRST];

// ---------------------------------------------------------------------------------------------
// The gateway

/// One stand-in of each provider (their endpoints replace the shipped ones, keeping the
/// endpoints' `sluice.target` metadata), one Llama replica and one Qwen replica.
fn options() -> GatewayOptions {
    let mut options = GatewayOptions::default().with_replicas("llama_8b", 1);
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
    options
}

/// The filter's configuration: the two pools, the shipped configs' provider targets, and
/// `models` (the chains under test) and `extra` (top-level sections) added.
fn configuration(models: Value, extra: Value) -> String {
    let mut config = json!({
        "routing": {
            "model_header": "x-sluice-model",
            "base_model_header": "x-sluice-base-model",
            "unhandled_paths": "reject"
        },
        "models": {
            LLAMA: {"pool": "llama_8b"},
            QWEN: {"pool": "qwen_7b"}
        },
        "targets": {
            "openai": {"provider": "openai", "model": GPT, "api_key": OPENAI_KEY},
            "anthropic": {"provider": "anthropic", "model": CLAUDE, "api_key": ANTHROPIC_KEY}
        }
    });
    merge(&mut config, json!({ "models": models }));
    merge(&mut config, extra);
    config.to_string()
}

/// Adds `extra`'s members to `into`, objects merged member by member.
fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(into), Value::Object(extra)) => {
            for (key, value) in extra {
                match into.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, extra) => *into = extra,
    }
}

/// `gpt-4.1` on the OpenAI-first chain, with the Anthropic-first chain as its standby (taken
/// only while the OpenAI target is out of rotation).
fn openai_first_with_standby() -> Value {
    json!({
        GPT: {"chains": [
            {"cluster": OPENAI_FIRST, "targets": ["openai", "anthropic"]},
            {"cluster": ANTHROPIC_FIRST, "targets": ["anthropic", "openai"], "weight": 0}
        ]}
    })
}

async fn start(host: Host, config: &str) -> Gateway {
    Gateway::start(host, options().with_filter_configuration(config)).await
}

fn openai(gateway: &Gateway) -> &Simulator {
    &gateway.pool("openai_api")[0]
}

fn anthropic(gateway: &Gateway) -> &Simulator {
    &gateway.pool("anthropic_api")[0]
}

/// API requests a stand-in (or replica) received.
async fn received(simulator: &Simulator) -> u64 {
    simulator.stats().await["received"].as_u64().unwrap_or(0)
}

/// How a stand-in answered, by status: `{"200": 2, "429": 1}`.
async fn answered(simulator: &Simulator) -> BTreeMap<String, u64> {
    let stats = simulator.stats().await;
    stats["answered"]
        .as_object()
        .map(|statuses| {
            statuses
                .iter()
                .map(|(status, n)| (status.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn statuses(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

// ---------------------------------------------------------------------------------------------
// Requests

fn chat_body(model: &str, user: Option<&str>, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": 5,
    });
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// A Chat Completions request for `model` with the client's own key.
async fn chat(gateway: &Gateway, model: &str) -> reqwest::Response {
    send_chat(gateway, &chat_body(model, None, false), &[]).await
}

async fn send_chat(gateway: &Gateway, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client()
        .post(gateway.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("POST through Envoy")
}

/// A JSON answer's `model` (the model that answered), after checking the status and that the
/// upstream filter's target header stayed inside the gateway.
async fn answering_model(response: reqwest::Response) -> String {
    let status = response.status();
    assert!(
        response.headers().get("x-sluice-target").is_none(),
        "the target header reached the client"
    );
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    body["model"].as_str().unwrap_or_default().to_owned()
}

async fn ask(gateway: &Gateway) -> String {
    answering_model(chat(gateway, GPT).await).await
}

fn messages_body(model: &str, user: Option<&str>) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "Say something short."}],
    });
    if let Some(user) = user {
        body["metadata"] = json!({"user_id": user});
    }
    body
}

/// An Anthropic Messages request with the client's own key.
async fn send_messages(gateway: &Gateway, body: &Value) -> reqwest::Response {
    client()
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("POST through Envoy")
}

// ---------------------------------------------------------------------------------------------
// What the gateway shows

/// The `failover=` records of the access log in order, once there are at least `count`.
async fn failover_records(gateway: &Gateway, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
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

/// `(target, outcome)` of each attempt in a failover record.
fn attempts(record: &Value) -> Vec<(String, String)> {
    record["attempts"]
        .as_array()
        .map(|attempts| {
            attempts
                .iter()
                .map(|a| {
                    (
                        a["target"].as_str().unwrap_or_default().to_owned(),
                        a["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(t, o)| ((*t).to_owned(), (*o).to_owned()))
        .collect()
}

/// The admin `/stats` names of the attempts counter for `target` and `outcome`. The native
/// upstream filter counts in the stats scope of the chain cluster it runs in (one name per
/// chain); the Wasm one in the VM's (one name, its labels taken out by `stats_tags` for
/// Prometheus).
fn attempt_stats(host: Host, target: &str, outcome: &str) -> Vec<String> {
    match host {
        Host::Native => CHAINS
            .iter()
            .map(|chain| {
                format!(
                    "cluster.{chain}.dynamicmodulescustom.sluice_target_attempts_total.target.{target}.outcome.{outcome}"
                )
            })
            .collect(),
        Host::Wasm => vec![format!(
            "wasmcustom.sluice_target_attempts_total.outcome.{outcome}.target.{target}"
        )],
    }
}

/// Attempts counted for `target` and `outcome`, all chains, once they reach `at_least` (the
/// filter hands its counts to Envoy on a tick).
async fn attempts_counted(gateway: &Gateway, target: &str, outcome: &str, at_least: u64) -> u64 {
    let names = attempt_stats(gateway.host(), target, outcome);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut total = 0;
        for name in &names {
            total += gateway.envoy.stat_now(name).await;
        }
        if total >= at_least {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "attempts {target}/{outcome}: {total}, expected at least {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The official SDKs against a translated target

#[both_hosts]
async fn the_openai_sdk_calls_a_model_an_anthropic_provider_serves(host: Host) {
    // The OpenAI client's gpt-4.1 is served by the Anthropic stand-in first.
    let config = configuration(
        json!({ GPT: {"chains": [{"cluster": ANTHROPIC_FIRST, "targets": ["anthropic", "openai"]}]} }),
        json!({}),
    );
    let gateway = start(host, &config).await;
    let stdout = sdk::run(&gateway, "translated_targets.py", &["openai", GPT, CLAUDE]).await;
    println!("{stdout}");
    for check in [
        "openai chat 0 ok",
        "openai chat 1 ok",
        "openai chat cached ok",
        "openai stream 0 ok",
        "openai stream 1 ok",
    ] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
    // Every call was answered by the first target, which took the provider's key (it refuses
    // any other with 401).
    assert_eq!(answered(anthropic(&gateway)).await, statuses(&[("200", 4)]));
    assert_eq!(received(openai(&gateway)).await, 0);
}

#[both_hosts]
async fn the_anthropic_sdk_calls_a_model_an_openai_provider_serves(host: Host) {
    // The Anthropic client's claude-sonnet-4-5 is served by the OpenAI stand-in first.
    let config = configuration(
        json!({ CLAUDE: {"chains": [{"cluster": OPENAI_FIRST, "targets": ["openai", "anthropic"]}]} }),
        json!({}),
    );
    let gateway = start(host, &config).await;
    let stdout = sdk::run(
        &gateway,
        "translated_targets.py",
        &["anthropic", CLAUDE, GPT],
    )
    .await;
    println!("{stdout}");
    for check in [
        "anthropic message 0 ok",
        "anthropic message 1 ok",
        "anthropic message cached ok",
        "anthropic stream 0 ok",
        "anthropic stream 1 ok",
    ] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
    assert_eq!(answered(openai(&gateway)).await, statuses(&[("200", 4)]));
    assert_eq!(received(anthropic(&gateway)).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Failover, and 6. the decisions it shows

#[both_hosts]
async fn a_rate_limited_primary_fails_over_and_is_skipped_until_its_retry_after_ends(host: Host) {
    const RETRY_AFTER: Duration = Duration::from_secs(5);
    let gateway = start(host, &configuration(openai_first_with_standby(), json!({}))).await;
    openai(&gateway)
        .set_fault(json!({"status": 429, "retry_after_s": RETRY_AFTER.as_secs(), "count": 1}))
        .await;
    // The target leaves rotation when its 429 arrives, after this.
    let sent = Instant::now();
    let first = chat(&gateway, GPT).await;
    assert!(
        first.headers().get("retry-after").is_none(),
        "the client got the secondary's answer, not the primary's 429"
    );
    assert_eq!(answering_model(first).await, CLAUDE);
    assert_eq!(answered(openai(&gateway)).await, statuses(&[("429", 1)]));

    // Requests chosen before the retry-after ends start on the standby chain: the primary is
    // not asked. (Sent at least a second before it ends, as this clock reads it: the gateway's
    // took the 429 later.)
    let mut during = 0;
    while during < 3 && Instant::now() + Duration::from_secs(1) < sent + RETRY_AFTER {
        assert_eq!(ask(&gateway).await, CLAUDE);
        during += 1;
    }
    assert!(during > 0, "no request was sent within the retry-after");
    assert_eq!(received(openai(&gateway)).await, 1, "the primary was asked");

    // Once it has passed, the primary serves again.
    let deadline = sent + RETRY_AFTER + Duration::from_secs(20);
    let mut after = 0;
    loop {
        after += 1;
        if ask(&gateway).await == GPT {
            break;
        }
        assert!(Instant::now() < deadline, "the primary never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        answered(openai(&gateway)).await,
        statuses(&[("200", 1), ("429", 1)])
    );

    // The access log: the failover and its reason, the standby's requests, the primary again.
    let records = failover_records(&gateway, 1 + during + after).await;
    let first = &records[0];
    assert_eq!(first["chain"], OPENAI_FIRST, "{first}");
    assert_eq!(first["choice"], "weighted", "{first}");
    assert_eq!(
        attempts(first),
        pairs(&[("openai", "rate_limited"), ("anthropic", "ok")]),
        "{first}"
    );
    assert_eq!(first["attempts"][0]["status"], 429, "{first}");
    assert_eq!(
        first["attempts"][0]["took_out"], "out_of_rotation",
        "{first}"
    );
    for record in &records[1..=during] {
        assert_eq!(record["chain"], ANTHROPIC_FIRST, "{record}");
        assert_eq!(record["choice"], "rerouted", "{record}");
        assert_eq!(attempts(record), pairs(&[("anthropic", "ok")]), "{record}");
    }
    let last = records.last().unwrap();
    assert_eq!(last["chain"], OPENAI_FIRST, "{last}");
    assert_eq!(last["choice"], "weighted", "{last}");
    assert_eq!(attempts(last), pairs(&[("openai", "ok")]), "{last}");

    // Counted per target and outcome.
    assert_eq!(attempts_counted(&gateway, "openai", "ok", 1).await, 1);
    assert_eq!(
        attempts_counted(&gateway, "openai", "rate_limited", 1).await,
        1
    );
    let anthropic_ok = u64::try_from(records.len() - 1).unwrap();
    assert_eq!(
        attempts_counted(&gateway, "anthropic", "ok", anthropic_ok).await,
        anthropic_ok
    );
}

#[both_hosts]
async fn a_primary_answering_500_fails_over_and_stays_in_rotation(host: Host) {
    let gateway = start(host, &configuration(openai_first_with_standby(), json!({}))).await;
    openai(&gateway)
        .set_fault(json!({"status": 500, "count": 1}))
        .await;
    assert_eq!(ask(&gateway).await, CLAUDE, "the secondary answered");
    // A 500 says nothing about when to come back: the next request starts at the primary.
    assert_eq!(ask(&gateway).await, GPT);
    assert_eq!(
        answered(openai(&gateway)).await,
        statuses(&[("200", 1), ("500", 1)])
    );
    assert_eq!(answered(anthropic(&gateway)).await, statuses(&[("200", 1)]));

    let records = failover_records(&gateway, 2).await;
    assert_eq!(
        attempts(&records[0]),
        pairs(&[("openai", "server_error"), ("anthropic", "ok")]),
        "{}",
        records[0]
    );
    assert_eq!(records[0]["attempts"][0]["status"], 500);
    assert!(
        records[0]["attempts"][0].get("took_out").is_none(),
        "{}",
        records[0]
    );
    assert_eq!(records[1]["chain"], OPENAI_FIRST);
    assert_eq!(attempts(&records[1]), pairs(&[("openai", "ok")]));
    assert_eq!(
        attempts_counted(&gateway, "openai", "server_error", 1).await,
        1
    );
    assert_eq!(attempts_counted(&gateway, "openai", "ok", 1).await, 1);
    assert_eq!(attempts_counted(&gateway, "anthropic", "ok", 1).await, 1);
}

#[both_hosts]
async fn a_primary_silent_past_the_per_try_timeout_fails_over(host: Host) {
    // A per-try timeout of 1 s (the shipped one is 60 s), and a primary whose first byte takes
    // 3 s: the try is given up before any byte, and the secondary answers.
    let options = options()
        .with_filter_configuration(&configuration(openai_first_with_standby(), json!({})))
        .with_envoy_replacement("per_try_timeout: 60s", "per_try_timeout: 1s");
    let gateway = Gateway::start(host, options).await;
    openai(&gateway)
        .set_fault(json!({"first_byte_delay_ms": 3000, "count": 1}))
        .await;
    assert_eq!(ask(&gateway).await, CLAUDE, "the secondary answered");
    let records = failover_records(&gateway, 1).await;
    assert_eq!(
        attempts(&records[0]),
        pairs(&[("openai", "no_response"), ("anthropic", "ok")]),
        "{}",
        records[0]
    );
    assert_eq!(
        attempts_counted(&gateway, "openai", "no_response", 1).await,
        1
    );
}

#[both_hosts]
async fn a_dead_primary_fails_over_is_ejected_and_serves_again_once_back(host: Host) {
    // Two failures in a row eject a target for 5 s.
    let config = configuration(
        openai_first_with_standby(),
        json!({"failover": {"eject_after_failures": 2, "ejection_ms": 5000}}),
    );
    let gateway = start(host, &config).await;
    openai(&gateway).set_fault(json!({"dead": true})).await;
    // Two requests fail over from the dead primary, which is then ejected: the third starts on
    // the standby chain.
    for _ in 0..3 {
        assert_eq!(ask(&gateway).await, CLAUDE);
    }
    assert_eq!(received(openai(&gateway)).await, 0);
    assert_eq!(answered(anthropic(&gateway)).await, statuses(&[("200", 3)]));
    assert_eq!(
        attempts_counted(&gateway, "openai", "no_response", 2).await,
        2
    );
    let records = failover_records(&gateway, 3).await;
    for record in &records[..2] {
        assert_eq!(record["chain"], OPENAI_FIRST, "{record}");
        // An attempt is logged `no_response` when it is sent, and its outcome replaces that
        // when one comes: on native, whose module cannot write filter state once an attempt
        // without response ends (Envoy 1.40, docs/envoy-notes.md), the attempt still shows.
        let expected = pairs(&[("openai", "no_response"), ("anthropic", "ok")]);
        assert_eq!(attempts(record), expected, "{record}");
    }
    if host == Host::Wasm {
        assert_eq!(records[1]["attempts"][0]["took_out"], "ejected");
    }
    assert_eq!(records[2]["chain"], ANTHROPIC_FIRST, "{}", records[2]);
    assert_eq!(records[2]["choice"], "rerouted", "{}", records[2]);

    // Back to life: once its ejection is over, the primary serves again.
    openai(&gateway).clear_fault().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(&gateway).await != GPT {
        assert!(Instant::now() < deadline, "the primary never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answered(openai(&gateway)).await, statuses(&[("200", 1)]));
}

#[both_hosts]
async fn a_killed_primary_fails_over(host: Host) {
    let config = configuration(openai_first_with_standby(), json!({}));
    let mut gateway = start(host, &config).await;
    assert_eq!(ask(&gateway).await, GPT);
    let (_, stand_ins) = gateway
        .pools
        .iter_mut()
        .find(|(cluster, _)| *cluster == "openai_api")
        .unwrap();
    stand_ins[0].process.kill();
    for _ in 0..3 {
        assert_eq!(ask(&gateway).await, CLAUDE);
    }
    // Streams too: the failover happens before any byte reached the client.
    let response = send_chat(&gateway, &chat_body(GPT, None, true), &[]).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events = sse::parse(&body);
    assert_eq!(
        events.last().map(|e| e.data.as_str()),
        Some("[DONE]"),
        "{body}"
    );
    let first: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(first["model"], CLAUDE, "{body}");
    assert_eq!(answered(anthropic(&gateway)).await, statuses(&[("200", 4)]));
    assert!(attempts_counted(&gateway, "openai", "no_response", 1).await >= 1);
}

// ---------------------------------------------------------------------------------------------
// 3. Never retried once the response started

/// Reads a streamed response to its end or its failure: the bytes that arrived, and whether
/// the body ended in an error.
async fn read_stream(response: reqwest::Response) -> (String, bool) {
    let mut body = Vec::new();
    let mut failed = false;
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    (String::from_utf8_lossy(&body).into_owned(), failed)
}

#[both_hosts]
async fn a_stream_cut_after_its_first_byte_is_not_retried(host: Host) {
    let config = configuration(
        json!({
            GPT: {"chains": [{"cluster": OPENAI_FIRST, "targets": ["openai", "anthropic"]}]},
            CLAUDE: {"chains": [{"cluster": ANTHROPIC_FIRST, "targets": ["anthropic", "openai"]}]}
        }),
        json!({}),
    );
    let gateway = start(host, &config).await;
    let cut = json!({"cut_after_tokens": 2, "count": 1});

    // The bytes: the primary's first events, then the body breaks off (no `[DONE]`, no usage).
    openai(&gateway).set_fault(cut.clone()).await;
    let mut body = chat_body(GPT, None, true);
    body["max_tokens"] = json!(50);
    let response = send_chat(&gateway, &body, &[]).await;
    assert_eq!(response.status(), 200);
    let (text, failed) = read_stream(response).await;
    let events = sse::parse(&text);
    assert!(!events.is_empty(), "the first events arrived: {text}");
    for event in &events {
        let chunk: Value =
            serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(chunk["model"], GPT, "{text}");
    }
    assert!(failed, "the body ended in an error: {text}");

    // The official SDKs: the events that came are parsed, then the stream raises. Same API,
    // and translated either way.
    for (sdk, model, answering, primary) in [
        ("openai", GPT, GPT, "openai_api"),
        ("anthropic", GPT, GPT, "openai_api"),
        ("openai", CLAUDE, CLAUDE, "anthropic_api"),
    ] {
        gateway.pool(primary)[0].set_fault(cut.clone()).await;
        let stdout = sdk::run(&gateway, "broken_streams.py", &[sdk, model, answering]).await;
        println!("{stdout}");
        assert!(
            stdout.contains(&format!("{sdk} stream broke off")),
            "{stdout}"
        );
    }

    // Each cut stream reached its primary once and was never retried on the secondary.
    let stats = openai(&gateway).stats().await;
    assert_eq!(
        (stats["received"].as_u64(), stats["cut"].as_u64()),
        (Some(3), Some(3)),
        "{stats}"
    );
    let stats = anthropic(&gateway).stats().await;
    assert_eq!(
        (stats["received"].as_u64(), stats["cut"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    let records = failover_records(&gateway, 4).await;
    for record in &records {
        assert_eq!(
            record["attempts"].as_array().map(Vec::len),
            Some(1),
            "{record}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The weighted split

#[both_hosts]
async fn the_shipped_split_sends_each_user_to_one_chain_in_proportion(host: Host) {
    const USERS: usize = 400;
    // The shipped configuration as it is: 90/10 over two chains, sticky by user.
    let gateway = Gateway::start(host, options()).await;
    let user = |i: usize| format!("user-{i:03}");
    let mut first_round = Vec::with_capacity(USERS);
    for batch in (0..USERS).collect::<Vec<_>>().chunks(16) {
        let answers = join_all(batch.iter().map(|&i| {
            let body = chat_body(GPT, Some(&user(i)), false);
            let gateway = &gateway;
            async move { answering_model(send_chat(gateway, &body, &[]).await).await }
        }))
        .await;
        first_round.extend(answers);
    }
    let on_openai_first = first_round.iter().filter(|m| *m == GPT).count();
    let on_anthropic_first = first_round.iter().filter(|m| *m == CLAUDE).count();
    assert_eq!(on_openai_first + on_anthropic_first, USERS);
    // Binomial(400, 0.9): mean 360, standard deviation sqrt(400 * 0.9 * 0.1) = 6; within
    // 4 standard deviations: 336 to 384 on the 90% chain.
    let (mean, sigma) = (USERS as f64 * 0.9, (USERS as f64 * 0.9 * 0.1).sqrt());
    let tolerance = 4.0 * sigma;
    println!(
        "{USERS} users: {on_openai_first} on {OPENAI_FIRST} (expected {mean} ± {tolerance}), {on_anthropic_first} on {ANTHROPIC_FIRST}"
    );
    assert!(
        (on_openai_first as f64 - mean).abs() <= tolerance,
        "{on_openai_first} of {USERS} on the 90% chain"
    );
    // The same user lands on the same chain every time, whichever API names them (OpenAI
    // `user`, Anthropic `metadata.user_id`).
    for batch in (0..USERS).collect::<Vec<_>>().chunks(16) {
        let answers = join_all(batch.iter().map(|&i| {
            let gateway = &gateway;
            async move {
                let response = if i % 2 == 0 {
                    send_chat(gateway, &chat_body(GPT, Some(&user(i)), false), &[]).await
                } else {
                    send_messages(gateway, &messages_body(GPT, Some(&user(i)))).await
                };
                (i, answering_model(response).await)
            }
        }))
        .await;
        for (i, model) in answers {
            assert_eq!(model, first_round[i], "{} moved", user(i));
        }
    }
    let expected = u64::try_from(2 * on_openai_first).unwrap();
    assert_eq!(
        answered(openai(&gateway)).await,
        statuses(&[("200", expected)])
    );
}

#[both_hosts]
async fn a_lora_canary_split_by_session_rewrites_a_share_to_the_adapter(host: Host) {
    // A weighted rewrite on the self-hosted pool (InferenceModelRewrite's job): 3 of 4 sessions
    // get the base model, 1 of 4 the `sql-lora` adapter, each session always the same.
    const SESSIONS: usize = 200;
    let models = json!({
        "llama-canary": {
            "chains": [
                {"cluster": "llama_8b", "targets": ["llama-stable"], "weight": 3},
                {"cluster": "llama_8b", "targets": ["llama-lora"], "weight": 1}
            ],
            "sticky": {"header": "x-session-id"}
        }
    });
    let extra = json!({"targets": {
        "llama-stable": {"pool": "llama_8b", "model": LLAMA},
        "llama-lora": {"pool": "llama_8b", "model": "sql-lora"}
    }});
    let gateway = start(host, &configuration(models, extra)).await;
    let session = |i: usize| format!("session-{i:03}");
    let ask = |i: usize| {
        let gateway = &gateway;
        async move {
            let body = chat_body("llama-canary", None, false);
            let id = session(i);
            answering_model(send_chat(gateway, &body, &[("x-session-id", id.as_str())]).await).await
        }
    };
    let mut first = Vec::with_capacity(SESSIONS);
    for batch in (0..SESSIONS).collect::<Vec<_>>().chunks(16) {
        first.extend(join_all(batch.iter().map(|&i| ask(i))).await);
    }
    let on_adapter = first.iter().filter(|m| *m == "sql-lora").count();
    let on_base = first.iter().filter(|m| *m == LLAMA).count();
    assert_eq!(on_adapter + on_base, SESSIONS, "{first:?}");
    // Binomial(200, 0.25): mean 50, standard deviation sqrt(200 * 0.25 * 0.75) = 6.1; within
    // 4 standard deviations: 25.5 to 74.5.
    let (mean, sigma) = (
        SESSIONS as f64 * 0.25,
        (SESSIONS as f64 * 0.25 * 0.75).sqrt(),
    );
    println!(
        "{SESSIONS} sessions: {on_adapter} on the adapter (expected {mean} ± {})",
        4.0 * sigma
    );
    assert!(
        (on_adapter as f64 - mean).abs() <= 4.0 * sigma,
        "{on_adapter} of {SESSIONS} sessions on the adapter"
    );
    for i in (0..SESSIONS).step_by(10) {
        assert_eq!(ask(i).await, first[i], "{} moved", session(i));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Quotas across a failover

/// Tenant keys: SHA-256 of `sk-acme` and of `sk-beta` (`printf %s KEY | sha256sum`).
const ACME_KEY: &str = "sk-acme";
const ACME_KEY_SHA256: &str = "5f8eee912cd7c0ccb238560e8a22e7f78909e6dac18288188f7f4ea35112700d";
const BETA_KEY: &str = "sk-beta";
const BETA_KEY_SHA256: &str = "c29d79ad08b23ba5095b823d0b2e777320983be14c1150de96d07a86da5cd78c";

async fn send_as(gateway: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gateway.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .json(body)
        .send()
        .await
        .expect("POST through Envoy")
}

fn header_number(response: &reqwest::Response, name: &str) -> u64 {
    let value = response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", response.headers()));
    value.to_str().unwrap().parse().unwrap()
}

/// The usage a JSON answer or a stream reports, as `(model, total_tokens)`.
async fn usage_of(response: reqwest::Response, stream: bool) -> (String, u64) {
    let text = response.text().await.unwrap();
    let usage_holder: Value = if stream {
        let events = sse::parse(&text);
        assert_eq!(
            events.last().map(|e| e.data.as_str()),
            Some("[DONE]"),
            "{text}"
        );
        let chunks: Vec<Value> = events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        let mut last = chunks.last().cloned().unwrap_or_default();
        last["model"] = chunks[0]["model"].clone();
        last
    } else {
        serde_json::from_str(&text).unwrap()
    };
    let total = usage_holder["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage: {text}"));
    (
        usage_holder["model"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        total,
    )
}

#[both_hosts]
async fn quotas_count_a_failed_over_request_once_at_the_answering_targets_usage_and_price(
    host: Host,
) {
    const REQUESTS: u64 = 4;
    const TOKENS: u64 = 100_000;
    // acme: 4 requests and 100,000 tokens a day. beta: $1 a day, where gpt-4.1 (what the
    // client asks for) costs $1 per million tokens and claude-sonnet-4-5 (what answers after a
    // failover) $1 per token.
    let quotas = json!({
        "quotas": {
            "keys": [
                {"sha256": ACME_KEY_SHA256, "tenant": "acme"},
                {"sha256": BETA_KEY_SHA256, "tenant": "beta"}
            ],
            "tenants": {
                "acme": {"limits": {"budgets": [{"period": "day", "requests": REQUESTS, "tokens": TOKENS}]}},
                "beta": {"limits": {"budgets": [{"period": "day", "usd": 1}]}}
            },
            "prices": {
                GPT: {"input": 1, "output": 1},
                CLAUDE: {"input": 1_000_000, "output": 1_000_000}
            }
        }
    });
    let gateway = start(host, &configuration(openai_first_with_standby(), quotas)).await;

    // Every request of acme fails over: the primary answers 500, the secondary answers.
    openai(&gateway)
        .set_fault(json!({"status": 500, "count": REQUESTS}))
        .await;
    let mut used = 0;
    for i in 1..=REQUESTS {
        let stream = i % 2 == 0;
        let response = send_as(&gateway, ACME_KEY, &chat_body(GPT, None, stream)).await;
        assert_eq!(response.status(), 200);
        // Counted once: the request's own admission, whatever its attempts.
        assert_eq!(
            header_number(&response, "x-ratelimit-remaining-requests"),
            REQUESTS - i
        );
        let (model, total) = usage_of(response, stream).await;
        assert_eq!(model, CLAUDE);
        used += total;
    }
    assert_eq!(
        answered(openai(&gateway)).await,
        statuses(&[("500", REQUESTS)])
    );
    assert_eq!(
        answered(anthropic(&gateway)).await,
        statuses(&[("200", REQUESTS)])
    );
    // The usage the clients got is what the secondary reported (its own token counters).
    let reported = anthropic(&gateway).metric("vllm:prompt_tokens_total").await
        + anthropic(&gateway)
            .metric("vllm:generation_tokens_total")
            .await;
    assert_eq!(used as f64, reported);
    // The next request is refused on the request budget; its headers show the token budget
    // as the four settled it: exactly their reported usage.
    let refused = send_as(&gateway, ACME_KEY, &chat_body(GPT, None, false)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header_number(&refused, "x-ratelimit-remaining-requests"), 0);
    assert_eq!(
        header_number(&refused, "x-ratelimit-remaining-tokens"),
        TOKENS - used
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    let requests = usize::try_from(REQUESTS).unwrap();
    // One record per request that went to a chain; the refused one went to none.
    let records = failover_records(&gateway, requests).await;
    assert_eq!(records.len(), requests, "{records:?}");
    for record in &records {
        assert_eq!(
            attempts(record),
            pairs(&[("openai", "server_error"), ("anthropic", "ok")]),
            "{record}"
        );
    }

    // beta: one request failed over is settled at the price of the target that answered:
    // its tokens at $1 each spend the $1 budget (at gpt-4.1's price they would cost $0.00002).
    openai(&gateway)
        .set_fault(json!({"status": 500, "count": 1}))
        .await;
    let response = send_as(&gateway, BETA_KEY, &chat_body(GPT, None, false)).await;
    assert_eq!(answering_model(response).await, CLAUDE);
    let refused = send_as(&gateway, BETA_KEY, &chat_body(GPT, None, false)).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
}

// ---------------------------------------------------------------------------------------------
// 7. Chain headers and keys

#[both_hosts]
async fn client_sent_chain_headers_steer_nothing(host: Host) {
    let gateway = start(host, &configuration(openai_first_with_standby(), json!({}))).await;
    let spoofed_chain = [
        ("x-sluice-cluster", ANTHROPIC_FIRST),
        ("x-sluice-plan", "api=chat;targets=anthropic"),
    ];
    // A model with chains goes to the chain the filter chooses.
    let response = send_chat(&gateway, &chat_body(GPT, None, false), &spoofed_chain).await;
    assert_eq!(answering_model(response).await, GPT);
    let provider_cluster = [("x-sluice-cluster", "anthropic_api")];
    let response = send_chat(&gateway, &chat_body(GPT, None, false), &provider_cluster).await;
    assert_eq!(answering_model(response).await, GPT);
    // A pool's model goes to its pool, never to a provider.
    let response = send_chat(&gateway, &chat_body(LLAMA, None, false), &spoofed_chain).await;
    assert_eq!(gateway.cluster_of(&response), "llama_8b");
    assert_eq!(answering_model(response).await, LLAMA);
    let spoofed_plan = [("x-sluice-plan", "api=messages;targets=anthropic")];
    let response = send_chat(&gateway, &chat_body(LLAMA, None, false), &spoofed_plan).await;
    assert_eq!(gateway.cluster_of(&response), "llama_8b");
    assert_eq!(answering_model(response).await, LLAMA);

    assert_eq!(answered(openai(&gateway)).await, statuses(&[("200", 2)]));
    assert_eq!(received(anthropic(&gateway)).await, 0);
    let records = failover_records(&gateway, 2).await;
    for record in &records {
        assert_eq!(record["chain"], OPENAI_FIRST, "{record}");
        assert_eq!(attempts(record), pairs(&[("openai", "ok")]), "{record}");
    }
    let removed = host.stat("sluice_internal_headers_removed_total");
    assert_eq!(gateway.envoy.stat_at_least(&removed, 6).await, 6);
}

/// A chain of the Llama pool, then the OpenAI provider: a composite cluster with the upstream
/// filter, as the shipped chains.
const HOUSE_THEN_OPENAI: &str = r#"  - name: house_then_openai
    connect_timeout: 2s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.composite
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.composite.v3.ClusterConfig
        clusters: [{ name: llama_8b }, { name: openai_api }]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions: *provider_http
  - name: sluice_picker
"#;

#[both_hosts]
async fn providers_only_ever_see_their_own_key(host: Host) {
    // `house-chat`: the Llama pool (which gets its own credential), then the OpenAI provider.
    // Callers authenticate with their gateway key.
    let config = configuration(
        json!({
            "house-chat": {"chains": [{"cluster": "house_then_openai", "targets": ["house", "openai"]}]},
            GPT: {"chains": [{"cluster": OPENAI_FIRST, "targets": ["openai", "anthropic"]}]},
            CLAUDE: {"chains": [{"cluster": ANTHROPIC_FIRST, "targets": ["anthropic", "openai"]}]}
        }),
        json!({
            "targets": {"house": {"pool": "llama_8b", "model": LLAMA}},
            "quotas": {
                "keys": [{"sha256": ACME_KEY_SHA256, "tenant": "acme"}],
                "tenants": {"acme": {}},
                "upstream_credentials": {"llama_8b": {"prefix": "Bearer ", "value": "pool-secret"}}
            }
        }),
    );
    let gateway = Gateway::start(
        host,
        options()
            .with_filter_configuration(&config)
            .with_envoy_replacement("  - name: sluice_picker\n", HOUSE_THEN_OPENAI),
    )
    .await;
    // Each stand-in answers 401 to any key but its own: a 200 shows it got its own, not the
    // caller's key in either header.
    let with_both_headers = |model: &str| {
        client()
            .post(gateway.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {ACME_KEY}"))
            .header("x-api-key", ACME_KEY)
            .json(&chat_body(model, None, false))
    };
    for (model, answering) in [(GPT, GPT), (CLAUDE, CLAUDE)] {
        let response = with_both_headers(model).send().await.unwrap();
        assert_eq!(answering_model(response).await, answering);
    }
    // The pool's attempt carries the pool's credential; the provider's attempt after it
    // carries the provider's key instead.
    let llama = &gateway.pool("llama_8b")[0];
    llama.set_fault(json!({"status": 500, "count": 1})).await;
    let response = with_both_headers("house-chat").send().await.unwrap();
    assert_eq!(answering_model(response).await, GPT);
    assert_eq!(answered(llama).await, statuses(&[("500", 1)]));
    // Without the fault the pool answers, under the model it serves.
    let response = with_both_headers("house-chat").send().await.unwrap();
    assert_eq!(answering_model(response).await, LLAMA);

    assert_eq!(answered(openai(&gateway)).await, statuses(&[("200", 2)]));
    assert_eq!(answered(anthropic(&gateway)).await, statuses(&[("200", 1)]));
    let records = failover_records(&gateway, 4).await;
    assert_eq!(
        attempts(&records[2]),
        pairs(&[("house", "server_error"), ("openai", "ok")]),
        "{}",
        records[2]
    );
    assert_eq!(
        attempts(&records[3]),
        pairs(&[("house", "ok")]),
        "{}",
        records[3]
    );
}
