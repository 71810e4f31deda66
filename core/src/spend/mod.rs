//! The spend ledger: what each settled request used and cost, summed per hour, tenant, key,
//! project and served model, until the quota sync's tick takes the rows and reports them to the
//! companion service (`SyncRequest::spend`), which keeps them for the admin API's spend reports.
//!
//! The rows live in `SLOTS` values of the quota ledger's store (`quota::Store`: shared data in
//! the proxy-wasm host, process memory natively), `sluice.spend.<n>`, chosen by a hash of the
//! row's dimensions and written with compare-and-swap like the quota slots, so every worker
//! adds to the same rows. Each slot holds at most `ROWS_PER_SLOT` rows; a row that does not fit
//! is added to the slot's overflow row of its hour (tenant `-`, model `other`: its usage and
//! cost still count in the totals), of which a slot holds at most `OVERFLOW_ROWS`. So the
//! ledger never holds more than `MAX_ROWS` rows, whatever the traffic or how long the companion
//! service stays away, and every report fits in one sync.
//!
//! What an Envoy restart loses: the rows settled since the last report the service accepted
//! (one sync interval) and the requests in flight.

use serde::{Deserialize, Serialize};
pub use sluice_wire::quota_sync::{MAX_SPEND_ENTRIES, SpendEntry};

use crate::quota::{Store, Usage};
use crate::tenancy::MAX_NAME_BYTES;

/// Store values holding rows: `sluice.spend.0` .. `sluice.spend.63`.
pub const SLOTS: u32 = 64;
/// Rows of distinct dimensions one slot holds.
pub const ROWS_PER_SLOT: usize = 16;
/// Overflow rows one slot holds (one per hour: this one and the last, when the tick is late).
pub const OVERFLOW_ROWS: usize = 2;
/// The most rows the ledger holds: one report takes them all.
pub const MAX_ROWS: usize = (SLOTS as usize) * (ROWS_PER_SLOT + OVERFLOW_ROWS);
const _: () = assert!(MAX_ROWS <= MAX_SPEND_ENTRIES);

/// The tenant and model of an overflow row.
pub const OVERFLOW_TENANT: &str = "-";
pub const OVERFLOW_MODEL: &str = "other";
/// The model of a request forwarded unread (a passthrough path): it is not known.
pub const UNKNOWN_MODEL: &str = "-";

const KEY_PREFIX: &str = "sluice.spend.";
const HOUR_MS: u64 = 3_600_000;

pub fn slot_key(slot: u32) -> String {
    format!("{KEY_PREFIX}{slot}")
}

/// `sluice.spend.<n>` → `n`, for a store that keeps the slots by number.
pub fn slot_index(key: &str) -> Option<u32> {
    key.strip_prefix(KEY_PREFIX)?
        .parse()
        .ok()
        .filter(|n| *n < SLOTS)
}

/// The sums of the requests settled in one hour under one tenant, key, project and model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Unix hour.
    pub hour: u64,
    pub tenant: String,
    pub key: Option<String>,
    pub project: Option<String>,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_nano_usd: u64,
}

impl Row {
    /// One settled request: `usage` at `cost` nano-USD, at `now_ms`.
    pub fn settled(
        now_ms: u64,
        tenant: &str,
        key: Option<&str>,
        project: Option<&str>,
        model: &str,
        usage: Usage,
        cost_nano_usd: u64,
    ) -> Self {
        Self {
            hour: now_ms / HOUR_MS,
            tenant: tenant.to_owned(),
            key: key.map(str::to_owned),
            project: project.map(str::to_owned),
            model: model.to_owned(),
            requests: 1,
            input_tokens: usage.input,
            output_tokens: usage.output,
            cached_tokens: usage.cached.min(usage.input),
            cost_nano_usd,
        }
    }

    fn same_dimensions(&self, other: &Row) -> bool {
        self.hour == other.hour
            && self.tenant == other.tenant
            && self.key == other.key
            && self.project == other.project
            && self.model == other.model
    }

    fn add(&mut self, other: &Row) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cost_nano_usd = self.cost_nano_usd.saturating_add(other.cost_nano_usd);
    }

    /// `self`'s sums under the overflow row's dimensions.
    fn as_overflow(&self) -> Row {
        Row {
            hour: self.hour,
            tenant: OVERFLOW_TENANT.to_owned(),
            key: None,
            project: None,
            model: OVERFLOW_MODEL.to_owned(),
            ..self.clone()
        }
    }

    /// The row as the quota sync reports it, its names in the form the companion service
    /// stores (`reported_name`, `reported_model`).
    pub fn entry(&self) -> SpendEntry {
        SpendEntry {
            hour: self.hour,
            tenant: reported_name(&self.tenant),
            key: self.key.as_deref().map(reported_name),
            project: self.project.as_deref().map(reported_name),
            model: reported_model(&self.model),
            requests: self.requests,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_tokens: self.cached_tokens,
            cost_nano_usd: self.cost_nano_usd,
        }
    }
}

/// A tenant, project or key id as spend reports name it: 1 to `MAX_NAME_BYTES` characters of
/// `A-Z a-z 0-9 . _ : -`, the admin API's names (which every run-time tenant, project and key
/// has). A name from the plugin configuration or a tenant header may hold others: each becomes
/// `_`, so that the companion service, which refuses a report with any other name, takes it.
pub fn reported_name(name: &str) -> String {
    let reported: String = name
        .bytes()
        .take(MAX_NAME_BYTES)
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-') {
                char::from(b)
            } else {
                '_'
            }
        })
        .collect();
    if reported.is_empty() {
        OVERFLOW_TENANT.to_owned()
    } else {
        reported
    }
}

