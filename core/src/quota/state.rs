//! One shared-data slot: the scope that owns it (its full identity, to detect collisions), the
//! requests in flight and one counter per limit of the scope.
//!
//! A counter keeps the current and the previous bucket of its window. For the sliding minute the
//! previous bucket counts in proportion to how much of it the window still covers; calendar
//! periods (hour, day, month) use the current bucket only. `remote_*` hold what the other Envoy
//! instances consumed (cluster mode) and `pending*` what this instance consumed but has not yet
//! reported.

use serde::{Deserialize, Serialize};

use super::window;
use crate::config::quotas::{Limit, Window};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The window kind (see `code`), so that any worker can judge the counter.
    pub kind: u8,
    pub window: u64,
    pub cur: u64,
    pub prev: u64,
    pub remote_cur: u64,
    pub remote_prev: u64,
    pub pending: i64,
    pub pending_prev: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    /// The scope's identity (`t|acme`, `tm|acme|model`, `m|model`); empty when free.
    pub scope: String,
    pub in_flight: u32,
    pub counters: Vec<Counter>,
}

impl Counter {
    /// Moves the buckets on to the one holding `now_ms`.
    pub fn roll(&mut self, win: Window, now_ms: u64) {
        let current = window::index(win, now_ms);
        if current == self.window {
            return;
        }
        if current == self.window.saturating_add(1) {
            self.prev = self.cur;
            self.remote_prev = self.remote_cur;
            self.pending_prev = self.pending;
        } else {
            self.prev = 0;
            self.remote_prev = 0;
            self.pending_prev = 0;
        }
        self.cur = 0;
        self.remote_cur = 0;
        self.pending = 0;
        self.window = current;
    }

    /// What the window holds at `now_ms` (after `roll`), every instance included.
    pub fn used(&self, win: Window, now_ms: u64) -> u64 {
        let cur = self.cur.saturating_add(self.remote_cur);
        if win != Window::Minute {
            return cur;
        }
        let prev = self.prev.saturating_add(self.remote_prev);
        let length = window::length_ms(win);
        let into = now_ms.checked_rem(length).unwrap_or(0);
        // The share of the previous bucket the sliding window still covers, rounded up.
        let covered = u128::from(prev)
            .saturating_mul(u128::from(length.saturating_sub(into)))
            .div_ceil(u128::from(length));
        cur.saturating_add(u64::try_from(covered).unwrap_or(u64::MAX))
    }

    /// Adds `delta` to the bucket `at` (the current or the previous one); older buckets no
    /// longer count and are left alone.
    pub fn add(&mut self, at: u64, delta: i64) {
        if at == self.window {
            self.cur = self.cur.saturating_add_signed(delta);
            self.pending = self.pending.saturating_add(delta);
        } else if at.saturating_add(1) == self.window {
            self.prev = self.prev.saturating_add_signed(delta);
            self.pending_prev = self.pending_prev.saturating_add(delta);
        }
    }

    /// Milliseconds from `now_ms` until `need` more fits under `limit` (at least 1), counting
    /// nothing new in the meantime. A `need` above the limit never fits: the answer is then the
    /// time until the window holds nothing.
    pub fn wait_ms(&self, limit: &Limit, now_ms: u64, need: u64) -> u64 {
        let target = limit.max.saturating_sub(need);
        self.until_at_most(limit.window, now_ms, target).max(1)
    }

    /// Milliseconds from `now_ms` until the remaining count under `limit` (`max` minus what
    /// the window holds, 0 when over) next rises: the `reset` of the rate-limit headers. 0 when
    /// nothing is counted, so that nothing can rise.
    pub fn reset_ms(&self, limit: &Limit, now_ms: u64) -> u64 {
        let used = self.used(limit.window, now_ms).min(limit.max);
        match used.checked_sub(1) {
            Some(target) => self.until_at_most(limit.window, now_ms, target),
            None => 0,
        }
    }

