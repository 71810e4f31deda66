//! Bytes other processes send or leave: the picker's snapshot (decoded, then ranked on), a
//! quota sync answer, and the counter and in-flight slots in Envoy's shared data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::picking::{InFlight, PickRequest, Weights, rank};
use sluice_core::quota::SlotState;
use sluice_core::quota::sync::SyncResponse;
use sluice_wire::Snapshot;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<SyncResponse>(data);
    let _ = SlotState::decode(data);
    let _ = InFlight::decode(data);
    if let Ok(snapshot) = Snapshot::decode(data) {
        let in_flight = InFlight::default();
        for pool in &snapshot.pools {
            let _ = rank(
                pool,
                &in_flight,
                &PickRequest::default(),
                &Weights::default(),
                Some(4),
            );
        }
    }
});
