//! The picker's own Prometheus metrics, served on `/metrics`: how scrapes go (latency, failures
//! by reason, skips), how many endpoints of each pool are healthy, the snapshot being served, and
//! DNS trouble. Per-pool handles are created once, so the scrape path only touches atomics and
//! one histogram lock.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Media type of the text `encode` writes (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    pool: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    pool: String,
    state: String,
}

pub struct Metrics {
    registry: Registry,
    pools: Vec<PoolMetrics>,
    failures: Family<FailureLabels, Counter>,
    snapshot_version: Gauge,
    snapshot_bytes: Gauge,
    rounds: Counter,
    round_duration: Histogram,
    quota: QuotaMetrics,
}

/// The cluster quota sync: requests by result, entries, Redis reachability and latency.
struct QuotaMetrics {
    syncs: Family<ResultLabels, Counter>,
    entries: Counter,
    redis_up: Gauge,
    duration: Histogram,
}

/// Handles for one pool, indexed like the configuration's pools.
#[derive(Clone)]
pub struct PoolMetrics {
    name: String,
    scrape_duration: Histogram,
    scrapes: Counter,
    skipped: Counter,
    healthy: Gauge,
    unhealthy: Gauge,
    dns_errors: Counter,
}

/// Scrape and round latency buckets: 0.25 ms to ~4 s; loopback scrapes take well under a
/// millisecond, scrapes across a cluster a few, an overloaded server's hundreds.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 15)
}

