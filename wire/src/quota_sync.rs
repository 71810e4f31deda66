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
    /// What this instance's settled requests used and cost since its last accepted report, per
    /// hour, tenant, key, project and model (the spend ledger). Empty without tenancy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spend: Vec<SpendEntry>,
}

/// Most spend rows in one sync request.
pub const MAX_SPEND_ENTRIES: usize = 4096;

/// One spend row: the sums of the requests settled in `hour` under one tenant, key, project and
/// model. Rows with the same dimensions add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendEntry {
    /// Unix hour (Unix seconds / 3600) the requests settled in.
    pub hour: u64,
    /// `-` when the caller was not identified.
    pub tenant: String,
    /// The virtual key's id (admin keys) or `config:<first 8 hex digits of its SHA-256>`
    /// (keys from the filter configuration); absent when the tenant came from a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The model that served the requests (after aliases, failover and rewrites).
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, read from the prompt cache.
    pub cached_tokens: u64,
    /// At the served model's price (`quotas.prices`), in nano-USD.
    pub cost_nano_usd: u64,
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
    /// Whether the request's `spend` rows were stored. False: the counters were applied but the
    /// spend was not, and the instance reports those rows again next time.
    #[serde(default)]
    pub spend_stored: bool,
}
