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