    /// Milliseconds from `now_ms` (after `roll`) until what the window holds is at most
    /// `target`, if nothing more is counted meanwhile.
    ///
    /// A calendar period drops everything at its end. The sliding minute holds
    /// `cur + ceil(prev × (L − t) / L)` at `t` ms into the current bucket (L = one minute),
    /// and, once that bucket has ended, `ceil(cur × (L − t′) / L)` at `t′` ms into the next:
    /// the count falls one step at a time, and the first time it reaches `target` is solved
    /// for exactly, so a client that waits this long finds room, and no longer.
    fn until_at_most(&self, win: Window, now_ms: u64, target: u64) -> u64 {
        if self.used(win, now_ms) <= target {
            return 0;
        }
        let end = window::end_ms(win, self.window);
        let until_end = end.saturating_sub(now_ms);
        if win != Window::Minute {
            return until_end;
        }
        let length = window::length_ms(win);
        let cur = self.cur.saturating_add(self.remote_cur);
        let prev = self.prev.saturating_add(self.remote_prev);
        let into = length.saturating_sub(until_end);
        match target.checked_sub(cur) {
            // Within this bucket, once the previous one's share is at most `room`.
            Some(room) => first_ms_at_most(prev, length, room).saturating_sub(into),
            // Only in the next bucket, as this one slides out.
            None => until_end.saturating_add(first_ms_at_most(cur, length, target)),
        }
    }

    /// Nothing in this counter matters any more at `now_ms`.
    fn idle(&self, win: Window, now_ms: u64) -> bool {
        let mut copy = self.clone();
        copy.roll(win, now_ms);
        copy.used(win, now_ms) == 0 && copy.pending == 0 && copy.pending_prev == 0
    }
}

impl SlotState {
    pub fn decode(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn fresh(scope: &str, limits: &[Limit], now_ms: u64) -> Self {
        Self {
            scope: scope.to_owned(),
            in_flight: 0,
            counters: limits
                .iter()
                .map(|l| Counter {
                    kind: code(l.window),
                    window: window::index(l.window, now_ms),
                    ..Counter::default()
                })
                .collect(),
        }
    }

    /// Whether another scope may take this slot over: no request in flight, nothing counted
    /// that still matters in its window and nothing left to report to the cluster. A budget
    /// used this period therefore keeps its slot until the period ends.
    pub fn evictable(&self, now_ms: u64) -> bool {
        self.scope.is_empty()
            || (self.in_flight == 0 && self.counters.iter().all(|c| c.idle(kind(c.kind), now_ms)))
    }

    /// Whether the counters were made for `limits` (a configuration change resets them).
    pub fn matches(&self, limits: &[Limit]) -> bool {
        self.counters.len() == limits.len()
            && self
                .counters
                .iter()
                .zip(limits)
                .all(|(c, l)| c.kind == code(l.window))
    }
}

/// The first ms `t` of a bucket of `length` ms at which `ceil(count × (length − t) / length)`,
/// the share of a `count` that slides out over the bucket, is at most `at_most`: the smallest
/// `t` with `count × (length − t) ≤ at_most × length`, that is `length − floor(at_most × length
/// / count)` (0 when the share is already small enough).
fn first_ms_at_most(count: u64, length: u64, at_most: u64) -> u64 {
    if at_most >= count {
        return 0;
    }
    let kept = u128::from(at_most)
        .saturating_mul(u128::from(length))
        .checked_div(u128::from(count))
        .unwrap_or(0);
    length.saturating_sub(u64::try_from(kept).unwrap_or(u64::MAX))
}

pub fn code(win: Window) -> u8 {
    match win {
        Window::Minute => 0,
        Window::Hour => 1,
        Window::Day => 2,
        Window::Month => 3,
    }
}

pub fn kind(code: u8) -> Window {
    match code {
        1 => Window::Hour,
        2 => Window::Day,
        3 => Window::Month,
        _ => Window::Minute,
    }
}
