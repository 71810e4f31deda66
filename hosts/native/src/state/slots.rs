//! Ledger slots in process memory, for the quota ledger's store (`quota::Store`): a fixed number
//! of values under keys `<prefix><n>` (`sluice.q.<n>`, the quota slots; `sluice.spend.<n>`, the
//! spend ledger's), each behind its own lock, with a version per slot for the compare-and-swap
//! that `quota::Store` speaks. `update` applies a change once under the slot's lock, so
//! concurrent workers never retry.

use std::sync::Mutex;

use sluice_core::quota::Change;

use super::lock;

pub struct Slots {
    /// What every key starts with (`sluice.q.`).
    prefix: &'static str,
    slots: Vec<Mutex<Slot>>,
}

#[derive(Default)]
struct Slot {
    /// `None` until first written.
    value: Option<Vec<u8>>,
    /// Grows with every write (wrapping): the compare-and-swap token.
    version: u32,
}

/// What `quota::slot_key` puts before the slot number (checked by the tests).
pub const QUOTA_PREFIX: &str = "sluice.q.";
/// What `spend::slot_key` puts before the slot number (checked by the tests).
pub const SPEND_PREFIX: &str = "sluice.spend.";

impl Slots {
    pub fn new(prefix: &'static str, count: u32) -> Self {
        Self {
            prefix,
            slots: (0..count).map(|_| Mutex::new(Slot::default())).collect(),
        }
    }

    /// Whether `key` is one of this store's keys' form (its slot may still be out of range).
    pub fn holds(&self, key: &str) -> bool {
        key.starts_with(self.prefix)
    }

    /// `<prefix><n>` → slot `n`, if there is one.
    fn slot(&self, key: &str) -> Option<&Mutex<Slot>> {
        let index: usize = key.strip_prefix(self.prefix)?.parse().ok()?;
        self.slots.get(index)
    }

    /// The value of `key` and its version; a key outside the slots reads as nothing there.
    pub fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.slot(key) {
            Some(slot) => {
                let slot = lock(slot);
                (slot.value.clone(), Some(slot.version))
            }
            None => (None, None),
        }
    }

    /// Writes `value` if the version is still `cas` (any time without one). A key outside the
    /// slots cannot be written.
    pub fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let Some(slot) = self.slot(key) else {
            return false;
        };
        let mut slot = lock(slot);
        if cas.is_some_and(|cas| cas != slot.version) {
            return false;
        }
        slot.value = Some(value.to_vec());
        slot.version = slot.version.wrapping_add(1);
        true
    }

    /// Applies `change` once under the slot's lock.
    pub fn update(&self, key: &str, change: &mut Change<'_>) -> bool {
        let Some(slot) = self.slot(key) else {
            return false;
        };
        let mut slot = lock(slot);
        if let Some(next) = change(slot.value.as_deref()) {
            slot.value = Some(next);
            slot.version = slot.version.wrapping_add(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::quota::slot_key;

    #[test]
    fn every_slot_key_names_its_slot() {
        let quota = Slots::new(QUOTA_PREFIX, 4096);
        for n in [0u32, 7, 4095] {
            assert!(quota.set(&slot_key(n), b"x", None));
            assert!(quota.holds(&slot_key(n)));
        }
        assert!(!quota.set(&slot_key(4096), b"x", None), "outside the slots");
        assert!(!quota.holds("sluice.prefix.1"));
        let spend = Slots::new(SPEND_PREFIX, sluice_core::spend::SLOTS);
        for n in 0..sluice_core::spend::SLOTS {
            let key = sluice_core::spend::slot_key(n);
            assert!(spend.holds(&key) && !quota.holds(&key));
            assert!(spend.set(&key, b"x", None));
        }
        let past = sluice_core::spend::slot_key(sluice_core::spend::SLOTS);
        assert!(!spend.set(&past, b"x", None));
    }

    #[test]
    fn a_write_with_a_stale_version_is_refused() {
        let slots = Slots::new(QUOTA_PREFIX, 2);
        let (value, version) = slots.get(&slot_key(1));
        assert_eq!(value, None);
        assert!(slots.set(&slot_key(1), b"a", version));
        assert!(!slots.set(&slot_key(1), b"b", version));
        assert_eq!(slots.get(&slot_key(1)).0.as_deref(), Some(&b"a"[..]));
        assert!(!slots.set(&slot_key(2), b"x", None), "outside the slots");
    }
}
