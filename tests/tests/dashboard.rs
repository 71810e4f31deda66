//! The Grafana dashboard (`dashboards/sluice.json`) against a real Prometheus (Debian's,
//! installed by `scripts/setup.sh`) scraping a real gateway: Envoy's `/stats/prometheus` with
//! either build of the filter, the picker's `/metrics` and the simulated model servers' own
//! metrics, every second. The gateway has quotas (a tenant whose limit is reached after one
//! request), the default guardrail rules and flow control with room for one request per
//! replica, so one round of the traffic mix (`sluice_e2e::traffic_mix`) gets rejections,
//! guardrail hits and held requests. Rounds go on while every panel's queries, as Grafana sends
//! them, are run until each returns data; the test fails naming the panels and queries that
//! stayed empty. `make dashboard-check` runs the same check against `make run`.

use std::time::{Duration, SystemTime};

use sluice_e2e::both_hosts;
use sluice_e2e::dashboard::{AWAITING, Dashboard, wait_for_data};
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, QWEN};
use sluice_e2e::host::Host;
use sluice_e2e::prometheus_server::{Prometheus, ScrapeJob};
use sluice_e2e::traffic_mix::TrafficMix;

/// The tenant with room (`sk-dashboard-team`) and the one whose limit one request reaches
/// (`sk-dashboard-trial`), by their SHA-256.
const TEAM_KEY: &str = "sk-dashboard-team";
const TEAM_KEY_SHA256: &str = "06ae175c5db9e72a40814d9cfe815134aee16836ce8ce90861958f850c532050";
const TRIAL_KEY: &str = "sk-dashboard-trial";
const TRIAL_KEY_SHA256: &str = "3253baf90171551cfcc2bde50d15a8be6ee458da8b8447cc57ee927de71f2f57";

/// Prometheus scrapes every target this often; panels are read at twice that step.
const SCRAPE: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_secs(2);
/// How long the panels get to show data: a bound for a loaded machine, not a claim on speed.
const TIMEOUT: Duration = Duration::from_secs(120);

fn configuration() -> String {
    format!(
        r#"{{
          "models": {{
            "{LLAMA}": {{ "pool": "llama_8b", "context_window": 131072 }},
            "{QWEN}": {{ "pool": "qwen_7b", "context_window": 32768 }}
          }},
          "picking": {{ "refresh_ms": 50 }},
          "flow_control": {{ "endpoint_capacity": 1 }},
          "quotas": {{
            "keys": [
              {{ "sha256": "{TEAM_KEY_SHA256}", "tenant": "team" }},
              {{ "sha256": "{TRIAL_KEY_SHA256}", "tenant": "trial" }}
            ],
            "tenants": {{
              "team": {{ "limits": {{ "requests_per_minute": 100000, "tokens_per_minute": 100000000 }} }},
              "trial": {{ "limits": {{ "requests_per_minute": 1 }} }}
            }},
            "prices": {{
              "{LLAMA}": {{ "input": 0.2, "output": 0.6 }},
              "{QWEN}": {{ "input": 0.1, "output": 0.3 }}
            }},
            "tenancy": {{ "refresh_ms": 1000 }}
          }},
          "guardrails": {{}}
        }}"#
    )
}

#[both_hosts]
async fn every_panel_of_the_dashboard_shows_data(host: Host) {
    let dashboard = Dashboard::load();
    let gateway = Gateway::start(
        host,
        GatewayOptions::default()
            .with_picker()
            // The spend panel reads what the picker stored from the filter's spend rows.
            .with_picker_config(
                "\n[tenancy]\nstore = \"embedded\"\npath = \"{dir}/tenancy.redb\"\n",
            )
            .with_filter_configuration(&configuration()),
    )
    .await;
    let picker = gateway.picker.as_ref().expect("the picker");
    let jobs = [
        ScrapeJob::new(
            "envoy",
            "/stats/prometheus",
            [gateway.envoy.admin.to_string()],
        ),
        ScrapeJob::new("sluice-picker", "/metrics", [picker.addr.to_string()]),
        ScrapeJob::new(
            "model-servers",
            "/metrics",
            gateway.replicas().map(|r| r.addr.to_string()),
        ),
    ];
    let prometheus = Prometheus::start(gateway.dir.path(), SCRAPE, &jobs).await;
    let since = SystemTime::now();

    // Rounds until the check is done (each moves every panel; rates need two scrapes of a
    // count that moved in between).
    let mix = TrafficMix {
        gateway: gateway.url(""),
        key: TEAM_KEY.to_owned(),
        limited_key: TRIAL_KEY.to_owned(),
        models: vec![LLAMA.to_owned(), QWEN.to_owned()],
        burst_model: QWEN.to_owned(),
        burst: 3,
        limited_requests: 2,
    };
    let first = mix.round().await;
    eprintln!("first round's statuses: {first:?}");
    for status in [200, 401, 404, 429] {
        assert!(
            first.contains_key(&status),
            "no {status} in the first round: {first:?}"
        );
    }
    let traffic = tokio::spawn(async move {
        loop {
            mix.round().await;
            tokio::time::sleep(SCRAPE).await;
        }
    });

    let report = wait_for_data(&prometheus, &dashboard, since, STEP, AWAITING, TIMEOUT).await;
    traffic.abort();
    eprintln!("{report}");
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|(query, rendered, outcome)| {
            format!(
                "panel {:?} ({}): {outcome:?}\n  {rendered}",
                query.panel, query.row
            )
        })
        .collect();
    let log = prometheus.log();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    assert!(
        failures.is_empty(),
        "{} queries returned no data:\n{}\nlast lines of Prometheus's log:\n{}",
        failures.len(),
        failures.join("\n"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
