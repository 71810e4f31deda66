//! Flow control in the exchange: a routed request takes a seat in its pool's queue (admitted at
//! once, held, or turned away); a held one goes on when its host wakes it; the seat is given
//! back when the stream ends, which may release the next request. `flow_tick` expires and
//! releases on the hosts' timers (a fresh snapshot frees capacity without a request ending).

use super::effects::{Record, RecordKey, RequestEffects, RequestNext};
use super::pick::PickTarget;
use super::ports::{Event, FlowQueues, InFlightRead, Level, Ports};
use super::{Configured, Exchange};
use crate::error::GatewayError;
use crate::flow::{
    Arrival, Arrived, FlowControl, FlowState, Outcome, Woken, capacity, fairness_hash,
};
use crate::pipeline::RoutedRequest;

/// A request's place in flow control, from admission to the end of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seat {
    pool: String,
    /// The worker holding the stream (`FlowQueues::owner`), whose seats count it.
    owner: u32,
    band: usize,
    fairness: u64,
    /// The fairness id as the metrics label it.
    fairness_label: String,
    /// Estimated tokens, charged to the fairness id at admission.
    cost: u64,
    phase: Phase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting; `target` is what picking needs once released.
    Held {
        ticket: u64,
        since_us: u64,
        target: PickTarget,
    },
    /// Counted among the pool's admitted requests until the stream ends.
    Admitted,
}

/// What the seat asks of the request phase.
pub(super) enum Entry {
    /// No flow control here, or capacity is free: pick and go on.
    Go,
    /// Held: the host keeps the request buffered until `on_flow_woken`.
    Hold,
}

impl Exchange {
    /// Seats `routed` in its pool's queue. Refuses it (in the API's format) when its band is
    /// full; fails closed when the queue state cannot be updated.
    pub(super) fn enter_flow(
        &mut self,
        ports: &Ports<'_>,
        configured: &Configured,
        routed: &RoutedRequest,
        tenant: Option<&str>,
        in_flight: Option<&InFlightRead>,
        records: &mut Vec<Record>,
    ) -> Result<Entry, GatewayError> {
        let (Some(flow), Some(picking)) =
            (&configured.config.flow_control, &configured.config.picking)
        else {
            return Ok(Entry::Go);
        };
        let now_ms = ports.clock.now_ms();
        let snapshot = ports.snapshot.snapshot();
        let read_here;
        let in_flight = match in_flight {
            Some(read) => read,
            None => {
                read_here = ports.in_flight.read(&routed.pool);
                &read_here
            }
        };
        let room = capacity(
            flow,
            snapshot.as_deref(),
            &routed.pool,
            now_ms,
            picking.stale_after_ms,
            &in_flight.counts,
        );
        if room.dead {
            // Picking answers 503 at once; holding would only delay it.
            return Ok(Entry::Go);
        }
        let band = flow.band_of(tenant, self.flow_headers.objective.as_deref());
        let fairness_label = flow
            .fairness_id(tenant, self.flow_headers.fairness.as_deref())
            .to_owned();
        let fairness = fairness_hash(&fairness_label);
        let cost = routed
            .estimate
            .prompt_tokens
            .saturating_add(routed.estimate.output_budget);
        let arrival = Arrival {
            ticket: ports.flow.new_ticket(),
            owner: ports.flow.owner(),
            band,
            fairness,
            cost,
            bytes: u64::try_from(self.body_size).unwrap_or(u64::MAX),
            now_ms,
        };
        let mut arrived = Arrived::Overflow;
        let mut woken = Vec::new();
        let updated = ports
            .flow
            .update(&routed.pool, &mut |state: &mut FlowState| {
                woken.clear();
                arrived = state.arrive(flow, &arrival, room.slots, &mut woken);
            });
        if !updated {
            return Err(GatewayError::Internal(
                "flow control: updating the queue failed",
            ));
        }
        wake_all(ports.flow, &woken);
        let band_name = band_name(flow, band);
        let mut seat = Seat {
            pool: routed.pool.clone(),
            owner: arrival.owner,
            band,
            fairness,
            fairness_label,
            cost,
            phase: Phase::Admitted,
        };
        match arrived {
            Arrived::Admitted => {
                records.push(flow_record(band_name, "admitted", 0));
                self.decision.queued(0);
                self.seat = Some(seat);
                Ok(Entry::Go)
            }
            Arrived::Held => {
                ports.telemetry.count(Event::FlowHeld);
                ports.telemetry.flow_held(band_name, &seat.fairness_label);
                seat.phase = Phase::Held {
                    ticket: arrival.ticket,
                    since_us: ports.clock.now_us(),
                    target: PickTarget::of(routed),
                };
                self.seat = Some(seat);
                Ok(Entry::Hold)
            }
            Arrived::Overflow => {
                ports.telemetry.count(Event::FlowOverflow);
                records.push(flow_record(band_name, "overflow", 0));
                Err(GatewayError::QueueRefused {
                    status: flow.reject_status,
                    expired: false,
                })
            }
        }
    }

