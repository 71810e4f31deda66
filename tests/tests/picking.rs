//! Replica picking through a real Envoy, filter and picker: requests go where the scores say,
//! away from a replica whose queue grows or that died, and keep flowing without the picker.
//!
//! Nothing here waits a fixed time for the picker or the filter to notice a change: each test
//! polls for the change it expects (the picker's snapshot, then what requests get), with a
//! deadline that is only a timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;
use sluice_e2e::picker::endpoint;

/// How long a test waits for something it polls for.
const PATIENCE: Duration = Duration::from_secs(15);

fn chat(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens
    })
}

/// A prompt no other request of this test binary has sent: prefix affinity must not tie it to
/// the replica an earlier request went to.
fn fresh_prompt() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("question number {}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Which replica of `llama_8b` served each of `n` sequential requests with distinct prompts.
async fn served_by(gateway: &Gateway, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let response = gateway
            .post_json("/v1/chat/completions", &chat(&fresh_prompt(), 1))
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

/// Waits until the picker's snapshot says `ready` of replica `index` of `llama_8b`.
async fn wait_for_replica(
    gateway: &mut Gateway,
    index: usize,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) {
    let addr = gateway.pool("llama_8b")[index].addr;
    let picker = gateway.picker.as_mut().expect("a picker");
    picker
        .wait_for(what, PATIENCE, |s| {
            endpoint(s, "llama_8b", addr).is_some_and(&ready)
        })
        .await;
}

/// Sends requests until `n` in a row were served by `replica`; fails after `PATIENCE`. The
/// filter follows the picker's snapshot within its refresh interval, so requests before that may
/// still go elsewhere, where they can wait behind long jobs: such a request is given up after a
/// while and the count starts over.
async fn until_all_go_to(gateway: &Gateway, replica: &str, n: usize) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let (mut in_a_row, mut elsewhere) = (0, Vec::new());
    while in_a_row < n {
        assert!(
            Instant::now() < deadline,
            "never {n} in a row to {replica}; went elsewhere: {elsewhere:?}"
        );
        let sent = http
            .post(gateway.url("/v1/chat/completions"))
            .json(&chat(&fresh_prompt(), 1))
            .send()
            .await;
        let served = match sent {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                response.headers()["x-simulator-id"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            }
            Err(err) if err.is_timeout() => "(timed out)".to_owned(),
            Err(err) => panic!("{err}"),
        };
        if served == replica {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            elsewhere.push(served);
        }
    }
}

#[both_hosts(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_queue_grows_stops_receiving_traffic(host: Host) {
    let mut gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_picker()
            .with_simulator_args(&["--max-num-seqs", "1", "--decode-ms-per-step", "20"]),
    )
    .await;
    gateway.wait_for_picking().await;
    let pool = gateway.pool("llama_8b");
    let (busy, idle) = (
        pool[0].url("/v1/chat/completions"),
        pool[1].addr.to_string(),
    );

    // Load one replica directly, behind the gateway's back: only its metrics can tell.
    let http = client();
    let load: Vec<_> = (0..6)
        .map(|i| {
            http.post(&busy)
                .json(&chat(&format!("long job {i}"), 150))
                .send()
        })
        .collect();
    let load = tokio::spawn(join_all(load));
    wait_for_replica(&mut gateway, 0, "the busy replica queues", |e| {
        e["waiting"].as_u64() >= Some(3)
    })
    .await;

    until_all_go_to(&gateway, &idle, 10).await;
    load.abort();
}

