//! Flow control through a real Envoy with two workers: requests past a pool's capacity are held
//! in Envoy (headers and body buffered, the client connected) and released in order as seats
//! free, a higher band first; a client that disconnects while held leaves the queue; expiry
//! and overflow are answered in each API's format; the replica never serves more than the
//! configured capacity, whichever worker holds the request; the access log's `flow=` record
//! (filter state `sluice.flow`, `wasm.sluice.flow` in the Wasm build) says what happened.
//!
//! Replicas decode one token every 20 ms, so a request's `max_tokens` sets how long it keeps
//! its seat. Capacity is judged from the picker's snapshot (`with_picker`) or, without a
//! picker, from `fallback_endpoints`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;

/// One token every 20 ms.
const DECODE_MS: &str = "20";

/// The filter configuration: the Llama pool, picking (snapshot every 50 ms, which is also the
/// flow-control tick) and `flow_control`.
fn configuration(flow_control: &str) -> String {
    format!(
        r#"{{ "models": {{ "{LLAMA}": {{ "pool": "llama_8b", "context_window": 131072 }} }},
              "picking": {{ "refresh_ms": 50 }},
              "flow_control": {flow_control} }}"#
    )
}

/// One Llama replica decoding a token every 20 ms; the picker when `picker`.
async fn gateway(host: Host, flow_control: &str, picker: bool) -> Gateway {
    let mut options = GatewayOptions::default()
        .with_replicas("llama_8b", 1)
        .with_simulator_args(&["--decode-ms-per-step", DECODE_MS])
        .with_filter_configuration(&configuration(flow_control));
    if picker {
        options = options.with_picker();
    }
    let gateway = Gateway::start(host, options).await;
    if picker {
        let sent = gateway.wait_for_picking().await;
        settle_warm_up(&gateway, sent).await;
        idle_in_the_snapshot(&gateway).await;
    }
    gateway
}

/// Waits until the warm-up's `sent` requests are in the access log and the flow counters show
/// every one of them the log says was held: a warm-up request can be held while the snapshot
/// still shows the one before it running, so a test counts its own holds from here.
async fn settle_warm_up(gateway: &Gateway, sent: u64) {
    let records = flow_records(gateway, usize::try_from(sent).unwrap()).await;
    let held = records
        .iter()
        .filter(|r| r["outcome"] == "released")
        .count() as u64;
    let host = gateway.host();
    gateway
        .envoy
        .stat_at_least(&host.stat("sluice_flow_held_total"), held)
        .await;
    gateway
        .envoy
        .stat_at_least(&host.stat("sluice_flow_released_total"), held)
        .await;
}

