//! The processes of the routing benchmark: simulator replicas (restarted on the same ports
//! between setups, so every setup starts with cold caches), the picker scraping them, and the
//! Envoy configurations of the three setups, all rendered from the shipped `envoy.yaml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::settings::ReplicaSettings;
use crate::procs::{self, Service};

/// The simulator flags of one replica.
fn replica_args(settings: &ReplicaSettings, listen: &str, model: &str) -> Vec<String> {
    [
        "--listen",
        listen,
        "--model",
        model,
        "--max-num-seqs",
        &settings.max_num_seqs.to_string(),
        "--kv-blocks",
        &settings.kv_blocks.to_string(),
        "--block-size",
        &settings.block_size.to_string(),
        "--prefill-us-per-token",
        &settings.prefill_us_per_token.to_string(),
        "--decode-ms-per-step",
        &settings.decode_ms_per_step.to_string(),
        "--prefix-cache",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A release binary of this workspace (`cargo build --release`, which `make bench` runs).
pub fn release_bin(name: &str) -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sluice_e2e::paths::repo_root().join("target"));
    let path = target.join("release").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: run `cargo build --locked --release -p sluice-simulator -p \
             sluice-picker` (make bench does)",
            path.display()
        ))
    }
}

/// Waits for the `listening on ADDR` line the project's services print once bound.
async fn listening_addr(service: &mut Service, name: &str) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = service.process.log();
        if let Some(addr) = log
            .lines()
            .find_map(|l| l.strip_prefix("listening on "))
            .and_then(|a| a.trim().parse().ok())
        {
            return Ok(addr);
        }
        service.check_running(name)?;
        if Instant::now() > deadline {
            return Err(format!("{name} did not start:\n{}", procs::tail(&log, 20)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_service(
    name: &str,
    dir: &Path,
    program: &Path,
    args: &[String],
) -> Result<Service, String> {
    let (process, pid) = procs::spawn(name, dir, program, args, &[("RUST_LOG", "warn")])?;
    let mut service = Service {
        process,
        pid,
        addr: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        admin: None,
    };
    service.addr = listening_addr(&mut service, name).await?;
    Ok(service)
}

/// The prefix-cache counters of one replica, from its `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub queries: f64,
    pub hits: f64,
    pub preemptions: f64,
}

impl Counters {
    pub fn parse(metrics: &str) -> Self {
        let sum = |name| sluice_e2e::simulator::prometheus_sum(metrics, name);
        Self {
            queries: sum("vllm:prefix_cache_queries_total"),
            hits: sum("vllm:prefix_cache_hits_total"),
            preemptions: sum("vllm:num_preemptions_total"),
        }
    }

    /// What happened between `before` and `after`, summed over replicas.
    pub fn delta(before: &[Counters], after: &[Counters]) -> super::results::CacheDelta {
        let mut delta = super::results::CacheDelta::default();
        for (b, a) in before.iter().zip(after) {
            delta.queries += a.queries - b.queries;
            delta.hits += a.hits - b.hits;
            delta.preemptions += a.preemptions - b.preemptions;
        }
        delta
    }
}

/// The simulated replicas, on fixed ports once started.
pub struct Replicas {
    dir: PathBuf,
    settings: ReplicaSettings,
    model: String,
    binary: PathBuf,
    running: Vec<Service>,
    addrs: Vec<SocketAddr>,
}

impl Replicas {
    /// Starts `settings.replicas` simulators on free ports.
    pub async fn start(dir: &Path, settings: ReplicaSettings, model: &str) -> Result<Self, String> {
        let mut replicas = Self {
            dir: dir.to_owned(),
            settings,
            model: model.to_owned(),
            binary: release_bin("sluice-simulator")?,
            running: Vec::new(),
            addrs: Vec::new(),
        };
        for i in 0..settings.replicas {
            let service = replicas.start_one(i, "127.0.0.1:0").await?;
            replicas.addrs.push(service.addr);
            replicas.running.push(service);
        }
        Ok(replicas)
    }

    async fn start_one(&self, i: usize, listen: &str) -> Result<Service, String> {
        let name = format!("replica-{}", i + 1);
        let args = replica_args(&self.settings, listen, &self.model);
        start_service(&name, &self.dir, &self.binary, &args).await
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops every replica and starts a fresh one on the same port: empty queues, cold caches,
    /// counters at zero. The listener socket is gone with the process, so the port is free again
    /// at once.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.running.clear();
        for i in 0..self.addrs.len() {
            let listen = self.addrs[i].to_string();
            let service = self.start_one(i, &listen).await?;
            self.running.push(service);
        }
        Ok(())
    }

    pub fn check_running(&mut self) -> Result<(), String> {
        for (i, service) in self.running.iter_mut().enumerate() {
            service.check_running(&format!("replica {}", i + 1))?;
        }
        Ok(())
    }

    async fn metrics(client: &reqwest::Client, addr: SocketAddr) -> Result<String, String> {
        client
            .get(format!("http://{addr}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("GET {addr}/metrics: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {addr}/metrics: {e}"))
    }

    pub async fn counters(&self, client: &reqwest::Client) -> Result<Vec<Counters>, String> {
        let mut all = Vec::with_capacity(self.addrs.len());
        for &addr in &self.addrs {
            all.push(Counters::parse(&Self::metrics(client, addr).await?));
        }
        Ok(all)
    }

    /// Waits until no replica has a request running or waiting (cancelled requests are aborted
    /// asynchronously), so that one step's leftovers never slow the next.
    pub async fn wait_idle(&self, client: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut busy = 0.0;
            for &addr in &self.addrs {
                let text = Self::metrics(client, addr).await?;
                busy += sluice_e2e::simulator::prometheus_sum(&text, "vllm:num_requests_running")
                    + sluice_e2e::simulator::prometheus_sum(&text, "vllm:num_requests_waiting");
            }
            if busy == 0.0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("replicas still busy after 30 s ({busy} requests)"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The picker's configuration: one pool of `replicas`, scraped every `scrape_interval_ms`.
pub fn picker_config(pool: &str, model: &str, replicas: &[SocketAddr], interval_ms: u64) -> String {
    let endpoints: Vec<String> = replicas.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "# Written by the routing benchmark (bench/src/routing/fleet.rs), as picker.toml is.\n\
         listen = \"127.0.0.1:0\"\n\
         scrape_interval_ms = {interval_ms}\n\
         scrape_timeout_ms = 500\n\
         dns_refresh_ms = 5000\n\
         unhealthy_after = 3\n\
         healthy_after = 2\n\n\
         [[pool]]\n\
         name = \"{pool}\"\n\
         model = \"{model}\"\n\
         server = \"vllm\"\n\
         endpoints = [{}]\n",
        endpoints.join(", ")
    )
}

/// Starts the picker from `config` (TOML).
pub async fn start_picker(dir: &Path, config: &str) -> Result<Service, String> {
    let path = dir.join("picker.toml");
    std::fs::write(&path, config).map_err(|e| format!("write {}: {e}", path.display()))?;
    let args = vec!["--config".to_owned(), path.display().to_string()];
    start_service("picker", dir, &release_bin("sluice-picker")?, &args).await
}

/// Waits until the picker's snapshot has `count` healthy endpoints in `pool`, scraped since the
/// replicas (re)started.
pub async fn wait_picker_ready(
    client: &reqwest::Client,
    picker: &Service,
    pool: &str,
    count: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    loop {
        let response = client
            .get(picker.url("/snapshot?format=json"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(response) = response {
            last = response.text().await.unwrap_or_default();
            let healthy = serde_json::from_str::<serde_json::Value>(&last)
                .ok()
                .and_then(|snapshot| {
                    let pools = snapshot["pools"].as_array()?.clone();
                    let found = pools.into_iter().find(|p| p["name"] == pool)?;
                    let endpoints = found["endpoints"].as_array()?.clone();
                    Some(
                        endpoints
                            .iter()
                            .filter(|e| {
                                e["healthy"] == true && e["metrics_age_ms"].as_u64() < Some(500)
                            })
                            .count(),
                    )
                })
                .unwrap_or(0);
            if healthy == count {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the picker does not see {count} healthy replicas after 20 s; last snapshot:\n{last:.2000}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The three setups' Envoy configurations.
pub struct EnvoyConfigs {
    pub round_robin: String,
    pub least_request: String,
    pub sluice: String,
}

const ROUND_ROBIN: [&str; 2] = [
    "name: envoy.load_balancing_policies.round_robin",
    "\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
];
const LEAST_REQUEST: [&str; 2] = [
    "name: envoy.load_balancing_policies.least_request",
    "\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
];

/// Renders the shipped `envoy.yaml` three ways, every model pool's cluster pointing at
/// `replicas` and the picker cluster at `picker`:
/// - *Sluice*: as shipped, with `filter_configuration` (picking on);
/// - *round robin*: the `sluice` filter removed. Nothing sets `x-gateway-destination-endpoint`,
///   so the clusters' `override_host` policy always falls back to its `round_robin`;
/// - *least-request*: the same with that fallback replaced by Envoy's `least_request`.
pub fn envoy_configs(
    replicas: &[SocketAddr],
    picker: SocketAddr,
    wasm: &Path,
    filter_configuration: &str,
) -> Result<EnvoyConfigs, String> {
    let mut clusters: Vec<(String, Vec<SocketAddr>)> = procs::model_pools(filter_configuration)?
        .into_iter()
        .map(|pool| (pool, replicas.to_vec()))
        .collect();
    clusters.push(("sluice_picker".to_owned(), vec![picker]));
    let sluice = procs::render_envoy(clusters, wasm, filter_configuration)?;
    let round_robin = procs::without_filter(&sluice, "sluice")?;
    let mut least_request = round_robin.clone();
    for (from, to) in ROUND_ROBIN.iter().zip(LEAST_REQUEST) {
        if !least_request.contains(from) {
            return Err(format!(
                "envoy.yaml no longer has `{from}`: update bench/src/routing/fleet.rs"
            ));
        }
        least_request = least_request.replace(from, to);
    }
    Ok(EnvoyConfigs {
        round_robin,
        least_request,
        sluice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_and_subtract() {
        let text = "# TYPE vllm:prefix_cache_queries_total counter\n\
            vllm:prefix_cache_queries_total{model_name=\"m\"} 1000\n\
            vllm:prefix_cache_hits_total{model_name=\"m\"} 250\n\
            vllm:num_preemptions_total{model_name=\"m\"} 2\n";
        let before = Counters::parse(text);
        assert_eq!(before.queries, 1000.0);
        assert_eq!(before.hits, 250.0);
        let after = Counters {
            queries: 3000.0,
            hits: 1250.0,
            preemptions: 2.0,
        };
        let delta = Counters::delta(&[before, before], &[after, after]);
        assert_eq!(delta.queries, 4000.0);
        assert_eq!(delta.hits, 2000.0);
        assert_eq!(delta.preemptions, 0.0);
        assert_eq!(delta.hit_share(), Some(0.5));
    }

    #[test]
    fn three_setups_from_the_shipped_config() {
        let replicas: Vec<SocketAddr> = (0..4)
            .map(|i| format!("127.0.0.1:{}", 7001 + i).parse().expect("addr"))
            .collect();
        let picker = "127.0.0.1:7100".parse().expect("addr");
        let filter = crate::sluice_config::FILTER_CONFIGURATION;
        let configs =
            envoy_configs(&replicas, picker, Path::new("/nowhere/f.wasm"), filter).expect("render");
        for port in 7001..=7004 {
            assert!(configs.sluice.contains(&format!("port_value: {port}")));
            assert!(configs.round_robin.contains(&format!("port_value: {port}")));
        }
        assert!(configs.sluice.contains("port_value: 7100"));
        assert!(configs.sluice.contains("extensions.filters.http.wasm."));
        assert!(
            !configs
                .round_robin
                .contains("extensions.filters.http.wasm.")
        );
        assert!(configs.round_robin.contains(ROUND_ROBIN[1]));
        assert!(!configs.least_request.contains(ROUND_ROBIN[1]));
        assert!(configs.least_request.contains(LEAST_REQUEST[1]));
    }

    #[test]
    fn picker_config_lists_the_replicas() {
        let replicas: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().expect("addr")];
        let text = picker_config("llama_8b", "m", &replicas, 50);
        assert!(text.contains("endpoints = [\"127.0.0.1:1\"]"));
        assert!(text.contains("scrape_interval_ms = 50"));
    }
}
