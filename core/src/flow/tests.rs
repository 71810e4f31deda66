//! The queue discipline with deterministic inputs: priority, minimum shares, token-weighted
//! fairness, time to live, capacity and the memory bound; and the configuration's checks.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{
    Arrival, Arrived, FlowControl, FlowState, MAX_ENTRY_BYTES, MAX_TAGS, OWNER_LEASE_MS, Outcome,
    Woken, fairness_hash,
};
use crate::config::Config;

const MODELS: &str = r#""models":{"m":{"pool":"p"}},"picking":{}"#;

fn flow(fields: &str) -> FlowControl {
    let json = format!(r#"{{{MODELS},"flow_control":{{{fields}}}}}"#);
    Config::from_json(json.as_bytes())
        .unwrap()
        .flow_control
        .unwrap()
}

/// Two bands: `high` (index 0) and `low` (index 1) with `low_share`.
fn two_bands(low_share: f64) -> FlowControl {
    flow(&format!(
        r#""bands":[{{"name":"low","priority":0,"min_share":{low_share}}},{{"name":"high","priority":10}}]"#
    ))
}

struct Queue {
    flow: FlowControl,
    state: FlowState,
    next_ticket: u64,
    now_ms: u64,
    /// Each ticket's (band, fairness, cost).
    requests: std::collections::HashMap<u64, (usize, u64, u64)>,
    /// Admitted requests not ended yet, oldest first.
    admitted: std::collections::VecDeque<u64>,
}

impl Queue {
    fn new(flow: FlowControl) -> Self {
        Self {
            flow,
            state: FlowState::default(),
            next_ticket: 0,
            now_ms: 1_000,
            requests: std::collections::HashMap::new(),
            admitted: std::collections::VecDeque::new(),
        }
    }

    /// A request of `band` from `who` costing `cost` tokens; returns its ticket and outcome.
    fn arrive(&mut self, band: usize, who: &str, cost: u64, slots: u32) -> (u64, Arrived) {
        self.next_ticket += 1;
        let arrival = Arrival {
            ticket: self.next_ticket,
            owner: 1,
            band,
            fairness: fairness_hash(who),
            cost,
            bytes: 1000,
            now_ms: self.now_ms,
        };
        let mut woken = Vec::new();
        let arrived = self.state.arrive(&self.flow, &arrival, slots, &mut woken);
        assert!(woken.is_empty(), "nothing else is released on arrival here");
        self.requests
            .insert(self.next_ticket, (band, arrival.fairness, cost));
        if arrived == Arrived::Admitted {
            self.admitted.push_back(self.next_ticket);
        }
        (self.next_ticket, arrived)
    }

    /// Ends the oldest admitted request (it used `used` tokens, or its estimate) and returns
    /// who is released into its seat.
    fn end_oldest(&mut self, used: Option<u64>, slots: u32) -> Vec<Woken> {
        if let Some(ticket) = self.admitted.pop_front() {
            let (band, fairness, cost) = self.requests[&ticket];
            self.state
                .finish(&self.flow, 1, band, fairness, cost, used.unwrap_or(cost));
        }
        self.release(slots)
    }

    /// Ends the oldest admitted request as estimated (the arguments name it, for the reader).
    fn finish_one(&mut self, _band: usize, _who: &str, _cost: u64, slots: u32) -> Vec<Woken> {
        self.end_oldest(None, slots)
    }

    fn release(&mut self, slots: u32) -> Vec<Woken> {
        let mut woken = Vec::new();
        self.state.release(&self.flow, slots, &mut woken);
        for w in &woken {
            if w.outcome == Outcome::Released {
                self.admitted.push_back(w.ticket);
            }
        }
        woken
    }
}

#[test]
fn capacity_admits_at_once_then_holds_in_arrival_order() {
    let mut queue = Queue::new(flow(""));
    assert_eq!(queue.arrive(0, "a", 10, 2).1, Arrived::Admitted);
    assert_eq!(queue.arrive(0, "a", 10, 2).1, Arrived::Admitted);
    let held: Vec<u64> = (0..3)
        .map(|_| {
            let (ticket, arrived) = queue.arrive(0, "a", 10, 2);
            assert_eq!(arrived, Arrived::Held);
            ticket
        })
        .collect();
    assert_eq!(queue.state.active(), 2);
    assert_eq!(queue.state.held(), 3);
    for expected in held {
        let woken = queue.finish_one(0, "a", 10, 2);
        assert_eq!(
            woken,
            vec![Woken {
                ticket: expected,
                owner: 1,
                outcome: Outcome::Released
            }]
        );
    }
    assert_eq!(queue.state.held(), 0);
    assert_eq!(queue.state.held_bytes(), 0);
}

#[test]
fn nobody_jumps_the_queue_while_requests_wait() {
    // A seat frees without a release running yet: a new arrival of the same fairness id waits
    // behind the held one, which goes first. (Another id's arrival could go first: that is
    // fairness, tested below.)
    let mut queue = Queue::new(flow(""));
    queue.arrive(0, "a", 10, 1);
    let (first_held, _) = queue.arrive(0, "a", 10, 1);
    queue
        .state
        .finish(&queue.flow, 1, 0, fairness_hash("a"), 10, 10);
    let mut woken = Vec::new();
    queue.next_ticket += 1;
    let late = Arrival {
        ticket: queue.next_ticket,
        owner: 1,
        band: 0,
        fairness: fairness_hash("a"),
        cost: 10,
        bytes: 0,
        now_ms: queue.now_ms,
    };
    let arrived = queue.state.arrive(&queue.flow, &late, 1, &mut woken);
    assert_eq!(arrived, Arrived::Held);
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].ticket, first_held);
}

