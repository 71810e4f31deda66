//! A simulator replica (`sluice-simulator`) on a free port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::paths;
use crate::process::Process;

pub struct Simulator {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Simulator {
    /// Starts replica `name` in `dir` with `--fast` timings plus `args`.
    pub async fn start(dir: &Path, name: &str, args: &[String]) -> Self {
        let mut command = Command::new(paths::simulator_bin());
        command
            .args(["--listen", "127.0.0.1:0", "--fast"])
            .args(args);
        let mut process = Process::spawn(name, command, &dir.join(format!("{name}.log")));
        let addr = process.listening_addr().await;
        Self { process, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Switches a fault on (`PUT /admin/faults`, e.g. `{"status": 429, "retry_after_s": 2}`;
    /// the simulator's `faults` module lists the fields). Panics if the simulator refuses it.
    pub async fn set_fault(&self, fault: serde_json::Value) {
        let response = crate::gateway::client()
            .put(self.url("/admin/faults"))
            .json(&fault)
            .send()
            .await
            .expect("PUT /admin/faults");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "fault {fault} refused: {status} {body}"
        );
    }

    /// Back to normal service (`DELETE /admin/faults`).
    pub async fn clear_fault(&self) {
        let response = crate::gateway::client()
            .delete(self.url("/admin/faults"))
            .send()
            .await
            .expect("DELETE /admin/faults");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The API requests this simulator received and how they ended (`GET /admin/stats`):
    /// `{"received", "answered": {"<status>": n}, "reset", "cut", "refused"}`.
    pub async fn stats(&self) -> serde_json::Value {
        crate::gateway::client()
            .get(self.url("/admin/stats"))
            .send()
            .await
            .expect("GET /admin/stats")
            .json()
            .await
            .expect("stats JSON")
    }

    /// Sum of every series of the Prometheus metric `name` (all label sets).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = crate::gateway::client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        prometheus_sum(&text, name)
    }
}

/// Sums the samples of `name` in Prometheus text exposition.
pub fn prometheus_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None;
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}
