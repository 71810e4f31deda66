#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::cell::RefCell;
use std::collections::HashMap;

use super::sync::{SyncResponse, apply, collect};
use super::*;
use crate::config::Config;
use crate::error::ApiFlavor;

/// Shared data in a map, with Envoy's compare-and-swap semantics.
#[derive(Default)]
struct MapStore {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
}

impl Store for MapStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut map = self.map.borrow_mut();
        let current = map.get(key).map(|(_, c)| *c);
        if let (Some(expected), Some(now)) = (cas, current) {
            if expected != now {
                return false;
            }
        }
        let next = current.unwrap_or(0) + 1;
        map.insert(key.to_owned(), (value.to_vec(), next));
        true
    }
}

fn quotas(json: &str) -> Quotas {
    let config = format!(r#"{{"models":{{"m":{{}}}},"quotas":{json}}}"#);
    Config::from_json(config.as_bytes())
        .unwrap()
        .quotas
        .unwrap()
}

const NOW: u64 = 1_709_208_000_000; // 12:00:00 UTC, a minute boundary

fn request<'a>(q: &'a Quotas, tenant: &'a str, now_ms: u64) -> Request<'a> {
    Request {
        quotas: q,
        tenancy: None,
        who: Who {
            tenant,
            ..Who::default()
        },
        charge: Charge::Inference {
            model: "m",
            prompt_tokens: 10,
            output_budget: 90,
        },
        now_ms,
        state_known: true,
    }
}

#[test]
fn exactly_n_requests_per_minute() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"default_tenant":{"limits":{"requests_per_minute":5}}}"#,
    );
    let store = MapStore::default();
    let admitted = (0..20)
        .filter(|i| reserve(&store, &request(&q, "a", NOW + i)).is_ok())
        .count();
    assert_eq!(admitted, 5);
    let rejection = reserve(&store, &request(&q, "a", NOW + 30_000)).unwrap_err();
    assert_eq!(rejection.reason, Reason::Requests);
    // Not at the end of this minute: the five still count in full then, and slide out one
    // by one over the next minute. The first has gone 12 s into it (ceil(5 × 48/60) = 4).
    assert_eq!(rejection.retry_after_ms, 30_000 + 12_000);
    let retry = NOW + 30_000 + rejection.retry_after_ms;
    assert!(reserve(&store, &request(&q, "a", retry - 1)).is_err());
    assert!(reserve(&store, &request(&q, "a", retry)).is_ok());
    // Another tenant has its own counters.
    assert!(reserve(&store, &request(&q, "b", NOW)).is_ok());
    // Sliding: half a minute into the next one, half of the previous minute still counts
    // (2.5 → 3 of 5), and the request admitted at `retry` counts too.
    let later = NOW + 90_000;
    let admitted = (0..10)
        .filter(|_| reserve(&store, &request(&q, "a", later)).is_ok())
        .count();
    assert_eq!(admitted, 1);
}

#[test]
fn reset_says_when_the_remaining_count_next_rises() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"default_tenant":{"limits":{"requests_per_minute":5}}}"#,
    );
    let store = MapStore::default();
    let into = NOW + 10_000;
    let admitted: Vec<Admitted> = (0..5)
        .map(|_| reserve(&store, &request(&q, "a", into)).unwrap())
        .collect();
    let last = admitted[4].standing.requests.unwrap();
    assert_eq!((last.limit, last.remaining), (5, 0));
    // At 0 remaining, the count rises when the first of the five slides out: 50 s to the end
    // of this minute, then 12 s into the next (ceil(5 × 48/60) = 4).
    assert_eq!(last.reset_ms, 50_000 + 12_000);
    let refused = reserve(&store, &request(&q, "a", into + 10_000)).unwrap_err();
    let standing = refused.standing.requests.unwrap();
    assert_eq!((standing.remaining, standing.reset_ms), (0, 52_000));
    // For a request limit the refusal's wait is that same moment.
    assert_eq!(refused.retry_after_ms, standing.reset_ms);
    let headers = headers::rate_limit_headers(&refused.standing, ApiFlavor::OpenAi, into);
    assert_eq!(
        headers,
        [
            ("x-ratelimit-limit-requests", "5".to_owned()),
            ("x-ratelimit-remaining-requests", "0".to_owned()),
            ("x-ratelimit-reset-requests", "52s".to_owned()),
        ]
    );
    // Half a minute into the next minute: 3 of the previous five still count (ceil(2.5)); one
    // more request makes 4. The share of the five falls to 2 at 36 s (ceil(5 × 24/60)).
    let next = reserve(&store, &request(&q, "a", NOW + 90_000)).unwrap();
    let standing = next.standing.requests.unwrap();
    assert_eq!((standing.remaining, standing.reset_ms), (1, 6_000));
    // A single request counts (rounded up) until the end of the next minute.
    let single = reserve(&store, &request(&q, "b", NOW)).unwrap();
    assert_eq!(single.standing.requests.unwrap().remaining, 4);
    assert_eq!(single.standing.requests.unwrap().reset_ms, 120_000);
}

