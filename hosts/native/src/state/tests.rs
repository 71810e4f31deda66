//! The process-memory ports across threads: exact without retries.

use std::sync::Arc;

use sluice_core::config::Config;
use sluice_core::exchange::{InFlightCounts, PrefixAffinity, SnapshotSource};
use sluice_core::picking::PrefixEntry;
use sluice_core::quota::{Store, slot_key};

use super::State;

fn state(json: &str) -> Arc<State> {
    let config = Config::from_json(json.as_bytes()).unwrap();
    Arc::new(State::new(&config, |_, _| {}))
}

const CONFIG: &str = r#"{
    "models": { "m": { "pool": "p", "context_window": 1000 } },
    "quotas": { "slots": 8, "identity": { "source": "header", "tenant_header": "x-tenant" } }
}"#;

#[test]
fn updates_from_many_threads_are_all_counted() {
    let state = state(CONFIG);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    let mut add = |current: Option<&[u8]>| {
                        let n = current.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
                        Some((n + 1).to_le_bytes().to_vec())
                    };
                    assert!(state.update(&slot_key(3), &mut add));
                    state.add("p", "10.0.0.1:8000", 1, 1, None);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let bytes = state.get(&slot_key(3)).0.unwrap();
    assert_eq!(u64::from_le_bytes(bytes.try_into().unwrap()), 8000);
    assert_eq!(state.read("p").counts.get("10.0.0.1:8000"), 8000);
}

#[test]
fn only_configured_pools_and_slots_hold_anything() {
    let state = state(CONFIG);
    state.add("unknown", "10.0.0.1:8000", 1, 1, None);
    assert_eq!(state.read("unknown").counts.get("10.0.0.1:8000"), 0);
    assert!(!state.set(&slot_key(8), b"x", None));
}

#[test]
fn a_prefix_slot_holds_the_latest_entry_for_its_hash() {
    let state = state(CONFIG);
    let entry = |hash, endpoint: &str| PrefixEntry {
        hash,
        endpoint: endpoint.to_owned(),
        at_ms: 1,
    };
    state.record(&entry(5, "a:1"));
    assert_eq!(state.entry(5).unwrap().endpoint, "a:1");
    // Same slot, another prefix: it replaces the first (fixed slots).
    let other = 5 + sluice_core::picking::PREFIX_SLOTS;
    state.record(&entry(other, "b:1"));
    assert_eq!(state.entry(5).unwrap().hash, other);
    assert!(state.snapshot().is_none());
}

#[test]
fn the_spend_ledger_is_exact_across_threads_and_only_with_tenancy() {
    use sluice_core::quota::Usage;
    use sluice_core::spend::{self, Recorded, Row};

    let without = state(CONFIG);
    let row = Row::settled(0, "t", None, None, "m", Usage::default(), 0);
    assert_eq!(spend::record(&*without, &row), Recorded::Failed);

    let with = state(
        r#"{
        "models": { "m": { "pool": "p", "context_window": 1000 } },
        "quotas": { "slots": 8, "identity": { "source": "header" }, "tenancy": {} }
    }"#,
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let state = Arc::clone(&with);
            std::thread::spawn(move || {
                for i in 0..500 {
                    let usage = Usage {
                        input: 2,
                        output: 1,
                        cached: 0,
                    };
                    let tenant = format!("t{}", (t * 500 + i) % 40);
                    let row = Row::settled(0, &tenant, None, None, "m", usage, 3);
                    assert_ne!(spend::record(&*state, &row), Recorded::Failed);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let rows = spend::take(&*with);
    assert_eq!(rows.iter().map(|r| r.requests).sum::<u64>(), 4000);
    assert_eq!(rows.iter().map(|r| r.input_tokens).sum::<u64>(), 8000);
    assert_eq!(rows.iter().map(|r| r.cost_nano_usd).sum::<u64>(), 12_000);
    assert!(spend::take(&*with).is_empty());
    // The quota slots are apart from the ledger's.
    assert!(with.get(&slot_key(0)).0.is_none());
}
