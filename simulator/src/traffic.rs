//! Counts of API requests and how they ended, for `GET /admin/stats`: tests assert how many
//! attempts a server saw (for instance, that a stream cut after its first byte was sent once).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

/// Counters since start (or the last `reset`). Memory is bounded: answers are keyed by status
/// code.
#[derive(Debug, Default)]
pub struct Traffic {
    received: AtomicU64,
    answered: Mutex<BTreeMap<u16, u64>>,
    reset: AtomicU64,
    cut: AtomicU64,
    refused: AtomicU64,
}

impl Traffic {
    /// An API request arrived (whatever happens to it next).
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A response with `status` was sent (its head, at least).
    pub fn answered(&self, status: u16) {
        let mut answered = self.answered.lock().unwrap_or_else(PoisonError::into_inner);
        *answered.entry(status).or_default() += 1;
    }

    /// A request's connection was closed without any response.
    pub fn reset(&self) {
        self.reset.fetch_add(1, Ordering::Relaxed);
    }

    /// A response body failed midway: the connection closed after its first bytes.
    pub fn cut(&self) {
        self.cut.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed before any request on it was read (a dead host).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// `{"received", "answered": {"<status>": n}, "reset", "cut", "refused"}`.
    pub fn to_json(&self) -> Value {
        let answered: serde_json::Map<String, Value> = self
            .answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(status, count)| (status.to_string(), json!(count)))
            .collect();
        json!({
            "received": self.received.load(Ordering::Relaxed),
            "answered": answered,
            "reset": self.reset.load(Ordering::Relaxed),
            "cut": self.cut.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }

    /// Zeroes every count.
    pub fn clear(&self) {
        self.answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        for counter in [&self.received, &self.reset, &self.cut, &self.refused] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_outcome_and_clears() {
        let traffic = Traffic::default();
        for _ in 0..3 {
            traffic.received();
        }
        traffic.answered(200);
        traffic.answered(429);
        traffic.answered(200);
        traffic.reset();
        traffic.cut();
        traffic.refused();
        assert_eq!(
            traffic.to_json(),
            json!({
                "received": 3,
                "answered": { "200": 2, "429": 1 },
                "reset": 1,
                "cut": 1,
                "refused": 1,
            })
        );
        traffic.clear();
        assert_eq!(
            traffic.to_json(),
            json!({ "received": 0, "answered": {}, "reset": 0, "cut": 0, "refused": 0 })
        );
    }
}
