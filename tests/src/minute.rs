//! Wall-clock minutes, for tests of per-minute quota windows (sliding windows start at whole
//! minutes of Unix time).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Waits for the next minute when fewer than `needed` are left in this one, so that a burst
/// stays inside one window. Nothing is asserted about time: this only picks when to start.
pub async fn stay_inside_one(needed: Duration) {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        % 60_000;
    let left = 60_000u128.saturating_sub(into);
    if left < needed.as_millis() {
        tokio::time::sleep(Duration::from_millis((left + 500) as u64)).await;
    }
}
