//! The picker's own Prometheus metrics, served on `/metrics`: how scrapes go (latency, failures
//! by reason, skips), how many endpoints of each pool are healthy, the snapshot being served, and
//! DNS trouble. Per-pool handles are created once, so the scrape path only touches atomics and
//! one histogram lock.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::spend::row::{SpendKey, SpendValues};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpendLabels {
    tenant: String,
    model: String,
}

/// Most (tenant, model) label sets of `sluice_spend_usd_total`; rows of further pairs are
/// counted under `tenant="other"`, `model="other"`.
pub const MAX_SPEND_LABEL_SETS: usize = 10_000;

pub struct Metrics {
    registry: Registry,
    pools: Vec<PoolMetrics>,
    failures: Family<FailureLabels, Counter>,
    snapshot_version: Gauge,
    snapshot_bytes: Gauge,
    rounds: Counter,
    round_duration: Histogram,
    quota: QuotaMetrics,
    tenancy: TenancyMetrics,
}

/// The tenancy store and the spend ledger.
struct TenancyMetrics {
    version: Gauge,
    keys: Gauge,
    spend_usd: Family<SpendLabels, Counter<f64, AtomicU64>>,
    /// The label sets of `spend_usd` so far, to bound them.
    spend_labels: Mutex<HashSet<SpendLabels>>,
    spend_rows: Family<ResultLabels, Counter>,
    admin_unauthenticated: Counter,
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
        let tenancy = TenancyMetrics {
            version: Gauge::default(),
            keys: Gauge::default(),
            spend_usd: Family::default(),
            spend_labels: Mutex::new(HashSet::new()),
            spend_rows: Family::default(),
            admin_unauthenticated: Counter::default(),
        };
        registry.register(
            "sluice_tenancy_version",
            "Version of the tenancy state this picker holds (the snapshot's version)",
            tenancy.version.clone(),
        );
        registry.register(
            "sluice_tenancy_keys",
            "Virtual keys that are not revoked",
            tenancy.keys.clone(),
        );
        registry.register(
            "sluice_spend_usd",
            "Cost of the requests in the spend rows this picker stored since it started, in USD",
            tenancy.spend_usd.clone(),
        );
        registry.register(
            "sluice_picker_spend_rows",
            "Spend rows received in quota syncs, by result (stored, unstored)",
            tenancy.spend_rows.clone(),
        );
        registry.register(
            "sluice_picker_admin_unauthenticated",
            "Admin API requests refused for a missing or wrong token",
            tenancy.admin_unauthenticated.clone(),
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
            tenancy,
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

    /// The tenancy state now held: its version and live keys.
    pub fn tenancy_state(&self, version: u64, live_keys: usize) {
        self.tenancy
            .version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        self.tenancy
            .keys
            .set(i64::try_from(live_keys).unwrap_or(i64::MAX));
    }

    /// Spend rows stored: their cost, by tenant and model.
    pub fn spend_stored(&self, rows: &[(SpendKey, SpendValues)]) {
        self.spend_rows("stored", rows.len());
        let mut seen = self
            .tenancy
            .spend_labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (key, values) in rows {
            let mut labels = SpendLabels {
                tenant: key.tenant.clone(),
                model: key.model.clone(),
            };
            if !seen.contains(&labels) {
                if seen.len() < MAX_SPEND_LABEL_SETS {
                    seen.insert(labels.clone());
                } else {
                    labels = SpendLabels {
                        tenant: "other".to_owned(),
                        model: "other".to_owned(),
                    };
                }
            }
            #[allow(clippy::cast_precision_loss, reason = "dollars for a dashboard")]
            let usd = values.cost_nano_usd as f64 / 1e9;
            self.tenancy.spend_usd.get_or_create(&labels).inc_by(usd);
        }
    }

    /// Spend rows of a sync, by result: `stored` or `unstored` (the store failed or there is
    /// none; the filter reports them again).
    pub fn spend_rows(&self, result: &str, rows: usize) {
        self.tenancy
            .spend_rows
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
    }

    pub fn admin_unauthenticated(&self) {
        self.tenancy.admin_unauthenticated.inc();
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

    use super::{MAX_SPEND_LABEL_SETS, Metrics};
    use crate::spend::row::{SpendKey, SpendValues};

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
        metrics.tenancy_state(1_800_000_000_000, 3);
        let row = |tenant: &str, cost| {
            (
                SpendKey {
                    tenant: tenant.to_owned(),
                    model: "llama".to_owned(),
                    ..SpendKey::default()
                },
                SpendValues {
                    cost_nano_usd: cost,
                    ..SpendValues::default()
                },
            )
        };
        metrics.spend_stored(&[row("acme", 1_500_000_000), row("acme", 500_000_000)]);
        metrics.spend_rows("unstored", 4);
        metrics.admin_unauthenticated();
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
            "sluice_tenancy_version 1800000000000",
            "sluice_tenancy_keys 3",
            "sluice_spend_usd_total{tenant=\"acme\",model=\"llama\"} 2.0",
            "sluice_picker_spend_rows_total{result=\"stored\"} 2",
            "sluice_picker_spend_rows_total{result=\"unstored\"} 4",
            "sluice_picker_admin_unauthenticated_total 1",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }

    #[test]
    fn spend_label_sets_are_bounded() {
        let metrics = Metrics::new([]);
        let rows: Vec<_> = (0..=MAX_SPEND_LABEL_SETS)
            .map(|i| {
                (
                    SpendKey {
                        tenant: format!("t{i}"),
                        model: "m".to_owned(),
                        ..SpendKey::default()
                    },
                    SpendValues {
                        cost_nano_usd: 1_000_000_000,
                        ..SpendValues::default()
                    },
                )
            })
            .collect();
        metrics.spend_stored(&rows);
        let text = metrics.encode().unwrap();
        assert_eq!(
            text.matches("sluice_spend_usd_total{").count(),
            MAX_SPEND_LABEL_SETS + 1
        );
        assert!(text.contains("sluice_spend_usd_total{tenant=\"other\",model=\"other\"} 1.0"));
        // A pair already seen keeps its labels.
        metrics.spend_stored(&rows[..1]);
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains("sluice_spend_usd_total{tenant=\"t0\",model=\"m\"} 2.0")
        );
    }
}
