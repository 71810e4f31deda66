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

    /// Milliseconds until `need` more fits under `max` (the previous bucket sliding out), or
    /// until the period ends.
    pub fn wait_ms(&self, limit: &Limit, now_ms: u64, need: u64) -> u64 {
        let end = window::end_ms(limit.window, self.window);
        let until_end = end.saturating_sub(now_ms).max(1);
        if limit.window != Window::Minute {
            return until_end;
        }
        let cur = self.cur.saturating_add(self.remote_cur);
        let prev = self.prev.saturating_add(self.remote_prev);
        let Some(room) = limit.max.checked_sub(cur).and_then(|r| r.checked_sub(need)) else {
            // It does not fit even once the previous bucket is gone: wait for the next one.
            return until_end;
        };
        if prev == 0 {
            return 1;
        }
        // The previous bucket counts prev × left / length, where `left` ms of the current
        // bucket remain: wait until that is at most `room`.
        let length = window::length_ms(limit.window);
        let left = u128::from(room)
            .saturating_mul(u128::from(length))
            .checked_div(u128::from(prev))
            .unwrap_or(0);
        let left = u64::try_from(left).unwrap_or(u64::MAX);
        end.saturating_sub(left).saturating_sub(now_ms).max(1)
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
