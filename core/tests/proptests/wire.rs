//! What the picker and other workers send: the `sluice_wire` snapshot (decoded into a worker's
//! copy, then ranked on), the cluster quota sync messages (and their totals applied to a
//! counter slot), and the small encodings kept in Envoy's shared data, on arbitrary bytes and on
//! generated encodings with bytes changed.

use proptest::prelude::*;
use sluice_core::config::quotas::{Limit, Measure, TokenKind, Window};
use sluice_core::picking::{
    InFlight, LocalSnapshot, Pick, PickRequest, PrefixEntry, Weights, decode_version, destination,
    rank,
};
use sluice_core::quota::SlotState;
use sluice_core::quota::sync::{self, Pushed, SyncRequest, SyncResponse};
use sluice_wire::{Endpoint, FORMAT, Lora, Pool, Snapshot};

use crate::support::check;

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        "[0-9.:]{0,21}",
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        prop_oneof![
            0.0f32..=1.0,
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(-1.0),
            any::<f32>()
        ],
        any::<u32>(),
        (
            any::<u32>(),
            prop::collection::vec("[a-z-]{0,8}", 0..3),
            prop::collection::vec("[a-z-]{0,8}", 0..3),
        ),
        any::<u32>(),
    )
        .prop_map(
            |(address, healthy, waiting, running, kv, block, (max, run, wait), age)| Endpoint {
                address,
                healthy,
                waiting,
                running,
                kv_cache_usage: kv,
                block_size: block,
                lora: Lora {
                    max,
                    running: run,
                    waiting: wait,
                },
                metrics_age_ms: age,
            },
        )
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        prop_oneof![4 => Just(FORMAT), 1 => any::<u16>()],
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(
            (
                "[a-z]{0,6}",
                "[a-z]{0,6}",
                prop::collection::vec(endpoint(), 0..5),
            ),
            0..3,
        ),
    )
        .prop_map(|(format, version, taken, scrape, pools)| Snapshot {
            format,
            version,
            taken_at_unix_ms: taken,
            scrape_interval_ms: scrape,
            pools: pools
                .into_iter()
                .map(|(name, model, endpoints)| Pool {
                    name,
                    model,
                    endpoints,
                })
                .collect(),
        })
}

/// Encoded snapshots, some with bytes changed, cut short or extended, and noise.
fn snapshot_bytes() -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        snapshot(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(snapshot, edits, cut, tail)| {
            let mut bytes = snapshot.encode().unwrap();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend(tail);
            bytes
        });
    prop_oneof![3 => edited, 1 => prop::collection::vec(any::<u8>(), 0..128)]
}

fn weights() -> impl Strategy<Value = Weights> {
    let w = || prop_oneof![0.0f64..10.0, Just(0.0), Just(1e300)];
    (w(), w(), w(), w(), w(), w()).prop_map(
        |(queue, kv_cache, running, in_flight, prefix, lora)| Weights {
            queue,
            kv_cache,
            running,
            in_flight,
            prefix,
            lora,
        },
    )
}

#[test]
fn snapshots_decode_or_fail_cleanly_and_rank() {
    let strategy = (
        snapshot_bytes(),
        weights(),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<u64>(),
        prop::option::of(any::<u32>()),
        any::<u32>(),
    );
    check(
        "sluice_wire::Snapshot::decode + picking::rank",
        1.0,
        strategy,
        |(bytes, weights, in_flight, tie, max_waiting, fallbacks)| {
            let mut local = LocalSnapshot::default();
            let decoded = Snapshot::decode(&bytes);
            prop_assert_eq!(local.replace(&bytes).is_ok(), decoded.is_ok());
            let Ok(snapshot) = decoded else {
                return Ok(());
            };
            prop_assert_eq!(snapshot.format, FORMAT);
            // What decodes encodes back to a snapshot that decodes the same.
            let again = Snapshot::decode(&snapshot.encode().unwrap()).unwrap();
            prop_assert_eq!(again.encode().unwrap(), snapshot.encode().unwrap());
            let in_flight = InFlight::decode(&in_flight);
            for pool in &snapshot.pools {
                let _ = local.pool(&pool.name, snapshot.taken_at_unix_ms, 1000);
                let request = PickRequest {
                    adapter: Some("lora"),
                    prefix_endpoint: pool.endpoints.first().map(|e| e.address.as_str()),
                    tie_breaker: tie,
                    eligible: None,
                };
                match rank(pool, &in_flight, &request, &weights, max_waiting) {
                    Pick::Ranked(ranked) => {
                        let healthy = pool.endpoints.iter().filter(|e| e.healthy).count();
                        prop_assert_eq!(ranked.len(), healthy);
                        let _ = destination(&ranked, fallbacks);
                    }
                    Pick::Saturated | Pick::NoHealthyEndpoint => {}
                }
            }
            Ok(())
        },
    );
}

