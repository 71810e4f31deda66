//! The tenancy as the picker serves it: the store, the state read from it (cached, with its
//! snapshot), and the admin API's changes committed with a version check.
//!
//! With the embedded store this picker is the only writer, so its cache is always current. With
//! Redis several pickers write: the admin API checks the version (one GET) before every read
//! and change, and the snapshot at most every `SNAPSHOT_CHECK_INTERVAL`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sluice_wire::quota_sync::SpendEntry;
use tokio::time::Instant;

use super::model::TenancyState;
use super::ops::{self, Bounds, Op, Outcome, Refused};
use super::snapshot::{self, SnapshotBody};
use super::store::{self, StoreError, TenancyStore};
use crate::clock;
use crate::metrics::Metrics;
use crate::spend::row::{self, SpendKey, SpendValues};

/// Longest a snapshot is served from the cache without checking the shared store's version.
pub const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Commits tried before a change gives up because others keep coming first.
const COMMIT_ATTEMPTS: usize = 8;

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    Refused(Refused),
    Unavailable(StoreError),
}

impl From<Refused> for ChangeError {
    fn from(refused: Refused) -> Self {
        Self::Refused(refused)
    }
}

impl From<StoreError> for ChangeError {
    fn from(err: StoreError) -> Self {
        Self::Unavailable(err)
    }
}

/// Why the snapshot cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// The store cannot be read (503: the filters keep their last snapshot).
    Unavailable(StoreError),
    /// The state is over the snapshot's bounds (500).
    OverBounds(String),
}

struct Cached {
    state: Arc<TenancyState>,
    /// When the shared store's version was last found equal to `state.version`.
    checked: Instant,
    snapshot: Option<Arc<SnapshotBody>>,
}

pub struct Tenancy {
    store: Arc<dyn TenancyStore>,
    bounds: Bounds,
    retention_hours: u64,
    metrics: Arc<Metrics>,
    cache: RwLock<Option<Cached>>,
    /// One reload or snapshot build at a time (many Envoys ask at once after a change).
    refresh: tokio::sync::Mutex<()>,
    /// One change at a time from this picker (they would only conflict with each other).
    changes: tokio::sync::Mutex<()>,
    /// Whether the snapshot's last check reached the store (to log changes, not every failure).
    reachable: AtomicBool,
}

