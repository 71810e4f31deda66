//! Scoring and ranking a pool's endpoints for one request.
//!
//! Each signal becomes a score in 0..=1 (1 is best) and the weighted sum ranks the healthy
//! endpoints. Counts (waiting, running, in flight) are scaled by the pool's largest value plus a
//! softening constant: plain min-max scaling would make one queued request against none look like
//! the worst against the best, and let it outweigh a prefix-cache hit. Ties are broken by a
//! per-request rotation so that equally good endpoints share the load instead of all requests
//! herding onto the first one.

use std::collections::HashMap;

use sluice_wire::{Endpoint, Pool};

use super::{InFlight, Weights};

/// What a request brings to the choice.
#[derive(Clone, Copy, Default)]
pub struct PickRequest<'r> {
    /// The LoRA adapter the request is for, if any.
    pub adapter: Option<&'r str>,
    /// The endpoint that last served this request's prompt prefix, if known.
    pub prefix_endpoint: Option<&'r str>,
    /// Varies per request; rotates among equally scored endpoints.
    pub tie_breaker: u64,
    /// Only endpoints this accepts are ranked, when it accepts any (flow control: the replicas
    /// with a free seat, so that a released request goes where the seat freed).
    pub eligible: Option<&'r dyn Fn(&Endpoint) -> bool>,
}