#[test]
fn an_arrival_released_at_once_is_admitted_not_woken() {
    let mut queue = Queue::new(flow(""));
    queue.arrive(0, "a", 10, 1);
    queue.arrive(0, "a", 10, 1);
    // Two more seats appear (a fresh snapshot) before any release ran: the held request and
    // the arrival both go, and the arrival learns it directly.
    let mut woken = Vec::new();
    let arrival = Arrival {
        ticket: 99,
        owner: 1,
        band: 0,
        fairness: fairness_hash("b"),
        cost: 10,
        bytes: 0,
        now_ms: 0,
    };
    let arrived = queue.state.arrive(&queue.flow, &arrival, 3, &mut woken);
    assert_eq!(arrived, Arrived::Admitted);
    assert_eq!(woken.iter().map(|w| w.ticket).collect::<Vec<_>>(), vec![2]);
    assert_eq!(queue.state.active(), 3);
}

#[test]
fn a_higher_band_is_always_served_first_without_minimum_shares() {
    let mut queue = Queue::new(two_bands(0.0));
    queue.arrive(0, "x", 10, 1);
    let low: Vec<u64> = (0..3).map(|_| queue.arrive(1, "lo", 10, 1).0).collect();
    let high: Vec<u64> = (0..3).map(|_| queue.arrive(0, "hi", 10, 1).0).collect();
    let mut order = Vec::new();
    for _ in 0..6 {
        order.extend(queue.finish_one(0, "x", 10, 1).iter().map(|w| w.ticket));
    }
    let expected: Vec<u64> = high.into_iter().chain(low).collect();
    assert_eq!(order, expected);
}

#[test]
fn a_lower_band_keeps_its_minimum_share_of_tokens_under_a_saturating_higher_band() {
    // The high band alone wants every seat; the low band's minimum share is 20% of the tokens.
    let mut queue = Queue::new(two_bands(0.2));
    queue.arrive(0, "x", 100, 1);
    let mut served = [0u64; 2];
    let mut tickets_band = std::collections::HashMap::new();
    for _ in 0..400 {
        // Keep both bands backlogged.
        while queue.state.waiting(0, fairness_hash("hi")) < 3 {
            let (ticket, _) = queue.arrive(0, "hi", 100, 1);
            tickets_band.insert(ticket, 0);
        }
        while queue.state.waiting(1, fairness_hash("lo")) < 3 {
            let (ticket, _) = queue.arrive(1, "lo", 100, 1);
            tickets_band.insert(ticket, 1);
        }
        for woken in queue.finish_one(0, "x", 100, 1) {
            served[tickets_band[&woken.ticket]] += 100;
        }
    }
    let low_share = served[1] as f64 / (served[0] + served[1]) as f64;
    assert!(
        (0.19..=0.21).contains(&low_share),
        "low band got {low_share:.3} of the tokens"
    );
}

