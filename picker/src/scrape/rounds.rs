//! The scrape rounds. Every `scrape_interval` a round starts one scrape per endpoint, waits for
//! them until the next round is due, and publishes a snapshot of whatever is known by then.
//!
//! - Concurrency is bounded by a semaphore, so a fleet of thousands never opens thousands of
//!   sockets at once; the HTTP client keeps one idle connection per endpoint between rounds.
//! - A scrape still queued or running when the next round starts keeps its claim on the
//!   endpoint; the new round skips that endpoint (and counts the skip) instead of stacking a
//!   second request behind the slow one. Its result, when it comes, lands in the registry and is
//!   in the next snapshot.
//! - A slow endpoint never delays the snapshot: the round publishes at its deadline and leaves
//!   the stragglers running (each bounded by `scrape_timeout`).
//!
//! Every clock read and wait is tokio's, so its tests (`rounds/tests.rs`) run rounds on paused
//! time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::client::{Fetch, FetchError};
use super::signals::{ReadError, read_load};
use crate::health::{HealthPolicy, Transition};
use crate::metrics::Metrics;
use crate::registry::{InFlight, Registry};
use crate::snapshot::Publisher;

/// What every scrape task needs; shared, never copied.
struct Context<F> {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    client: F,
    policy: HealthPolicy,
    permits: Semaphore,
}

pub struct Rounds<F> {
    context: Arc<Context<F>>,
    publisher: Arc<Publisher>,
    interval: Duration,
}

impl<F: Fetch> Rounds<F> {
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        publisher: Arc<Publisher>,
        client: F,
        policy: HealthPolicy,
        interval: Duration,
        max_concurrent_scrapes: usize,
    ) -> Self {
        Self {
            context: Arc::new(Context {
                registry,
                metrics,
                client,
                policy,
                permits: Semaphore::new(max_concurrent_scrapes),
            }),
            publisher,
            interval,
        }
    }

    /// Runs rounds until the task is dropped.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(self.interval);
        // After a stall (a paused VM, an overloaded node) resume the schedule instead of firing
        // the missed rounds back to back.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            let tick = ticker.tick().await;
            self.round(tick + self.interval).await;
        }
    }

    /// One round: scrape every endpoint, wait until `deadline` at most, publish.
    async fn round(&self, deadline: tokio::time::Instant) {
        let started = Instant::now();
        let mut scrapes = JoinSet::new();
        for (index, pool) in self.context.registry.pools().iter().enumerate() {
            for endpoint in pool.endpoints().iter() {
                match endpoint.try_begin() {
                    Some(claim) => {
                        scrapes.spawn(scrape(Arc::clone(&self.context), index, claim));
                    }
                    None => {
                        if let Some(metrics) = self.context.metrics.pool(index) {
                            metrics.skipped();
                        }
                    }
                }
            }
        }
        let all_done = async {
            while let Some(result) = scrapes.join_next().await {
                if let Err(err) = result {
                    tracing::error!("scrape task failed: {err}");
                }
            }
        };
        if tokio::time::timeout_at(deadline, all_done).await.is_err() {
            // Leave the stragglers running; their claims make the next round skip them.
            scrapes.detach_all();
        }
        self.publish(started);
    }

    fn publish(&self, started: Instant) {
        let context = &self.context;
        match self.publisher.publish(&context.registry, self.interval) {
            Ok(published) => {
                for (index, pool) in published.snapshot.pools.iter().enumerate() {
                    let healthy = pool.endpoints.iter().filter(|e| e.healthy).count();
                    if let Some(metrics) = context.metrics.pool(index) {
                        metrics
                            .set_endpoints(healthy, pool.endpoints.len().saturating_sub(healthy));
                    }
                }
                context.metrics.published(
                    published.snapshot.version,
                    published.encoded.len(),
                    started.elapsed(),
                );
            }
            Err(err) => tracing::error!("{err}"),
        }
    }
}

/// Why a scrape failed.
enum Failure {
    Fetch(FetchError),
    Read(ReadError),
}

impl Failure {
    fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(err) => err.reason(),
            Self::Read(_) => "unreadable",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetch(err) => err.fmt(f),
            Self::Read(err) => err.fmt(f),
        }
    }
}

/// Scrapes one endpoint and records the result. `claim` is released when this returns (or is
/// dropped).
async fn scrape<F: Fetch>(context: Arc<Context<F>>, pool_index: usize, claim: InFlight) {
    // Closed only if the semaphore is dropped, which happens only at shutdown.
    let Ok(_permit) = context.permits.acquire().await else {
        return;
    };
    let Some(pool) = context.registry.pools().get(pool_index) else {
        return;
    };
    let endpoint = claim.endpoint();
    let started = Instant::now();
    let outcome = match context.client.fetch(&endpoint.metrics_url).await {
        Ok(page) => match page.text() {
            Ok(text) => read_load(text, pool.server).map_err(Failure::Read),
            Err(err) => Err(Failure::Fetch(err)),
        },
        Err(err) => Err(Failure::Fetch(err)),
    };
    let finished = Instant::now();
    let pool_metrics = context.metrics.pool(pool_index);
    if let Some(metrics) = pool_metrics {
        metrics.scraped(finished.saturating_duration_since(started));
    }
    let address = endpoint.address;
    match outcome {
        Ok((kind, load)) => {
            let (transition, new_kind) = {
                let mut state = endpoint.state();
                state.load = Some(load);
                state.last_success = Some(finished);
                let new_kind = state.server != Some(kind);
                state.server = Some(kind);
                (state.health.record_success(context.policy), new_kind)
            };
            if new_kind {
                tracing::info!(pool = %pool.name, endpoint = %address, "serves {kind} metrics");
            }
            if transition == Some(Transition::BecameHealthy) {
                tracing::info!(pool = %pool.name, endpoint = %address, "endpoint is healthy");
            }
        }
        Err(failure) => {
            if let Some(metrics) = pool_metrics {
                context.metrics.scrape_failed(metrics, failure.reason());
            }
            let (transition, failures) = {
                let mut state = endpoint.state();
                let transition = state.health.record_failure(context.policy);
                (transition, state.health.consecutive_failures())
            };
            // Log the start of a failure streak and the change of health, not every failure:
            // a dead endpoint would otherwise log twenty lines a second.
            if failures == 1 {
                tracing::warn!(pool = %pool.name, endpoint = %address, "scrape failed: {failure}");
            }
            if transition == Some(Transition::BecameUnhealthy) {
                tracing::warn!(
                    pool = %pool.name,
                    endpoint = %address,
                    "endpoint is unhealthy after {failures} failed scrapes: {failure}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