/// A model as spend reports name it: at most `MAX_NAME_BYTES` bytes without control characters
/// (model names are printable ASCII already: they become header values).
pub fn reported_model(model: &str) -> String {
    let reported: String = model
        .bytes()
        .take(MAX_NAME_BYTES)
        .map(|b| {
            if b == b' ' || b.is_ascii_graphic() {
                char::from(b)
            } else {
                '_'
            }
        })
        .collect();
    if reported.is_empty() {
        UNKNOWN_MODEL.to_owned()
    } else {
        reported
    }
}

/// One slot's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    rows: Vec<Row>,
    overflow: Vec<Row>,
}

impl Ledger {
    fn decode(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_default()
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.overflow.is_empty()
    }

    /// Adds `row` to the row of the same dimensions, a new row if there is room, else the
    /// overflow row of its hour. Returns whether it went to an overflow row.
    fn add(&mut self, row: &Row) -> bool {
        if let Some(same) = self.rows.iter_mut().find(|r| r.same_dimensions(row)) {
            same.add(row);
            return false;
        }
        if self.rows.len() < ROWS_PER_SLOT {
            self.rows.push(row.clone());
            return false;
        }
        let overflow = row.as_overflow();
        if let Some(same) = self
            .overflow
            .iter_mut()
            .find(|r| r.same_dimensions(&overflow))
        {
            same.add(&overflow);
        } else if self.overflow.len() < OVERFLOW_ROWS {
            self.overflow.push(overflow);
        } else if let Some(latest) = self.overflow.iter_mut().max_by_key(|r| r.hour) {
            // Every overflow row is taken (the reports have failed for hours): the sums still
            // count, in the latest hour held.
            latest.add(&overflow);
        }
        true
    }
}

/// What became of a row added to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// In a row of its own dimensions.
    Added,
    /// In its slot's overflow row (counted: `sluice_spend_overflow_total`).
    Overflowed,
    /// Not written: the slot could not be updated after every attempt (logged and counted).
    Failed,
}

fn home(row: &Row) -> u32 {
    // Not the hour: a tenant's key and model keep their slot from one hour to the next.
    let mut text = String::with_capacity(64);
    for part in [
        row.tenant.as_str(),
        row.key.as_deref().unwrap_or_default(),
        row.project.as_deref().unwrap_or_default(),
        row.model.as_str(),
    ] {
        text.push_str(part);
        text.push('|');
    }
    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    u32::try_from(hash.checked_rem(u64::from(SLOTS)).unwrap_or(0)).unwrap_or(0)
}

/// Adds one settled request's row to the ledger.
pub fn record<S: Store + ?Sized>(store: &S, row: &Row) -> Recorded {
    let mut overflowed = false;
    let landed = store.update(&slot_key(home(row)), &mut |bytes| {
        let mut ledger = bytes.map(Ledger::decode).unwrap_or_default();
        // Set afresh on every run: a compare-and-swap retry runs this again.
        overflowed = ledger.add(row);
        Some(ledger.encode())
    });
    match (landed, overflowed) {
        (false, _) => Recorded::Failed,
        (true, true) => Recorded::Overflowed,
        (true, false) => Recorded::Added,
    }
}

/// Takes every row out of the ledger, for a report (at most `MAX_ROWS`). A slot that could not
/// be emptied keeps its rows for the next report.
pub fn take<S: Store + ?Sized>(store: &S) -> Vec<Row> {
    let mut taken = Vec::new();
    for slot in 0..SLOTS {
        let mut rows = Vec::new();
        let landed = store.update(&slot_key(slot), &mut |bytes| {
            let ledger = bytes.map(Ledger::decode).unwrap_or_default();
            rows.clear();
            if ledger.is_empty() {
                return None;
            }
            rows.extend(ledger.rows);
            rows.extend(ledger.overflow);
            Some(Ledger::default().encode())
        });
        if landed {
            taken.append(&mut rows);
        }
    }
    taken
}

/// What putting rows back did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutBack {
    /// Rows that went to an overflow row (the slot filled meanwhile).
    pub overflowed: u64,
    /// Rows that could not be written and are lost to the reports.
    pub lost: u64,
}

/// Puts rows a report took back into the ledger (the report was not stored), adding them to
/// what was settled since: one write per slot.
pub fn put_back<S: Store + ?Sized>(store: &S, rows: &[Row]) -> PutBack {
    let mut by_slot: Vec<Vec<&Row>> = (0..SLOTS).map(|_| Vec::new()).collect();
    for row in rows {
        let slot = usize::try_from(home(row)).unwrap_or(0);
        if let Some(list) = by_slot.get_mut(slot) {
            list.push(row);
        }
    }
    let mut result = PutBack::default();
    for (slot, rows) in (0..SLOTS).zip(&by_slot) {
        if rows.is_empty() {
            continue;
        }
        let mut overflowed = 0u64;
        let landed = store.update(&slot_key(slot), &mut |bytes| {
            let mut ledger = bytes.map(Ledger::decode).unwrap_or_default();
            overflowed = 0;
            for row in rows {
                if ledger.add(row) {
                    overflowed = overflowed.saturating_add(1);
                }
            }
            Some(ledger.encode())
        });
        let count = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        if landed {
            result.overflowed = result.overflowed.saturating_add(overflowed);
        } else {
            result.lost = result.lost.saturating_add(count);
        }
    }
    result
}

#[cfg(test)]
mod tests;
