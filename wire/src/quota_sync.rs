//! The cluster quota sync between the filter and the picker (`POST /quota/sync`, JSON): one
//! definition compiled into both, like the snapshot, so the two sides cannot drift apart.
//!
//! Each Envoy's leader worker reports what it consumed in every counter bucket since its last
//! report and gets back the totals of every instance; the picker keeps them in Redis.

use serde::{Deserialize, Serialize};

/// HTTP path of the sync on the picker.
pub const PATH: &str = "/quota/sync";

/// Most entries in one sync request. The filter sends at most this many per tick (and goes on
/// from there on the next one); the picker refuses more. About 100 bytes of JSON per entry.
pub const MAX_ENTRIES: usize = 4096;

/// Longest `key` the picker accepts (a scope names a tenant and a model).
pub const MAX_KEY_BYTES: usize = 1024;

/// One counter bucket's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEntry {
    /// `<scope>|<counter index>|<window kind>`; the picker appends the bucket.
    pub key: String,
    pub window: u64,
    /// This instance's consumption in `window` since the last report (may be negative after a
    /// settle), and in `window - 1` (reported late, after a roll).
    pub delta: i64,
    pub prev_delta: i64,
    /// Also read the total of `window - 1` (sliding windows).
    pub sliding: bool,
    /// How long Redis keeps the bucket.
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub entries: Vec<SyncEntry>,
}

/// Per entry, in the request's order: the totals of every instance in `window` and
/// `window - 1` (0 for `window - 1` when it was neither asked for nor written).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub totals: Vec<[i64; 2]>,
    /// Changes when the store lost its counts (Redis restarted without persistence): every
    /// instance then reports all it counted again. 0: unknown.
    #[serde(default)]
    pub epoch: u64,
}
