//! Requests this Envoy has sent to each endpoint of a pool and not yet seen finish, kept in one
//! shared-data value per pool so every worker sees them. Scrapes lag by up to an interval; this
//! count does not, so it stops a burst of requests from all landing on the replica that looked
//! emptiest at the last scrape.

use serde::{Deserialize, Serialize};

/// Most endpoints one pool's map holds; beyond that the stalest entries are dropped.
const MAX_ENTRIES: usize = 4096;

/// A count not changed for this long is taken as leaked (its decrement was lost, e.g. when a VM
/// was reloaded mid-request) and ignored.
const LEAK_AFTER_MS: u64 = 600_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// (address, count, unix ms of the last change)
    entries: Vec<(String, u32, u64)>,
}

impl InFlight {
    /// The shared-data key of `pool`'s map.
    pub fn key(pool: &str) -> String {
        format!("sluice.inflight.{pool}")
    }

    /// A map read from shared data; anything unreadable counts as empty.
    pub fn decode(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Every endpoint with requests in flight, and how many.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.entries
            .iter()
            .map(|(address, count, _)| (address.as_str(), *count))
    }

    pub fn get(&self, address: &str) -> u32 {
        self.entries
            .iter()
            .find(|(a, _, _)| a == address)
            .map_or(0, |(_, count, _)| *count)
    }

    /// Adds `delta` (saturating at 0) to `address`'s count at time `now_ms`, dropping entries
    /// that reach 0 or look leaked.
    pub fn add(&mut self, address: &str, delta: i64, now_ms: u64) {
        match self.entries.iter_mut().find(|(a, _, _)| a == address) {
            Some(entry) => {
                let next = i64::from(entry.1)
                    .saturating_add(delta)
                    .clamp(0, i64::from(u32::MAX));
                entry.1 = u32::try_from(next).unwrap_or(0);
                entry.2 = now_ms;
            }
            None if delta > 0 => {
                let count = u32::try_from(delta).unwrap_or(u32::MAX);
                self.entries.push((address.to_owned(), count, now_ms));
            }
            None => {}
        }
        self.entries
            .retain(|(_, count, at)| *count > 0 && now_ms.saturating_sub(*at) < LEAK_AFTER_MS);
        if self.entries.len() > MAX_ENTRIES {
            self.entries.sort_by_key(|entry| std::cmp::Reverse(entry.2));
            self.entries.truncate(MAX_ENTRIES);
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{InFlight, LEAK_AFTER_MS, MAX_ENTRIES};

    #[test]
    fn counts_up_and_down_and_survive_encoding() {
        let mut map = InFlight::default();
        map.add("a:1", 1, 10);
        map.add("a:1", 1, 11);
        map.add("b:1", 1, 12);
        map.add("b:1", -1, 13);
        map.add("c:1", -1, 14);
        let map = InFlight::decode(&map.encode());
        assert_eq!((map.get("a:1"), map.get("b:1"), map.get("c:1")), (2, 0, 0));
        assert_eq!(map.entries.len(), 1, "zero counts are dropped");
        assert_eq!(InFlight::decode(b"\xff\xff garbage"), InFlight::default());
        assert_eq!(InFlight::key("llama_8b"), "sluice.inflight.llama_8b");
    }

    #[test]
    fn leaked_counts_expire_and_the_map_is_bounded() {
        let mut map = InFlight::default();
        map.add("a:1", 5, 0);
        map.add("b:1", 1, LEAK_AFTER_MS);
        assert_eq!(map.get("a:1"), 0);
        for i in 0..(MAX_ENTRIES + 10) {
            map.add(
                &format!("10.0.{}.{}:80", i / 256, i % 256),
                1,
                LEAK_AFTER_MS + i as u64,
            );
        }
        assert_eq!(map.entries.len(), MAX_ENTRIES);
        assert!(map.encode().len() < 128 * 1024);
    }
}
