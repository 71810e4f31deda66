//! Choosing the replica for one request from the picker's snapshot and this Envoy's shared
//! picking state (the pool's in-flight counts, the prefix table), all behind ports.

use super::effects::Destination;
use super::ports::{InFlightRead, Ports};
use crate::error::GatewayError;
use crate::flow::{FlowControl, endpoint_room};
use crate::picking::{Pick, PickRequest, Picking, PrefixEntry, fresh_pool, rank};
use crate::pipeline::RoutedRequest;
use sluice_wire::Endpoint;

/// What picking needs to know of a request, kept while flow control holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PickTarget {
    pool: String,
    prefix_hash: u64,
    /// The LoRA adapter, when the model is not its own base model.
    adapter: Option<String>,
}

impl PickTarget {
    pub(super) fn of(routed: &RoutedRequest) -> Self {
        Self {
            pool: routed.pool.clone(),
            prefix_hash: routed.prefix_hash,
            adapter: routed.adapter().map(str::to_owned),
        }
    }
}

/// A request counted in flight to an endpoint; released when the request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InFlightTicket {
    pool: String,
    address: String,
}

pub(super) enum PickOutcome {
    /// Send to these endpoints.
    Destination {
        destination: Destination,
        ticket: InFlightTicket,
    },
    /// No usable snapshot: Envoy's own load balancing decides.
    EnvoyDecides,
    Reject(GatewayError),
}

/// Ranks the pool's healthy replicas for `target`, counts the request in flight to the first
/// and records it as the prefix's replica. `shed`: refuse the request when every replica's
/// queue is past `max_waiting_per_endpoint` (off for requests flow control admitted: it
/// decided they have room). `seated`: flow control admitted the request under this
/// configuration; it goes to a replica with a free seat (where one freed), whenever one has.
/// `read`: the pool's in-flight counts as the phase already read them (flow control's
/// admission), else they are read here.
pub(super) fn pick(
    ports: &Ports<'_>,
    picking: &Picking,
    target: &PickTarget,
    tie_breaker: u64,
    shed: bool,
    seated: Option<&FlowControl>,
    read: Option<InFlightRead>,
) -> PickOutcome {
    let now = ports.clock.now_ms();
    let snapshot = ports.snapshot.snapshot();
    let Ok(pool) = fresh_pool(
        snapshot.as_deref(),
        &target.pool,
        now,
        picking.stale_after_ms,
    ) else {
        return PickOutcome::EnvoyDecides;
    };
    let recorded = ports
        .prefixes
        .entry(target.prefix_hash)
        .filter(|entry| entry.is_live(target.prefix_hash, now, picking.prefix_ttl_ms));
    let in_flight = read.unwrap_or_else(|| ports.in_flight.read(&target.pool));
    let counts = &in_flight.counts;
    let has_seat = |endpoint: &Endpoint| {
        seated.is_some_and(|flow| {
            let ours = counts.get(&endpoint.address);
            ours < endpoint_room(flow, endpoint, ours)
        })
    };
    let request = PickRequest {
        adapter: target.adapter.as_deref(),
        prefix_endpoint: recorded.as_ref().map(|entry| entry.endpoint.as_str()),
        tie_breaker,
        eligible: seated.map(|_| &has_seat as &dyn Fn(&Endpoint) -> bool),
    };
    let ranked = match rank(
        pool,
        &in_flight.counts,
        &request,
        &picking.weights,
        picking.max_waiting_per_endpoint.filter(|_| shed),
    ) {
        Pick::Ranked(ranked) => ranked,
        Pick::Saturated => return PickOutcome::Reject(GatewayError::Overloaded),
        Pick::NoHealthyEndpoint => return PickOutcome::Reject(GatewayError::NoHealthyEndpoint),
    };
    let Some(chosen) = ranked.first().map(|a| (*a).to_owned()) else {
        return PickOutcome::EnvoyDecides;
    };
    // Counted with the map already read: a store with versions writes it without reading
    // again unless another worker wrote in between.
    ports
        .in_flight
        .add(&target.pool, &chosen, 1, now, Some(in_flight));
    if recorded.is_none_or(|entry| entry.needs_write(&chosen, now, picking.prefix_ttl_ms)) {
        ports.prefixes.record(&PrefixEntry {
            hash: target.prefix_hash,
            endpoint: chosen.clone(),
            at_ms: now,
        });
    }
    let take = usize::try_from(picking.fallbacks)
        .unwrap_or(0)
        .saturating_add(1);
    PickOutcome::Destination {
        destination: Destination {
            endpoints: ranked.iter().take(take).map(|a| (*a).to_owned()).collect(),
        },
        ticket: InFlightTicket {
            pool: target.pool.clone(),
            address: chosen,
        },
    }
}

/// The request to `ticket`'s endpoint is over.
pub(super) fn release(ports: &Ports<'_>, ticket: &InFlightTicket) {
    ports.in_flight.add(
        &ticket.pool,
        &ticket.address,
        -1,
        ports.clock.now_ms(),
        None,
    );
}
