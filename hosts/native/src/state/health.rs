//! The targets' health (`sluice_core::attempt::TargetHealthStore`), one table per process: the
//! downstream filter's configuration (choosing chains) and the upstream filter's (recording
//! attempts) are separate configurations of the same module, and both must see the same
//! table. One lock, held for one read-modify-write: exact across workers, no retries.
//!
//! Bounded: the table has one entry per target of the configuration that last wrote it
//! (`HealthTable::align`; `targets::MAX_TARGETS` at most), and a table past that bound (which
//! only a change that never aligned could leave) starts over.

use std::sync::Mutex;

use sluice_core::attempt::TargetHealthStore;
use sluice_core::targets::{HealthTable, MAX_TARGETS};

use super::lock;

/// The process's table.
pub static TARGET_HEALTH: TargetHealth = TargetHealth::new();

pub struct TargetHealth(Mutex<Option<HealthTable>>);

impl TargetHealth {
    pub const fn new() -> Self {
        Self(Mutex::new(None))
    }
}

impl Default for TargetHealth {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `table` holds more entries than any configuration may have targets.
fn oversized(table: &HealthTable) -> bool {
    table.entry(MAX_TARGETS).is_some()
}

impl TargetHealthStore for TargetHealth {
    /// Runs `change` once, under the lock.
    fn update(&self, change: &mut dyn FnMut(&mut HealthTable)) -> bool {
        let mut guard = lock(&self.0);
        let table = guard.get_or_insert_with(HealthTable::default);
        change(table);
        if oversized(table) {
            *table = HealthTable::default();
        }
        true
    }

    /// A copy of the table (one entry per target: small).
    fn read(&self) -> Option<HealthTable> {
        Some(lock(&self.0).clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::targets::{AttemptOutcome, Failover};

    use super::*;

    const NOW: u64 = 1_700_000_000_000;
    const FINGERPRINT: u64 = 42;

    fn fail(store: &TargetHealth, target: usize) {
        let failover = Failover {
            eject_after_failures: u32::MAX,
            ..Failover::default()
        };
        assert!(store.update(&mut |table| {
            table.align(FINGERPRINT, 3);
            table.record(target, AttemptOutcome::Failed(500), NOW, &failover);
        }));
    }

    #[test]
    fn updates_from_many_threads_are_all_counted() {
        let store = Arc::new(TargetHealth::new());
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        fail(&store, n % 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let table = store.read().unwrap();
        assert_eq!(table.entry(0).unwrap().consecutive_failures, 2000);
        assert_eq!(table.entry(1).unwrap().consecutive_failures, 2000);
        assert_eq!(table.entry(2).unwrap().consecutive_failures, 0);
    }

    #[test]
    fn what_one_configuration_records_the_other_reads() {
        // The downstream and the upstream filter are two configurations over one store.
        let store = TargetHealth::new();
        assert!(store.update(&mut |table| {
            table.align(FINGERPRINT, 2);
            table.record(
                1,
                AttemptOutcome::of_status(429, Some(5_000)),
                NOW,
                &Failover::default(),
            );
        }));
        let table = store.read().unwrap();
        assert!(table.available(0, NOW));
        assert!(!table.available(1, NOW + 4_999));
        assert!(table.available(1, NOW + 5_000));
    }

    #[test]
    fn the_table_is_bounded_by_the_most_targets_a_configuration_may_have() {
        let store = TargetHealth::new();
        store.update(&mut |table| table.align(FINGERPRINT, MAX_TARGETS));
        assert!(store.read().unwrap().entry(MAX_TARGETS - 1).is_some());
        store.update(&mut |table| table.align(FINGERPRINT, MAX_TARGETS + 1));
        assert_eq!(store.read().unwrap(), HealthTable::default());
    }

    #[test]
    fn an_empty_store_reads_as_an_empty_table() {
        assert_eq!(TargetHealth::new().read(), Some(HealthTable::default()));
    }
}
