//! The picker's configuration file (TOML): where to listen, how often to scrape, when an endpoint
//! counts as unhealthy, and which model-server endpoints (static or from DNS) form which pool;
//! the cluster quota sync (`[quota]`), the tenancy store (`[tenancy]`) and the admin API
//! (`[admin]`). Parsed strictly (unknown keys are errors) and validated once; errors name the
//! offending key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    tenancy: Option<WireTenancy>,
    admin: Option<WireAdmin>,
}

/// `[tenancy]`: where tenants, projects, virtual keys and spend rows are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTenancy {
    store: String,
    path: Option<String>,
    spend_retention_days: Option<u32>,
    max_tenants: Option<usize>,
    max_keys: Option<usize>,
}

/// `[admin]`: the admin API's listeners and credential.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAdmin {
    listen: Option<Vec<String>>,
    token_env: Option<String>,
    token_sha256: Option<String>,
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
    /// The tenancy store: the snapshot (`GET /tenancy/snapshot`) and spend rows in the quota
    /// sync; absent: neither.
    pub tenancy: Option<TenancyConfig>,
    /// The admin API; absent: not served.
    pub admin: Option<AdminConfig>,
}

/// `[tenancy]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenancyConfig {
    pub store: StoreConfig,
    /// Spend rows older than this are dropped (Redis: the hour's hash expires; embedded: purged).
    pub spend_retention_days: u32,
    /// At most this many tenants and live keys (the admin API answers 409 `limit_reached`
    /// beyond); at most the snapshot's bounds (`sluice_wire::tenancy`).
    pub max_tenants: usize,
    pub max_keys: usize,
}

/// Which implementation of the tenancy store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `redb` in one file: one machine, no server.
    Embedded { path: PathBuf },
    /// The `[quota]` section's Redis, under its `key_prefix`: every picker of a cluster shares it.
    Redis {
        redis_url: String,
        key_prefix: String,
        timeout: Duration,
    },
}

/// `[admin]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// One listener per address; never the main listener's.
    pub listen: Vec<SocketAddr>,
    pub token: AdminToken,
}

/// Where the admin token comes from: it is never written in the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// The environment variable of this name holds the token (read at start).
    Env(String),
    /// The token's SHA-256.
    Sha256([u8; 32]),
}

