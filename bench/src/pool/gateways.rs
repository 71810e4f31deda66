//! The picker over the replicas, and the Envoys in front of them, rendered from the shipped config
//! of the Sluice build measured (`envoy.yaml` for the native module, `envoy.wasm.yaml` for Wasm):
//! with the filter, or without it under Envoy's round robin or least-request.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_e2e::host::Host;

use crate::procs::{self, Service, release_bin, start_service};

/// The picker's configuration: one pool of `replicas`, scraped every `scrape_interval_ms`.
pub fn picker_config(pool: &str, model: &str, replicas: &[SocketAddr], interval_ms: u64) -> String {
    let endpoints: Vec<String> = replicas.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "# Written by make bench (bench/src/pool/gateways.rs), as picker.toml is.\n\
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

/// The routing benchmark's three setups' Envoy configurations.
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

/// Renders `host`'s shipped config three ways, every model pool's cluster pointing at
/// `replicas` and the picker cluster at `picker`:
/// - *Sluice*: as shipped, with `filter_configuration` (picking on);
/// - *round robin*: the `sluice` filter removed. Nothing sets `x-gateway-destination-endpoint`,
///   so the clusters' `override_host` policy always falls back to its `round_robin`;
/// - *least-request*: the same with that fallback replaced by Envoy's `least_request`.
pub fn envoy_configs(
    host: Host,
    replicas: &[SocketAddr],
    picker: SocketAddr,
    filter_configuration: &str,
) -> Result<EnvoyConfigs, String> {
    let sluice = sluice_config(host, replicas, picker, filter_configuration)?;
    let round_robin = procs::without_filter(&sluice, "sluice")?;
    let mut least_request = round_robin.clone();
    for (from, to) in ROUND_ROBIN.iter().zip(LEAST_REQUEST) {
        if !least_request.contains(from) {
            return Err(format!(
                "{} no longer has `{from}`: update bench/src/pool/gateways.rs",
                host.envoy_yaml().display()
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

/// `host`'s shipped config with `filter_configuration`, every model pool's cluster pointing at
/// `replicas` and the picker cluster at `picker`.
pub fn sluice_config(
    host: Host,
    replicas: &[SocketAddr],
    picker: SocketAddr,
    filter_configuration: &str,
) -> Result<String, String> {
    let mut clusters: Vec<(String, Vec<SocketAddr>)> = procs::model_pools(filter_configuration)?
        .into_iter()
        .map(|(pool, _model)| (pool, replicas.to_vec()))
        .collect();
    clusters.push(("sluice_picker".to_owned(), vec![picker]));
    procs::render_envoy(host, clusters, filter_configuration)
}

/// One short streamed completion through `gateway` (with `headers` besides the content type and
/// the bench key): it must answer 200 and finish the stream.
pub async fn preflight(
    client: &reqwest::Client,
    gateway: &Service,
    headers: &[(&str, &str)],
) -> Result<(), String> {
    let body = serde_json::json!({
        "model": crate::bodies::MODEL,
        "messages": [{"role": "user", "content": "pre-flight"}],
        "max_tokens": 2,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut request = client
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", procs::API_KEY));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("pre-flight request: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status != 200 || !text.contains("[DONE]") {
        return Err(format!("pre-flight got {status}: {text:.300}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_setups_from_the_shipped_config() {
        let replicas: Vec<SocketAddr> = (0..4)
            .map(|i| format!("127.0.0.1:{}", 7001 + i).parse().expect("addr"))
            .collect();
        let picker = "127.0.0.1:7100".parse().expect("addr");
        let filter = crate::sluice_config::FILTER_CONFIGURATION;
        for (host, module) in [
            (Host::Native, "extensions.filters.http.dynamic_modules."),
            (Host::Wasm, "extensions.filters.http.wasm."),
        ] {
            let configs = envoy_configs(host, &replicas, picker, filter).expect("render");
            for port in 7001..=7004 {
                assert!(configs.sluice.contains(&format!("port_value: {port}")));
                assert!(configs.round_robin.contains(&format!("port_value: {port}")));
            }
            assert!(configs.sluice.contains("port_value: 7100"));
            assert!(configs.sluice.contains(module), "{host}");
            assert!(!configs.round_robin.contains(module), "{host}");
            assert!(configs.round_robin.contains(ROUND_ROBIN[1]));
            assert!(!configs.least_request.contains(ROUND_ROBIN[1]));
            assert!(configs.least_request.contains(LEAST_REQUEST[1]));
        }
    }

    #[test]
    fn picker_config_lists_the_replicas() {
        let replicas: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().expect("addr")];
        let text = picker_config("llama_8b", "m", &replicas, 50);
        assert!(text.contains("endpoints = [\"127.0.0.1:1\"]"));
        assert!(text.contains("scrape_interval_ms = 50"));
    }
}
