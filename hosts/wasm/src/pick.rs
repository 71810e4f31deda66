//! Choosing the replica for one request, with this Envoy's shared state: the prefix table and
//! the pool's in-flight counts.

use std::cell::RefCell;

use super::{clock, shared};
use sluice_core::error::GatewayError;
use sluice_core::picking::{
    InFlight, LocalSnapshot, Pick, PickRequest, Picking, PrefixEntry, destination, rank,
};
use sluice_core::pipeline::RoutedRequest;

/// A request counted in flight to an endpoint; released when the request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightTicket {
    key: String,
    address: String,
}

pub enum PickOutcome {
    /// Send to these endpoints: the `x-gateway-destination-endpoint` value.
    Destination {
        header: String,
        ticket: InFlightTicket,
    },
    /// No usable snapshot: Envoy's own load balancing decides.
    EnvoyDecides,
    Reject(GatewayError),
}

pub fn pick(
    picking: &Picking,
    local: &RefCell<LocalSnapshot>,
    routed: &RoutedRequest,
    tie_breaker: u64,
) -> PickOutcome {
    let now = clock::now_ms();
    let Ok(local) = local.try_borrow() else {
        return PickOutcome::EnvoyDecides;
    };
    let Ok(pool) = local.pool(&routed.pool, now, picking.stale_after_ms) else {
        return PickOutcome::EnvoyDecides;
    };
    let prefix_key = PrefixEntry::key(routed.prefix_hash);
    let recorded = shared::get(&prefix_key)
        .0
        .and_then(|slot| PrefixEntry::find(&slot, routed.prefix_hash, now, picking.prefix_ttl_ms));
    let in_flight_key = InFlight::key(&routed.pool);
    let (in_flight_bytes, in_flight_cas) = shared::get(&in_flight_key);
    let mut in_flight = in_flight_bytes
        .map(|bytes| InFlight::decode(&bytes))
        .unwrap_or_default();
    let request = PickRequest {
        adapter: routed.adapter(),
        prefix_endpoint: recorded.as_ref().map(|entry| entry.endpoint.as_str()),
        tie_breaker,
    };
    let ranked = match rank(
        pool,
        &in_flight,
        &request,
        &picking.weights,
        picking.max_waiting_per_endpoint,
    ) {
        Pick::Ranked(ranked) => ranked,
        Pick::Saturated => return PickOutcome::Reject(GatewayError::Overloaded),
        Pick::NoHealthyEndpoint => return PickOutcome::Reject(GatewayError::NoHealthyEndpoint),
    };
    let Some(chosen) = ranked.first().map(|a| (*a).to_owned()) else {
        return PickOutcome::EnvoyDecides;
    };
    // Count the request with the map already read; only if another worker wrote in between is
    // it read again.
    in_flight.add(&chosen, 1, now);
    if !shared::set(&in_flight_key, &in_flight.encode(), in_flight_cas) {
        shared::update(&in_flight_key, |current| {
            let mut map = current.map(InFlight::decode).unwrap_or_default();
            map.add(&chosen, 1, now);
            map.encode()
        });
    }
    if recorded.is_none_or(|entry| entry.needs_write(&chosen, now, picking.prefix_ttl_ms)) {
        let entry = PrefixEntry {
            hash: routed.prefix_hash,
            endpoint: chosen.clone(),
            at_ms: now,
        };
        shared::set(&prefix_key, &entry.encode(), None);
    }
    PickOutcome::Destination {
        header: destination(&ranked, picking.fallbacks),
        ticket: InFlightTicket {
            key: in_flight_key,
            address: chosen,
        },
    }
}

/// The request to `ticket`'s endpoint is over.
pub fn release(ticket: &InFlightTicket) {
    let now = clock::now_ms();
    shared::update(&ticket.key, |current| {
        let mut map = current.map(InFlight::decode).unwrap_or_default();
        map.add(&ticket.address, -1, now);
        map.encode()
    });
}