impl AdminToken {
    /// The SHA-256 of the token. `env` reads an environment variable (std::env::var in the
    /// service; a map in tests). The error names the field.
    pub fn digest(&self, env: impl Fn(&str) -> Option<String>) -> Result<[u8; 32], String> {
        match self {
            Self::Sha256(digest) => Ok(*digest),
            Self::Env(name) => match env(name) {
                Some(token) if !token.trim().is_empty() => {
                    use sha2::Digest;
                    Ok(sha2::Sha256::digest(token.trim().as_bytes()).into())
                }
                _ => Err(format!(
                    "admin.token_env: the environment variable {name} is not set or empty"
                )),
            },
        }
    }
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
const DEFAULT_TENANCY_PATH: &str = "sluice-tenancy.redb";
const DEFAULT_SPEND_RETENTION_DAYS: u32 = 400;
/// Ten years: the spend report reads at most this far back.
pub const MAX_SPEND_RETENTION_DAYS: u32 = 3660;
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9190";
/// How long one tenancy operation may wait for Redis: a load of the largest state (50,000 keys)
/// takes a while, and nothing waits on it in the request path.
const TENANCY_REDIS_TIMEOUT: Duration = Duration::from_secs(5);

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
        let tenancy = wire
            .tenancy
            .map(|tenancy| parse_tenancy(tenancy, quota.as_ref()))
            .transpose()?;
        let admin = wire
            .admin
            .map(|admin| parse_admin(admin, listen))
            .transpose()?;
        if admin.is_some() && tenancy.is_none() {
            return Err(
                "admin: the admin API needs a [tenancy] section (the store it manages)".to_owned(),
            );
        }
        // A picker may serve the quota sync or the tenancy alone (no replica picking).
        if wire.pool.is_empty() && quota.is_none() && tenancy.is_none() {
            return Err(
                "pool: at least one [[pool]] (or a [quota] or [tenancy] section) is required"
                    .to_owned(),
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
            tenancy,
            admin,
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

fn parse_tenancy(
    tenancy: WireTenancy,
    quota: Option<&QuotaConfig>,
) -> Result<TenancyConfig, String> {
    let store = match tenancy.store.as_str() {
        "embedded" => {
            let path = tenancy
                .path
                .unwrap_or_else(|| DEFAULT_TENANCY_PATH.to_owned());
            if path.trim().is_empty() {
                return Err("tenancy.path: must not be empty".to_owned());
            }
            StoreConfig::Embedded {
                path: PathBuf::from(path),
            }
        }
        "redis" => {
            if tenancy.path.is_some() {
                return Err(
                    "tenancy.path: only for store = \"embedded\" (Redis is [quota] redis_url)"
                        .to_owned(),
                );
            }
            let quota = quota.ok_or_else(|| {
                "tenancy.store: \"redis\" uses the [quota] section's redis_url and key_prefix: add one"
                    .to_owned()
            })?;
            StoreConfig::Redis {
                redis_url: quota.redis_url.clone(),
                key_prefix: quota.key_prefix.clone(),
                timeout: TENANCY_REDIS_TIMEOUT,
            }
        }
        other => {
            return Err(format!(
                "tenancy.store: {other:?} is not one of \"embedded\", \"redis\""
            ));
        }
    };
    let spend_retention_days = tenancy
        .spend_retention_days
        .unwrap_or(DEFAULT_SPEND_RETENTION_DAYS);
    if !(1..=MAX_SPEND_RETENTION_DAYS).contains(&spend_retention_days) {
        return Err(format!(
            "tenancy.spend_retention_days: {spend_retention_days} is not between 1 and {MAX_SPEND_RETENTION_DAYS}"
        ));
    }
    let bound = |key: &str, value: Option<usize>, max: usize| match value {
        None => Ok(max),
        Some(value) if (1..=max).contains(&value) => Ok(value),
        Some(value) => Err(format!("tenancy.{key}: {value} is not between 1 and {max}")),
    };
    Ok(TenancyConfig {
        store,
        spend_retention_days,
        max_tenants: bound(
            "max_tenants",
            tenancy.max_tenants,
            sluice_wire::tenancy::MAX_TENANTS,
        )?,
        max_keys: bound("max_keys", tenancy.max_keys, sluice_wire::tenancy::MAX_KEYS)?,
    })
}

fn parse_admin(admin: WireAdmin, main: SocketAddr) -> Result<AdminConfig, String> {
    let raw = admin
        .listen
        .unwrap_or_else(|| vec![DEFAULT_ADMIN_LISTEN.to_owned()]);
    if raw.is_empty() {
        return Err("admin.listen: at least one ip:port address is required".to_owned());
    }
    let mut listen = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let addr: SocketAddr = text
            .parse()
            .map_err(|_| format!("admin.listen[{i}]: {text:?} is not an ip:port address"))?;
        if listen.contains(&addr) {
            return Err(format!("admin.listen[{i}]: {text:?} is listed twice"));
        }
        if addr == main && addr.port() != 0 {
            return Err(format!(
                "admin.listen[{i}]: {text:?} is the main listener's address (the admin API has its own)"
            ));
        }
        listen.push(addr);
    }
    let token = match (admin.token_env, admin.token_sha256) {
        (Some(_), Some(_)) => {
            return Err("admin.token_sha256: set token_env or token_sha256, not both".to_owned());
        }
        (None, None) => {
            return Err(
                "admin.token_env: the admin API needs a token: set token_env (an environment variable holding it) or token_sha256".to_owned(),
            );
        }
        (Some(name), None) => {
            let valid = !name.is_empty()
                && name.len() <= 128
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "admin.token_env: {name:?} is not an environment variable name"
                ));
            }
            AdminToken::Env(name)
        }
        (None, Some(hex)) => AdminToken::Sha256(parse_sha256(&hex).ok_or_else(|| {
            "admin.token_sha256: must be 64 hex digits (the SHA-256 of the token)".to_owned()
        })?),
    };
    Ok(AdminConfig { listen, token })
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
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

    use super::{AdminToken, Config, StoreConfig};
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
        let tenancy = config.tenancy.unwrap();
        assert!(matches!(tenancy.store, StoreConfig::Redis { .. }));
        let admin = config.admin.unwrap();
        assert_eq!(admin.listen, ["127.0.0.1:9190".parse().unwrap()]);
        assert_eq!(
            admin.token,
            AdminToken::Env("SLUICE_ADMIN_TOKEN".to_owned())
        );
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
    fn parses_the_tenancy_and_admin_sections() {
        let config = Config::parse(
            "[tenancy]\nstore = \"embedded\"\n[admin]\ntoken_env = \"SLUICE_ADMIN_TOKEN\"\n",
        )
        .unwrap();
        let tenancy = config.tenancy.unwrap();
        assert_eq!(
            tenancy.store,
            StoreConfig::Embedded {
                path: "sluice-tenancy.redb".into()
            }
        );
        assert_eq!(tenancy.spend_retention_days, 400);
        assert_eq!(tenancy.max_keys, sluice_wire::tenancy::MAX_KEYS);
        assert_eq!(tenancy.max_tenants, sluice_wire::tenancy::MAX_TENANTS);
        let admin = config.admin.unwrap();
        assert_eq!(admin.listen, ["127.0.0.1:9190".parse().unwrap()]);
        assert_eq!(
            admin.token,
            AdminToken::Env("SLUICE_ADMIN_TOKEN".to_owned())
        );

        let config = Config::parse(
            r#"
            [quota]
            redis_url = "redis://127.0.0.1:6390"
            key_prefix = "prod:"
            [tenancy]
            store = "redis"
            spend_retention_days = 30
            max_tenants = 5
            max_keys = 10
            [admin]
            listen = ["127.0.0.1:9190", "[::1]:9190"]
            token_sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
            "#,
        )
        .unwrap();
        let tenancy = config.tenancy.unwrap();
        let StoreConfig::Redis {
            redis_url,
            key_prefix,
            ..
        } = &tenancy.store
        else {
            panic!("{tenancy:?}")
        };
        assert_eq!(
            (redis_url.as_str(), key_prefix.as_str()),
            ("redis://127.0.0.1:6390", "prod:")
        );
        assert_eq!(
            (
                tenancy.spend_retention_days,
                tenancy.max_tenants,
                tenancy.max_keys
            ),
            (30, 5, 10)
        );
        let admin = config.admin.unwrap();
        assert_eq!(admin.listen.len(), 2);
        // SHA-256 of "abc".
        let digest = admin.token.digest(|_| None).unwrap();
        assert_eq!(digest[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn the_admin_token_comes_from_the_environment() {
        let token = AdminToken::Env("TOKEN".to_owned());
        let digest = token
            .digest(|name| (name == "TOKEN").then(|| "abc".to_owned()))
            .unwrap();
        assert_eq!(digest, AdminToken::Sha256(digest).digest(|_| None).unwrap());
        assert_eq!(digest[..4], [0xba, 0x78, 0x16, 0xbf]);
        for unset in [None, Some(String::new()), Some("  ".to_owned())] {
            let err = token.digest(|_| unset.clone()).unwrap_err();
            assert_eq!(
                err,
                "admin.token_env: the environment variable TOKEN is not set or empty"
            );
        }
    }

    #[test]
    fn invalid_tenancy_and_admin_values_are_named() {
        let embedded = "[tenancy]\nstore = \"embedded\"\n";
        let cases = [
            ("[tenancy]\nstore = \"sqlite\"\n".to_owned(), "tenancy.store: \"sqlite\" is not one of"),
            ("[tenancy]\nstore = \"redis\"\n".to_owned(), "tenancy.store: \"redis\" uses the [quota] section"),
            (
                "[quota]\nredis_url = \"redis://h:1\"\n[tenancy]\nstore = \"redis\"\npath = \"x\"\n".to_owned(),
                "tenancy.path: only for",
            ),
            ("[tenancy]\nstore = \"embedded\"\npath = \"\"\n".to_owned(), "tenancy.path:"),
            (format!("{embedded}spend_retention_days = 0\n"), "tenancy.spend_retention_days: 0 is not between"),
            (format!("{embedded}max_keys = 50001\n"), "tenancy.max_keys: 50001 is not between 1 and 50000"),
            (format!("{embedded}max_tenants = 0\n"), "tenancy.max_tenants:"),
            ("[admin]\ntoken_env = \"T\"\n".to_owned(), "admin: the admin API needs a [tenancy] section"),
            (format!("{embedded}[admin]\n"), "admin.token_env: the admin API needs a token"),
            (
                format!("{embedded}[admin]\ntoken_env = \"T\"\ntoken_sha256 = \"{}\"\n", "a".repeat(64)),
                "admin.token_sha256: set token_env or token_sha256, not both",
            ),
            (format!("{embedded}[admin]\ntoken_env = \"A-B\"\n"), "admin.token_env: \"A-B\" is not"),
            (format!("{embedded}[admin]\ntoken_sha256 = \"abc\"\n"), "admin.token_sha256: must be 64 hex digits"),
            (
                format!("{embedded}[admin]\ntoken_sha256 = \"+{}\"\n", "a".repeat(63)),
                "admin.token_sha256:",
            ),
            (format!("{embedded}[admin]\ntoken_env = \"T\"\nlisten = []\n"), "admin.listen: at least one"),
            (format!("{embedded}[admin]\ntoken_env = \"T\"\nlisten = [\"x\"]\n"), "admin.listen[0]:"),
            (
                format!("{embedded}[admin]\ntoken_env = \"T\"\nlisten = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n"),
                "admin.listen[1]: \"127.0.0.1:1\" is listed twice",
            ),
            (
                format!("{embedded}[admin]\ntoken_env = \"T\"\nlisten = [\"127.0.0.1:9100\"]\n"),
                "admin.listen[0]: \"127.0.0.1:9100\" is the main listener's address",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse(&text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
        let err = Config::parse(&format!("{embedded}token = \"x\"\n")).unwrap_err();
        assert!(err.contains("unknown field `token`"), "{err}");
        let err = Config::parse(&format!("{embedded}[admin]\ntoken = \"x\"\n")).unwrap_err();
        assert!(err.contains("unknown field `token`"), "{err}");
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
