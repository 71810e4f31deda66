//! Which endpoint last served a prompt prefix: a fixed number of shared-data slots indexed by
//! the prefix hash. A newer prefix in the same slot replaces the older one, so the table is
//! bounded (and approximate) whatever the traffic.

use serde::{Deserialize, Serialize};

/// Slots in the table; each holds one prefix.
pub const SLOTS: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixEntry {
    pub hash: u64,
    pub endpoint: String,
    pub at_ms: u64,
}

impl PrefixEntry {
    /// The shared-data key of the slot for `hash`.
    pub fn key(hash: u64) -> String {
        format!("sluice.prefix.{}", hash % SLOTS)
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// The endpoint recorded in `slot` for `hash`, unless another prefix took the slot or the
    /// entry is older than `ttl_ms` (the replica has likely evicted it by then).
    pub fn lookup(slot: &[u8], hash: u64, now_ms: u64, ttl_ms: u64) -> Option<String> {
        Self::find(slot, hash, now_ms, ttl_ms).map(|entry| entry.endpoint)
    }

    /// The entry in `slot` for `hash` that is younger than `ttl_ms`, if any.
    pub fn find(slot: &[u8], hash: u64, now_ms: u64, ttl_ms: u64) -> Option<Self> {
        Self::decode(slot).filter(|entry| entry.is_live(hash, now_ms, ttl_ms))
    }

    /// The entry a slot holds, whatever its prefix; `None` if unreadable.
    pub fn decode(slot: &[u8]) -> Option<Self> {
        postcard::from_bytes(slot).ok()
    }

    /// Whether this entry is for `hash` and younger than `ttl_ms`: another prefix may have
    /// taken the slot, and an old entry's replica has likely evicted the prefix.
    pub fn is_live(&self, hash: u64, now_ms: u64, ttl_ms: u64) -> bool {
        self.hash == hash && self.age_ms(now_ms) < ttl_ms
    }

    /// Whether sending `hash` to `endpoint` at `now_ms` needs this entry written again: it names
    /// another endpoint, or it is past half its `ttl_ms` and would soon expire. Skipping the
    /// write when neither holds saves a shared-data write on most requests of a hot prefix.
    pub fn needs_write(&self, endpoint: &str, now_ms: u64, ttl_ms: u64) -> bool {
        self.endpoint != endpoint || self.age_ms(now_ms) >= ttl_ms / 2
    }

    fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.at_ms)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{PrefixEntry, SLOTS};

    #[test]
    fn an_entry_is_rewritten_only_when_it_moves_or_ages() {
        let entry = PrefixEntry {
            hash: 7,
            endpoint: "a:1".into(),
            at_ms: 1000,
        };
        let found = PrefixEntry::find(&entry.encode(), 7, 1200, 1000).unwrap();
        assert_eq!(found, entry);
        assert!(!found.needs_write("a:1", 1499, 1000));
        assert!(
            found.needs_write("a:1", 1500, 1000),
            "half its lifetime gone"
        );
        assert!(found.needs_write("b:1", 1001, 1000), "another endpoint");
        assert_eq!(PrefixEntry::find(&entry.encode(), 7, 2000, 1000), None);
    }

    #[test]
    fn lookups_match_hash_and_age() {
        let entry = PrefixEntry {
            hash: 7 + SLOTS,
            endpoint: "a:1".into(),
            at_ms: 1000,
        };
        let slot = entry.encode();
        assert_eq!(PrefixEntry::key(7), PrefixEntry::key(7 + SLOTS));
        assert_eq!(
            PrefixEntry::lookup(&slot, 7 + SLOTS, 1500, 1000).as_deref(),
            Some("a:1")
        );
        assert_eq!(
            PrefixEntry::lookup(&slot, 7, 1500, 1000),
            None,
            "another prefix, same slot"
        );
        assert_eq!(
            PrefixEntry::lookup(&slot, 7 + SLOTS, 2000, 1000),
            None,
            "expired"
        );
        assert_eq!(PrefixEntry::lookup(b"", 7, 0, 1000), None);
    }
}