impl std::fmt::Debug for PickRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickRequest")
            .field("adapter", &self.adapter)
            .field("prefix_endpoint", &self.prefix_endpoint)
            .field("tie_breaker", &self.tie_breaker)
            .field("eligible", &self.eligible.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick<'s> {
    /// Healthy endpoints, best first.
    Ranked(Vec<&'s str>),
    /// Every healthy endpoint is at or over the waiting-queue bound: shed the request.
    Saturated,
    NoHealthyEndpoint,
}

pub fn rank<'s>(
    pool: &'s Pool,
    in_flight: &InFlight,
    request: &PickRequest<'_>,
    weights: &Weights,
    max_waiting: Option<u32>,
) -> Pick<'s> {
    let mut healthy: Vec<&Endpoint> = pool.endpoints.iter().filter(|e| e.healthy).collect();
    if healthy.is_empty() {
        return Pick::NoHealthyEndpoint;
    }
    if let Some(eligible) = request.eligible {
        if healthy.iter().any(|e| eligible(e)) {
            healthy.retain(|e| eligible(e));
        }
    }
    if let Some(bound) = max_waiting {
        if healthy.iter().all(|e| e.waiting >= bound) {
            return Pick::Saturated;
        }
    }
    // One lookup table instead of a scan of the in-flight map per endpoint: ranking stays linear
    // in the pool's size.
    let counts: HashMap<&str, u32> = in_flight.counts().collect();
    let flying = |e: &Endpoint| counts.get(e.address.as_str()).copied().unwrap_or(0);
    let signals: Vec<(&'s Endpoint, u32, u32)> = healthy
        .iter()
        .map(|e| (*e, flying(e), waiting_now(e, flying(e))))
        .collect();
    let waiting = Scale::of(signals.iter().map(|(_, _, waiting)| *waiting), 4.0);
    let running = Scale::of(signals.iter().map(|(e, _, _)| e.running), 8.0);
    let flights = Scale::of(signals.iter().map(|(_, flying, _)| *flying), 4.0);
    let mut scored: Vec<(f64, u64, &'s str)> = signals
        .iter()
        .map(|&(e, flying, waiting_now)| {
            let kv = f64::from(e.kv_cache_usage).clamp(0.0, 1.0);
            let prefix = request
                .prefix_endpoint
                .map_or(0.0, |p| if p == e.address { 1.0 } else { 0.0 });
            let score = weights.queue * waiting.inverse(waiting_now)
                + weights.kv_cache * (1.0 - kv)
                + weights.running * running.inverse(e.running)
                + weights.in_flight * flights.inverse(flying)
                + weights.prefix * prefix
                + weights.lora * lora_score(e, request.adapter);
            let rotation = mix(address_hash(&e.address) ^ request.tie_breaker);
            (score, rotation, e.address.as_str())
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Pick::Ranked(scored.into_iter().map(|(_, _, address)| address).collect())
}

/// The `x-gateway-destination-endpoint` value: the first choice, then up to `fallbacks` more
/// for Envoy's retries.
pub fn destination(ranked: &[&str], fallbacks: u32) -> String {
    let take = usize::try_from(fallbacks).unwrap_or(0).saturating_add(1);
    ranked
        .iter()
        .take(take)
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

/// The endpoint's waiting queue as it is likely to be now: the scraped queue plus the requests
/// this Envoy sent it that the scrape does not show yet (in flight beyond its running and waiting
/// counts). The scrape lags by up to an interval, and so do the KV-cache and running figures: a
/// replica that was just sent a long prompt still looks as empty as before, and without this
/// every request until the next scrape would follow the first one there, each waiting for the
/// previous one's prefill. With several Envoys, the others' requests are in the scrape but not in
/// this count, so the correction only ever undercounts.
fn waiting_now(endpoint: &Endpoint, in_flight: u32) -> u32 {
    let seen = endpoint.running.saturating_add(endpoint.waiting);
    let unseen = in_flight.saturating_sub(seen);
    endpoint.waiting.saturating_add(unseen)
}

/// 1 when the adapter is loaded, 0.8 when it is already queued to load, 0.5 when a slot is free
/// (or the server does not say), 0 when it would have to wait for a slot. Requests without an
/// adapter score the same everywhere.
fn lora_score(endpoint: &Endpoint, adapter: Option<&str>) -> f64 {
    let Some(adapter) = adapter else {
        return 1.0;
    };
    let lora = &endpoint.lora;
    if lora.running.iter().any(|a| a == adapter) {
        1.0
    } else if lora.waiting.iter().any(|a| a == adapter) {
        0.8
    } else if lora.max == 0 || lora.running.len() < usize::try_from(lora.max).unwrap_or(usize::MAX)
    {
        0.5
    } else {
        0.0
    }
}

/// Scales a count against the pool's largest value plus a softening constant.
struct Scale {
    denominator: f64,
}

impl Scale {
    fn of(values: impl Iterator<Item = u32>, softening: f64) -> Self {
        let max = values.max().unwrap_or(0);
        Self {
            denominator: f64::from(max) + softening,
        }
    }

    /// 1 for none, falling towards 0 for the pool's largest count.
    fn inverse(&self, value: u32) -> f64 {
        1.0 - f64::from(value) / self.denominator
    }
}

/// splitmix64's finalizer: turns small differences (consecutive tie-breakers) into different
/// orders.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a: a cheap, stable spread of addresses for tie-breaking.
fn address_hash(address: &str) -> u64 {
    address.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use sluice_wire::{Endpoint, Lora, Pool};

    use super::{Pick, PickRequest, rank};
    use crate::picking::{InFlight, Weights};

    /// The shipped defaults: these tests check the behaviour users get out of the box, so a
    /// change of the defaults that changes it fails them.
    fn defaults() -> Weights {
        Weights::default()
    }

    fn endpoint(address: &str, waiting: u32, running: u32, kv: f32) -> Endpoint {
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

    fn pool(endpoints: Vec<Endpoint>) -> Pool {
        Pool {
            name: "p".into(),
            model: "m".into(),
            endpoints,
        }
    }

    fn ranked<'s>(pick: Pick<'s>) -> Vec<&'s str> {
        match pick {
            Pick::Ranked(addresses) => addresses,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_least_loaded_endpoint_comes_first() {
        let p = pool(vec![
            endpoint("a:1", 5, 8, 0.9),
            endpoint("b:1", 0, 2, 0.2),
            endpoint("c:1", 2, 8, 0.5),
        ]);
        let order = ranked(rank(
            &p,
            &InFlight::default(),
            &PickRequest::default(),
            &defaults(),
            None,
        ));
        assert_eq!(order, ["b:1", "c:1", "a:1"]);
    }

    #[test]
    fn the_gateways_own_in_flight_requests_count() {
        let p = pool(vec![endpoint("a:1", 0, 0, 0.0), endpoint("b:1", 0, 0, 0.0)]);
        let mut in_flight = InFlight::default();
        in_flight.add("a:1", 3, 0);
        let order = ranked(rank(
            &p,
            &in_flight,
            &PickRequest::default(),
            &defaults(),
            None,
        ));
        assert_eq!(order[0], "b:1");
    }

    #[test]
    fn requests_the_scrape_does_not_show_yet_count_as_waiting() {
        // At the last scrape `a` looked a little emptier (KV 0.30 against 0.45), and it is first.
        let p = pool(vec![
            endpoint("a:1", 0, 2, 0.30),
            endpoint("b:1", 0, 2, 0.45),
        ]);
        let mut in_flight = InFlight::default();
        in_flight.add("a:1", 2, 0);
        in_flight.add("b:1", 2, 0);
        let first = |in_flight: &InFlight| {
            ranked(rank(
                &p,
                in_flight,
                &PickRequest::default(),
                &defaults(),
                None,
            ))[0]
        };
        assert_eq!(first(&in_flight), "a:1");
        // This Envoy has just sent `a` a long prompt: 3 in flight, the scrape still shows 2
        // running and the old KV figure. The next request must not follow it there before the
        // next scrape.
        in_flight.add("a:1", 1, 0);
        assert_eq!(first(&in_flight), "b:1");
    }

    #[test]
    fn only_eligible_endpoints_are_ranked_when_there_are_any() {
        let p = pool(vec![endpoint("a:1", 0, 0, 0.1), endpoint("b:1", 0, 9, 0.9)]);
        let only_b = |e: &Endpoint| e.address == "b:1";
        let request = PickRequest {
            prefix_endpoint: Some("a:1"),
            eligible: Some(&only_b),
            ..PickRequest::default()
        };
        assert_eq!(
            ranked(rank(&p, &InFlight::default(), &request, &defaults(), None)),
            ["b:1"],
            "the seat freed on b: the request goes there, prefix or not"
        );
        let none = |_: &Endpoint| false;
        let request = PickRequest {
            eligible: Some(&none),
            ..PickRequest::default()
        };
        assert_eq!(
            ranked(rank(&p, &InFlight::default(), &request, &defaults(), None)).len(),
            2,
            "none eligible: every healthy endpoint is ranked"
        );
    }

    #[test]
    fn prefix_affinity_outweighs_a_small_load_difference() {
        let p = pool(vec![endpoint("a:1", 1, 4, 0.4), endpoint("b:1", 0, 3, 0.3)]);
        let request = PickRequest {
            prefix_endpoint: Some("a:1"),
            ..PickRequest::default()
        };
        assert_eq!(
            ranked(rank(&p, &InFlight::default(), &request, &defaults(), None))[0],
            "a:1"
        );
        // ...but not a replica drowning in work.
        let busy = pool(vec![
            endpoint("a:1", 40, 64, 0.99),
            endpoint("b:1", 0, 3, 0.3),
        ]);
        assert_eq!(
            ranked(rank(
                &busy,
                &InFlight::default(),
                &request,
                &defaults(),
                None
            ))[0],
            "b:1"
        );
    }

    #[test]
    fn the_weights_decide_between_signals() {
        // `a` holds the prompt's prefix, `b` is less loaded: the defaults favour the prefix...
        let p = pool(vec![endpoint("a:1", 1, 4, 0.4), endpoint("b:1", 0, 3, 0.3)]);
        let request = PickRequest {
            prefix_endpoint: Some("a:1"),
            ..PickRequest::default()
        };
        let first =
            |weights: &Weights| ranked(rank(&p, &InFlight::default(), &request, weights, None))[0];
        assert_eq!(first(&defaults()), "a:1");
        // ...without a weight for prefix affinity only the load counts...
        let no_prefix = Weights {
            prefix: 0.0,
            ..defaults()
        };
        assert_eq!(first(&no_prefix), "b:1");
        // ...and with the load signals weighed heavily enough they outweigh it.
        let load_heavy = Weights {
            queue: 20.0,
            kv_cache: 20.0,
            ..defaults()
        };
        assert_eq!(first(&load_heavy), "b:1");
    }

    #[test]
    fn lora_adapter_loaded_beats_free_slot_beats_full() {
        let mut loaded = endpoint("a:1", 0, 2, 0.3);
        loaded.lora = Lora {
            max: 1,
            running: vec!["sql".into()],
            waiting: vec![],
        };
        let mut free = endpoint("b:1", 0, 2, 0.3);
        free.lora = Lora {
            max: 2,
            running: vec!["chat".into()],
            waiting: vec![],
        };
        let mut full = endpoint("c:1", 0, 2, 0.3);
        full.lora = Lora {
            max: 1,
            running: vec!["chat".into()],
            waiting: vec![],
        };
        let p = pool(vec![full, free, loaded]);
        let request = PickRequest {
            adapter: Some("sql"),
            ..PickRequest::default()
        };
        let order = ranked(rank(&p, &InFlight::default(), &request, &defaults(), None));
        assert_eq!(order, ["a:1", "b:1", "c:1"]);
    }

    #[test]
    fn unhealthy_endpoints_are_skipped_and_ties_rotate() {
        let mut down = endpoint("z:1", 0, 0, 0.0);
        down.healthy = false;
        let p = pool(vec![
            endpoint("a:1", 0, 0, 0.0),
            endpoint("b:1", 0, 0, 0.0),
            down,
        ]);
        let mut firsts = std::collections::HashSet::new();
        for tie_breaker in 0..16 {
            let request = PickRequest {
                tie_breaker,
                ..PickRequest::default()
            };
            let order = ranked(rank(&p, &InFlight::default(), &request, &defaults(), None));
            assert_eq!(order.len(), 2);
            assert!(!order.contains(&"z:1"));
            firsts.insert(order[0]);
        }
        assert_eq!(firsts.len(), 2, "equal endpoints share first place");
    }

    #[test]
    fn saturated_and_empty_pools() {
        let p = pool(vec![
            endpoint("a:1", 10, 8, 0.9),
            endpoint("b:1", 12, 8, 0.9),
        ]);
        let none = InFlight::default();
        assert_eq!(
            rank(&p, &none, &PickRequest::default(), &defaults(), Some(10)),
            Pick::Saturated
        );
        assert!(matches!(
            rank(&p, &none, &PickRequest::default(), &defaults(), Some(11)),
            Pick::Ranked(_)
        ));
        let mut down = endpoint("a:1", 0, 0, 0.0);
        down.healthy = false;
        assert_eq!(
            rank(
                &pool(vec![down]),
                &none,
                &PickRequest::default(),
                &defaults(),
                None
            ),
            Pick::NoHealthyEndpoint
        );
        assert_eq!(
            rank(
                &pool(vec![]),
                &none,
                &PickRequest::default(),
                &defaults(),
                None
            ),
            Pick::NoHealthyEndpoint
        );
    }
}

#[cfg(test)]
mod destination_tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::destination;

    #[test]
    fn first_choice_then_fallbacks() {
        assert_eq!(destination(&["a:1", "b:1", "c:1", "d:1"], 2), "a:1,b:1,c:1");
        assert_eq!(destination(&["a:1"], 2), "a:1");
        assert_eq!(destination(&["a:1", "b:1"], 0), "a:1");
    }
}
