//! The quota ledger's slots in process memory: `quotas.slots` values, each behind its own lock,
//! with a version per slot for the compare-and-swap that `quota::Store` speaks. `update` applies
//! a change once under the slot's lock, so concurrent workers never retry.

use std::sync::Mutex;

use sluice_core::quota::Change;

use super::lock;

pub struct Slots {
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
const KEY_PREFIX: &str = "sluice.q.";

/// `sluice.q.<n>` → `n`.
fn slot_index(key: &str) -> Option<usize> {
    key.strip_prefix(KEY_PREFIX)?.parse().ok()
}

impl Slots {
    pub fn new(count: u32) -> Self {
        Self {
            slots: (0..count).map(|_| Mutex::new(Slot::default())).collect(),
        }
    }

    fn slot(&self, key: &str) -> Option<&Mutex<Slot>> {
        self.slots.get(slot_index(key)?)
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
        for n in [0u32, 7, 4095] {
            assert_eq!(slot_index(&slot_key(n)), Some(n as usize));
        }
        assert_eq!(slot_index("sluice.prefix.1"), None);
    }

    #[test]
    fn a_write_with_a_stale_version_is_refused() {
        let slots = Slots::new(2);
        let (value, version) = slots.get(&slot_key(1));
        assert_eq!(value, None);
        assert!(slots.set(&slot_key(1), b"a", version));
        assert!(!slots.set(&slot_key(1), b"b", version));
        assert_eq!(slots.get(&slot_key(1)).0.as_deref(), Some(&b"a"[..]));
        assert!(!slots.set(&slot_key(2), b"x", None), "outside the slots");
    }
}