impl Tenancy {
    pub fn new(
        store: Arc<dyn TenancyStore>,
        bounds: Bounds,
        retention_days: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            bounds,
            retention_hours: u64::from(retention_days).saturating_mul(24),
            metrics,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            changes: tokio::sync::Mutex::new(()),
            reachable: AtomicBool::new(true),
        }
    }

    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// The cached state if it is current enough: always with the embedded store; with a
    /// shared one if its version was checked less than `max_age` ago.
    fn cached(&self, max_age: Duration) -> Option<Arc<TenancyState>> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let cached = cache.as_ref()?;
        (!self.store.shared() || cached.checked.elapsed() < max_age)
            .then(|| Arc::clone(&cached.state))
    }

    /// The state, read from the store if the cache may be stale.
    pub async fn state(&self, max_age: Duration) -> Result<Arc<TenancyState>, StoreError> {
        if let Some(state) = self.cached(max_age) {
            return Ok(state);
        }
        let _refresh = self.refresh.lock().await;
        if let Some(state) = self.cached(max_age) {
            return Ok(state);
        }
        let cached_version = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|c| c.state.version);
        if let Some(cached_version) = cached_version {
            if self.store.version().await? == cached_version {
                let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
                if let Some(cached) = cache.as_mut().filter(|c| c.state.version == cached_version) {
                    cached.checked = Instant::now();
                    return Ok(Arc::clone(&cached.state));
                }
            }
        }
        let state = Arc::new(self.store.load().await?);
        self.metrics.tenancy_state(state.version, state.live_keys());
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            state: Arc::clone(&state),
            checked: Instant::now(),
            snapshot: None,
        });
        Ok(state)
    }

    /// The current snapshot, built once per version (and again when a key in it expires).
    /// When the shared store cannot be reached, the last state read is served (the filters
    /// would keep it anyway, and an Envoy that starts meanwhile gets it too).
    pub async fn snapshot(&self) -> Result<Arc<SnapshotBody>, SnapshotError> {
        let state = match self.state(SNAPSHOT_CHECK_INTERVAL).await {
            Ok(state) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("tenancy store reachable again");
                }
                state
            }
            Err(err) => {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!("tenancy store unavailable, serving the last snapshot: {err}");
                }
                let cached = self.cache.read().unwrap_or_else(PoisonError::into_inner);
                match cached.as_ref() {
                    Some(cached) => Arc::clone(&cached.state),
                    None => return Err(SnapshotError::Unavailable(err)),
                }
            }
        };
        if let Some(body) = self.cached_snapshot(state.version) {
            return Ok(body);
        }
        let _refresh = self.refresh.lock().await;
        if let Some(body) = self.cached_snapshot(state.version) {
            return Ok(body);
        }
        let body =
            Arc::new(snapshot::build(&state, clock::now_ms()).map_err(SnapshotError::OverBounds)?);
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = cache.as_mut().filter(|c| c.state.version == state.version) {
            cached.snapshot = Some(Arc::clone(&body));
        }
        Ok(body)
    }

    fn cached_snapshot(&self, version: u64) -> Option<Arc<SnapshotBody>> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let body = cache.as_ref()?.snapshot.as_ref()?;
        (body.version == version && body.is_valid_at(clock::now_ms())).then(|| Arc::clone(body))
    }

    /// Makes a change: checks it against the current state and commits it if no other change
    /// came first (else reads again and retries). Logs what changed (never a secret).
    pub async fn change(&self, op: &Op) -> Result<Outcome, ChangeError> {
        let _one_at_a_time = self.changes.lock().await;
        for _ in 0..COMMIT_ATTEMPTS {
            let state = self.state(Duration::ZERO).await?;
            let now_ms = clock::now_ms();
            let (change, outcome) = ops::apply(&state, op, now_ms, &self.bounds)?;
            let Some(change) = change else {
                return Ok(outcome);
            };
            let version = store::next_version(state.version, now_ms);
            // No reload may land between the commit and the cache's update (it could put an
            // older state back).
            let _refresh = self.refresh.lock().await;
            if !self.store.commit(state.version, version, &change).await? {
                // Another picker changed the store: read it again.
                self.invalidate();
                continue;
            }
            let mut next = TenancyState::clone(&state);
            next.apply(&change, version);
            self.metrics.tenancy_state(version, next.live_keys());
            *self.cache.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
                state: Arc::new(next),
                checked: Instant::now(),
                snapshot: None,
            });
            tracing::info!(version, what = ?change.what, "tenancy changed");
            return Ok(outcome);
        }
        Err(ChangeError::Unavailable(StoreError(
            "other changes kept coming first: try again".to_owned(),
        )))
    }

    fn invalidate(&self) {
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The rows of a sync that can be stored, and why the others cannot (see `row::check_row`).
    pub fn storable_spend(rows: &[SpendEntry]) -> (Vec<SpendEntry>, Vec<String>) {
        let now_hour = clock::now_hour();
        let mut storable = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for (i, entry) in rows.iter().enumerate() {
            match row::check_row(i, entry, now_hour) {
                Ok(()) => storable.push(entry.clone()),
                Err(why) => refused.push(why),
            }
        }
        (storable, refused)
    }

    /// Adds a sync's spend rows to the ledger, all or none.
    pub async fn add_spend(&self, rows: &[SpendEntry]) -> Result<(), StoreError> {
        let rows: Vec<(SpendKey, SpendValues)> = rows.iter().map(row::from_entry).collect();
        self.store.add_spend(&rows, self.retention_hours).await?;
        self.metrics.spend_stored(&rows);
        Ok(())
    }

    /// The spend rows of the hours `from_hour..to_hour`.
    pub async fn spend(
        &self,
        from_hour: u64,
        to_hour: u64,
    ) -> Result<Vec<(SpendKey, SpendValues)>, StoreError> {
        self.store.spend(from_hour, to_hour).await
    }
}
