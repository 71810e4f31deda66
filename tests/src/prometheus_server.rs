//! A real Prometheus server (Debian's `prometheus`, installed by `scripts/setup.sh`) on a free
//! loopback port, scraping the targets it is given, with its data in a directory of the
//! caller's; and range and instant queries through its HTTP API, as Grafana sends them.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::process::Process;

/// One scrape job: targets (`host:port`) serving `metrics_path`.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub name: String,
    pub metrics_path: String,
    pub targets: Vec<String>,
}

impl ScrapeJob {
    pub fn new(name: &str, metrics_path: &str, targets: impl IntoIterator<Item = String>) -> Self {
        Self {
            name: name.to_owned(),
            metrics_path: metrics_path.to_owned(),
            targets: targets.into_iter().collect(),
        }
    }
}

/// One series of a range query's answer: its labels and its values (NaN where Prometheus
/// answered `NaN`, as a quantile of no observations is).
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: serde_json::Map<String, Value>,
    pub values: Vec<f64>,
}

pub struct Prometheus {
    pub port: u16,
    pub scrape_interval: Duration,
    process: Process,
}

impl Prometheus {
    /// Starts Prometheus in `dir` scraping `jobs` every `scrape_interval`, and waits until it is
    /// ready to answer queries.
    pub async fn start(dir: &Path, scrape_interval: Duration, jobs: &[ScrapeJob]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml(scrape_interval, jobs)).expect("write prometheus.yml");
        let mut command = Command::new(prometheus_bin());
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut process = Process::spawn("prometheus", command, &dir.join("prometheus.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let answer = crate::gateway::client().get(&ready).send().await;
                if matches!(&answer, Ok(r) if r.status() == 200) {
                    break;
                }
            }
            assert!(
                process.is_running(),
                "prometheus exited:\n{}",
                process.log()
            );
            assert!(
                Instant::now() < deadline,
                "prometheus not ready on port {port}:\n{}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            port,
            scrape_interval,
            process,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// `expr` over `[start, end]` every `step` (`/api/v1/query_range`, what a time-series
    /// panel sends), or Prometheus's error.
    pub async fn query_range(
        &self,
        expr: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Vec<Series>, String> {
        let step = format!("{}ms", step.as_millis());
        let params = [
            ("query", expr),
            ("start", &seconds(start)),
            ("end", &seconds(end)),
            ("step", &step),
        ];
        self.get("/api/v1/query_range", &params).await
    }

    /// `expr` at `time` (`/api/v1/query`, what a panel's instant query sends), or
    /// Prometheus's error.
    pub async fn query(&self, expr: &str, time: SystemTime) -> Result<Vec<Series>, String> {
        self.get(
            "/api/v1/query",
            &[("query", expr), ("time", &seconds(time))],
        )
        .await
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Vec<Series>, String> {
        let url = reqwest::Url::parse_with_params(&self.url(path), params)
            .map_err(|e| format!("query URL: {e}"))?;
        let answer: Value = crate::gateway::client()
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("query answer: {e}"))?;
        if answer["status"] != "success" {
            return Err(format!(
                "{}: {}",
                answer["errorType"].as_str().unwrap_or("error"),
                answer["error"].as_str().unwrap_or("(no message)")
            ));
        }
        let result = answer["data"]["result"]
            .as_array()
            .ok_or_else(|| format!("no result in {answer}"))?;
        // A matrix has `values`, a vector one `value`: [time, "number"] each.
        Ok(result
            .iter()
            .map(|series| Series {
                labels: series["metric"].as_object().cloned().unwrap_or_default(),
                values: series["values"]
                    .as_array()
                    .cloned()
                    .unwrap_or_else(|| vec![series["value"].clone()])
                    .iter()
                    .filter_map(|point| point[1].as_str())
                    .map(|v| v.parse().unwrap_or(f64::NAN))
                    .collect(),
            })
            .collect())
    }
}

/// Unix seconds, as the API takes them.
fn seconds(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .unwrap_or_else(|_| "0".to_owned())
}

/// `prometheus`: `SLUICE_PROMETHEUS_BIN`, else the first on `PATH`.
pub fn prometheus_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_PROMETHEUS_BIN") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("prometheus"))
                .find(|candidate| candidate.is_file())
        })
        .expect("prometheus not found (scripts/setup.sh installs it; or set SLUICE_PROMETHEUS_BIN)")
}

/// The scrape configuration: every job at `interval` (the scrape timeout may not exceed it).
fn config_yaml(interval: Duration, jobs: &[ScrapeJob]) -> String {
    let interval = format!("{}ms", interval.as_millis());
    let mut yaml = format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n"
    );
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| format!("'{t}'")).collect();
        yaml.push_str(&format!(
            "- job_name: '{}'\n  metrics_path: '{}'\n  static_configs:\n  - targets: [{}]\n",
            job.name,
            job.metrics_path,
            targets.join(", ")
        ));
    }
    yaml
}
