//! The tenancy store: one trait, two implementations (`embedded`: redb in one file; `redis`: the
//! quota sync's Redis, shared by every picker of a cluster). The admin API, the snapshot and the
//! spend report see only this trait.
//!
//! Changes are optimistic: a caller reads the state at some version, decides the change, and
//! `commit`s it only if the store is still at that version (otherwise it reads again and
//! retries). Every commit moves the version forward to `max(version + 1, now in Unix ms)`, so
//! versions keep growing even if the store is wiped and started again.

use async_trait::async_trait;

use super::model::{Change, TenancyState};
use crate::spend::row::{SpendKey, SpendValues};

/// The store could not be read or written (Redis down or slow, a file error): the admin API
/// answers 503 `unavailable`, the quota sync `spend_stored: false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[async_trait]
pub trait TenancyStore: Send + Sync {
    /// `embedded` or `redis`, for the log.
    fn kind(&self) -> &'static str;

    /// Whether other pickers may change the store (then a cached state must be checked against
    /// `version` before it is served).
    fn shared(&self) -> bool;

    /// The current version (0: nothing was ever written).
    async fn version(&self) -> Result<u64, StoreError>;

    /// Every tenant and key, at one version.
    async fn load(&self) -> Result<TenancyState, StoreError>;

    /// Writes `change` and `new_version` if the store is still at version `expected`; false
    /// when another change came first (then nothing was written).
    async fn commit(
        &self,
        expected: u64,
        new_version: u64,
        change: &Change,
    ) -> Result<bool, StoreError>;

    /// Adds rows to the spend ledger (each to the sums of its dimensions), all or none.
    /// `retention_hours`: how long an hour's rows are kept after it ended.
    async fn add_spend(
        &self,
        rows: &[(SpendKey, SpendValues)],
        retention_hours: u64,
    ) -> Result<(), StoreError>;

    /// The rows of the hours `from_hour..to_hour`, in no particular order.
    async fn spend(
        &self,
        from_hour: u64,
        to_hour: u64,
    ) -> Result<Vec<(SpendKey, SpendValues)>, StoreError>;
}

/// The version a commit on top of `current` writes.
pub fn next_version(current: u64, now_ms: u64) -> u64 {
    current.saturating_add(1).max(now_ms)
}

#[cfg(test)]
mod tests {
    use super::next_version;

    #[test]
    fn versions_grow_and_follow_the_clock() {
        assert_eq!(next_version(0, 1_700_000_000_000), 1_700_000_000_000);
        assert_eq!(
            next_version(1_700_000_000_000, 1_700_000_000_000),
            1_700_000_000_001
        );
        assert_eq!(next_version(5, 3), 6);
        assert_eq!(next_version(u64::MAX, 3), u64::MAX);
    }
}
