//! The cluster quota section of `make bench`: starts Redis, one simulator replica, the picker
//! with `[quota]` and the Envoys, then offers each cluster size its paced runs. Every process is
//! a guard held here: when this future ends or is dropped (an error, a signal), they all stop.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::MissedTickBehavior;

use super::report::{QuotaReport, Run};
use super::{INSTANCES, PACE_MS, PER_ENVOY, filter_configuration};
use crate::bodies::MODEL;
use crate::procs::{self, ENVOY_WORKERS, Service, release_bin, start_service};
use crate::report::Build;

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    /// The Sluice build every Envoy of the cluster runs.
    pub build: Build,
}

fn say(message: &str) {
    println!("==> {message}");
}

/// The filter's gauge that says its view of the cluster is fresh.
const SYNCED: &str = "sluice_quota_cluster_synced";

pub async fn run(options: &Options, dir: &Path) -> Result<QuotaReport, String> {
    let started = Instant::now();
    let mut machine = crate::machine::describe().await;
    let redis_version = crate::load::version(&sluice_e2e::paths::redis_bin(), &["--version"]).await;
    let redis_version = redis_version
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or("?")
        .to_owned();
    machine.tools.insert(1, ("Redis".to_owned(), redis_version));
    let largest = INSTANCES.iter().map(|(k, _)| *k).max().unwrap_or(0);
    say(&format!(
        "cluster quotas: starting Redis, a replica, the picker and {largest} Envoys (Sluice's {} build)",
        options.build.name()
    ));
    let redis = sluice_e2e::redis::Redis::start(dir).await;
    let replica = start_service(
        "replica",
        dir,
        &release_bin("sluice-simulator")?,
        &["--listen", "127.0.0.1:0", "--fast", "--model", MODEL].map(String::from),
    )
    .await?;
    let picker_toml = dir.join("picker-quota.toml");
    std::fs::write(
        &picker_toml,
        format!("[quota]\nredis_url = \"{}\"\n", redis.url()),
    )
    .map_err(|e| format!("write the picker's config: {e}"))?;
    let picker = start_service(
        "picker-quota",
        dir,
        &release_bin("sluice-picker")?,
        &[
            "--config".to_owned(),
            picker_toml.display().to_string(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ],
    )
    .await?;
    let filter_configuration = filter_configuration();
    let yaml = procs::render_envoy(
        options.build.host(),
        vec![
            ("llama_8b".to_owned(), vec![replica.addr]),
            ("qwen_7b".to_owned(), vec![replica.addr]),
            ("sluice_picker".to_owned(), vec![picker.addr]),
        ],
        &filter_configuration,
    )?;
    let mut envoys = Vec::with_capacity(largest);
    for i in 0..largest {
        envoys.push(
            procs::start_envoy(&format!("envoy-quota-{i}"), dir, &yaml, ENVOY_WORKERS).await?,
        );
    }

    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    // Largest cluster first; the spare Envoys stop before the smaller ones run.
    let mut sizes = INSTANCES.to_vec();
    sizes.sort_unstable_by_key(|(k, _)| std::cmp::Reverse(*k));
    for (instances, repeats) in sizes {
        envoys.truncate(instances);
        wait_synced(&envoys, &options.build.host().stat(SYNCED)).await?;
        let repeats = if options.quick { 1 } else { repeats };
        for repeat in 0..repeats {
            // Minute windows start at whole minutes: keep a run inside one.
            sluice_e2e::minute::stay_inside_one(Duration::from_secs(8)).await;
            let tenant = format!("bench-{instances}-{repeat}-{}", unix_ms());
            let addrs: Vec<SocketAddr> = envoys.iter().map(|e| e.addr).collect();
            let run = paced_load(&addrs, &tenant).await;
            println!(
                "    {instances} instances, run {}/{repeats}: admitted {}, over the limit {}, \
                 refused {}, stale view (503) {}, other {}",
                repeat + 1,
                run.admitted,
                run.over(),
                run.limited,
                run.unavailable,
                run.other
            );
            if run.other > 0 {
                warnings.push(format!(
                    "{instances} instances, run {}: {} requests got no answer or neither 200, \
                     429 nor 503",
                    repeat + 1,
                    run.other
                ));
            }
            runs.push(run);
            for (i, envoy) in envoys.iter_mut().enumerate() {
                envoy.check_running(&format!("Envoy {i}"))?;
            }
        }
    }
    machine.load_after = crate::machine::load_average();
    // Stop everything before the report is written.
    drop((envoys, picker, replica, redis));
    Ok(QuotaReport {
        machine,
        build: options.build,
        runs,
        filter_configuration,
        warnings,
        quick: options.quick,
        elapsed_seconds: started.elapsed().as_secs(),
    })
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Waits until every Envoy's view of the cluster is fresh (its first syncs went through).
/// In the Wasm build the gauge is set by the first worker to tick after a sync and each other
/// worker learns it on its own tick (every 100 ms at most), so a few ticks more are allowed
/// before measuring (the native module's view is one per process).
async fn wait_synced(envoys: &[Service], synced: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, envoy) in envoys.iter().enumerate() {
        while envoy.envoy_stat(synced).await != Some(1) {
            if Instant::now() > deadline {
                return Err(format!(
                    "Envoy {i} never synced with the picker:\n{}",
                    procs::tail(&envoy.process.log(), 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// Offers `PER_ENVOY` requests of `tenant` to every Envoy at once, each paced at one per
/// `PACE_MS` whatever the answers take (requests overlap when they are slow).
async fn paced_load(envoys: &[SocketAddr], tenant: &str) -> Run {
    let body = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
    })
    .to_string();
    let per_instance: Vec<_> = envoys
        .iter()
        .map(|addr| {
            let url = format!("http://{addr}/v1/chat/completions");
            let (tenant, body) = (tenant.to_owned(), body.clone());
            tokio::spawn(async move {
                let client = sluice_e2e::gateway::client();
                let mut ticker = tokio::time::interval(Duration::from_millis(PACE_MS));
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                let mut sent = Vec::new();
                for _ in 0..PER_ENVOY {
                    ticker.tick().await;
                    let request = client
                        .post(&url)
                        .header("x-tenant", &tenant)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send();
                    sent.push(tokio::spawn(request));
                }
                let mut statuses = Vec::new();
                for response in sent {
                    let status = match response.await {
                        Ok(Ok(response)) => response.status().as_u16(),
                        _ => 0,
                    };
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for instance in per_instance {
        statuses.extend(instance.await.unwrap_or_default());
    }
    let mut run = Run {
        instances: envoys.len(),
        ..Run::default()
    };
    for status in statuses {
        match status {
            200 => run.admitted += 1,
            429 => run.limited += 1,
            503 => run.unavailable += 1,
            _ => run.other += 1,
        }
    }
    run
}
