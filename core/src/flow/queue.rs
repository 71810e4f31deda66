//! One pool's queue discipline: which held request goes next when capacity frees, and which are
//! turned away.
//!
//! - **Priority.** Bands are served highest first, except that a band with a minimum share
//!   earns credit on every release (its share of the released tokens) while it has requests
//!   waiting, and is served whenever its credit covers its next request: a backlogged band gets
//!   at least its share of tokens, so no band starves.
//! - **Fairness** within a band is over tokens (prompt + output), in two steps. First, the id
//!   with the fewest tokens in flight now goes first: the pool's capacity is shared max-min by
//!   what each id occupies, so an id below its share (a light tenant) is served at the next free
//!   seat however much a heavy one has waiting, and an id sending long prompts holds fewer seats.
//!   Among ids with as many in flight, start-time fair queueing decides: each id has a finish
//!   tag that grows by the tokens each of its requests costs; a request starts at the later of
//!   its id's tag and the band's virtual time less a burst allowance, and the earliest start is
//!   served first, so an id that was served more lately waits. Costs are estimates at
//!   admission, corrected by the usage the response reported.
//! - **Limits.** A band holds at most its `capacity` requests, the pool at most
//!   `max_held_bytes` of bodies; a request waits at most its band's `ttl_ms`.
//! - **Owners.** Seats are counted per owner (the worker that holds the stream: a Wasm VM; the
//!   native host is one owner), and each owner renews a lease on every tick. An owner silent for
//!   `OWNER_LEASE_MS` is gone (a Wasm VM replaced on a reload, whose streams went with it): its
//!   seats come back and its held requests leave the queue, instead of shrinking the pool for
//!   good.
//!
//! The state is plain data with a fixed bound (bands × capacity held entries, `MAX_TAGS`
//! fairness tags per band), encoded with postcard so that the proxy-wasm host can keep it in
//! Envoy's shared data and update it with compare-and-swap; the native host keeps it behind a
//! lock. Every method is deterministic in its inputs: the Wasm host may run an update again
//! after a conflict.

use serde::{Deserialize, Serialize};

use super::policy::FlowControl;

/// Fairness tags kept per band: ids beyond it share the oldest ones' fate (an evicted id
/// restarts at the band's virtual time, as an idle one does).
pub const MAX_TAGS: usize = 256;

/// Bytes one held entry takes in the encoded state at most (postcard varints), for the bound.
pub const MAX_ENTRY_BYTES: usize = 64;

/// Owners a state counts seats for (an Envoy has one per worker VM, two per worker while a
/// configuration is replaced); past it, the longest silent is forgotten first.
pub const MAX_OWNERS: usize = 256;

/// An owner that has not renewed its lease for this long is gone. Every owner renews it on each
/// tick (at most 100 ms apart; the native host's ticker runs every `picking.refresh_ms`).
pub const OWNER_LEASE_MS: u64 = 15_000;

/// One pool's flow state, shared by every worker of an Envoy process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// The configuration the state was built for (`FlowControl::fingerprint`): a state left by
    /// another configuration starts over.
    fingerprint: u64,
    /// Requests admitted (let through or released) that have not ended, per owner.
    owners: Vec<OwnerSeats>,
    /// Bytes of the request bodies held.
    held_bytes: u64,
    bands: Vec<BandState>,
}

/// One owner's admitted requests and when it last renewed its lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OwnerSeats {
    owner: u32,
    active: u32,
    seen_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BandState {
    /// In arrival order.
    held: Vec<Held>,
    /// The start tag of the last request served: where an idle fairness id restarts.
    virtual_time: u64,
    /// Minimum-share credit, in tokens × 1000 (shares are in thousandths).
    credit: u64,
    /// Per fairness id: its finish tag and its tokens in flight.
    tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tag {
    id: u64,
    finish: u64,
    /// Estimated tokens of its admitted requests that have not ended.
    in_flight: u64,
}

/// A request waiting for capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Unique in the process (the host makes it).
    pub ticket: u64,
    /// Which worker holds the stream (the host's token, handed back when it is woken).
    pub owner: u32,
    pub fairness: u64,
    /// Estimated tokens (prompt + output).
    pub cost: u64,
    /// Virtual start tag.
    start: u64,
    pub since_ms: u64,
    pub bytes: u64,
}

/// A request asking to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub ticket: u64,
    pub owner: u32,
    pub band: usize,
    /// Hash of the fairness id.
    pub fairness: u64,
    /// Estimated tokens: prompt + output budget.
    pub cost: u64,
    /// Body bytes that stay buffered while it is held.
    pub bytes: u64,
    pub now_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrived {
    /// Capacity is free and nobody waits: go on now.
    Admitted,
    /// Wait for a wake-up.
    Held,
    /// The band is full or the bodies held would pass their bound.
    Overflow,
}