#[test]
fn a_reservation_larger_than_the_limit_waits_for_an_empty_window() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"default_tenant":{"limits":{"tokens_per_minute":50}}}"#,
    );
    let store = MapStore::default();
    // 10 + 90 tokens never fit under 50: the wait is until the window holds nothing, which
    // it already does (1 ms, the least): waiting cannot make such a request fit.
    let refused = reserve(&store, &request(&q, "a", NOW + 1_000)).unwrap_err();
    assert_eq!(refused.reason, Reason::Tokens);
    assert_eq!(refused.retry_after_ms, 1);
    let tokens = refused.standing.tokens.unwrap();
    assert_eq!(
        (tokens.limit, tokens.remaining, tokens.reset_ms),
        (50, 50, 0)
    );
}

#[test]
fn a_request_only_charge_counts_requests_in_the_callers_scope() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"slots":16,
            "default_tenant":{"limits":{"requests_per_minute":3,"tokens_per_minute":100,
                "max_concurrent":5}},
            "models":{"m":{"requests_per_minute":1}}}"#,
    );
    let store = MapStore::default();
    // Inference uses the model's only request and all the tenant's tokens.
    let inference = reserve(&store, &request(&q, "a", NOW)).unwrap();
    assert_eq!(inference.standing.tokens.unwrap().remaining, 0);
    let passthrough = Request {
        charge: Charge::RequestOnly,
        ..request(&q, "a", NOW)
    };
    // Tokens unknown: held to the tenant's request and concurrency limits only, not to its
    // tokens nor to the model's limit.
    let first = reserve(&store, &passthrough).unwrap();
    assert_eq!(first.standing.tokens, None);
    let requests = first.standing.requests.unwrap();
    assert_eq!((requests.limit, requests.remaining), (3, 1));
    let second = reserve(&store, &passthrough).unwrap();
    let refused = reserve(&store, &passthrough).unwrap_err();
    assert_eq!(refused.reason, Reason::Requests);
    assert_eq!(refused.standing.tokens, None);
    // Settled as such: the requests stand, the tokens are untouched, the concurrency comes
    // back.
    for admitted in [&first, &second] {
        settle(&store, &admitted.ticket, Usage::default(), NOW + 1);
    }
    let slot = (0..q.slots)
        .filter_map(|s| store.get(&slot_key(s)).0.map(|b| SlotState::decode(&b)))
        .find(|s| s.scope == "t|a")
        .unwrap();
    assert_eq!(
        slot.in_flight, 1,
        "the inference request is still in flight"
    );
    assert_eq!(slot.counters[0].cur, 3);
    assert_eq!(slot.counters[1].cur, 100);
}

/// Counts the calls that reach the store (each is a host call in Envoy).
#[derive(Default)]
struct CountingStore {
    inner: MapStore,
    calls: std::cell::Cell<u32>,
}

impl Store for CountingStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.calls.set(self.calls.get() + 1);
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.calls.set(self.calls.get() + 1);
        self.inner.set(key, value, cas)
    }
}

#[test]
fn scopes_that_count_only_requests_are_not_settled() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"slots":8,
            "default_tenant":{"limits":{"requests_per_minute":3}},
            "models":{"m":{"requests_per_minute":100,"tokens_per_minute":100000}}}"#,
    );
    let store = CountingStore::default();
    let admitted = reserve(&store, &request(&q, "a", NOW)).unwrap();
    let after_reserve = store.calls.get();
    let usage = Usage {
        input: 10,
        output: 20,
        cached: 0,
    };
    settle(&store, &admitted.ticket, usage, NOW + 1);
    // The model scope (tokens too) is read and written again; the tenant's (requests only) is not.
    assert_eq!(store.calls.get() - after_reserve, 2);
    // Its request still counts: 2 more fit in the minute, not 3.
    let more = (0..5)
        .filter(|_| reserve(&store, &request(&q, "a", NOW + 2)).is_ok())
        .count();
    assert_eq!(more, 2);
}