impl Metrics {
    pub fn new<'a>(pool_names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::default();
        let scrape_duration = Family::<PoolLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "sluice_picker_scrape_duration_seconds",
            "Time to fetch and read one metrics page",
            scrape_duration.clone(),
        );
        let scrapes = Family::<PoolLabels, Counter>::default();
        registry.register(
            "sluice_picker_scrapes",
            "Scrapes finished, successful or not",
            scrapes.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "sluice_picker_scrape_failures",
            "Failed scrapes, by reason",
            failures.clone(),
        );
        let skipped = Family::<PoolLabels, Counter>::default();
        registry.register(
            "sluice_picker_scrapes_skipped",
            "Scrapes not started because the endpoint's previous scrape was still in flight",
            skipped.clone(),
        );
        let endpoints = Family::<StateLabels, Gauge>::default();
        registry.register(
            "sluice_picker_endpoints",
            "Endpoints in the last snapshot, by health",
            endpoints.clone(),
        );
        let dns_errors = Family::<PoolLabels, Counter>::default();
        registry.register(
            "sluice_picker_dns_resolution_errors",
            "Failed resolutions of a pool's DNS name",
            dns_errors.clone(),
        );
        let snapshot_version = Gauge::default();
        registry.register(
            "sluice_picker_snapshot_version",
            "Version of the snapshot being served",
            snapshot_version.clone(),
        );
        let snapshot_bytes = Gauge::default();
        registry.register(
            "sluice_picker_snapshot_bytes",
            "Size of the encoded snapshot being served",
            snapshot_bytes.clone(),
        );
        let rounds = Counter::default();
        registry.register(
            "sluice_picker_rounds",
            "Scrape rounds, each ending with a published snapshot",
            rounds.clone(),
        );
        let round_duration = Histogram::new(latency_buckets());
        registry.register(
            "sluice_picker_round_duration_seconds",
            "Time from a round's start to its snapshot being published",
            round_duration.clone(),
        );
        let quota = QuotaMetrics {
            syncs: Family::default(),
            entries: Counter::default(),
            redis_up: Gauge::default(),
            duration: Histogram::new(latency_buckets()),
        };
        registry.register(
            "sluice_picker_quota_syncs",
            "Quota sync requests, by result (ok, invalid, unavailable)",
            quota.syncs.clone(),
        );
        registry.register(
            "sluice_picker_quota_sync_entries",
            "Counter buckets reported in successful quota syncs",
            quota.entries.clone(),
        );
        registry.register(
            "sluice_picker_quota_redis_up",
            "1 when the last quota sync reached Redis; 0 when it did not, or before the first sync",
            quota.redis_up.clone(),
        );
        registry.register(
            "sluice_picker_quota_sync_duration_seconds",
            "Time to run one quota sync against Redis",
            quota.duration.clone(),
        );
        let pools = pool_names
            .into_iter()
            .map(|name| {
                let pool = PoolLabels {
                    pool: name.to_owned(),
                };
                let state = |state: &str| StateLabels {
                    pool: name.to_owned(),
                    state: state.to_owned(),
                };
                PoolMetrics {
                    name: name.to_owned(),
                    scrape_duration: scrape_duration.get_or_create_owned(&pool),
                    scrapes: scrapes.get_or_create_owned(&pool),
                    skipped: skipped.get_or_create_owned(&pool),
                    healthy: endpoints.get_or_create_owned(&state("healthy")),
                    unhealthy: endpoints.get_or_create_owned(&state("unhealthy")),
                    dns_errors: dns_errors.get_or_create_owned(&pool),
                }
            })
            .collect();
        Self {
            registry,
            pools,
            failures,
            snapshot_version,
            snapshot_bytes,
            rounds,
            round_duration,
            quota,
        }
    }

    /// The handles of pool `index` (the configuration's order).
    pub fn pool(&self, index: usize) -> Option<&PoolMetrics> {
        self.pools.get(index)
    }

    pub fn scrape_failed(&self, pool: &PoolMetrics, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                pool: pool.name.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn published(&self, version: u64, bytes: usize, round: Duration) {
        self.snapshot_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        self.snapshot_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.rounds.inc();
        self.round_duration.observe(round.as_secs_f64());
    }

    /// One quota sync answered: `result` is `ok`, `invalid` (400) or `unavailable` (Redis down
    /// or slow, 503).
    pub fn quota_sync(&self, result: &str, entries: usize, took: Duration) {
        self.quota
            .syncs
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        match result {
            "ok" => {
                self.quota
                    .entries
                    .inc_by(u64::try_from(entries).unwrap_or(u64::MAX));
                self.quota.redis_up.set(1);
                self.quota.duration.observe(took.as_secs_f64());
            }
            "unavailable" => {
                self.quota.redis_up.set(0);
            }
            _ => {}
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl PoolMetrics {
    pub fn scraped(&self, took: Duration) {
        self.scrapes.inc();
        self.scrape_duration.observe(took.as_secs_f64());
    }

    pub fn skipped(&self) {
        self.skipped.inc();
    }

    pub fn set_endpoints(&self, healthy: usize, unhealthy: usize) {
        self.healthy.set(i64::try_from(healthy).unwrap_or(i64::MAX));
        self.unhealthy
            .set(i64::try_from(unhealthy).unwrap_or(i64::MAX));
    }

    pub fn dns_error(&self) {
        self.dns_errors.inc();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Metrics;

    #[test]
    fn exposes_every_family_with_pool_labels() {
        let metrics = Metrics::new(["llama_8b", "qwen_7b"]);
        let llama = metrics.pool(0).unwrap();
        llama.scraped(Duration::from_micros(700));
        llama.skipped();
        llama.set_endpoints(2, 1);
        llama.dns_error();
        metrics.scrape_failed(llama, "connect");
        metrics.published(1_700_000_000_123, 321, Duration::from_millis(3));
        metrics.quota_sync("ok", 3, Duration::from_micros(400));
        metrics.quota_sync("unavailable", 5, Duration::from_millis(250));
        metrics.quota_sync("invalid", 0, Duration::ZERO);
        assert!(metrics.pool(2).is_none());
        let text = metrics.encode().unwrap();
        for expected in [
            "sluice_picker_scrape_duration_seconds_count{pool=\"llama_8b\"} 1",
            "sluice_picker_scrapes_total{pool=\"llama_8b\"} 1",
            "sluice_picker_scrapes_skipped_total{pool=\"llama_8b\"} 1",
            "sluice_picker_scrape_failures_total{pool=\"llama_8b\",reason=\"connect\"} 1",
            "sluice_picker_endpoints{pool=\"llama_8b\",state=\"healthy\"} 2",
            "sluice_picker_endpoints{pool=\"llama_8b\",state=\"unhealthy\"} 1",
            "sluice_picker_endpoints{pool=\"qwen_7b\",state=\"healthy\"} 0",
            "sluice_picker_dns_resolution_errors_total{pool=\"llama_8b\"} 1",
            "sluice_picker_snapshot_version 1700000000123",
            "sluice_picker_snapshot_bytes 321",
            "sluice_picker_rounds_total 1",
            "sluice_picker_round_duration_seconds_count 1",
            "sluice_picker_quota_syncs_total{result=\"ok\"} 1",
            "sluice_picker_quota_syncs_total{result=\"unavailable\"} 1",
            "sluice_picker_quota_syncs_total{result=\"invalid\"} 1",
            "sluice_picker_quota_sync_entries_total 3",
            "sluice_picker_quota_redis_up 0",
            "sluice_picker_quota_sync_duration_seconds_count 1",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }
}
