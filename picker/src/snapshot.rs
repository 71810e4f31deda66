//! Assembling the snapshot from the registry and publishing it: encoded once per round, so a
//! reader (the filter's leader worker, polling) only clones a reference-counted buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use sluice_wire::{Endpoint, FORMAT, MAX_ENCODED_BYTES, Pool, Snapshot};
use tokio::time::Instant;

use crate::registry::Registry;

/// `metrics_age_ms` of an endpoint that has never been scraped successfully.
pub const NEVER_SCRAPED_AGE_MS: u32 = u32::MAX;

/// One published snapshot: the value (for the JSON view) and its encoding.
pub struct Published {
    pub snapshot: Snapshot,
    pub encoded: Bytes,
}

pub struct Publisher {
    latest: RwLock<Option<Arc<Published>>>,
    next_version: AtomicU64,
}

impl Publisher {
    /// Versions start at the Unix time in milliseconds when the picker started, so they keep
    /// growing across a restart (a round takes at least a millisecond); within one run each
    /// published snapshot is the previous version plus one.
    pub fn new() -> Self {
        Self::starting_at(unix_ms(SystemTime::now()).max(1))
    }

    pub fn starting_at(first_version: u64) -> Self {
        Self {
            latest: RwLock::new(None),
            next_version: AtomicU64::new(first_version),
        }
    }

    /// The last published snapshot, if a round has finished yet.
    pub fn latest(&self) -> Option<Arc<Published>> {
        self.latest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Assembles, encodes and publishes the next snapshot.
    pub fn publish(
        &self,
        registry: &Registry,
        scrape_interval: Duration,
    ) -> Result<Arc<Published>, String> {
        let version = self.next_version.load(Ordering::Acquire);
        let snapshot = assemble(
            registry,
            version,
            scrape_interval,
            Instant::now(),
            SystemTime::now(),
        );
        let encoded = snapshot
            .encode()
            .map_err(|err| format!("cannot encode snapshot {version}: {err}"))?;
        if encoded.len() > MAX_ENCODED_BYTES {
            // Published anyway: readers reject it with a clear error, which is better than
            // silently serving an ever older snapshot.
            tracing::error!(
                bytes = encoded.len(),
                limit = MAX_ENCODED_BYTES,
                "snapshot is larger than readers accept"
            );
        }
        let published = Arc::new(Published {
            snapshot,
            encoded: Bytes::from(encoded),
        });
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&published));
        self.next_version
            .store(version.saturating_add(1), Ordering::Release);
        Ok(published)
    }
}

