//! The host clock, read once per tick instead of once per request: a host call costs a Wasm
//! boundary crossing, and everything the filter times (snapshot staleness, prefix-table age,
//! leaked in-flight counts) is measured in hundreds of milliseconds or more, far above the tick.

use std::cell::Cell;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;

/// The longest between two refreshes: the root's tick runs at least this often (`root.rs`), so
/// `now_ms` is at most this far behind the host's clock (unless Envoy runs the tick late).
pub const MAX_AGE_MS: u64 = 100;

thread_local! {
    /// Unix milliseconds at the last refresh. A VM runs on one worker thread only.
    static NOW_MS: Cell<u64> = const { Cell::new(0) };
}

/// Reads the host clock; called on configuration and on every tick.
pub fn refresh() -> u64 {
    let now = read_us() / 1000;
    NOW_MS.with(|cell| cell.set(now));
    now
}

/// Microseconds since the Unix epoch, read from the host now (one host call; 0 if it cannot
/// tell). For request timings, which need finer than the tick.
pub fn read_us() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_micros()).ok())
        .unwrap_or(0)
}

/// Unix time in milliseconds as of the last refresh (at most one tick old; 0 before the first).
pub fn now_ms() -> u64 {
    NOW_MS.with(Cell::get)
}