/// Waits until the picker's snapshot shows the replica idle again after the warm-up, and three
/// more snapshots have been published since (the filter fetches one every 50 ms): until then a
/// warm-up request the scrape still shows running counts as another Envoy's, and the pool
/// looks full.
async fn idle_in_the_snapshot(gateway: &Gateway) {
    let picker = gateway.picker.as_ref().expect("a picker");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle_since = None;
    loop {
        if let Some(snapshot) = picker.snapshot().await {
            let version = snapshot["version"].as_u64().unwrap_or(0);
            let busy = snapshot["pools"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|pool| pool["endpoints"].as_array().into_iter().flatten())
                .any(|e| e["running"].as_u64() != Some(0) || e["waiting"].as_u64() != Some(0));
            match idle_since {
                _ if busy => idle_since = None,
                None => idle_since = Some(version),
                Some(first) if version >= first + 3 => return,
                Some(_) => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "the snapshot never showed the replica idle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn chat(max_tokens: u64) -> Value {
    json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Tell me about lighthouses."}],
        "max_tokens": max_tokens,
    })
}

fn messages(max_tokens: u64) -> Value {
    json!({
        "model": LLAMA,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Tell me about lighthouses."}],
    })
}

/// A request sent on its own task (its own connection): `path`, `body`, `objective` as
/// `x-gateway-inference-objective`. Resolves to the status and the body.
fn send(
    gateway: &Gateway,
    path: &str,
    body: Value,
    objective: Option<&str>,
) -> tokio::task::JoinHandle<(u16, reqwest::header::HeaderMap, Value)> {
    let mut request = client().post(gateway.url(path)).json(&body);
    if path == "/v1/messages" {
        request = request.header("anthropic-version", "2023-06-01");
    }
    if let Some(objective) = objective {
        request = request.header("x-gateway-inference-objective", objective);
    }
    tokio::spawn(async move {
        let response = request.send().await.expect("POST through Envoy");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    })
}

/// Waits until the filter has held `n` requests in all.
async fn held(gateway: &Gateway, n: u64) {
    let name = gateway.host().stat("sluice_flow_held_total");
    gateway.envoy.stat_at_least(&name, n).await;
}

/// Waits until the replica runs `n` requests.
async fn running(gateway: &Gateway, n: f64) {
    let replica = &gateway.pool("llama_8b")[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica.metric("vllm:num_requests_running").await < n {
        assert!(Instant::now() < deadline, "the replica never ran {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `flow=` records of the access log (requests to the Llama pool's chat and messages
/// paths), in the order their streams ended, once there are `count`.
async fn flow_records(gateway: &Gateway, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = gateway.envoy.process.log();
        let records: Vec<Value> = log
            .lines()
            .filter_map(|line| {
                // The record is compact JSON: it ends at the next space (`failover=` follows).
                let record = line.split_once(" flow=")?.1.split(' ').next()?;
                serde_json::from_str(record).ok()
            })
            .collect();
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{} flow records, not {count}:\n{log}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn held_requests_are_released_in_order_and_a_higher_band_first(host: Host) {
    let gateway = gateway(
        host,
        r#"{ "endpoint_capacity": 1, "trust_objective_header": true,
             "bands": [ { "name": "interactive", "priority": 10 },
                        { "name": "batch", "priority": 0 } ],
             "objectives": { "chat": "interactive", "bulk": "batch" } }"#,
        true,
    )
    .await;
    let before = flow_records(&gateway, 0).await.len();
    // The warm-up's holds, settled by `gateway`: this test counts its own from here.
    let held_before = gateway
        .envoy
        .stat_now(&host.stat("sluice_flow_held_total"))
        .await;
    let released_before = gateway
        .envoy
        .stat_now(&host.stat("sluice_flow_released_total"))
        .await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let track = |name: &'static str, task: tokio::task::JoinHandle<(u16, _, Value)>| {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let (status, _, body) = task.await.unwrap();
            assert_eq!(status, 200, "{name}: {body}");
            done.lock().unwrap().push(name);
        })
    };
    // One seat: A takes it for about 2 s; B and C (batch) wait, then D (interactive).
    let path = "/v1/chat/completions";
    let a = track("A", send(&gateway, path, chat(100), None));
    running(&gateway, 1.0).await;
    let b = track("B", send(&gateway, path, chat(5), Some("bulk")));
    held(&gateway, held_before + 1).await;
    let c = track("C", send(&gateway, path, chat(5), None));
    held(&gateway, held_before + 2).await;
    let d = track("D", send(&gateway, path, chat(5), Some("chat")));
    held(&gateway, held_before + 3).await;
    assert!(
        done.lock().unwrap().is_empty(),
        "A still holds the seat: increase its max_tokens if this fails"
    );
    for task in [a, b, c, d] {
        task.await.unwrap();
    }
    assert_eq!(
        *done.lock().unwrap(),
        ["A", "D", "B", "C"],
        "one at a time, the interactive band first, then arrival order"
    );

    let records = flow_records(&gateway, before + 4).await;
    let records = &records[before..];
    assert_eq!(records[0]["outcome"], "admitted", "{records:?}");
    assert_eq!(
        records[0]["band"], "batch",
        "no objective: the default band"
    );
    let released: Vec<_> = records[1..]
        .iter()
        .map(|r| (r["band"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        released,
        [
            ("interactive", "released"),
            ("batch", "released"),
            ("batch", "released")
        ]
    );
    assert!(
        records[1..]
            .iter()
            .all(|r| r["held_ms"].as_u64().unwrap() > 0),
        "{records:?}"
    );
    let stat = |name: &str| host.stat(name);
    assert_eq!(
        gateway
            .envoy
            .stat_at_least(&stat("sluice_flow_released_total"), released_before + 3)
            .await,
        released_before + 3
    );
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_disconnects_while_held_leaves_the_queue(host: Host) {
    // No picker: one replica assumed (`fallback_endpoints`), one seat.
    let gateway = gateway(
        host,
        r#"{ "endpoint_capacity": 1, "fallback_endpoints": 1 }"#,
        false,
    )
    .await;
    let path = "/v1/chat/completions";
    let first = send(&gateway, path, chat(60), None);
    running(&gateway, 1.0).await;
    let gone = send(&gateway, path, chat(5), None);
    held(&gateway, 1).await;
    let last = send(&gateway, path, chat(5), None);
    held(&gateway, 2).await;
    // The client goes away: its connection closes while the request is held.
    gone.abort();
    let abandoned = host.stat("sluice_flow_abandoned_total");
    assert_eq!(gateway.envoy.stat_at_least(&abandoned, 1).await, 1);

    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = last.await.unwrap();
    assert_eq!(status, 200, "the next held request got the seat: {body}");
    let records = flow_records(&gateway, 3).await;
    let outcomes: Vec<_> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["left", "admitted", "released"], "{records:?}");
    assert_eq!(records[0]["band"], "default");
    let released = host.stat("sluice_flow_released_total");
    assert_eq!(gateway.envoy.stat_at_least(&released, 1).await, 1);
}

/// The error kind at `error.type` in both formats, and whether the body is Anthropic's.
fn error_kind(body: &Value) -> (&str, bool) {
    (
        body["error"]["type"].as_str().unwrap_or_default(),
        body["type"] == "error",
    )
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_and_overflow_are_answered_in_each_apis_format(host: Host) {
    for (status, openai, anthropic) in [
        (429, "requests", "rate_limit_error"),
        (503, "server_error", "overloaded_error"),
    ] {
        // One seat, one place in the queue, 400 ms to wait.
        let gateway = gateway(
            host,
            &format!(
                r#"{{ "endpoint_capacity": 1, "fallback_endpoints": 1, "reject_status": {status},
                     "bands": [ {{ "name": "all", "priority": 0, "ttl_ms": 400, "capacity": 1 }} ] }}"#
            ),
            false,
        )
        .await;
        let (chat_path, messages_path) = ("/v1/chat/completions", "/v1/messages");
        let first = send(&gateway, chat_path, chat(150), None);
        running(&gateway, 1.0).await;

        for (held_path, overflow_path, round) in
            [(chat_path, messages_path, 1), (messages_path, chat_path, 2)]
        {
            let held_request = if held_path == chat_path {
                send(&gateway, held_path, chat(5), None)
            } else {
                send(&gateway, held_path, messages(5), None)
            };
            held(&gateway, round).await;
            // The band's one place is taken: turned away at once.
            let overflow = if overflow_path == chat_path {
                send(&gateway, overflow_path, chat(5), None)
            } else {
                send(&gateway, overflow_path, messages(5), None)
            };
            for (what, path, task) in [
                ("overflow", overflow_path, overflow),
                ("expired", held_path, held_request),
            ] {
                let (got, headers, body) = task.await.unwrap();
                assert_eq!(got, status, "{what} on {path}: {body}");
                assert_eq!(headers["retry-after"], "1", "{what} on {path}");
                let (kind, is_anthropic) = error_kind(&body);
                if path == messages_path {
                    assert!(is_anthropic, "{what}: {body}");
                    assert_eq!(kind, anthropic, "{what}: {body}");
                } else {
                    assert!(!is_anthropic, "{what}: {body}");
                    assert_eq!(kind, openai, "{what}: {body}");
                }
            }
        }
        let (got, _, body) = first.await.unwrap();
        assert_eq!(got, 200, "the admitted request is never cut off: {body}");
        let expired = host.stat("sluice_flow_expired_total");
        assert_eq!(gateway.envoy.stat_at_least(&expired, 2).await, 2);
        let overflow = host.stat("sluice_flow_overflow_total");
        assert_eq!(gateway.envoy.stat_at_least(&overflow, 2).await, 2);
        let records = flow_records(&gateway, 5).await;
        let expired_records: Vec<_> = records
            .iter()
            .filter(|r| r["outcome"] == "expired")
            .collect();
        assert_eq!(expired_records.len(), 2, "{records:?}");
        let overflowed = records
            .iter()
            .filter(|r| r["outcome"] == "overflow")
            .count();
        assert_eq!(overflowed, 2, "{records:?}");
        // The record's clock and the queue's round differently: a millisecond or two.
        assert!(
            expired_records
                .iter()
                .all(|r| r["band"] == "all" && r["held_ms"].as_u64().unwrap() >= 398),
            "{records:?}"
        );
    }
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn the_replica_never_serves_more_than_the_capacity_across_workers(host: Host) {
    const SEATS: f64 = 3.0;
    let gateway = gateway(host, r#"{ "endpoint_capacity": 3 }"#, true).await;
    let replica = &gateway.pool("llama_8b")[0];
    // 40 clients at once, each on its own connection, spread over Envoy's two workers.
    let tasks: Vec<_> = (0..40)
        .map(|_| send(&gateway, "/v1/chat/completions", chat(5), None))
        .collect();
    let answers = join_all(tasks).await;
    for answer in answers {
        let (status, _, body) = answer.unwrap();
        assert_eq!(status, 200, "every request is answered: {body}");
    }
    // The simulator's own high-water mark of requests in its engine (running and waiting):
    // exact, where sampling the gauges could miss a moment.
    let text = client()
        .get(replica.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let most = sluice_e2e::simulator::prometheus_sum(&text, "simulator:peak_requests");
    eprintln!("the replica served at most {most} at once");
    assert!(most <= SEATS, "the replica served {most} at once");
    assert!(most >= 1.0);
    let held = gateway
        .envoy
        .stat_at_least(&host.stat("sluice_flow_held_total"), 1)
        .await;
    let released = gateway
        .envoy
        .wait_for_stat(&host.stat("sluice_flow_released_total"), |n| n == held)
        .await;
    assert_eq!(released, held, "every held request was released");
    eprintln!("{held} of 40 requests were held");
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_request_is_bounded_by_the_stream_idle_timeout_not_the_request_timeout(host: Host) {
    // Envoy's request_timeout stops once the whole request is in (a held request's is), but
    // a held stream carries no byte either way: stream_idle_timeout bounds how long it can be
    // held, whatever its band's ttl_ms (60 s by default here).
    let options = GatewayOptions::default()
        .with_replicas("llama_8b", 1)
        .with_simulator_args(&["--decode-ms-per-step", DECODE_MS])
        .with_envoy_replacement("request_timeout: 30s", "request_timeout: 1s")
        .with_envoy_replacement("stream_idle_timeout: 600s", "stream_idle_timeout: 2s")
        .with_filter_configuration(&configuration(
            r#"{ "endpoint_capacity": 1, "fallback_endpoints": 1 }"#,
        ));
    let gateway = Gateway::start(host, options).await;
    let path = "/v1/chat/completions";
    // Streamed, a token every 20 ms for 4 s: never idle, it keeps its seat throughout.
    let mut streamed = chat(200);
    streamed["stream"] = json!(true);
    let first = send(&gateway, path, streamed, None);
    running(&gateway, 1.0).await;
    let (status, _, body) = send(&gateway, path, chat(5), None).await.unwrap();
    assert_eq!(
        status, 504,
        "cut by the idle timeout (408 would be request_timeout): {body}"
    );
    let (status, _, _) = first.await.unwrap();
    assert_eq!(status, 200);
    let records = flow_records(&gateway, 2).await;
    assert_eq!(records[0]["outcome"], "left", "{records:?}");
    // Idle since its body came in, a moment before it was held.
    assert!(
        records[0]["held_ms"].as_u64().unwrap() >= 1900,
        "{records:?}"
    );
    let abandoned = host.stat("sluice_flow_abandoned_total");
    assert_eq!(gateway.envoy.stat_at_least(&abandoned, 1).await, 1);
}