#[test]
fn a_band_with_nothing_waiting_banks_no_credit() {
    let mut queue = Queue::new(two_bands(0.5));
    queue.arrive(0, "x", 10, 1);
    // A long stretch of high-band traffic while the low band is idle...
    for _ in 0..50 {
        queue.arrive(0, "hi", 10, 1);
        queue.finish_one(0, "x", 10, 1);
    }
    // ...does not let the low band take the next several seats in a row.
    let low: Vec<u64> = (0..3).map(|_| queue.arrive(1, "lo", 10, 1).0).collect();
    let high: Vec<u64> = (0..3).map(|_| queue.arrive(0, "hi", 10, 1).0).collect();
    let first_two: Vec<u64> = (0..2)
        .flat_map(|_| queue.finish_one(0, "x", 10, 1))
        .map(|w| w.ticket)
        .collect();
    assert!(
        first_two.iter().any(|t| high.contains(t)),
        "{first_two:?} (low {low:?}, high {high:?})"
    );
}

#[test]
fn within_a_band_tokens_not_requests_are_shared_fairly() {
    // `big` sends requests of 1,000 tokens, `small` of 100: after big is served once, small is
    // served about ten times before big again.
    let mut queue = Queue::new(flow(""));
    queue.arrive(0, "x", 100, 1);
    let mut who = std::collections::HashMap::new();
    for _ in 0..5 {
        who.insert(queue.arrive(0, "big", 1000, 1).0, "big");
    }
    for _ in 0..30 {
        who.insert(queue.arrive(0, "small", 100, 1).0, "small");
    }
    let mut tokens = std::collections::HashMap::<&str, u64>::new();
    for _ in 0..22 {
        for woken in queue.finish_one(0, "x", 100, 1) {
            let name = who[&woken.ticket];
            *tokens.entry(name).or_default() += if name == "big" { 1000 } else { 100 };
        }
    }
    let (big, small) = (tokens["big"], tokens["small"]);
    assert!(
        big.abs_diff(small) <= 1000,
        "big {big} vs small {small} tokens served"
    );
}

#[test]
fn a_heavy_sender_does_not_crowd_out_the_light_ones() {
    // One tenant keeps 40 requests waiting, seven others one each: every light request is
    // served within the first eight releases.
    let mut queue = Queue::new(flow(""));
    queue.arrive(0, "x", 100, 1);
    for _ in 0..40 {
        queue.arrive(0, "heavy", 100, 1);
    }
    let light: Vec<u64> = (0..7)
        .map(|i| queue.arrive(0, &format!("light{i}"), 100, 1).0)
        .collect();
    let first: Vec<u64> = (0..8)
        .flat_map(|_| queue.finish_one(0, "x", 100, 1))
        .map(|w| w.ticket)
        .collect();
    for ticket in light {
        assert!(first.contains(&ticket), "{ticket} not in {first:?}");
    }
}