/// What happened to a held request, for its holder to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Woken {
    pub ticket: u64,
    pub owner: u32,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Capacity is its: go through picking and on upstream.
    Released,
    /// It waited its band's `ttl_ms`: answer `reject_status`.
    Expired,
}

impl FlowState {
    /// Makes sure the state fits `flow` (a state from another configuration starts over).
    fn fit(&mut self, flow: &FlowControl) {
        let fingerprint = flow.fingerprint();
        if self.fingerprint != fingerprint || self.bands.len() != flow.bands.len() {
            *self = Self {
                fingerprint,
                bands: vec![BandState::default(); flow.bands.len()],
                ..Self::default()
            };
        }
    }

    /// A request arrives with `slots` requests' worth of capacity in the pool (`capacity`):
    /// admitted at once when capacity is free and no one is waiting, otherwise held in its band
    /// (or turned away when that is full). Whatever the state lets go meanwhile is added to
    /// `woken`; when that includes the arrival itself, it was held and released at once
    /// (`Admitted`).
    pub fn arrive(
        &mut self,
        flow: &FlowControl,
        arrival: &Arrival,
        slots: u32,
        woken: &mut Vec<Woken>,
    ) -> Arrived {
        self.fit(flow);
        let Some(band) = self.bands.get_mut(arrival.band) else {
            // Bands come from the same configuration: an unknown one cannot be held fairly.
            return Arrived::Overflow;
        };
        let start = band.start_tag(arrival.fairness, arrival.cost, flow.fairness_burst_tokens);
        if self.active() < slots && self.bands.iter().all(|b| b.held.is_empty()) {
            self.seat(arrival.owner, arrival.now_ms, 1);
            if let Some(band) = self.bands.get_mut(arrival.band) {
                band.virtual_time = band.virtual_time.max(start);
                band.occupy(arrival.fairness, arrival.cost);
            }
            return Arrived::Admitted;
        }
        let capacity = flow
            .bands
            .get(arrival.band)
            .map_or(0, |b| usize::try_from(b.capacity).unwrap_or(usize::MAX));
        let bytes = self.held_bytes.saturating_add(arrival.bytes);
        let Some(band) = self.bands.get_mut(arrival.band) else {
            return Arrived::Overflow;
        };
        if band.held.len() >= capacity || bytes > flow.max_held_bytes {
            band.refund(arrival.fairness, arrival.cost);
            return Arrived::Overflow;
        }
        band.held.push(Held {
            ticket: arrival.ticket,
            owner: arrival.owner,
            fairness: arrival.fairness,
            cost: arrival.cost,
            start,
            since_ms: arrival.now_ms,
            bytes: arrival.bytes,
        });
        self.held_bytes = bytes;
        let before = woken.len();
        self.release(flow, slots, woken);
        let released_itself = woken
            .get(before..)
            .unwrap_or_default()
            .iter()
            .position(|w| w.ticket == arrival.ticket);
        match released_itself {
            Some(at) => {
                woken.remove(before.saturating_add(at));
                Arrived::Admitted
            }
            None => Arrived::Held,
        }
    }

    /// Releases held requests while fewer than `slots` are admitted, in the discipline's order.
    pub fn release(&mut self, flow: &FlowControl, slots: u32, woken: &mut Vec<Woken>) {
        self.fit(flow);
        while self.active() < slots {
            let Some(band_index) = self.next_band(flow) else {
                return;
            };
            let Some(held) = self.take_next(flow, band_index) else {
                return;
            };
            self.seat(held.owner, held.since_ms, 1);
            self.held_bytes = self.held_bytes.saturating_sub(held.bytes);
            woken.push(Woken {
                ticket: held.ticket,
                owner: held.owner,
                outcome: Outcome::Released,
            });
        }
    }

    /// Turns away every request that has waited its band's `ttl_ms` by `now_ms`.
    pub fn expire(&mut self, flow: &FlowControl, now_ms: u64, woken: &mut Vec<Woken>) {
        self.fit(flow);
        let mut freed = 0u64;
        for (band, config) in self.bands.iter_mut().zip(&flow.bands) {
            let mut kept = Vec::with_capacity(band.held.len());
            for held in std::mem::take(&mut band.held) {
                if now_ms.saturating_sub(held.since_ms) >= config.ttl_ms {
                    freed = freed.saturating_add(held.bytes);
                    woken.push(Woken {
                        ticket: held.ticket,
                        owner: held.owner,
                        outcome: Outcome::Expired,
                    });
                    band.refund(held.fairness, held.cost);
                } else {
                    kept.push(held);
                }
            }
            band.held = kept;
        }
        self.held_bytes = self.held_bytes.saturating_sub(freed);
    }