    /// The host woke this held request (on its own worker): `Released` picks a replica and
    /// sends it on, `Expired` answers the configured 429 or 503 in the API's format. Returns
    /// `None` when the request is not held (woken twice, or already gone): nothing to do.
    pub fn on_flow_woken(&mut self, ports: &Ports<'_>, outcome: Outcome) -> Option<RequestEffects> {
        let mut effects = self.flow_woken(ports, outcome)?;
        self.decided_if_answered(&mut effects);
        Some(effects)
    }

    fn flow_woken(&mut self, ports: &Ports<'_>, outcome: Outcome) -> Option<RequestEffects> {
        let configured = self.configured.clone()?;
        let flow = configured.config.flow_control.as_ref()?;
        let seat = self.seat.as_mut()?;
        let Phase::Held {
            since_us, target, ..
        } = &seat.phase
        else {
            return None;
        };
        let target = target.clone();
        let waited_us = ports.clock.now_us().saturating_sub(*since_us);
        self.decision.queued(waited_us / 1000);
        let band_name = band_name(flow, seat.band);
        ports
            .telemetry
            .flow_waited(band_name, &seat.fairness_label, waited_us);
        if outcome == Outcome::Released {
            seat.phase = Phase::Admitted;
        }
        let mut effects = RequestEffects::default();
        match outcome {
            Outcome::Released => {
                ports.telemetry.count(Event::FlowReleased);
                effects
                    .records
                    .push(flow_record(band_name, "released", waited_us / 1000));
                match self.pick_replica(ports, &configured, &target, None) {
                    Ok(destination) => {
                        effects.destination = destination;
                        effects.next = RequestNext::Continue;
                    }
                    Err(error) => effects.next = self.reject(ports, &error),
                }
            }
            Outcome::Expired => {
                // Expiry took it out of the queue: it holds no capacity.
                self.seat = None;
                ports.telemetry.count(Event::FlowExpired);
                effects
                    .records
                    .push(flow_record(band_name, "expired", waited_us / 1000));
                let error = GatewayError::QueueRefused {
                    status: flow.reject_status,
                    expired: true,
                };
                effects.next = self.reject(ports, &error);
            }
        }
        Some(effects)
    }

