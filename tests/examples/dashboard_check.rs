//! `make dashboard-check`: the Grafana dashboard (`dashboards/sluice.json`) against a running
//! `make run` (in another terminal; either host, one Envoy or `SLUICE_CLUSTER=1`'s two).
//!
//! ```sh
//! make run                  # terminal 1
//! make dashboard-check      # terminal 2: cargo run -p sluice-e2e --example dashboard_check
//! ```
//!
//! Starts Prometheus (Debian's, from `scripts/setup.sh`) in a temporary directory, scraping
//! every second the addresses `scripts/run.sh`'s banner lists: Envoy's admin
//! `/stats/prometheus` (:9901, and :9902 when a second Envoy answers there), the picker's
//! `/metrics` (:9100) and the simulated model servers' (:8001-:8003). Sends a few rounds of the
//! traffic mix through the gateway with the banner's demo keys (the demo tenant allows 60
//! requests a minute: four rounds stay under it, so run it at most once a minute), then runs
//! every panel's queries over the time since it started until each returns data. Prints a line
//! per query and exits 1 when a panel stays empty. The spend panels wait for metrics from
//! branches not merged yet (`sluice_e2e::dashboard::AWAITING`).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use sluice_e2e::dashboard::{AWAITING, Dashboard, check, wait_for_data};
use sluice_e2e::gateway::{LLAMA, QWEN, client};
use sluice_e2e::prometheus_server::{Prometheus, ScrapeJob};
use sluice_e2e::traffic_mix::TrafficMix;

/// What `scripts/run.sh`'s banner lists.
const GATEWAY: &str = "http://127.0.0.1:10000";
const ENVOY_ADMINS: [&str; 2] = ["127.0.0.1:9901", "127.0.0.1:9902"];
const PICKER: &str = "127.0.0.1:9100";
const MODEL_SERVERS: [&str; 3] = ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"];
const DEMO_KEY: &str = "sk-sluice-demo";
const TRIAL_KEY: &str = "sk-sluice-trial";

const SCRAPE: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_secs(2);
/// Rounds of traffic at most (the demo tenant's 60 requests a minute).
const ROUNDS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let dashboard = Dashboard::load();
    let mut envoys = Vec::new();
    for admin in ENVOY_ADMINS {
        if answers(&format!("http://{admin}/ready")).await {
            envoys.push(admin.to_owned());
        }
    }
    if envoys.is_empty() || !answers(&format!("http://{PICKER}/healthz")).await {
        eprintln!(
            "no `make run` here: Envoy's admin ({}) and the picker ({PICKER}) must answer. \
             Start `make run` in another terminal first.",
            ENVOY_ADMINS[0]
        );
        return ExitCode::FAILURE;
    }
    let dir = tempfile::Builder::new()
        .prefix("sluice-dashboard-check-")
        .tempdir()
        .expect("temp dir");
    let jobs = [
        ScrapeJob::new("envoy", "/stats/prometheus", envoys.clone()),
        ScrapeJob::new("sluice-picker", "/metrics", [PICKER.to_owned()]),
        ScrapeJob::new("model-servers", "/metrics", MODEL_SERVERS.map(String::from)),
    ];
    let prometheus = Prometheus::start(dir.path(), SCRAPE, &jobs).await;
    println!(
        "Prometheus on 127.0.0.1:{} scraping Envoy {}, the picker {PICKER} and the model servers {} every {SCRAPE:?}",
        prometheus.port,
        envoys.join(", "),
        MODEL_SERVERS.join(", ")
    );
    let since = SystemTime::now();
    let mix = TrafficMix {
        gateway: GATEWAY.to_owned(),
        key: DEMO_KEY.to_owned(),
        limited_key: TRIAL_KEY.to_owned(),
        models: vec![LLAMA.to_owned(), QWEN.to_owned()],
        // The Qwen pool's one replica takes 4 at once (flow_control in scripts/run_config.py).
        burst_model: QWEN.to_owned(),
        burst: 6,
        // The trial tenant allows 3 a minute.
        limited_requests: 4,
    };
    let mut report = check(&prometheus, &dashboard, since, STEP, AWAITING).await;
    for round in 1..=ROUNDS {
        let statuses = mix.round().await;
        println!("traffic round {round}: statuses {statuses:?}");
        // Two scrapes of what the round moved.
        tokio::time::sleep(SCRAPE * 3).await;
        report = check(&prometheus, &dashboard, since, STEP, AWAITING).await;
        if report.passed() {
            break;
        }
    }
    if !report.passed() {
        report = wait_for_data(&prometheus, &dashboard, since, STEP, AWAITING, TIMEOUT).await;
    }
    println!("{report}");
    if report.passed() {
        println!("every panel has data");
        ExitCode::SUCCESS
    } else {
        let mut panels: Vec<String> = Vec::new();
        for (query, _, _) in report.failures() {
            let panel = format!("{:?}", query.panel);
            if !panels.contains(&panel) {
                panels.push(panel);
            }
        }
        println!("panels without data: {}", panels.join(", "));
        ExitCode::FAILURE
    }
}

async fn answers(url: &str) -> bool {
    matches!(client().get(url).send().await, Ok(r) if r.status().is_success())
}