#[test]
fn tokens_are_reserved_then_settled() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"max_reserved_output_tokens":50,
            "default_tenant":{"limits":{"budgets":[{"period":"day","tokens":600}]}}}"#,
    );
    let store = MapStore::default();
    // Each request reserves 10 + min(90, 50) = 60 tokens.
    let tickets: Vec<Admitted> = (0..20)
        .filter_map(|_| reserve(&store, &request(&q, "a", NOW)).ok())
        .collect();
    assert_eq!(tickets.len(), 10);
    let rejection = reserve(&store, &request(&q, "a", NOW)).unwrap_err();
    assert_eq!(rejection.reason, Reason::Budget);
    // The day ends in 12 hours: the wait, and when the remaining tokens next rise.
    assert_eq!(rejection.retry_after_ms, 12 * 3_600_000);
    let tokens = rejection.standing.tokens.unwrap();
    assert_eq!((tokens.remaining, tokens.reset_ms), (0, 12 * 3_600_000));
    // Five finish having used 20 tokens each: 5 × 40 come back, room for 3 more.
    for admitted in &tickets[..5] {
        let usage = Usage {
            input: 10,
            output: 10,
            cached: 0,
        };
        settle(&store, &admitted.ticket, usage, NOW + 1);
    }
    let more = (0..10)
        .filter(|_| reserve(&store, &request(&q, "a", NOW + 2)).is_ok())
        .count();
    assert_eq!(more, 3);
    // A long stream uses far more than it reserved: the budget goes into debt, nothing more
    // is admitted.
    settle(
        &store,
        &tickets[5].ticket,
        Usage {
            input: 10,
            output: 5000,
            cached: 0,
        },
        NOW + 3,
    );
    for admitted in &tickets[6..] {
        cancel(&store, &admitted.ticket, NOW + 3);
    }
    assert!(reserve(&store, &request(&q, "a", NOW + 4)).is_err());
}

#[test]
fn concurrency_and_cost() {
    let q = quotas(
        r#"{"identity":{"source":"header"},
            "prices":{"m":{"input":1000,"output":2000}},
            "default_tenant":{"limits":{"max_concurrent":2,"budgets":[{"period":"month","usd":1}]}}}"#,
    );
    let store = MapStore::default();
    let first = reserve(&store, &request(&q, "a", NOW)).unwrap();
    let _second = reserve(&store, &request(&q, "a", NOW)).unwrap();
    assert_eq!(
        reserve(&store, &request(&q, "a", NOW)).unwrap_err().reason,
        Reason::Concurrency
    );
    // 10 input at $1000/M + 90 output at $2000/M = $0.19 reserved each; settled at $0.01.
    settle(
        &store,
        &first.ticket,
        Usage {
            input: 10,
            output: 0,
            cached: 0,
        },
        NOW,
    );
    let third = reserve(&store, &request(&q, "a", NOW)).unwrap();
    settle(&store, &third.ticket, Usage::default(), NOW);
    // $0.19 + $0.01 used; four more reservations fit under $1, the fifth does not.
    let more = (0..5)
        .filter_map(|_| reserve(&store, &request(&q, "b", NOW)).ok())
        .inspect(|a| {
            let usage = Usage {
                input: 10,
                output: 90,
                cached: 0,
            };
            assert!(settle(&store, &a.ticket, usage, NOW));
        })
        .count();
    assert_eq!(more, 5, "tenant b has its own budget: 5 × $0.19");
    assert_eq!(
        reserve(&store, &request(&q, "b", NOW)).unwrap_err().reason,
        Reason::Budget
    );
}

#[test]
fn a_refusal_gives_back_the_other_scopes() {
    let q = quotas(
        r#"{"identity":{"source":"header"},
            "default_tenant":{"limits":{"requests_per_minute":100}},
            "models":{"m":{"requests_per_minute":3}}}"#,
    );
    let store = MapStore::default();
    let admitted = (0..10)
        .filter(|i| reserve(&store, &request(&q, ["a", "b"][i % 2], NOW)).is_ok())
        .count();
    assert_eq!(admitted, 3);
    // Tenant a's counter holds only its admitted requests.
    let standing = reserve(&store, &request(&q, "a", NOW))
        .unwrap_err()
        .standing;
    assert_eq!(standing.requests.unwrap().remaining, 0);
    let slot = (0..q.slots)
        .map(|s| store.get(&slot_key(s)).0.map(|b| SlotState::decode(&b)))
        .find_map(|s| s.filter(|s| s.scope == "t|a"))
        .unwrap();
    assert_eq!(slot.counters[0].cur, 2);
}

