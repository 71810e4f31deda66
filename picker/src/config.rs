//! The picker's configuration file (TOML): where to listen, how often to scrape, when an endpoint
//! counts as unhealthy, and which model-server endpoints (static or from DNS) form which pool.
//! Parsed strictly (unknown keys are errors) and validated once; errors name the offending key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::scrape::ServerKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireConfig {
    listen: Option<String>,
    scrape_interval_ms: Option<u64>,
    scrape_timeout_ms: Option<u64>,
    dns_refresh_ms: Option<u64>,
    unhealthy_after: Option<u32>,
    healthy_after: Option<u32>,
    max_concurrent_scrapes: Option<usize>,
    #[serde(default)]
    pool: Vec<WirePool>,
    quota: Option<WireQuota>,
}

/// `[quota]`: the cluster quota sync, backed by Redis.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireQuota {
    redis_url: String,
    key_prefix: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePool {
    name: Option<String>,
    model: String,
    #[serde(default)]
    endpoints: Vec<String>,
    dns: Option<String>,
    server: Option<String>,
    metrics_port: Option<u16>,
    metrics_path: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    /// How often every endpoint is scraped and a snapshot published.
    pub scrape_interval: Duration,
    /// Longest one scrape (connect, request, whole body) may take.
    pub scrape_timeout: Duration,
    /// How often `dns` names are resolved again.
    pub dns_refresh: Duration,
    /// Consecutive failed scrapes after which a healthy endpoint is marked unhealthy.
    pub unhealthy_after: u32,
    /// Consecutive successful scrapes after which an unhealthy endpoint is healthy again.
    pub healthy_after: u32,
    /// Scrapes in flight at once, over all pools: bounds the memory and the bursts of a large
    /// fleet. The rounds complete only if it is at least endpoints × scrape latency / interval
    /// (1,000 endpoints answering in 10 ms every 50 ms need 200).
    pub max_concurrent_scrapes: usize,
    pub pools: Vec<Pool>,
    /// The cluster quota sync (`POST /quota/sync`); absent: not served.
    pub quota: Option<QuotaConfig>,
}

/// Where the cluster's quota counters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaConfig {
    /// `redis://[user:password@]host:port[/db]` (or `unix://` / `redis+unix://`).
    pub redis_url: String,
    /// Put before every key, so that several deployments can share one Redis.
    pub key_prefix: String,
    /// Longest a sync waits for Redis (connecting included) before it answers 503: the filter
    /// then keeps its local view. Kept well under the filter's sync interval.
    pub timeout: Duration,
}

/// The replicas that serve one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The name the filter's `models.<model>.pool` refers to.
    pub name: String,
    pub model: String,
    /// Fixed `ip:port` endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// A name resolving to many addresses (a Kubernetes headless Service), re-resolved every
    /// `dns_refresh`.
    pub dns: Option<DnsName>,
    /// Forces the metric dialect; detected from the metric names when absent.
    pub server: Option<ServerKind>,
    /// Scrape this port instead of the serving port (Triton serves metrics on its own port).
    pub metrics_port: Option<u16>,
    pub metrics_path: String,
}

/// `host:port` to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for DnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

const DEFAULT_LISTEN: &str = "127.0.0.1:9100";
const DEFAULT_SCRAPE_INTERVAL_MS: u64 = 50;
const DEFAULT_SCRAPE_TIMEOUT_MS: u64 = 500;
const DEFAULT_DNS_REFRESH_MS: u64 = 5_000;
const DEFAULT_UNHEALTHY_AFTER: u32 = 3;
const DEFAULT_HEALTHY_AFTER: u32 = 2;
const DEFAULT_MAX_CONCURRENT_SCRAPES: usize = 256;
const DEFAULT_METRICS_PATH: &str = "/metrics";
const DEFAULT_QUOTA_KEY_PREFIX: &str = "sluice:q:";
const DEFAULT_QUOTA_TIMEOUT_MS: u64 = 250;

