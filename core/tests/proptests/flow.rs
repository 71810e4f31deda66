//! Flow control's queue state: every worker of an Envoy process changes it (the Wasm build
//! through shared data, so its bytes are also decoded), in any order of arrivals, releases,
//! expiries, departures and ends. Generated sequences of those keep its invariants, and
//! arbitrary bytes decode to a state or to nothing.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use sluice_core::config::Config;
use sluice_core::flow::{
    Arrival, Arrived, FlowControl, FlowState, MAX_ENTRY_BYTES, MAX_TAGS, Outcome,
};

use crate::support::check;

#[derive(Debug, Clone)]
enum Op {
    Arrive {
        band: usize,
        who: u8,
        cost: u64,
        bytes: u64,
        slots: u32,
    },
    /// Ends the admitted request at this index (modulo how many there are).
    Finish {
        which: usize,
        actual: u64,
        slots: u32,
    },
    Release {
        slots: u32,
    },
    Expire {
        advance_ms: u64,
    },
    Leave {
        which: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3, 0u8..12, 0u64..100_000, 0u64..5_000, 0u32..6).prop_map(
            |(band, who, cost, bytes, slots)| Op::Arrive { band, who, cost, bytes, slots }
        ),
        2 => (any::<usize>(), 0u64..200_000, 0u32..6)
            .prop_map(|(which, actual, slots)| Op::Finish { which, actual, slots }),
        1 => (0u32..6).prop_map(|slots| Op::Release { slots }),
        1 => (0u64..3_000).prop_map(|advance_ms| Op::Expire { advance_ms }),
        1 => any::<usize>().prop_map(|which| Op::Leave { which }),
    ]
}

fn flow() -> FlowControl {
    let json = br#"{"models":{"m":{"pool":"p"}},"picking":{},"flow_control":{
        "max_held_bytes":20000,
        "bands":[{"name":"a","priority":9,"capacity":6,"ttl_ms":2000},
                 {"name":"b","priority":5,"min_share":0.3,"capacity":4,"ttl_ms":1000},
                 {"name":"c","priority":0,"min_share":0.1,"capacity":5,"ttl_ms":500}]}}"#;
    Config::from_json(json).unwrap().flow_control.unwrap()
}

#[test]
fn any_sequence_keeps_the_queue_within_its_bounds_and_resolves_each_request_once() {
    let flow = flow();
    check(
        "flow queue sequences",
        0.5,
        prop::collection::vec(op(), 1..120),
        |ops| {
            let mut state = FlowState::default();
            let mut now = 0u64;
            let mut next_ticket = 0u64;
            // Held tickets as the test sees them, and admitted ones (band, who, cost).
            let mut held: HashMap<u64, (usize, u8, u64)> = HashMap::new();
            let mut admitted: Vec<(usize, u8, u64)> = Vec::new();
            let mut resolved: HashSet<u64> = HashSet::new();
            for op in ops {
                let mut woken = Vec::new();
                match op {
                    Op::Arrive {
                        band,
                        who,
                        cost,
                        bytes,
                        slots,
                    } => {
                        next_ticket += 1;
                        let arrival = Arrival {
                            ticket: next_ticket,
                            owner: 0,
                            band,
                            fairness: u64::from(who),
                            cost,
                            bytes,
                            now_ms: now,
                        };
                        match state.arrive(&flow, &arrival, slots, &mut woken) {
                            Arrived::Admitted => admitted.push((band, who, cost)),
                            Arrived::Held => {
                                held.insert(next_ticket, (band, who, cost));
                            }
                            Arrived::Overflow => {}
                        }
                    }
                    Op::Finish {
                        which,
                        actual,
                        slots,
                    } => {
                        if !admitted.is_empty() {
                            let (band, who, cost) = admitted.remove(which % admitted.len());
                            state.finish(&flow, 0, band, u64::from(who), cost, actual);
                        }
                        state.release(&flow, slots, &mut woken);
                        prop_assert!(state.active() >= slots || state.held() == 0);
                    }
                    Op::Release { slots } => {
                        state.release(&flow, slots, &mut woken);
                        prop_assert!(state.active() >= slots || state.held() == 0);
                    }
                    Op::Expire { advance_ms } => {
                        now += advance_ms;
                        state.expire(&flow, now, &mut woken);
                    }
                    Op::Leave { which } => {
                        let tickets: Vec<u64> = {
                            let mut t: Vec<u64> = held.keys().copied().collect();
                            t.sort_unstable();
                            t
                        };
                        if let Some(ticket) = tickets.get(which % tickets.len().max(1)) {
                            prop_assert!(state.leave(&flow, *ticket));
                            held.remove(ticket);
                            resolved.insert(*ticket);
                        }
                    }
                }
                for w in &woken {
                    prop_assert!(
                        resolved.insert(w.ticket),
                        "ticket {} resolved twice",
                        w.ticket
                    );
                    let entry = held.remove(&w.ticket);
                    prop_assert!(entry.is_some(), "ticket {} was not held", w.ticket);
                    if w.outcome == Outcome::Released {
                        admitted.push(entry.unwrap());
                    }
                }
                prop_assert_eq!(state.held(), held.len());
                prop_assert!(state.held() <= 6 + 4 + 5);
                prop_assert!(state.held_bytes() <= 20_000);
                prop_assert_eq!(state.active() as usize, admitted.len());
                let encoded = state.encode();
                prop_assert!(encoded.len() <= 15 * MAX_ENTRY_BYTES + 3 * MAX_TAGS * 20 + 64);
                let decoded = FlowState::decode(&encoded);
                prop_assert_eq!(decoded.as_ref(), Some(&state));
            }
            Ok(())
        },
    );
}

#[test]
fn arbitrary_bytes_decode_to_a_state_or_nothing() {
    let flow = flow();
    check(
        "flow state bytes",
        1.0,
        prop::collection::vec(any::<u8>(), 0..400),
        |bytes| {
            if let Some(mut state) = FlowState::decode(&bytes) {
                // Whatever it decoded to, using it does not panic.
                let mut woken = Vec::new();
                state.expire(&flow, u64::MAX, &mut woken);
                state.release(&flow, 3, &mut woken);
                state.leave(&flow, 1);
                state.finish(&flow, 0, 7, 1, u64::MAX, 0);
                state.renew(&flow, 3, u64::MAX);
            }
            Ok(())
        },
    );
}
