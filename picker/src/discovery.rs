//! Which endpoints each pool has: its static `endpoints` plus every address its `dns` name
//! resolves to (a Kubernetes headless Service answers with one address per ready pod), resolved
//! at startup and again every `dns_refresh`.
//!
//! A failed resolution keeps the addresses of the last good one: a DNS hiccup must not empty a
//! pool. Endpoints of pods that are really gone fail their scrapes and turn unhealthy on their
//! own, and leave the pool at the next good resolution.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::config::{Config, DnsName};
use crate::metrics::Metrics;
use crate::registry::{Changes, Registry};

/// Longest a resolution may take; the system resolver can hang on an unreachable server.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Discovery {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    pools: Vec<PoolSources>,
    refresh: Duration,
}

/// Where one pool's endpoints come from.
struct PoolSources {
    fixed: BTreeSet<SocketAddr>,
    dns: Option<DnsName>,
    /// The last successful resolution of `dns`.
    resolved: BTreeSet<SocketAddr>,
}

impl Discovery {
    pub fn new(config: &Config, registry: Arc<Registry>, metrics: Arc<Metrics>) -> Self {
        let pools = config
            .pools
            .iter()
            .map(|pool| PoolSources {
                fixed: pool.endpoints.iter().copied().collect(),
                dns: pool.dns.clone(),
                resolved: BTreeSet::new(),
            })
            .collect();
        Self {
            registry,
            metrics,
            pools,
            refresh: config.dns_refresh,
        }
    }

    /// Whether any pool has a name to re-resolve.
    pub fn has_dns(&self) -> bool {
        self.pools.iter().any(|pool| pool.dns.is_some())
    }

    /// Resolves every name once and sets every pool's endpoints.
    pub async fn refresh_all(&mut self) {
        for index in 0..self.pools.len() {
            self.refresh_pool(index).await;
        }
    }

    /// Refreshes every `dns_refresh` until the task is dropped (the first refresh is
    /// `refresh_all` at startup).
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.refresh);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.refresh_all().await;
        }
    }

    async fn refresh_pool(&mut self, index: usize) {
        let (Some(sources), Some(pool)) =
            (self.pools.get_mut(index), self.registry.pools().get(index))
        else {
            return;
        };
        if let Some(name) = &sources.dns {
            match resolve(name).await {
                Ok(addresses) => sources.resolved = addresses,
                Err(why) => {
                    if let Some(metrics) = self.metrics.pool(index) {
                        metrics.dns_error();
                    }
                    tracing::warn!(
                        pool = %pool.name,
                        "cannot resolve {name}: {why}; keeping {} known addresses",
                        sources.resolved.len()
                    );
                }
            }
        }
        let addresses: BTreeSet<SocketAddr> =
            sources.fixed.union(&sources.resolved).copied().collect();
        let Changes { added, removed } = pool.replace_endpoints(&addresses);
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(
                pool = %pool.name,
                endpoints = addresses.len(),
                added = %list(&added),
                removed = %list(&removed),
                "pool endpoints changed"
            );
        }
    }
}

/// Every address `name` resolves to, each with the name's port.
async fn resolve(name: &DnsName) -> Result<BTreeSet<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((name.host.as_str(), name.port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addresses)) => Ok(addresses.collect()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {RESOLVE_TIMEOUT:?}")),
    }
}

/// A short list for a log line: a thousand-pod scale-up should not log a thousand addresses.
fn list(addresses: &[SocketAddr]) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = addresses
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    if addresses.len() > SHOWN {
        text.push(format!("and {} more", addresses.len() - SHOWN));
    }
    format!("[{}]", text.join(", "))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Discovery, list};
    use crate::config::Config;
    use crate::metrics::Metrics;
    use crate::registry::Registry;

    fn discovery(text: &str) -> (Discovery, Arc<Registry>, Arc<Metrics>) {
        let config = Config::parse(text).unwrap();
        let registry = Arc::new(Registry::new(&config));
        let metrics = Arc::new(Metrics::new(config.pools.iter().map(|p| p.name.as_str())));
        let discovery = Discovery::new(&config, Arc::clone(&registry), Arc::clone(&metrics));
        (discovery, registry, metrics)
    }

    #[tokio::test]
    async fn static_and_resolved_endpoints_are_merged() {
        let (mut discovery, registry, _) = discovery(
            "[[pool]]\nmodel=\"m\"\nendpoints=[\"10.1.1.1:8000\"]\ndns=\"localhost:8123\"\n",
        );
        assert!(discovery.has_dns());
        discovery.refresh_all().await;
        let endpoints: Vec<String> = registry.pools()[0]
            .endpoints()
            .iter()
            .map(|e| e.address.to_string())
            .collect();
        assert!(
            endpoints.contains(&"10.1.1.1:8000".to_owned()),
            "{endpoints:?}"
        );
        assert!(
            endpoints
                .iter()
                .any(|e| e == "127.0.0.1:8123" || e == "[::1]:8123"),
            "{endpoints:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_resolution_keeps_the_last_addresses_and_is_counted() {
        let (mut discovery, registry, metrics) =
            discovery("[[pool]]\nname=\"p\"\nmodel=\"m\"\ndns=\"localhost:8123\"\n");
        discovery.refresh_all().await;
        let known = registry.pools()[0].endpoints().len();
        assert!(known >= 1);
        // `.invalid` never resolves (RFC 6761).
        discovery.pools[0].dns = Some(crate::config::DnsName {
            host: "no-such-host.invalid".to_owned(),
            port: 8123,
        });
        discovery.refresh_all().await;
        assert_eq!(registry.pools()[0].endpoints().len(), known);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("sluice_picker_dns_resolution_errors_total{pool=\"p\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn long_lists_are_shortened() {
        let addresses: Vec<_> = (1..=10)
            .map(|i| format!("10.0.0.{i}:80").parse().unwrap())
            .collect();
        assert_eq!(list(&addresses[..1]), "[10.0.0.1:80]");
        assert!(list(&addresses).ends_with("10.0.0.8:80, and 2 more]"));
    }
}