    /// A held request went away (its client disconnected). Returns false when it was no longer
    /// held: it had been released (and counts as admitted) or expired meanwhile.
    pub fn leave(&mut self, flow: &FlowControl, ticket: u64) -> bool {
        self.fit(flow);
        for band in &mut self.bands {
            if let Some(at) = band.held.iter().position(|h| h.ticket == ticket) {
                let held = band.held.remove(at);
                self.held_bytes = self.held_bytes.saturating_sub(held.bytes);
                band.refund(held.fairness, held.cost);
                return true;
            }
        }
        false
    }

    /// An admitted request of `owner` ended: its capacity is free, and its fairness id is
    /// charged what it really cost (`actual` tokens) instead of the estimate it was charged at
    /// admission.
    pub fn finish(
        &mut self,
        flow: &FlowControl,
        owner: u32,
        band: usize,
        fairness: u64,
        estimated: u64,
        actual: u64,
    ) {
        self.fit(flow);
        if let Some(seats) = self.owners.iter_mut().find(|o| o.owner == owner) {
            seats.active = seats.active.saturating_sub(1);
        }
        if let Some(band) = self.bands.get_mut(band) {
            band.correct(fairness, estimated, actual);
        }
    }

    /// Requests admitted and not yet ended.
    pub fn active(&self) -> u32 {
        self.owners
            .iter()
            .fold(0u32, |sum, o| sum.saturating_add(o.active))
    }

    /// `owner` is alive at `now_ms` (its lease renewed); owners silent for `OWNER_LEASE_MS`
    /// are forgotten with their seats and held requests. Returns the held requests that left
    /// with them (their streams went with their owner: nobody is woken for them).
    pub fn renew(&mut self, flow: &FlowControl, owner: u32, now_ms: u64) -> usize {
        self.fit(flow);
        self.seat(owner, now_ms, 0);
        let expired = |o: &OwnerSeats| now_ms.saturating_sub(o.seen_ms) >= OWNER_LEASE_MS;
        let gone: Vec<u32> = self
            .owners
            .iter()
            .filter(|o| expired(o))
            .map(|o| o.owner)
            .collect();
        if gone.is_empty() {
            return 0;
        }
        self.owners.retain(|o| !expired(o));
        let mut left = 0usize;
        let mut freed = 0u64;
        for band in &mut self.bands {
            let mut kept = Vec::with_capacity(band.held.len());
            for held in std::mem::take(&mut band.held) {
                if gone.contains(&held.owner) {
                    left = left.saturating_add(1);
                    freed = freed.saturating_add(held.bytes);
                    band.refund(held.fairness, held.cost);
                } else {
                    kept.push(held);
                }
            }
            band.held = kept;
        }
        self.held_bytes = self.held_bytes.saturating_sub(freed);
        left
    }

    /// Adds `seats` to `owner`'s count and renews its lease at `now_ms` (never back in time).
    fn seat(&mut self, owner: u32, now_ms: u64, seats: u32) {
        if let Some(entry) = self.owners.iter_mut().find(|o| o.owner == owner) {
            entry.active = entry.active.saturating_add(seats);
            entry.seen_ms = entry.seen_ms.max(now_ms);
            return;
        }
        if self.owners.len() >= MAX_OWNERS {
            if let Some(oldest) = self
                .owners
                .iter()
                .enumerate()
                .min_by_key(|(_, o)| o.seen_ms)
                .map(|(at, _)| at)
            {
                self.owners.swap_remove(oldest);
            }
        }
        self.owners.push(OwnerSeats {
            owner,
            active: seats,
            seen_ms: now_ms,
        });
    }

    /// Requests `fairness` has waiting in `band`.
    pub fn waiting(&self, band: usize, fairness: u64) -> usize {
        self.bands.get(band).map_or(0, |b| {
            b.held.iter().filter(|h| h.fairness == fairness).count()
        })
    }

    /// Every request waiting, with its band: for hosts that check on the requests they hold
    /// (a lost wake-up) and count the waiting ones for their metrics.
    pub fn held_requests(&self) -> impl Iterator<Item = (usize, &Held)> {
        self.bands
            .iter()
            .enumerate()
            .flat_map(|(band, state)| state.held.iter().map(move |held| (band, held)))
    }

    /// Requests waiting in every band.
    pub fn held(&self) -> usize {
        self.bands.iter().map(|b| b.held.len()).sum()
    }

    /// Bytes of the bodies held.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    pub fn encode(&self) -> Vec<u8> {
        // Encoding plain integers and vectors into a growable buffer does not fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// `None` for bytes that are not a state (none yet, or another format): start over.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }

    /// The band served next: one whose minimum-share credit covers its next request, else the
    /// highest with requests waiting.
    fn next_band(&self, flow: &FlowControl) -> Option<usize> {
        let by_credit = self
            .bands
            .iter()
            .zip(&flow.bands)
            .enumerate()
            .rev()
            .find(|(_, (band, config))| {
                config.min_share_permille > 0
                    && band
                        .peek()
                        .is_some_and(|next| band.credit >= next.cost.saturating_mul(1000))
            })
            .map(|(index, _)| index);
        by_credit.or_else(|| self.bands.iter().position(|b| !b.held.is_empty()))
    }

