//! The simulated replicas: started once on free ports, restarted on the same ports before every
//! setup (so every setup starts with empty queues and cold caches), and their metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::processes::{release_bin, start_service};
use super::settings::ReplicaSettings;
use crate::procs::Service;

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
}