#[test]
fn the_key_space_is_fixed_whatever_the_tenants() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"slots":64,
            "default_tenant":{"limits":{"requests_per_minute":10}}}"#,
    );
    let store = MapStore::default();
    let mut uncounted = 0;
    for i in 0..100_000u64 {
        let tenant = format!("tenant-{i}");
        // Each tenant's minute has passed by the time its slot is needed again.
        let now = NOW + i * 1000;
        let admitted = reserve(&store, &request(&q, &tenant, now)).unwrap();
        uncounted += admitted.uncounted;
        settle(&store, &admitted.ticket, Usage::default(), now);
    }
    assert!(
        store.map.borrow().len() <= 64,
        "{}",
        store.map.borrow().len()
    );
    assert!(
        store
            .map
            .borrow()
            .keys()
            .all(|k| k.starts_with("sluice.q."))
    );
    // 100 tenants live at once per 64 × 4 probes: some found no slot and were passed (open).
    assert!(uncounted > 0);
    // Fail-closed refuses them instead.
    let closed = quotas(
        r#"{"identity":{"source":"header"},"slots":1,"fail_policy":"closed",
            "default_tenant":{"limits":{"requests_per_minute":10}}}"#,
    );
    let store = MapStore::default();
    assert!(reserve(&store, &request(&closed, "x", NOW)).is_ok());
    assert_eq!(
        reserve(&store, &request(&closed, "y", NOW))
            .unwrap_err()
            .reason,
        Reason::Unknown
    );
    let unknown = Request {
        state_known: false,
        ..request(&closed, "x", NOW)
    };
    assert_eq!(
        reserve(&store, &unknown).unwrap_err().reason,
        Reason::Unknown
    );
}

/// One sync of the instance whose shared data is `store`, against `redis` doing what the
/// picker's pipeline does (INCRBY the current bucket, INCRBY or GET the previous one).
fn sync_through(
    q: &Quotas,
    store: &MapStore,
    redis: &mut HashMap<(String, u64), i64>,
    now: u64,
    lost: bool,
) {
    let mut entries = Vec::new();
    let mut pushed = Vec::new();
    let mut states = HashMap::new();
    for slot in 0..q.slots {
        if let Some(bytes) = store.get(&slot_key(slot)).0 {
            let mut state = SlotState::decode(&bytes);
            collect(&mut state, slot, now, &mut entries, &mut pushed);
            states.insert(slot, state);
        }
    }
    let mut response = SyncResponse::default();
    for e in &entries {
        let cur = redis.entry((e.key.clone(), e.window)).or_default();
        *cur += e.delta;
        let cur = *cur;
        let prev = redis.entry((e.key.clone(), e.window - 1)).or_default();
        *prev += e.prev_delta;
        response.totals.push([cur, *prev]);
    }
    for (p, totals) in pushed.iter().zip(response.totals) {
        let state = states.get_mut(&p.slot).unwrap();
        apply(state, p, totals, now, lost);
    }
    for (slot, state) in states {
        store.set(&slot_key(slot), &state.encode(), None);
    }
}

#[test]
fn a_redis_that_lost_its_counts_gets_them_again() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"default_tenant":{"limits":{"requests_per_minute":10}}}"#,
    );
    let (a, b) = (MapStore::default(), MapStore::default());
    let mut redis: HashMap<(String, u64), i64> = HashMap::new();
    let take = |store: &MapStore, n: usize, now: u64| {
        (0..n)
            .filter(|_| reserve(store, &request(&q, "t", now)).is_ok())
            .count()
    };
    assert_eq!(take(&a, 4, NOW), 4);
    assert_eq!(take(&b, 3, NOW), 3);
    sync_through(&q, &a, &mut redis, NOW, false);
    sync_through(&q, &b, &mut redis, NOW, false);
    // Redis restarts empty; one more request on each side meanwhile.
    redis.clear();
    assert_eq!(take(&a, 1, NOW), 1);
    assert_eq!(take(&b, 1, NOW), 1);
    // Each instance sees a total below its own reports and reports everything again on its
    // next sync; one more round and every view has every report.
    for _ in 0..3 {
        sync_through(&q, &a, &mut redis, NOW, false);
        sync_through(&q, &b, &mut redis, NOW, false);
    }
    assert_eq!(redis.values().sum::<i64>(), 9, "{redis:?}");
    // 9 of 10 used over both, as both views know: one more, then none anywhere.
    assert_eq!(take(&a, 3, NOW), 1);
    sync_through(&q, &a, &mut redis, NOW, false);
    sync_through(&q, &b, &mut redis, NOW, false);
    assert_eq!(take(&b, 3, NOW), 0);
}