#[both_hosts]
async fn a_killed_replica_is_avoided(host: Host) {
    let mut gateway = Gateway::start(host, GatewayOptions::default().with_picker()).await;
    gateway.wait_for_picking().await;
    let dead = gateway.pool("llama_8b")[0].addr.to_string();
    let survivor = gateway.pool("llama_8b")[1].addr.to_string();
    gateway.pools[0].1[0].process.kill();
    wait_for_replica(&mut gateway, 0, "the killed replica unhealthy", |e| {
        e["healthy"] == false
    })
    .await;
    // Envoy retries a request sent to the dead replica on the next one the filter named, so
    // the replica that served says little: the filter must stop naming the dead one at all.
    let deadline = Instant::now() + PATIENCE;
    let mut probe = 0;
    loop {
        probe += 1;
        let destination = destination_of(&gateway, probe).await;
        if !destination.contains(&dead) {
            assert!(destination.contains(&survivor), "{destination}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the filter still names {dead}: {destination}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = served_by(&gateway, 10).await;
    assert_eq!(counts.get(&survivor), Some(&10), "{counts:?}");
}

/// Sends a request marked `probe` and returns the replicas the filter named for it
/// (`x-gateway-destination-endpoint`, as Envoy's access log shows it; `-` for none).
async fn destination_of(gateway: &Gateway, probe: usize) -> String {
    let marker = format!("probe={probe}\"");
    let response = client()
        .post(gateway.url(&format!("/v1/chat/completions?probe={probe}")))
        .json(&chat(&format!("probe {probe}"), 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = gateway.envoy.process.log();
        if let Some(line) = log.lines().find(|l| l.contains(&marker)) {
            let endpoint = line
                .split(" endpoint=")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_else(|| panic!("no endpoint in {line}"));
            return endpoint.to_owned();
        }
        assert!(Instant::now() < deadline, "no access log line for {marker}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[both_hosts]
async fn requests_right_after_a_replica_dies_are_retried_on_a_fallback(host: Host) {
    let mut gateway = Gateway::start(host, GatewayOptions::default().with_picker()).await;
    gateway.wait_for_picking().await;
    gateway.pools[0].1[0].process.kill();
    // No waiting: the snapshot still says the dead replica is healthy. Envoy's retry on connect
    // failure goes to the next endpoint the filter named.
    let counts = served_by(&gateway, 6).await;
    assert_eq!(counts.values().sum::<usize>(), 6, "{counts:?}");
}

const PICKS: &str = "sluice_picks_total";
const FALLBACKS: &str = "sluice_pick_fallbacks_total";

/// With picking on, the filter counts every request as picked or left to Envoy. Waits until
/// both counts cover the `sent` requests and returns the fallbacks.
async fn settled_fallbacks(gateway: &Gateway, sent: u64) -> u64 {
    let envoy = &gateway.envoy;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (picks, fallbacks) = (
            envoy.stat_now(&envoy.host.stat(PICKS)).await,
            envoy.stat_now(&envoy.host.stat(FALLBACKS)).await,
        );
        if picks + fallbacks == sent {
            return fallbacks;
        }
        assert!(
            Instant::now() < deadline,
            "{picks} picks and {fallbacks} fallbacks for {sent} requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[both_hosts]
async fn traffic_flows_with_the_picker_stopped(host: Host) {
    let mut gateway = Gateway::start(host, GatewayOptions::default().with_picker()).await;
    let mut sent = gateway.wait_for_picking().await;
    let before_the_stop = settled_fallbacks(&gateway, sent).await;
    gateway.picker.as_mut().unwrap().process.kill();
    // Until the last snapshot is older than envoy.yaml's stale_after_ms (2 s) the filter still
    // picks from it; then every request is left to Envoy.
    let deadline = Instant::now() + PATIENCE;
    while gateway.envoy.stat_now(&host.stat(FALLBACKS)).await == before_the_stop {
        assert!(Instant::now() < deadline, "the filter never fell back");
        assert_eq!(served_by(&gateway, 1).await.values().sum::<usize>(), 1);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fallbacks_before = settled_fallbacks(&gateway, sent).await;
    let counts = served_by(&gateway, 6).await;
    assert_eq!(counts.values().sum::<usize>(), 6);
    assert_eq!(
        counts.len(),
        2,
        "Envoy's round robin spreads them: {counts:?}"
    );
    assert_eq!(
        settled_fallbacks(&gateway, sent + 6).await,
        fallbacks_before + 6
    );
    gateway
        .envoy
        .stat_at_least(&host.stat("sluice_picker_fetch_failures_total"), 1)
        .await;
}

#[both_hosts]
async fn a_shared_prompt_prefix_sticks_to_one_replica(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default().with_picker()).await;
    gateway.wait_for_picking().await;
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

#[both_hosts(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_sheds_with_429_in_the_apis_format(host: Host) {
    let config = format!(
        r#"{{"models": {{"{LLAMA}": {{"pool": "llama_8b"}}}},
            "picking": {{"refresh_ms": 50, "max_waiting_per_endpoint": 2}}}}"#
    );
    let mut gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_picker()
            .with_filter_configuration(&config)
            .with_simulator_args(&["--max-num-seqs", "1", "--decode-ms-per-step", "20"]),
    )
    .await;
    gateway.wait_for_picking().await;
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
    for index in 0..2 {
        wait_for_replica(&mut gateway, index, "the replica queues", |e| {
            e["waiting"].as_u64() >= Some(3)
        })
        .await;
    }

    // The filter sheds once its copy of the snapshot shows both queues. A probe it does not
    // shed joins a queue of several 3-second jobs, so it cannot finish within the probe's
    // 1 s: it is abandoned and the next probe tries.
    let probe = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let response = loop {
        let sent = probe
            .post(gateway.url("/v1/chat/completions"))
            .json(&chat("one more", 1))
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 429 => break response,
            Ok(response) => panic!("not shed, answered {}", response.status()),
            Err(err) => assert!(
                err.is_timeout() && Instant::now() < deadline,
                "never shed: {err}"
            ),
        }
    };
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
            .stat_at_least(&host.stat("sluice_requests_shed_total"), 2)
            .await,
        2
    );
    load.abort();
}

#[both_hosts]
async fn a_pool_without_healthy_replicas_answers_503(host: Host) {
    let mut gateway = Gateway::start(host, GatewayOptions::default().with_picker()).await;
    gateway.wait_for_picking().await;
    for replica in &mut gateway.pools[0].1 {
        replica.process.kill();
    }
    // Until the filter's snapshot shows both unhealthy, Envoy tries them and answers 503
    // itself (plain text); then the filter answers in the API's format.
    let expected = r#"{"error":{"message":"No healthy replica serves this model right now.","type":"server_error","param":null,"code":"no_healthy_upstream"}}"#;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = gateway
            .post_json("/v1/chat/completions", &chat("anyone there?", 1))
            .await;
        assert_eq!(response.status(), 503);
        let body = response.text().await.unwrap();
        if body == expected {
            break;
        }
        assert!(Instant::now() < deadline, "never the filter's 503: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