fn counts() -> impl Strategy<Value = [i64; 2]> {
    let n = || prop_oneof![-10i64..1000, Just(i64::MAX), Just(i64::MIN), any::<i64>()];
    (n(), n()).prop_map(|(a, b)| [a, b])
}

/// Sync answers as JSON: generated, edited, or noise.
fn sync_bytes() -> impl Strategy<Value = Vec<u8>> {
    let response =
        (prop::collection::vec(counts(), 0..4), any::<u64>()).prop_map(|(totals, epoch)| {
            serde_json::to_vec(&SyncResponse {
                totals,
                epoch,
                spend_stored: false,
            })
            .unwrap()
        });
    let edited = (
        response,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..3),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            bytes
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        crate::support::json().prop_map(|j| j.render()),
        edited,
    ]
}

fn window() -> impl Strategy<Value = Window> {
    prop::sample::select(vec![
        Window::Minute,
        Window::Hour,
        Window::Day,
        Window::Month,
    ])
}

#[test]
fn sync_messages_and_slots_from_arbitrary_bytes() {
    let strategy = (
        sync_bytes(),
        prop::collection::vec(any::<u8>(), 0..96),
        prop::collection::vec((window(), 0u64..1000), 1..4),
        any::<u64>(),
        prop::collection::vec(any::<i64>(), 2),
        any::<bool>(),
    );
    check(
        "quota sync messages + slot state",
        1.0,
        strategy,
        |(answer, slot_bytes, limits, now, deltas, lost)| {
            let _ = serde_json::from_slice::<SyncRequest>(&answer);
            let now = now % 4_000_000_000_000;
            let limits: Vec<Limit> = limits
                .into_iter()
                .map(|(window, max)| Limit {
                    measure: Measure::Tokens(TokenKind::Total),
                    window,
                    max,
                })
                .collect();
            // A slot as another worker left it (any bytes), or a fresh one with counts.
            let mut state = SlotState::decode(&slot_bytes);
            if state.counters.is_empty() {
                state = SlotState::fresh("t|acme", &limits, now);
                for counter in &mut state.counters {
                    counter.add(counter.window, deltas[0]);
                    counter.add(counter.window.saturating_sub(1), deltas[1]);
                }
            }
            let mut entries = Vec::new();
            let mut pushed: Vec<Pushed> = Vec::new();
            sync::collect(&mut state, 0, now, &mut entries, &mut pushed);
            prop_assert_eq!(entries.len(), pushed.len());
            let Ok(response) = serde_json::from_slice::<SyncResponse>(&answer) else {
                for p in &pushed {
                    sync::restore(&mut state, p, now);
                }
                return Ok(());
            };
            for (p, totals) in pushed.iter().zip(response.totals.iter()) {
                sync::apply(&mut state, p, *totals, now.saturating_add(1), lost);
            }
            for (counter, limit) in state.counters.iter().zip(&limits) {
                let _ = counter.used(limit.window, now);
                let _ = counter.wait_ms(limit, now, limit.max);
                let _ = counter.reset_ms(limit, now);
            }
            let _ = SlotState::decode(&state.encode());
            Ok(())
        },
    );
}

#[test]
fn shared_data_encodings_from_arbitrary_bytes() {
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..64),
        any::<u64>(),
        any::<u64>(),
    );
    check(
        "shared-data encodings",
        1.0,
        strategy,
        |(bytes, hash, now)| {
            let _ = decode_version(&bytes);
            let in_flight = InFlight::decode(&bytes);
            let _ = in_flight.counts().count();
            let _ = PrefixEntry::lookup(&bytes, hash, now, 1000);
            let _ = PrefixEntry::find(&bytes, hash, now, 1000);
            let _ = SlotState::decode(&bytes);
            Ok(())
        },
    );
}
