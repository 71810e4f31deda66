//! Wall-clock time as the tenancy and spend records count it: Unix milliseconds and Unix hours.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The current Unix hour (Unix seconds / 3600): what spend rows are keyed by.
pub fn now_hour() -> u64 {
    now_ms() / 3_600_000
}