impl Config {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let wire: WireConfig = toml::from_str(text).map_err(|err| err.to_string())?;
        let listen_text = wire.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text
            .parse()
            .map_err(|_| format!("listen: {listen_text:?} is not an ip:port address"))?;
        let scrape_interval = millis(
            "scrape_interval_ms",
            wire.scrape_interval_ms,
            DEFAULT_SCRAPE_INTERVAL_MS,
            10..=60_000,
        )?;
        let scrape_timeout = millis(
            "scrape_timeout_ms",
            wire.scrape_timeout_ms,
            DEFAULT_SCRAPE_TIMEOUT_MS,
            1..=60_000,
        )?;
        let dns_refresh = millis(
            "dns_refresh_ms",
            wire.dns_refresh_ms,
            DEFAULT_DNS_REFRESH_MS,
            100..=3_600_000,
        )?;
        let unhealthy_after = count(
            "unhealthy_after",
            wire.unhealthy_after,
            DEFAULT_UNHEALTHY_AFTER,
        )?;
        let healthy_after = count("healthy_after", wire.healthy_after, DEFAULT_HEALTHY_AFTER)?;
        let max_concurrent_scrapes = wire
            .max_concurrent_scrapes
            .unwrap_or(DEFAULT_MAX_CONCURRENT_SCRAPES);
        if !(1..=100_000).contains(&max_concurrent_scrapes) {
            return Err(format!(
                "max_concurrent_scrapes: {max_concurrent_scrapes} is not between 1 and 100000"
            ));
        }
        let quota = wire.quota.map(parse_quota).transpose()?;
        // A picker may serve the quota sync alone (no replica picking).
        if wire.pool.is_empty() && quota.is_none() {
            return Err(
                "pool: at least one [[pool]] (or a [quota] section) is required".to_owned(),
            );
        }
        let mut names = HashMap::new();
        let mut owners: HashMap<SocketAddr, usize> = HashMap::new();
        let mut pools = Vec::with_capacity(wire.pool.len());
        for (i, wire_pool) in wire.pool.into_iter().enumerate() {
            let pool = parse_pool(i, wire_pool)?;
            if let Some(first) = names.insert(pool.name.clone(), i) {
                return Err(format!(
                    "pool[{i}].name: {:?} is already the name of pool[{first}]",
                    pool.name
                ));
            }
            for (j, addr) in pool.endpoints.iter().enumerate() {
                if let Some(owner) = owners.insert(*addr, i) {
                    if owner != i {
                        return Err(format!(
                            "pool[{i}].endpoints[{j}]: {addr} is already an endpoint of pool[{owner}]"
                        ));
                    }
                }
            }
            pools.push(pool);
        }
        Ok(Self {
            listen,
            scrape_interval,
            scrape_timeout,
            dns_refresh,
            unhealthy_after,
            healthy_after,
            max_concurrent_scrapes,
            pools,
            quota,
        })
    }

    /// Endpoints known from the file alone (DNS pools add theirs at run time).
    pub fn static_endpoint_count(&self) -> usize {
        self.pools.iter().map(|pool| pool.endpoints.len()).sum()
    }
}

fn parse_pool(i: usize, pool: WirePool) -> Result<Pool, String> {
    if pool.model.trim().is_empty() {
        return Err(format!("pool[{i}].model: must not be empty"));
    }
    let name = pool.name.unwrap_or_else(|| pool.model.clone());
    if name.trim().is_empty() {
        return Err(format!("pool[{i}].name: must not be empty"));
    }
    if pool.endpoints.is_empty() && pool.dns.is_none() {
        return Err(format!(
            "pool[{i}].endpoints: at least one endpoint (or a `dns` name) is required"
        ));
    }
    let mut endpoints = Vec::with_capacity(pool.endpoints.len());
    for (j, raw) in pool.endpoints.iter().enumerate() {
        let addr: SocketAddr = raw.parse().map_err(|_| {
            format!(
                "pool[{i}].endpoints[{j}]: {raw:?} is not an ip:port address (use `dns` for host names)"
            )
        })?;
        if endpoints.contains(&addr) {
            return Err(format!("pool[{i}].endpoints[{j}]: {raw:?} is listed twice"));
        }
        endpoints.push(addr);
    }
    let dns = match pool.dns {
        Some(raw) => Some(parse_dns_name(&raw).map_err(|why| format!("pool[{i}].dns: {why}"))?),
        None => None,
    };
    let server = match pool.server {
        Some(raw) => Some(ServerKind::from_config(&raw).ok_or_else(|| {
            format!("pool[{i}].server: {raw:?} is not one of \"vllm\", \"sglang\", \"trtllm\", \"triton\"")
        })?),
        None => None,
    };
    if pool.metrics_port == Some(0) {
        return Err(format!("pool[{i}].metrics_port: must not be 0"));
    }
    let metrics_path = pool
        .metrics_path
        .unwrap_or_else(|| DEFAULT_METRICS_PATH.to_owned());
    if !metrics_path.starts_with('/') || metrics_path.chars().any(char::is_whitespace) {
        return Err(format!(
            "pool[{i}].metrics_path: {metrics_path:?} must be a path starting with /"
        ));
    }
    Ok(Pool {
        name,
        model: pool.model,
        endpoints,
        dns,
        server,
        metrics_port: pool.metrics_port,
        metrics_path,
    })
}