    /// The stream is over: a held request leaves the queue, an admitted one gives its capacity
    /// back (its fairness id charged the `used` tokens, when known); either may release the
    /// next request. Returns the flow record of a request that left while held.
    pub(super) fn leave_flow(&mut self, ports: &Ports<'_>, used: Option<u64>) -> Option<Record> {
        let seat = self.seat.take()?;
        let configured = self.configured.clone()?;
        let (Some(flow), Some(picking)) =
            (&configured.config.flow_control, &configured.config.picking)
        else {
            return None;
        };
        let room = capacity(
            flow,
            ports.snapshot.snapshot().as_deref(),
            &seat.pool,
            ports.clock.now_ms(),
            picking.stale_after_ms,
            &ports.in_flight.read(&seat.pool).counts,
        );
        let slots = if room.dead { u32::MAX } else { room.slots };
        let band_name = band_name(flow, seat.band);
        // A held request leaves the queue; one released meanwhile (the wake-up had not reached
        // it) counts as admitted, with nothing used beyond its estimate.
        let (held, actual) = match &seat.phase {
            Phase::Held {
                ticket, since_us, ..
            } => {
                let waited_us = ports.clock.now_us().saturating_sub(*since_us);
                ports
                    .telemetry
                    .flow_waited(band_name, &seat.fairness_label, waited_us);
                ports.telemetry.count(Event::FlowAbandoned);
                (Some((*ticket, waited_us)), seat.cost)
            }
            Phase::Admitted => (None, used.unwrap_or(seat.cost)),
        };
        let mut woken = Vec::new();
        let updated = ports.flow.update(&seat.pool, &mut |state: &mut FlowState| {
            woken.clear();
            let admitted = held.is_none_or(|(ticket, _)| !state.leave(flow, ticket));
            if admitted {
                state.finish(
                    flow,
                    seat.owner,
                    seat.band,
                    seat.fairness,
                    seat.cost,
                    actual,
                );
            }
            state.release(flow, slots, &mut woken);
        });
        if !updated {
            ports.log.log(
                Level::Warn,
                "flow control: giving a request's seat back failed; the pool keeps it",
            );
            ports.telemetry.count(Event::FailedClosed);
        }
        wake_all(ports.flow, &woken);
        let (_, waited_us) = held?;
        self.decision.queued(waited_us / 1000);
        Some(flow_record(band_name, "left", waited_us / 1000))
    }

    /// Whether the request waits in a flow-control queue.
    pub fn is_held(&self) -> bool {
        self.held_ticket().is_some()
    }

    /// The ticket the request waits under while held: what `FlowQueues::wake` names when it
    /// is released or expires, for the host to find the stream by.
    pub fn held_ticket(&self) -> Option<u64> {
        match self.seat.as_ref().map(|seat| &seat.phase) {
            Some(Phase::Held { ticket, .. }) => Some(*ticket),
            _ => None,
        }
    }
}

/// Renews this worker's lease, expires what waited too long and releases what capacity allows,
/// in every pool: capacity can free without a request ending (a fresh snapshot, an owner gone),
/// and expiry needs a clock. Every owner (each Wasm VM; the native process) calls it on its
/// timer; it does nothing without flow control.
pub fn flow_tick(ports: &Ports<'_>, configured: &Configured) {
    let (Some(flow), Some(picking)) = (&configured.config.flow_control, &configured.config.picking)
    else {
        return;
    };
    let now_ms = ports.clock.now_ms();
    let snapshot = ports.snapshot.snapshot();
    let owner = ports.flow.owner();
    let mut woken = Vec::new();
    let mut gone = 0usize;
    for pool in configured.config.catalog.pools() {
        let room = capacity(
            flow,
            snapshot.as_deref(),
            pool,
            now_ms,
            picking.stale_after_ms,
            &ports.in_flight.read(pool).counts,
        );
        let slots = if room.dead { u32::MAX } else { room.slots };
        woken.clear();
        let updated = ports.flow.update(pool, &mut |state: &mut FlowState| {
            woken.clear();
            gone = state.renew(flow, owner, now_ms);
            state.expire(flow, now_ms, &mut woken);
            state.release(flow, slots, &mut woken);
        });
        if updated {
            wake_all(ports.flow, &woken);
            if gone > 0 {
                ports.log.log(
                    Level::Warn,
                    &format!(
                        "flow control: a worker holding {gone} request(s) in pool {pool} went \
                         silent; its seats are given back"
                    ),
                );
            }
        }
    }
}

fn wake_all(flow: &dyn FlowQueues, woken: &[Woken]) {
    for woken in woken {
        flow.wake(woken);
    }
}

fn band_name(flow: &FlowControl, band: usize) -> &str {
    flow.bands.get(band).map_or("", |b| b.name.as_str())
}

/// The `sluice.flow` record: the band, what flow control did, how long the request was held.
fn flow_record(band: &str, outcome: &str, held_ms: u64) -> Record {
    let value = serde_json::json!({
        "band": band,
        "outcome": outcome,
        "held_ms": held_ms,
    });
    Record {
        key: RecordKey::Flow,
        value: value.to_string(),
    }
}

/// The flow-control headers a request carried, read with its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FlowHeaders {
    pub objective: Option<String>,
    pub fairness: Option<String>,
}