    /// Takes `band_index`'s next request and moves the credits: every band with requests
    /// waiting earns its share of the released tokens, the band served pays for them.
    fn take_next(&mut self, flow: &FlowControl, band_index: usize) -> Option<Held> {
        let band = self.bands.get_mut(band_index)?;
        let at = band.next_index()?;
        let held = band.held.remove(at);
        band.virtual_time = band.virtual_time.max(held.start);
        band.occupy(held.fairness, held.cost);
        for (index, (band, config)) in self.bands.iter_mut().zip(&flow.bands).enumerate() {
            if band.held.is_empty() && index != band_index {
                band.credit = 0;
                continue;
            }
            let earned = held
                .cost
                .saturating_mul(u64::from(config.min_share_permille));
            band.credit = band.credit.saturating_add(earned);
            if index == band_index {
                band.credit = band.credit.saturating_sub(held.cost.saturating_mul(1000));
            }
        }
        Some(held)
    }
}

impl BandState {
    /// The request served next in this band: the earliest start tag, the earliest arrival
    /// among equals.
    fn next_index(&self) -> Option<usize> {
        self.held
            .iter()
            .enumerate()
            .min_by_key(|(_, held)| (self.in_flight(held.fairness), held.start))
            .map(|(index, _)| index)
    }

    fn in_flight(&self, fairness: u64) -> u64 {
        self.tags
            .iter()
            .find(|t| t.id == fairness)
            .map_or(0, |t| t.in_flight)
    }

    /// `fairness` has a request of `cost` tokens admitted.
    fn occupy(&mut self, fairness: u64, cost: u64) {
        if let Some(tag) = self.tags.iter_mut().find(|t| t.id == fairness) {
            tag.in_flight = tag.in_flight.saturating_add(cost);
        }
    }

    fn peek(&self) -> Option<&Held> {
        self.next_index().and_then(|at| self.held.get(at))
    }

    /// Charges `cost` to `fairness`: returns the request's start tag (the later of the id's
    /// finish tag and the band's virtual time less `burst`) and moves the id's finish tag past
    /// it. An id that has used less than its share may so go `burst` tokens ahead of the ids
    /// that are always waiting: occasional senders are served at once instead of queueing
    /// behind a heavy one, while no id gets more than its share plus `burst` over any period.
    fn start_tag(&mut self, fairness: u64, cost: u64, burst: u64) -> u64 {
        let floor = self.virtual_time.saturating_sub(burst);
        let tag = self.tag_mut(fairness, floor);
        let start = (*tag).max(floor);
        *tag = start.saturating_add(cost);
        start
    }

    /// Gives back `cost` a request charged and never used (turned away, expired, left).
    fn refund(&mut self, fairness: u64, cost: u64) {
        if let Some(tag) = self.tags.iter_mut().find(|t| t.id == fairness) {
            tag.finish = tag.finish.saturating_sub(cost);
        }
    }

    /// An admitted request ended: its tokens leave the id's in-flight count, and what it cost
    /// replaces the estimate it was charged.
    fn correct(&mut self, fairness: u64, estimated: u64, actual: u64) {
        if let Some(tag) = self.tags.iter_mut().find(|t| t.id == fairness) {
            tag.finish = tag.finish.saturating_sub(estimated).saturating_add(actual);
            tag.in_flight = tag.in_flight.saturating_sub(estimated);
        }
    }

    /// `fairness`'s finish tag, made at `floor` if needed: a full table first forgets the ids
    /// with nothing in flight at or behind `floor` (they restart there anyway), then the one
    /// furthest behind (an id forgotten with requests in flight is counted with none).
    fn tag_mut(&mut self, fairness: u64, floor: u64) -> &mut u64 {
        if let Some(at) = self.tags.iter().position(|t| t.id == fairness) {
            return match self.tags.get_mut(at) {
                Some(tag) => &mut tag.finish,
                None => &mut self.virtual_time,
            };
        }
        if self.tags.len() >= MAX_TAGS {
            self.tags.retain(|t| t.finish > floor || t.in_flight > 0);
        }
        if self.tags.len() >= MAX_TAGS {
            if let Some(oldest) = self
                .tags
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| t.finish)
                .map(|(at, _)| at)
            {
                self.tags.swap_remove(oldest);
            }
        }
        self.tags.push(Tag {
            id: fairness,
            finish: floor,
            in_flight: 0,
        });
        match self.tags.last_mut() {
            Some(tag) => &mut tag.finish,
            None => &mut self.virtual_time,
        }
    }
}