fn parse_quota(quota: WireQuota) -> Result<QuotaConfig, String> {
    // Parsed, not connected: Redis may come up after the picker.
    redis::Client::open(quota.redis_url.as_str()).map_err(|err| {
        format!(
            "quota.redis_url: {:?} is not a Redis URL: {err}",
            quota.redis_url
        )
    })?;
    let key_prefix = quota
        .key_prefix
        .unwrap_or_else(|| DEFAULT_QUOTA_KEY_PREFIX.to_owned());
    if key_prefix.len() > 128
        || key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "quota.key_prefix: {key_prefix:?} must be at most 128 bytes without spaces"
        ));
    }
    let timeout = millis(
        "quota.timeout_ms",
        quota.timeout_ms,
        DEFAULT_QUOTA_TIMEOUT_MS,
        10..=10_000,
    )?;
    Ok(QuotaConfig {
        redis_url: quota.redis_url,
        key_prefix,
        timeout,
    })
}

fn parse_dns_name(raw: &str) -> Result<DnsName, String> {
    let (host, port) = raw
        .rsplit_once(':')
        .ok_or_else(|| format!("{raw:?} is not a host:port name"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("{raw:?} has no valid port"))?;
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !valid_host {
        return Err(format!("{raw:?} is not a host:port name"));
    }
    Ok(DnsName {
        host: host.to_owned(),
        port,
    })
}

fn millis(
    key: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, String> {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        return Err(format!(
            "{key}: {value} is not between {} and {}",
            range.start(),
            range.end()
        ));
    }
    Ok(Duration::from_millis(value))
}

fn count(key: &str, value: Option<u32>, default: u32) -> Result<u32, String> {
    let value = value.unwrap_or(default);
    if !(1..=10_000).contains(&value) {
        return Err(format!("{key}: {value} is not between 1 and 10000"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Config;
    use crate::scrape::ServerKind;

    #[test]
    fn parses_pools_and_defaults() {
        let config = Config::parse(
            r#"
            [[pool]]
            model = "llama"
            endpoints = ["127.0.0.1:8001", "[::1]:8002"]
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(config.scrape_interval, Duration::from_millis(50));
        assert_eq!(config.scrape_timeout, Duration::from_millis(500));
        assert_eq!(config.dns_refresh, Duration::from_secs(5));
        assert_eq!((config.unhealthy_after, config.healthy_after), (3, 2));
        assert_eq!(config.max_concurrent_scrapes, 256);
        let pool = &config.pools[0];
        assert_eq!(
            (pool.name.as_str(), pool.model.as_str()),
            ("llama", "llama")
        );
        assert_eq!(pool.metrics_path, "/metrics");
        assert_eq!(pool.server, None);
        assert_eq!(config.static_endpoint_count(), 2);
    }

    #[test]
    fn parses_every_key() {
        let config = Config::parse(
            r#"
            listen = "0.0.0.0:9200"
            scrape_interval_ms = 100
            scrape_timeout_ms = 250
            dns_refresh_ms = 2000
            unhealthy_after = 5
            healthy_after = 1
            max_concurrent_scrapes = 16

            [[pool]]
            name = "llama_8b"
            model = "meta-llama/Llama-3.1-8B-Instruct"
            dns = "vllm-llama.default.svc.cluster.local:8000"
            server = "vllm"

            [[pool]]
            name = "trt"
            model = "m"
            endpoints = ["10.0.0.1:8000"]
            server = "triton"
            metrics_port = 8002
            metrics_path = "/custom/metrics"
            "#,
        )
        .unwrap();
        assert_eq!(config.scrape_interval, Duration::from_millis(100));
        assert_eq!(config.scrape_timeout, Duration::from_millis(250));
        assert_eq!(config.dns_refresh, Duration::from_secs(2));
        assert_eq!((config.unhealthy_after, config.healthy_after), (5, 1));
        assert_eq!(config.max_concurrent_scrapes, 16);
        let llama = &config.pools[0];
        assert_eq!(llama.name, "llama_8b");
        let dns = llama.dns.as_ref().unwrap();
        assert_eq!(dns.to_string(), "vllm-llama.default.svc.cluster.local:8000");
        assert_eq!(llama.server, Some(ServerKind::Vllm));
        assert!(llama.endpoints.is_empty());
        let trt = &config.pools[1];
        assert_eq!(trt.server, Some(ServerKind::Triton));
        assert_eq!(trt.metrics_port, Some(8002));
        assert_eq!(trt.metrics_path, "/custom/metrics");
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let text = include_str!("../../picker.toml");
        let config = Config::parse(text).unwrap();
        let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["llama_8b", "qwen_7b"]);
        assert_eq!(config.static_endpoint_count(), 3);
        let quota = config.quota.unwrap();
        assert_eq!(quota.redis_url, "redis://127.0.0.1:6390");
    }

    #[test]
    fn parses_the_quota_section() {
        let config = Config::parse("[quota]\nredis_url = \"redis://127.0.0.1:6379\"\n").unwrap();
        let quota = config.quota.unwrap();
        assert_eq!(quota.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(quota.key_prefix, "sluice:q:");
        assert_eq!(quota.timeout, Duration::from_millis(250));
        assert!(config.pools.is_empty());
        let config = Config::parse(
            "[quota]\nredis_url = \"redis://10.0.0.5:6380/2\"\nkey_prefix = \"prod:\"\ntimeout_ms = 100\n",
        )
        .unwrap();
        let quota = config.quota.unwrap();
        assert_eq!(quota.key_prefix, "prod:");
        assert_eq!(quota.timeout, Duration::from_millis(100));
    }

    #[test]
    fn invalid_quota_values_are_named() {
        let cases = [
            ("[quota]\nredis_url = \"http://x\"\n", "quota.redis_url:"),
            (
                "[quota]\nredis_url = \"redis://h:1\"\nkey_prefix = \"a b\"\n",
                "quota.key_prefix:",
            ),
            (
                "[quota]\nredis_url = \"redis://h:1\"\ntimeout_ms = 1\n",
                "quota.timeout_ms: 1 is not between 10 and 10000",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
        let err = Config::parse("[quota]\nredis_url = \"redis://h:1\"\nredis = 1\n").unwrap_err();
        assert!(err.contains("unknown field `redis`"), "{err}");
        let err = Config::parse("[quota]\n").unwrap_err();
        assert!(err.contains("redis_url"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[[pool]]\nmodel = \"m\"\nendpoint = []\n").unwrap_err();
        assert!(err.contains("unknown field `endpoint`"), "{err}");
        let err = Config::parse("scrape_interval = 5\n[[pool]]\nmodel = \"m\"\n").unwrap_err();
        assert!(err.contains("unknown field `scrape_interval`"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        let pool = "[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\"]\n";
        let cases = [
            (format!("listen = \"nowhere\"\n{pool}"), "listen:"),
            (String::new(), "pool: at least one"),
            (
                format!("scrape_interval_ms = 5\n{pool}"),
                "scrape_interval_ms: 5 is not between 10 and 60000",
            ),
            (
                format!("scrape_timeout_ms = 0\n{pool}"),
                "scrape_timeout_ms:",
            ),
            (format!("dns_refresh_ms = 1\n{pool}"), "dns_refresh_ms:"),
            (format!("unhealthy_after = 0\n{pool}"), "unhealthy_after:"),
            (format!("healthy_after = 0\n{pool}"), "healthy_after:"),
            (
                format!("max_concurrent_scrapes = 0\n{pool}"),
                "max_concurrent_scrapes:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[]".to_owned(),
                "pool[0].endpoints: at least one",
            ),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[\"host:80\"]".to_owned(),
                "pool[0].endpoints[0]:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\",\"127.0.0.1:1\"]".to_owned(),
                "pool[0].endpoints[1]: \"127.0.0.1:1\" is listed twice",
            ),
            (
                format!("{pool}[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:2\"]"),
                "pool[1].name: \"m\" is already the name of pool[0]",
            ),
            (
                format!("{pool}[[pool]]\nmodel=\"n\"\nendpoints=[\"127.0.0.1:1\"]"),
                "pool[1].endpoints[0]: 127.0.0.1:1 is already an endpoint of pool[0]",
            ),
            (
                "[[pool]]\nmodel=\" \"\nendpoints=[\"127.0.0.1:1\"]".to_owned(),
                "pool[0].model:",
            ),
            (
                "[[pool]]\nname=\"\"\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\"]".to_owned(),
                "pool[0].name:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\ndns=\"svc\"".to_owned(),
                "pool[0].dns: \"svc\" is not a host:port name",
            ),
            (
                "[[pool]]\nmodel=\"m\"\ndns=\"svc:0\"".to_owned(),
                "pool[0].dns:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\ndns=\"a b:80\"".to_owned(),
                "pool[0].dns:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\ndns=\"svc:80\"\nserver=\"tgi\"".to_owned(),
                "pool[0].server: \"tgi\" is not one of",
            ),
            (
                "[[pool]]\nmodel=\"m\"\ndns=\"svc:80\"\nmetrics_port=0".to_owned(),
                "pool[0].metrics_port:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\ndns=\"svc:80\"\nmetrics_path=\"metrics\"".to_owned(),
                "pool[0].metrics_path:",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse(&text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn type_errors_name_the_key() {
        let err = Config::parse("scrape_interval_ms = \"fast\"\n").unwrap_err();
        assert!(err.contains("scrape_interval_ms"), "{err}");
        let err = Config::parse("unhealthy_after = -1\n").unwrap_err();
        assert!(err.contains("unhealthy_after"), "{err}");
    }
}
