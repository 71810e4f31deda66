//! Cluster mode: each Envoy instance reports what it consumed since the last sync and learns what
//! every instance consumed, through the picker (which keeps the totals in Redis). The window
//! buckets are plain counts, so the totals are sums: `INCRBY` on one Redis key per scope,
//! counter and bucket.
//!
//! One worker per Envoy (it holds a lease) scans the slots on a tick, takes every counter's
//! unreported consumption (`pending`), sends it, and writes back what the other instances
//! consumed: the total minus what this instance has reported.

pub use sluice_wire::quota_sync::{MAX_ENTRIES, SyncEntry, SyncRequest, SyncResponse};

use super::state::{SlotState, kind};
use super::window;
use crate::config::quotas::Window;

/// What was taken out of one slot for a report, to apply the answer to (or put it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub slot: u32,
    pub scope: String,
    pub counter: usize,
    pub window: u64,
    pub delta: i64,
    pub prev_delta: i64,
}

/// Takes the unreported consumption out of `state` (slot `slot`): one entry per counter of a
/// live scope, with a zero delta too, so that the global view stays fresh.
pub fn collect(
    state: &mut SlotState,
    slot: u32,
    now_ms: u64,
    entries: &mut Vec<SyncEntry>,
    pushed: &mut Vec<Pushed>,
) {
    if state.scope.is_empty() || state.evictable(now_ms) {
        return;
    }
    for (i, counter) in state.counters.iter_mut().enumerate() {
        let win = kind(counter.kind);
        counter.roll(win, now_ms);
        entries.push(SyncEntry {
            key: format!("{}|{i}|{}", state.scope, counter.kind),
            window: counter.window,
            delta: counter.pending,
            prev_delta: counter.pending_prev,
            sliding: win == Window::Minute,
            ttl_ms: window::length_ms(win).saturating_mul(2),
        });
        pushed.push(Pushed {
            slot,
            scope: state.scope.clone(),
            counter: i,
            window: counter.window,
            delta: counter.pending,
            prev_delta: counter.pending_prev,
        });
        counter.pending = 0;
        counter.pending_prev = 0;
    }
}

/// What the other instances consumed: the total minus what this instance has reported
/// (`local` − `unreported`). `None` when the total is below that: every instance's share is
/// non-negative, so Redis lost the bucket (restarted without persistence, or the key expired).
fn remote(total: i64, local: u64, unreported: i64) -> Option<u64> {
    let reported = i128::from(local).saturating_sub(i128::from(unreported));
    let theirs = i128::from(total).saturating_sub(reported);
    if theirs < 0 {
        return None;
    }
    Some(u64::try_from(theirs).unwrap_or(u64::MAX))
}

/// Redis lost a bucket this instance had reported to: report it all again on the next sync,
/// except `just_sent`, which the lost bucket's new total already holds. Until the other
/// instances have done the same, the last known share of theirs stands.
fn report_again(local: u64, unreported: &mut i64, just_sent: i64) {
    let reported = i64::try_from(local)
        .unwrap_or(i64::MAX)
        .saturating_sub(*unreported);
    *unreported = unreported.saturating_add(reported.saturating_sub(just_sent).max(0));
}

/// Writes the other instances' consumption into the counter `pushed` came from. `lost`: the
/// store's epoch changed, so it lost every count reported before this sync, whatever the totals
/// say (another instance may have reported its own counts again already).
pub fn apply(state: &mut SlotState, pushed: &Pushed, totals: [i64; 2], now_ms: u64, lost: bool) {
    if state.scope != pushed.scope {
        return;
    }
    let Some(counter) = state.counters.get_mut(pushed.counter) else {
        return;
    };
    let win = kind(counter.kind);
    counter.roll(win, now_ms);
    let [cur, prev] = totals;
    if counter.window == pushed.window {
        match remote(cur, counter.cur, counter.pending).filter(|_| !lost) {
            Some(theirs) => counter.remote_cur = theirs,
            None => report_again(counter.cur, &mut counter.pending, pushed.delta),
        }
        // The previous bucket's total is read for sliding windows only.
        if win == Window::Minute {
            match remote(prev, counter.prev, counter.pending_prev).filter(|_| !lost) {
                Some(theirs) => counter.remote_prev = theirs,
                None => report_again(counter.prev, &mut counter.pending_prev, pushed.prev_delta),
            }
        }
    } else if counter.window == pushed.window.saturating_add(1) {
        match remote(cur, counter.prev, counter.pending_prev).filter(|_| !lost) {
            Some(theirs) => counter.remote_prev = theirs,
            None => report_again(counter.prev, &mut counter.pending_prev, pushed.delta),
        }
    }
}

/// The report did not arrive: put its consumption back to be reported next time.
pub fn restore(state: &mut SlotState, pushed: &Pushed, now_ms: u64) {
    if state.scope != pushed.scope {
        return;
    }
    let Some(counter) = state.counters.get_mut(pushed.counter) else {
        return;
    };
    counter.roll(kind(counter.kind), now_ms);
    let back = |window: u64| {
        if window == counter.window {
            Some(true)
        } else if window.saturating_add(1) == counter.window {
            Some(false)
        } else {
            None
        }
    };
    for (window, delta) in [
        (pushed.window, pushed.delta),
        (pushed.window.saturating_sub(1), pushed.prev_delta),
    ] {
        match back(window) {
            Some(true) => counter.pending = counter.pending.saturating_add(delta),
            Some(false) => counter.pending_prev = counter.pending_prev.saturating_add(delta),
            None => {}
        }
    }
}
