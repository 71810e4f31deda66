//! The simulated replicas: started once on free ports, restarted on the same ports when a section
//! wants empty queues and cold caches, their metrics, and a sampler of their load while a step
//! runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::occupancy::Sample;
use super::settings::ReplicaSettings;
use crate::procs::{Service, release_bin, start_service};

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
        let args = self.settings.args(listen, &self.model);
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

    /// Every replica's `/metrics` page, in order.
    pub async fn scrape(&self, client: &reqwest::Client) -> Result<Vec<String>, String> {
        let mut all = Vec::with_capacity(self.addrs.len());
        for &addr in &self.addrs {
            all.push(Self::metrics(client, addr).await?);
        }
        Ok(all)
    }

    /// Waits until no replica has a request running or waiting (cancelled requests are aborted
    /// asynchronously), so that one step's leftovers never slow the next.
    pub async fn wait_idle(&self, client: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut busy = 0.0;
            for text in self.scrape(client).await? {
                let (running, waiting) = load(&text);
                busy += running + waiting;
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

    /// Samples every replica's running and waiting requests every `every` from `start` until
    /// `end` (the step's clock): a scrape that fails or takes longer than a period is skipped,
    /// not waited for.
    pub async fn sample_load(
        &self,
        client: &reqwest::Client,
        start: Instant,
        end: Instant,
        every: Duration,
    ) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut next = start;
        while next < end {
            tokio::time::sleep_until(next).await;
            let at = next.saturating_duration_since(start);
            let scrape = tokio::time::timeout(every, self.scrape(client)).await;
            if let Ok(Ok(texts)) = scrape {
                samples.push(Sample {
                    at,
                    replicas: texts.iter().map(|t| load(t)).collect(),
                });
            }
            next += every;
            // A slow scrape skips the periods it overran rather than bunching samples.
            while next < Instant::now() {
                next += every;
            }
        }
        samples
    }
}

/// `vllm:num_requests_running` and `vllm:num_requests_waiting` of one `/metrics` page.
fn load(metrics: &str) -> (f64, f64) {
    let sum = |name| sluice_e2e::simulator::prometheus_sum(metrics, name);
    (
        sum("vllm:num_requests_running"),
        sum("vllm:num_requests_waiting"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reads_running_and_waiting() {
        let text = "# TYPE vllm:num_requests_running gauge\n\
            vllm:num_requests_running{model_name=\"m\"} 16\n\
            vllm:num_requests_waiting{model_name=\"m\"} 3\n";
        assert_eq!(load(text), (16.0, 3.0));
        assert_eq!(load(""), (0.0, 0.0));
    }
}
