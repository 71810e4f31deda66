//! A replica killed under steady load, through a real Envoy with the shipped `envoy.yaml`: only
//! the requests it was working on fail (they reached it, so they cannot be retried), each with
//! an error in the API's format; every request that starts after the kill succeeds, with the
//! picker stopped (round robin, retries and outlier detection) and with it running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, client};
use sluice_e2e::host::Host;

/// Concurrent clients, each looping one request at a time.
const CLIENTS: usize = 8;
/// Requests completed before the kill, so connections and the load are steady.
const BEFORE_KILL: usize = 200;
/// Requests completed after the kill before the load stops: well past the moment the dead
/// replica is ejected.
const AFTER_KILL: usize = 1000;

/// What one request saw.
struct Outcome {
    started_after_kill: bool,
    finished_after_kill: bool,
    status: u16,
    body: String,
}

struct Load {
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

/// Starts `CLIENTS` loops of short chat requests, each prompt distinct (so prefix affinity
/// does not pin them to one replica when the picker runs).
fn start_load(gateway: &Gateway) -> Load {
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let url = gateway.url("/v1/chat/completions");
    let tasks = (0..CLIENTS)
        .map(|c| {
            let (killed, stop, completed, url) =
                (killed.clone(), stop.clone(), completed.clone(), url.clone());
            tokio::spawn(async move {
                let http = client();
                let mut outcomes = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let body = json!({
                        "model": LLAMA,
                        "messages": [{"role": "user", "content": format!("client {c} request {i}")}],
                        "max_tokens": 8
                    });
                    let started_after_kill = killed.load(Ordering::SeqCst);
                    let (status, body) = match http.post(&url).json(&body).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            (status, response.text().await.unwrap_or_default())
                        }
                        // A connection the gateway dropped counts as an error too.
                        Err(err) => (0, err.to_string()),
                    };
                    outcomes.push(Outcome {
                        started_after_kill,
                        finished_after_kill: killed.load(Ordering::SeqCst),
                        status,
                        body,
                    });
                    completed.fetch_add(1, Ordering::SeqCst);
                }
                outcomes
            })
        })
        .collect();
    Load {
        killed,
        stop,
        completed,
        tasks,
    }
}

async fn wait_for_completed(load: &Load, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while load.completed.load(Ordering::SeqCst) < count {
        assert!(
            Instant::now() < deadline,
            "only {} requests completed",
            load.completed.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Envoy's admin `/clusters` text.
async fn clusters(gateway: &Gateway) -> String {
    client()
        .get(format!("http://{}/clusters", gateway.envoy.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until both Llama replicas have answered through Envoy: the load starts from a balanced
/// pool.
async fn wait_until_balanced(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = std::collections::HashSet::new();
    let mut i = 0;
    while seen.len() < gateway.pool("llama_8b").len() {
        assert!(Instant::now() < deadline, "only {seen:?} ever answered");
        i += 1;
        let response = client()
            .post(gateway.url("/v1/chat/completions"))
            .json(&json!({"model": LLAMA, "messages": [{"role": "user", "content": format!("warm up {i}")}], "max_tokens": 1}))
            .send()
            .await
            .unwrap();
        if let Some(id) = response.headers().get("x-simulator-id") {
            seen.insert(id.to_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the load, kills the first Llama replica after `BEFORE_KILL` requests, keeps the load for
/// `AFTER_KILL` more, and checks every outcome.
async fn kill_a_replica_under_load(mut gateway: Gateway) {
    wait_until_balanced(&gateway).await;
    let load = start_load(&gateway);
    wait_for_completed(&load, BEFORE_KILL).await;
    let dead = gateway.pools[0].1[0].addr;
    gateway.pools[0].1[0].process.kill();
    load.killed.store(true, Ordering::SeqCst);
    let at_kill = load.completed.load(Ordering::SeqCst);
    wait_for_completed(&load, at_kill + AFTER_KILL).await;
    load.stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for task in load.tasks {
        outcomes.extend(task.await.unwrap());
    }

    let in_flight_at_kill = outcomes
        .iter()
        .filter(|o| !o.started_after_kill && o.finished_after_kill)
        .count();
    let errors: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    let stats = failover_stats(&gateway, dead).await;
    eprintln!(
        "{} requests, {} after the kill; {in_flight_at_kill} in flight at the kill, {} failed; {stats}",
        outcomes.len(),
        outcomes.iter().filter(|o| o.started_after_kill).count(),
        errors.len(),
    );
    for error in &errors {
        // Only a request the dead replica already had can fail...
        assert!(
            !error.started_after_kill,
            "a request started after the kill failed: {} {}",
            error.status, error.body
        );
        // ...and its error is in the API's format, not Envoy's plain text.
        assert_eq!(error.status, 503, "{}", error.body);
        let body: Value = serde_json::from_str(&error.body).expect("JSON error body");
        assert_eq!(body["error"]["type"], "server_error", "{body}");
        assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    }
    // Each client has one request in flight at a time, so at most CLIENTS were on the dead
    // replica (with two replicas, about half).
    assert!(
        errors.len() <= in_flight_at_kill.min(CLIENTS),
        "{} errors, {in_flight_at_kill} requests in flight at the kill",
        errors.len()
    );
    assert!(
        outcomes.iter().filter(|o| o.started_after_kill).count() >= AFTER_KILL - CLIENTS,
        "the load did not go on after the kill"
    );
    // Envoy never refused a retry for want of budget (its default of 3 retries at once did).
    assert_eq!(
        gateway
            .envoy
            .stat_now("cluster.llama_8b.upstream_rq_retry_overflow")
            .await,
        0
    );
}

/// Envoy's view of the failover, for the test's output.
async fn failover_stats(gateway: &Gateway, dead: std::net::SocketAddr) -> String {
    let envoy = &gateway.envoy;
    let clusters = clusters(gateway).await;
    let of_dead = |field: &str| {
        let prefix = format!("llama_8b::{dead}::{field}::");
        clusters
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or("?")
            .to_owned()
    };
    format!(
        "retries {}, retry overflow {}, outlier ejections {}, connect failures to the dead replica {}, its health flags {}",
        envoy.stat_now("cluster.llama_8b.upstream_rq_retry").await,
        envoy
            .stat_now("cluster.llama_8b.upstream_rq_retry_overflow")
            .await,
        envoy
            .stat_now("cluster.llama_8b.outlier_detection.ejections_enforced_total")
            .await,
        of_dead("cx_connect_fail"),
        of_dead("health_flags"),
    )
}

fn options() -> GatewayOptions {
    // Requests take a few milliseconds on a replica, so several are in flight at any time.
    GatewayOptions::default().with_simulator_args(&["--decode-ms-per-step", "2"])
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_fails_only_its_requests_in_flight_without_the_picker(host: Host) {
    // The harness points the picker cluster at a closed port: the filter names no replica and
    // round robin decides.
    let gateway = Gateway::start(host, options()).await;
    kill_a_replica_under_load(gateway).await;
}

#[both_hosts(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_fails_only_its_requests_in_flight_with_the_picker(host: Host) {
    let gateway = Gateway::start(host, options().with_picker()).await;
    gateway.wait_for_picking().await;
    kill_a_replica_under_load(gateway).await;
}