#[test]
fn a_new_epoch_reports_everything_again_whatever_the_totals() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"default_tenant":{"limits":{"requests_per_minute":10}}}"#,
    );
    let (a, b) = (MapStore::default(), MapStore::default());
    let mut redis: HashMap<(String, u64), i64> = HashMap::new();
    let take = |store: &MapStore, n: usize| {
        (0..n)
            .filter(|_| reserve(store, &request(&q, "t", NOW)).is_ok())
            .count()
    };
    assert_eq!(take(&a, 2), 2);
    assert_eq!(take(&b, 5), 5);
    sync_through(&q, &a, &mut redis, NOW, false);
    sync_through(&q, &b, &mut redis, NOW, false);
    // Redis restarts empty; B learns of it first and reports its 5 again before A syncs: A's
    // total (5) is above its own 2, so only the epoch tells A that its 2 were lost.
    redis.clear();
    sync_through(&q, &b, &mut redis, NOW, true);
    sync_through(&q, &b, &mut redis, NOW, false);
    sync_through(&q, &a, &mut redis, NOW, true);
    sync_through(&q, &a, &mut redis, NOW, false);
    assert_eq!(redis.values().sum::<i64>(), 7, "{redis:?}");
}

#[test]
fn instances_share_counts_through_sync() {
    let q = quotas(
        r#"{"identity":{"source":"header"},"default_tenant":{"limits":{"requests_per_minute":10}}}"#,
    );
    let (a, b) = (MapStore::default(), MapStore::default());
    let mut redis: HashMap<(String, u64), i64> = HashMap::new();
    let sync = |store: &MapStore, redis: &mut HashMap<(String, u64), i64>| {
        sync_through(&q, store, redis, NOW, false);
    };
    let take = |store: &MapStore, n: usize| {
        (0..n)
            .filter(|_| reserve(store, &request(&q, "t", NOW)).is_ok())
            .count()
    };
    assert_eq!(take(&a, 6), 6);
    sync(&a, &mut redis);
    assert_eq!(take(&b, 3), 3);
    sync(&b, &mut redis);
    sync(&a, &mut redis);
    // 9 of 10 used over both: one more anywhere.
    assert_eq!(take(&a, 5) + take(&b, 0), 1);
    sync(&a, &mut redis);
    sync(&b, &mut redis);
    assert_eq!(take(&b, 5), 0);
}

/// Shared data whose writes can be made to fail every time (as if another worker always wrote
/// first).
#[derive(Default)]
struct ContendedStore {
    inner: MapStore,
    refuse: std::cell::Cell<bool>,
}

impl Store for ContendedStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        !self.refuse.get() && self.inner.set(key, value, cas)
    }
}

#[test]
fn a_settle_that_cannot_be_written_says_so() {
    let q = quotas(
        r#"{"identity":{"source":"header"},
            "default_tenant":{"limits":{"max_concurrent":1,"tokens_per_minute":1000}}}"#,
    );
    let store = ContendedStore::default();
    let admitted = reserve(&store, &request(&q, "a", NOW)).unwrap();
    // Writes fail while the request is held: admission is unknown (fail-open by default, not
    // counted), and the settle reports that its reservation stands.
    store.refuse.set(true);
    let other = reserve(&store, &request(&q, "b", NOW)).unwrap();
    assert_eq!(other.uncounted, 1);
    assert!(!settle(&store, &admitted.ticket, Usage::default(), NOW + 1));
    store.refuse.set(false);
    // The reservation stands, its in-flight count too: the concurrency limit still refuses.
    assert_eq!(
        reserve(&store, &request(&q, "a", NOW + 2))
            .unwrap_err()
            .reason,
        Reason::Concurrency
    );
    let again = reserve(&store, &request(&q, "c", NOW + 2)).unwrap();
    assert!(settle(&store, &again.ticket, Usage::default(), NOW + 3));
}