/// The snapshot of the registry's current state. `now` and `wall_now` are the same moment on the
/// monotonic (tokio's) and the wall clock (ages come from the first, the timestamp from the
/// second).
pub fn assemble(
    registry: &Registry,
    version: u64,
    scrape_interval: Duration,
    now: Instant,
    wall_now: SystemTime,
) -> Snapshot {
    let pools = registry
        .pools()
        .iter()
        .map(|pool| Pool {
            name: pool.name.clone(),
            model: pool.model.clone(),
            endpoints: pool
                .endpoints()
                .iter()
                .map(|endpoint| {
                    let state = endpoint.state().clone();
                    let load = state.load.unwrap_or_default();
                    Endpoint {
                        address: endpoint.address.to_string(),
                        healthy: state.health.is_healthy(),
                        waiting: load.waiting,
                        running: load.running,
                        kv_cache_usage: load.kv_cache_usage,
                        block_size: load.block_size,
                        lora: load.lora,
                        metrics_age_ms: state.last_success.map_or(NEVER_SCRAPED_AGE_MS, |at| {
                            millis_u32(now.saturating_duration_since(at))
                        }),
                    }
                })
                .collect(),
        })
        .collect();
    Snapshot {
        format: FORMAT,
        version,
        taken_at_unix_ms: unix_ms(wall_now),
        scrape_interval_ms: millis_u32(scrape_interval),
        pools,
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::time::{Duration, UNIX_EPOCH};

    use sluice_wire::{FORMAT, Snapshot};
    use tokio::time::Instant;

    use super::{NEVER_SCRAPED_AGE_MS, Publisher, assemble};
    use crate::config::Config;
    use crate::health::HealthPolicy;
    use crate::registry::Registry;
    use crate::scrape::Load;

    fn registry() -> Registry {
        let config = Config::parse(
            "[[pool]]\nname=\"llama_8b\"\nmodel=\"llama\"\nendpoints=[\"127.0.0.1:1\"]\n\
             [[pool]]\nname=\"qwen_7b\"\nmodel=\"qwen\"\nendpoints=[\"127.0.0.1:2\"]\n",
        )
        .unwrap();
        let registry = Registry::new(&config);
        let addrs = |list: &[&str]| -> BTreeSet<SocketAddr> {
            list.iter().map(|a| a.parse().unwrap()).collect()
        };
        registry.pools()[0].replace_endpoints(&addrs(&["10.0.0.1:8000", "10.0.0.2:8000"]));
        registry.pools()[1].replace_endpoints(&addrs(&["10.0.0.3:8000"]));
        registry
    }

    #[test]
    fn lists_every_endpoint_with_its_health_load_and_age() {
        let registry = registry();
        let scraped_at = Instant::now();
        {
            let endpoint = &registry.pools()[0].endpoints()[0];
            let mut state = endpoint.state();
            state.health.record_success(HealthPolicy {
                unhealthy_after: 3,
                healthy_after: 2,
            });
            state.last_success = Some(scraped_at);
            state.load = Some(Load {
                waiting: 4,
                running: 2,
                kv_cache_usage: 0.5,
                block_size: 16,
                lora: Default::default(),
            });
        }
        let wall = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let snapshot = assemble(
            &registry,
            7,
            Duration::from_millis(50),
            scraped_at + Duration::from_millis(30),
            wall,
        );
        assert_eq!(snapshot.format, FORMAT);
        assert_eq!(snapshot.version, 7);
        assert_eq!(snapshot.taken_at_unix_ms, 1_800_000_000_000);
        assert_eq!(snapshot.scrape_interval_ms, 50);
        let llama = snapshot.pool("llama_8b").unwrap();
        assert_eq!(llama.model, "llama");
        let scraped = &llama.endpoints[0];
        assert_eq!(scraped.address, "10.0.0.1:8000");
        assert!(scraped.healthy);
        assert_eq!(
            (scraped.waiting, scraped.running, scraped.block_size),
            (4, 2, 16)
        );
        assert_eq!(scraped.metrics_age_ms, 30);
        let never = &llama.endpoints[1];
        assert!(!never.healthy);
        assert_eq!(never.metrics_age_ms, NEVER_SCRAPED_AGE_MS);
        assert_eq!(snapshot.pool("qwen_7b").unwrap().endpoints.len(), 1);
    }

    #[test]
    fn versions_grow_by_one_and_the_encoding_decodes() {
        let registry = registry();
        let publisher = Publisher::starting_at(100);
        assert!(publisher.latest().is_none());
        let interval = Duration::from_millis(50);
        let first = publisher.publish(&registry, interval).unwrap();
        let second = publisher.publish(&registry, interval).unwrap();
        assert_eq!(
            (first.snapshot.version, second.snapshot.version),
            (100, 101)
        );
        let latest = publisher.latest().unwrap();
        assert_eq!(latest.snapshot.version, 101);
        assert_eq!(Snapshot::decode(&latest.encoded).unwrap(), latest.snapshot);
    }

    #[test]
    fn default_versions_start_from_the_clock() {
        let registry = registry();
        let publisher = Publisher::new();
        let published = publisher
            .publish(&registry, Duration::from_millis(50))
            .unwrap();
        assert!(published.snapshot.version > 1_700_000_000_000);
    }
}
