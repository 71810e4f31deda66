//! The endpoints the picker currently knows, per pool, each with what its scrapes have told so
//! far. Discovery replaces a pool's endpoint list; the scrape rounds read it and update each
//! endpoint's state; the snapshot is assembled from it.
//!
//! An endpoint's state lives behind its own small mutex, held only to copy a result in or out,
//! so a thousand concurrent scrapes do not contend on one lock.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use reqwest::Url;
use tokio::time::Instant;

use crate::config;
use crate::health::Health;
use crate::scrape::{Load, ServerKind};

pub struct Registry {
    pools: Vec<PoolEntry>,
}

/// One pool: its configuration and its current endpoints.
pub struct PoolEntry {
    pub name: String,
    pub model: String,
    /// Forced metric dialect, if configured.
    pub server: Option<ServerKind>,
    metrics_port: Option<u16>,
    metrics_path: String,
    /// Sorted by address. Replaced whole, so readers take a cheap `Arc` and never hold the lock.
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
}

/// One model-server replica.
pub struct Endpoint {
    /// Where Envoy sends requests (and what the snapshot names).
    pub address: SocketAddr,
    /// Where its metrics are scraped.
    pub metrics_url: Url,
    /// Set while a scrape of this endpoint is queued or running: a round skips the endpoint
    /// rather than stacking a second scrape behind a slow one.
    in_flight: AtomicBool,
    state: Mutex<EndpointState>,
}

/// What the scrapes of one endpoint have established.
#[derive(Debug, Clone, Default)]
pub struct EndpointState {
    pub health: Health,
    /// The load at the last successful scrape.
    pub load: Option<Load>,
    /// On tokio's clock, which tests can pause and advance.
    pub last_success: Option<Instant>,
    /// The dialect its last successful page was read in.
    pub server: Option<ServerKind>,
}

/// The endpoints a replacement added and removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<SocketAddr>,
    pub removed: Vec<SocketAddr>,
}

impl Registry {
    /// The pools of `config`, still without endpoints (discovery adds them).
    pub fn new(config: &config::Config) -> Self {
        let pools = config
            .pools
            .iter()
            .map(|pool| PoolEntry {
                name: pool.name.clone(),
                model: pool.model.clone(),
                server: pool.server,
                metrics_port: pool.metrics_port,
                metrics_path: pool.metrics_path.clone(),
                endpoints: RwLock::new(Arc::new(Vec::new())),
            })
            .collect();
        Self { pools }
    }

    pub fn pools(&self) -> &[PoolEntry] {
        &self.pools
    }
}

impl PoolEntry {
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `addresses` the pool's endpoints. Endpoints that stay keep their state (health,
    /// last load); new ones start unhealthy and never scraped.
    pub fn replace_endpoints(&self, addresses: &BTreeSet<SocketAddr>) -> Changes {
        let current = self.endpoints();
        let by_address: HashMap<SocketAddr, &Arc<Endpoint>> = current
            .iter()
            .map(|endpoint| (endpoint.address, endpoint))
            .collect();
        let mut changes = Changes::default();
        let mut next = Vec::with_capacity(addresses.len());
        for address in addresses {
            match by_address.get(address) {
                Some(existing) => next.push(Arc::clone(*existing)),
                None => match self.new_endpoint(*address) {
                    Ok(endpoint) => {
                        changes.added.push(*address);
                        next.push(Arc::new(endpoint));
                    }
                    Err(why) => tracing::error!(pool = %self.name, %address, "{why}"),
                },
            }
        }
        changes.removed = current
            .iter()
            .map(|endpoint| endpoint.address)
            .filter(|address| !addresses.contains(address))
            .collect();
        if !changes.added.is_empty() || !changes.removed.is_empty() {
            *self
                .endpoints
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        }
        changes
    }

    fn new_endpoint(&self, address: SocketAddr) -> Result<Endpoint, String> {
        let mut scraped = address;
        if let Some(port) = self.metrics_port {
            scraped.set_port(port);
        }
        let text = format!("http://{scraped}{}", self.metrics_path);
        let metrics_url =
            Url::parse(&text).map_err(|err| format!("cannot scrape {text:?}: {err}"))?;
        Ok(Endpoint {
            address,
            metrics_url,
            in_flight: AtomicBool::new(false),
            state: Mutex::new(EndpointState::default()),
        })
    }
}

impl Endpoint {
    /// Claims the endpoint for one scrape; `None` while the previous one is still in flight.
    pub fn try_begin(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| InFlight {
                endpoint: Arc::clone(self),
            })
    }

    pub fn state(&self) -> MutexGuard<'_, EndpointState> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters (every field is replaced whole), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A claimed endpoint; dropping it (also when the scrape task is cancelled) releases the claim.
pub struct InFlight {
    endpoint: Arc<Endpoint>,
}

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::Registry;
    use crate::config::Config;
    use crate::health::HealthPolicy;

    fn addrs(list: &[&str]) -> BTreeSet<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn replacing_keeps_the_state_of_endpoints_that_stay() {
        let config = Config::parse(
            "[[pool]]\nname=\"p\"\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\"]\nmetrics_port=9\nmetrics_path=\"/m\"\n",
        )
        .unwrap();
        let registry = Registry::new(&config);
        let pool = &registry.pools()[0];
        assert!(pool.endpoints().is_empty());

        let changes = pool.replace_endpoints(&addrs(&["10.0.0.2:80", "10.0.0.1:80"]));
        assert_eq!(
            changes.added,
            addrs(&["10.0.0.1:80", "10.0.0.2:80"])
                .into_iter()
                .collect::<Vec<_>>()
        );
        let first = pool.endpoints();
        assert_eq!(first[0].address.to_string(), "10.0.0.1:80");
        assert_eq!(first[0].metrics_url.as_str(), "http://10.0.0.1:9/m");
        let policy = HealthPolicy {
            unhealthy_after: 1,
            healthy_after: 1,
        };
        first[0].state().health.record_success(policy);

        let changes = pool.replace_endpoints(&addrs(&["10.0.0.1:80", "10.0.0.3:80"]));
        assert_eq!(
            changes.added,
            addrs(&["10.0.0.3:80"]).into_iter().collect::<Vec<_>>()
        );
        assert_eq!(
            changes.removed,
            addrs(&["10.0.0.2:80"]).into_iter().collect::<Vec<_>>()
        );
        let second = pool.endpoints();
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        assert!(second[0].state().health.is_healthy());
        assert!(!second[1].state().health.is_healthy());

        let unchanged = pool.replace_endpoints(&addrs(&["10.0.0.1:80", "10.0.0.3:80"]));
        assert_eq!(unchanged, Default::default());
        assert!(Arc::ptr_eq(&second, &pool.endpoints()));
    }

    #[test]
    fn one_scrape_in_flight_per_endpoint() {
        let config = Config::parse("[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\"]\n").unwrap();
        let registry = Registry::new(&config);
        let pool = &registry.pools()[0];
        pool.replace_endpoints(&addrs(&["127.0.0.1:1"]));
        let endpoint = Arc::clone(&pool.endpoints()[0]);
        let claim = endpoint.try_begin().unwrap();
        assert!(endpoint.try_begin().is_none());
        drop(claim);
        assert!(endpoint.try_begin().is_some());
    }
}