#[test]
fn an_occasional_sender_goes_ahead_of_a_backlogged_one_by_at_most_the_burst() {
    // `heavy` keeps 30 requests of 100 tokens waiting and 10 have been served (the band's
    // virtual time is at the 10th's start, 900); then `light` sends 8 of 100 tokens. With a
    // burst of 500 tokens, light's start from 400: six go before heavy's next (1,000), then
    // they take turns.
    let order = |burst: u64, lights: usize| {
        let mut queue = Queue::new(flow(&format!(r#""fairness_burst_tokens":{burst}"#)));
        queue.arrive(0, "x", 100, 1);
        for _ in 0..30 {
            queue.arrive(0, "heavy", 100, 1);
        }
        queue.finish_one(0, "x", 100, 1);
        for _ in 0..9 {
            queue.finish_one(0, "heavy", 100, 1);
        }
        let light: Vec<u64> = (0..lights)
            .map(|_| queue.arrive(0, "light", 100, 1).0)
            .collect();
        let order: Vec<bool> = (0..lights)
            .flat_map(|_| queue.finish_one(0, "heavy", 100, 1))
            .map(|w| light.contains(&w.ticket))
            .collect();
        order
    };
    let with_burst = order(500, 8);
    assert_eq!(
        with_burst,
        [true, true, true, true, true, true, false, true],
        "light first by the burst, then turns"
    );
    let without = order(0, 4);
    assert_eq!(
        without,
        [true, false, true, false],
        "level with heavy: turns"
    );
}

#[test]
fn usage_corrects_the_estimate_a_fairness_id_was_charged() {
    // Both estimated at 100 tokens, but `long` really used 2,000: its next request waits
    // behind `short`'s until short has been served as much. (One seat: each request ends
    // before the next is chosen, so no id has tokens in flight when it is.)
    let mut queue = Queue::new(flow(r#""fairness_burst_tokens":0"#));
    queue.arrive(0, "long", 100, 2);
    queue.arrive(0, "short", 100, 2);
    queue.end_oldest(Some(2000), 0);
    queue.end_oldest(None, 0);
    let (long_next, _) = queue.arrive(0, "long", 100, 0);
    let short: Vec<u64> = (0..5).map(|_| queue.arrive(0, "short", 100, 0).0).collect();
    let mut order = Vec::new();
    for _ in 0..6 {
        order.extend(queue.release(1).iter().map(|w| w.ticket));
        queue.end_oldest(None, 0);
    }
    assert_eq!(order.last(), Some(&long_next), "{order:?}");
    assert_eq!(&order[..5], &short[..]);
}

#[test]
fn the_id_with_the_fewest_tokens_in_flight_goes_first() {
    // `heavy` holds three seats of 100 tokens, `light` one: light's next request goes first,
    // however early heavy's waited, until light has as many in flight.
    let mut queue = Queue::new(flow(r#""fairness_burst_tokens":0"#));
    for _ in 0..3 {
        queue.arrive(0, "heavy", 100, 4);
    }
    queue.arrive(0, "light", 100, 4);
    let heavy_waiting: Vec<u64> = (0..3).map(|_| queue.arrive(0, "heavy", 100, 4).0).collect();
    let light_next: Vec<u64> = (0..2).map(|_| queue.arrive(0, "light", 100, 4).0).collect();
    let order: Vec<u64> = queue.release(7).iter().map(|w| w.ticket).collect();
    assert_eq!(order[..2], light_next[..], "{order:?}");
    assert_eq!(order[2], heavy_waiting[0]);
}

#[test]
fn requests_that_wait_their_ttl_expire_and_free_their_bytes() {
    let mut queue = Queue::new(flow(r#""bands":[{"name":"a","priority":0,"ttl_ms":500}]"#));
    queue.arrive(0, "x", 10, 1);
    let (early, _) = queue.arrive(0, "x", 10, 1);
    queue.now_ms += 300;
    let (late, _) = queue.arrive(0, "x", 10, 1);
    let mut woken = Vec::new();
    queue.state.expire(&queue.flow, 1_499, &mut woken);
    assert!(woken.is_empty());
    queue.state.expire(&queue.flow, 1_500, &mut woken);
    assert_eq!(
        woken,
        vec![Woken {
            ticket: early,
            owner: 1,
            outcome: Outcome::Expired
        }]
    );
    assert_eq!(queue.state.held_bytes(), 1000);
    assert_eq!(
        queue
            .release(2)
            .iter()
            .map(|w| w.ticket)
            .collect::<Vec<_>>(),
        vec![late]
    );
}

#[test]
fn a_full_band_or_the_bytes_bound_turns_requests_away() {
    let mut queue = Queue::new(flow(
        r#""max_held_bytes":2500,"bands":[{"name":"a","priority":0,"capacity":5}]"#,
    ));
    queue.arrive(0, "x", 10, 1);
    assert_eq!(queue.arrive(0, "x", 10, 1).1, Arrived::Held);
    assert_eq!(queue.arrive(0, "x", 10, 1).1, Arrived::Held);
    assert_eq!(
        queue.arrive(0, "x", 10, 1).1,
        Arrived::Overflow,
        "3,000 bytes would pass the 2,500 bound"
    );

    let mut queue = Queue::new(flow(r#""bands":[{"name":"a","priority":0,"capacity":2}]"#));
    queue.arrive(0, "x", 10, 1);
    assert_eq!(queue.arrive(0, "x", 10, 1).1, Arrived::Held);
    assert_eq!(queue.arrive(0, "x", 10, 1).1, Arrived::Held);
    assert_eq!(queue.arrive(0, "x", 10, 1).1, Arrived::Overflow);
    assert_eq!(queue.state.held(), 2);
}

#[test]
fn a_request_that_leaves_is_taken_out_and_only_once() {
    let mut queue = Queue::new(flow(""));
    queue.arrive(0, "x", 10, 1);
    let (gone, _) = queue.arrive(0, "x", 10, 1);
    let (stays, _) = queue.arrive(0, "x", 10, 1);
    assert!(queue.state.leave(&queue.flow, gone));
    assert!(!queue.state.leave(&queue.flow, gone));
    assert_eq!(queue.finish_one(0, "x", 10, 1)[0].ticket, stays);
    assert!(!queue.state.leave(&queue.flow, stays), "released already");
}

#[test]
fn the_state_stays_within_its_bound_however_many_ids_and_requests_come() {
    let mut queue = Queue::new(flow(
        r#""bands":[{"name":"a","priority":0,"capacity":100}]"#,
    ));
    queue.arrive(0, "x", 10, 1);
    for i in 0..10_000 {
        let who = format!("tenant-{i}");
        let (_, arrived) = queue.arrive(0, &who, u64::MAX / 4, 1);
        assert!(matches!(arrived, Arrived::Held | Arrived::Overflow));
    }
    assert_eq!(queue.state.held(), 100);
    let encoded = queue.state.encode();
    let bound = 100 * MAX_ENTRY_BYTES + MAX_TAGS * 2 * 10 + 64;
    assert!(
        encoded.len() <= bound,
        "{} bytes over the {bound} bound",
        encoded.len()
    );
    assert_eq!(FlowState::decode(&encoded).unwrap(), queue.state);
}

#[test]
fn a_state_left_by_another_band_layout_starts_over() {
    let mut queue = Queue::new(two_bands(0.1));
    queue.arrive(0, "x", 10, 1);
    queue.arrive(0, "x", 10, 1);
    let mut other = Queue::new(flow(r#""bands":[{"name":"only","priority":0}]"#));
    other.state = FlowState::decode(&queue.state.encode()).unwrap();
    assert_eq!(other.arrive(0, "x", 10, 1).1, Arrived::Admitted);
    assert_eq!(other.state.held(), 0);
    assert_eq!(FlowState::decode(b"\xff\xff\xff"), None);
}

#[test]
fn bands_come_from_the_tenant_the_objective_or_the_default() {
    let flow = flow(
        r#""bands":[{"name":"batch","priority":0},{"name":"chat","priority":5},{"name":"vip","priority":9}],
        "default_band":"batch",
        "objectives":{"interactive":"chat","urgent":"vip"},
        "tenants":{"acme":{"band":"chat","objectives":["urgent"]},"beta":{}}"#,
    );
    let (vip, chat, batch) = (0, 1, 2);
    assert_eq!(flow.band_of(None, None), batch);
    assert_eq!(flow.band_of(Some("acme"), None), chat);
    assert_eq!(flow.band_of(Some("acme"), Some("urgent")), vip);
    assert_eq!(
        flow.band_of(Some("acme"), Some("interactive")),
        chat,
        "an objective the tenant may not use is ignored"
    );
    assert_eq!(flow.band_of(Some("beta"), Some("urgent")), batch);
    assert_eq!(flow.band_of(Some("beta"), Some("nonsense")), batch);
    assert_eq!(flow.fairness_id(Some("acme"), Some("u1")), "acme");
}

#[test]
fn configuration_errors_name_the_field() {
    let error = |fields: &str| {
        let json = format!(r#"{{{MODELS},"flow_control":{{{fields}}}}}"#);
        Config::from_json(json.as_bytes()).unwrap_err().field
    };
    assert_eq!(
        error(r#""endpoint_capacity":0"#),
        "flow_control.endpoint_capacity"
    );
    assert_eq!(
        error(r#""reject_status":500"#),
        "flow_control.reject_status"
    );
    assert_eq!(
        error(r#""max_kv_cache_usage":1.5"#),
        "flow_control.max_kv_cache_usage"
    );
    assert_eq!(
        error(r#""default_band":"nope""#),
        "flow_control.default_band"
    );
    assert_eq!(
        error(r#""bands":[{"name":"a","priority":0,"min_share":1.0}]"#),
        "flow_control.bands[0].min_share"
    );
    assert_eq!(
        error(r#""bands":[{"name":"a","priority":0},{"name":"a","priority":1}]"#),
        "flow_control.bands[1].name"
    );
    assert_eq!(
        error(
            r#""bands":[{"name":"a","priority":0,"min_share":0.6},{"name":"b","priority":1,"min_share":0.5}]"#
        ),
        "flow_control.bands"
    );
    assert_eq!(
        error(r#""objectives":{"x":"nope"}"#),
        "flow_control.objectives.x"
    );
    assert_eq!(
        error(r#""tenants":{"t":{"objectives":["x"]}}"#),
        "flow_control.tenants.t.objectives"
    );
    assert_eq!(error(r#""surprise":1"#), "flow_control.surprise");
    let without_picking = Config::from_json(br#"{"models":{"m":{"pool":"p"}},"flow_control":{}}"#);
    assert_eq!(without_picking.unwrap_err().field, "flow_control");
}

#[test]
fn an_owner_that_goes_silent_gives_its_seats_and_held_requests_back() {
    let flow = flow("");
    let mut state = FlowState::default();
    let mut woken = Vec::new();
    let arrival = |ticket, owner, now_ms| Arrival {
        ticket,
        owner,
        band: 0,
        fairness: fairness_hash("t"),
        cost: 10,
        bytes: 100,
        now_ms,
    };
    // Owner 1 (a VM about to be replaced) takes the only seat and holds one more request.
    assert_eq!(
        state.arrive(&flow, &arrival(1, 1, 0), 1, &mut woken),
        Arrived::Admitted
    );
    assert_eq!(
        state.arrive(&flow, &arrival(2, 1, 0), 1, &mut woken),
        Arrived::Held
    );
    // Owner 2 keeps renewing; owner 1 stops at 0.
    assert_eq!(state.renew(&flow, 2, OWNER_LEASE_MS - 1), 0);
    assert_eq!(
        state.arrive(&flow, &arrival(3, 2, 100), 1, &mut woken),
        Arrived::Held
    );
    assert_eq!(state.active(), 1);
    assert_eq!(
        state.renew(&flow, 2, OWNER_LEASE_MS),
        1,
        "owner 1's held request left"
    );
    assert_eq!(state.active(), 0, "owner 1's seat came back");
    assert_eq!(state.held(), 1);
    assert_eq!(state.held_bytes(), 100);
    state.release(&flow, 1, &mut woken);
    assert_eq!(woken.iter().map(|w| w.ticket).collect::<Vec<_>>(), vec![3]);
}

mod saturation {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use sluice_wire::{Endpoint, FORMAT, Lora, Pool, Snapshot};

    use super::flow;
    use crate::flow::{Capacity, capacity};
    use crate::picking::InFlight;

    fn endpoint(address: &str, running: u32, waiting: u32, kv: f32) -> Endpoint {
        Endpoint {
            address: address.into(),
            healthy: true,
            waiting,
            running,
            kv_cache_usage: kv,
            block_size: 16,
            lora: Lora::default(),
            metrics_age_ms: 0,
        }
    }

    fn snapshot(endpoints: Vec<Endpoint>) -> Snapshot {
        Snapshot {
            format: FORMAT,
            version: 1,
            taken_at_unix_ms: 1_000,
            scrape_interval_ms: 50,
            pools: vec![Pool {
                name: "p".into(),
                model: "m".into(),
                endpoints,
            }],
        }
    }

    fn in_flight(counts: &[(&str, i64)]) -> InFlight {
        let mut map = InFlight::default();
        for (address, count) in counts {
            map.add(address, *count, 1_000);
        }
        map
    }

    #[test]
    fn each_replica_counts_its_capacity_less_what_others_make_it_serve() {
        let flow = flow(r#""endpoint_capacity":8,"max_waiting_per_endpoint":1"#);
        let snapshot = snapshot(vec![
            // Ours only: 6 running, and 2 of ours just sent, waiting for the next step.
            endpoint("a:1", 6, 2, 0.5),
            // Another Envoy's 5 running and 3 waiting beside our 2.
            endpoint("b:1", 7, 3, 0.5),
            // KV cache full: no more than the 3 of ours it has.
            endpoint("c:1", 3, 0, 0.97),
        ]);
        let ours = in_flight(&[("a:1", 8), ("b:1", 2), ("c:1", 3)]);
        let room = capacity(&flow, Some(&snapshot), "p", 1_100, 2_000, &ours);
        assert_eq!(
            room,
            Capacity {
                slots: 9 + (9 - 8) + 3,
                dead: false
            }
        );
    }

    #[test]
    fn without_a_fresh_snapshot_the_configured_capacity_per_known_replica() {
        let flow = flow(r#""endpoint_capacity":8,"fallback_endpoints":3"#);
        let none = InFlight::default();
        assert_eq!(capacity(&flow, None, "p", 0, 2_000, &none).slots, 24);
        let old = snapshot(vec![
            endpoint("a:1", 50, 50, 1.0),
            endpoint("b:1", 0, 0, 0.0),
        ]);
        assert_eq!(
            capacity(&flow, Some(&old), "p", 9_000, 2_000, &none).slots,
            16,
            "a stale snapshot only says how many replicas there are"
        );
        let mut dead = snapshot(vec![endpoint("a:1", 0, 0, 0.0)]);
        dead.pools[0].endpoints[0].healthy = false;
        assert!(capacity(&flow, Some(&dead), "p", 1_000, 2_000, &none).dead);
    }
}
